//! Where the supervisor puts log lines: standard error, the `-l` file, syslog — each written
//! without waiting on its reader.
//!
//! A destination that cannot take a line now (standard error into a pipe nobody reads, a full
//! disk, syslog down or wedged) loses it and counts it; the first line it takes afterwards is
//! preceded by one line saying how many were lost and why. The supervisor therefore never stops
//! reaping, reloading or watching its workers because of a slow log reader.
//!
//! Syslog is spoken directly: one datagram per line to `/dev/log`, addressed by path each time,
//! so a syslog daemon that restarts (and makes a new socket) is found again with no reconnect
//! logic, and a full socket buffer is an error, not a wait.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::log::{timestamp, Level};
use crate::sys;

/// The socket syslog daemons (rsyslog, syslog-ng, journald) listen on.
pub(crate) const DEV_LOG: &str = "/dev/log";

/// One line, as every destination receives it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) level: Level,
    /// The process that logged it (a worker's own pid for its lines).
    pub(crate) pid: u32,
    /// When it was logged, in milliseconds since the Unix epoch.
    pub(crate) unix_millis: u64,
    /// One line of text, without the trailing newline.
    pub(crate) message: &'a str,
    /// With `--log-format=json`, an event's fields as the members of a JSON object
    /// (`"client":"…","reason":"…"`), shown instead of `message`.
    pub(crate) fields: Option<&'a str>,
}

impl Line<'_> {
    /// `2026-11-29T20:01:23.456Z stud[PID]: warning: message\n`, or with `--log-format=json`
    /// one JSON object: `{"time":"…","pid":…,"level":"warning","message":"…"}\n`, an event's
    /// fields in place of `message`.
    fn text(&self) -> String {
        if crate::log::json() {
            return format!("{}\n", self.json());
        }
        format!(
            "{} stud[{}]: {}{}\n",
            timestamp(self.unix_millis),
            self.pid,
            self.level.tag(),
            self.message
        )
    }

    /// The line as one JSON object.
    fn json(&self) -> String {
        let body = match self.fields {
            Some(fields) => fields.to_string(),
            None => format!("\"message\":{}", crate::log::json_string(self.message)),
        };
        format!(
            "{{\"time\":\"{}\",\"pid\":{},\"level\":\"{}\",{body}}}",
            timestamp(self.unix_millis),
            self.pid,
            self.level.name()
        )
    }
}

/// A destination, with what it lost since it last took a line.
#[derive(Debug)]
struct Lossy<T> {
    out: T,
    lost: u64,
    /// Why the last line was lost, for the notice.
    why: String,
}

impl<T: Destination> Lossy<T> {
    fn new(out: T) -> Lossy<T> {
        Lossy {
            out,
            lost: 0,
            why: String::new(),
        }
    }

    fn write(&mut self, line: &Line<'_>) {
        if self.lost > 0 {
            let notice = format!(
                "{} log line{} lost: {} ({})",
                self.lost,
                if self.lost == 1 { " was" } else { "s were" },
                self.out.name(),
                self.why
            );
            let notice = Line {
                level: Level::Warning,
                pid: std::process::id(),
                unix_millis: line.unix_millis,
                message: &notice,
                fields: None,
            };
            if let Err(e) = self.out.put(&notice) {
                self.lose(&e);
                return;
            }
            self.lost = 0;
        }
        if let Err(e) = self.out.put(line) {
            self.lose(&e);
        }
    }

    fn lose(&mut self, e: &io::Error) {
        self.lost += 1;
        self.why = if e.kind() == io::ErrorKind::WouldBlock {
            "its reader was not keeping up".into()
        } else {
            crate::listen::describe(e)
        };
    }
}

/// Something a line can be written to without waiting.
trait Destination {
    /// Writes the line whole, or fails (`WouldBlock` when it would have to wait).
    fn put(&mut self, line: &Line<'_>) -> io::Result<()>;
    /// What to call it in a notice.
    fn name(&self) -> String;
}

/// Standard error, shared with whoever started stud: it is never made nonblocking (that would
/// change it for them too); a zero-timeout poll asks first instead.
#[derive(Debug)]
struct Stderr;

impl Destination for Stderr {
    fn put(&mut self, line: &Line<'_>) -> io::Result<()> {
        let stderr = io::stderr();
        if !sys::writable_now(&stderr) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // One write per line (at most PIPE_BUF, see `log::MAX_MESSAGE`), so lines never
        // interleave mid-line and a pipe takes it whole once poll said it has room.
        stderr.lock().write_all(line.text().as_bytes())
    }

    fn name(&self) -> String {
        "standard error".into()
    }
}

/// The `-l` file, opened for appending; reopened on request so it can be rotated.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
}

fn open_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

impl Destination for LogFile {
    fn put(&mut self, line: &Line<'_>) -> io::Result<()> {
        self.file.write_all(line.text().as_bytes())
    }

    fn name(&self) -> String {
        format!("the log file {}", self.path.display())
    }
}

/// Syslog over `/dev/log`, one datagram per line.
#[derive(Debug)]
struct Syslog {
    socket: UnixDatagram,
    facility: i32,
}

impl Destination for Syslog {
    fn put(&mut self, line: &Line<'_>) -> io::Result<()> {
        self.put_to(line, Some(DEV_LOG))
    }

    fn name(&self) -> String {
        format!("syslog at {DEV_LOG}")
    }
}

impl Syslog {
    /// Sends `line` to `path`, or where the socket is connected when `None`.
    fn put_to(&self, line: &Line<'_>, path: Option<&str>) -> io::Result<()> {
        let severity = match line.level {
            Level::Error => sys::LOG_ERR,
            Level::Warning => sys::LOG_WARNING,
            Level::Info => sys::LOG_INFO,
        };
        // RFC 3164, as the C library writes it: local time without the year, then the tag.
        let secs = i64::try_from(line.unix_millis / 1000).unwrap_or(0);
        let stamp = sys::local_time(secs).map_or_else(String::new, |(mon, day, h, m, s)| {
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let month = MONTHS.get(mon as usize).copied().unwrap_or("Jan");
            format!("{month} {day:>2} {h:02}:{m:02}:{s:02} ")
        });
        let datagram = if crate::log::json() {
            format!(
                "<{}>{stamp}stud[{}]: {}",
                self.facility | severity,
                line.pid,
                line.json()
            )
        } else {
            format!(
                "<{}>{stamp}stud[{}]: {}{}",
                self.facility | severity,
                line.pid,
                line.level.tag(),
                line.message
            )
        };
        match path {
            Some(path) => self.socket.send_to(datagram.as_bytes(), path),
            None => self.socket.send(datagram.as_bytes()),
        }
        .map(|_| ())
    }
}

/// Every destination chosen at start.
#[derive(Debug)]
pub(crate) struct Sinks {
    stderr: Option<Lossy<Stderr>>,
    file: Option<Lossy<LogFile>>,
    syslog: Option<Lossy<Syslog>>,
}

impl Sinks {
    /// Standard error alone: before the configuration is known.
    pub(crate) fn stderr() -> Sinks {
        Sinks {
            stderr: Some(Lossy::new(Stderr)),
            file: None,
            syslog: None,
        }
    }

    /// The file `file` (appended to) and/or syslog with `syslog_facility`; standard error when
    /// neither is asked for. Errors name the file.
    pub(crate) fn open(file: Option<&Path>, syslog_facility: Option<i32>) -> Result<Sinks, String> {
        let file = file
            .map(|path| {
                open_append(path)
                    .map(|file| {
                        Lossy::new(LogFile {
                            path: path.to_path_buf(),
                            file,
                        })
                    })
                    .map_err(|e| {
                        format!(
                            "cannot open log file {}: {}",
                            path.display(),
                            crate::listen::describe(&e)
                        )
                    })
            })
            .transpose()?;
        let syslog = syslog_facility
            .map(|facility| {
                let socket = UnixDatagram::unbound()
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|e| format!("cannot make a socket for syslog: {e}"))?;
                Ok::<_, String>(Lossy::new(Syslog { socket, facility }))
            })
            .transpose()?;
        let stderr = (file.is_none() && syslog.is_none()).then(|| Lossy::new(Stderr));
        Ok(Sinks {
            stderr,
            file,
            syslog,
        })
    }

    /// Writes `line` to every destination that can take it now.
    pub(crate) fn write(&mut self, line: &Line<'_>) {
        if let Some(s) = &mut self.stderr {
            s.write(line);
        }
        if let Some(f) = &mut self.file {
            f.write(line);
        }
        if let Some(s) = &mut self.syslog {
            s.write(line);
        }
    }

    /// Opens the log file again by its name (after logrotate moved it away). On failure the
    /// old file is kept and the error returned.
    pub(crate) fn reopen(&mut self) -> Result<(), String> {
        let Some(lossy) = &mut self.file else {
            return Ok(());
        };
        let path = &lossy.out.path;
        let file = open_append(path).map_err(|e| {
            format!(
                "cannot reopen log file {}, still writing to the old one: {}",
                path.display(),
                crate::listen::describe(&e)
            )
        })?;
        lossy.out.file = file;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that refuses the first `refuse` lines, then records what it takes.
    struct Flaky {
        refuse: usize,
        taken: Vec<String>,
    }

    impl Destination for Flaky {
        fn put(&mut self, line: &Line<'_>) -> io::Result<()> {
            if self.refuse > 0 {
                self.refuse -= 1;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.taken.push(line.text());
            Ok(())
        }

        fn name(&self) -> String {
            "the test destination".into()
        }
    }

    fn line(message: &str) -> Line<'_> {
        Line {
            level: Level::Info,
            pid: 42,
            unix_millis: 1_795_982_483_456,
            message,
            fields: None,
        }
    }

    #[test]
    fn lines_a_destination_cannot_take_are_counted_then_reported_once() {
        let mut sink = Lossy::new(Flaky {
            refuse: 3,
            taken: Vec::new(),
        });
        for m in ["one", "two", "three", "four", "five"] {
            sink.write(&line(m));
        }
        let taken = &sink.out.taken;
        assert_eq!(taken.len(), 3, "{taken:?}");
        assert!(
            taken[0].contains(
                "warning: 3 log lines were lost: the test destination (its reader was not keeping up)"
            ),
            "{taken:?}"
        );
        assert_eq!(
            taken[1], "2026-11-29T20:01:23.456Z stud[42]: four\n",
            "{taken:?}"
        );
        assert!(taken[2].ends_with("stud[42]: five\n"), "{taken:?}");
        assert_eq!(sink.lost, 0);
    }

    #[test]
    fn syslog_datagrams_carry_facility_severity_and_the_lines_pid() {
        let dir = std::env::temp_dir().join(format!("stud-sink-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("log");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let socket = UnixDatagram::unbound().expect("socket");
        socket.connect(&path).expect("connect");
        let syslog = Syslog {
            socket,
            facility: libc::LOG_LOCAL3,
        };
        syslog
            .put_to(&line("hello"), None)
            .expect("the datagram is sent");
        let mut buf = [0u8; 512];
        let n = receiver.recv(&mut buf).expect("received");
        let text = String::from_utf8_lossy(&buf[..n]);
        // local3 (19 << 3) | info (6) = 158.
        assert!(text.starts_with("<158>"), "{text}");
        assert!(text.ends_with("stud[42]: hello"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
