//! haproxy as a peer of stud: in the foreground on a free loopback port, with a configuration the
//! test writes, its log in a scratch directory, killed when the handle drops. Callers check
//! `optional_tool("haproxy")` first.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::free_port;
use crate::pki::TempDir;
use crate::TIMEOUT;

/// A running haproxy.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    /// The address of its first `bind`.
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Starts haproxy with the configuration `config` makes for its listening address.
    pub fn start(config: impl Fn(SocketAddr) -> String) -> Haproxy {
        Haproxy::start_in(|addr, _| config(addr))
    }

    /// Like [`Haproxy::start`], with haproxy's scratch directory passed too (for an admin
    /// socket: see [`Haproxy::admin_socket`]). The port is found free first; should another
    /// process take it before haproxy binds, haproxy exits and the start is tried again on a new
    /// port (bounded).
    pub fn start_in(config: impl Fn(SocketAddr, &Path) -> String) -> Haproxy {
        let mut log = String::new();
        for _ in 0..5 {
            let dir = TempDir::new();
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let cfg = dir.write("haproxy.cfg", config(addr, dir.path()));
            let stderr =
                std::fs::File::create(dir.path().join("haproxy.log")).expect("create haproxy.log");
            let mut child = Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start haproxy");
            let deadline = Instant::now() + TIMEOUT;
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Haproxy { child, addr, dir };
                }
                if child.try_wait().expect("haproxy status").is_some() || Instant::now() > deadline
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    log =
                        std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("haproxy did not start in five tries; its last log:\n{log}");
    }

    /// The path a configuration should give `stats socket` for [`Haproxy::admin`] to reach it.
    pub fn admin_socket(dir: &Path) -> PathBuf {
        dir.join("admin.sock")
    }

    /// Sends one command to the admin socket and returns the answer.
    pub fn admin(&self, command: &str) -> std::io::Result<String> {
        let mut sock = UnixStream::connect(Haproxy::admin_socket(self.dir.path()))?;
        sock.set_read_timeout(Some(TIMEOUT))?;
        sock.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        sock.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// The status haproxy gives server `server` of proxy `proxy` ("UP", "DOWN", "MAINT", …),
    /// from `show stat` on the admin socket.
    pub fn server_status(&self, proxy: &str, server: &str) -> Option<String> {
        let csv = self.admin("show stat").ok()?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let column = header.iter().position(|h| *h == "status")?;
        lines.find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.first() == Some(&proxy) && fields.get(1) == Some(&server))
                .then(|| fields.get(column).map(|s| (*s).to_owned()))
                .flatten()
        })
    }

    /// Waits until haproxy's health checks give `server` the status `want` (its status
    /// starts with it: "UP", "DOWN"); panics after [`TIMEOUT`].
    pub fn wait_status(&self, proxy: &str, server: &str, want: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.server_status(proxy, server);
            if last.as_deref().is_some_and(|s| s.starts_with(want)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("haproxy never marked {proxy}/{server} {want}; last status {last:?}");
    }

    /// What haproxy wrote to its standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}
