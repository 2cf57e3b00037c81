//! The reference driver: one thread, one poller, many [`Conn`](crate::Conn)s over nonblocking
//! sockets. It is the event loop of the `stud` daemon's workers and of libstud's server.
//!
//! ```no_run
//! use std::sync::Arc;
//! use stud_core::driver::{Options, Server};
//! use stud_core::Config;
//!
//! let config = Arc::new(Config::builder().pem_file("site.pem").build()?);
//! let options = Options { backends: vec!["127.0.0.1:8000".parse()?], ..Options::default() };
//! let mut server = Server::bind(config, "0.0.0.0:443".parse()?, options)?;
//! let stop = server.stop_handle(); // stop.stop() from another thread ends run() gracefully
//! # let _ = stop;
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
//!   most: never a spin, never a flood.
//! - **Connections**: at most four reads per socket and a bounded number of writes, so one fast
//!   connection cannot starve the others. Reads go through one scratch buffer shared by every
//!   connection; writes go from the `Conn` straight into the socket.
//!
//! Sockets are registered level-triggered: data left unread because of the per-wake bound is
//! reported again on the next wake without any bookkeeping, and a socket is watched only for what
//! its `Conn` wants ([`Conn::interest`](crate::Conn::interest)). A socket that wants nothing is
//! removed from the poller, because epoll reports hang-ups even with an empty interest set and a
//! level-triggered hang-up nobody reads would wake the loop forever.

mod ratelimit;
mod server;
mod session;
mod sockets;
mod stop;
mod timers;

use std::net::SocketAddr;
use std::time::Duration;

pub use server::Server;
pub use std::os::fd::RawFd;
pub use stop::StopHandle;

/// Driver options (all have defaults via [`Default`]).
#[derive(Clone, Debug)]
pub struct Options {
    /// Backend addresses, tried in order; at least one. A connect that fails (refused,
    /// unreachable) moves on at once, one that gets no answer after an equal share of the time
    /// left before the connect deadline (the last address gets all of it).
    pub backends: Vec<SocketAddr>,
    /// SO_KEEPALIVE idle time on both sockets (None = off).
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backends: vec![SocketAddr::from(([127, 0, 0, 1], 8000))],
            keepalive: Some(Duration::from_secs(3600)),
            accept_batch: 64,
            drain_timeout: Duration::from_secs(30),
            max_connections: None,
            scratch_size: 64 * 1024,
            heartbeat: None,
        }
    }
}

/// What the driver reports, for logs and metrics. Every method has a no-op default.
///
/// The methods run on the driver's thread, inside its loop: keep them short.
pub trait Observer: Send {
    /// A client completed its TLS handshake.
    fn handshake(&mut self, peer: SocketAddr, info: &crate::HandshakeInfo) {
        let _ = (peer, info);
    }

    /// A connection ended; `stats` holds its totals.
    fn closed(&mut self, peer: SocketAddr, reason: &crate::CloseReason, stats: &ConnStats) {
        let _ = (peer, reason, stats);
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
