//! `--syslog` as operators meet it: no syslog daemon at all (a warning at start, not silence),
//! and a syslog daemon that restarts while the workers run chrooted as another user (their lines
//! keep arriving). Each test runs stud in a private mount namespace whose `/dev` is a directory
//! of the test's own, so the test plays the syslog daemon at `/dev/log` without touching the
//! machine's.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stud_tests::daemon::{echoes, served_with};
use stud_tests::net::{self, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{effective_uid, spawn_on_free_port, Stud};
use stud_tests::{stud_bin, TIMEOUT};

/// Runs its arguments in the current (new) mount namespace with `/dev` replaced by `$1`, into
/// which the host's null, zero, random and urandom are bound first.
const PRIVATE_DEV: &str = r#"set -e
d=$1; shift
for f in null zero random urandom; do touch "$d/$f"; mount --bind "/dev/$f" "$d/$f"; done
mount --rbind "$d" /dev
exec "$@"
"#;

/// Whether this machine lets the test make a mount namespace (root and `unshare`); prints why
/// not, once, when it does not.
fn namespaces() -> bool {
    if effective_uid() != 0 {
        stud_tests::skipped("not root, so no private /dev can be mounted");
        return false;
    }
    stud_tests::optional_tool("unshare")
}

/// Starts stud with `args` in a mount namespace whose `/dev` is `dev`.
fn spawn_with_dev(dev: &Path, args: &[&str]) -> Stud {
    let bin = stud_bin!();
    let mut all = vec![
        "-m",
        "sh",
        "-c",
        PRIVATE_DEV,
        "sh",
        dev.to_str().expect("utf-8"),
        bin.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    Stud::spawn(Path::new("unshare"), &all)
}

/// A syslog daemon of the test's own: a datagram socket at `path`.
struct Syslogd {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Syslogd {
    fn bind(path: &Path) -> Syslogd {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path).expect("bind the syslog socket");
        Syslogd {
            socket,
            path: path.to_path_buf(),
        }
    }

    /// Receives datagrams until one contains `needle` (bounded by [`TIMEOUT`]); returns it.
    fn wait(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = vec![0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .expect("timeout");
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.contains(needle) {
                    return Some(text);
                }
            }
        }
    }

    /// Stops, as a syslog daemon does on restart: its socket file goes away with it.
    fn stop(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn syslog_without_dev_log_warns_at_start_and_still_serves() {
    if !namespaces() {
        return;
    }
    let pki = Pki::new();
    let dev = TempDir::new();
    let b = echo_backend().to_string();
    let (stud, addr) = spawn_on_free_port(|f| {
        spawn_with_dev(
            dev.path(),
            &[
                "-s",
                "-f",
                f,
                "-b",
                &b,
                pki.site_pem.to_str().expect("utf-8"),
            ],
        )
    });
    stud.wait_line(
        |l| l.contains("stud: warning: --syslog: /dev/log does not exist"),
        TIMEOUT,
    )
    .unwrap_or_else(|| panic!("no warning about /dev/log; stderr:\n{}", stud.output()));
    echoes(
        &mut served_with(addr, &net::client_config(&pki.ca_der)),
        b"hi",
    );
}

#[test]
fn chrooted_workers_keep_logging_to_syslog_across_a_syslog_restart() {
    if !namespaces() {
        return;
    }
    let pki = Pki::new();
    let dev = TempDir::new();
    let jail = TempDir::new();
    let files = TempDir::new();
    let log_file = files.path().join("stud.log");
    let log = dev.path().join("log");
    let syslogd = Syslogd::bind(&log);
    let b = echo_backend().to_string();
    let (stud, addr) = spawn_on_free_port(|f| {
        spawn_with_dev(
            dev.path(),
            &[
                "-s",
                "--syslog-facility=local3",
                "--log-conns",
                "-l",
                log_file.to_str().expect("utf-8"),
                "-u",
                "nobody",
                "-r",
                jail.path().to_str().expect("utf-8"),
                "-f",
                f,
                "-b",
                &b,
                pki.site_pem.to_str().expect("utf-8"),
            ],
        )
    });
    let listening = syslogd
        .wait("listening on")
        .unwrap_or_else(|| panic!("no start-up line in syslog; stderr:\n{}", stud.output()));
    // local3 (19) * 8 + info (6).
    assert!(listening.starts_with("<158>"), "{listening}");
    assert!(
        !stud.output().contains("warning: --syslog"),
        "{}",
        stud.output()
    );
    let config = net::client_config(&pki.ca_der);
    echoes(&mut served_with(addr, &config), b"one");
    let closed = syslogd
        .wait("closed: ")
        .expect("the worker's connection line in syslog");
    assert!(
        !closed.contains(&format!("stud[{}]", stud.pid())),
        "a worker's line under the supervisor's pid: {closed}"
    );
    // With -l too, every line goes to both.
    let in_file = stud_tests::procfs::wait_for(TIMEOUT, || {
        std::fs::read_to_string(&log_file)
            .ok()
            .filter(|t| t.contains("closed: ") && t.contains("listening on"))
    });
    assert!(
        in_file.is_some(),
        "the -l file does not have the lines syslog got"
    );

    // The syslog daemon restarts: a new socket at the same path.
    syslogd.stop();
    let syslogd = Syslogd::bind(&log);
    echoes(&mut served_with(addr, &config), b"two");
    syslogd
        .wait("closed: ")
        .unwrap_or_else(|| panic!("worker lines lost after a syslog restart"));
}
