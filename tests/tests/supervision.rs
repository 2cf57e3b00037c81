//! The process tree: workers share the load, a killed worker is replaced (with back-off), SIGTERM
//! drains in-flight transfers then exits 0, workers die with their parent.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stud_tests::net::{self, backend, connect, echo_backend};
use stud_tests::pki::Pki;
use stud_tests::process::{alive, send_signal, Stud};
use stud_tests::{stud_bin, TIMEOUT};

fn start(pki: &Pki, backend: SocketAddr, extra: &[&str]) -> Stud {
    Stud::serve(&stud_bin!(), &pki.site_pem, backend, extra)
}

/// The inode of the TCP socket whose local port is `port` (from /proc/net/tcp).
fn socket_inode(local_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let port = cols.get(1)?.rsplit_once(':')?.1;
        (u16::from_str_radix(port, 16).ok()? == local_port)
            .then(|| cols.get(9).map(|s| s.to_string()))?
    })
}

/// Which of `pids` holds the socket with local port `port`.
fn owner(port: u16, pids: &[i32]) -> Option<i32> {
    let inode = socket_inode(port)?;
    let needle = format!("socket:[{inode}]");
    pids.iter().copied().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.flatten().any(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == needle)
                })
            })
            .unwrap_or(false)
    })
}

/// Opens connections until every worker has served one; panics if that takes more than `max`.
fn every_worker_serves(extra: &[&str], workers: usize, max: usize) {
    let pki = Pki::new();
    // The backend reports the port stud connected from, then echoes (keeping the socket open).
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = backend(move |conn| {
        if let (Ok(peer), Ok(tx)) = (conn.peer_addr(), tx.lock()) {
            let _ = tx.send(peer.port());
        }
        net::echo(conn);
    });
    let mut args = vec!["-n", if workers == 2 { "2" } else { "3" }];
    args.extend_from_slice(extra);
    let stud = start(&pki, addr, &args);
    let pids = stud.worker_pids(workers);
    let config = net::client_config(&pki.ca_der);
    let mut served = std::collections::HashSet::new();
    let mut open = Vec::new();
    for _ in 0..max {
        let mut tls = connect(stud.addr, &config).expect("handshake");
        tls.write_all(b"x").expect("write");
        let port = rx.recv_timeout(TIMEOUT).expect("backend connection");
        if let Some(pid) = owner(port, &pids) {
            served.insert(pid);
        }
        open.push(tls);
        if served.len() == workers {
            return;
        }
    }
    panic!("after {max} connections only workers {served:?} of {pids:?} served");
}

#[test]
fn two_workers_share_the_load() {
    every_worker_serves(&[], 2, 200);
}

#[test]
fn reuseport_workers_share_the_load() {
    every_worker_serves(&["--reuseport"], 2, 200);
}

#[test]
fn killed_worker_is_replaced_with_back_off() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &["-n", "2"]);
    let config = net::client_config(&pki.ca_der);
    let mut victim = stud.worker_pids(2)[0];
    let mut delays = Vec::new();
    for round in 0..3 {
        assert!(send_signal(victim, libc::SIGKILL));
        let died = format!("worker 0 (pid {victim}) died");
        let line = stud
            .wait_line(|l| l.contains(&died), TIMEOUT)
            .unwrap_or_else(|| panic!("no death report: {}", stud.output()));
        let delay: f64 = line
            .split("restarting in ")
            .nth(1)
            .and_then(|s| s.trim_end_matches(" s").parse().ok())
            .unwrap_or_else(|| panic!("no restart delay in {line:?}"));
        delays.push(delay);
        let replaced = stud
            .wait_lines(
                |lines| {
                    lines
                        .iter()
                        .rev()
                        .filter_map(|l| l.split("worker 0 started (pid ").nth(1))
                        .filter_map(|p| p.trim_end_matches(')').parse::<i32>().ok())
                        .find(|p| *p != victim)
                        .filter(|_| {
                            lines
                                .iter()
                                .filter(|l| l.contains("worker 0 started"))
                                .count()
                                == round + 2
                        })
                },
                TIMEOUT,
            )
            .unwrap_or_else(|| panic!("worker 0 not replaced: {}", stud.output()));
        // The dead worker is reaped, not left a zombie.
        let deadline = Instant::now() + TIMEOUT;
        while Path::new(&format!("/proc/{victim}")).exists() {
            assert!(Instant::now() < deadline, "worker {victim} never reaped");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(alive(replaced));
        victim = replaced;
        // The tree still serves.
        let mut tls = connect(stud.addr, &config).expect("handshake after a kill");
        tls.write_all(b"still here").expect("write");
        assert_eq!(net::read_exact(&mut tls, 10).expect("echo"), b"still here");
    }
    assert!(alive(stud.pid()));
    // A worker that keeps dying young waits longer each time.
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "restart delays did not grow: {delays:?}"
    );
}

#[test]
fn sigterm_drains_an_in_flight_transfer_then_exits_zero() {
    const CHUNKS: usize = 20;
    let pki = Pki::new();
    // Sends 20 chunks of 64 KiB, 100 ms apart: a transfer of about two seconds.
    let addr = backend(|mut conn| {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..CHUNKS {
            if conn.write_all(&chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = conn.shutdown(Shutdown::Write);
    });
    let mut stud = start(&pki, addr, &["-n", "2"]);
    let workers = stud.worker_pids(2);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    let first = net::read_exact(&mut tls, 1024).expect("transfer started");
    assert_eq!(first.len(), 1024);
    stud.signal(libc::SIGTERM);
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)
        .expect("the transfer finishes cleanly during the drain");
    assert_eq!(first.len() + rest.len(), CHUNKS * 64 * 1024);
    // Our direction is still open (the connection is half-closed); finish it.
    net::half_close(&mut tls).expect("half-close");
    let status = stud
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|| panic!("stud did not exit after draining: {}", stud.output()));
    assert_eq!(status.code(), Some(0), "{}", stud.output());
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived the parent");
    }
}

#[test]
fn sigint_stops_cleanly() {
    let pki = Pki::new();
    let mut stud = start(&pki, echo_backend(), &[]);
    stud.signal(libc::SIGINT);
    let status = stud.wait_exit(TIMEOUT).expect("stud exits");
    assert_eq!(status.code(), Some(0));
    assert!(stud.output().contains("stopped"), "{}", stud.output());
}

#[test]
fn workers_exit_when_the_parent_is_killed() {
    let pki = Pki::new();
    let mut stud = start(&pki, echo_backend(), &["-n", "2"]);
    let workers = stud.worker_pids(2);
    stud.signal(libc::SIGKILL);
    let _ = stud.wait_exit(TIMEOUT);
    let deadline = Instant::now() + TIMEOUT;
    while workers.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "orphaned workers {workers:?} still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    let old = Pki::new();
    let new = Pki::new();
    let dir = stud_tests::pki::TempDir::new();
    let pem = dir.write("site.pem", std::fs::read(&old.site_pem).expect("old pem"));
    let stud = Stud::serve(&stud_bin!(), &pem, echo_backend(), &["-n", "2"]);
    let trusts_old = net::client_config(&old.ca_der);
    let trusts_new = net::client_config(&new.ca_der);

    // A connection established before the reload.
    let mut before = connect(stud.addr, &trusts_old).expect("handshake before reload");
    before.write_all(b"one").expect("write");
    assert_eq!(net::read_exact(&mut before, 3).expect("echo"), b"one");
    let old_workers = stud.worker_pids(2);

    // The operator renews the certificate and sends SIGHUP.
    std::fs::write(&pem, std::fs::read(&new.site_pem).expect("new pem")).expect("replace pem");
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload; stderr:\n{}", stud.output()));

    // New connections get the new certificate (retry while the new workers start).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match connect(stud.addr, &trusts_new) {
            Ok(mut tls) => {
                tls.write_all(b"two").expect("write");
                assert_eq!(net::read_exact(&mut tls, 3).expect("echo"), b"two");
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "new certificate never served: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // The connection from before the reload still works, served by an old worker.
    before.write_all(b"three").expect("write after reload");
    assert_eq!(
        net::read_exact(&mut before, 5).expect("echo after reload"),
        b"three"
    );
    assert!(
        old_workers.iter().any(|p| alive(*p)),
        "its worker drains, not dies"
    );
    drop(before);
    stud.wait_line(|l| l.contains("finished draining"), TIMEOUT)
        .unwrap_or_else(|| panic!("old workers did not finish; stderr:\n{}", stud.output()));

    // A reload with a broken file changes nothing: the new certificate is still served.
    std::fs::write(&pem, b"not a pem").expect("break pem");
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reload failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload failure logged; stderr:\n{}", stud.output()));
    assert!(connect(stud.addr, &trusts_new).is_ok());
    // A fresh client (no session to resume) sees that the old certificate is gone.
    let fresh_old = net::client_config(&old.ca_der);
    assert!(
        connect(stud.addr, &fresh_old).is_err(),
        "the old certificate is gone"
    );
    // The ticket secret outlives reloads: the pre-reload session still resumes.
    let resumed = connect(stud.addr, &trusts_old).expect("resumed handshake");
    assert_eq!(
        resumed.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert!(alive(stud.pid()));
}

#[test]
fn a_stopped_worker_is_found_by_the_watchdog_and_replaced() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &["-n", "2", "--worker-timeout=3"]);
    let config = net::client_config(&pki.ca_der);
    let pids = stud.worker_pids(2);
    // Let the watchdog see both workers alive for twice its timeout first: a healthy, idle
    // worker is never taken for a stuck one.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !stud.output().contains("no sign of life"),
        "{}",
        stud.output()
    );
    // The whole tree stopped and resumed (Ctrl-Z, then fg), the parent first: its workers were
    // stopped with it, not stuck, and are left alone.
    let group = stud.pid();
    assert!(send_signal(-group, libc::SIGSTOP));
    std::thread::sleep(Duration::from_millis(4500));
    assert!(send_signal(group, libc::SIGCONT));
    std::thread::sleep(Duration::from_millis(100));
    assert!(send_signal(-group, libc::SIGCONT));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !stud.output().contains("no sign of life"),
        "a paused tree cost its workers: {}",
        stud.output()
    );
    let victim = pids[1];
    assert!(send_signal(victim, libc::SIGSTOP));
    let stopped = Instant::now();
    let wedged = format!("worker 1 (pid {victim}) has shown no sign of life");
    assert!(
        stud.wait_line(|l| l.contains(&wedged), TIMEOUT).is_some(),
        "the stopped worker was not noticed: {}",
        stud.output()
    );
    // Noticed within the timeout plus the parent's look interval and a heartbeat interval.
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "noticed after {:?}",
        stopped.elapsed()
    );
    let replaced = stud
        .wait_lines(
            |lines| {
                lines
                    .iter()
                    .filter_map(|l| l.split("worker 1 started (pid ").nth(1))
                    .filter_map(|p| p.trim_end_matches(')').parse::<i32>().ok())
                    .find(|p| *p != victim)
            },
            TIMEOUT,
        )
        .unwrap_or_else(|| panic!("worker 1 not replaced: {}", stud.output()));
    // The stopped worker was killed and reaped, not left stopped or a zombie.
    let deadline = Instant::now() + TIMEOUT;
    while Path::new(&format!("/proc/{victim}")).exists() {
        assert!(Instant::now() < deadline, "worker {victim} never reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(replaced));
    assert!(alive(pids[0]), "the healthy worker is left alone");
    for _ in 0..4 {
        let mut tls = connect(stud.addr, &config).expect("handshake after the replacement");
        tls.write_all(b"alive").expect("write");
        assert_eq!(net::read_exact(&mut tls, 5).expect("echo"), b"alive");
    }
}

#[test]
fn a_worker_started_by_a_second_quick_reload_is_watched_while_older_ones_drain() {
    let pki = Pki::new();
    let stud = start(
        &pki,
        echo_backend(),
        &["--worker-timeout=3", "--drain-timeout=60"],
    );
    let config = net::client_config(&pki.ca_der);
    // A connection held on the first worker keeps it draining (and beating) through both
    // reloads.
    let mut held = connect(stud.addr, &config).expect("handshake");
    held.write_all(b"hold").expect("write");
    let started = |n: usize| {
        stud.wait_lines(
            |lines| {
                let pids: Vec<i32> = lines
                    .iter()
                    .filter_map(|l| l.split("worker 0 started (pid ").nth(1))
                    .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
                    .collect();
                (pids.len() >= n).then(|| pids[n - 1])
            },
            TIMEOUT,
        )
        .unwrap_or_else(|| panic!("worker {n} never started: {}", stud.output()))
    };
    let _first = started(1);
    assert!(send_signal(stud.pid(), libc::SIGHUP));
    let _second = started(2);
    assert!(send_signal(stud.pid(), libc::SIGHUP));
    let third = started(3);
    // The newest worker stops; the first still beats. The watchdog must still see it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(send_signal(third, libc::SIGSTOP));
    let wedged = format!("worker 0 (pid {third}) has shown no sign of life");
    assert!(
        stud.wait_line(|l| l.contains(&wedged), Duration::from_secs(10))
            .is_some(),
        "a stopped worker of the third generation went unnoticed: {}",
        stud.output()
    );
    let mut four = [0u8; 4];
    held.read_exact(&mut four)
        .expect("the held connection still echoes");
    assert_eq!(&four, b"hold");
}
