//! Time as the engine sees it: a monotonic count of microseconds.
//!
//! The engine never reads a clock. Callers pass `now` into every input, taken from whatever
//! monotonic source they like (the reference driver uses [`std::time::Instant`] relative to its
//! start; C callers pass a `uint64_t`). Tests pass virtual time. A plain `u64` crosses the C
//! boundary unchanged and compares cheaply.
//!
//! A Rust event loop converts at its edge with one fixed base, taken once when the loop starts:
//! [`Instant::from_std`] for `now`, [`Instant::to_std`] for the deadline to sleep until. These
//! functions only convert; the clock read (`std::time::Instant::now()`) stays the caller's.

use core::fmt;
use core::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in microseconds since an arbitrary, caller-chosen epoch.
///
/// `now` passed to a [`Conn`](crate::Conn) must never go backwards.
///
/// ```
/// use std::time::Duration;
/// use stud_core::Instant;
/// let t = Instant::from_micros(1_000);
/// assert_eq!((t + Duration::from_millis(2)).as_micros(), 3_000);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch: zero microseconds.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The engine instant for `t`, counted from `base`: the caller's epoch, one
    /// [`std::time::Instant`] taken once (when the event loop starts) and used for every
    /// conversion of that loop, both ways.
    ///
    /// Rounds down to the microsecond, so `from_std(base, t)` never runs ahead of `t`: a timer
    /// armed for [`to_std`](Instant::to_std)`(deadline)` wakes at a `t` whose instant has
    /// reached `deadline` (no early wake-up, no busy loop). A `t` before `base` is [`Instant::ZERO`];
    /// one more than about 584 000 years after it saturates. Monotonic in `t`, as `now` must be.
    ///
    /// ```
    /// use std::time::{Duration, Instant as StdInstant};
    /// use stud_core::Instant;
    ///
    /// let base = StdInstant::now(); // once, when the loop starts
    /// let now = Instant::from_std(base, base + Duration::from_millis(1500));
    /// assert_eq!(now.as_micros(), 1_500_000);
    /// ```
    pub fn from_std(base: std::time::Instant, t: std::time::Instant) -> Instant {
        let micros = t.saturating_duration_since(base).as_micros();
        Instant(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// This instant as a [`std::time::Instant`], counted from the same `base` given to
    /// [`from_std`](Instant::from_std); for sleeping until a deadline from
    /// [`Conn::poll_timeout`](crate::Conn::poll_timeout). `None` when the platform's clock cannot
    /// represent it (a deadline at the saturated far future): there is nothing to wait for.
    ///
    /// ```
    /// use std::time::{Duration, Instant as StdInstant};
    /// use stud_core::Instant;
    ///
    /// let base = StdInstant::now();
    /// let deadline = Instant::from_micros(2_000_000);
    /// assert_eq!(deadline.to_std(base), Some(base + Duration::from_secs(2)));
    /// ```
    pub fn to_std(self, base: std::time::Instant) -> Option<std::time::Instant> {
        base.checked_add(Duration::from_micros(self.0))
    }

    /// The time elapsed since `earlier`, or zero if `earlier` is later than `self`.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates at the far future rather than wrapping.
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_instead_of_wrapping() {
        let t = Instant::from_micros(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(1)).as_micros(), u64::MAX);
    }

    #[test]
    fn std_instants_round_trip_from_one_base_and_round_down() {
        let base = std::time::Instant::now();
        let t = base + Duration::from_nanos(2_500_999);
        let engine = Instant::from_std(base, t);
        assert_eq!(engine.as_micros(), 2_500, "rounded down, never ahead of t");
        let back = engine.to_std(base).expect("representable");
        assert_eq!(back, base + Duration::from_micros(2_500));
        assert!(back <= t);
        assert_eq!(
            Instant::from_std(base, back),
            engine,
            "exact on whole microseconds"
        );
    }

    #[test]
    fn a_timer_armed_for_a_deadline_wakes_at_or_after_it() {
        let base = std::time::Instant::now();
        for micros in [0, 1, 999, 1_000_001, 86_400_000_000] {
            let deadline = Instant::from_micros(micros);
            let wake = deadline.to_std(base).expect("representable");
            // The earliest wake-up a timer allows, and a late one.
            for late in [
                Duration::ZERO,
                Duration::from_nanos(1),
                Duration::from_nanos(999),
            ] {
                assert!(
                    Instant::from_std(base, wake + late) >= deadline,
                    "{micros} µs"
                );
            }
        }
    }

    #[test]
    fn a_time_before_the_base_is_zero_and_the_far_future_is_none() {
        let base = std::time::Instant::now() + Duration::from_secs(10);
        assert_eq!(
            Instant::from_std(base, base - Duration::from_secs(1)),
            Instant::ZERO
        );
        let far = Instant::from_micros(1) + Duration::MAX;
        assert_eq!(far.as_micros(), u64::MAX);
        // u64::MAX µs (584 000 years) is past what some platforms' clocks can hold: no panic.
        let _ = far.to_std(base);
        assert_eq!(Instant::ZERO.to_std(base), Some(base));
    }

    #[test]
    fn sub_of_a_later_instant_is_zero() {
        let a = Instant::from_micros(5);
        let b = Instant::from_micros(9);
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(b - a, Duration::from_micros(4));
    }
}
