//! A worker process: drops privileges (`-r`, `-g`, `-u`) the moment it exists, then runs one
//! driver event loop over the listeners it was given, until SIGTERM (graceful drain) or its
//! parent's death. A worker that cannot drop privileges exits rather than serve as root.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stud_core::driver::{ConnStats, Frontend, Observer, Options, Server};
use stud_core::{CloseReason, Config, HandshakeInfo};

use crate::log::{self, RateLimit};
use crate::metrics::WorkerCounters;
use crate::setup::{self, Privileges};
use crate::sys;

/// Most handshake-failure lines a worker writes per second.
const HANDSHAKE_LINES_PER_SECOND: u32 = 5;

/// Turns driver reports into log lines: handshake failures rate-limited, warnings as they come
/// (the driver already limits those).
#[derive(Debug)]
struct LogObserver {
    handshake_failures: RateLimit,
    /// Where this worker's loop shows it is alive (with the watchdog on).
    heartbeat: Option<Heartbeat>,
    /// Log every finished connection (`--log-conns`).
    log_conns: bool,
    /// This worker's block of the metrics board.
    counters: Option<WorkerCounters>,
}

/// A worker's cell on the board the parent's watchdog reads.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    pub(crate) board: std::sync::Arc<sys::Heartbeats>,
    pub(crate) cell: usize,
}

impl Observer for LogObserver {
    fn accepted(&mut self, _peer: SocketAddr) {
        if let Some(c) = &self.counters {
            c.accepted();
        }
    }

    fn handshake(&mut self, _peer: SocketAddr, info: &HandshakeInfo, elapsed: Duration) {
        if let Some(c) = &self.counters {
            c.handshake(info, elapsed);
        }
    }

    fn accept_paused(&mut self, _pause: Duration) {
        if let Some(c) = &self.counters {
            c.accept_paused();
        }
    }

    fn closed(&mut self, peer: SocketAddr, reason: &CloseReason, stats: &ConnStats) {
        if let Some(c) = &self.counters {
            c.closed(reason, stats);
        }
        if self.log_conns && !reason.is_handshake_failure() {
            // Connections that got past the handshake cost their client a handshake each, so
            // these lines are not throttled; handshake failures, which cost a client nothing,
            // keep their rate-limited line below.
            log::info(&format!(
                "connection {peer} closed: {reason}, {:.3} s, {} B from the client, {} B to it, {} B to the backend, {} B from it",
                stats.duration.as_secs_f64(),
                stats.bytes_from_client,
                stats.bytes_to_client,
                stats.bytes_to_backend,
                stats.bytes_from_backend
            ));
            return;
        }
        if !reason.is_handshake_failure() {
            return;
        }
        if let Some(suppressed) = self.handshake_failures.admit(Instant::now()) {
            if suppressed > 0 {
                log::info(&format!(
                    "suppressed {suppressed} handshake failure messages"
                ));
            }
            log::info(&format!("handshake with {peer} failed: {reason}"));
        }
    }

    fn warning(&mut self, message: &str) {
        log::warning(message);
    }

    fn heartbeat(&mut self) {
        if let Some(h) = &self.heartbeat {
            h.board.beat(h.cell, sys::monotonic_millis());
        }
    }
}

impl Drop for LogObserver {
    fn drop(&mut self) {
        let suppressed = self.handshake_failures.take_suppressed();
        if suppressed > 0 {
            log::info(&format!(
                "suppressed {suppressed} handshake failure messages"
            ));
        }
    }
}

/// Everything a worker needs, prepared by the parent before fork.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSetup {
    /// One configuration per frontend, in the order of the listener groups.
    pub(crate) configs: Vec<Arc<Config>>,
    pub(crate) options: Options,
    /// One log line per finished connection.
    pub(crate) log_conns: bool,
    /// When each certificate of this configuration expires (for the metrics).
    pub(crate) expiry: Vec<crate::metrics::Expiry>,
}

/// Runs a worker in a freshly forked child and returns its exit status.
///
/// `parent` is the pid of the supervisor that forked us; `mask` is the signal mask to restore
/// once our own handlers are in place (the parent blocked everything around fork); `privileges`
/// is what to become before anything else; `counters` is this worker's block of the metrics
/// board.
pub(crate) fn run(
    setup: WorkerSetup,
    listeners: Vec<Vec<TcpListener>>,
    parent: i32,
    mask: &sys::SignalMask,
    heartbeat: Option<Heartbeat>,
    privileges: &Privileges,
    counters: Option<WorkerCounters>,
) -> i32 {
    // First, while no client byte has been read. Before prctl too: a change of credentials
    // clears the parent-death signal.
    if let Err(e) = setup::drop_privileges(privileges) {
        log::error(&format!(
            "worker cannot drop privileges, exiting rather than serving as root: {e}"
        ));
        return 1;
    }
    // Die with the parent; then close the race where it died before prctl took effect.
    if let Err(e) = sys::die_with_parent() {
        log::error(&format!("cannot ask to die with the parent: {e}"));
        return 1;
    }
    if sys::parent_pid() != parent {
        return 0;
    }
    // Each frontend's sockets serve that frontend's certificates and TLS policy.
    let frontends = listeners
        .into_iter()
        .zip(&setup.configs)
        .flat_map(|(group, config)| {
            group
                .into_iter()
                .map(|listener| Frontend::new(listener, Arc::clone(config)))
        })
        .collect();
    let mut server = match Server::with_frontends(frontends, setup.options) {
        Ok(server) => server,
        Err(e) => {
            log::error(&format!("cannot start the event loop: {e}"));
            return 1;
        }
    };
    server.set_observer(Box::new(LogObserver {
        handshake_failures: RateLimit::new(HANDSHAKE_LINES_PER_SECOND, Instant::now()),
        heartbeat,
        log_conns: setup.log_conns,
        counters,
    }));
    let stop = server.stop_handle();
    if let Err(e) = sys::install_worker_handlers(stop.raw_fd()) {
        log::error(&format!("cannot install signal handlers: {e}"));
        return 1;
    }
    if let Err(e) = sys::unblock_signals(mask) {
        log::error(&format!("cannot unblock signals: {e}"));
        return 1;
    }
    match server.run() {
        Ok(()) => 0,
        Err(e) => {
            log::error(&format!("event loop failed: {e}"));
            1
        }
    }
}
