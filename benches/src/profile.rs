//! `harness profile`: one stud worker (or one hitch or haproxy worker, to compare) under one load, recorded with `perf` (CPU samples with
//! call graphs, and syscall counts per operation), so what dominates is one command away.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::load;
use crate::proxies::{Kind, Proxy, Setup};

/// Counts the syscalls the processes `pids` make while `work` runs, over exactly that span:
/// `perf stat` attaches first with its counters off, and its control FIFO turns them on just
/// before `work` and off just after (each step acknowledged), so neither perf's start nor its
/// exit is counted. `dir` holds the two FIFOs while it runs. Returns what `work` returned and
/// the counts, `(all)` first, then each syscall [`crate::syscount`] counts apart.
pub fn count_syscalls<T>(
    pids: &[u32],
    dir: &Path,
    work: impl FnOnce() -> io::Result<T>,
) -> io::Result<(T, Vec<(String, f64)>)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ctl = dir.join(format!("perf-ctl-{}-{n}", std::process::id()));
    let ack = dir.join(format!("perf-ack-{}-{n}", std::process::id()));
    for fifo in [&ctl, &ack] {
        let _ = std::fs::remove_file(fifo);
        let c = CString::new(fifo.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut control = std::ffi::OsString::from("fifo:");
    control.push(&ctl);
    control.push(",");
    control.push(&ack);
    let perf = Command::new("perf")
        .args([
            "stat",
            "-x",
            ",",
            "-D",
            "-1",
            "-e",
            &crate::syscount::events(),
            "-p",
        ])
        .arg(pids.join(","))
        .arg("--control")
        .arg(&control)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let perf = PerfGuard(Some(perf));
    let result = (|| {
        // Opening the write end fails (ENXIO) until perf has opened the read end.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ctl_tx = loop {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&ctl)
            {
                Ok(f) => break f,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(io::Error::new(e.kind(), format!("perf did not start: {e}"))),
            }
        };
        let mut ack_rx = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&ack)?;
        let mut command = |word: &str| -> io::Result<()> {
            ctl_tx.write_all(format!("{word}\n").as_bytes())?;
            wait_for_ack(&mut ack_rx, word)
        };
        command("enable")?;
        let out = work();
        command("disable")?;
        out
    })();
    let output = perf.finish()?;
    for fifo in [&ctl, &ack] {
        let _ = std::fs::remove_file(fifo);
    }
    let out = result?;
    let counts = crate::syscount::parse_perf_csv(&String::from_utf8_lossy(&output.stderr));
    let mut rows = vec![("(all)".to_string(), counts.total)];
    rows.extend(counts.by_name);
    Ok((out, rows))
}

/// Reads perf's `ack` for `word` from the acknowledgement FIFO, for at most ten seconds.
fn wait_for_ack(ack: &mut std::fs::File, word: &str) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match ack.read(&mut buf) {
            Ok(n) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(3).any(|w| w == b"ack") {
                    return Ok(());
                }
            }
            Ok(_) => thread::sleep(Duration::from_millis(2)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("perf did not acknowledge '{word}'"),
    ))
}

/// A `perf stat` process, interrupted (so that it prints its counts) and reaped when finished
/// or dropped.
struct PerfGuard(Option<std::process::Child>);

impl PerfGuard {
    fn finish(mut self) -> io::Result<std::process::Output> {
        let child = self
            .0
            .take()
            .ok_or_else(|| io::Error::other("perf already reaped"))?;
        // SAFETY: kill(2) has no memory preconditions; the child is not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        child.wait_with_output()
    }
}

impl Drop for PerfGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The loads `profile` can apply.
pub const LOADS: [&str; 5] = ["handshake", "resume", "download", "upload", "echo"];

/// Runs `load` against a fresh single-worker `kind` (stud, or a peer to compare with) for
/// `seconds`, under `perf record` and `perf stat`; prints the hottest symbols and the syscalls
/// per operation. `env` is added to stud's environment (e.g. `LD_PRELOAD` of another
/// allocator).
pub fn run(
    setup: &Setup,
    kind: Kind,
    load_name: &str,
    seconds: u64,
    env: &[(String, String)],
    out: &std::path::Path,
) -> io::Result<()> {
    let setup = Setup {
        env: env.to_vec(),
        ..setup.clone()
    };
    let proxy = Proxy::start(kind, 1, &setup)?;
    let addr = proxy.addr;
    // Let the worker settle and warm the caches.
    let _ = load::hold(addr, 10, 2);
    let pids: Vec<String> = crate::procfs::tree(proxy.child.pid())
        .iter()
        .map(u32::to_string)
        .collect();
    let pids = pids.join(",");
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let bulk = 256u64 << 20;
    let loader = {
        let (stop, ops, name) = (stop.clone(), ops.clone(), load_name.to_string());
        thread::spawn(move || -> io::Result<()> {
            match name.as_str() {
                "handshake" | "resume" => {
                    let zero = || 0.0;
                    let w = load::handshakes(
                        addr,
                        name == "resume",
                        24,
                        Duration::ZERO,
                        Duration::from_secs(seconds + 2),
                        &zero,
                    )?;
                    ops.store((w.per_sec * (seconds + 2) as f64) as u64, Ordering::Relaxed);
                }
                "echo" => {
                    let zero = || 0.0;
                    let w = load::echo_saturation(
                        addr,
                        true,
                        4,
                        16,
                        Duration::ZERO,
                        Duration::from_secs(seconds + 2),
                        &zero,
                    )?;
                    ops.store((w.per_sec * (seconds + 2) as f64) as u64, Ordering::Relaxed);
                }
                _ => {
                    while !stop.load(Ordering::Relaxed) {
                        load::bulk(addr, name == "download", bulk)?;
                        ops.fetch_add(bulk, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
    };
    thread::sleep(Duration::from_millis(500));
    let data = out.join(format!("perf-{load_name}.data"));
    let t0 = Instant::now();
    let cpu0 = proxy.usage().cpu_secs;
    let record = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "1000",
            "--call-graph",
            "dwarf,32768",
            "-p",
            &pids,
            "-o",
        ])
        .arg(&data)
        .args(["--", "sleep", &seconds.to_string()])
        .spawn()?;
    let events = crate::syscount::events();
    let stat = Command::new("perf")
        .args(["stat", "-x", ",", "-e", &events, "-p", &pids, "--", "sleep"])
        .arg(seconds.to_string())
        .output()?;
    let _ = record.wait_with_output();
    let secs = t0.elapsed().as_secs_f64();
    let cpu = proxy.usage().cpu_secs - cpu0;
    stop.store(true, Ordering::Relaxed);
    let _ = loader.join();
    // Operations during the window: for bulk, bytes; for handshakes, the rate over the window.
    let total_ops = ops.load(Ordering::Relaxed) as f64;
    let (per_op, unit) = match load_name {
        "handshake" | "resume" => (total_ops / (seconds + 2) as f64 * secs, "connection"),
        "echo" => (total_ops / (seconds + 2) as f64 * secs, "request"),
        _ => (total_ops * secs / (secs + 0.5) / (1u64 << 20) as f64, "MiB"),
    };
    println!(
        "{} under '{load_name}': {:.2} CPU s over {secs:.1} s; ~{per_op:.0} {unit}s; \
         {:.3} CPU ms per {unit}",
        proxy.label(),
        cpu,
        cpu * 1e3 / per_op.max(1.0)
    );
    println!("\nsyscalls per {unit} (perf stat):");
    let counts = crate::syscount::parse_perf_csv(&String::from_utf8_lossy(&stat.stderr))
        .per(per_op.max(1.0));
    println!("  {:<16} {:>10.2}", "(all)", counts.total);
    for (name, c) in &counts.by_name {
        println!("  {name:<16} {c:>10.2}");
    }
    let report = Command::new("perf")
        .args([
            "report",
            "--no-children",
            "-g",
            "none",
            "--percentage",
            "relative",
            "--stdio",
            "--sort",
            "dso,sym",
            "-i",
        ])
        .arg(&data)
        .output()?;
    println!(
        "\nhottest symbols (self time, perf report --no-children -g none --sort dso,sym -i {}):",
        data.display()
    );
    for line in String::from_utf8_lossy(&report.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .take(40)
    {
        println!("{line}");
    }
    Ok(())
}
