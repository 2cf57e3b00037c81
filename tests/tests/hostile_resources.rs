//! Resource exhaustion and churn: out of file descriptors under `prlimit`, and thousands of short
//! connections, a third of them reset, after which descriptors and memory return to baseline.
//! stud listens on both loopbacks and the clients alternate between IPv4 and IPv6 (the churn's
//! backend is on ::1), so both families meet the same exhaustion in the same wall time.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stud_tests::hostile::{
    self, client_hello, counting_backend, counting_backend_on, raw_connect, served, start_dual,
    Family,
};
use stud_tests::net::{self, connect};
use stud_tests::pki::Pki;
use stud_tests::procfs::{cpu_share, report, sample, wait_for};
use stud_tests::{optional_tool, stud_bin, TIMEOUT};

/// Counts the log lines so far.
fn log_lines(stud: &stud_tests::process::Stud) -> usize {
    stud.output().lines().count()
}

#[test]
fn out_of_descriptors_the_worker_idles_logs_sparingly_and_recovers() {
    if !optional_tool("prlimit") {
        return;
    }
    const LIMIT: usize = 64;
    const HELD: usize = 140;
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let bin = stud_bin!();
    let limit = format!("--nofile={LIMIT}:{LIMIT}");
    let b = backend.to_string();
    // prlimit execs stud, so the pid the test sees is stud's parent.
    let stud = stud_tests::process::Stud::start(
        std::path::Path::new("prlimit"),
        &[
            &limit,
            "--",
            bin.to_str().expect("UTF-8 path"),
            "-n",
            "1",
            "-B",
            "256",
            "--ssl-handshake-timeout",
            "60",
            "-f",
            Family::V4.frontend(),
            "-f",
            Family::V6.frontend(),
            "-b",
            &b,
            pki.site_pem.to_str().expect("UTF-8 path"),
        ],
    );
    let worker = stud.worker_pids(1)[0];
    let config = net::client_config(&pki.ca_der);
    assert_eq!(stud.addrs.len(), 2, "listening on {:?}", stud.addrs);
    for addr in &stud.addrs {
        served(*addr, &config).expect("served before the flood");
    }

    // Idle TCP connections over both families, each costing the worker a descriptor once
    // accepted, until it has none.
    let held: Vec<TcpStream> = (0..HELD)
        .map(|i| raw_connect(stud.addrs[i % 2]).expect("the kernel queues the connection"))
        .collect();
    let exhausted = wait_for(TIMEOUT, || {
        sample(worker).filter(|s| s.fds + 2 >= LIMIT).map(|s| s.fds)
    });
    assert!(
        exhausted.is_some(),
        "the worker never ran out of descriptors: {:?}",
        sample(worker)
    );
    // The first warning about accept failing.
    stud.wait_line(|l| l.contains("accept"), TIMEOUT)
        .unwrap_or_else(|| panic!("no accept warning: {}", stud.output()));

    let lines_before = log_lines(&stud);
    let window = Duration::from_secs(4);
    let share = cpu_share(worker, window).expect("worker alive");
    let new_lines = log_lines(&stud) - lines_before;
    report(
        "fd exhaustion",
        &format!(
            "worker at {} fds: {:.1}% of a core over {window:?}, {new_lines} log lines",
            exhausted.unwrap_or(0),
            share * 100.0
        ),
    );
    assert!(
        share < 0.10,
        "the worker spins when out of descriptors: {:.1}% of a core",
        share * 100.0
    );
    assert!(
        new_lines <= window.as_secs() as usize + 2,
        "{new_lines} log lines in {window:?}:\n{}",
        stud.output()
    );

    // Descriptors free up: service resumes (the queued connections are closed ones by now).
    drop(held);
    for addr in &stud.addrs {
        let recovered = wait_for(TIMEOUT, || served(*addr, &config).ok());
        assert!(
            recovered.is_some(),
            "not served at {addr} once descriptors freed up:\n{}",
            stud.output()
        );
    }
    assert_eq!(stud.worker_pids(1), vec![worker], "the worker was replaced");
}

/// One short connection of kind `i % 3`: a clean exchange with close_notify; an exchange ended
/// by RST; a hello ended by RST mid-handshake.
fn short_connection(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    hello: &[u8],
    i: usize,
) -> std::io::Result<()> {
    match i % 3 {
        0 => {
            let mut tls = connect(addr, config)?;
            tls.write_all(b"churn")?;
            net::read_exact(&mut tls, 5)?;
            tls.conn.send_close_notify();
            tls.flush()?;
            Ok(())
        }
        1 => {
            let mut tls = connect(addr, config)?;
            tls.write_all(b"churn")?;
            net::read_exact(&mut tls, 5)?;
            hostile::reset(tls.sock);
            Ok(())
        }
        _ => {
            let mut tcp = raw_connect(addr)?;
            tcp.write_all(hello)?;
            hostile::reset(tcp);
            Ok(())
        }
    }
}

#[test]
fn thousands_of_short_connections_a_third_reset_leave_no_trace() {
    const CONNECTIONS: usize = 3000;
    const THREADS: usize = 4;
    let pki = Pki::new();
    let (backend, _) = counting_backend_on(Family::V6);
    let stud = start_dual(&stud_bin!(), &pki, backend, &["-n", "1", "-B", "512"]);
    let worker = stud.worker_pids(1)[0];
    let config = net::client_config(&pki.ca_der);
    let hello = client_hello(&config);
    // Warm up so the allocator and the kernel have settled before the baseline.
    for i in 0..150 {
        short_connection(stud.addrs[i / 3 % 2], &config, &hello, i).expect("warm-up");
    }
    std::thread::sleep(Duration::from_millis(500));
    let base = sample(worker).expect("worker");
    let parent_base = sample(stud.pid()).expect("parent");

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (next, failed, config, hello) =
                (next.clone(), failed.clone(), config.clone(), hello.clone());
            // Half the threads on each family.
            let addr = stud.addrs[t % 2];
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CONNECTIONS || started.elapsed() > Duration::from_secs(150) {
                    break;
                }
                if short_connection(addr, &config, &hello, i).is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("churn thread");
    }
    let elapsed = started.elapsed();
    let done = next.load(Ordering::Relaxed).min(CONNECTIONS);
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(done, CONNECTIONS, "only {done} connections in {elapsed:?}");
    assert_eq!(failed, 0, "{failed} connections failed");

    // Everything the churn opened is closed again, and the memory is given back or reused.
    let settled = wait_for(Duration::from_secs(10), || {
        sample(worker).filter(|s| s.fds <= base.fds + 1 && s.rss_kib <= base.rss_kib + 4096)
    });
    let after = sample(worker).expect("worker alive");
    let parent_after = sample(stud.pid()).expect("parent alive");
    report(
        "churn",
        &format!(
            "{CONNECTIONS} connections in {elapsed:?}; worker before [{base}], after [{after}]; \
             parent fds {} -> {}",
            parent_base.fds, parent_after.fds
        ),
    );
    assert!(
        settled.is_some(),
        "worker did not return to baseline: before [{base}], after [{after}]"
    );
    assert_eq!(
        parent_after.fds, parent_base.fds,
        "parent descriptors changed"
    );
    assert_eq!(stud.worker_pids(1), vec![worker], "the worker was replaced");
    for addr in &stud.addrs {
        served(*addr, &config).expect("served after the churn");
    }
}
