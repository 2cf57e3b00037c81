//! The scenarios of `harness all`, each filling metrics of a [`Report`] with one value per run
//! per terminator. Runs alternate between terminators so slow drift on a shared machine spreads
//! over all of them alike.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::helpers::Helper;
use crate::load;
use crate::proxies::{Kind, Proxy, Setup};
use crate::report::{progress_line, Better, Report};
use crate::stats::percentile;

/// How long and how hard to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Runs per scenario and terminator (the table shows medians).
    pub runs: usize,
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

/// Full and resumed handshakes per second and CPU per connection; then resumption across two
/// stud workers.
pub fn handshakes(plan: &Plan, setup: &Setup, report: &mut Report) -> io::Result<()> {
    let mut proxies = start_all(plan, setup, 1)?;
    for resume in [false, true] {
        let what = if resume { "resumed" } else { "full" };
        for run in 0..plan.runs {
            for p in &mut proxies {
                p.child.check_alive()?;
                let pid = p.child.pid();
                let cpu = move || crate::procfs::usage(pid).cpu_secs;
                let w =
                    load::handshakes(p.addr, resume, plan.threads, plan.warmup, plan.window, &cpu)?;
                let label = p.label();
                let target = Some("≤ 0.5 × hitch");
                let m = report.metric(
                    &format!("{what} TLS 1.3 handshake: CPU per connection"),
                    "µs",
                    Better::Lower,
                    target,
                );
                m.add(&label, w.cpu_us_per_op);
                // What one busy core would sustain: the load generator may saturate first.
                report
                    .metric(
                        &format!("{what} handshake: capacity of one core (10⁶ / CPU µs)"),
                        "conn/s",
                        Better::Higher,
                        None,
                    )
                    .add(&label, 1e6 / w.cpu_us_per_op);
                report
                    .metric(
                        &format!("{what} TLS 1.3 handshake: connections per second"),
                        "conn/s",
                        Better::Higher,
                        None,
                    )
                    .add(&label, w.per_sec);
                report
                    .metric(
                        &format!("{what} handshake: proxy core busy"),
                        "%",
                        Better::Higher,
                        None,
                    )
                    .add(&label, w.cpu_util * 100.0);
                if resume {
                    report
                        .metric(
                            "resumed handshake: share resumed",
                            "%",
                            Better::Higher,
                            None,
                        )
                        .add(&label, w.resumed * 100.0);
                }
                say(progress_line(
                    &format!("{what} handshakes run {}", run + 1),
                    &label,
                    w.cpu_us_per_op,
                    &format!(
                        "µs/conn  {:.0} conn/s  core {:.0}%  errors {}",
                        w.per_sec,
                        w.cpu_util * 100.0,
                        w.errors
                    ),
                ));
                note_errors(report, &label, what, &w);
            }
        }
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
                        &format!("bulk {dir}: CPU per GB"),
                        "s",
                        Better::Lower,
                        Some("≤ 0.75 × hitch"),
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
        for run in 0..plan.runs {
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
                    .metric(
                        &format!("idle TLS connections: RSS per connection at {count}"),
                        "KiB",
                        Better::Lower,
                        Some("≤ 10 KiB"),
                    )
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
