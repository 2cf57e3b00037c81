//! The scenarios of `harness all`, each filling metrics of a [`Report`] with one value per run
//! per terminator. Runs alternate between terminators so slow drift on a shared machine spreads
//! over all of them alike.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::Profile;
use crate::helpers::Helper;
use crate::load;
use crate::proxies::{Kind, Proxy, Setup};
use crate::report::{progress_line, Better, Report};
use crate::stats::percentile;
use crate::targets::{Rule, Target};

/// How long and how hard to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Runs per scenario and terminator (the table shows medians).
    pub runs: usize,
    /// Runs per cell of the handshake grid (client profile × full/resumed × load regime) and
    /// per idle connection count (whose runs agree to 0.1 KiB).
    pub grid_runs: usize,
    /// Load before the measurement window.
    pub warmup: Duration,
    /// The measurement window of rate scenarios.
    pub window: Duration,
    /// Concurrent client connections of the handshake scenarios.
    pub threads: usize,
    /// Bytes per bulk transfer.
    pub bulk_bytes: u64,
    /// Idle connection counts, each with the worker count to hold them.
    pub idle: Vec<(usize, usize)>,
    /// The harness executable (for helper processes).
    pub exe: PathBuf,
    /// Which terminators.
    pub kinds: Vec<Kind>,
    /// Which client profiles make the handshakes.
    pub profiles: Vec<Profile>,
    /// The moderate regime's offered rate, as a share of one core of the costliest
    /// terminator at saturation (0.25: about a quarter of a core).
    pub moderate_share: f64,
    /// Connections per syscall count (full and resumed handshakes).
    pub syscall_conns: u64,
    /// Bytes per syscall count of a bulk transfer.
    pub syscall_bytes: u64,
}

/// How hard the handshake load pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// Closed loop: each client thread connects again as soon as its last connection closed.
    Saturation,
    /// Open loop at a fixed offered rate, a quarter of a core of the costliest terminator.
    Moderate,
}

impl Regime {
    /// Both regimes.
    pub const ALL: [Regime; 2] = [Regime::Saturation, Regime::Moderate];

    /// The name on every row.
    pub fn name(self) -> &'static str {
        match self {
            Regime::Saturation => "saturation",
            Regime::Moderate => "moderate rate",
        }
    }
}

/// The row of stud's (and each peer's) CPU per connection in one cell of the grid.
pub fn handshake_metric(resumed: bool, profile: Profile, regime: Regime) -> String {
    format!(
        "{} handshake, {} client, {}: CPU per connection",
        if resumed { "resumed" } else { "full" },
        profile.name(),
        regime.name()
    )
}

/// The row of bulk CPU per GB in one direction (`download`: backend→client).
pub fn bulk_metric(download: bool) -> String {
    format!(
        "bulk {}: CPU per GB",
        if download {
            "backend→client"
        } else {
            "client→backend"
        }
    )
}

/// The row of syscalls per full-handshake connection (closed loop).
pub const SYSCALLS_FULL: &str = "syscalls per full-handshake connection (rustls-1-suite client)";
/// The row of syscalls per full-handshake connection at [`SYSCALL_RATE`].
pub const SYSCALLS_FULL_PACED: &str =
    "syscalls per full-handshake connection at 300/s (rustls-1-suite client)";
/// The fixed rate of the paced syscall count: far from any terminator's saturation, where
/// each connection's events get wake-ups of their own.
pub const SYSCALL_RATE: f64 = 300.0;
/// The row of syscalls per resumed-handshake connection.
pub const SYSCALLS_RESUMED: &str =
    "syscalls per resumed-handshake connection (rustls-1-suite client)";

/// The row of syscalls per MiB of bulk in one direction.
pub fn syscalls_bulk_metric(download: bool) -> String {
    format!(
        "syscalls per MiB of bulk {}",
        if download {
            "backend→client"
        } else {
            "client→backend"
        }
    )
}

/// The row of idle memory per connection at `count` connections.
pub fn idle_metric(count: usize) -> String {
    format!("idle TLS connections: RSS per connection at {count}")
}

/// Every target of the issue, as rows of the target table: handshake CPU against hitch and
/// resumed cheaper than full in each client profile and regime, bulk both ways, syscalls per
/// full-handshake connection, idle memory at each connection count.
pub fn issue_targets(plan: &Plan) -> Vec<Target> {
    let mut t = Vec::new();
    for &profile in &plan.profiles {
        for regime in Regime::ALL {
            for resumed in [false, true] {
                let what = if resumed { "resumed" } else { "full" };
                t.push(Target {
                    what: format!(
                        "{what} handshake CPU, {} client, {}",
                        profile.name(),
                        regime.name()
                    ),
                    rule: Rule::VsHitch {
                        metric: handshake_metric(resumed, profile, regime),
                        max: 0.45,
                    },
                });
            }
            t.push(Target {
                what: format!(
                    "stud: resumed handshake cheaper than full, {} client, {}",
                    profile.name(),
                    regime.name()
                ),
                rule: Rule::Below {
                    cheaper: handshake_metric(true, profile, regime),
                    dearer: handshake_metric(false, profile, regime),
                },
            });
        }
    }
    for download in [true, false] {
        t.push(Target {
            what: bulk_metric(download),
            rule: Rule::VsHitch {
                metric: bulk_metric(download),
                max: 0.6,
            },
        });
    }
    for metric in [SYSCALLS_FULL, SYSCALLS_FULL_PACED] {
        t.push(Target {
            what: format!("stud: {metric}"),
            rule: Rule::AtMost {
                metric: metric.into(),
                max: 40.0,
            },
        });
    }
    for &(count, _) in &plan.idle {
        t.push(Target {
            what: format!("stud: {}", idle_metric(count)),
            rule: Rule::AtMost {
                metric: idle_metric(count),
                max: 8.0,
            },
        });
    }
    t
}

/// At most this share of the slowest rate the client reached at saturation: an open-loop
/// schedule the client can keep, so the moderate regime stays open loop.
pub const CLIENT_HEADROOM: f64 = 0.6;

/// The moderate regime's offered rate: `share` of one core of the costliest terminator, given
/// each terminator's CPU µs per connection at saturation, but no more than
/// [`CLIENT_HEADROOM`] × the slowest rate the client reached at saturation (`reached`); two
/// significant figures. `None` when no cost is known.
pub fn moderate_rate(costs_us: &[f64], reached: &[f64], share: f64) -> Option<f64> {
    let worst = costs_us
        .iter()
        .copied()
        .filter(|c| c.is_finite() && *c > 0.0)
        .fold(f64::NAN, f64::max);
    if !worst.is_finite() || share.is_nan() || share <= 0.0 {
        return None;
    }
    let mut rate = share * 1e6 / worst;
    let slowest = reached
        .iter()
        .copied()
        .filter(|r| r.is_finite() && *r > 0.0)
        .fold(f64::INFINITY, f64::min);
    if slowest.is_finite() {
        rate = rate.min(CLIENT_HEADROOM * slowest);
    }
    // Two significant figures: a rate a reader can repeat by hand.
    let scale = 10f64.powi(rate.log10().floor() as i32 - 1);
    Some(((rate / scale).round() * scale).max(1.0))
}

fn say(line: String) {
    eprintln!("{line}");
}

fn start_all(plan: &Plan, setup: &Setup, workers: usize) -> io::Result<Vec<Proxy>> {
    plan.kinds
        .iter()
        .map(|&k| Proxy::start(k, workers, setup))
        .collect()
}

/// Client threads of the handshake loads: enough for the proxy to be the bottleneck at
/// saturation; at a moderate rate, enough that a slow connection never holds up the schedule.
const OPENSSL_THREADS: usize = 8;
const PACED_THREADS: usize = 16;

/// One window of handshakes by `profile` through `p`: returns the window and what the
/// connections agreed (version, suite, group where the client tells).
fn measure(
    plan: &Plan,
    setup: &Setup,
    profile: Profile,
    p: &mut Proxy,
    resume: bool,
    rate: Option<f64>,
) -> io::Result<(load::Window, Option<String>)> {
    p.child.check_alive()?;
    let pid = p.child.pid();
    let cpu = move || crate::procfs::usage(pid).cpu_secs;
    // A moderate rate completes fewer connections per second: a longer window keeps the
    // CPU reading (in clock ticks) as precise as at saturation.
    let window = if rate.is_some() {
        plan.window * 2
    } else {
        plan.window
    };
    match profile.rustls_config(resume) {
        None => {
            let script = crate::openssl::install(&setup.dir)?;
            let threads = if rate.is_some() {
                PACED_THREADS
            } else {
                OPENSSL_THREADS
            };
            crate::openssl::handshakes(
                &script,
                p.addr,
                resume,
                threads,
                rate,
                plan.warmup,
                window,
                &cpu,
            )
        }
        Some(first) => {
            let first = first.map_err(io::Error::other)?;
            let info = crate::client::negotiated(&first, p.addr).ok();
            let threads = if rate.is_some() {
                PACED_THREADS
            } else {
                plan.threads
            };
            // One configuration (one ticket store) per thread.
            let configs = (0..threads)
                .map(|_| {
                    profile
                        .rustls_config(resume)
                        .unwrap_or_else(|| crate::client::config(resume))
                        .map_err(io::Error::other)
                })
                .collect::<io::Result<Vec<_>>>()?;
            let w = load::paced_handshakes(p.addr, configs, rate, plan.warmup, window, &cpu);
            Ok((w, info))
        }
    }
}

/// Full and resumed handshakes by every client profile, at saturation and at a moderate fixed
/// rate, CPU per connection from `/proc`; then resumption across two stud workers.
pub fn handshakes(plan: &Plan, setup: &Setup, report: &mut Report) -> io::Result<()> {
    let mut proxies = start_all(plan, setup, 1)?;
    for &profile in &plan.profiles {
        let mut agreed: Vec<String> = Vec::new();
        for resume in [false, true] {
            let what = if resume { "resumed" } else { "full" };
            let mut rate = None;
            for regime in Regime::ALL {
                if regime == Regime::Moderate {
                    let median = |report: &Report, name: &str, p: &Proxy| {
                        report
                            .metrics
                            .iter()
                            .find(|m| m.name == name)
                            .and_then(|m| m.median_of(p.kind.name()))
                    };
                    let cost = handshake_metric(resume, profile, Regime::Saturation);
                    let speed = format!(
                        "{what} handshake, {} client, {}: connections per second",
                        profile.name(),
                        Regime::Saturation.name()
                    );
                    let costs: Vec<f64> = proxies
                        .iter()
                        .filter_map(|p| median(report, &cost, p))
                        .collect();
                    let reached: Vec<f64> = proxies
                        .iter()
                        .filter_map(|p| median(report, &speed, p))
                        .collect();
                    rate = moderate_rate(&costs, &reached, plan.moderate_share);
                    let Some(r) = rate else {
                        report.notes.push(format!(
                            "{what} handshakes, {} client: no saturation cost, no moderate run",
                            profile.name()
                        ));
                        continue;
                    };
                    report.notes.push(format!(
                        "{what} handshakes, {} client, moderate rate: {r:.0} connections/s offered \
                         (open loop, {PACED_THREADS} client threads): {:.0} % of one core of the \
                         costliest terminator at its saturation cost, or {:.0} % of the slowest \
                         rate the client reached at saturation if that is less",
                        profile.name(),
                        plan.moderate_share * 100.0,
                        CLIENT_HEADROOM * 100.0
                    ));
                }
                for run in 0..plan.grid_runs {
                    for p in &mut proxies {
                        let (w, info) = measure(plan, setup, profile, p, resume, rate)?;
                        let label = p.label();
                        if let Some(info) = info {
                            let line = format!("{} agreed {info}", p.kind.name());
                            if !agreed.contains(&line) {
                                agreed.push(line);
                            }
                        }
                        let cell = format!(
                            "{what} handshake, {} client, {}",
                            profile.name(),
                            regime.name()
                        );
                        report
                            .metric(
                                &handshake_metric(resume, profile, regime),
                                "µs",
                                Better::Lower,
                                Some("≤ 0.45 × hitch"),
                            )
                            .add(&label, w.cpu_us_per_op);
                        report
                            .metric(
                                &format!("{cell}: connections per second"),
                                "conn/s",
                                Better::Higher,
                                None,
                            )
                            .add(&label, w.per_sec);
                        report
                            .metric(
                                &format!("{cell}: proxy core busy"),
                                "%",
                                Better::Higher,
                                None,
                            )
                            .add(&label, w.cpu_util * 100.0);
                        if resume {
                            report
                                .metric(
                                    &format!("{cell}: share resumed"),
                                    "%",
                                    Better::Higher,
                                    None,
                                )
                                .add(&label, w.resumed * 100.0);
                        }
                        say(progress_line(
                            &format!(
                                "{what} {} {} run {}",
                                profile.name(),
                                if rate.is_some() { "moderate" } else { "sat" },
                                run + 1
                            ),
                            &label,
                            w.cpu_us_per_op,
                            &format!(
                                "µs/conn  {:.0} conn/s  core {:.0}%  resumed {:.0}%  errors {}",
                                w.per_sec,
                                w.cpu_util * 100.0,
                                w.resumed * 100.0,
                                w.errors
                            ),
                        ));
                        note_errors(report, &label, &cell, &w);
                    }
                }
            }
        }
        report.notes.push(format!(
            "{} client ({}): {}.",
            profile.name(),
            profile.describe(),
            if agreed.is_empty() {
                "nothing agreed".to_string()
            } else {
                agreed.join("; ")
            }
        ));
    }
    drop(proxies);
    // Session tickets must resume on whichever worker accepts the connection.
    if plan.kinds.contains(&Kind::Stud) {
        let p = Proxy::start(Kind::Stud, 2, setup)?;
        let pid = p.child.pid();
        let cpu = move || crate::procfs::usage(pid).cpu_secs;
        let w = load::handshakes(p.addr, true, plan.threads, plan.warmup, plan.window, &cpu)?;
        say(progress_line(
            "resumption across workers",
            &p.label(),
            w.resumed * 100.0,
            "% resumed",
        ));
        report.notes.push(format!(
            "Resumption across workers: with `{}` (two processes accepting on one socket), {:.1}% of \
             {:.0} connections/s resumed ({} errors).",
            p.label(),
            w.resumed * 100.0,
            w.per_sec,
            w.errors
        ));
        note_errors(report, &p.label(), "resumed -n 2", &w);
    }
    Ok(())
}

/// Syscalls per full and per resumed handshake connection and per MiB of bulk each way, for
/// every terminator: `perf stat` on the syscall tracepoints of its processes around a fixed
/// amount of work (see [`crate::syscount`]).
pub fn syscalls(plan: &Plan, setup: &Setup, report: &mut Report) -> io::Result<()> {
    if !crate::syscount::available() {
        report
            .notes
            .push("syscalls not counted: perf is missing (apt-get install -y linux-perf)".into());
        say("syscalls: perf is missing, skipped".into());
        return Ok(());
    }
    for &kind in &plan.kinds {
        let mut p = Proxy::start(kind, 1, setup)?;
        let label = p.label();
        // Warm the worker: first-use allocations and lazy set-up are not per-connection costs.
        let _ = load::hold(p.addr, 20, 4);
        let mut lines = Vec::new();
        for (metric, what) in [
            (SYSCALLS_FULL.to_string(), "full"),
            (SYSCALLS_FULL_PACED.to_string(), "full at 300/s"),
            (SYSCALLS_RESUMED.to_string(), "resumed"),
            (syscalls_bulk_metric(true), "download"),
            (syscalls_bulk_metric(false), "upload"),
        ] {
            p.child.check_alive()?;
            let pids = crate::procfs::tree(p.child.pid());
            let counter = crate::syscount::Counter::start(&pids)?;
            // perf attaches to the tracepoints before the work starts.
            std::thread::sleep(Duration::from_millis(300));
            let ops = match what {
                "full" | "resumed" | "full at 300/s" => {
                    let cfg = crate::client::config(what == "resumed").map_err(io::Error::other)?;
                    let rate = (what == "full at 300/s").then_some(SYSCALL_RATE);
                    let (errors, first) = load::connections(
                        p.addr,
                        &cfg,
                        plan.syscall_conns,
                        plan.threads.min(8),
                        rate,
                    );
                    if errors > 0 {
                        report.notes.push(format!(
                            "{label}, syscall count of {what} handshakes: {errors} failed (first: {})",
                            first.as_deref().unwrap_or("?")
                        ));
                    }
                    (plan.syscall_conns - errors) as f64
                }
                _ => {
                    load::bulk(p.addr, what == "download", plan.syscall_bytes)?;
                    plan.syscall_bytes as f64 / (1u64 << 20) as f64
                }
            };
            let counts = counter.stop()?.per(ops);
            let unit = "calls";
            let target = metric
                .starts_with("syscalls per full")
                .then_some("≤ 40 (stud)");
            report
                .metric(&metric, unit, Better::Lower, target)
                .add(&label, counts.total);
            say(progress_line(
                &format!("syscalls {what}"),
                &label,
                counts.total,
                &format!("per op: {}", counts.top(6)),
            ));
            lines.push(format!("{what} {:.1} ({})", counts.total, counts.top(6)));
        }
        report.notes.push(format!(
            "Syscalls of `{label}` per connection or MiB: {}.",
            lines.join("; ")
        ));
        p.child.kill(Duration::from_secs(3));
    }
    Ok(())
}

fn note_errors(report: &mut Report, label: &str, what: &str, w: &load::Window) {
    if w.errors > 0 {
        report.notes.push(format!(
            "{label}, {what}: {} failed connections (first: {})",
            w.errors,
            w.first_error.as_deref().unwrap_or("?")
        ));
    }
}

/// Bulk transfer in each direction: throughput and proxy CPU seconds per GB.
pub fn bulk(plan: &Plan, setup: &Setup, report: &mut Report) -> io::Result<()> {
    let mut proxies = start_all(plan, setup, 1)?;
    let gb = plan.bulk_bytes as f64 / 1e9;
    for run in 0..plan.runs {
        for download in [true, false] {
            let dir = if download {
                "backend→client"
            } else {
                "client→backend"
            };
            for p in &mut proxies {
                p.child.check_alive()?;
                let c0 = p.usage().cpu_secs;
                let secs = load::bulk(p.addr, download, plan.bulk_bytes)?;
                let c1 = p.usage().cpu_secs;
                let label = p.label();
                report
                    .metric(
                        &bulk_metric(download),
                        "s",
                        Better::Lower,
                        Some("≤ 0.6 × hitch"),
                    )
                    .add(&label, (c1 - c0) / gb);
                report
                    .metric(
                        &format!("bulk {dir}: throughput"),
                        "MB/s",
                        Better::Higher,
                        None,
                    )
                    .add(&label, plan.bulk_bytes as f64 / secs / 1e6);
                say(progress_line(
                    &format!("bulk {dir} run {}", run + 1),
                    &label,
                    (c1 - c0) / gb,
                    &format!("CPU s/GB  {:.0} MB/s", plan.bulk_bytes as f64 / secs / 1e6),
                ));
            }
        }
    }
    Ok(())
}

/// RSS per idle established connection, measured on a fresh proxy per run.
pub fn idle(plan: &Plan, setup: &Setup, report: &mut Report) -> io::Result<()> {
    for &(count, workers) in &plan.idle {
        for run in 0..plan.grid_runs {
            for &kind in &plan.kinds {
                let mut p = Proxy::start(kind, workers, setup)?;
                let label = p.label();
                // Warm every worker: first-use allocations belong to the baseline.
                let _ = load::hold(p.addr, 20 * workers, 4);
                std::thread::sleep(Duration::from_millis(500));
                let before = p.usage();
                let holders = count.div_ceil(6000);
                let mut helpers = Vec::new();
                for i in 0..holders {
                    let share = count / holders + usize::from(i < count % holders);
                    helpers.push(Helper::start(
                        &plan.exe,
                        "hold",
                        &[
                            "hold".into(),
                            p.addr.to_string(),
                            share.to_string(),
                            "8".into(),
                        ],
                    )?);
                }
                let (mut ok, mut errors, mut first) = (0usize, 0u64, String::new());
                for h in &mut helpers {
                    let line = h.line(Duration::from_secs(600))?;
                    let mut f = line.splitn(4, ' ');
                    if f.next() != Some("READY") {
                        return Err(io::Error::other(format!("holder said '{line}'")));
                    }
                    ok += f.next().and_then(|x| x.parse::<usize>().ok()).unwrap_or(0);
                    errors += f.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
                    if first.is_empty() {
                        first = f.next().unwrap_or("").to_string();
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
                let after = p.usage();
                let alive = p.child.check_alive().is_ok();
                let per_conn = (after.rss_kib as f64 - before.rss_kib as f64) / count as f64;
                let pss_per_conn = (after.pss_kib as f64 - before.pss_kib as f64) / count as f64;
                report
                    .metric(&idle_metric(count), "KiB", Better::Lower, Some("≤ 8 KiB"))
                    .add(&label, per_conn);
                report
                    .metric(
                        &format!("idle TLS connections: PSS per connection at {count}"),
                        "KiB",
                        Better::Lower,
                        None,
                    )
                    .add(&label, pss_per_conn);
                say(progress_line(
                    &format!("idle {count} run {}", run + 1),
                    &label,
                    per_conn,
                    &format!("KiB/conn RSS ({pss_per_conn:.1} PSS), {ok} held, {errors} errors, {} processes, alive {alive}", after.processes),
                ));
                if errors > 0 || !alive || ok != count {
                    report.notes.push(format!(
                        "{label}, {count} idle connections run {}: {ok} held, {errors} failed{}{}",
                        run + 1,
                        if alive { "" } else { ", the proxy died" },
                        if first.is_empty() {
                            String::new()
                        } else {
                            format!(" (first: {first})")
                        }
                    ));
                }
                for h in helpers {
                    h.stop();
                }
                p.child.kill(Duration::from_secs(3));
            }
        }
    }
    Ok(())
}

/// Latency added at half the saturation rate of kept-alive request/response traffic.
pub fn latency(
    plan: &Plan,
    setup: &Setup,
    backend: SocketAddr,
    report: &mut Report,
) -> io::Result<()> {
    let mut proxies = start_all(plan, setup, 1)?;
    const SAT_THREADS: usize = 4;
    const SAT_PER_THREAD: usize = 16;
    const LAT_CONNS: usize = 64;
    for run in 0..plan.runs {
        for p in &mut proxies {
            p.child.check_alive()?;
            let pid = p.child.pid();
            let cpu = move || crate::procfs::usage(pid).cpu_secs;
            let sat = load::echo_saturation(
                p.addr,
                true,
                SAT_THREADS,
                SAT_PER_THREAD,
                plan.warmup,
                plan.window,
                &cpu,
            )?;
            let rate = sat.per_sec / 2.0;
            let (mut via, e1) =
                crate::openloop::latency(p.addr, true, LAT_CONNS, rate, plan.window)?;
            let (mut direct, e2) =
                crate::openloop::latency(backend, false, LAT_CONNS, rate, plan.window)?;
            let label = p.label();
            let pct =
                |v: &mut Vec<u64>, q| percentile(v, q).map_or(f64::NAN, |ns| ns as f64 / 1000.0);
            let (v50, v99, d50, d99) = (
                pct(&mut via, 50.0),
                pct(&mut via, 99.0),
                pct(&mut direct, 50.0),
                pct(&mut direct, 99.0),
            );
            report
                .metric(
                    "echo 64 B: saturation (closed loop, 64 connections)",
                    "req/s",
                    Better::Higher,
                    None,
                )
                .add(&label, sat.per_sec);
            report
                .metric(
                    "echo 64 B at saturation: CPU per request",
                    "µs",
                    Better::Lower,
                    None,
                )
                .add(&label, sat.cpu_us_per_op);
            report
                .metric(
                    "echo 64 B at saturation: proxy core busy",
                    "%",
                    Better::Higher,
                    None,
                )
                .add(&label, sat.cpu_util * 100.0);
            report
                .metric(
                    "latency added at half saturation: p50",
                    "µs",
                    Better::Lower,
                    None,
                )
                .add(&label, v50 - d50);
            report
                .metric(
                    "latency added at half saturation: p99",
                    "µs",
                    Better::Lower,
                    Some("≤ hitch"),
                )
                .add(&label, v99 - d99);
            say(progress_line(
                &format!("latency run {}", run + 1),
                &label,
                v99 - d99,
                &format!(
                    "µs added p99 (p50 {:.0}); sat {:.0} req/s, rate {rate:.0}/s; via p50/p99 {v50:.0}/{v99:.0}, direct {d50:.0}/{d99:.0} µs; errors {}",
                    v50 - d50,
                    sat.per_sec,
                    sat.errors + e1 + e2
                ),
            ));
        }
    }
    Ok(())
}

/// The elapsed time of a step, for the log.
pub fn timed<T>(what: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let t = Instant::now();
    let r = f();
    say(format!("{what}: {:.0} s", t.elapsed().as_secs_f64()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moderate_rate_is_a_share_of_the_costliest_core() {
        // hitch at 1,000 µs per connection: a quarter of its core is 250 connections/s.
        assert_eq!(
            moderate_rate(&[480.0, 1000.0], &[2000.0, 990.0], 0.25),
            Some(250.0)
        );
        // Two significant figures.
        assert_eq!(moderate_rate(&[432.0], &[], 0.25), Some(580.0));
        assert_eq!(moderate_rate(&[90.0], &[], 0.25), Some(2800.0));
        // Unknown costs are left out; none known, no rate.
        assert_eq!(moderate_rate(&[f64::NAN, 500.0], &[], 0.25), Some(500.0));
        assert_eq!(moderate_rate(&[], &[100.0], 0.25), None);
        assert_eq!(moderate_rate(&[0.0, f64::NAN], &[], 0.25), None);
        assert_eq!(moderate_rate(&[500.0], &[], 0.0), None);
    }

    #[test]
    fn the_moderate_rate_stays_within_what_the_client_reached() {
        // A client that reached only 451 connections/s at saturation gets 270/s, not 510/s.
        assert_eq!(
            moderate_rate(&[254.0, 487.0], &[522.0, 451.0], 0.25),
            Some(270.0)
        );
        assert_eq!(moderate_rate(&[487.0], &[f64::NAN, 0.0], 0.25), Some(510.0));
    }

    fn plan() -> Plan {
        Plan {
            runs: 1,
            grid_runs: 1,
            warmup: Duration::ZERO,
            window: Duration::ZERO,
            threads: 1,
            bulk_bytes: 1,
            idle: vec![(5000, 1), (18000, 2)],
            exe: PathBuf::new(),
            kinds: vec![Kind::Stud, Kind::Hitch],
            profiles: Profile::ALL.to_vec(),
            moderate_share: 0.25,
            syscall_conns: 1,
            syscall_bytes: 1,
        }
    }

    #[test]
    fn every_issue_target_has_a_row_and_reads_a_measured_metric() {
        let targets = issue_targets(&plan());
        // 3 profiles × 2 regimes × (full, resumed, resumed < full) + 2 bulk + 2 syscall counts
        // + 2 idle.
        assert_eq!(targets.len(), 3 * 2 * 3 + 2 + 2 + 2);
        let names: Vec<&str> = targets.iter().map(|t| t.what.as_str()).collect();
        assert!(names.contains(&"full handshake CPU, openssl-default client, moderate rate"));
        assert!(names.contains(
            &"stud: resumed handshake cheaper than full, browser-like client, saturation"
        ));
        // Each rule names metrics the scenarios fill in.
        let filled = |m: &str| {
            m.starts_with("full handshake, ")
                || m.starts_with("resumed handshake, ")
                || m.starts_with("bulk ")
                || m == SYSCALLS_FULL
                || m == SYSCALLS_FULL_PACED
                || m.starts_with("idle TLS connections: RSS")
        };
        for t in &targets {
            match &t.rule {
                Rule::VsHitch { metric, .. } | Rule::AtMost { metric, .. } => {
                    assert!(filled(metric), "{metric}")
                }
                Rule::Below { cheaper, dearer } => {
                    assert!(cheaper.starts_with("resumed") && dearer.starts_with("full"));
                    assert_eq!(cheaper.replacen("resumed", "full", 1), *dearer);
                }
            }
        }
    }

    #[test]
    fn row_names_carry_profile_and_regime() {
        assert_eq!(
            handshake_metric(true, Profile::Openssl, Regime::Moderate),
            "resumed handshake, openssl-default client, moderate rate: CPU per connection"
        );
        assert_eq!(bulk_metric(false), "bulk client→backend: CPU per GB");
    }
}
