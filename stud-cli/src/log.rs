//! One line per event worth an operator's attention, `2026-11-29T20:01:23.456Z stud[PID]: message`
//! (with `warning: ` or `error: ` before the message when it is one; `-q` keeps only those), and
//! never a reason to stop serving.
//!
//! Only the supervisor writes to the destinations ([`crate::sink`]: standard error, the `-l`
//! file, syslog). A worker sends each line as one record into a pipe the supervisor drains
//! ([`Collector`]), so a worker in a chroot, as another user, still logs, and a syslog daemon
//! that restarts is the supervisor's to find again. A worker never waits on that pipe: when it
//! is full the line is dropped and counted, and the next line that gets through is preceded by
//! one saying how many were dropped. The supervisor does the same with each destination.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sink::{Line, Sinks, DEV_LOG};
use crate::sys;

/// How much a line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    /// What precedes the message: `error: `, `warning: ` or nothing.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Level::Error => "error: ",
            Level::Warning => "warning: ",
            Level::Info => "",
        }
    }

    fn digit(self) -> u8 {
        match self {
            Level::Error => b'0',
            Level::Warning => b'1',
            Level::Info => b'2',
        }
    }

    /// The level's name in a JSON line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        }
    }

    fn from_digit(d: u8) -> Option<Level> {
        match d {
            b'0' => Some(Level::Error),
            b'1' => Some(Level::Warning),
            b'2' => Some(Level::Info),
            _ => None,
        }
    }
}

/// The longest message kept whole; longer ones are cut (at a character boundary) so a record
/// stays well under `PIPE_BUF` (4096 bytes) and is written to a pipe atomically, in one piece.
const MAX_MESSAGE: usize = 2048;

/// Where this process's lines go.
#[derive(Debug)]
enum Route {
    /// The supervisor, or any process before the first fork.
    Direct(Sinks),
    /// A worker: records into the supervisor's pipe.
    Pipe { tx: File, dropped: u64 },
}

static ROUTE: Mutex<Option<Route>> = Mutex::new(None);
static QUIET: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Writes every line as a JSON object from now on (`--log-format=json`); set before the first
/// fork, so workers inherit it.
pub(crate) fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether lines are JSON objects.
pub(crate) fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// `text` as a JSON string literal, quotes included.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `f` on this process's route (standard error until [`init`]). Poisoning is ignored: a
/// route is valid whatever a panicking writer left half done.
fn with_route<T>(f: impl FnOnce(&mut Route) -> T) -> T {
    let mut guard = ROUTE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(|| Route::Direct(Sinks::stderr())))
}

/// The facility number for a name such as `daemon` or `local3`.
pub(crate) fn facility_from_name(name: &str) -> Option<i32> {
    sys::FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
}

/// Chooses the destinations once, before the first fork: `file` (appended to) and/or syslog
/// with the named facility, standard error when neither. Returns the warnings to show (syslog
/// asked for with no `/dev/log` to send to); fails, naming the file, if it cannot be opened.
pub(crate) fn init(
    quiet: bool,
    file: Option<&Path>,
    syslog_facility: Option<&str>,
) -> Result<Vec<String>, String> {
    let facility = syslog_facility.and_then(facility_from_name);
    let sinks = Sinks::open(file, facility)?;
    QUIET.store(quiet, Ordering::Relaxed);
    with_route(|route| *route = Route::Direct(sinks));
    let mut warnings = Vec::new();
    if facility.is_some() && !Path::new(DEV_LOG).exists() {
        warnings.push(format!(
            "--syslog: {DEV_LOG} does not exist (is a syslog daemon running?); log lines are lost until one listens there"
        ));
    }
    Ok(warnings)
}

/// Opens the log file again (SIGHUP, SIGUSR1), so a rotated file is let go; logs the failure.
pub(crate) fn reopen() {
    let result = with_route(|route| match route {
        Route::Direct(sinks) => sinks.reopen(),
        Route::Pipe { .. } => Ok(()),
    });
    if let Err(e) = result {
        error(&e);
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `message` on one line (control characters escaped) and at most [`MAX_MESSAGE`] bytes.
fn clean(message: &str) -> String {
    let mut out = crate::one_line(message);
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// A worker's record: `L<pid> <unix millis> <message>\n`, or for an event's JSON fields
/// `LJ<pid> <unix millis> <fields>\n`.
fn encode(line: &Line<'_>) -> Vec<u8> {
    let mut record = vec![line.level.digit()];
    let text = match line.fields {
        Some(fields) => {
            record.push(b'J');
            fields
        }
        None => line.message,
    };
    record.extend_from_slice(format!("{} {} {text}\n", line.pid, line.unix_millis).as_bytes());
    record
}

/// The line in a record (without its newline), or `None` if it is not one.
fn decode(record: &[u8]) -> Option<Line<'_>> {
    let (&digit, rest) = record.split_first()?;
    let level = Level::from_digit(digit)?;
    let (structured, rest) = match rest.split_first() {
        Some((b'J', rest)) => (true, rest),
        _ => (false, rest),
    };
    let text = std::str::from_utf8(rest).ok()?;
    let (pid, rest) = text.split_once(' ')?;
    let (millis, message) = rest.split_once(' ')?;
    Some(Line {
        level,
        pid: pid.parse().ok()?,
        unix_millis: millis.parse().ok()?,
        message,
        fields: structured.then_some(message),
    })
}

/// Writes `record` into the pipe whole, or not at all (never waits: the pipe is nonblocking, and
/// a write of at most `PIPE_BUF` bytes is all or nothing).
fn send(mut tx: &File, record: &[u8]) -> bool {
    std::io::Write::write(&mut tx, record).is_ok_and(|n| n == record.len())
}

/// Logs `message` at `level`.
pub(crate) fn log(level: Level, message: &str) {
    write(level, message, None);
}

/// Logs an event: `message` as text, or with `--log-format=json` its `fields`, the members of a
/// JSON object (`"client":"…","reason":"…"`, each value already JSON; see [`json_string`]).
pub(crate) fn event(level: Level, message: &str, fields: &str) {
    write(level, message, json().then_some(fields));
}

fn write(level: Level, message: &str, fields: Option<&str>) {
    if level == Level::Info && QUIET.load(Ordering::Relaxed) {
        return;
    }
    let message = clean(message);
    // Fields are JSON already, without control characters; only their length is bounded.
    let fields = fields.filter(|f| f.len() <= MAX_MESSAGE);
    let line = Line {
        level,
        pid: std::process::id(),
        unix_millis: unix_millis(),
        message: &message,
        fields,
    };
    with_route(|route| match route {
        Route::Direct(sinks) => sinks.write(&line),
        Route::Pipe { tx, dropped } => send_line(tx, dropped, &line),
    });
}

/// A worker's line into the pipe, preceded by the count of lines dropped before it when there
/// were some; a line the pipe cannot take at once is dropped and counted in `dropped`.
fn send_line(tx: &File, dropped: &mut u64, line: &Line<'_>) {
    if *dropped > 0 {
        let notice = format!(
            "{dropped} log line{} dropped: the supervisor was not reading them fast enough",
            if *dropped == 1 { "" } else { "s" }
        );
        let notice = Line {
            level: Level::Warning,
            message: &notice,
            fields: None,
            ..*line
        };
        if !send(tx, &encode(&notice)) {
            *dropped += 1;
            return;
        }
        *dropped = 0;
    }
    if !send(tx, &encode(line)) {
        *dropped += 1;
    }
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

/// The supervisor's end of the workers' log pipe.
#[derive(Debug)]
pub(crate) struct Collector {
    rx: File,
    /// Kept for the workers yet to be forked; each takes a copy.
    tx: OwnedFd,
    /// The start of a record whose end has not arrived yet.
    partial: Vec<u8>,
}

/// Room for bursts of lines while the supervisor is busy (the kernel may give less).
const PIPE_BYTES: i32 = 1 << 20;
/// The most the supervisor reads per wake-up, so a flood of lines cannot starve its other work.
const DRAIN_BYTES: usize = 256 * 1024;

impl Collector {
    /// A fresh pipe (close-on-exec, nonblocking at both ends).
    pub(crate) fn new() -> std::io::Result<Collector> {
        let (rx, tx) = sys::pipe()?;
        sys::set_pipe_size(&tx, PIPE_BYTES);
        Ok(Collector {
            rx: File::from(rx),
            tx,
            partial: Vec::new(),
        })
    }

    /// The descriptor to poll for lines.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Forwards the records waiting in the pipe to the destinations (a bounded amount per call).
    pub(crate) fn drain(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut taken = 0;
        while taken < DRAIN_BYTES {
            let n = match self.rx.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            taken += n;
            self.partial.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(end) = self.partial[start..].iter().position(|&b| b == b'\n') {
                if let Some(line) = decode(&self.partial[start..start + end]) {
                    with_route(|route| {
                        if let Route::Direct(sinks) = route {
                            sinks.write(&line);
                        }
                    });
                }
                start += end + 1;
            }
            self.partial.drain(..start);
            if self.partial.len() > 2 * MAX_MESSAGE + 64 {
                // Records are written whole, so this is not one; do not let it grow.
                self.partial.clear();
            }
        }
    }

    /// In a freshly forked worker: from now on this process logs into the pipe.
    pub(crate) fn into_worker(self) {
        let Collector { rx, tx, .. } = self;
        drop(rx);
        let tx = File::from(tx);
        with_route(|route| *route = Route::Pipe { tx, dropped: 0 });
    }
}

/// `unix_millis` as ISO 8601 in UTC with milliseconds: `2026-11-29T20:01:23.456Z`.
pub(crate) fn timestamp(unix_millis: u64) -> String {
    let secs = unix_millis / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        unix_millis % 1000
    )
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`: shift to eras of 400 years starting on 1 March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc_with_milliseconds() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29, a leap day in a century divisible by 400.
        assert_eq!(timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(timestamp(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(timestamp(1_795_982_483_456), "2026-11-29T20:01:23.456Z");
        assert_eq!(timestamp(1_798_575_683_456), "2026-12-29T20:21:23.456Z");
        // 2100 is not a leap year: 28 February is followed by 1 March.
        assert_eq!(timestamp(4_107_542_399_000), "2100-02-28T23:59:59.000Z");
        assert_eq!(timestamp(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn every_day_follows_the_one_before() {
        let mut previous = civil_from_days(-1);
        assert_eq!(previous, (1969, 12, 31));
        for days in 0..200_000 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (y, m) == (py, pm) && d == pd + 1;
            let next_month = y == py && m == pm + 1 && d == 1 && pd >= 28;
            let next_year = y == py + 1 && (m, d, pm, pd) == (1, 1, 12, 31);
            assert!(
                next_day || next_month || next_year,
                "{previous:?} -> {:?}",
                (y, m, d)
            );
            previous = (y, m, d);
        }
    }

    #[test]
    fn records_carry_level_pid_time_and_message() {
        let record = encode(&Line {
            level: Level::Warning,
            pid: 4242,
            unix_millis: 1_700_000_000_123,
            message: "disk: full",
            fields: None,
        });
        assert_eq!(record.last(), Some(&b'\n'));
        let line = decode(&record[..record.len() - 1]).expect("decodes");
        assert_eq!(line.level, Level::Warning);
        assert_eq!(line.pid, 4242);
        assert_eq!(line.unix_millis, 1_700_000_000_123);
        assert_eq!(line.message, "disk: full");
        assert_eq!(line.fields, None);
        assert!(decode(b"9 1 x").is_none());
        assert!(decode(b"").is_none());
        // An event's JSON fields cross the pipe as fields.
        let record = encode(&Line {
            level: Level::Info,
            pid: 7,
            unix_millis: 1,
            message: "text form",
            fields: Some(r#""client":"[::1]:5""#),
        });
        let line = decode(&record[..record.len() - 1]).expect("decodes");
        assert_eq!(line.fields, Some(r#""client":"[::1]:5""#));
    }

    #[test]
    fn json_strings_escape_what_json_requires() {
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string("x\ny\u{1}"), r#""x\ny\u0001""#);
        assert_eq!(json_string("caf\u{e9}"), "\"caf\u{e9}\"");
    }

    #[test]
    fn long_messages_are_cut_to_fit_one_atomic_pipe_write() {
        let long = "\u{e9}".repeat(5000);
        let message = clean(&long);
        let record = encode(&Line {
            level: Level::Info,
            pid: u32::MAX,
            unix_millis: u64::MAX,
            message: &message,
            fields: None,
        });
        assert!(record.len() < 4096, "{}", record.len());
        assert!(clean("a\nb").find('\n').is_none());
    }

    #[test]
    fn a_worker_drops_what_a_full_pipe_cannot_take_and_then_says_how_many() {
        let (rx, tx) = sys::pipe().expect("pipe");
        sys::set_pipe_size(&tx, 4096);
        let (mut rx, tx) = (File::from(rx), File::from(tx));
        let line = |message| Line {
            level: Level::Info,
            pid: 7,
            unix_millis: 1,
            message,
            fields: None,
        };
        let filler = "x".repeat(1000);
        let mut dropped = 0;
        let mut sent = 0;
        while dropped == 0 {
            send_line(&tx, &mut dropped, &line(&filler));
            sent += 1;
            assert!(sent < 1000, "a 4 KiB pipe never filled");
        }
        send_line(&tx, &mut dropped, &line("lost too"));
        assert_eq!(dropped, 2);
        // The supervisor catches up; the next line brings the count along.
        let mut buf = vec![0u8; 1 << 16];
        while rx.read(&mut buf).is_ok_and(|n| n > 0) {}
        send_line(&tx, &mut dropped, &line("after"));
        assert_eq!(dropped, 0);
        let n = rx.read(&mut buf).expect("the notice and the line");
        let text = String::from_utf8_lossy(&buf[..n]);
        let records: Vec<&str> = text.lines().collect();
        assert_eq!(records.len(), 2, "{text}");
        let notice = decode(records[0].as_bytes()).expect("a record");
        assert_eq!(notice.level, Level::Warning);
        assert!(notice.message.starts_with("2 log lines dropped"), "{text}");
        assert_eq!(
            decode(records[1].as_bytes()).expect("a record").message,
            "after"
        );
    }

    #[test]
    fn facilities_by_name() {
        assert!(facility_from_name("daemon").is_some());
        assert!(facility_from_name("LOCAL7").is_some());
        assert!(facility_from_name("nope").is_none());
    }
}
