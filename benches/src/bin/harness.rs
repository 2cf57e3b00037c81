//! `harness`: stud beside hitch and haproxy, one pinned core each, in one command.
//!
//! ```text
//! cargo run --release -p stud-benches --bin harness -- all        # everything, ~20 minutes
//! cargo run --release -p stud-benches --bin harness -- all --quick # a smoke run, ~5 minutes
//! cargo run --release -p stud-benches --bin harness -- all --only profiles  # client profiles,
//!                                        # load regimes and syscall counts only
//! cargo run --release -p stud-benches --bin harness -- callgrind  # engine instruction counts
//! ```

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use stud_benches::client::Profile;
use stud_benches::helpers::{self, start_backend};
use stud_benches::proxies::{self, Kind, Setup, LOAD_CPU};
use stud_benches::report::Report;
use stud_benches::scenarios::{self, timed, Plan};
use stud_benches::{client, engine, targets};

const USAGE: &str = "usage: harness all [--quick] [--runs N] [--grid-runs N] \
[--only handshake,bulk,idle,latency,syscalls|profiles] [--profiles openssl-default,browser-like,rustls-1-suite] \
[--peers stud,hitch,haproxy] [--stud PATH] [--out DIR]\n       harness callgrind [--out DIR]\n       \
harness profile handshake|resume|download|upload|echo [--seconds N] [--malloc jemalloc|mimalloc] [--peer hitch|haproxy]\n       \
harness machine";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("all") => all(&args[1..]),
        Some("callgrind") => callgrind(&args[1..]),
        Some("profile") => profile(&args[1..]),
        Some("many") => stud_benches::fleet::main(&args[1..]),
        Some("machine") => {
            print!("{}", machine());
            Ok(())
        }
        // Helper processes the harness starts from its own executable.
        Some("backend") => helpers::backend_main(),
        Some("hold") => hold(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hold(args: &[String]) -> io::Result<()> {
    let bad = || io::Error::other("usage: harness hold ADDR COUNT THREADS");
    let addr: SocketAddr = args.first().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    let threads: usize = args.get(2).and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    helpers::hold_main(addr, count, threads)
}

/// The value after `flag`, if given.
fn opt<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
}

fn all(args: &[String]) -> io::Result<()> {
    helpers::handle_interrupts();
    let quick = args.iter().any(|a| a == "--quick");
    let runs = match opt(args, "--runs") {
        Some(n) => n
            .parse()
            .map_err(|_| io::Error::other("--runs takes a number"))?,
        None if quick => 1,
        None => 5,
    };
    let grid_runs = match opt(args, "--grid-runs") {
        Some(n) => n
            .parse()
            .map_err(|_| io::Error::other("--grid-runs takes a number"))?,
        // The grid has twelve cells per terminator: three runs of each (and of each idle count)
        // keep `all` under 25 minutes.
        None if opt(args, "--runs").is_none() => runs.min(3),
        None => runs,
    };
    let mut only: Vec<String> = opt(args, "--only")
        .unwrap_or("handshake,bulk,idle,latency,syscalls")
        .split(',')
        .map(str::to_string)
        .collect();
    // `profiles`: what the client profiles, load regimes and syscall counts add.
    if only.iter().any(|o| o == "profiles") {
        only.extend(["handshake".to_string(), "syscalls".to_string()]);
    }
    for o in &only {
        if ![
            "handshake",
            "bulk",
            "idle",
            "latency",
            "syscalls",
            "profiles",
        ]
        .contains(&o.as_str())
        {
            return Err(io::Error::other(format!(
                "unknown scenario '{o}' in --only"
            )));
        }
    }
    let mut profiles: Vec<Profile> = opt(args, "--profiles")
        .map_or_else(
            || {
                Profile::ALL
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            str::to_string,
        )
        .split(',')
        .map(|name| {
            Profile::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| io::Error::other(format!("unknown client profile '{name}'")))
        })
        .collect::<io::Result<_>>()?;
    let mut skipped = Vec::new();
    if profiles.contains(&Profile::Openssl) {
        match stud_benches::openssl::check() {
            Ok(version) => eprintln!("openssl-default client: Python ssl, {version}"),
            Err(why) => {
                eprintln!("openssl-default client skipped: {why}");
                skipped.push(format!("openssl-default client skipped: {why}"));
                profiles.retain(|p| *p != Profile::Openssl);
            }
        }
    }
    let kinds: Vec<Kind> = opt(args, "--peers")
        .unwrap_or("stud,hitch,haproxy")
        .split(',')
        .map(|k| {
            Kind::ALL
                .into_iter()
                .find(|x| x.name() == k)
                .ok_or_else(|| io::Error::other(format!("unknown terminator '{k}'")))
        })
        .collect::<io::Result<_>>()?;
    let out = opt(args, "--out").map_or_else(docs_dir, PathBuf::from);

    let env = prepare(args, kinds.iter().any(|k| *k != Kind::Stud))?;
    let (setup, backend, backend_addr) = (&env.setup, &env.backend, env.setup.backend);
    let exe = std::env::current_exe()?;
    let plan = Plan {
        runs,
        grid_runs,
        warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
        window: Duration::from_millis(if quick { 1500 } else { 3000 }),
        threads: 24,
        bulk_bytes: if quick { 128 << 20 } else { 1 << 30 },
        idle: if quick {
            vec![(1000, 1), (3000, 2)]
        } else {
            vec![(5000, 1), (18000, 2)]
        },
        exe,
        kinds,
        profiles,
        moderate_share: 0.25,
        syscall_conns: if quick { 500 } else { 2000 },
        syscall_bytes: if quick { 64 << 20 } else { 256 << 20 },
    };
    // The load average before the run (the run itself loads both CPUs).
    let before = machine();
    eprintln!("{before}");
    eprintln!(
        "clients: {}; bulk, idle and latency: TLS 1.3, {}, {}; ECDSA P-256 certificate; \
         backend {backend_addr}; {} runs ({} per handshake cell)",
        plan.profiles
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", "),
        client::SUITE,
        client::GROUP,
        plan.runs,
        plan.grid_runs
    );
    let mut report = Report::default();
    report.notes.extend(skipped);
    // A scenario that fails (a terminator died, the machine ran out of ports) is noted under
    // the table; the others still run, and the run still exits with the first failure.
    let mut result: io::Result<()> = Ok(());
    let mut step =
        |name: &str, report: &mut Report, f: &mut dyn FnMut(&mut Report) -> io::Result<()>| {
            if !only.iter().any(|o| o == name) {
                return;
            }
            if let Err(e) = timed(name, || f(report)) {
                eprintln!("{name} failed: {e}");
                report
                    .notes
                    .push(format!("The {name} scenario failed: {e}"));
                if result.is_ok() {
                    result = Err(e);
                }
            }
        };
    step("handshake", &mut report, &mut |r| {
        scenarios::handshakes(&plan, setup, r)
    });
    step("bulk", &mut report, &mut |r| {
        scenarios::bulk(&plan, setup, r)
    });
    step("idle", &mut report, &mut |r| {
        scenarios::idle(&plan, setup, r)
    });
    step("latency", &mut report, &mut |r| {
        scenarios::latency(&plan, setup, backend_addr, r)
    });
    step("syscalls", &mut report, &mut |r| {
        scenarios::syscalls(&plan, setup, r)
    });
    let _ = backend;
    drop(env);
    let rows: Vec<_> = scenarios::issue_targets(&plan)
        .iter()
        .map(|t| targets::evaluate(&report, t))
        .collect();
    let table = format!(
        "### Targets\n\n{}\n### Every measurement\n\n{}",
        targets::markdown(&rows),
        report.markdown()
    );
    println!("{table}");
    if !report.metrics.is_empty() {
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("performance.svg"), report.svg(&chart_title(quick)))?;
        std::fs::write(
            out.join("performance-results.md"),
            format!(
                "<!-- written by `harness all`; do not edit -->\n```text\n{before}```\n\n{table}"
            ),
        )?;
        eprintln!(
            "wrote {} and performance-results.md",
            out.join("performance.svg").display()
        );
    }
    result
}

/// What every measuring command sets up: the certificate, the backend, stud's binary.
struct Env {
    setup: Setup,
    backend: helpers::Helper,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prepare(args: &[String], peers: bool) -> io::Result<Env> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(io::Error::other(
            "the harness needs 2 CPUs: the proxy on 0, the load on 1",
        ));
    }
    if peers {
        install_peers()?;
    }
    let stud = match opt(args, "--stud") {
        Some(p) => PathBuf::from(p),
        None => build_stud()?,
    };
    let exe = std::env::current_exe()?;
    proxies::pin_self(LOAD_CPU)?;
    helpers::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("stud-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pem = dir.join("site.pem");
    std::fs::write(&pem, engine::certificate_pem().map_err(io::Error::other)?)?;
    let (backend, backend_addr) = start_backend(&exe)?;
    Ok(Env {
        setup: Setup {
            stud,
            pem,
            dir: dir.clone(),
            backend: backend_addr,
            env: Vec::new(),
        },
        backend,
        dir,
    })
}

/// `harness profile LOAD [--seconds N] [--malloc jemalloc|mimalloc]`.
fn profile(args: &[String]) -> io::Result<()> {
    helpers::handle_interrupts();
    let load = args
        .first()
        .filter(|l| stud_benches::profile::LOADS.contains(&l.as_str()))
        .ok_or_else(|| {
            io::Error::other(format!(
                "profile what? one of {:?}",
                stud_benches::profile::LOADS
            ))
        })?;
    let seconds = opt(args, "--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut env = Vec::new();
    match opt(args, "--malloc") {
        None | Some("glibc") => {}
        Some(name) => {
            let lib = match name {
                "jemalloc" => "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                "mimalloc" => "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
                other => return Err(io::Error::other(format!("unknown allocator '{other}'"))),
            };
            if !Path::new(lib).exists() {
                return Err(io::Error::other(format!(
                    "{lib} is missing: apt-get install -y libjemalloc2 libmimalloc2.0"
                )));
            }
            env.push(("LD_PRELOAD".to_string(), lib.to_string()));
        }
    }
    if sh("command -v perf").is_empty() {
        return Err(io::Error::other(
            "perf is missing: apt-get install -y linux-perf",
        ));
    }
    let kind = match opt(args, "--peer") {
        None => Kind::Stud,
        Some(name) => Kind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| io::Error::other(format!("unknown terminator '{name}'")))?,
    };
    let e = prepare(args, kind != Kind::Stud)?;
    let out = std::env::temp_dir();
    stud_benches::profile::run(&e.setup, kind, load, seconds, &env, &out)
}

fn chart_title(quick: bool) -> String {
    format!(
        "stud vs hitch vs haproxy, one pinned core each ({}medians)",
        if quick { "smoke run, " } else { "" }
    )
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine and the versions compared, for the report.
fn machine() -> String {
    format!(
        "nproc: {}\ncpu: {}\nkernel: {}\nmemory: {}\nhitch: {}\nhaproxy: {}\nopenssl: {}\nload: {}\n",
        sh("nproc --all"),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'"),
        sh("uname -sr"),
        sh("grep MemTotal /proc/meminfo | tr -s ' '"),
        sh("dpkg-query -W -f '${Version}' hitch 2>/dev/null"),
        sh("dpkg-query -W -f '${Version}' haproxy 2>/dev/null"),
        sh("openssl version"),
        sh("cat /proc/loadavg"),
    )
}

/// hitch and haproxy from Debian, when missing.
fn install_peers() -> io::Result<()> {
    if !sh("command -v hitch").is_empty() && !sh("command -v haproxy").is_empty() {
        return Ok(());
    }
    eprintln!("installing hitch and haproxy from Debian");
    let policy = sh("apt-cache policy hitch haproxy");
    eprintln!("{policy}");
    if !policy.contains("Candidate") || policy.contains("Candidate: (none)") {
        let st = Command::new("apt-get").args(["update", "-qq"]).status()?;
        if !st.success() {
            return Err(io::Error::other("apt-get update failed"));
        }
    }
    let st = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "hitch",
            "haproxy",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !st.success() || sh("command -v hitch").is_empty() || sh("command -v haproxy").is_empty() {
        return Err(io::Error::other(
            "cannot install hitch and haproxy (apt-get install -y hitch haproxy)",
        ));
    }
    Ok(())
}

/// `cargo build --release -p stud-cli --features jemalloc`, then the binary beside this one.
fn build_stud() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("executable without a directory"))?;
    let stud = dir.join("stud");
    if let Ok(cargo) = std::env::var("CARGO") {
        eprintln!("building stud (cargo build --release -p stud-cli --features jemalloc)");
        let st = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-q",
                "-p",
                "stud-cli",
                "--features",
                "jemalloc",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()?;
        if !st.success() {
            return Err(io::Error::other(
                "cargo build --release -p stud-cli --features jemalloc failed",
            ));
        }
    }
    if !stud.exists() {
        return Err(io::Error::other(format!(
            "no stud binary at {} (build it, or pass --stud PATH)",
            stud.display()
        )));
    }
    Ok(stud)
}

/// Instruction counts of the engine alone (callgrind), for the noise-free figures.
fn callgrind(args: &[String]) -> io::Result<()> {
    let out = opt(args, "--out").map_or_else(docs_dir, PathBuf::from);
    let exe = std::env::current_exe()?;
    let counter = exe
        .parent()
        .ok_or_else(|| io::Error::other("executable without a directory"))?
        .join("engine_count");
    if !counter.exists() {
        return Err(io::Error::other(format!(
            "{} is missing: cargo build --release -p stud-benches --bins",
            counter.display()
        )));
    }
    if sh("command -v valgrind").is_empty() {
        return Err(io::Error::other(
            "valgrind is missing: apt-get install -y valgrind",
        ));
    }
    // Each operation runs FEW and MANY times; the difference divided by MANY - FEW is the cost
    // of one, free of one-time work (the random generator's seeding, the first handshake of a
    // relay run, lazy initialisation).
    const FEW: usize = 2;
    const MANY: usize = 12;
    let count = |what: &str, n: usize| -> io::Result<u64> {
        let tmp =
            std::env::temp_dir().join(format!("stud-callgrind-{}-{what}-{n}", std::process::id()));
        let o = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", tmp.display()))
            .arg("--toggle-collect=stud_benches::engine::engine_*")
            .arg(&counter)
            .arg(what)
            .arg(n.to_string())
            .output()?;
        let text = String::from_utf8_lossy(&o.stderr);
        let _ = std::fs::remove_file(&tmp);
        text.lines()
            .find_map(|l| l.split("Collected : ").nth(1))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                io::Error::other(format!("no instruction count from callgrind:\n{text}"))
            })
    };
    let mut lines =
        String::from("| operation (engine only, callgrind) | instructions |\n|---|---:|\n");
    for (what, label) in [
        ("handshake", "full TLS 1.3 handshake, per connection"),
        ("download", "relay 1 MiB backend→client"),
        ("upload", "relay 1 MiB client→backend"),
    ] {
        let per =
            (count(what, MANY)?.saturating_sub(count(what, FEW)?)) as f64 / (MANY - FEW) as f64;
        println!("{label}: {per:.0} instructions");
        lines.push_str(&format!("| {label} | {per:.0} |\n"));
    }
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("performance-callgrind.md"), lines)?;
    Ok(())
}
