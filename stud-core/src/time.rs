//! Time as the engine sees it: a monotonic count of microseconds.
//!
//! The engine never reads a clock. Callers pass `now` into every input, taken from whatever
//! monotonic source they like (the reference driver uses [`std::time::Instant`] relative to its
//! start; C callers pass a `uint64_t`). Tests pass virtual time. A plain `u64` crosses the C
//! boundary unchanged and compares cheaply.

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
    fn sub_of_a_later_instant_is_zero() {
        let a = Instant::from_micros(5);
        let b = Instant::from_micros(9);
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(b - a, Duration::from_micros(4));
    }
}
