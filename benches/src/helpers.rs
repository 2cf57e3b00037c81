//! The harness's helper processes (the backend and the idle-connection holders), started from
//! its own executable, and the interrupt handling that stops everything on Ctrl-C.

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use crate::proxies::{self, Child, LOAD_CPU};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Root pids of every process tree the harness started and has not stopped yet.
static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs SIGINT/SIGTERM handlers; a watcher thread then kills every started process tree
/// and exits 130, whatever the harness is waiting for.
pub fn handle_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_millis(100));
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("interrupted: stopping everything the harness started");
            let pids = STARTED.lock().map(|p| p.clone()).unwrap_or_default();
            for pid in pids {
                for p in crate::procfs::tree(pid) {
                    // SAFETY: kill(2) has no memory preconditions.
                    unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
                }
            }
            std::process::exit(130);
        }
    });
}

/// Remembers a started tree for the interrupt watcher.
pub fn register(pid: u32) {
    if let Ok(mut p) = STARTED.lock() {
        p.push(pid);
    }
}

/// Forgets a stopped tree.
pub fn unregister(pid: u32) {
    if let Ok(mut p) = STARTED.lock() {
        p.retain(|&x| x != pid);
    }
}

/// A helper process started from this executable, talking by lines on stdout; it exits when
/// its stdin closes (so it never outlives the harness).
#[derive(Debug)]
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    /// Starts `exe args…` pinned to the load CPU.
    pub fn start(exe: &Path, name: &str, args: &[String]) -> io::Result<Helper> {
        let mut cmd = proxies::command(exe, LOAD_CPU);
        cmd.args(args);
        Helper::spawn(cmd, name)
    }

    /// Starts `cmd` (made with [`proxies::command`]) as a helper talking by lines.
    pub fn spawn(mut cmd: std::process::Command, name: &str) -> io::Result<Helper> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("helper without stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Helper {
            child: Child::adopt(name, child),
            stdin,
            lines: rx,
        })
    }

    /// The next line the helper prints, waiting at most `timeout`.
    pub fn line(&mut self, timeout: Duration) -> io::Result<String> {
        self.lines.recv_timeout(timeout).map_err(|_| {
            let status = self.child.check_alive().err();
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer from a helper in {timeout:?} ({status:?})"),
            )
        })
    }

    /// Sends one line to the helper's stdin.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("helper's stdin is closed"))?;
        stdin.write_all(line.as_bytes())?;
        stdin.write_all(b"\n")?;
        stdin.flush()
    }

    /// The helper's root pid.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Closes stdin (the helper exits), then makes sure it is gone.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline && self.child.check_alive().is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill(Duration::from_secs(1));
    }
}

/// In a helper: exits the process when stdin reaches end of file (the harness is gone or done).
pub fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut line = String::new();
        let stdin = io::stdin();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });
}

/// Starts the backend helper and returns it with its address.
pub fn start_backend(exe: &Path) -> io::Result<(Helper, SocketAddr)> {
    let mut h = Helper::start(exe, "backend", &["backend".into()])?;
    let line = h.line(Duration::from_secs(10))?;
    let addr = line
        .strip_prefix("LISTENING ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("backend said '{line}'")))?;
    Ok((h, addr))
}

/// The helper side of `backend`: bind, announce, serve.
pub fn backend_main() -> io::Result<()> {
    exit_on_stdin_eof();
    let listener = crate::backend::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    println!("LISTENING {}", listener.local_addr()?);
    io::stdout().flush()?;
    crate::backend::run(listener)
}

/// The helper side of `hold`: open the connections, report `READY <ok> <errors> [first error]`,
/// hold them until stdin closes.
pub fn hold_main(addr: SocketAddr, count: usize, threads: usize) -> io::Result<()> {
    raise_fd_limit();
    let (held, errors, first) = crate::load::hold(addr, count, threads);
    report_ready_and_hold(held, errors, first)
}

/// Reports `READY <held> <errors> [first error]` on stdout, then keeps `held` open until the
/// harness closes this helper's stdin.
pub fn report_ready_and_hold<T>(
    held: Vec<T>,
    errors: u64,
    first: Option<String>,
) -> io::Result<()> {
    println!(
        "READY {} {} {}",
        held.len(),
        errors,
        first.unwrap_or_default().replace('\n', " ")
    );
    io::stdout().flush()?;
    let mut line = String::new();
    while io::stdin().lock().read_line(&mut line)? > 0 {
        line.clear();
    }
    drop(held);
    Ok(())
}

/// Raises the soft open-file limit to the hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to and read from a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
