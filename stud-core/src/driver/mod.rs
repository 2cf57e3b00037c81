//! The reference driver: one thread, one poller, many [`Conn`](crate::Conn)s over nonblocking
//! sockets. It is the event loop of the `stud` daemon's workers and of libstud's server.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stud_core::driver::{BackendAddr, Options, Server};
//! use stud_core::Config;
//!
//! let config = Arc::new(Config::builder().pem_file("site.pem").build()?);
//! let backend: BackendAddr = "127.0.0.1:8000".parse()?;
//! let options = Options::new([backend]).with_max_connections(Some(10_000));
//! let mut server = Server::bind(config, "0.0.0.0:443".parse()?, options)?;
//! let stop = server.stop_handle(); // stop.stop() from another thread ends run() gracefully
//! # let _ = stop;
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each listener may serve its own configuration (certificates, protocols, SNI policy): pair them
//! as [`Frontend`]s and use [`Server::with_frontends`]. A backend is a TCP address or the path of
//! a UNIX socket ([`BackendAddr`]).
//!
//! # Backend connections
//!
//! The connect is nonblocking and starts only once the client's handshake is done. A connect
//! to a loopback address has usually completed by the time connect(2) returns; the driver checks
//! (one `getpeername`) and uses such a socket at once instead of waiting for it to turn writable. With several
//! backend addresses, each new connection starts at the next one (round-robin); an address that
//! refuses, or does not answer within its share of the connect timeout, passes the connection on
//! to the following one, and when all have failed the client is closed with
//! [`CloseReason::BackendConnectFailed`](crate::CloseReason::BackendConnectFailed).
//!
//! TCP backend sockets get TCP_NODELAY and the keepalive of [`Options::keepalive`]; UNIX ones
//! need neither. With [`Options::source_addrs`], each TCP connect binds the next source address
//! of its backend's family, with `IP_BIND_ADDRESS_NO_PORT` on Linux so that the kernel still picks
//! the port per destination: each source address adds a whole ephemeral port range (one address
//! alone caps a backend at about 28,000 concurrent connections with Linux's default range).
//!
//! A client that resets its connection (rather than ending it) has its backend connection
//! reset too (SO_LINGER 0 on close): the backend hears an abort, not an orderly end it could
//! take for a complete request, and the kernel closes the pair with one segment instead of a FIN
//! exchange and a TIME_WAIT entry.
//!
//! The client-address header (`write-ip`, PROXY v1/v2) always describes the client's TCP
//! connection — its source and the frontend's local address — whatever the backend's transport.
//!
//! # The poller
//!
//! On Linux and Android the driver calls epoll itself: one `epoll_wait` per wake, with the
//! timeout rounded up to a millisecond so that a wake never comes before the deadline it waits
//! for. Elsewhere the `polling` crate (kqueue, event ports, poll) stands behind the same
//! interface. `polling`'s epoll backend made five system calls per wait (a timerfd and an eventfd
//! re-armed around every `epoll_pwait`), which was 27 of the 70 system calls of a connection.
//!
//! # Accepting
//!
//! An accepted socket is nonblocking and close-on-exec from `accept4` on. On Linux and Android
//! the listener carries TCP_NODELAY and the keepalive of [`Options::keepalive`], set once when
//! the server is made, and every accepted socket inherits them; elsewhere each accepted socket
//! is tuned. The accepted socket's local address (the PROXY header's destination) is the
//! listener's when the listener is bound to one address and is not transparent; only a wildcard
//! (or transparent) listener asks each socket with `getsockname`.
//!
//! # How one wake is spent
//!
//! [`Server::run`] waits on the poller until a socket is ready or the nearest deadline passes, then:
//!
//! - **Timers** (a binary heap with lazy deletion, fed by [`Conn::poll_timeout`](crate::Conn::poll_timeout)):
//!   every due connection gets [`handle_timeout`](crate::Conn::handle_timeout).
//! - **Stop requests** from the [`StopHandle`] pipe.
//! - **Listeners**: at most [`Options::accept_batch`] accepts each. Running out of file descriptors
//!   or memory pauses accepting for a backoff (100 ms doubling to 1 s) with one warning a second at
//!   most: never a spin, never a flood. An [`AcceptGate`] may hold accepting off too (the daemon
//!   uses one to spread connections evenly over workers that share a listening socket).
//! - **Connections**: at most four reads per socket and a bounded number of writes, so one fast
//!   connection cannot starve the others. Reads go through one scratch buffer shared by every
//!   connection; writes go from the `Conn` straight into the socket.
//!
//! Sockets are registered level-triggered: data left unread because of the per-wake bound is
//! reported again on the next wake without any bookkeeping, and a socket is watched only for what
//! its `Conn` wants ([`Conn::interest`](crate::Conn::interest)). A socket that wants nothing is
//! removed from the poller, because epoll reports hang-ups even with an empty interest set and a
//! level-triggered hang-up nobody reads would wake the loop forever.

mod backend;
mod frontend;
mod gate;
mod poller;
mod ratelimit;
mod server;
mod session;
mod sockets;
mod stop;
mod timers;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use backend::{BackendAddr, InvalidBackendAddr};
pub use frontend::Frontend;
pub use gate::{AcceptGate, Verdict};
pub use ratelimit::RateLimit;
pub use server::Server;
pub use std::os::fd::RawFd;
pub use stop::StopHandle;

/// Driver options: [`Options::new`] with the backend addresses, then the `with_*` setters for
/// the rest (or assign the public fields). Every field has a default ([`Default`] points at
/// `127.0.0.1:8000`). New options are added without breaking callers, so the struct cannot be
/// built with a literal outside this crate.
///
/// ```
/// use std::time::Duration;
/// use stud_core::driver::{BackendAddr, Options};
///
/// let options = Options::new(["/run/varnish.sock".parse::<BackendAddr>()?])
///     .with_keepalive(None)
///     .with_drain_timeout(Duration::from_secs(5));
/// assert_eq!(options.backends[0].to_string(), "/run/varnish.sock");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Backend addresses; at least one. Each new connection starts at the next address in turn.
    /// A connect that fails (refused, unreachable, no such socket) moves on to the following
    /// address at once, one that gets no answer after an equal share of the time left before the
    /// connect deadline (the last address tried gets all of it).
    pub backends: Vec<BackendAddr>,
    /// Local addresses to bind TCP backend connections from, used in turn (each connect takes
    /// the next one of its backend's family). Empty: the kernel chooses, as for any outgoing
    /// connection. Every address must belong to this host, and every TCP backend must have one
    /// of its family; [`Server::with_frontends`] checks both.
    pub source_addrs: Vec<IpAddr>,
    /// SO_KEEPALIVE idle time on both TCP sockets (None = off).
    pub keepalive: Option<Duration>,
    /// Max accepts per wake per listener.
    pub accept_batch: usize,
    /// Graceful stop: how long in-flight connections may drain before being aborted.
    pub drain_timeout: Duration,
    /// Stop accepting while this many connections are open (None = only fd limits).
    pub max_connections: Option<usize>,
    /// Size of the one scratch read buffer shared by all connections of this driver.
    pub scratch_size: usize,
    /// Call [`Observer::heartbeat`] at least this often while running (None = never): a sign of
    /// life from inside the loop, for a supervisor that replaces a wedged worker.
    pub heartbeat: Option<Duration>,
    /// On listeners whose clients speak TLS (not client mode, where the plaintext side may wait
    /// for the backend to speak first), take a connection from the kernel only once its first
    /// bytes have arrived, or after about this long without any (`TCP_DEFER_ACCEPT`; Linux and
    /// Android, ignored elsewhere). The accept and the first read then share one wake, and a
    /// connection that never sends (a port scan, a TCP-only health check) never costs a socket;
    /// a silent client's handshake deadline starts once it is handed over. None: accept at once.
    pub defer_accept: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backends: vec![BackendAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8000)))],
            source_addrs: Vec::new(),
            keepalive: Some(Duration::from_secs(3600)),
            accept_batch: 64,
            drain_timeout: Duration::from_secs(30),
            max_connections: None,
            scratch_size: 64 * 1024,
            heartbeat: None,
            defer_accept: Some(Duration::from_secs(1)),
        }
    }
}

impl Options {
    /// Default options with these backend addresses (anything that converts into a
    /// [`BackendAddr`]: a `SocketAddr`, a `PathBuf`, or a `BackendAddr`).
    pub fn new<A: Into<BackendAddr>>(backends: impl IntoIterator<Item = A>) -> Options {
        Options {
            backends: backends.into_iter().map(Into::into).collect(),
            ..Options::default()
        }
    }

    /// Checks what [`Server::with_frontends`] checks of these options — at least one backend,
    /// every backend path usable as a socket address, every source address bindable on this
    /// host, a source address for every TCP backend's family — without making a server. A daemon
    /// calls it before forking workers (so that a mistake stops it at start instead of failing
    /// every worker), and for a configuration test. The error says what to fix.
    pub fn validate(&self) -> std::io::Result<()> {
        backend::Endpoints::new(&self.backends, &self.source_addrs).map(drop)
    }

    /// Sets [`Options::source_addrs`].
    #[must_use]
    pub fn with_source_addrs(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Options {
        self.source_addrs = addrs.into_iter().collect();
        self
    }

    /// Sets [`Options::keepalive`].
    #[must_use]
    pub fn with_keepalive(mut self, idle: Option<Duration>) -> Options {
        self.keepalive = idle;
        self
    }

    /// Sets [`Options::accept_batch`].
    #[must_use]
    pub fn with_accept_batch(mut self, batch: usize) -> Options {
        self.accept_batch = batch;
        self
    }

    /// Sets [`Options::drain_timeout`].
    #[must_use]
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Options {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`Options::max_connections`].
    #[must_use]
    pub fn with_max_connections(mut self, max: Option<usize>) -> Options {
        self.max_connections = max;
        self
    }

    /// Sets [`Options::scratch_size`].
    #[must_use]
    pub fn with_scratch_size(mut self, bytes: usize) -> Options {
        self.scratch_size = bytes;
        self
    }

    /// Sets [`Options::heartbeat`].
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Option<Duration>) -> Options {
        self.heartbeat = interval;
        self
    }

    /// Sets [`Options::defer_accept`].
    #[must_use]
    pub fn with_defer_accept(mut self, wait: Option<Duration>) -> Options {
        self.defer_accept = wait;
        self
    }
}

/// What the driver reports, for logs and metrics. Every method has a no-op default.
///
/// The methods run on the driver's thread, inside its loop: keep them short.
pub trait Observer: Send {
    /// A client connection was accepted and its session started. Every accepted connection is
    /// later reported once by [`Observer::closed`], so accepted minus closed is the number open.
    fn accepted(&mut self, peer: SocketAddr) {
        let _ = peer;
    }

    /// A client completed its TLS handshake, `elapsed` after its connection was accepted.
    fn handshake(&mut self, peer: SocketAddr, info: &crate::HandshakeInfo, elapsed: Duration) {
        let _ = (peer, info, elapsed);
    }

    /// A connection ended; `stats` holds its totals.
    fn closed(&mut self, peer: SocketAddr, reason: &crate::CloseReason, stats: &ConnStats) {
        let _ = (peer, reason, stats);
    }

    /// Accepting stopped for `pause` because the process or the system ran out of file
    /// descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM). Called once per pause, unthrottled.
    fn accept_paused(&mut self, pause: Duration) {
        let _ = pause;
    }

    /// Rare operational problems (accept failing with EMFILE, a backend refusing). The driver already
    /// rate-limits these to at most one per second per kind and says how many were suppressed.
    fn warning(&mut self, message: &str) {
        let _ = message;
    }

    /// The loop is alive: called once per [`Options::heartbeat`] interval (or a little later,
    /// never much earlier), from inside the loop between wakes, also while draining.
    fn heartbeat(&mut self) {}
}

/// Per-connection totals reported on close.
///
/// Client counts are bytes on the client's socket (TLS records, handshake included); backend
/// counts are bytes on the backend's socket (plaintext, client-address header included).
/// More totals may come in a minor release: read it, the driver makes it (tests start from
/// `ConnStats::default()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnStats {
    /// Bytes read from the client's socket.
    pub bytes_from_client: u64,
    /// Bytes written to the client's socket.
    pub bytes_to_client: u64,
    /// How long the connection lived, from accept to close.
    pub duration: Duration,
    /// Bytes read from the backend's socket.
    pub bytes_from_backend: u64,
    /// Bytes written to the backend's socket.
    pub bytes_to_backend: u64,
}

/// The observer used until [`Server::set_observer`] is called: reports go nowhere.
#[derive(Debug, Default)]
struct NoObserver;

impl Observer for NoObserver {}
