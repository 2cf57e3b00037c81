//! The same hostile cases against stud and against hitch, side by side, so the comparison in
//! docs/RELIABILITY.md can be rerun. Opt-in (it needs hitch installed, which CI does not):
//!
//! ```text
//! cargo test -p stud-tests --test anchors -- --ignored --nocapture
//! ```
//!
//! It prints a table and asserts only stud's side; hitch's numbers are reported, not judged.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stud_tests::hostile::{probe, raw_connect, record, Ending};
use stud_tests::net::{self, backend, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::procfs::{cpu_share, wait_for};
use stud_tests::{optional_tool, stud_bin, TIMEOUT};

/// A daemon under comparison: its process tree, frontend, worker and log.
struct Daemon {
    name: &'static str,
    process: Stud,
    addr: SocketAddr,
    worker: i32,
    log: Option<PathBuf>,
}

impl Daemon {
    fn log_lines(&self) -> usize {
        match &self.log {
            Some(file) => count_lines(file),
            None => self.process.output().lines().count(),
        }
    }
}

/// Counts lines without holding the file in memory (hitch can write a million lines a second).
fn count_lines(file: &Path) -> usize {
    let Ok(mut f) = std::fs::File::open(file) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0;
    while let Ok(n @ 1..) = f.read(&mut buf) {
        lines += buf[..n].iter().filter(|b| **b == b'\n').count();
    }
    lines
}

/// stud, optionally under `prlimit --nofile=N`.
fn stud(pki: &Pki, backend: SocketAddr, nofile: Option<usize>) -> Daemon {
    let bin = stud_bin!();
    let b = backend.to_string();
    let limit = nofile.map(|n| format!("--nofile={n}:{n}"));
    let mut args: Vec<&str> = Vec::new();
    if let Some(l) = &limit {
        args.extend([l.as_str(), "--", bin.to_str().expect("UTF-8 path")]);
    }
    args.extend(["-n", "1", "-B", "256", "-f", "127.0.0.1,0", "-b", &b]);
    args.push(pki.site_pem.to_str().expect("UTF-8 path"));
    let process = if limit.is_some() {
        Stud::start(Path::new("prlimit"), &args)
    } else {
        Stud::start(&bin, &args)
    };
    let worker = process.worker_pids(1)[0];
    Daemon {
        name: "stud",
        addr: process.addr,
        worker,
        process,
        log: None,
    }
}

/// hitch with one worker, its log (stdout and stderr, as a service manager would capture it) in
/// `dir`. Its `--log-filename` is not used: it changes how hitch behaves out of descriptors.
fn hitch(pki: &Pki, backend: SocketAddr, nofile: Option<usize>, dir: &TempDir) -> Daemon {
    let port = net::free_port();
    let log = dir.path().join(format!("hitch-{port}.log"));
    let limit = nofile.map_or(String::new(), |n| format!("prlimit --nofile={n}:{n} -- "));
    let script = format!(
        "exec {limit}hitch -n 1 -B 256 --user=nobody '--frontend=[127.0.0.1]:{port}' \
         '--backend=[{}]:{}' '{}' >'{}' 2>&1",
        backend.ip(),
        backend.port(),
        pki.site_pem.display(),
        log.display()
    );
    let process = Stud::spawn(Path::new("sh"), &["-c", &script]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // hitch logs "[PID] {core} Process 0 online" from its worker.
    let worker = wait_for(TIMEOUT, || {
        let text = std::fs::read_to_string(&log).ok()?;
        let line = text.lines().find(|l| l.contains("Process 0 online"))?;
        line.split('[')
            .nth(1)?
            .split(']')
            .next()?
            .trim()
            .parse()
            .ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "hitch did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    wait_for(TIMEOUT, || TcpStream::connect(addr).ok()).expect("hitch listens");
    Daemon {
        name: "hitch",
        process,
        addr,
        worker,
        log: Some(log),
    }
}

/// Worker CPU (% of a core) and log lines over 4 s while out of descriptors.
fn out_of_descriptors(d: &Daemon) -> (f64, usize) {
    // Each sends the first byte of a record, so that it is accepted at once (stud takes a
    // silent connection only after about a second).
    let held: Vec<TcpStream> = (0..140)
        .filter_map(|_| raw_connect(d.addr).ok())
        .map(|mut tcp| {
            let _ = tcp.write_all(&[0x16]);
            tcp
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = d.log_lines();
    let share = cpu_share(d.worker, Duration::from_secs(4)).unwrap_or(f64::NAN);
    let lines = d.log_lines().saturating_sub(before);
    drop(held);
    (share * 100.0, lines)
}

/// Bytes of the backend's reply received after the client half-closed (`notify`: with
/// close_notify; else a bare FIN).
fn reply_after_half_close(
    d: &Daemon,
    config: &std::sync::Arc<rustls::ClientConfig>,
    notify: bool,
) -> usize {
    let Ok(mut tls) = connect(d.addr, config) else {
        return 0;
    };
    if tls.write_all(&[7u8; 5000]).is_err() {
        return 0;
    }
    if notify {
        let _ = net::half_close(&mut tls);
    } else {
        let _ = tls.flush();
        let _ = tls.sock.shutdown(Shutdown::Write);
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = tls.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    got.len()
}

/// Whether close_notify preceded the FIN when the backend closed.
fn close_notify_on_backend_close(
    d: &Daemon,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> bool {
    let Ok(mut tls) = connect(d.addr, config) else {
        return false;
    };
    let _ = tls.write_all(b"bye!");
    let mut got = Vec::new();
    tls.read_to_end(&mut got).is_ok()
}

#[test]
#[ignore = "compares with hitch, which CI does not install; run with --ignored"]
fn stud_and_hitch_side_by_side() {
    if !optional_tool("hitch") || !optional_tool("prlimit") {
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new();
    let config = net::client_config(&pki.ca_der);
    // Answers "got N bytes" once the request ends.
    let answering = backend(|mut conn| {
        let mut req = Vec::new();
        let _ = conn.read_to_end(&mut req);
        let _ = conn.write_all(format!("got {} bytes", req.len()).as_bytes());
    });
    // Answers and closes after four bytes.
    let closing = backend(|mut conn| {
        let mut req = [0u8; 4];
        let _ = conn.read_exact(&mut req);
        let _ = conn.write_all(b"goodbye");
    });
    let mut rows = Vec::new();
    for which in ["stud", "hitch"] {
        let make = |b: SocketAddr, nofile: Option<usize>| match which {
            "stud" => stud(&pki, b, nofile),
            _ => hitch(&pki, b, nofile, &dir),
        };
        let limited = make(echo_backend(), Some(64));
        let (cpu, lines) = out_of_descriptors(&limited);
        drop(limited);
        let d = make(answering, None);
        let with_notify = reply_after_half_close(&d, &config, true);
        let bare_fin = reply_after_half_close(&d, &config, false);
        let early = Instant::now();
        let seen = probe(d.addr, &record(21, 0x0303, &[1, 0]), Duration::from_secs(5));
        let early_close = (seen.ending != Ending::Open).then(|| early.elapsed());
        drop(d);
        let d = make(closing, None);
        let notify_first = close_notify_on_backend_close(&d, &config);
        rows.push((
            d.name,
            cpu,
            lines,
            with_notify,
            bare_fin,
            early_close,
            notify_first,
        ));
    }
    println!(
        "{:<6} {:>16} {:>14} {:>22} {:>20} {:>26} {:>24}",
        "daemon",
        "EMFILE CPU %",
        "log lines/4s",
        "reply after notify+FIN",
        "reply after bare FIN",
        "close_notify-first closed",
        "close_notify before FIN"
    );
    for (name, cpu, lines, a, b, early, notify) in &rows {
        println!(
            "{name:<6} {cpu:>16.1} {lines:>14} {a:>22} {b:>20} {:>26} {notify:>24}",
            early.map_or("open after 5 s".to_string(), |t| format!("{t:.1?}")),
        );
    }
    let (_, cpu, lines, a, b, _, notify) = rows[0];
    assert!(cpu < 10.0 && lines <= 6, "stud: {cpu}% and {lines} lines");
    assert_eq!((a, b), (14, 14), "stud lost the reply after a half-close");
    assert!(notify, "stud sent no close_notify");
}
