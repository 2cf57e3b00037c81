//! The driver's readiness poller: which registered sockets are ready, waited for with a timeout.
//!
//! # Contract
//!
//! - A source (a socket, the stop channel's reader) is registered under a `usize` key with a
//!   read interest, a write interest or both ([`Poller::add`]), changed with [`Poller::modify`]
//!   and removed with [`Poller::delete`], which must come before the descriptor is closed (the
//!   driver's `Registration` keeps that rule). Registrations are level-triggered: a source stays
//!   reported for as long as it is ready.
//! - [`Poller::wait`] returns once at least one event is in [`Events`] or the timeout has passed
//!   — never earlier: a timeout is rounded *up* to the poller's resolution (a millisecond on
//!   Linux), so a deadline that has not quite arrived cannot make the loop spin on zero-length
//!   waits. `None` waits without limit. A signal that interrupts the wait is absorbed: the wait
//!   goes on for what is left of its timeout.
//! - [`Event::readable`] is set for data, end of stream, a hang-up or an error;
//!   [`Event::writable`] for room to write, a hang-up or an error. A hang-up or an error is
//!   reported even for a source registered for neither, which is why the driver removes a
//!   socket that wants nothing instead of registering it with no interest.
//! - One thread uses a poller: it is not shared, so it needs no lock, and nothing wakes it but
//!   its sources — the [`StopHandle`](super::StopHandle) is a socket pair registered like any
//!   other socket, not a notification built into the poller.
//!
//! # Why not `polling` everywhere
//!
//! `polling`'s epoll backend is built for a poller shared by threads and woken by `notify`: every
//! wait arms a timerfd for the timeout (`timerfd_settime`), re-arms it and an eventfd notifier in
//! the epoll set (two `epoll_ctl`), then reads the eventfd after `epoll_pwait` — five system
//! calls per wait, where one `epoll_wait` does all this driver needs. Measured with `perf stat`
//! on one worker (`cargo run --release -p stud-benches --bin syscalls`), that overhead was 27 of
//! the 70 system calls of a full-handshake connection. On Linux and Android the driver therefore
//! talks to epoll itself: `epoll_create1(EPOLL_CLOEXEC)`, `epoll_ctl`, and `epoll_wait` with a
//! millisecond timeout (the driver's deadlines are milliseconds apart at the finest; a finer
//! `epoll_pwait2` would buy nothing). Elsewhere `polling` (kqueue, event ports, poll) stays,
//! behind the same interface. Both implementations run the same unit tests on Linux.
//!
//! The `unsafe` of the epoll calls lives in this module only, each call with its SAFETY note.

use std::time::Duration;

/// What a source is registered for, or what it was found ready for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Event {
    /// The key the source was registered under.
    pub(super) key: usize,
    /// Interest in reading; in a reported event, readable (or hung up, or failed).
    pub(super) readable: bool,
    /// Interest in writing; in a reported event, writable (or hung up, or failed).
    pub(super) writable: bool,
}

impl Event {
    /// An interest (or a readiness) for `key`.
    pub(super) fn new(key: usize, readable: bool, writable: bool) -> Event {
        Event {
            key,
            readable,
            writable,
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) use epoll::{Events, Poller};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) use portable::{Events, Poller};

/// A timeout in whole milliseconds for epoll_wait, rounded up; `-1` (no limit) for `None`.
/// Timeouts beyond `i32::MAX` ms (24 days) are cut to it: the caller waits again.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    expect(dead_code, reason = "only the epoll poller uses it")
)]
fn timeout_ms(timeout: Option<Duration>) -> i32 {
    let Some(t) = timeout else {
        return -1;
    };
    let ms = t.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)] // The epoll calls; each has its SAFETY note.
mod epoll {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    use super::{timeout_ms, Event};

    /// Reported as readable: data, end of stream, a hang-up, an error, urgent data — what
    /// `polling` reports as readable, so that the driver sees the same events on every system.
    const READ_FLAGS: u32 =
        (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32;
    /// Reported as writable: room to write, a hang-up, an error.
    const WRITE_FLAGS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

    /// One epoll instance (close-on-exec), level-triggered registrations.
    #[derive(Debug)]
    pub(in crate::driver) struct Poller {
        epoll: OwnedFd,
    }

    /// Room for the events of one wait.
    #[derive(Debug)]
    pub(in crate::driver) struct Events {
        list: Vec<libc::epoll_event>,
    }

    impl Events {
        /// Room for at most `capacity` events per wait (at least one).
        pub(in crate::driver) fn with_capacity(capacity: usize) -> Events {
            Events {
                list: Vec::with_capacity(capacity.clamp(1, i32::MAX as usize)),
            }
        }

        /// The events of the last wait.
        pub(in crate::driver) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
            self.list.iter().map(|e| {
                let flags = e.events;
                Event {
                    key: e.u64 as usize,
                    readable: flags & READ_FLAGS != 0,
                    writable: flags & WRITE_FLAGS != 0,
                }
            })
        }
    }

    fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    impl Poller {
        /// A new epoll instance.
        pub(in crate::driver) fn new() -> io::Result<Poller> {
            // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new
            // descriptor that nothing else owns.
            let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(Poller { epoll })
        }

        fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, ev: Option<Event>) -> io::Result<()> {
            let mut event = libc::epoll_event {
                events: ev.map_or(0, |e| {
                    let mut flags = 0;
                    if e.readable {
                        flags |= READ_FLAGS;
                    }
                    if e.writable {
                        flags |= WRITE_FLAGS;
                    }
                    flags
                }),
                u64: ev.map_or(0, |e| e.key as u64),
            };
            // SAFETY: both descriptors are open for the call (one owned, one borrowed), and
            // `event` is a valid epoll_event that the kernel only reads (DEL ignores it).
            check(unsafe {
                libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut event)
            })
            .map(drop)
        }

        /// Registers `fd` for `interest`, level-triggered. Fails if it is registered already.
        pub(in crate::driver) fn add(&self, fd: BorrowedFd<'_>, interest: Event) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_ADD, fd, Some(interest))
        }

        /// Changes the interest (and key) of a registered `fd`.
        pub(in crate::driver) fn modify(
            &self,
            fd: BorrowedFd<'_>,
            interest: Event,
        ) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_MOD, fd, Some(interest))
        }

        /// Unregisters `fd`; must come before `fd` is closed.
        pub(in crate::driver) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_DEL, fd, None)
        }

        /// Replaces `events` with what is ready, waiting up to `timeout` (rounded up to a
        /// millisecond) for something to be; one epoll_wait unless a signal interrupts it.
        pub(in crate::driver) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.list.clear();
            let capacity = i32::try_from(events.list.capacity()).unwrap_or(i32::MAX);
            // Read only if a signal interrupts the wait: what is left of the timeout.
            let mut deadline: Option<Instant> = None;
            let mut left = timeout;
            loop {
                // SAFETY: the buffer has room for `capacity` events and stays borrowed for
                // the call; the kernel writes at most that many.
                let rc = unsafe {
                    libc::epoll_wait(
                        self.epoll.as_raw_fd(),
                        events.list.as_mut_ptr(),
                        capacity,
                        timeout_ms(left),
                    )
                };
                match check(rc) {
                    Ok(n) => {
                        // SAFETY: epoll_wait initialised the first `n` (≤ capacity) entries.
                        unsafe { events.list.set_len(n as usize) };
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        let Some(t) = timeout else {
                            continue;
                        };
                        // The wait began at most now; restarting from now keeps the rule
                        // "never earlier than asked" (it may wake a little later).
                        let now = Instant::now();
                        let end = *deadline.get_or_insert(now + t);
                        left = Some(end.saturating_duration_since(now));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(any(not(any(target_os = "linux", target_os = "android")), test))]
mod portable {
    use std::io;
    use std::num::NonZeroUsize;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::time::Duration;

    use polling::PollMode;

    use super::Event;

    /// `polling`'s poller (kqueue, event ports, poll), level-triggered registrations.
    #[derive(Debug)]
    pub(in crate::driver) struct Poller {
        inner: polling::Poller,
    }

    /// Room for the events of one wait.
    #[derive(Debug)]
    pub(in crate::driver) struct Events {
        inner: polling::Events,
    }

    impl Events {
        /// Room for at most `capacity` events per wait (at least one).
        pub(in crate::driver) fn with_capacity(capacity: usize) -> Events {
            let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
            Events {
                inner: polling::Events::with_capacity(capacity),
            }
        }

        /// The events of the last wait.
        pub(in crate::driver) fn iter(&self) -> impl Iterator<Item = Event> + '_ {
            self.inner
                .iter()
                .map(|e| Event::new(e.key, e.readable, e.writable))
        }
    }

    fn interest(e: Event) -> polling::Event {
        polling::Event::new(e.key, e.readable, e.writable)
    }

    impl Poller {
        /// A new poller.
        pub(in crate::driver) fn new() -> io::Result<Poller> {
            Ok(Poller {
                inner: polling::Poller::new()?,
            })
        }

        /// Registers `fd` for `interest`, level-triggered. Fails if it is registered already.
        #[allow(unsafe_code)] // polling's registration is unsafe; see SAFETY below.
        pub(in crate::driver) fn add(
            &self,
            fd: BorrowedFd<'_>,
            interest_: Event,
        ) -> io::Result<()> {
            // SAFETY: polling requires the source to be deleted from the poller before it is
            // closed. The driver adds sources only through a `Registration` owned next to the
            // socket, and every path that drops such a socket calls `Registration::clear`
            // first (session close, backend retry, listener close, and `Server`'s `Drop`).
            unsafe {
                self.inner
                    .add_with_mode(fd.as_raw_fd(), interest(interest_), PollMode::Level)
            }
        }

        /// Changes the interest (and key) of a registered `fd`.
        pub(in crate::driver) fn modify(
            &self,
            fd: BorrowedFd<'_>,
            interest_: Event,
        ) -> io::Result<()> {
            self.inner
                .modify_with_mode(fd, interest(interest_), PollMode::Level)
        }

        /// Unregisters `fd`; must come before `fd` is closed.
        pub(in crate::driver) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.inner.delete(fd)
        }

        /// Replaces `events` with what is ready, waiting up to `timeout` for something to be
        /// (polling retries interrupted waits itself).
        pub(in crate::driver) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.inner.clear();
            self.inner.wait(&mut events.inner, timeout).map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::timeout_ms;
    use std::time::Duration;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1_500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(7))), 7);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }

    /// The same behaviour, tested against each implementation.
    macro_rules! poller_tests {
        ($name:ident, $imp:path) => {
            mod $name {
                use std::io::{Read, Write};
                use std::net::{TcpListener, TcpStream};
                use std::os::fd::AsFd;
                use std::time::{Duration, Instant};

                use crate::driver::poller::Event;
                use crate::driver::stop::{StopChannel, StopHandle, StopRequest};
                use imp::{Events, Poller};
                use $imp as imp;

                fn pair() -> (TcpStream, TcpStream) {
                    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                    let addr = listener.local_addr().expect("addr");
                    let client = TcpStream::connect(addr).expect("connect");
                    let (server, _) = listener.accept().expect("accept");
                    server.set_nonblocking(true).expect("nonblocking");
                    (client, server)
                }

                fn wait(poller: &Poller, timeout: Duration) -> Vec<Event> {
                    let mut events = Events::with_capacity(16);
                    poller.wait(&mut events, Some(timeout)).expect("wait");
                    events.iter().collect()
                }

                #[test]
                fn a_wait_wakes_no_earlier_than_its_timeout() {
                    let poller = Poller::new().expect("poller");
                    for asked in [
                        Duration::from_micros(300),
                        Duration::from_millis(3),
                        Duration::from_millis(30),
                    ] {
                        let start = Instant::now();
                        let events = wait(&poller, asked);
                        let took = start.elapsed();
                        assert!(events.is_empty(), "{events:?}");
                        assert!(took >= asked, "asked {asked:?}, woke after {took:?}");
                        assert!(took < asked + Duration::from_secs(5), "{took:?}");
                    }
                }

                #[test]
                fn readiness_is_reported_level_triggered_under_its_key() {
                    let poller = Poller::new().expect("poller");
                    let (mut client, server) = pair();
                    poller
                        .add(server.as_fd(), Event::new(42, true, false))
                        .expect("add");
                    assert!(
                        wait(&poller, Duration::ZERO).is_empty(),
                        "nothing to read yet"
                    );
                    client.write_all(b"hello").expect("write");
                    let events = wait(&poller, Duration::from_secs(5));
                    assert_eq!(events, [Event::new(42, true, false)]);
                    // Not read: reported again.
                    let events = wait(&poller, Duration::from_secs(5));
                    assert_eq!(events, [Event::new(42, true, false)]);
                    let mut buf = [0u8; 16];
                    assert_eq!((&server).read(&mut buf).expect("read"), 5);
                    assert!(wait(&poller, Duration::ZERO).is_empty(), "drained");
                    // A hang-up reads as readable.
                    drop(client);
                    let events = wait(&poller, Duration::from_secs(5));
                    assert_eq!(events.len(), 1, "{events:?}");
                    assert!(events[0].readable && events[0].key == 42, "{events:?}");
                    poller.delete(server.as_fd()).expect("delete");
                }

                #[test]
                fn modify_changes_interest_and_key_and_delete_silences() {
                    let poller = Poller::new().expect("poller");
                    let (mut client, server) = pair();
                    poller
                        .add(server.as_fd(), Event::new(1, true, false))
                        .expect("add");
                    assert!(
                        poller
                            .add(server.as_fd(), Event::new(1, true, false))
                            .is_err(),
                        "added twice"
                    );
                    poller
                        .modify(server.as_fd(), Event::new(2, false, true))
                        .expect("modify");
                    let events = wait(&poller, Duration::from_secs(5));
                    assert_eq!(events, [Event::new(2, false, true)], "room to write");
                    client.write_all(b"x").expect("write");
                    poller
                        .modify(server.as_fd(), Event::new(3, true, true))
                        .expect("modify");
                    let events = wait(&poller, Duration::from_secs(5));
                    assert_eq!(events, [Event::new(3, true, true)]);
                    poller.delete(server.as_fd()).expect("delete");
                    assert!(
                        wait(&poller, Duration::from_millis(20)).is_empty(),
                        "a deleted source is not reported, ready or not"
                    );
                    assert!(
                        poller
                            .modify(server.as_fd(), Event::new(4, true, false))
                            .is_err(),
                        "modify after delete"
                    );
                    poller
                        .add(server.as_fd(), Event::new(5, true, false))
                        .expect("add again");
                    let events = wait(&poller, Duration::from_secs(5));
                    assert_eq!(events, [Event::new(5, true, false)]);
                    poller.delete(server.as_fd()).expect("delete");
                }

                #[test]
                fn the_stop_handle_wakes_a_waiting_poller() {
                    let poller = Poller::new().expect("poller");
                    let channel = StopChannel::new().expect("channel");
                    poller
                        .add(channel.reader(), Event::new(9, true, false))
                        .expect("add");
                    let handle = StopHandle::new(channel.clone());
                    let stopper = std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        handle.stop();
                    });
                    let start = Instant::now();
                    let mut events = Events::with_capacity(4);
                    // Long enough that only the stop request can end this wait early.
                    poller
                        .wait(&mut events, Some(Duration::from_secs(10)))
                        .expect("wait");
                    let took = start.elapsed();
                    let events: Vec<Event> = events.iter().collect();
                    assert_eq!(events, [Event::new(9, true, false)]);
                    assert!(took < Duration::from_secs(5), "{took:?}");
                    assert_eq!(channel.drain(), StopRequest::Graceful);
                    assert!(wait(&poller, Duration::ZERO).is_empty(), "drained");
                    stopper.join().expect("stopper");
                    poller.delete(channel.reader()).expect("delete");
                }
            }
        };
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    poller_tests!(epoll, crate::driver::poller::epoll);
    poller_tests!(portable, crate::driver::poller::portable);
}
