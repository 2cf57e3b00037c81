//! Keeping rare problems rare in the log, and the accept loop from spinning.
//!
//! [`RateLimit`] is the one limiter of reports in stud: the driver's warnings go through it,
//! and so do the daemon's own floods (handshake failures), on the same clock as the engine.

use std::time::Duration;

use crate::Instant;

/// Lets at most `per_period` reports through in each period and counts the rest, so a flood
/// (bad clients, a full descriptor table) cannot flood the log. A period starts with the first
/// report after the previous one ended.
///
/// ```
/// use std::time::Duration;
/// use stud_core::driver::RateLimit;
/// use stud_core::Instant;
///
/// let mut limit = RateLimit::new(1, Duration::from_secs(1));
/// let t = |ms: u64| Instant::from_micros(ms * 1000);
/// assert_eq!(limit.admit(t(0)), Some(0)); // report it: none were dropped before
/// assert_eq!(limit.admit(t(400)), None); // drop it, counted
/// assert_eq!(limit.admit(t(1000)), Some(1)); // report it, and that one was dropped
/// ```
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_period: u32,
    period: Duration,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter letting `per_period` reports through per `period`.
    pub fn new(per_period: u32, period: Duration) -> RateLimit {
        RateLimit {
            per_period,
            period,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` if a report may go out at `now`, `n` being how many were dropped since the
    /// last one that went out; `None` (counted) otherwise.
    #[must_use]
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.period);
        if expired {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= self.per_period {
            self.suppressed += 1;
            return None;
        }
        self.in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Reports dropped since the last admitted one (to report at exit); the count restarts.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// How often one kind of warning may be reported.
const WARNING_PERIOD: Duration = Duration::from_secs(1);

/// The kinds of warning the driver gives, each limited on its own.
#[derive(Debug, Clone, Copy)]
pub(super) enum WarningKind {
    /// accept(2) failing for lack of descriptors or memory.
    Accept,
    /// A backend address refusing or failing a connection.
    Backend,
    /// The poller or the engine failing for one connection.
    Connection,
}

/// One limiter per [`WarningKind`]: one warning a second each.
#[derive(Debug)]
pub(super) struct Warnings {
    accept: RateLimit,
    backend: RateLimit,
    connection: RateLimit,
}

impl Default for Warnings {
    fn default() -> Self {
        let one = || RateLimit::new(1, WARNING_PERIOD);
        Warnings {
            accept: one(),
            backend: one(),
            connection: one(),
        }
    }
}

impl Warnings {
    /// Formats and returns the warning if its kind may be reported now.
    pub(super) fn check(
        &mut self,
        kind: WarningKind,
        now: Instant,
        message: impl FnOnce() -> String,
    ) -> Option<String> {
        let limiter = match kind {
            WarningKind::Accept => &mut self.accept,
            WarningKind::Backend => &mut self.backend,
            WarningKind::Connection => &mut self.connection,
        };
        let suppressed = limiter.admit(now)?;
        let mut text = message();
        if suppressed > 0 {
            text.push_str(&format!(" ({suppressed} similar warnings suppressed)"));
        }
        Some(text)
    }
}

/// Pauses accepting after resource exhaustion: 100 ms, doubling to 1 s while it persists.
#[derive(Debug)]
pub(super) struct Backoff {
    next: Duration,
    until: Option<Instant>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_MIN,
            until: None,
        }
    }
}

impl Backoff {
    /// Starts a pause at `now`; returns its length.
    pub(super) fn trigger(&mut self, now: Instant) -> Duration {
        let pause = self.next;
        self.until = Some(now + pause);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }

    /// An accept succeeded: the next pause starts short again.
    pub(super) fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// The end of the current pause, if one is running at `now`.
    pub(super) fn active_until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|&until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_micros(n * 1000)
    }

    #[test]
    fn one_warning_per_second_with_a_suppressed_count() {
        let mut w = Warnings::default();
        let msg = || "accept: too many open files".to_string();
        assert_eq!(
            w.check(WarningKind::Accept, ms(0), msg).as_deref(),
            Some("accept: too many open files")
        );
        for i in 1..=5 {
            assert!(w.check(WarningKind::Accept, ms(i * 100), msg).is_none());
        }
        // Another kind is limited on its own.
        assert!(w.check(WarningKind::Backend, ms(500), msg).is_some());
        let text = w
            .check(WarningKind::Accept, ms(1000), msg)
            .expect("a second later");
        assert!(text.ends_with("(5 similar warnings suppressed)"), "{text}");
    }

    #[test]
    fn a_limit_of_two_per_second_counts_what_it_drops() {
        let mut rl = RateLimit::new(2, Duration::from_secs(1));
        assert_eq!(rl.admit(ms(5)), Some(0));
        assert_eq!(rl.admit(ms(5)), Some(0));
        assert_eq!(rl.admit(ms(5)), None);
        assert_eq!(rl.admit(ms(505)), None);
        assert_eq!(rl.admit(ms(1005)), Some(2));
        assert_eq!(rl.admit(ms(1006)), Some(0));
        assert_eq!(rl.admit(ms(1007)), None);
        assert_eq!(rl.take_suppressed(), 1);
        assert_eq!(rl.take_suppressed(), 0);
    }

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let pauses: Vec<_> = (0..6).map(|_| b.trigger(ms(0)).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.active_until(ms(999)), Some(ms(1000)));
        assert_eq!(b.active_until(ms(1000)), None);
        b.reset();
        assert_eq!(b.trigger(ms(0)).as_millis(), 100);
    }
}
