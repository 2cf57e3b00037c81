//! One line per event worth an operator's attention: `stud[pid]: message` on stderr, or syslog
//! with `-s`. `-q` keeps only warnings and errors.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::sys;

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Error,
    Warning,
    Info,
}

#[derive(Debug)]
struct Sink {
    quiet: bool,
    syslog: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// The facility number for a name such as `daemon` or `local3`.
pub(crate) fn facility_from_name(name: &str) -> Option<i32> {
    sys::FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
}

/// Chooses the destination once, before the first fork. Later calls are ignored.
pub(crate) fn init(quiet: bool, syslog_facility: Option<&str>) {
    let syslog = match syslog_facility.and_then(facility_from_name) {
        Some(facility) => {
            sys::open_syslog(facility);
            true
        }
        None => false,
    };
    let _ = SINK.set(Sink { quiet, syslog });
}

/// Logs `message` at `level`.
pub(crate) fn log(level: Level, message: &str) {
    let sink = SINK.get().unwrap_or(&Sink {
        quiet: false,
        syslog: false,
    });
    if sink.quiet && level == Level::Info {
        return;
    }
    if sink.syslog {
        let priority = match level {
            Level::Error => sys::LOG_ERR,
            Level::Warning => sys::LOG_WARNING,
            Level::Info => sys::LOG_INFO,
        };
        sys::syslog(priority, message);
        return;
    }
    let tag = match level {
        Level::Error => "error: ",
        Level::Warning => "warning: ",
        Level::Info => "",
    };
    // One write per line, so lines from several workers never interleave mid-line.
    let line = format!("stud[{}]: {tag}{message}\n", std::process::id());
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Logs a routine event (silenced by `-q`).
pub(crate) fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs something the operator should look at.
pub(crate) fn warning(message: &str) {
    log(Level::Warning, message);
}

/// Logs a failure.
pub(crate) fn error(message: &str) {
    log(Level::Error, message);
}

/// Lets through at most `per_second` lines a second and counts the rest, so a flood of bad
/// clients cannot flood the log.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: u32,
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter allowing `per_second` lines per one-second window.
    pub(crate) fn new(per_second: u32, now: Instant) -> RateLimit {
        RateLimit {
            per_second,
            window_start: now,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be written now; when it may, also how many were dropped before it.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window >= self.per_second {
            self.suppressed += 1;
            return None;
        }
        self.in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Lines dropped since the last admitted one (to report at exit).
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_what_it_drops() {
        let t0 = Instant::now();
        let mut rl = RateLimit::new(2, t0);
        assert_eq!(rl.admit(t0), Some(0));
        assert_eq!(rl.admit(t0), Some(0));
        assert_eq!(rl.admit(t0), None);
        assert_eq!(rl.admit(t0 + Duration::from_millis(500)), None);
        assert_eq!(rl.admit(t0 + Duration::from_millis(1000)), Some(2));
        assert_eq!(rl.take_suppressed(), 0);
    }

    #[test]
    fn facilities_by_name() {
        assert!(facility_from_name("daemon").is_some());
        assert!(facility_from_name("LOCAL7").is_some());
        assert!(facility_from_name("nope").is_none());
    }
}
