//! Starting, pinning, watching and stopping the processes of a run: stud, hitch, haproxy and
//! the harness's own helper processes.
//!
//! Every child is pinned to its CPU before `exec` (what `taskset -c N` does) and gets
//! `PR_SET_PDEATHSIG`, so it dies with the harness even when the harness is killed; [`Child`]
//! kills the whole process tree it started when dropped.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;

/// The CPU the proxy under test runs on.
pub const PROXY_CPU: usize = 0;
/// The CPU the load generator and backends run on.
pub const LOAD_CPU: usize = 1;

/// Which terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// stud, this project.
    Stud,
    /// hitch (Varnish's stud descendant), from Debian.
    Hitch,
    /// haproxy in TCP mode with `ssl` on the bind line, from Debian.
    Haproxy,
}

impl Kind {
    /// All terminators, stud first.
    pub const ALL: [Kind; 3] = [Kind::Stud, Kind::Hitch, Kind::Haproxy];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stud => "stud",
            Kind::Hitch => "hitch",
            Kind::Haproxy => "haproxy",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Pins the calling process to `cpu` (what `taskset -c cpu` does).
pub fn pin_self(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it for cpu < 1024.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A command whose process is pinned to `cpu` and dies with the harness.
pub fn command(program: impl AsRef<std::ffi::OsStr>, cpu: usize) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (sched_setaffinity, prctl) on memory it owns.
    unsafe {
        cmd.pre_exec(move || {
            pin_self(cpu)?;
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A started process tree, killed when dropped.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: process::Child,
}

impl Child {
    /// Starts `cmd` (stdout and stderr to `log`, if given).
    pub fn spawn(name: &str, mut cmd: Command, log: Option<&Path>) -> io::Result<Child> {
        if let Some(log) = log {
            let f = std::fs::File::create(log)?;
            cmd.stdout(f.try_clone()?).stderr(f);
        }
        cmd.stdin(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        crate::helpers::register(child.id());
        Ok(Child {
            name: name.to_string(),
            child,
        })
    }

    /// Wraps a child started elsewhere (with piped stdio).
    pub fn adopt(name: &str, child: process::Child) -> Child {
        crate::helpers::register(child.id());
        Child {
            name: name.to_string(),
            child,
        }
    }

    /// The root pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The standard streams, for helpers the harness talks to.
    pub fn inner(&mut self) -> &mut process::Child {
        &mut self.child
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "{} exited unexpectedly ({status})",
                self.name
            ))),
        }
    }

    /// SIGTERM to every process of the tree, SIGKILL to what is left after `grace`.
    pub fn kill(&mut self, grace: Duration) {
        let pids = procfs::tree(self.pid());
        signal_all(&pids, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && pids.iter().any(|&p| procfs::alive(p)) {
            // Reap the root so it stops counting as alive.
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_all(&pids, libc::SIGKILL);
        let _ = self.child.wait();
        crate::helpers::unregister(self.pid());
    }
}

fn signal_all(pids: &[u32], sig: libc::c_int) {
    for &pid in pids {
        if procfs::alive(pid) {
            // SAFETY: kill(2) has no memory preconditions; a stale pid only yields ESRCH.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill(Duration::from_secs(2));
        }
    }
}

/// A port free on loopback now: one nobody listens on, below the kernel's ephemeral range
/// when there is room there, so that the client sockets of this run (and of anything else on
/// the machine) do not take it, and found with `SO_REUSEADDR`, so that sockets still in
/// TIME-WAIT on it do not count as taken (a run of many short connections can leave every
/// ephemeral port in TIME-WAIT, and a plain bind to port 0 then fails).
pub fn free_port() -> io::Result<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let (lo, hi) = candidate_ports(&range);
    let span = u32::from(hi - lo) + 1;
    let start = process::id().wrapping_mul(7919)
        + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 101;
    for i in 0..span {
        let port = lo + ((start.wrapping_add(i)) % span) as u16;
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if socket.bind(&addr.into()).is_ok() && socket.listen(1).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free port in {lo}–{hi} on 127.0.0.1"),
    ))
}

/// The ports [`free_port`] tries, given the text of `ip_local_port_range` (`"32768\t60999"`):
/// 10000 up to just below the ephemeral range when that leaves at least 1,000 ports, else
/// 1024–65535.
pub fn candidate_ports(ip_local_port_range: &str) -> (u16, u16) {
    let low = ip_local_port_range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u16>().ok());
    match low {
        Some(low) if low >= 11_000 => (10_000, low - 1),
        _ => (1024, 65_535),
    }
}

/// Waits until `addr` accepts TCP connections, up to `timeout`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listens on {addr} after {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where the proxies' files live during a run.
#[derive(Debug, Clone)]
pub struct Setup {
    /// stud's binary.
    pub stud: PathBuf,
    /// The combined certificate chain + key PEM all proxies serve.
    pub pem: PathBuf,
    /// A scratch directory for configuration files and logs.
    pub dir: PathBuf,
    /// The backend every proxy forwards to.
    pub backend: SocketAddr,
    /// Extra environment for stud (e.g. `LD_PRELOAD` of another allocator).
    pub env: Vec<(String, String)>,
}

/// A running terminator.
#[derive(Debug)]
pub struct Proxy {
    /// Which one.
    pub kind: Kind,
    /// Worker processes.
    pub workers: usize,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process tree.
    pub child: Child,
}

impl Proxy {
    /// Starts `kind` with `workers` workers, pinned to `cpus` (one CPU per worker, round-robin),
    /// and waits until it listens.
    pub fn start(kind: Kind, workers: usize, setup: &Setup) -> io::Result<Proxy> {
        let port = free_port()?;
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let b = setup.backend;
        let log = setup.dir.join(format!("{kind}-{port}.log"));
        let cmd = match kind {
            Kind::Stud => {
                let mut c = command(&setup.stud, PROXY_CPU);
                c.envs(setup.env.iter().map(|(k, v)| (k, v)));
                c.arg("-n")
                    .arg(workers.to_string())
                    .arg("-B")
                    .arg("1024")
                    .arg("-f")
                    .arg(format!("127.0.0.1,{port}"))
                    .arg("-b")
                    .arg(format!("{},{}", b.ip(), b.port()))
                    .arg(&setup.pem);
                c
            }
            Kind::Hitch => {
                let mut c = command("hitch", PROXY_CPU);
                c.arg(format!("--workers={workers}"))
                    .arg("--backlog=1024")
                    .arg("--daemon=off")
                    // hitch refuses to run its workers as root.
                    .arg("--user=nobody")
                    .arg(format!("--frontend=[127.0.0.1]:{port}"))
                    .arg(format!("--backend=[{}]:{}", b.ip(), b.port()))
                    .arg(format!("--ocsp-dir={}", setup.dir.display()))
                    .arg(&setup.pem);
                c
            }
            Kind::Haproxy => {
                let cfg = setup.dir.join(format!("haproxy-{port}.cfg"));
                std::fs::write(&cfg, haproxy_config(1, port, b, &setup.pem))?;
                // One process holds at most ~10,000 proxied connections under the 20,000
                // descriptor limit, so several workers are several processes sharing the port
                // (haproxy binds with SO_REUSEPORT), as hitch and stud fork theirs.
                let mut c = command("sh", PROXY_CPU);
                let one = format!("haproxy -db -f '{}'", cfg.display());
                let all = vec![one; workers].join(" & ");
                c.arg("-c").arg(format!("{all} & wait"));
                c
            }
        };
        let mut child = Child::spawn(kind.name(), cmd, Some(&log))?;
        if let Err(e) = wait_listening(addr, Duration::from_secs(15)) {
            let _ = child.check_alive();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(io::Error::other(format!(
                "{kind} did not start: {e}\n{text}"
            )));
        }
        Ok(Proxy {
            kind,
            workers,
            addr,
            child,
        })
    }

    /// CPU and memory of the proxy's process tree now.
    pub fn usage(&self) -> procfs::Usage {
        procfs::usage(self.child.pid())
    }

    /// A label such as `stud -n 2`.
    pub fn label(&self) -> String {
        match self.kind {
            Kind::Stud => format!("stud -n {}", self.workers),
            Kind::Hitch => format!("hitch --workers={}", self.workers),
            Kind::Haproxy if self.workers == 1 => "haproxy nbthread 1".to_string(),
            Kind::Haproxy => format!("haproxy nbthread 1 ×{}", self.workers),
        }
    }
}

/// haproxy in TCP mode terminating TLS on the bind line: the configuration an operator would
/// write to use it as a stud.
pub fn haproxy_config(threads: usize, port: u16, backend: SocketAddr, pem: &Path) -> String {
    format!(
        "global\n\
         \tnbthread {threads}\n\
         \tmaxconn 9900\n\
         \tlog stderr format raw local0 err\n\
         defaults\n\
         \tmode tcp\n\
         \ttimeout connect 10s\n\
         \ttimeout client 600s\n\
         \ttimeout server 600s\n\
         frontend tls\n\
         \tbind 127.0.0.1:{port} ssl crt {pem} backlog 1024\n\
         \tdefault_backend plain\n\
         backend plain\n\
         \tserver b {} maxconn 9900\n",
        backend,
        pem = pem.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_picked_below_the_ephemeral_range() {
        assert_eq!(candidate_ports("32768\t60999\n"), (10_000, 32_767));
        assert_eq!(candidate_ports("1024 65000"), (1024, 65_535));
        assert_eq!(candidate_ports(""), (1024, 65_535));
        assert_eq!(candidate_ports("junk"), (1024, 65_535));
    }

    #[test]
    fn a_free_port_can_be_listened_on() {
        let port = free_port().expect("a free port");
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the free port");
    }

    #[test]
    fn haproxy_config_names_threads_port_and_backend() {
        let cfg = haproxy_config(
            2,
            8443,
            "127.0.0.1:9000".parse().expect("literal"),
            Path::new("/x/site.pem"),
        );
        assert!(cfg.contains("nbthread 2\n"));
        assert!(cfg.contains("bind 127.0.0.1:8443 ssl crt /x/site.pem"));
        assert!(cfg.contains("server b 127.0.0.1:9000"));
    }

    #[test]
    fn a_child_tree_is_killed_on_drop() {
        let mut cmd = command("sh", LOAD_CPU.min(num_cpus() - 1));
        cmd.arg("-c").arg("sleep 30 & sleep 30");
        let child = Child::spawn("sh", cmd, None).expect("spawn sh");
        let root = child.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while procfs::tree(root).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let pids = procfs::tree(root);
        assert!(pids.len() >= 2, "sh and its sleeps: {pids:?}");
        drop(child);
        assert!(pids.iter().all(|&p| !procfs::alive(p)));
    }

    fn num_cpus() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
