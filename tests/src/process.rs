//! The `stud` process under test: started in its own process group, its stderr collected line
//! by line, killed (with all its workers) when the handle drops.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::TIMEOUT;

type Lines = Arc<(Mutex<(Vec<String>, bool)>, Condvar)>;

/// A running `stud`.
#[derive(Debug)]
pub struct Stud {
    child: Child,
    lines: Lines,
    status: Option<ExitStatus>,
    /// The first frontend address from the "listening on" line (set by [`Stud::start`]).
    pub addr: SocketAddr,
    /// Every frontend address of that line, in order (several with repeated `-f`).
    pub addrs: Vec<SocketAddr>,
}

/// Sends `signal` to `pid` (negative: a process group).
pub fn send_signal(pid: i32, signal: i32) -> bool {
    // SAFETY: kill(2) takes plain integers and touches no memory.
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    let rc = unsafe { libc::kill(pid, signal) };
    rc == 0
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(
                state.and_then(|s| s.chars().next()),
                Some('Z') | Some('X') | None
            )
        }
        Err(_) => false,
    }
}

fn collect(stream: impl std::io::Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let (lock, cv) = &*lines;
            if let Ok(mut guard) = lock.lock() {
                guard.0.push(line);
            }
            cv.notify_all();
        }
        let (lock, cv) = &*lines;
        if let Ok(mut guard) = lock.lock() {
            guard.1 = true;
        }
        cv.notify_all();
    });
}

impl Stud {
    /// Starts `stud` with `args` and returns at once.
    pub fn spawn(bin: &Path, args: &[&str]) -> Stud {
        let mut command = Command::new(bin);
        command.args(args);
        Stud::spawn_command(command)
    }

    /// Starts a prepared command (a `stud` with extra environment or inherited descriptors, or
    /// a shell that execs one) and returns at once.
    pub fn spawn_command(mut command: Command) -> Stud {
        let shown = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let lines: Lines = Arc::new((Mutex::new((Vec::new(), false)), Condvar::new()));
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, lines.clone());
        }
        Stud {
            child,
            lines,
            status: None,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            addrs: Vec::new(),
        }
    }

    /// Starts `stud` with `args` and its standard error going to `stderr` instead of being
    /// collected (so [`Stud::output`] stays empty), and returns at once.
    pub fn spawn_with_stderr(bin: &Path, args: &[&str], stderr: Stdio) -> Stud {
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Stud {
            child,
            lines: Arc::new((Mutex::new((Vec::new(), true)), Condvar::new())),
            status: None,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            addrs: Vec::new(),
        }
    }

    /// Starts `stud` and waits for it to listen, learning the frontend address from its log.
    pub fn start(bin: &Path, args: &[&str]) -> Stud {
        Stud::start_spawned(Stud::spawn(bin, args))
    }

    /// Starts a prepared command as [`Stud::spawn_command`] does and waits for it to listen.
    pub fn start_command(command: Command) -> Stud {
        Stud::start_spawned(Stud::spawn_command(command))
    }

    fn start_spawned(mut stud: Stud) -> Stud {
        let line = stud
            .wait_line(|l| l.contains("listening on "), TIMEOUT)
            .unwrap_or_else(|| panic!("stud did not start; its stderr:\n{}", stud.output()));
        // Several frontends are listed with spaces between, before the first comma.
        let addrs: Vec<SocketAddr> = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map(|list| list.split(' ').filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default();
        stud.addr = *addrs
            .first()
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        stud.addrs = addrs;
        stud
    }

    /// Starts `stud` on `127.0.0.1` (a free port) in front of `backend`, serving `pem`, with
    /// `extra` flags, and waits for it to listen.
    pub fn serve(bin: &Path, pem: &Path, backend: SocketAddr, extra: &[&str]) -> Stud {
        let b = backend.to_string();
        let mut args = vec!["-f", "127.0.0.1,0", "-b", &b];
        args.extend_from_slice(extra);
        args.push(pem.to_str().expect("test paths are UTF-8"));
        Stud::start(bin, &args)
    }

    /// The process id of the parent (supervisor).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything written to stderr so far.
    pub fn output(&self) -> String {
        let (lock, _) = &*self.lines;
        lock.lock().map(|g| g.0.join("\n")).unwrap_or_default()
    }

    /// Waits for a stderr line matching `pred` (searching lines already seen too).
    pub fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        self.wait_lines(|lines| lines.iter().find(|l| pred(l)).cloned(), timeout)
    }

    /// Waits until `f` over all lines so far returns `Some`.
    pub fn wait_lines<T>(
        &self,
        f: impl Fn(&[String]) -> Option<T>,
        timeout: Duration,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.lines;
        let mut guard = lock.lock().ok()?;
        loop {
            if let Some(found) = f(&guard.0) {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline || guard.1 {
                return None;
            }
            guard = cv.wait_timeout(guard, deadline - now).ok()?.0;
        }
    }

    /// The current pid of each worker slot, from the "worker N started (pid P)" lines.
    pub fn worker_pids(&self, count: usize) -> Vec<i32> {
        self.wait_lines(
            |lines| {
                let mut pids = vec![None; count];
                for line in lines {
                    let Some(rest) = line.split("worker ").nth(1) else {
                        continue;
                    };
                    let Some((index, tail)) = rest.split_once(" started (pid ") else {
                        continue;
                    };
                    let (Ok(i), Some(Ok(pid))) = (
                        index.parse::<usize>(),
                        tail.strip_suffix(')').map(str::parse::<i32>),
                    ) else {
                        continue;
                    };
                    if i < count {
                        pids[i] = Some(pid);
                    }
                }
                pids.into_iter().collect::<Option<Vec<i32>>>()
            },
            TIMEOUT,
        )
        .unwrap_or_else(|| panic!("workers did not start; stderr:\n{}", self.output()))
    }

    /// Sends `signal` to the parent.
    pub fn signal(&self, signal: i32) {
        assert!(send_signal(self.pid(), signal), "cannot signal stud");
    }

    /// Waits for the parent to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                // Its standard error read to the end, so `output` holds its last words (a
                // bounded wait: a worker may hold the pipe a moment longer).
                let _ = self.wait_lines(|_| None::<()>, Duration::from_secs(5));
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Stud {
    fn drop(&mut self) {
        // The whole group: the parent and every worker, whatever state the test left them in.
        send_signal(-self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Starts the `stud` that `make` spawns for a free loopback frontend (`127.0.0.1,PORT`), for
/// runs whose log does not say where they listen, and waits until the port accepts TCP
/// connections. A port taken by someone else between choosing and binding makes stud exit at
/// start; another port is tried then (five in all), so that rare race does not fail the test.
pub fn spawn_on_free_port(make: impl Fn(&str) -> Stud) -> (Stud, SocketAddr) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = crate::net::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stud = make(&format!("127.0.0.1,{port}"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return (stud, addr);
            }
            if stud.wait_exit(Duration::ZERO).is_some() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last = stud.output();
    }
    panic!("stud did not start on any of five free ports; its stderr:\n{last}");
}

/// The outcome of a `stud` run that is expected to end by itself.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `stud` to completion (bounded by [`TIMEOUT`]).
pub fn run(bin: &Path, args: &[&str]) -> Finished {
    run_in(bin, None, args)
}

/// Runs `stud ARGS`, which must exit 1 with exactly one `stud: error:` line and no panic;
/// returns that line without its prefix.
pub fn one_error(bin: &Path, args: &[&str]) -> String {
    let out = run(bin, args);
    assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("stud: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    errors[0].to_string()
}

/// Runs `stud` to completion (bounded by [`TIMEOUT`]) in the working directory `dir` (this
/// process's when `None`), so relative paths are resolved the way an operator's shell would.
pub fn run_in(bin: &Path, dir: Option<&Path>, args: &[&str]) -> Finished {
    let mut command = Command::new(bin);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let pid = child.id() as i32;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= deadline {
            send_signal(-pid, libc::SIGKILL);
            let _ = child.wait();
            panic!("stud {args:?} did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("collect output");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The test process's effective uid (privilege tests need root).
pub fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

/// A pipe (read end, write end), both close-on-exec and blocking: for a test that plays a log
/// reader (one that reads, or one that never does).
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd as _;
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array on success.
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and belong to nobody else.
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// Shrinks (or grows) the buffer of the pipe `fd` to `bytes`, so a test can fill it quickly.
pub fn set_pipe_size(fd: &std::os::fd::OwnedFd, bytes: i32) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
    assert!(rc >= 0, "F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
}
