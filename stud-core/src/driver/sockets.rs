//! Socket plumbing: listening, tuning, nonblocking connects, signal-free sends, and the
//! poller registration (the driver's only `unsafe`).

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use polling::{Event, PollMode, Poller};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};

/// Sends with `MSG_NOSIGNAL`: a send to a reset peer fails with `EPIPE` instead of raising
/// `SIGPIPE`, which would kill a C program embedding the driver. Where the flag does not exist
/// the process must ignore `SIGPIPE` itself (Rust programs do by default).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SEND_FLAGS: std::ffi::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SEND_FLAGS: std::ffi::c_int = 0;

/// The listen backlog of [`bind_listener`].
const BACKLOG: i32 = 1024;

/// Binds `addr` with SO_REUSEADDR and listens with a backlog of 1024.
pub(super) fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// TCP_NODELAY (stud once added 40 ms to every reply by leaving Nagle on) and keepalive.
///
/// Failures are ignored: they happen only on a socket the peer already reset, which the first
/// read or write reports properly.
pub(super) fn tune(stream: &TcpStream, keepalive: Option<Duration>) {
    let socket = SockRef::from(stream);
    let _ = socket.set_tcp_nodelay(true);
    if let Some(idle) = keepalive {
        let _ = socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle));
    }
}

/// How a nonblocking connect began.
#[derive(Debug)]
pub(super) enum ConnectStart {
    /// Connected at once (possible on loopback on some systems).
    Connected(TcpStream),
    /// In progress: wait for the socket to become writable, then [`finish_connect`].
    Pending(TcpStream),
    /// Failed at once (refused, unreachable, no socket).
    Failed(io::Error),
}

/// Opens a nonblocking, close-on-exec socket and starts connecting it to `addr`.
pub(super) fn start_connect(addr: SocketAddr, keepalive: Option<Duration>) -> ConnectStart {
    let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) => return ConnectStart::Failed(e),
    };
    if let Err(e) = socket.set_nonblocking(true) {
        return ConnectStart::Failed(e);
    }
    let result = socket.connect(&SockAddr::from(addr));
    let stream: TcpStream = socket.into();
    tune(&stream, keepalive);
    match result {
        Ok(()) => match refuse_self_connect(&stream) {
            Ok(()) => ConnectStart::Connected(stream),
            Err(e) => ConnectStart::Failed(e),
        },
        Err(e) if connect_failed_at_once(&e) => ConnectStart::Failed(e),
        // EINPROGRESS (std has no stable name for it) or anything unexpected: the outcome is
        // read from the socket once it is writable, which is right in every case.
        Err(_) => ConnectStart::Pending(stream),
    }
}

/// Errors with which connect(2) fails for good before any handshake.
fn connect_failed_at_once(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | AddrNotAvailable
            | AddrInUse
            | PermissionDenied
            | InvalidInput
            | Unsupported
            | TimedOut
    )
}

/// The outcome of a pending connect whose socket became writable (or reported an error).
pub(super) fn finish_connect(stream: &TcpStream) -> io::Result<()> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    // Writable with no pending error yet not connected: the attempt failed and its error was
    // already consumed. It cannot be "still in progress": level-triggered epoll reports
    // writability only after the handshake ends.
    refuse_self_connect(stream)
}

/// Fails a connection whose two ends are the same address and port. TCP's simultaneous open lets
/// a connect to a loopback port that nothing listens on succeed when the kernel happens to pick
/// that very port as the local one; the "backend" is then the socket itself, which would echo the
/// client-address header back and never answer. Such a connect counts as refused.
///
/// This is also the check that the socket is connected at all (`peer_addr` fails with
/// `ENOTCONN` otherwise). Any address of this host can meet itself this way, not only loopback
/// ones, so the local address is always compared: one `getsockname` per backend connect.
fn refuse_self_connect(stream: &TcpStream) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    if stream.local_addr()? == peer {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "connected to itself: nothing listens on the backend port",
        ));
    }
    Ok(())
}

/// What to do after accept(2) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptFailure {
    /// Nothing more is queued.
    Empty,
    /// One connection failed (aborted by its peer, refused by a firewall, a signal): go on.
    Skip,
    /// Out of descriptors, buffers or memory, or something unknown: pause accepting.
    Exhausted,
}

/// Sorts an accept(2) error. Unknown errors pause accepting: a pause costs a little latency,
/// while retrying a persistent error at once would spin.
pub(super) fn classify_accept_error(e: &io::Error) -> AcceptFailure {
    use io::ErrorKind::*;
    match e.kind() {
        WouldBlock => AcceptFailure::Empty,
        ConnectionAborted | ConnectionReset | Interrupted | PermissionDenied => AcceptFailure::Skip,
        // Linux passes pending network errors of the new socket on through accept(2).
        _ if matches!(
            e.raw_os_error(),
            Some(
                libc::EPROTO
                    | libc::ENETDOWN
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH
            )
        ) =>
        {
            AcceptFailure::Skip
        }
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, and whatever else.
        _ => AcceptFailure::Exhausted,
    }
}

/// Writes to a socket with `MSG_NOSIGNAL`, also for the vectored writes rustls and
/// [`Conn::write_backend`](crate::Conn::write_backend) make (std's `write_vectored` is a plain
/// writev(2), which raises `SIGPIPE` on a reset peer).
#[derive(Debug)]
pub(super) struct SendNoSignal<'a>(pub(super) &'a TcpStream);

impl Write for SendNoSignal<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        SockRef::from(self.0).send_with_flags(buf, SEND_FLAGS)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        SockRef::from(self.0).send_vectored_with_flags(bufs, SEND_FLAGS)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a socket is registered for with the poller, so that the poller is told only about changes.
///
/// A socket that wants nothing is removed from the poller rather than registered with an empty
/// interest set: epoll always reports hang-ups and errors, and level-triggered it would report
/// them on every wake.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Registration {
    /// `(readable, writable)`; `None`: not in the poller.
    current: Option<(bool, bool)>,
}

impl Registration {
    /// Watches `source` under `key` for exactly `(read, write)`, adding, changing or removing
    /// the registration as needed. Calls the poller only when something changed.
    pub(super) fn update(
        &mut self,
        poller: &Poller,
        source: BorrowedFd<'_>,
        key: usize,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        let want = (read || write).then_some((read, write));
        if want == self.current {
            return Ok(());
        }
        match want {
            None => {
                self.clear(poller, source);
                return Ok(());
            }
            Some(_) if self.current.is_some() => {
                poller.modify_with_mode(source, Event::new(key, read, write), PollMode::Level)?;
            }
            Some(_) => add(poller, source, Event::new(key, read, write))?,
        }
        self.current = want;
        Ok(())
    }

    /// Removes `source` from the poller if it is there. Must run before the socket is closed.
    pub(super) fn clear(&mut self, poller: &Poller, source: BorrowedFd<'_>) {
        if self.current.take().is_some() {
            // Fails only if the fd was never added, which `current` rules out.
            let _ = poller.delete(source);
        }
    }
}

/// Adds `source` to `poller`, level-triggered.
#[allow(unsafe_code)] // polling's registration is unsafe; see SAFETY below.
fn add(poller: &Poller, source: BorrowedFd<'_>, event: Event) -> io::Result<()> {
    // SAFETY: polling requires the source to be deleted from the poller before it is closed.
    // Every source is added only through a `Registration` owned next to its socket, and every
    // path that drops such a socket calls `Registration::clear` first (session close, backend
    // retry, listener close, and `Server`'s `Drop` for whatever is left).
    unsafe { poller.add_with_mode(source.as_raw_fd(), event, PollMode::Level) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_sorted() {
        let kinds = [
            (
                io::Error::from(io::ErrorKind::WouldBlock),
                AcceptFailure::Empty,
            ),
            (
                io::Error::from(io::ErrorKind::ConnectionAborted),
                AcceptFailure::Skip,
            ),
            (
                io::Error::from(io::ErrorKind::Interrupted),
                AcceptFailure::Skip,
            ),
            (
                io::Error::from_raw_os_error(libc::EPROTO),
                AcceptFailure::Skip,
            ),
            (
                io::Error::from_raw_os_error(libc::EMFILE),
                AcceptFailure::Exhausted,
            ),
            (
                io::Error::from_raw_os_error(libc::ENFILE),
                AcceptFailure::Exhausted,
            ),
            (
                io::Error::from_raw_os_error(libc::ENOBUFS),
                AcceptFailure::Exhausted,
            ),
            (
                io::Error::from(io::ErrorKind::OutOfMemory),
                AcceptFailure::Exhausted,
            ),
        ];
        for (e, want) in kinds {
            assert_eq!(classify_accept_error(&e), want, "{e}");
        }
    }

    #[test]
    fn tuned_sockets_have_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stream = TcpStream::connect(addr).expect("connect");
        tune(&stream, Some(Duration::from_secs(600)));
        let socket = SockRef::from(&stream);
        assert!(socket.tcp_nodelay().expect("nodelay"));
        assert!(socket.keepalive().expect("keepalive"));
        #[cfg(target_os = "linux")]
        assert_eq!(
            socket.tcp_keepalive_time().expect("idle"),
            Duration::from_secs(600)
        );
        let plain = TcpStream::connect(addr).expect("connect");
        tune(&plain, None);
        assert!(!SockRef::from(&plain).keepalive().expect("keepalive"));
    }

    #[test]
    fn a_socket_connected_to_itself_counts_as_refused() {
        // A socket bound to a port and connected to that same port meets itself through TCP's
        // simultaneous open: the state a backend connect lands in by chance.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any.into()).expect("bind");
        let own = socket.local_addr().expect("addr");
        socket.connect(&own).expect("a self-connect succeeds");
        let stream: TcpStream = socket.into();
        assert_eq!(stream.local_addr().ok(), stream.peer_addr().ok());
        let e = finish_connect(&stream).expect_err("a self-connect is no backend");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        finish_connect(&other).expect("an ordinary connection passes");
    }

    #[test]
    fn a_refused_connect_is_reported() {
        // A port held bound but not listening: it refuses, and nothing else can take it.
        let held = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        held.bind(&any.into()).expect("bind");
        let port = held
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("port");
        let stream = match start_connect(port, None) {
            ConnectStart::Failed(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                return;
            }
            ConnectStart::Pending(s) | ConnectStart::Connected(s) => s,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match finish_connect(&stream) {
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(_) => return,
                Ok(()) => panic!("connected to a closed port"),
            }
            assert!(std::time::Instant::now() < deadline, "no outcome");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
