//! Giving memory back after a spike: once a worker's open connections have fallen to half their
//! peak or less, the allocator is asked to return its free pages to the system — from the
//! loop's once-a-second heartbeat, at most once a second, never per connection, and not while
//! connections are still closing in a flood (a trim then would compete with the closes for the
//! CPU; it waits for a second without a close, or for the last connection to go).
//!
//! Without it, a worker that held tens of thousands of connections keeps most of that memory
//! after they close (glibc's malloc returns only the top of its heaps, and only when a free
//! happens to reach it; jemalloc purges dirty pages only while it is being called, so an idle
//! worker never does), and repeated spikes make the resident size creep up.

use std::time::{Duration, Instant};

use crate::sys;

/// The fewest connections a peak must have reached for its fall to be worth a trim.
const MIN_PEAK: usize = 16;
/// At most one trim per this long.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Counts a worker's connections and decides when memory goes back.
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    open: usize,
    /// The most connections held since the last trim.
    peak: usize,
    /// The count fell far below the peak: trim at the next quiet tick.
    due: bool,
    /// A connection closed since the last tick.
    closing: bool,
    last: Option<Instant>,
}

impl Trimmer {
    /// A connection was accepted.
    pub(crate) fn accepted(&mut self) {
        self.open += 1;
        self.peak = self.peak.max(self.open);
    }

    /// A connection closed.
    pub(crate) fn closed(&mut self) {
        self.open = self.open.saturating_sub(1);
        self.closing = true;
        if self.peak >= MIN_PEAK && self.open * 2 <= self.peak {
            self.due = true;
        }
    }

    /// Called from the loop's heartbeat: trims if a fall is pending, the connections have
    /// stopped closing (none closed since the last tick, or none is left) and the last trim is
    /// at least [`MIN_INTERVAL`] old. Returns whether it trimmed.
    pub(crate) fn tick(&mut self, now: Instant) -> bool {
        let closing = std::mem::take(&mut self.closing) && self.open > 0;
        if !self.due || closing || self.last.is_some_and(|t| now < t + MIN_INTERVAL) {
            return false;
        }
        sys::release_free_memory();
        self.last = Some(now);
        // A later fall from here trims again (the rest of a spike that is still closing).
        self.peak = self.open;
        self.due = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fall_to_half_the_peak_trims_once_quiet_and_once_a_second_until_the_spike_is_gone() {
        let mut t = Trimmer::default();
        let start = Instant::now();
        for _ in 0..1_000 {
            t.accepted();
        }
        assert!(!t.tick(start), "nothing closed yet");
        for _ in 0..499 {
            t.closed();
        }
        assert!(!t.tick(start), "501 of 1,000 still open");
        t.closed();
        assert!(!t.tick(start), "half the peak, but still closing");
        assert!(t.tick(start), "half the peak, and a quiet tick");
        // The rest closes within the same second: the next trim waits for its interval.
        for _ in 0..500 {
            t.closed();
        }
        assert!(!t.tick(start + Duration::from_millis(500)));
        assert!(
            t.tick(start + Duration::from_millis(1_000)),
            "none left: no need to wait for quiet"
        );
        assert!(
            !t.tick(start + Duration::from_secs(5)),
            "nothing left to fall"
        );
    }

    #[test]
    fn small_ups_and_downs_do_not_trim() {
        let mut t = Trimmer::default();
        for _ in 0..100 {
            for _ in 0..(MIN_PEAK - 1) {
                t.accepted();
            }
            for _ in 0..(MIN_PEAK - 1) {
                t.closed();
            }
        }
        assert!(!t.tick(Instant::now()));
    }
}
