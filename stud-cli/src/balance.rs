//! Even load over workers that share one listening socket.
//!
//! With one socket shared by every worker, the kernel gives each new connection to whichever
//! worker accepts first, and that is far from even: 20,000 connections over `-n 4` split
//! 1,574 / 3,560 / 8,432 / 6,434, so one worker meets its descriptor limit while others idle.
//! So each worker publishes, in its cell of a shared memory board the supervisor maps before the
//! first fork ([`sys::SharedCells`], one cell per board position as for the heartbeats), how
//! many connections it holds, whether it can accept, and when it last said so; and through an
//! [`AcceptGate`] it holds accepting off while it holds more than the least-loaded other worker
//! that can accept, plus a slack (1/16 of that worker's count, at least [`SLACK_MIN`]). It
//! takes connections again once it is back within half the slack.
//!
//! Why no client waits on a worker that will not accept, and nothing spins:
//! - the least-loaded worker that can accept never holds off (its count is not above its own
//!   minimum), so while any worker can accept, one does;
//! - a worker that cannot accept (draining after a reload or a stop, out of descriptors, at
//!   `--max-conns`) says so, and the others do not defer to it;
//! - the supervisor zeroes a worker's cell when it reaps it, and a cell not refreshed for
//!   [`STALE`] (a stopped or wedged worker) is ignored;
//! - a worker holding off looks again every [`RECHECK`] and after each of its own wakes (its
//!   closes among them); one that accepts refreshes its cell every [`REFRESH`] at least.
//!
//! The shared socket keeps its property that a reload loses no connection waiting in the
//! accept queue: the queue belongs to the socket, not to a worker. Not used with
//! `--reuseport`, where the kernel spreads connections over the workers' sockets by a hash and
//! a worker that held off would leave clients waiting in its own socket's queue.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use stud_core::driver::{AcceptGate, Verdict};

use crate::sys;

/// The smallest lead over the least-loaded worker that makes a worker hold off.
pub(crate) const SLACK_MIN: usize = 16;
/// The lead grows with the load: 1/16 of the least-loaded worker's count.
const SLACK_DIVISOR: usize = 16;
/// How often a worker holding off looks again.
const RECHECK: Duration = Duration::from_millis(10);
/// How often a worker that accepts refreshes its cell even when nothing happens.
const REFRESH: Duration = Duration::from_secs(1);
/// A cell older than this belongs to a worker that is not running its loop: ignored.
const STALE: Duration = Duration::from_secs(3);

/// What one cell says: the low 31 bits hold the open count, bit 31 whether the worker can
/// accept, the high 32 bits the time of writing (milliseconds of `CLOCK_MONOTONIC`, wrapping).
/// A zero cell is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Load {
    stamp: u32,
    able: bool,
    open: usize,
}

const OPEN_MASK: u64 = (1 << 31) - 1;
const ABLE_BIT: u64 = 1 << 31;

impl Load {
    fn encode(self) -> u64 {
        let open = (self.open as u64).min(OPEN_MASK);
        (u64::from(self.stamp) << 32) | if self.able { ABLE_BIT } else { 0 } | open
    }

    fn decode(cell: u64) -> Option<Load> {
        (cell != 0).then_some(Load {
            stamp: (cell >> 32) as u32,
            able: cell & ABLE_BIT != 0,
            open: (cell & OPEN_MASK) as usize,
        })
    }

    /// Whether it was written within [`STALE`] of `now`.
    fn fresh(self, now: u32) -> bool {
        u128::from(now.wrapping_sub(self.stamp)) < STALE.as_millis()
    }
}

/// The milliseconds [`Load::stamp`] counts, wrapping every 49 days.
fn stamp_now() -> u32 {
    sys::monotonic_millis() as u32
}

/// Whether a worker holding `me` connections should hold off, given the counts of the other
/// workers that can accept (`least` is the smallest, `None` if there is none) and whether it
/// is holding off already (it then resumes only within half the slack: no flapping).
fn holds_off(me: usize, least: Option<usize>, holding: bool) -> bool {
    let Some(least) = least else {
        return false;
    };
    let slack = SLACK_MIN.max(least / SLACK_DIVISOR);
    let limit = if holding { slack / 2 } else { slack };
    me > least + limit
}

/// The board of loads, one cell per worker position; the supervisor's handle.
#[derive(Debug, Clone)]
pub(crate) struct Loads {
    cells: Arc<sys::SharedCells>,
}

impl Loads {
    /// Maps `positions` empty cells, shared with every process forked afterwards.
    pub(crate) fn new(positions: usize) -> std::io::Result<Loads> {
        Ok(Loads {
            cells: Arc::new(sys::SharedCells::new(positions)?),
        })
    }

    /// Empties `position`'s cell: its worker exited (or a new one is about to start there).
    pub(crate) fn clear(&self, position: usize) {
        if let Some(cell) = self.cells.cells().get(position) {
            cell.store(0, Ordering::Relaxed);
        }
    }

    /// The gate of the worker at `position`.
    pub(crate) fn gate(&self, position: usize) -> Gate {
        Gate {
            cells: Arc::clone(&self.cells),
            position,
            holding: false,
        }
    }
}

/// One worker's gate: publishes its load and decides whether it accepts.
#[derive(Debug)]
pub(crate) struct Gate {
    cells: Arc<sys::SharedCells>,
    position: usize,
    holding: bool,
}

impl AcceptGate for Gate {
    fn check(&mut self, open: usize, able: bool) -> Verdict {
        let now = stamp_now();
        let cells = self.cells.cells();
        if let Some(cell) = cells.get(self.position) {
            cell.store(
                Load {
                    stamp: now,
                    able,
                    open,
                }
                .encode(),
                Ordering::Relaxed,
            );
        }
        let least = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.position)
            .filter_map(|(_, c)| Load::decode(c.load(Ordering::Relaxed)))
            .filter(|l| l.able && l.fresh(now))
            .map(|l| l.open)
            .min();
        self.holding = able && holds_off(open, least, self.holding);
        Verdict {
            accept: !self.holding,
            recheck: Some(if self.holding { RECHECK } else { REFRESH }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_survives_its_encoding_and_zero_is_empty() {
        let load = Load {
            stamp: u32::MAX - 3,
            able: true,
            open: 19_999,
        };
        assert_eq!(Load::decode(load.encode()), Some(load));
        let unable = Load {
            able: false,
            ..load
        };
        assert_eq!(Load::decode(unable.encode()), Some(unable));
        assert_eq!(Load::decode(0), None);
    }

    #[test]
    fn freshness_counts_across_the_clock_wrapping() {
        let load = Load {
            stamp: u32::MAX - 100,
            able: true,
            open: 1,
        };
        assert!(load.fresh(50));
        assert!(!load.fresh(5_000));
    }

    #[test]
    fn the_least_loaded_worker_never_holds_off_and_others_hold_past_the_slack() {
        assert!(!holds_off(10, None, false), "alone, a worker accepts");
        assert!(!holds_off(100, Some(100), false));
        assert!(
            !holds_off(0, Some(5_000), false),
            "the least loaded accepts"
        );
        assert!(!holds_off(100 + SLACK_MIN, Some(100), false));
        assert!(holds_off(101 + SLACK_MIN, Some(100), false));
        // At 4,800 the slack is 300 (1/16): within 1.07 of the least loaded.
        assert!(!holds_off(5_100, Some(4_800), false));
        assert!(holds_off(5_101, Some(4_800), false));
    }

    #[test]
    fn a_worker_holding_off_resumes_within_half_the_slack() {
        assert!(holds_off(120, Some(100), true));
        assert!(holds_off(109, Some(100), true));
        assert!(!holds_off(108, Some(100), true));
    }

    #[test]
    fn workers_defer_only_to_fresh_able_workers_and_a_cleared_cell_counts_for_nothing() {
        let loads = Loads::new(3).expect("map");
        let (mut a, mut b) = (loads.gate(0), loads.gate(1));
        // b holds 1,000, a none: b holds off, a accepts.
        assert!(a.check(0, true).accept);
        let verdict = b.check(1_000, true);
        assert!(!verdict.accept);
        assert_eq!(verdict.recheck, Some(RECHECK));
        // a cannot accept (out of descriptors, draining): b does not defer to it.
        let _ = a.check(0, false);
        assert!(b.check(1_000, true).accept);
        // a accepts again, then exits and is reaped: its cell counts for nothing.
        a.check(0, true);
        assert!(!b.check(1_000, true).accept);
        loads.clear(0);
        assert!(b.check(1_000, true).accept);
        // A cell written long ago (a stopped worker) counts for nothing either.
        let old = Load {
            stamp: stamp_now().wrapping_sub(10_000),
            able: true,
            open: 0,
        };
        loads.cells.cells()[2].store(old.encode(), Ordering::Relaxed);
        assert!(b.check(1_000, true).accept);
    }
}
