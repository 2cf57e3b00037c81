//! Socket plumbing: listening, tuning, nonblocking connects (TCP or UNIX, optionally from a
//! source address), signal-free sends, and the poller registration. The driver's `unsafe` lives
//! here (one socket option socket2 does not offer) and in the poller.

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::FromRawFd;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};

use super::backend::Destination;
use super::poller::{Event, Poller};

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

/// TCP_NODELAY (stud once added 40 ms to every reply by leaving Nagle on) and keepalive, for a
/// TCP socket.
///
/// Failures are ignored: they happen only on a socket the peer already reset, which the first
/// read or write reports properly.
///
/// On a listener whose accepted sockets inherit them ([`ACCEPTED_INHERIT_TUNING`]), the
/// options reach every connection it accepts; the result says whether all of them were set.
pub(super) fn tune<S: AsFd>(stream: &S, keepalive: Option<Duration>) -> bool {
    let socket = SockRef::from(stream);
    let mut ok = socket.set_tcp_nodelay(true).is_ok();
    if let Some(idle) = keepalive {
        ok &= socket
            .set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))
            .is_ok();
    }
    ok
}

/// Whether sockets accepted on a listener start with the listener's TCP_NODELAY and keepalive
/// settings. Linux copies a listening socket's options (TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE
/// among them) into every connection it accepts, so the driver [`tune`]s each listener once
/// instead of each connection; elsewhere each accepted socket is tuned, as before.
pub(super) const ACCEPTED_INHERIT_TUNING: bool =
    cfg!(any(target_os = "linux", target_os = "android"));

/// Asks the kernel to hand over a connection only once its first bytes have arrived
/// (`TCP_DEFER_ACCEPT`, Linux and Android), waiting at most about `wait` for them; a connection
/// that stays silent that long is handed over anyway, and the handshake deadline applies as usual.
///
/// A TLS client speaks first, so the accept and the ClientHello become one wake instead of two,
/// and a connection that never sends a byte (a port scan, a TCP-only health check) costs no
/// socket. Returns whether the option is set (false elsewhere, or on failure: the listener works
/// as before).
pub(super) fn defer_accept(listener: &TcpListener, wait: Duration) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // socket2 has no TCP_DEFER_ACCEPT.
        let secs = libc::c_int::try_from(wait.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
        setsockopt_int(listener, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs).is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (listener, wait);
        false
    }
}

/// Accepts one connection as a nonblocking, close-on-exec socket: with `accept4(2)` in one
/// call where it exists, with accept then `set_nonblocking` elsewhere.
pub(super) fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[allow(unsafe_code)] // std and socket2 have no accept with SOCK_NONBLOCK; see SAFETY.
        // SAFETY: try_init hands the closure a zeroed sockaddr_storage and its length, which
        // accept4 fills in (never past `len`); the listener's fd is open for the call, and a
        // non-negative result is a new descriptor that nothing else owns.
        let (fd, addr) = unsafe {
            SockAddr::try_init(|storage, len| {
                let fd = libc::accept4(
                    listener.as_raw_fd(),
                    storage.cast(),
                    len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                );
                if fd < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(fd)
                }
            })
        }?;
        #[allow(unsafe_code)] // Taking ownership of the descriptor accept4 returned.
        // SAFETY: `fd` was just returned by accept4 and is owned by nobody else.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        // A TCP listener's peers are IPv4 or IPv6: anything else is not a connection to serve.
        let peer = addr
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "accepted a non-IP peer"))?;
        Ok((stream, peer))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (stream, peer) = listener.accept()?;
        stream.set_nonblocking(true)?;
        Ok((stream, peer))
    }
}

/// The local address of every connection accepted on `listener`, when it is known without a
/// `getsockname` per connection: the listener is bound to one address (not `0.0.0.0` or `::`)
/// and is not transparent (`IP_TRANSPARENT` lets it accept connections addressed elsewhere, as
/// TPROXY redirects them). `None`: ask each accepted socket. Known only on Linux and Android,
/// where transparency can be read back.
pub(super) fn fixed_local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    let addr = listener.local_addr().ok()?;
    if addr.ip().is_unspecified() || !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let socket = SockRef::from(listener);
        let transparent = match addr {
            SocketAddr::V4(_) => socket.ip_transparent_v4(),
            SocketAddr::V6(_) => socket.ip_transparent_v6(),
        };
        // Unreadable counts as transparent: asking per connection is always right.
        if transparent.unwrap_or(true) {
            return None;
        }
    }
    Some(addr)
}

/// A stream socket type that is nonblocking from `socket(2)` on (SOCK_NONBLOCK) where the
/// system offers it: one call instead of two `fcntl`s per backend connection.
#[cfg(any(target_os = "linux", target_os = "android"))]
const STREAM_NONBLOCKING: Type = Type::STREAM.nonblocking();
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const STREAM_NONBLOCKING: Type = Type::STREAM;

/// How a nonblocking connect began.
#[derive(Debug)]
pub(super) enum ConnectStart {
    /// Connected at once (possible on loopback on some systems; the rule for UNIX sockets).
    Connected(Socket),
    /// In progress: wait for the socket to become writable, then [`finish_connect`].
    Pending(Socket),
    /// Failed at once (refused, unreachable, no socket, no such path, source not bindable).
    Failed(io::Error),
}

/// Opens a nonblocking, close-on-exec socket, binds it to `source` if given, and starts
/// connecting it to `dest`. TCP sockets get [`tune`]d; UNIX ones have nothing to tune.
pub(super) fn start_connect(
    dest: &Destination,
    source: Option<SocketAddr>,
    keepalive: Option<Duration>,
) -> ConnectStart {
    // socket2 makes every socket close-on-exec.
    let protocol = dest.is_tcp().then_some(Protocol::TCP);
    let socket = match Socket::new(dest.sockaddr.domain(), STREAM_NONBLOCKING, protocol) {
        Ok(s) => s,
        Err(e) => return ConnectStart::Failed(e),
    };
    // Where the socket cannot be made nonblocking at birth (SOCK_NONBLOCK), one more call.
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        if let Err(e) = socket.set_nonblocking(true) {
            return ConnectStart::Failed(e);
        }
    }
    if let Some(source) = source {
        if let Err(e) = bind_source(&socket, source) {
            return ConnectStart::Failed(io::Error::new(
                e.kind(),
                format!("cannot bind source address {}: {e}", source.ip()),
            ));
        }
    }
    let result = socket.connect(&dest.sockaddr);
    if dest.is_tcp() {
        tune(&socket, keepalive);
    }
    match result {
        Ok(()) => match finish_connect(&socket) {
            Ok(()) => ConnectStart::Connected(socket),
            Err(e) => ConnectStart::Failed(e),
        },
        // A UNIX connect completes or fails at once; EAGAIN means the listen queue is full
        // (TCP would retransmit its SYN instead), and there is nothing to wait for.
        Err(e) if !dest.is_tcp() && e.kind() == io::ErrorKind::WouldBlock => {
            ConnectStart::Failed(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the backend's listen queue is full",
            ))
        }
        Err(e) if !dest.is_tcp() || connect_failed_at_once(&e) => ConnectStart::Failed(e),
        // A loopback connect has usually finished inside connect(2): if so, the socket is used
        // at once, without waiting for it to become writable.
        Err(_) if dest.is_loopback() => match connected_at_once(&socket) {
            None => ConnectStart::Pending(socket),
            Some(Ok(())) => ConnectStart::Connected(socket),
            Some(Err(e)) => ConnectStart::Failed(e),
        },
        // EINPROGRESS (std has no stable name for it) or anything unexpected: the outcome is
        // read from the socket once it is writable, which is right in every case.
        Err(_) => ConnectStart::Pending(socket),
    }
}

/// Whether a TCP connect that returned `EINPROGRESS` has completed all the same, as one to a
/// loopback address usually has (the kernel runs the whole handshake within connect(2) when
/// the listener is on this host and its queue has room). `None`: still in progress, wait for
/// writability as usual. `Some(Err)`: it connected to itself (see [`refuse_self_connect`]).
///
/// This saves, per loopback backend connection, a wake, the `SO_ERROR` read and one
/// `epoll_ctl` (the registration for writability and its change to reading); a connect still
/// in progress costs one `getpeername` more.
fn connected_at_once(socket: &Socket) -> Option<io::Result<()>> {
    match refuse_self_connect(socket) {
        Ok(()) => Some(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        // Refused as a self-connect; anything else is for the usual path to find out.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Some(Err(e)),
        Err(_) => None,
    }
}

/// Binds `socket` to `source` (port 0) for an outgoing connection. On Linux with
/// `IP_BIND_ADDRESS_NO_PORT`, the port is chosen at connect time for the 4-tuple, so each source
/// address offers the whole ephemeral range to every destination, instead of one range shared
/// by all of them (what binding port 0 alone would reserve).
fn bind_source(socket: &Socket, source: SocketAddr) -> io::Result<()> {
    set_bind_address_no_port(socket)?;
    socket.bind(&SockAddr::from(source))
}

/// Whether `source` can be bound as a source address (it is an address of this host): binds a
/// throwaway socket to it, with no port reserved.
pub(super) fn check_source(source: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(
        Domain::for_address(source),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    bind_source(&socket, source)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    // socket2 has no setter for this option.
    setsockopt_int(socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// Sets an integer socket option that socket2 has no setter for.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)] // see SAFETY below.
fn setsockopt_int<S: AsRawFd>(
    socket: &S,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is a valid open socket borrowed for the call, and the option value is a
    // live `c_int` whose size is passed with it; setsockopt reads no more than that.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere binding port 0 reserves a port at bind time, as it always did.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_bind_address_no_port(_socket: &Socket) -> io::Result<()> {
    Ok(())
}

/// Errors with which a TCP connect(2) fails for good before any handshake.
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
pub(super) fn finish_connect(socket: &Socket) -> io::Result<()> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    // Writable with no pending error yet not connected: the attempt failed and its error was
    // already consumed. It cannot be "still in progress": level-triggered epoll reports
    // writability only after the handshake ends.
    refuse_self_connect(socket)
}

/// Fails a connection whose two ends are the same address and port. TCP's simultaneous open lets
/// a connect to a loopback port that nothing listens on succeed when the kernel happens to pick
/// that very port as the local one; the "backend" is then the socket itself, which would echo the
/// client-address header back and never answer. Such a connect counts as refused.
///
/// This is also the check that the socket is connected at all (`peer_addr` fails with
/// `ENOTCONN` otherwise). Any address of this host can meet itself this way, not only loopback
/// ones, so the local address is always compared: one `getsockname` per TCP backend connect.
/// A UNIX socket cannot meet itself; for it only the connection is checked.
fn refuse_self_connect(socket: &Socket) -> io::Result<()> {
    let Some(peer) = socket.peer_addr()?.as_socket() else {
        return Ok(());
    };
    if socket.local_addr()?.as_socket() == Some(peer) {
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
pub(super) struct SendNoSignal<'a>(pub(super) SockRef<'a>);

impl Write for SendNoSignal<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_with_flags(buf, SEND_FLAGS)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored_with_flags(bufs, SEND_FLAGS)
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
                poller.modify(source, Event::new(key, read, write))?;
            }
            Some(_) => poller.add(source, Event::new(key, read, write))?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::BackendAddr;
    use std::io::Read as _;

    fn tcp(addr: SocketAddr) -> Destination {
        Destination {
            addr: BackendAddr::Tcp(addr),
            sockaddr: addr.into(),
        }
    }

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

    /// Accepts from a nonblocking listener within `wait` (the socket and its peer), or None.
    fn accept_within(listener: &TcpListener, wait: Duration) -> Option<(TcpStream, SocketAddr)> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match accept_nonblocking(listener) {
                Ok(accepted) => return Some(accepted),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    #[test]
    fn a_deferred_listener_hands_over_a_connection_with_its_first_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let set = defer_accept(&listener, Duration::from_secs(5));
        assert_eq!(set, cfg!(any(target_os = "linux", target_os = "android")));
        let addr = listener.local_addr().expect("addr");
        let mut silent = TcpStream::connect(addr).expect("connect");
        if set {
            // Connected on the client's side, but not handed over while it says nothing.
            assert!(accept_within(&listener, Duration::from_millis(300)).is_none());
        }
        silent.write_all(b"\x16").expect("write");
        let (stream, _) = accept_within(&listener, Duration::from_secs(5)).expect("accepted");
        let mut byte = [0u8; 1];
        // Handed over with its first byte already readable.
        assert_eq!((&stream).read(&mut byte).expect("read"), 1);
        assert_eq!(byte, [0x16]);
    }

    #[test]
    fn accepted_sockets_are_nonblocking_and_inherit_the_listeners_tuning() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        assert!(tune(&listener, Some(Duration::from_secs(600))));
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (stream, peer) =
            accept_within(&listener, Duration::from_secs(5)).expect("nothing accepted");
        assert_eq!(Some(peer), client.local_addr().ok());
        let socket = SockRef::from(&stream);
        assert!(socket.nonblocking().expect("flags"), "accepted nonblocking");
        if ACCEPTED_INHERIT_TUNING {
            // Read back on the accepted socket, which the driver no longer tunes itself.
            assert!(socket.tcp_nodelay().expect("nodelay"));
            assert!(socket.keepalive().expect("keepalive"));
            #[cfg(target_os = "linux")]
            assert_eq!(
                socket.tcp_keepalive_time().expect("idle"),
                Duration::from_secs(600)
            );
        }
        // Nothing queued: the accept fails at once instead of blocking.
        let e = accept_nonblocking(&listener).expect_err("empty queue");
        assert_eq!(classify_accept_error(&e), AcceptFailure::Empty);
    }

    #[test]
    fn only_a_listener_on_one_address_tells_its_connections_local_address() {
        let wildcard = TcpListener::bind("0.0.0.0:0").expect("bind");
        assert_eq!(
            fixed_local_addr(&wildcard),
            None,
            "0.0.0.0: ask per connection"
        );
        let one = TcpListener::bind("127.0.0.1:0").expect("bind");
        let expected = cfg!(any(target_os = "linux", target_os = "android"))
            .then(|| one.local_addr().expect("addr"));
        assert_eq!(fixed_local_addr(&one), expected);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // IP_TRANSPARENT needs CAP_NET_ADMIN; without it there is nothing to check.
            let socket =
                Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
            if socket.set_ip_transparent_v4(true).is_ok() {
                let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
                socket.bind(&any.into()).expect("bind");
                socket.listen(1).expect("listen");
                let transparent: TcpListener = socket.into();
                assert_eq!(
                    fixed_local_addr(&transparent),
                    None,
                    "a transparent listener accepts connections addressed elsewhere"
                );
            }
        }
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
        assert_eq!(socket.local_addr().ok(), socket.peer_addr().ok());
        let e = finish_connect(&socket).expect_err("a self-connect is no backend");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        finish_connect(&Socket::from(other)).expect("an ordinary connection passes");
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
        let stream = match start_connect(&tcp(port), None, None) {
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

    #[test]
    fn a_loopback_connect_finished_inside_connect_is_used_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut at_once = 0;
        for _ in 0..20 {
            match start_connect(&tcp(addr), None, None) {
                ConnectStart::Connected(s) => {
                    at_once += 1;
                    assert_eq!(s.peer_addr().ok().and_then(|a| a.as_socket()), Some(addr));
                    assert!(s.nonblocking().expect("flags"));
                }
                // The kernel may finish the handshake later (softirqs deferred under load).
                ConnectStart::Pending(_) => {}
                ConnectStart::Failed(e) => panic!("a listening port refused: {e}"),
            }
            let _ = listener.accept();
        }
        #[cfg(target_os = "linux")]
        assert!(at_once > 0, "no loopback connect was complete on return");
        let _ = at_once;
    }

    #[test]
    fn a_source_address_is_bound_without_reserving_a_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let source: SocketAddr = "127.0.0.2:0".parse().expect("address");
        bind_source(&socket, source).expect("bind the source");
        let bound = socket.local_addr().ok().and_then(|a| a.as_socket());
        #[cfg(target_os = "linux")]
        assert_eq!(
            bound,
            Some(source),
            "IP_BIND_ADDRESS_NO_PORT leaves the port to connect time"
        );
        socket
            .connect(&listener.local_addr().expect("addr").into())
            .expect("connect");
        let local = socket.local_addr().ok().and_then(|a| a.as_socket());
        assert_eq!(local.map(|a| a.ip()), Some(source.ip()));
        assert_ne!(local.map(|a| a.port()), Some(0));
    }

    #[test]
    fn unix_connects_complete_at_once_or_fail_at_once() {
        let dir = std::env::temp_dir().join(format!("stud-sockets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("backend.sock");
        let _ = std::fs::remove_file(&path);
        let dest = |p: &std::path::Path| Destination {
            addr: BackendAddr::Unix(p.to_owned()),
            sockaddr: SockAddr::unix(p).expect("path"),
        };
        match start_connect(&dest(&path), None, None) {
            ConnectStart::Failed(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("a missing path must fail at once: {other:?}"),
        }
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        match start_connect(&dest(&path), None, None) {
            ConnectStart::Connected(s) => assert!(s.nonblocking().expect("flags")),
            other => panic!("a listening path must connect at once: {other:?}"),
        }
        drop(listener);
        // The file stays, nothing listens: refused.
        match start_connect(&dest(&path), None, None) {
            ConnectStart::Failed(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            other => panic!("a dead socket file must fail at once: {other:?}"),
        }
        // A listener that never accepts, with the shortest queue: once it is full, a connect
        // fails at once rather than waiting (TCP would keep retransmitting its SYN).
        let _ = std::fs::remove_file(&path);
        let full = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
        full.bind(&SockAddr::unix(&path).expect("path"))
            .expect("bind");
        full.listen(0).expect("listen");
        let mut queued = Vec::new();
        let e = loop {
            assert!(queued.len() < 16, "the listen queue never filled");
            match start_connect(&dest(&path), None, None) {
                ConnectStart::Connected(s) => queued.push(s),
                ConnectStart::Failed(e) => break e,
                ConnectStart::Pending(_) => panic!("a UNIX connect is never pending"),
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(e.to_string().contains("listen queue is full"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
