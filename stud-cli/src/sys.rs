//! Every call into libc that Rust's standard library does not wrap, in one place, each with the
//! reason it is sound. The rest of the crate is safe code.
//!
//! Signal handlers here only do async-signal-safe work: one `write(2)` of one byte to a
//! nonblocking pipe, with `errno` saved and restored around it.

#![expect(
    unsafe_code,
    reason = "this module is the crate's one door to libc; see each SAFETY note"
)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Turns a libc `-1` return into the current `errno` as an `io::Error`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The pipe the parent's handlers write signal numbers into (-1 = none).
static PARENT_SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);
/// The driver's stop pipe a worker's SIGTERM/SIGINT handler writes `g` into (-1 = none).
static WORKER_STOP_FD: AtomicI32 = AtomicI32::new(-1);

/// Writes one byte to `fd`, keeping `errno` as the interrupted code left it.
fn write_byte_preserving_errno(fd: RawFd, byte: u8) {
    if fd < 0 {
        return;
    }
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life;
    // write(2) is async-signal-safe and reads one byte from a live stack variable. A full pipe
    // (EAGAIN) loses nothing: a byte already waiting says the same thing.
    unsafe {
        let errno = *libc::__errno_location();
        let _ = libc::write(fd, std::ptr::from_ref(&byte).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

extern "C" fn parent_handler(signal: libc::c_int) {
    // Signal numbers on Linux are below 65, so they fit in the byte.
    write_byte_preserving_errno(PARENT_SIGNAL_FD.load(Ordering::Relaxed), signal as u8);
}

extern "C" fn worker_handler(_signal: libc::c_int) {
    write_byte_preserving_errno(WORKER_STOP_FD.load(Ordering::Relaxed), b'g');
}

/// What to do with a signal.
enum Disposition {
    Handler(extern "C" fn(libc::c_int)),
    Ignore,
    Default,
}

fn set_disposition(signal: libc::c_int, what: Disposition) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags) that we then fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = match what {
        Disposition::Handler(f) => f as usize,
        Disposition::Ignore => libc::SIG_IGN,
        Disposition::Default => libc::SIG_DFL,
    };
    // SA_RESTART: the driver's and std's blocking calls resume instead of failing with EINTR.
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is initialised, sa_mask is a valid (empty) set, the old action is not
    // wanted (null), and the handlers above are async-signal-safe.
    check(unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) })?;
    Ok(())
}

/// Ignores SIGPIPE: a write to a closed socket must fail with EPIPE, not kill the process.
pub(crate) fn ignore_sigpipe() -> io::Result<()> {
    set_disposition(libc::SIGPIPE, Disposition::Ignore)
}

/// Parent: SIGTERM, SIGINT, SIGCHLD, SIGHUP and SIGUSR1 write their number into `pipe`.
pub(crate) fn install_parent_handlers(pipe: RawFd) -> io::Result<()> {
    PARENT_SIGNAL_FD.store(pipe, Ordering::Relaxed);
    for s in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGCHLD,
        libc::SIGHUP,
        libc::SIGUSR1,
    ] {
        set_disposition(s, Disposition::Handler(parent_handler))?;
    }
    Ok(())
}

/// The foreground half of `--daemon`, which only waits: the parent's signals go back to their
/// default actions, so they end the waiting process rather than reach the daemon through the
/// pipe both inherited.
pub(crate) fn restore_default_signals() -> io::Result<()> {
    PARENT_SIGNAL_FD.store(-1, Ordering::Relaxed);
    for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
        set_disposition(s, Disposition::Default)?;
    }
    Ok(())
}

/// Worker: SIGTERM and SIGINT write `g` (graceful stop) into the driver's stop pipe; SIGCHLD
/// goes back to its default; SIGHUP and SIGUSR1 are ignored (reloading and reopening the log
/// are the parent's business).
pub(crate) fn install_worker_handlers(stop_pipe: RawFd) -> io::Result<()> {
    PARENT_SIGNAL_FD.store(-1, Ordering::Relaxed);
    WORKER_STOP_FD.store(stop_pipe, Ordering::Relaxed);
    set_disposition(libc::SIGCHLD, Disposition::Default)?;
    set_disposition(libc::SIGHUP, Disposition::Ignore)?;
    set_disposition(libc::SIGUSR1, Disposition::Ignore)?;
    for s in [libc::SIGTERM, libc::SIGINT] {
        set_disposition(s, Disposition::Handler(worker_handler))?;
    }
    Ok(())
}

/// The signal numbers the parent cares about.
pub(crate) const SIGTERM: i32 = libc::SIGTERM;
/// Interrupt (Ctrl-C).
pub(crate) const SIGINT: i32 = libc::SIGINT;
/// Hang-up.
pub(crate) const SIGHUP: i32 = libc::SIGHUP;
/// User signal 1: reopen the log file.
pub(crate) const SIGUSR1: i32 = libc::SIGUSR1;
/// Kill, uncatchable.
pub(crate) const SIGKILL: i32 = libc::SIGKILL;

/// A saved signal mask, restored by [`unblock_signals`].
pub(crate) struct SignalMask(libc::sigset_t);

/// Blocks every signal (so none runs a handler in a half-made child) and returns the old mask.
pub(crate) fn block_signals() -> io::Result<SignalMask> {
    // SAFETY: sigfillset and sigprocmask only write the two local sets we pass; a zeroed
    // sigset_t is a valid starting value.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        check(libc::sigfillset(&mut all))?;
        check(libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old))?;
        Ok(SignalMask(old))
    }
}

/// Restores a mask saved by [`block_signals`].
pub(crate) fn unblock_signals(mask: &SignalMask) -> io::Result<()> {
    // SAFETY: `mask.0` was filled by sigprocmask; the old-mask pointer may be null.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) })?;
    Ok(())
}

/// A nonblocking, close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the two-element array on success.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    // SAFETY: on success both fds are freshly opened and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Which side of a fork we are on.
pub(crate) enum Forked {
    /// The new process.
    Child,
    /// The original process; the child's pid.
    Parent(i32),
}

/// fork(2). The caller must be single-threaded: the child continues with Rust code.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: stud's parent process never starts a thread (the driver runs only in workers), so
    // the child inherits no lock held by a thread that does not exist in it.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// Reaps one exited child without blocking: `Some((pid, raw status))`, or `None` if none left.
pub(crate) fn reap_one() -> io::Result<Option<(i32, i32)>> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a live local.
    match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
        0 => Ok(None),
        -1 => {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ECHILD) {
                Ok(None)
            } else {
                Err(e)
            }
        }
        pid => Ok(Some((pid, status))),
    }
}

/// Sends `signal` to `pid`.
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory effects; pid is one of our own children.
    check(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// Asks the kernel to send SIGTERM to this process when its parent dies.
pub(crate) fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and no pointers.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })?;
    Ok(())
}

/// The parent's pid.
pub(crate) fn parent_pid() -> i32 {
    // SAFETY: getppid cannot fail and touches no memory.
    unsafe { libc::getppid() }
}

/// The effective uid.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Waits until `fd` is readable or `timeout` passes (`None` = forever). EINTR counts as a
/// wake-up: the caller re-checks its state anyway.
pub(crate) fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let ms = timeout.map_or(-1, |t| {
        // Round up so a deadline 0.4 ms away does not become a busy zero-timeout poll.
        i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        n => Ok(n > 0),
    }
}

/// Waits until any of `fds` is ready or `timeout` passes (`None` = forever): readable, or also
/// writable where its flag is set. EINTR counts as a wake-up, as in [`wait_readable`].
pub(crate) fn wait_any(fds: &[(RawFd, bool)], timeout: Option<Duration>) -> io::Result<()> {
    let ms = timeout.map_or(-1, |t| {
        i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, write)| libc::pollfd {
            fd,
            events: if write {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            },
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(pfds.len()).unwrap_or(0);
    // SAFETY: `pfds` holds `count` valid pollfd entries for the duration of the call.
    match unsafe { libc::poll(pfds.as_mut_ptr(), count, ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            }
        }
        _ => Ok(()),
    }
}

/// Whether a write to `fd` would not block now (poll(2) with a zero timeout). For a pipe this
/// means a free page, so a write of up to `PIPE_BUF` bytes goes through whole.
pub(crate) fn writable_now(fd: impl AsFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, no waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLOUT != 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) == 0
}

/// Asks for a pipe buffer of `bytes` (best effort: the kernel may cap it, and the default
/// stays if it refuses).
pub(crate) fn set_pipe_size(fd: impl AsFd, bytes: i32) {
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
    let _ = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
}

/// Turns on TCP Fast Open on a listening socket, with a queue of `queue` pending requests
/// (`TCP_FASTOPEN`; socket2 has no call for it).
pub(crate) fn set_tcp_fastopen(socket: impl AsFd, queue: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(queue).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local integer.
    check(unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The TCP Fast Open queue length of a socket (0: off); tests read back what was set.
#[cfg(test)]
pub(crate) fn tcp_fastopen(socket: impl AsFd) -> io::Result<u32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into a live local integer and updates `len`.
    check(unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    })?;
    Ok(u32::try_from(value).unwrap_or(0))
}

/// Local wall-clock time of `unix_secs`, as syslog stamps lines: (month 0–11, day 1–31, hour,
/// minute, second). `None` if the C library cannot convert it.
pub(crate) fn local_time(unix_secs: i64) -> Option<(u32, u32, u32, u32, u32)> {
    let t: libc::time_t = unix_secs;
    // SAFETY: a zeroed tm is a valid out-value; localtime_r reads `t` and writes only `tm`.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        let field = |v: libc::c_int| u32::try_from(v).ok();
        Some((
            field(tm.tm_mon)?,
            field(tm.tm_mday)?,
            field(tm.tm_hour)?,
            field(tm.tm_min)?,
            field(tm.tm_sec)?,
        ))
    }
}

/// Starts a new session, detaching from the controlling terminal.
pub(crate) fn new_session() -> io::Result<()> {
    // SAFETY: setsid has no memory effects.
    check(unsafe { libc::setsid() })?;
    Ok(())
}

/// Points stdin, stdout and stderr at `null` (an open `/dev/null`, opened before any chroot).
pub(crate) fn stdio_to(null: &impl AsFd) -> io::Result<()> {
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which std's stdio handles keep using.
        check(unsafe { libc::dup2(null.as_fd().as_raw_fd(), target) })?;
    }
    Ok(())
}

/// A user as the system database knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct User {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Looks a user up by name (`None` if there is no such user).
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<User>> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-value; getpwnam_r fills it with pointers into `buf`,
    // which outlives every read below.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok((!result.is_null()).then_some(User {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }))
    }
}

/// Looks a group up by name (`None` if there is no such group).
pub(crate) fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: as in lookup_user: the out-struct points into `buf`, read before `buf` drops.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok((!result.is_null()).then_some(grp.gr_gid))
    }
}

/// Sets the supplementary groups to just `gid`, then the real/effective/saved gid.
pub(crate) fn set_group(gid: u32) -> io::Result<()> {
    // SAFETY: setgroups reads one gid from a live local; setgid has no memory effects.
    unsafe {
        check(libc::setgroups(1, &gid))?;
        check(libc::setgid(gid))?;
    }
    Ok(())
}

/// Sets the real/effective/saved uid (irreversibly, when dropping root).
pub(crate) fn set_user(uid: u32) -> io::Result<()> {
    // SAFETY: setuid has no memory effects.
    check(unsafe { libc::setuid(uid) })?;
    Ok(())
}

/// syslog priorities.
pub(crate) const LOG_ERR: i32 = libc::LOG_ERR;
/// syslog priorities.
pub(crate) const LOG_WARNING: i32 = libc::LOG_WARNING;
/// syslog priorities.
pub(crate) const LOG_INFO: i32 = libc::LOG_INFO;

/// syslog facilities by name.
pub(crate) const FACILITIES: &[(&str, i32)] = &[
    ("auth", libc::LOG_AUTH),
    ("authpriv", libc::LOG_AUTHPRIV),
    ("cron", libc::LOG_CRON),
    ("daemon", libc::LOG_DAEMON),
    ("ftp", libc::LOG_FTP),
    ("kern", libc::LOG_KERN),
    ("lpr", libc::LOG_LPR),
    ("mail", libc::LOG_MAIL),
    ("news", libc::LOG_NEWS),
    ("syslog", libc::LOG_SYSLOG),
    ("user", libc::LOG_USER),
    ("uucp", libc::LOG_UUCP),
    ("local0", libc::LOG_LOCAL0),
    ("local1", libc::LOG_LOCAL1),
    ("local2", libc::LOG_LOCAL2),
    ("local3", libc::LOG_LOCAL3),
    ("local4", libc::LOG_LOCAL4),
    ("local5", libc::LOG_LOCAL5),
    ("local6", libc::LOG_LOCAL6),
    ("local7", libc::LOG_LOCAL7),
];

/// Milliseconds on the system-wide monotonic clock (`CLOCK_MONOTONIC`): comparable between the
/// parent and its workers, unlike `std::time::Instant`, which cannot cross a process boundary.
pub(crate) fn monotonic_millis() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

/// Heartbeat cells shared by the parent and every worker it forks ([`SharedCells`]): each
/// holds the [`monotonic_millis`] of a worker's last sign of life.
#[derive(Debug)]
pub(crate) struct Heartbeats(SharedCells);

impl Heartbeats {
    /// Maps `len` zeroed cells, shared with every process forked afterwards.
    pub(crate) fn new(len: usize) -> io::Result<Heartbeats> {
        SharedCells::new(len).map(Heartbeats)
    }

    /// Records a sign of life in `cell` (ignored if out of range).
    pub(crate) fn beat(&self, cell: usize, millis: u64) {
        if let Some(c) = self.0.cells().get(cell) {
            c.store(millis, Ordering::Relaxed);
        }
    }

    /// The last sign of life in `cell` (0 if none, or out of range).
    pub(crate) fn last(&self, cell: usize) -> u64 {
        self.0
            .cells()
            .get(cell)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Asks the allocators to return the memory they hold free to the system (after a spike of
/// connections closed; see `trim`): jemalloc's purge of every arena when that allocator is
/// linked (Rust's allocations), then glibc's `malloc_trim(0)`, which releases the free pages
/// inside its heaps as well as their tops — the C library's malloc serves aws-lc's allocations
/// (per-connection cipher contexts) whichever allocator Rust uses. Best effort.
pub(crate) fn release_free_memory() {
    #[cfg(feature = "jemalloc")]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages go back now.
        let name = b"arena.4096.purge\0";
        // SAFETY: a NUL-terminated control name that takes and returns nothing (null pointers
        // and zero lengths, as jemalloc's manual gives for `arena.<i>.purge`).
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr().cast(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
        }
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; any pad is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Microseconds on `CLOCK_MONOTONIC`, the clock the service manager's `MONOTONIC_USEC=` uses.
pub(crate) fn monotonic_micros() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

/// Takes ownership of descriptor `fd`, inherited open from the process that started us (socket
/// activation), and marks it close-on-exec. Fails if `fd` is not open.
///
/// The caller must be the descriptor's only owner: it was passed to this process for it alone,
/// and nothing else in stud opens, wraps or closes inherited descriptors.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's flags; a closed `fd` gives EBADF.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: `fd` is open (checked above) and, per this function's contract, owned by no one
    // else in this process, so wrapping it in an OwnedFd that closes it once is sound.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Counters shared by the parent and every process it forks afterwards: an anonymous
/// `MAP_SHARED` mapping of zeroed `AtomicU64`s, so a store in one process is seen by all.
pub(crate) struct SharedCells {
    cells: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
    len: usize,
}

// SAFETY: the cells are atomics in memory that lives until drop; sharing them across threads
// is as sound as sharing `&[AtomicU64]`.
unsafe impl Send for SharedCells {}
// SAFETY: as above; every access goes through atomic operations.
unsafe impl Sync for SharedCells {}

impl std::fmt::Debug for SharedCells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCells")
            .field("len", &self.len)
            .finish()
    }
}

impl SharedCells {
    /// Maps `len` zeroed cells (at least one).
    pub(crate) fn new(len: usize) -> io::Result<SharedCells> {
        let len = len.max(1);
        let bytes = len
            .checked_mul(std::mem::size_of::<u64>())
            .ok_or_else(|| io::Error::other("shared memory board too large"))?;
        // SAFETY: an anonymous mapping with no address hint; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // Anonymous mappings are zero-filled and page-aligned, which suits AtomicU64; mmap
        // never returns null on success.
        let cells = std::ptr::NonNull::new(ptr.cast::<std::sync::atomic::AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedCells { cells, len })
    }

    /// Every cell.
    pub(crate) fn cells(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: `cells` points to a mapping of exactly `len * 8` bytes (the product checked in
        // `new`), zero-filled and page-aligned, so `len` initialised AtomicU64s that live as
        // long as `self`; atomics may be shared and mutated through `&`.
        unsafe { std::slice::from_raw_parts(self.cells.as_ptr(), self.len) }
    }
}

impl Drop for SharedCells {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; nothing borrows it past `self`.
        unsafe {
            libc::munmap(
                self.cells.as_ptr().cast(),
                self.len * std::mem::size_of::<u64>(),
            );
        }
    }
}
