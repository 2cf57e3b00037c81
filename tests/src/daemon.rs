//! A `stud --daemon` under test, as an operator runs one: started from a working directory of
//! the test's choosing, found through its pidfile, stopped by signal, and killed with its whole
//! process tree when the handle drops (whatever state a failed assertion left it in).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::net::{self, Tls};
use crate::process::{alive, run_in, send_signal};
use crate::TIMEOUT;

/// A detached `stud` and the pidfile it wrote.
#[derive(Debug)]
pub struct Daemon {
    /// The supervisor's pid, read from the pidfile.
    pub pid: i32,
    /// The pidfile, as an absolute path.
    pub pidfile: PathBuf,
}

impl Daemon {
    /// Runs `stud --daemon` with `args` in `dir` and waits for the foreground process to exit 0;
    /// `pidfile` (relative to `dir` or absolute) is where the daemon must have written its pid.
    /// Fails the test with stud's stderr if it did not start.
    pub fn start(bin: &Path, dir: &Path, args: &[&str], pidfile: &Path) -> Daemon {
        let mut all = vec!["--daemon"];
        all.extend_from_slice(args);
        let out = run_in(bin, Some(dir), &all);
        assert_eq!(
            out.code,
            Some(0),
            "stud --daemon {args:?} did not start:\n{}",
            out.stderr
        );
        Daemon::found(dir, pidfile)
    }

    /// [`Daemon::start`] with the arguments `args` makes for a free loopback frontend
    /// (`127.0.0.1,PORT`); when that port was taken between choosing and binding (stud says
    /// "Address already in use"), another is tried. Returns the daemon and its frontend.
    pub fn start_on_free_port(
        bin: &Path,
        dir: &Path,
        pidfile: &Path,
        args: impl Fn(&str) -> Vec<String>,
    ) -> (Daemon, SocketAddr) {
        for _ in 0..4 {
            let port = net::free_port();
            let frontend = format!("127.0.0.1,{port}");
            let made = args(&frontend);
            let mut all = vec!["--daemon"];
            all.extend(made.iter().map(String::as_str));
            let out = run_in(bin, Some(dir), &all);
            if out.code != Some(0) && out.stderr.contains("Address already in use") {
                continue;
            }
            assert_eq!(
                out.code,
                Some(0),
                "stud --daemon {made:?} did not start:\n{}",
                out.stderr
            );
            return (
                Daemon::found(dir, pidfile),
                SocketAddr::from(([127, 0, 0, 1], port)),
            );
        }
        panic!("no free port could be bound in four tries");
    }

    /// The daemon whose pid is in `pidfile` (relative to `dir` or absolute).
    fn found(dir: &Path, pidfile: &Path) -> Daemon {
        let pidfile = dir.join(pidfile);
        let text = std::fs::read_to_string(&pidfile).unwrap_or_else(|e| {
            panic!("no pidfile at {}: {e}", pidfile.display());
        });
        let pid = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid in {}: {text:?}", pidfile.display()));
        assert!(alive(pid), "the daemon (pid {pid}) is not running");
        Daemon { pid, pidfile }
    }

    /// Sends `signal` to the supervisor.
    pub fn signal(&self, signal: i32) {
        assert!(send_signal(self.pid, signal), "cannot signal the daemon");
    }

    /// Sends SIGTERM and waits (bounded) for the supervisor to exit; returns whether the
    /// pidfile is gone afterwards.
    pub fn stop(&self) -> bool {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + TIMEOUT;
        while alive(self.pid) {
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The supervisor removes the file before it exits.
        !self.pidfile.exists()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The daemon leads its own session and process group.
        send_signal(-self.pid, libc::SIGKILL);
        send_signal(self.pid, libc::SIGKILL);
    }
}

/// Connects to `addr` with `config` until a handshake succeeds (a certificate just reloaded
/// takes a new worker to serve), or fails the test after [`TIMEOUT`] with the last error.
pub fn served_with(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match net::connect(addr, config) {
            Ok(tls) => return tls,
            Err(e) => {
                assert!(Instant::now() < deadline, "never served at {addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Writes `line` through `tls` and checks that the echo backend sends it back.
pub fn echoes(tls: &mut Tls, line: &[u8]) {
    std::io::Write::write_all(tls, line).expect("write through stud");
    let got = net::read_exact(tls, line.len()).expect("echo through stud");
    assert_eq!(got, line);
}
