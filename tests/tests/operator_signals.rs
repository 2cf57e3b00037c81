//! Signals at the moments operators send them by accident or by script: while a thousand
//! certificates load, during a reload, during a drain. stud is then either serving or has exited
//! cleanly with a log line: never killed by the signal, never left with a stuck or orphaned
//! worker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use stud_tests::daemon::served_with;
use stud_tests::hostile::{served, Rng};
use stud_tests::net::{self, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{alive, Stud};
use stud_tests::{stud_bin, TIMEOUT};

/// `count` copies of the test certificate, as many files (stud loads each).
fn many_pems(pki: &Pki, dir: &TempDir, count: usize) -> Vec<PathBuf> {
    let pem = std::fs::read(&pki.site_pem).expect("site pem");
    (0..count)
        .map(|i| dir.write(&format!("site{i:04}.pem"), &pem))
        .collect()
}

/// Starts stud on a port the kernel picks (it is logged) with `extra` flags and `pems`, and
/// returns at once (start-up is still
/// going on).
fn spawn(extra: &[&str], pems: &[PathBuf]) -> Stud {
    let f = "127.0.0.1,0".to_string();
    let b = echo_backend().to_string();
    let mut args = vec!["-f", f.as_str(), "-b", b.as_str()];
    args.extend_from_slice(extra);
    args.extend(pems.iter().map(|p| p.to_str().expect("utf-8")));
    Stud::spawn(&stud_bin!(), &args)
}

/// Waits until `stud`'s Rust runtime has set itself up (it ignores SIGPIPE before `main`), so a
/// delay counted from here falls in stud's own start-up, not in the dynamic loader's.
fn wait_for_main(stud: &Stud) {
    const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);
    let ignored = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", stud.pid())).ok()?;
        let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
        let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
        (mask & SIGPIPE_BIT != 0).then_some(())
    };
    stud_tests::procfs::wait_for(TIMEOUT, ignored).expect("stud never reached main");
}

/// Where stud listens, from its "listening on" line (waiting up to `within` for it).
fn listening(stud: &Stud, within: Duration) -> Option<SocketAddr> {
    let line = stud.wait_line(|l| l.contains("listening on "), within)?;
    line.split("listening on ")
        .nth(1)?
        .split([',', ' '])
        .next()?
        .parse()
        .ok()
}

/// How many lines so far contain `needle`.
fn count(stud: &Stud, needle: &str) -> usize {
    stud.output().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn hangups_while_a_thousand_certificates_load_become_one_reload() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let pems = many_pems(&pki, &dir, 1000);
    let config = net::client_config(&pki.ca_der);
    for delay_ms in [5, 20, 40] {
        let mut stud = spawn(&[], &pems);
        wait_for_main(&stud);
        std::thread::sleep(Duration::from_millis(delay_ms));
        stud.signal(libc::SIGHUP);
        if delay_ms < 40 {
            // Twice, as an impatient operator would, while loading surely goes on: one reload.
            std::thread::sleep(Duration::from_millis(2));
            stud.signal(libc::SIGHUP);
        }
        if stud
            .wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
            .is_none()
        {
            panic!(
                "HUP after {delay_ms} ms: no reload ({:?}); stderr:\n{}",
                stud.wait_exit(Duration::from_secs(1)),
                stud.output()
            );
        }
        let addr = listening(&stud, TIMEOUT).expect("the listening line");
        served_with(addr, &config);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            count(&stud, "reloaded the configuration"),
            1,
            "HUP after {delay_ms} ms:\n{}",
            stud.output()
        );
        assert!(alive(stud.pid()));
    }
}

#[test]
fn a_stop_while_a_thousand_certificates_load_exits_cleanly_with_a_line() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let pems = many_pems(&pki, &dir, 1000);
    for (signal, delay_ms) in [(libc::SIGTERM, 5), (libc::SIGINT, 20), (libc::SIGTERM, 40)] {
        let mut stud = spawn(&[], &pems);
        wait_for_main(&stud);
        std::thread::sleep(Duration::from_millis(delay_ms));
        stud.signal(signal);
        let status = stud
            .wait_exit(TIMEOUT)
            .unwrap_or_else(|| panic!("signal {signal} after {delay_ms} ms: still running"));
        // The line may still be on its way through the pipe when the exit is seen.
        let said = stud.wait_line(|l| l.contains("stopped"), TIMEOUT);
        let out = stud.output();
        assert_eq!(
            status.code(),
            Some(0),
            "signal {signal} after {delay_ms} ms: {status}\n{out}"
        );
        assert!(said.is_some(), "no line saying so:\n{out}");
    }
}

/// The phase of stud's life a trial's signal lands in.
#[derive(Clone, Copy, Debug)]
enum Phase {
    StartUp,
    Reload,
    Drain,
}

/// Workers named in "worker N started (pid P)" lines.
fn worker_pids(stud: &Stud) -> Vec<i32> {
    stud.output()
        .lines()
        .filter_map(|l| l.split(" started (pid ").nth(1))
        .filter_map(|rest| rest.strip_suffix(')'))
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// Whether stud serves at `addr` within `within`.
fn serves(
    addr: SocketAddr,
    config: &std::sync::Arc<rustls::ClientConfig>,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if served(addr, config).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// One trial: `signal` sent `delay` into `phase`; then stud must be serving or have exited 0
/// with a line, and after a final SIGTERM exit 0 leaving no worker behind.
fn trial(
    pems: &[PathBuf],
    config: &std::sync::Arc<rustls::ClientConfig>,
    phase: Phase,
    signal: i32,
    delay: Duration,
) {
    let mut stud = spawn(&["-n", "2", "--drain-timeout=1"], pems);
    let what = format!("{phase:?}, signal {signal} after {delay:?}");
    let listening_now = |stud: &Stud| listening(stud, Duration::ZERO);
    let mut held = None;
    match phase {
        Phase::StartUp => wait_for_main(&stud),
        Phase::Reload => {
            let addr = listening(&stud, TIMEOUT).expect("the listening line");
            assert!(serves(addr, config, TIMEOUT), "{what}: never served");
            stud.signal(libc::SIGHUP);
        }
        Phase::Drain => {
            let addr = listening(&stud, TIMEOUT).expect("the listening line");
            assert!(serves(addr, config, TIMEOUT), "{what}: never served");
            held = net::connect(addr, config).ok();
            stud.signal(libc::SIGTERM);
        }
    }
    std::thread::sleep(delay);
    stud.signal(signal);
    // Settled: exited by itself (a stop), or serving.
    let deadline = Instant::now() + Duration::from_secs(5);
    let exited = loop {
        if let Some(status) = stud.wait_exit(Duration::ZERO) {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        if !matches!(phase, Phase::Drain) && signal != libc::SIGTERM && signal != libc::SIGINT {
            match listening_now(&stud) {
                Some(addr) if serves(addr, config, Duration::from_millis(200)) => break None,
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    drop(held);
    let status = match exited {
        Some(status) => status,
        None => {
            // A slow machine: a stop still under way must end by itself; otherwise stud must
            // be serving, and a final SIGTERM ends it.
            let stopping =
                matches!(phase, Phase::Drain) || signal == libc::SIGTERM || signal == libc::SIGINT;
            if !stopping {
                let addr = listening(&stud, TIMEOUT)
                    .unwrap_or_else(|| panic!("{what}: never listened:\n{}", stud.output()));
                assert!(
                    serves(addr, config, TIMEOUT),
                    "{what}: neither serving nor exited:\n{}",
                    stud.output()
                );
                stud.signal(libc::SIGTERM);
            }
            stud.wait_exit(TIMEOUT)
                .unwrap_or_else(|| panic!("{what}: did not stop:\n{}", stud.output()))
        }
    };
    let said = stud.wait_line(|l| l.contains("stopped"), TIMEOUT);
    let out = stud.output();
    assert_eq!(status.code(), Some(0), "{what}: {status}\n{out}");
    assert!(said.is_some(), "{what}: no line saying it stopped:\n{out}");
    for pid in worker_pids(&stud) {
        assert!(
            !alive(pid),
            "{what}: worker {pid} outlived the supervisor\n{out}"
        );
    }
}

#[test]
fn signals_at_random_points_of_start_up_reload_and_drain_never_kill_or_orphan() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let pems = many_pems(&pki, &dir, 100);
    let config = net::client_config(&pki.ca_der);
    let signals = [
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGCHLD,
    ];
    let phases = [Phase::StartUp, Phase::Reload, Phase::Drain];
    let mut rng = Rng::new(0x5EED_5160);
    let trials: Vec<(Phase, i32, Duration)> = (0..30)
        .map(|_| {
            let phase = phases[rng.below(phases.len())];
            let signal = signals[rng.below(signals.len())];
            let delay = Duration::from_millis(rng.below(40) as u64);
            (phase, signal, delay)
        })
        .collect();
    // Three at a time: each trial is mostly waiting.
    for batch in trials.chunks(3) {
        std::thread::scope(|scope| {
            for &(phase, signal, delay) in batch {
                let (pems, config) = (&pems, &config);
                scope.spawn(move || trial(pems, config, phase, signal, delay));
            }
        });
    }
}
