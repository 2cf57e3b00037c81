//! Prometheus metrics (`--metrics=HOST,PORT`).
//!
//! Workers count into a board of shared memory ([`sys::SharedCells`]) mapped by the supervisor
//! before the first fork. Each worker position owns a block of cells that it alone writes, with
//! relaxed atomic adds: no lock, no system call, nothing a scrape can slow down. A scrape sums
//! the blocks. When a worker exits, the supervisor folds its block into the board's `retired`
//! block and zeroes it for the replacement, so counters never go backwards; connections the
//! dead worker still held count as closed with the reason `worker_died`. A fold is bracketed by
//! a sequence number, and a scrape that overlaps one reads again, so no scrape sees a block
//! counted twice or not at all.
//!
//! Scrapes are answered by a small child process of the supervisor, forked and unprivileged
//! like a worker, on a plain-HTTP listener the supervisor bound at start: a slow or hostile
//! scraper can stall only that child, never the supervisor or a worker. It answers `GET
//! /metrics` (and `GET /`) in the Prometheus text exposition format, version 0.0.4.
//!
//! Counted at the moment each happens: connections accepted, handshakes (by version, suite
//! and resumption) with their duration, connections closed (by reason), bytes each way (added
//! when a connection closes), reloads (by result) and worker restarts. Certificate expiry is
//! read from the certificates loaded at start or at the last reload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stud_core::driver::ConnStats;
use stud_core::{CloseReason, HandshakeInfo, TlsVersion};

use crate::sys;

mod http;
mod render;

pub(crate) use http::Endpoint;
pub(crate) use render::{Expiry, View};

/// Upper bounds of the handshake-duration buckets, in microseconds (the last bucket, `+Inf`,
/// is implicit).
const BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The close reason the supervisor records for connections a worker held when it died.
const WORKER_DIED: &str = "worker_died";

/// Byte counters, in cell order, by the `direction` label they are shown with.
const BYTE_DIRECTIONS: [&str; 4] = ["from_client", "to_client", "from_backend", "to_backend"];

/// Global cells (in the board's last block).
const GLOBAL_FOLD_SEQ: usize = 0;
const GLOBAL_RELOADS_OK: usize = 1;
const GLOBAL_RELOADS_FAILED: usize = 2;
const GLOBAL_RESTARTS: usize = 3;
const GLOBAL_CELLS: usize = 4;

/// Where each counter sits in a worker's block. Built once from the names stud-core reports,
/// so a new close reason or cipher suite gets its own series without a change here.
#[derive(Debug)]
pub(crate) struct Layout {
    /// Close-reason names, `worker_died` and `other` last.
    reasons: Vec<&'static str>,
    /// Cipher-suite names; `other` is one more index.
    suites: Vec<&'static str>,
}

impl Layout {
    /// A layout for these close reasons and cipher suites (their display names).
    pub(crate) fn new(reasons: &[&'static str], suites: &[&'static str]) -> Layout {
        let mut reasons = reasons.to_vec();
        reasons.extend([WORKER_DIED, "other"]);
        Layout {
            reasons,
            suites: suites.to_vec(),
        }
    }

    const ACCEPTED: usize = 0;
    const ACCEPT_PAUSES: usize = 1;
    const CLOSED: usize = 2;

    fn handshakes(&self) -> usize {
        Self::CLOSED + self.reasons.len()
    }

    /// Handshake cells: version (2) × resumed (2) × suite (known + other).
    fn handshake_cells(&self) -> usize {
        2 * 2 * (self.suites.len() + 1)
    }

    fn buckets(&self) -> usize {
        self.handshakes() + self.handshake_cells()
    }

    /// One cell per bucket, then `+Inf`, then the sum in microseconds.
    fn duration_sum(&self) -> usize {
        self.buckets() + BUCKETS_MICROS.len() + 1
    }

    fn bytes(&self) -> usize {
        self.duration_sum() + 1
    }

    /// Cells per worker block.
    fn block(&self) -> usize {
        self.bytes() + BYTE_DIRECTIONS.len()
    }

    fn reason_cell(&self, name: &str) -> usize {
        let index = self
            .reasons
            .iter()
            .position(|r| *r == name)
            .unwrap_or(self.reasons.len() - 1);
        Self::CLOSED + index
    }

    fn handshake_cell(&self, version: TlsVersion, resumed: bool, suite: &str) -> usize {
        let suite = self
            .suites
            .iter()
            .position(|s| *s == suite)
            .unwrap_or(self.suites.len());
        let version = match version {
            TlsVersion::Tls12 => 0,
            _ => 1,
        };
        let per_version = 2 * (self.suites.len() + 1);
        self.handshakes()
            + version * per_version
            + usize::from(resumed) * (self.suites.len() + 1)
            + suite
    }
}

/// The shared board: `blocks` worker blocks, one retired block, then the global cells.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    cells: Arc<sys::SharedCells>,
    layout: Arc<Layout>,
    blocks: usize,
}

impl Board {
    /// Maps a board for `blocks` worker positions (the supervisor gives each worker of each
    /// generation its own position).
    pub(crate) fn new(layout: Layout, blocks: usize) -> std::io::Result<Board> {
        let len = (blocks + 1) * layout.block() + GLOBAL_CELLS;
        Ok(Board {
            cells: Arc::new(sys::SharedCells::new(len)?),
            layout: Arc::new(layout),
            blocks,
        })
    }

    fn cell(&self, index: usize) -> &AtomicU64 {
        // Every index is computed from the layout the board was sized by.
        &self.cells.cells()[index]
    }

    fn global(&self, which: usize) -> &AtomicU64 {
        self.cell((self.blocks + 1) * self.layout.block() + which)
    }

    /// The counters of worker position `block`, for that worker to write.
    pub(crate) fn worker(&self, block: usize) -> WorkerCounters {
        WorkerCounters {
            board: self.clone(),
            base: block.min(self.blocks) * self.layout.block(),
        }
    }

    /// After the worker at `block` exited: moves its counts into the retired block, counting
    /// the connections it still held as closed by `worker_died`, and zeroes the block.
    pub(crate) fn fold(&self, block: usize) {
        if block >= self.blocks {
            return;
        }
        let size = self.layout.block();
        let (from, to) = (block * size, self.blocks * size);
        let seq = self.global(GLOBAL_FOLD_SEQ);
        seq.fetch_add(1, Ordering::AcqRel);
        let closed: u64 = (0..self.layout.reasons.len())
            .map(|r| self.cell(from + Layout::CLOSED + r).load(Ordering::Relaxed))
            .sum();
        let held = self
            .cell(from + Layout::ACCEPTED)
            .load(Ordering::Relaxed)
            .saturating_sub(closed);
        self.cell(to + self.layout.reason_cell(WORKER_DIED))
            .fetch_add(held, Ordering::Relaxed);
        for i in 0..size {
            let n = self.cell(from + i).swap(0, Ordering::Relaxed);
            self.cell(to + i).fetch_add(n, Ordering::Relaxed);
        }
        seq.fetch_add(1, Ordering::AcqRel);
    }

    /// How many worker blocks the board has (a block index this large is the overflow block,
    /// which is never folded).
    pub(crate) fn blocks(&self) -> usize {
        self.blocks
    }

    /// One line for the service manager's `STATUS=`.
    pub(crate) fn status(&self, workers: usize) -> String {
        let t = self.totals();
        let closed: u64 = (0..self.layout.reasons.len())
            .map(|r| t[Layout::CLOSED + r])
            .sum();
        let accepted = t[Layout::ACCEPTED];
        format!(
            "{workers} worker{} serving, {} connections open, {accepted} accepted",
            if workers == 1 { "" } else { "s" },
            accepted.saturating_sub(closed)
        )
    }

    /// A reload ended, well or not.
    pub(crate) fn reloaded(&self, ok: bool) {
        let which = if ok {
            GLOBAL_RELOADS_OK
        } else {
            GLOBAL_RELOADS_FAILED
        };
        self.global(which).fetch_add(1, Ordering::Relaxed);
    }

    /// A worker died and is being replaced.
    pub(crate) fn restarted(&self) {
        self.global(GLOBAL_RESTARTS).fetch_add(1, Ordering::Relaxed);
    }

    /// Every worker block and the retired block summed, read consistently with any fold.
    fn totals(&self) -> Vec<u64> {
        let size = self.layout.block();
        let seq = self.global(GLOBAL_FOLD_SEQ);
        let mut sum = vec![0u64; size];
        // A fold takes microseconds; a few tries always find a quiet moment.
        for _ in 0..100 {
            let before = seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            sum.iter_mut().for_each(|s| *s = 0);
            for block in 0..=self.blocks {
                for (i, s) in sum.iter_mut().enumerate() {
                    *s += self.cell(block * size + i).load(Ordering::Relaxed);
                }
            }
            if seq.load(Ordering::Acquire) == before {
                break;
            }
        }
        sum
    }
}

/// One worker's block: what its event loop counts. Every method is a few relaxed atomic adds.
#[derive(Debug, Clone)]
pub(crate) struct WorkerCounters {
    board: Board,
    base: usize,
}

impl WorkerCounters {
    fn add(&self, cell: usize, n: u64) {
        self.board
            .cell(self.base + cell)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// A connection was accepted.
    pub(crate) fn accepted(&self) {
        self.add(Layout::ACCEPTED, 1);
    }

    /// Accepting paused for want of file descriptors.
    pub(crate) fn accept_paused(&self) {
        self.add(Layout::ACCEPT_PAUSES, 1);
    }

    /// A handshake completed, `elapsed` after the connection was accepted.
    pub(crate) fn handshake(&self, info: &HandshakeInfo, elapsed: Duration) {
        let layout = &self.board.layout;
        self.add(
            layout.handshake_cell(info.version, info.resumed, info.cipher_suite),
            1,
        );
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(BUCKETS_MICROS.len());
        self.add(layout.buckets() + bucket, 1);
        self.add(layout.duration_sum(), micros);
    }

    /// A connection ended.
    pub(crate) fn closed(&self, reason: &CloseReason, stats: &ConnStats) {
        let layout = &self.board.layout;
        self.add(layout.reason_cell(reason.as_str()), 1);
        let bytes = [
            stats.bytes_from_client,
            stats.bytes_to_client,
            stats.bytes_from_backend,
            stats.bytes_to_backend,
        ];
        for (i, n) in bytes.into_iter().enumerate() {
            self.add(layout.bytes() + i, n);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn layout() -> Layout {
        Layout::new(
            &["completed", "handshake_failed", "backend_reset"],
            &["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"],
        )
    }

    pub(crate) fn info(resumed: bool) -> HandshakeInfo {
        let mut info = HandshakeInfo::new(TlsVersion::Tls13, "TLS_AES_128_GCM_SHA256");
        info.resumed = resumed;
        info
    }

    pub(crate) fn value(text: &str, series: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
            .to_string()
    }

    #[test]
    fn unknown_reasons_and_suites_fall_into_other() {
        let layout = layout();
        assert_eq!(
            layout.reason_cell("no_such_reason"),
            layout.reason_cell("other")
        );
        let other = layout.handshake_cell(TlsVersion::Tls12, false, "SOMETHING_NEW");
        let known = layout.handshake_cell(TlsVersion::Tls12, false, "TLS_AES_256_GCM_SHA384");
        assert_ne!(other, known);
        assert!(other < layout.buckets());
    }
}
