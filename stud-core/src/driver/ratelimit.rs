//! Keeping rare problems rare in the log, and the accept loop from spinning.

use std::time::Duration;

use crate::Instant;

/// At most one report per period; the ones in between are counted.
#[derive(Debug, Default)]
pub(super) struct RateLimited {
    last: Option<Instant>,
    suppressed: u64,
}

/// How often one kind of warning may be reported.
const WARNING_PERIOD: Duration = Duration::from_secs(1);

impl RateLimited {
    /// `Some(n)` if a report may go out now, `n` being how many were suppressed since the last.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now < last + WARNING_PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

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

/// One limiter per [`WarningKind`].
#[derive(Debug, Default)]
pub(super) struct Warnings {
    accept: RateLimited,
    backend: RateLimited,
    connection: RateLimited,
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
        let suppressed = limiter.allow(now)?;
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
