//! A worker process: drops privileges (`-r`, `-g`, `-u`) the moment it exists, then runs one
//! driver event loop over the listeners it was given, until SIGTERM (graceful drain) or its
//! parent's death. A worker that cannot drop privileges exits rather than serve as root.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stud_core::driver::{ConnStats, Frontend, Observer, Options, RateLimit, Server};
use stud_core::{CloseReason, Config, HandshakeInfo};

use crate::balance;
use crate::log;
use crate::metrics::WorkerCounters;
use crate::setup::{self, Privileges};
use crate::sys;
use crate::trim::Trimmer;

/// Most handshake-failure lines a worker writes per second.
const HANDSHAKE_LINES_PER_SECOND: u32 = 5;

/// Turns driver reports into log lines: handshake failures rate-limited, warnings as they come
/// (the driver already limits those).
#[derive(Debug)]
struct LogObserver {
    handshake_failures: RateLimit,
    /// The epoch of the limiter's clock.
    started: Instant,
    /// Where this worker's loop shows it is alive (with the watchdog on).
    heartbeat: Option<Heartbeat>,
    /// Log every finished connection (`--log-conns`).
    log_conns: bool,
    /// With `--log-conns`, what each live connection's handshake settled, for its line.
    sessions: HashMap<SocketAddr, Settled>,
    /// This worker's block of the metrics board.
    counters: Option<WorkerCounters>,
    /// Gives memory back after a spike of connections.
    trimmer: Trimmer,
}

/// What a connection's handshake settled, as its `--log-conns` line shows it.
#[derive(Debug, Clone, PartialEq)]
struct Settled {
    sni: Option<String>,
    alpn: Option<String>,
    version: &'static str,
    cipher: &'static str,
    resumed: bool,
    /// The client certificate's subject CN, at most [`MAX_SUBJECT`] characters.
    subject: Option<String>,
}

/// The longest client-certificate subject a log line carries (the certificate is the client's
/// to fill).
const MAX_SUBJECT: usize = 256;

impl Settled {
    fn new(info: &HandshakeInfo) -> Settled {
        Settled {
            sni: info.sni.clone(),
            alpn: info
                .alpn
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            version: info.version.as_str(),
            cipher: info.cipher_suite,
            resumed: info.resumed,
            subject: info
                .client_common_name()
                .map(|cn| cn.chars().take(MAX_SUBJECT).collect()),
        }
    }
}

/// A finished connection's line: the text, and the members of its JSON object.
fn connection_line(
    peer: SocketAddr,
    reason: &CloseReason,
    stats: &ConnStats,
    settled: Option<&Settled>,
) -> (String, String) {
    let mut text = format!(
        "connection {peer} closed: {reason}, {:.3} s, {} B from the client, {} B to it, {} B to the backend, {} B from it",
        stats.duration.as_secs_f64(),
        stats.bytes_from_client,
        stats.bytes_to_client,
        stats.bytes_to_backend,
        stats.bytes_from_backend
    );
    let mut fields = format!(
        "\"event\":\"connection_closed\",\"client\":{},\"reason\":{},\"duration_s\":{:.3},\"bytes_from_client\":{},\"bytes_to_client\":{},\"bytes_to_backend\":{},\"bytes_from_backend\":{}",
        log::json_string(&peer.to_string()),
        log::json_string(&reason.to_string()),
        stats.duration.as_secs_f64(),
        stats.bytes_from_client,
        stats.bytes_to_client,
        stats.bytes_to_backend,
        stats.bytes_from_backend
    );
    if let Some(s) = settled {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            ", {} {}{}, sni {}, alpn {}, client certificate {}",
            s.version,
            s.cipher,
            if s.resumed { " resumed" } else { "" },
            or_dash(&s.sni),
            or_dash(&s.alpn),
            s.subject
                .as_deref()
                .map_or_else(|| "-".to_string(), |cn| format!("CN={cn}")),
        ));
        let json_or_null =
            |v: &Option<String>| v.as_deref().map_or("null".into(), log::json_string);
        fields.push_str(&format!(
            ",\"tls_version\":\"{}\",\"cipher\":\"{}\",\"resumed\":{},\"sni\":{},\"alpn\":{},\"client_cert_subject\":{}",
            s.version,
            s.cipher,
            s.resumed,
            json_or_null(&s.sni),
            json_or_null(&s.alpn),
            json_or_null(&s.subject.as_ref().map(|cn| format!("CN={cn}"))),
        ));
    }
    (text, fields)
}

/// A worker's cell on the board the parent's watchdog reads.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    pub(crate) board: std::sync::Arc<sys::Heartbeats>,
    pub(crate) cell: usize,
}

impl Observer for LogObserver {
    fn accepted(&mut self, _peer: SocketAddr) {
        self.trimmer.accepted();
        if let Some(c) = &self.counters {
            c.accepted();
        }
    }

    fn handshake(&mut self, peer: SocketAddr, info: &HandshakeInfo, elapsed: Duration) {
        if let Some(c) = &self.counters {
            c.handshake(info, elapsed);
        }
        if self.log_conns {
            self.sessions.insert(peer, Settled::new(info));
        }
    }

    fn accept_paused(&mut self, _pause: Duration) {
        if let Some(c) = &self.counters {
            c.accept_paused();
        }
    }

    fn closed(&mut self, peer: SocketAddr, reason: &CloseReason, stats: &ConnStats) {
        self.trimmer.closed();
        if let Some(c) = &self.counters {
            c.closed(reason, stats);
        }
        let settled = if self.log_conns {
            self.sessions.remove(&peer)
        } else {
            None
        };
        if self.log_conns && !reason.is_handshake_failure() {
            // Connections that got past the handshake cost their client a handshake each, so
            // these lines are not throttled; handshake failures, which cost a client nothing,
            // keep their rate-limited line below.
            let (text, fields) = connection_line(peer, reason, stats, settled.as_ref());
            log::event(log::Level::Info, &text, &fields);
            return;
        }
        // Client mode: a backend that fails the handshake is the operator's to hear about
        // (a CA or certificate mistake), within the same rate limit.
        let with_backend = matches!(reason, CloseReason::BackendHandshakeFailed(_));
        if !reason.is_handshake_failure() && !with_backend {
            return;
        }
        let now = stud_core::Instant::from_std(self.started, Instant::now());
        if let Some(suppressed) = self.handshake_failures.admit(now) {
            if suppressed > 0 {
                log::info(&format!(
                    "suppressed {suppressed} handshake failure messages"
                ));
            }
            if with_backend {
                log::info(&format!(
                    "handshake with the backend for {peer} failed: {reason}"
                ));
            } else {
                log::info(&format!("handshake with {peer} failed: {reason}"));
            }
        }
    }

    fn warning(&mut self, message: &str) {
        log::warning(message);
    }

    fn heartbeat(&mut self) {
        if let Some(h) = &self.heartbeat {
            h.board.beat(h.cell, sys::monotonic_millis());
        }
        self.trimmer.tick(Instant::now());
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
    pub(crate) expiry: Arc<[crate::metrics::Expiry]>,
}

/// Runs a worker in a freshly forked child and returns its exit status.
///
/// `parent` is the pid of the supervisor that forked us; `mask` is the signal mask to restore
/// once our own handlers are in place (the parent blocked everything around fork); `privileges`
/// is what to become before anything else; `counters` is this worker's block of the metrics
/// board; `gate`, with workers sharing a listening socket, keeps their loads even.
#[allow(clippy::too_many_arguments)] // each is one thing the parent prepared before fork
pub(crate) fn run(
    setup: WorkerSetup,
    listeners: Vec<Vec<TcpListener>>,
    parent: i32,
    mask: &sys::SignalMask,
    heartbeat: Option<Heartbeat>,
    privileges: &Privileges,
    counters: Option<WorkerCounters>,
    gate: Option<balance::Gate>,
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
        handshake_failures: RateLimit::new(HANDSHAKE_LINES_PER_SECOND, Duration::from_secs(1)),
        started: Instant::now(),
        heartbeat,
        log_conns: setup.log_conns,
        sessions: HashMap::new(),
        counters,
        trimmer: Trimmer::default(),
    }));
    if let Some(gate) = gate {
        server.set_accept_gate(Box::new(gate));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_line_in_text_and_in_json() {
        let peer: SocketAddr = "[::1]:4433".parse().expect("address");
        let mut stats = ConnStats::default();
        stats.bytes_from_client = 1;
        stats.bytes_to_client = 2;
        stats.duration = Duration::from_millis(1500);
        stats.bytes_from_backend = 3;
        stats.bytes_to_backend = 4;
        let settled = Settled {
            sni: Some("www.example.test".into()),
            alpn: None,
            version: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            resumed: true,
            subject: Some("alice \"the\" client".into()),
        };
        let (text, fields) = connection_line(peer, &CloseReason::Completed, &stats, Some(&settled));
        assert_eq!(
            text,
            "connection [::1]:4433 closed: completed, 1.500 s, 1 B from the client, 2 B to it, 4 B to the backend, 3 B from it, TLSv1.3 TLS_AES_128_GCM_SHA256 resumed, sni www.example.test, alpn -, client certificate CN=alice \"the\" client"
        );
        assert_eq!(
            fields,
            r#""event":"connection_closed","client":"[::1]:4433","reason":"completed","duration_s":1.500,"bytes_from_client":1,"bytes_to_client":2,"bytes_to_backend":4,"bytes_from_backend":3,"tls_version":"TLSv1.3","cipher":"TLS_AES_128_GCM_SHA256","resumed":true,"sni":"www.example.test","alpn":null,"client_cert_subject":"CN=alice \"the\" client""#
        );
        let (_, bare) = connection_line(peer, &CloseReason::IdleTimeout, &stats, None);
        assert!(bare.ends_with(r#""bytes_from_backend":3"#), "{bare}");
    }
}
