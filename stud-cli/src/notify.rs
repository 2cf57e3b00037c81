//! The service manager's two protocols, spoken without libsystemd.
//!
//! - **Notification** (`sd_notify(3)`): when `$NOTIFY_SOCKET` names an `AF_UNIX` datagram socket
//!   (a path, or `@name` in the abstract namespace), each state change is one datagram of
//!   newline-separated `KEY=VALUE` lines: `READY=1` once every worker serves, `RELOADING=1` with
//!   `MONOTONIC_USEC=` when a reload starts (then `READY=1` when the new generation serves, as
//!   `Type=notify-reload` expects), `STOPPING=1` when draining starts, `STATUS=` for people, and
//!   `WATCHDOG=1` every half `$WATCHDOG_USEC` while the supervisor and all its workers live.
//!   Sending never blocks and never fails the daemon: a manager that went away costs a log line
//!   at most.
//! - **Socket activation** (`sd_listen_fds(3)`): when `$LISTEN_PID` is this process, descriptors
//!   3 to 3 + `$LISTEN_FDS` − 1 are listening sockets bound by the manager, named by
//!   `$LISTEN_FDNAMES` (colon-separated). [`listen_fds`] takes them over (close-on-exec) and
//!   clears the variables so nothing forked later takes them for its own.
//!
//! Only the supervisor talks to the manager; workers never send (`$NOTIFY_SOCKET` is read once,
//! before the first fork, and removed from the environment).

use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use crate::log;
use crate::sys;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for, or `None` when stud was not started by a
    /// manager that listens. The variable is removed from the environment either way.
    pub(crate) fn from_env() -> io::Result<Option<Notifier>> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let to = address(&name)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Some(Notifier { socket, to }))
    }

    /// Sends one message (`KEY=VALUE` lines). Best effort: the error is returned for the caller
    /// to log, and nothing is retried.
    pub(crate) fn send(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.to)?;
        Ok(())
    }

    /// Every worker serves (at start, and when a reload's new generation is up).
    pub(crate) fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// A reload begins, at `monotonic_usec` on `CLOCK_MONOTONIC`.
    pub(crate) fn reloading(&self, monotonic_usec: u64) -> io::Result<()> {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS=reloading the configuration"
        ))
    }

    /// Draining begins; the process exits when it ends.
    pub(crate) fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1\nSTATUS=draining connections")
    }

    /// A human-readable status line (`systemctl status` shows it).
    pub(crate) fn status(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", one_line(status)))
    }

    /// Tells the manager's watchdog that the service is alive.
    pub(crate) fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }
}

/// How often `STATUS=` is refreshed while serving.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What the supervisor tells the service manager, and when: the states it passes through
/// (ready, reloading, stopping), a status line, and the watchdog's keep-alive, which is only
/// sent while every worker is alive. Without `$NOTIFY_SOCKET` every call does nothing.
#[derive(Debug)]
pub(crate) struct Announcer {
    notifier: Option<Notifier>,
    watchdog_every: Option<Duration>,
    next_ping: Option<Instant>,
    next_status: Option<Instant>,
    /// `READY=1` is owed once every worker of the current generation serves.
    ready_owed: bool,
    /// A failed send was logged (once: a manager that went away would flood the log).
    failure_logged: bool,
}

impl Announcer {
    /// An announcer for the manager the environment names (if any).
    pub(crate) fn from_env() -> Result<Announcer, String> {
        let notifier = Notifier::from_env().map_err(|e| format!("NOTIFY_SOCKET: {e}"))?;
        let watchdog_every = watchdog_interval().filter(|_| notifier.is_some());
        Ok(Announcer {
            notifier,
            watchdog_every,
            next_ping: None,
            next_status: None,
            ready_owed: true,
            failure_logged: false,
        })
    }

    fn send(&mut self, what: impl FnOnce(&Notifier) -> io::Result<()>) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        if let Err(e) = what(notifier) {
            if !self.failure_logged {
                self.failure_logged = true;
                log::warning(&format!("cannot notify the service manager: {e}"));
            }
        }
    }

    /// Called after every wake: `serving` when every current worker has started its loop,
    /// `alive` when every worker position has a live, recently beating worker; `status`
    /// describes the service for people.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        serving: bool,
        alive: bool,
        status: impl FnOnce() -> String,
    ) {
        if self.notifier.is_none() {
            return;
        }
        if self.ready_owed && serving {
            self.ready_owed = false;
            let text = status();
            self.send(|n| n.ready(&text));
            self.next_status = Some(now + STATUS_EVERY);
        } else if self.next_status.is_some_and(|t| t <= now) {
            let text = status();
            self.send(|n| n.status(&text));
            self.next_status = Some(now + STATUS_EVERY);
        }
        if let Some(every) = self.watchdog_every {
            if self.next_ping.is_none_or(|t| t <= now) {
                if alive {
                    self.send(Notifier::watchdog);
                }
                self.next_ping = Some(now + every);
            }
        }
    }

    /// When [`Announcer::tick`] has something to do next.
    pub(crate) fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.notifier.as_ref()?;
        // While READY=1 is owed, look often: workers report their start through the board.
        let ready = self.ready_owed.then(|| now + Duration::from_millis(50));
        [ready, self.next_ping, self.next_status]
            .into_iter()
            .flatten()
            .min()
    }

    /// A reload (SIGHUP) begins.
    pub(crate) fn reloading(&mut self) {
        let usec = sys::monotonic_micros();
        self.send(|n| n.reloading(usec));
    }

    /// The reload built a new configuration: READY=1 follows once its workers serve.
    pub(crate) fn reloaded(&mut self) {
        self.ready_owed = true;
    }

    /// The reload failed; the previous generation serves on.
    pub(crate) fn reload_failed(&mut self, why: &str) {
        self.ready_owed = false;
        let text = format!("reload failed, still serving the previous configuration: {why}");
        self.send(|n| n.ready(&text));
    }

    /// Draining for exit begins.
    pub(crate) fn stopping(&mut self) {
        self.ready_owed = false;
        self.watchdog_every = None;
        self.send(Notifier::stopping);
    }
}

/// The socket address `$NOTIFY_SOCKET` names: a path, or `@name` for the abstract namespace.
fn address(name: &std::ffi::OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((b'@', abstract_name)) => {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(abstract_name)
        }
        Some((b'/', _)) => SocketAddr::from_pathname(std::path::Path::new(name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET={} is neither an absolute path nor an @abstract name",
                name.to_string_lossy()
            ),
        )),
    }
}

/// `text` with line breaks flattened, so it stays one `STATUS=` value.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` when it is set for this process
/// (`$WATCHDOG_PID` absent or ours), as `sd_watchdog_enabled(3)` advises. The variables are
/// removed so workers do not see them.
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    std::env::remove_var("WATCHDOG_USEC");
    std::env::remove_var("WATCHDOG_PID");
    watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// A listening socket handed over by the service manager, with the name it was given
/// (`FileDescriptorName=`, or `unknown`).
#[derive(Debug)]
pub(crate) struct Inherited {
    pub(crate) name: String,
    pub(crate) listener: TcpListener,
}

/// Takes over the sockets passed by the manager (none when `$LISTEN_PID` is not this process).
/// Each must be a listening TCP socket: anything else is an error naming its descriptor, since
/// serving on part of what the unit declares would surprise more than refusing to start.
pub(crate) fn listen_fds() -> Result<Vec<Inherited>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let Some(count) = passed_count(pid.as_deref(), fds.as_deref(), std::process::id())? else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = names
        .as_deref()
        .map_or_else(Vec::new, |n| n.split(':').collect());
    (0..count)
        .map(|i| {
            let raw = LISTEN_FDS_START + i;
            let fd: OwnedFd = sys::adopt_inherited_fd(raw)
                .map_err(|e| format!("socket activation: descriptor {raw}: {e}"))?;
            let socket = socket2::Socket::from(fd);
            let listening = socket.is_listener().unwrap_or(false);
            let tcp = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some();
            if !listening || !tcp {
                return Err(format!(
                    "socket activation: descriptor {raw} is not a listening TCP socket (use ListenStream= with an address or port)"
                ));
            }
            Ok(Inherited {
                name: names
                    .get(usize::try_from(i).unwrap_or(usize::MAX))
                    .map_or("unknown", |n| n)
                    .to_string(),
                listener: socket.into(),
            })
        })
        .collect()
}

/// Takes the inherited socket that serves `frontend`: the one bound to its address (for `*`,
/// a wildcard address on its port). `None` when no passed socket matches; an error when the
/// frontend's host does not resolve.
pub(crate) fn take_inherited(
    inherited: &mut Vec<Inherited>,
    frontend: &crate::args::Endpoint,
) -> Result<Option<TcpListener>, String> {
    if inherited.is_empty() || frontend.port == 0 {
        return Ok(None);
    }
    let wanted = frontend.resolve()?;
    let position = inherited.iter().position(|i| {
        let Ok(addr) = i.listener.local_addr() else {
            return false;
        };
        addr.port() == frontend.port
            && match &frontend.host {
                None => addr.ip().is_unspecified(),
                Some(_) => wanted.contains(&addr),
            }
    });
    Ok(position.map(|p| inherited.swap_remove(p).listener))
}

/// Refuses to start when the manager passed a socket no frontend asked for: serving it under a
/// default configuration, or silently not serving it, would both surprise.
pub(crate) fn no_inherited_left(inherited: &[Inherited]) -> Result<(), String> {
    match inherited.first() {
        None => Ok(()),
        Some(i) => Err(format!(
            "socket activation: the passed socket {} ({}) matches no -f/--frontend; give -f for its address",
            i.name,
            i.listener
                .local_addr()
                .map_or_else(|_| "unknown address".into(), |a| a.to_string())
        )),
    }
}

/// The first descriptor a manager passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// How many descriptors were passed to process `me`, from `$LISTEN_PID` and `$LISTEN_FDS`.
fn passed_count(pid: Option<&str>, fds: Option<&str>, me: u32) -> Result<Option<i32>, String> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(me) {
        // Meant for another process (an ancestor that did not clear them).
        return Ok(None);
    }
    match fds.trim().parse::<i32>() {
        Ok(n) if (0..=1024).contains(&n) => Ok((n > 0).then_some(n)),
        _ => Err(format!(
            "socket activation: LISTEN_FDS={fds} is not a count"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_names_are_paths_or_abstract() {
        assert!(address("/run/systemd/notify".as_ref()).is_ok());
        assert!(address("@stud-test".as_ref()).is_ok());
        for bad in ["", "relative/path", "x"] {
            assert!(address(bad.as_ref()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn messages_reach_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("stud-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).expect("bind a datagram socket");
        let notifier = Notifier {
            socket: UnixDatagram::unbound().expect("socket"),
            to: SocketAddr::from_pathname(&path).expect("address"),
        };
        notifier.ready("1 worker\nserving").expect("send");
        notifier.reloading(42).expect("send");
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).expect("ready arrives");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=1 worker serving");
        let n = manager.recv(&mut buf).expect("reloading arrives");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.starts_with("RELOADING=1\nMONOTONIC_USEC=42\n"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ready_comes_once_serving_then_status_every_ten_seconds_and_pings_only_while_alive() {
        let dir = std::env::temp_dir().join(format!("stud-announce-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).expect("bind");
        manager.set_nonblocking(true).expect("nonblocking");
        let mut announcer = Announcer {
            notifier: Some(Notifier {
                socket: UnixDatagram::unbound().expect("socket"),
                to: SocketAddr::from_pathname(&path).expect("address"),
            }),
            watchdog_every: Some(Duration::from_secs(1)),
            next_ping: None,
            next_status: None,
            ready_owed: true,
            failure_logged: false,
        };
        let got = || {
            let mut all = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = manager.recv(&mut buf) {
                all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            all
        };
        let t0 = Instant::now();
        // Not serving yet, and a worker is not alive: neither READY nor a ping.
        announcer.tick(t0, false, false, || "s".into());
        assert!(got().is_empty());
        announcer.tick(t0 + Duration::from_secs(1), true, true, || "up".into());
        assert_eq!(got(), ["READY=1\nSTATUS=up", "WATCHDOG=1"]);
        // Before ten seconds, nothing but the pings.
        announcer.tick(t0 + Duration::from_secs(5), true, true, || "later".into());
        assert_eq!(got(), ["WATCHDOG=1"]);
        announcer.tick(t0 + Duration::from_secs(11), true, false, || "ten".into());
        assert_eq!(got(), ["STATUS=ten"], "no ping while a worker is not alive");
        // A failed reload says so at once, and stopping ends the pings.
        announcer.reload_failed("bad PEM");
        let failed = got();
        assert!(
            failed[0].starts_with("READY=1\nSTATUS=reload failed"),
            "{failed:?}"
        );
        announcer.stopping();
        assert_eq!(got(), ["STOPPING=1\nSTATUS=draining connections"]);
        announcer.tick(t0 + Duration::from_secs(30), true, true, || "x".into());
        assert_eq!(got(), ["STATUS=x"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_watchdog_runs_at_half_its_period_for_this_process_only() {
        assert_eq!(
            watchdog_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }

    #[test]
    fn passed_sockets_count_only_for_this_process() {
        assert_eq!(passed_count(Some("7"), Some("2"), 7), Ok(Some(2)));
        assert_eq!(passed_count(Some("8"), Some("2"), 7), Ok(None));
        assert_eq!(passed_count(Some("7"), Some("0"), 7), Ok(None));
        assert_eq!(passed_count(None, Some("2"), 7), Ok(None));
        assert!(passed_count(Some("7"), Some("-1"), 7).is_err());
        assert!(passed_count(Some("7"), Some("many"), 7).is_err());
    }
}
