//! Supervision while clients keep coming: workers killed with SIGKILL under load are replaced at
//! a bounded rate, leave no zombies and cost the parent no descriptors; a parent killed under
//! load takes its workers down after they finish what is in flight.
//!
//! `supervision.rs` covers the same events on an idle daemon; these add the load. stud listens
//! on both loopbacks and the clients (and, in two of the tests, the backend) are split between
//! IPv4 and IPv6, so both families are under the same events in the same wall time.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::{Duration, Instant};

use stud_tests::hostile::{
    counting_backend, counting_backend_on, served, start_dual, Family, Load,
};
use stud_tests::net::{self, backend_on, connect, pattern, sha256};
use stud_tests::pki::Pki;
use stud_tests::process::{alive, send_signal, Stud};
use stud_tests::procfs::{children, report, sample, wait_for, Tree};
use stud_tests::{stud_bin, TIMEOUT};

/// The worker pids the kernel lists as children of `stud` (zombies excluded).
fn live_children(stud: &Stud) -> Vec<i32> {
    children(stud.pid())
        .into_iter()
        .filter(|p| alive(*p))
        .collect()
}

/// Waits for `workers` live children none of which is in `gone`.
fn replaced(stud: &Stud, workers: usize, gone: &[i32]) -> Vec<i32> {
    wait_for(TIMEOUT, || {
        let now = live_children(stud);
        (now.len() == workers && now.iter().all(|p| !gone.contains(p))).then_some(now)
    })
    .unwrap_or_else(|| panic!("workers not replaced: {}", stud.output()))
}

#[test]
fn workers_killed_under_load_are_replaced_without_zombies_or_parent_descriptor_growth() {
    let pki = Pki::new();
    let (backend, _) = counting_backend_on(Family::V6);
    let stud = start_dual(&stud_bin!(), &pki, backend, &["-n", "2"]);
    let mut workers = stud.worker_pids(2);
    let config = net::client_config(&pki.ca_der);
    for addr in &stud.addrs {
        served(*addr, &config).expect("served");
    }
    let parent_before = sample(stud.pid()).expect("parent");
    let load = Load::start(&stud.addrs, &config, 3);

    // Kill one worker at a time, each once the previous replacement serves.
    let mut killed = Vec::new();
    for round in 0..4 {
        let victim = workers[round % 2];
        let ok_before = load.ok();
        assert!(send_signal(victim, libc::SIGKILL));
        killed.push(victim);
        workers = replaced(&stud, 2, &killed);
        let progressed = wait_for(TIMEOUT, || (load.ok() > ok_before + 20).then_some(()));
        assert!(progressed.is_some(), "load stalled after killing {victim}");
    }
    let (ok, failed) = load.finish();

    let tree = Tree::read(stud.pid()).expect("parent alive");
    report(
        "kill under load",
        &format!(
            "{ok} served, {failed} failed; parent fds {} -> {}; {tree}",
            parent_before.fds, tree.parent.fds
        ),
    );
    assert!(tree.zombies().is_empty(), "zombies: {tree}");
    assert_eq!(tree.children.len(), 2, "{tree}");
    assert_eq!(
        tree.parent.fds, parent_before.fds,
        "the parent's descriptors grew across respawns"
    );
    for pid in &killed {
        assert!(!alive(*pid), "killed worker {pid} still there");
    }
    // Only connections the killed workers held can fail.
    assert!(
        failed <= 3 * killed.len(),
        "{failed} failures for {} kills",
        killed.len()
    );
    for addr in &stud.addrs {
        served(*addr, &config).expect("served after the kills");
    }
}

#[test]
fn a_crash_loop_under_load_is_rate_limited() {
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_dual(&stud_bin!(), &pki, backend, &["-n", "1"]);
    let first = stud.worker_pids(1)[0];
    let config = net::client_config(&pki.ca_der);
    let load = Load::start(&stud.addrs, &config, 2);
    // Kill every worker the moment it appears, for three seconds.
    let window = Duration::from_secs(3);
    let start = Instant::now();
    let mut killed = vec![];
    let mut victim = first;
    while start.elapsed() < window {
        if alive(victim) {
            send_signal(victim, libc::SIGKILL);
            killed.push(victim);
        }
        if let Some(next) = live_children(&stud)
            .into_iter()
            .find(|p| !killed.contains(p))
        {
            victim = next;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let starts = stud.output().matches("worker 0 started").count();
    report(
        "crash loop",
        &format!(
            "{} kills in {window:?}, {starts} worker starts",
            killed.len()
        ),
    );
    // Back-off from 0.1 s doubling: about five restarts in three seconds, not hundreds.
    assert!(
        starts <= 8,
        "{starts} restarts in {window:?}:\n{}",
        stud.output()
    );
    // Once the killing stops, the loop recovers and serves again.
    let replacement = replaced(&stud, 1, &killed);
    let ok_before = load.ok();
    let progressed = wait_for(TIMEOUT, || (load.ok() > ok_before + 10).then_some(()));
    let (_, _) = load.finish();
    assert!(progressed.is_some(), "no service after the crash loop");
    assert!(alive(replacement[0]));
    let tree = Tree::read(stud.pid()).expect("parent");
    assert!(tree.zombies().is_empty(), "zombies: {tree}");
}

#[test]
fn a_parent_killed_under_load_takes_its_workers_down_after_in_flight_transfers() {
    const LEN: usize = 20 * 64 * 1024;
    let pki = Pki::new();
    // A transfer of about two seconds: 20 chunks of 64 KiB, 100 ms apart.
    let addr = backend_on("[::1]:0", |mut conn| {
        let mut go = [0u8; 1];
        if conn.read_exact(&mut go).is_err() {
            return;
        }
        let data = pattern(12, LEN);
        for chunk in data.chunks(64 * 1024) {
            if conn.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = conn.shutdown(Shutdown::Write);
    });
    let mut stud = start_dual(
        &stud_bin!(),
        &pki,
        addr,
        &["-n", "2", "--drain-timeout", "10"],
    );
    let workers = stud.worker_pids(2);
    let frontends = stud.addrs.clone();
    let config = net::client_config(&pki.ca_der);
    let mut transfers = Vec::new();
    for i in 0..4 {
        let mut tls = connect(frontends[i % 2], &config).expect("handshake");
        tls.write_all(b"g").expect("go");
        transfers.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            let result = tls.read_to_end(&mut got);
            (result.map(|_| ()), got)
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    stud.signal(libc::SIGKILL);
    let _ = stud.wait_exit(TIMEOUT);
    let started = Instant::now();
    for t in transfers {
        let (result, got) = t.join().expect("transfer thread");
        assert!(
            result.is_ok(),
            "transfer cut by the parent's death: {result:?}"
        );
        assert_eq!(sha256(&got), sha256(&pattern(12, LEN)));
    }
    let gone = wait_for(TIMEOUT, || workers.iter().all(|p| !alive(*p)).then_some(()));
    report(
        "parent death",
        &format!(
            "transfers done and workers gone {:?} after the parent died",
            started.elapsed()
        ),
    );
    assert!(gone.is_some(), "orphaned workers {workers:?} still running");
    // Nothing holds the listening ports any more.
    for frontend in frontends {
        assert!(
            TcpListener::bind(frontend).is_ok(),
            "the frontend {frontend} is still held after the tree died"
        );
    }
}
