//! The text exposition of the board and the certificates' expiry (format 0.0.4).

use std::sync::atomic::Ordering;

use stud_core::TlsVersion;

use super::{
    Board, Layout, BUCKETS_MICROS, BYTE_DIRECTIONS, GLOBAL_RELOADS_FAILED, GLOBAL_RELOADS_OK,
    GLOBAL_RESTARTS,
};

/// A certificate's file and when it stops being valid (seconds since the Unix epoch).
#[derive(Debug, Clone)]
pub(crate) struct Expiry {
    pub(crate) file: String,
    pub(crate) not_after: i64,
}

/// What a scrape shows: the board, the certificates of the configuration in force, and the
/// configured worker count.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) board: Board,
    /// Shared with the running configuration: a view costs no copy.
    pub(crate) certificates: std::sync::Arc<[Expiry]>,
    pub(crate) workers: usize,
}

/// Escapes a label value for the text format (backslash, double quote, line feed).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl View {
    /// The exposition text at `now_unix` (seconds since the epoch).
    pub(crate) fn render(&self, now_unix: i64) -> String {
        use std::fmt::Write as _;
        let layout = &self.board.layout;
        let t = self.board.totals();
        let closed: u64 = (0..layout.reasons.len())
            .map(|r| t[Layout::CLOSED + r])
            .sum();
        let mut text = String::with_capacity(4096);
        let head = |text: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut text,
            "stud_workers",
            "gauge",
            "Worker processes configured.",
        );
        let _ = writeln!(text, "stud_workers {}", self.workers);
        head(
            &mut text,
            "stud_connections_open",
            "gauge",
            "Client connections accepted and not yet closed.",
        );
        let _ = writeln!(
            text,
            "stud_connections_open {}",
            t[Layout::ACCEPTED].saturating_sub(closed)
        );
        head(
            &mut text,
            "stud_connections_accepted_total",
            "counter",
            "Client connections accepted.",
        );
        let _ = writeln!(
            text,
            "stud_connections_accepted_total {}",
            t[Layout::ACCEPTED]
        );
        head(
            &mut text,
            "stud_accept_pauses_total",
            "counter",
            "Times a worker stopped accepting for a moment because file descriptors ran out.",
        );
        let _ = writeln!(
            text,
            "stud_accept_pauses_total {}",
            t[Layout::ACCEPT_PAUSES]
        );
        head(
            &mut text,
            "stud_connections_closed_total",
            "counter",
            "Client connections closed, by reason (handshake failures included).",
        );
        for (i, reason) in layout.reasons.iter().enumerate() {
            let _ = writeln!(
                text,
                "stud_connections_closed_total{{reason=\"{reason}\"}} {}",
                t[Layout::CLOSED + i]
            );
        }
        head(
            &mut text,
            "stud_handshakes_total",
            "counter",
            "Completed TLS handshakes, by version, cipher suite and resumption.",
        );
        for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
            for resumed in [false, true] {
                let suites = layout.suites.iter().copied().chain(["other"]);
                for suite in suites {
                    let n = t[layout.handshake_cell(version, resumed, suite)];
                    if n == 0 {
                        continue;
                    }
                    let _ = writeln!(
                        text,
                        "stud_handshakes_total{{version=\"{}\",suite=\"{}\",resumed=\"{resumed}\"}} {n}",
                        version.as_str(),
                        label(suite)
                    );
                }
            }
        }
        head(
            &mut text,
            "stud_handshake_duration_seconds",
            "histogram",
            "Time from accepting a connection to completing its handshake.",
        );
        let mut cumulative = 0u64;
        for (i, bound) in BUCKETS_MICROS.iter().enumerate() {
            cumulative += t[layout.buckets() + i];
            let _ = writeln!(
                text,
                "stud_handshake_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += t[layout.buckets() + BUCKETS_MICROS.len()];
        let _ = writeln!(
            text,
            "stud_handshake_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            text,
            "stud_handshake_duration_seconds_sum {}",
            t[layout.duration_sum()] as f64 / 1e6
        );
        let _ = writeln!(text, "stud_handshake_duration_seconds_count {cumulative}");
        head(
            &mut text,
            "stud_bytes_total",
            "counter",
            "Bytes on the client's and the backend's sockets, added when a connection closes.",
        );
        for (i, direction) in BYTE_DIRECTIONS.iter().enumerate() {
            let _ = writeln!(
                text,
                "stud_bytes_total{{direction=\"{direction}\"}} {}",
                t[layout.bytes() + i]
            );
        }
        head(
            &mut text,
            "stud_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP), by result.",
        );
        let global = |which| self.board.global(which).load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "stud_reloads_total{{result=\"ok\"}} {}\nstud_reloads_total{{result=\"failed\"}} {}",
            global(GLOBAL_RELOADS_OK),
            global(GLOBAL_RELOADS_FAILED)
        );
        head(
            &mut text,
            "stud_worker_restarts_total",
            "counter",
            "Workers that died (or were killed by the watchdog) and were replaced.",
        );
        let _ = writeln!(
            text,
            "stud_worker_restarts_total {}",
            global(GLOBAL_RESTARTS)
        );
        head(
            &mut text,
            "stud_certificate_expiry_seconds",
            "gauge",
            "Seconds until the certificate's notAfter (negative once expired).",
        );
        for cert in self.certificates.iter() {
            let _ = writeln!(
                text,
                "stud_certificate_expiry_seconds{{file=\"{}\"}} {}",
                label(&cert.file),
                cert.not_after - now_unix
            );
        }
        head(
            &mut text,
            "stud_certificate_not_after_timestamp_seconds",
            "gauge",
            "The certificate's notAfter, in seconds since the Unix epoch.",
        );
        for cert in self.certificates.iter() {
            let _ = writeln!(
                text,
                "stud_certificate_not_after_timestamp_seconds{{file=\"{}\"}} {}",
                label(&cert.file),
                cert.not_after
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{info, layout, value};
    use super::super::*;
    use std::time::Duration;
    use stud_core::driver::ConnStats;
    use stud_core::CloseReason;

    #[test]
    fn workers_count_and_a_scrape_sums_them() {
        let board = Board::new(layout(), 4).expect("board");
        let (a, b) = (board.worker(0), board.worker(3));
        a.accepted();
        a.accepted();
        b.accepted();
        a.handshake(&info(false), Duration::from_micros(700));
        b.handshake(&info(true), Duration::from_millis(30));
        let mut stats = ConnStats::default();
        stats.bytes_from_client = 10;
        stats.bytes_to_client = 20;
        stats.duration = Duration::from_secs(1);
        stats.bytes_from_backend = 30;
        stats.bytes_to_backend = 40;
        a.closed(&CloseReason::Completed, &stats);
        b.closed(&CloseReason::BackendReset, &stats);
        let view = View {
            board,
            certificates: vec![Expiry {
                file: "/etc/stud/a \"b\".pem".into(),
                not_after: 1_000,
            }]
            .into(),
            workers: 2,
        };
        let text = view.render(400);
        assert_eq!(value(&text, "stud_connections_accepted_total"), "3");
        assert_eq!(value(&text, "stud_connections_open"), "1");
        assert_eq!(
            value(&text, "stud_connections_closed_total{reason=\"completed\"}"),
            "1"
        );
        assert_eq!(
            value(
                &text,
                "stud_connections_closed_total{reason=\"backend_reset\"}"
            ),
            "1"
        );
        assert_eq!(
            value(
                &text,
                "stud_handshakes_total{version=\"TLSv1.3\",suite=\"TLS_AES_128_GCM_SHA256\",resumed=\"true\"}"
            ),
            "1"
        );
        assert_eq!(
            value(
                &text,
                "stud_handshake_duration_seconds_bucket{le=\"0.0005\"}"
            ),
            "0"
        );
        assert_eq!(
            value(
                &text,
                "stud_handshake_duration_seconds_bucket{le=\"0.001\"}"
            ),
            "1"
        );
        assert_eq!(
            value(&text, "stud_handshake_duration_seconds_bucket{le=\"0.05\"}"),
            "2"
        );
        assert_eq!(value(&text, "stud_handshake_duration_seconds_count"), "2");
        assert_eq!(
            value(&text, "stud_handshake_duration_seconds_sum"),
            "0.0307"
        );
        assert_eq!(
            value(&text, "stud_bytes_total{direction=\"to_backend\"}"),
            "80"
        );
        assert_eq!(
            value(
                &text,
                "stud_certificate_expiry_seconds{file=\"/etc/stud/a \\\"b\\\".pem\"}"
            ),
            "600"
        );
    }

    #[test]
    fn a_dead_workers_counts_survive_and_its_connections_count_as_closed() {
        let board = Board::new(layout(), 2).expect("board");
        let w = board.worker(1);
        for _ in 0..5 {
            w.accepted();
        }
        w.closed(&CloseReason::Completed, &ConnStats::default());
        board.fold(1);
        board.restarted();
        board.reloaded(true);
        board.reloaded(false);
        // The replacement starts from zero in the same block.
        board.worker(1).accepted();
        let view = View {
            board,
            certificates: Vec::new().into(),
            workers: 1,
        };
        let text = view.render(0);
        assert_eq!(value(&text, "stud_connections_accepted_total"), "6");
        assert_eq!(value(&text, "stud_connections_open"), "1");
        assert_eq!(
            value(
                &text,
                "stud_connections_closed_total{reason=\"worker_died\"}"
            ),
            "4"
        );
        assert_eq!(value(&text, "stud_worker_restarts_total"), "1");
        assert_eq!(value(&text, "stud_reloads_total{result=\"ok\"}"), "1");
        assert_eq!(value(&text, "stud_reloads_total{result=\"failed\"}"), "1");
    }
}
