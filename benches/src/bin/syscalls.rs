//! `syscalls`: system calls per connection and per MiB, stud beside hitch, counted the same way
//! in one run.
//!
//! ```text
//! cargo build --release -p stud-cli --features jemalloc
//! cargo run --release -p stud-benches --bin syscalls -- [--connections N] [--threads T]
//!     [--mib M] [--stud PATH]... [--no-hitch]
//! ```
//!
//! Each terminator runs with one worker pinned to CPU 0 (`stud -n 1`, `hitch --workers=1`);
//! the clients (rustls, TLS 1.3, AES-128-GCM, X25519) and the backend run on CPU 1. For each
//! load, `perf stat` counts the syscalls of the worker processes (the supervisor or manager is
//! left out) over exactly the load's span ([`count_syscalls`]):
//!
//! - **full**: `N` connections, each a full handshake, one 128-byte request/response, a close;
//! - **resumed**: the same with a ticket from an earlier connection (the share that resumed is
//!   printed);
//! - **download** / **upload**: one connection moving `M` MiB backend→client / client→backend
//!   (its handshake included, a rounding error at this size).
//!
//! `T` client threads run at once (default 1: one connection at a time, the moderate-load case
//! where every step of a connection costs a wake of its own). `--stud PATH` may be repeated to
//! put several builds side by side (default: the `stud` next to this executable).

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use stud_benches::helpers::{self, start_backend};
use stud_benches::profile::count_syscalls;
use stud_benches::proxies::{self, Kind, Proxy, Setup, LOAD_CPU};
use stud_benches::{client, engine, load, procfs};

const USAGE: &str = "usage: syscalls [--connections N] [--threads T] [--mib M] [--stud PATH]... \
[--no-hitch]";

/// The loads, in the order of the report's columns.
const LOADS: [&str; 4] = ["full", "resumed", "download", "upload"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // The backend helper, started from this executable.
        Some("backend") => helpers::backend_main(),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syscalls: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `name`, for each time `name` appears.
fn opts<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

fn number(args: &[String], name: &str, default: u64) -> io::Result<u64> {
    match opts(args, name).last() {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| io::Error::other(format!("{name} wants a number, not '{v}'\n{USAGE}"))),
    }
}

/// What one load measured: (operations, unit, share resumed, counts by syscall).
type LoadCount = (f64, &'static str, Option<f64>, Vec<(String, f64)>);

/// What one terminator measured, per load in the order of [`LOADS`].
struct Measured {
    label: String,
    loads: Vec<LoadCount>,
}

fn run(args: &[String]) -> io::Result<()> {
    helpers::handle_interrupts();
    let connections = number(args, "--connections", 600)?.max(1);
    let threads = number(args, "--threads", 1)?.clamp(1, 64) as usize;
    let mib = number(args, "--mib", 128)?.max(1);
    if which("perf").is_none() {
        return Err(io::Error::other(
            "perf is missing: apt-get install -y linux-perf",
        ));
    }
    let exe = std::env::current_exe()?;
    let mut studs: Vec<PathBuf> = opts(args, "--stud")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if studs.is_empty() {
        studs.push(exe.with_file_name("stud"));
    }
    for s in &studs {
        if !s.exists() {
            return Err(io::Error::other(format!(
                "{} is missing: cargo build --release -p stud-cli --features jemalloc",
                s.display()
            )));
        }
    }
    let hitch = !args.iter().any(|a| a == "--no-hitch");
    if hitch && which("hitch").is_none() {
        return Err(io::Error::other(
            "hitch is missing: apt-get install -y hitch (or --no-hitch)",
        ));
    }
    proxies::pin_self(LOAD_CPU)?;
    helpers::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("stud-syscalls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pem = dir.join("site.pem");
    std::fs::write(&pem, engine::certificate_pem().map_err(io::Error::other)?)?;
    let (backend, backend_addr) = start_backend(&exe)?;
    let mut runs: Vec<(Kind, Setup, String)> = studs
        .iter()
        .map(|s| {
            let setup = Setup {
                stud: s.clone(),
                pem: pem.clone(),
                dir: dir.clone(),
                backend: backend_addr,
                env: Vec::new(),
            };
            let label = if studs.len() == 1 {
                "stud -n 1".to_string()
            } else {
                format!("stud -n 1 ({})", s.display())
            };
            (Kind::Stud, setup, label)
        })
        .collect();
    if hitch {
        let setup = runs[0].1.clone();
        runs.push((Kind::Hitch, setup, "hitch --workers=1".to_string()));
    }
    let mut measured = Vec::new();
    for (kind, setup, label) in &runs {
        eprintln!("measuring {label}");
        measured.push(measure(
            *kind,
            setup,
            label,
            connections,
            threads,
            mib,
            &dir,
        )?);
    }
    backend.stop();
    let _ = std::fs::remove_dir_all(&dir);
    print!("{}", report(&measured, connections, threads, mib));
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.exists())
}

/// Starts `kind`, warms it up, and counts its worker's syscalls under each load.
fn measure(
    kind: Kind,
    setup: &Setup,
    label: &str,
    connections: u64,
    threads: usize,
    mib: u64,
    dir: &Path,
) -> io::Result<Measured> {
    let proxy = Proxy::start(kind, 1, setup)?;
    let addr = proxy.addr;
    // Warm up: the first handshakes of a process pay for lazy initialisation.
    requests(addr, 20, 2, false)?;
    let pids = workers(&proxy);
    let mut loads = Vec::new();
    for name in LOADS {
        let (ops, unit, resumed, counts) = match name {
            "full" | "resumed" => {
                let resume = name == "resumed";
                // Each thread's first connection (outside the count) fetches its ticket.
                let configs = client_configs(threads, resume)?;
                if resume {
                    for c in &configs {
                        client::request(c, addr, load::SMALL_RESPONSE)?;
                    }
                }
                let (r, counts) =
                    count_syscalls(&pids, dir, || run_requests(addr, connections, &configs))?;
                let share = resume.then(|| r as f64 / connections as f64);
                (connections as f64, "connection", share, counts)
            }
            _ => {
                let bytes = mib << 20;
                let ((), counts) = count_syscalls(&pids, dir, || {
                    load::bulk(addr, name == "download", bytes).map(drop)
                })?;
                (mib as f64, "MiB", None, counts)
            }
        };
        loads.push((ops, unit, resumed, counts));
    }
    let mut proxy = proxy;
    proxy.child.kill(Duration::from_secs(5));
    Ok(Measured {
        label: label.to_string(),
        loads,
    })
}

/// The worker processes of a terminator: its process tree without the root (stud's
/// supervisor, hitch's manager); the root itself if it has no children.
fn workers(proxy: &Proxy) -> Vec<u32> {
    let root = proxy.child.pid();
    let tree = procfs::tree(root);
    let children: Vec<u32> = tree.iter().copied().filter(|&p| p != root).collect();
    if children.is_empty() {
        vec![root]
    } else {
        children
    }
}

fn client_configs(threads: usize, resume: bool) -> io::Result<Vec<Arc<rustls::ClientConfig>>> {
    (0..threads)
        .map(|_| client::config(resume).map_err(io::Error::other))
        .collect()
}

/// `count` request/response connections over `threads` threads, each with a fresh client
/// configuration.
fn requests(
    addr: std::net::SocketAddr,
    count: u64,
    threads: usize,
    resume: bool,
) -> io::Result<u64> {
    run_requests(addr, count, &client_configs(threads, resume)?)
}

/// `count` request/response connections shared among one thread per configuration; returns how
/// many resumed. Any failure fails the measurement: a count over failed connections means
/// nothing.
fn run_requests(
    addr: std::net::SocketAddr,
    count: u64,
    configs: &[Arc<rustls::ClientConfig>],
) -> io::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = configs
        .iter()
        .map(|config| {
            let (config, next, resumed) = (config.clone(), next.clone(), resumed.clone());
            thread::spawn(move || -> io::Result<()> {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    if client::request(&config, addr, load::SMALL_RESPONSE)? {
                        resumed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| io::Error::other("a client thread panicked"))??;
    }
    Ok(resumed.load(Ordering::Relaxed))
}

/// The Markdown report: one table per load, a row per syscall, a column per terminator.
fn report(measured: &[Measured], connections: u64, threads: usize, mib: u64) -> String {
    let mut out = format!(
        "\nsyscalls of the worker process, one worker pinned to CPU 0; {connections} connections \
         per handshake load over {threads} client thread(s), {mib} MiB per bulk load\n"
    );
    for (l, name) in LOADS.iter().enumerate() {
        let Some((_, unit, _, _)) = measured.first().and_then(|m| m.loads.get(l)) else {
            continue;
        };
        out.push_str(&format!("\n### {name}: syscalls per {unit}\n\n| syscall |"));
        for m in measured {
            out.push_str(&format!(" {} |", m.label));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(measured.len()));
        out.push('\n');
        // Rows: the total first, then every syscall any terminator made, most frequent first.
        let mut names: Vec<(String, f64)> = Vec::new();
        for m in measured {
            let (ops, _, _, counts) = &m.loads[l];
            for (n, c) in counts {
                if n == "(all)" || *c <= 0.0 {
                    continue;
                }
                match names.iter_mut().find(|(k, _)| k == n) {
                    Some((_, best)) => *best = best.max(c / ops),
                    None => names.push((n.clone(), c / ops)),
                }
            }
        }
        names.sort_by(|a, b| b.1.total_cmp(&a.1));
        let rows = std::iter::once("(all)".to_string())
            .chain(names.into_iter().map(|(n, _)| n))
            .chain(std::iter::once("(other)".to_string()));
        for row in rows {
            out.push_str(&format!("| {row} |"));
            for m in measured {
                let (ops, _, _, counts) = &m.loads[l];
                let count = |name: &str| {
                    counts
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(0.0, |(_, c)| *c)
                };
                let c = if row == "(other)" {
                    // Everything not counted apart: futex, clock reads, signals, ….
                    let named: f64 = counts
                        .iter()
                        .filter(|(n, _)| n != "(all)")
                        .map(|(_, c)| c)
                        .sum();
                    (count("(all)") - named).max(0.0)
                } else {
                    count(&row)
                };
                out.push_str(&format!(" {:.2} |", c / ops));
            }
            out.push('\n');
        }
        if measured.iter().any(|m| m.loads[l].2.is_some()) {
            out.push_str("| (share resumed) |");
            for m in measured {
                let share = m.loads[l].2.unwrap_or(0.0);
                out.push_str(&format!(" {:.0} % |", share * 100.0));
            }
            out.push('\n');
        }
    }
    out
}
