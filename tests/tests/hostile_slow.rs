//! Slow peers: handshakes that trickle or stall are cut at `--ssl-handshake-timeout`, and a
//! client or backend that stops reading costs stud no memory while the other side keeps pushing.
//! The trickles run over IPv4 and IPv6 at once; the stalled client's transfer runs over IPv6
//! (client and backend), the stalled backend's over IPv4.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use stud_tests::hostile::{
    accepted, client_hello, counting_backend, raw_connect, record, start_dual, watch, Ending,
};
use stud_tests::net::{self, backend, backend_on, connect, pattern, sha256};
use stud_tests::pki::Pki;
use stud_tests::procfs::{report, sample};
use stud_tests::{start_stud, stud_bin, TIMEOUT};

const HANDSHAKE: Duration = Duration::from_secs(2);

/// Writes `bytes` one at a time, `gap` apart, until done or the peer is gone; then waits for
/// the end. Returns how long after the connect the connection ended.
fn trickle(addr: SocketAddr, prefix: &[u8], bytes: &[u8], gap: Duration) -> (Ending, Duration) {
    let start = Instant::now();
    let mut tcp = raw_connect(addr).expect("connect");
    let _ = tcp.write_all(prefix);
    for b in bytes {
        if tcp.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(gap);
        // Stop trickling once stud has closed (a read sees the end without blocking long).
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(1)));
        let mut probe = [0u8; 1024];
        match tcp.read(&mut probe) {
            Ok(0) => return (Ending::Eof, start.elapsed()),
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                return (Ending::Reset, start.elapsed())
            }
            _ => {}
        }
    }
    let seen = watch(&mut tcp, start + HANDSHAKE + Duration::from_secs(3));
    (seen.ending, start.elapsed())
}

#[test]
fn slow_and_silent_handshakes_are_cut_at_the_handshake_timeout() {
    let pki = Pki::new();
    let (backend, count) = counting_backend();
    let stud = start_dual(
        &stud_bin!(),
        &pki,
        backend,
        &["--ssl-handshake-timeout", "2"],
    );
    let config = net::client_config(&pki.ca_der);
    let hello = client_hello(&config);
    // After a whole hello: the middlebox CCS and the header and body of an encrypted record,
    // all legal so far, a byte at a time.
    let mut after_hello = record(20, 0x0303, &[1]);
    after_hello.extend_from_slice(&[23, 3, 3, 0, 64]);
    after_hello.extend_from_slice(&[0x33; 64]);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, Duration)> = vec![
        ("silent", vec![], vec![], Duration::ZERO),
        (
            "hello a byte every 100 ms",
            vec![],
            hello.clone(),
            Duration::from_millis(100),
        ),
        (
            "hello a byte every 700 ms",
            vec![],
            hello.clone(),
            Duration::from_millis(700),
        ),
        (
            "whole hello, then nothing",
            hello.clone(),
            vec![],
            Duration::ZERO,
        ),
        (
            "whole hello, then the next flight a byte every 50 ms",
            hello.clone(),
            after_hello,
            Duration::from_millis(50),
        ),
        (
            "a record header a byte a second",
            vec![],
            vec![22, 3, 1, 0, 200],
            Duration::from_secs(1),
        ),
    ];
    // Every case over each family, all at once.
    let threads: Vec<_> = stud
        .addrs
        .iter()
        .flat_map(|&addr| {
            cases.iter().map(move |(name, prefix, bytes, gap)| {
                let name = format!("{name} ({addr})");
                let (prefix, bytes, gap) = (prefix.clone(), bytes.clone(), *gap);
                std::thread::spawn(move || (name, trickle(addr, &prefix, &bytes, gap)))
            })
        })
        .collect();
    let mut failures = Vec::new();
    for t in threads {
        let (name, (ending, after)) = t.join().expect("trickle thread");
        report(
            "slow handshake",
            &format!("{name}: {ending:?} after {after:?}"),
        );
        if ending == Ending::Open {
            failures.push(format!("{name}: still open after {after:?}"));
        } else if after + Duration::from_millis(200) < HANDSHAKE {
            failures.push(format!("{name}: cut early, after {after:?}"));
        } else if after > HANDSHAKE + Duration::from_millis(1500) {
            failures.push(format!("{name}: cut late, after {after:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", stud.output());
    assert_eq!(accepted(&count), 0, "a slow handshake reached the backend");
}

/// Samples the worker's RSS every 100 ms for `window`; returns the largest value in KiB.
fn peak_rss(pid: i32, window: Duration) -> u64 {
    let end = Instant::now() + window;
    let mut peak = 0;
    while Instant::now() < end {
        if let Some(s) = sample(pid) {
            peak = peak.max(s.rss_kib);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    peak
}

/// How much a worker may grow while one side stalls: its two budgets, a record of slack and
/// allocator noise, far below the bytes pushed.
const GROWTH_LIMIT_KIB: u64 = 4 * 1024;
const PUSHED: usize = 64 << 20;

#[test]
fn a_client_that_stops_reading_costs_no_memory_and_then_gets_every_byte() {
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    // Waits for the client's go, then pushes 64 MiB as fast as stud takes them.
    let addr = backend_on("[::1]:0", move |mut conn| {
        let mut go = [0u8; 1];
        if conn.read_exact(&mut go).is_err() {
            return;
        }
        let _ = conn.set_write_timeout(Some(Duration::from_secs(120)));
        let ok = conn.write_all(&pattern(9, PUSHED)).is_ok();
        let _ = conn.shutdown(Shutdown::Write);
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(ok);
        }
    });
    let stud = start_dual(&stud_bin!(), &pki, addr, &["-n", "1"]);
    let worker = stud.worker_pids(1)[0];
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addrs[1], &config).expect("handshake over IPv6");
    tls.write_all(b"g").expect("go");
    tls.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    let before = sample(worker).expect("worker").rss_kib;
    // Not reading: every buffer between the backend and us fills, and stud must stop reading.
    let peak = peak_rss(worker, Duration::from_secs(3));
    report(
        "slow client",
        &format!("worker RSS {before} KiB before, peak {peak} KiB while stalled"),
    );
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n;
            }
            Err(e) => panic!("download failed after {total} bytes: {e}"),
        }
    }
    assert!(rx.recv_timeout(TIMEOUT).expect("backend report"));
    assert_eq!(total, PUSHED);
    assert_eq!(
        <[u8; 32]>::from(hasher.finalize()),
        sha256(&pattern(9, PUSHED))
    );
    assert!(
        peak.saturating_sub(before) < GROWTH_LIMIT_KIB,
        "worker grew from {before} to {peak} KiB while the client did not read"
    );
}

#[test]
fn a_backend_that_stops_reading_costs_no_memory_and_then_gets_every_byte() {
    let pki = Pki::new();
    let (stalled_tx, stalled_rx) = mpsc::channel::<()>();
    let stalled_rx = std::sync::Mutex::new(stalled_rx);
    // Reads nothing until told to, then hashes everything and answers with the hash.
    let addr = backend(move |mut conn| {
        if let Ok(rx) = stalled_rx.lock() {
            let _ = rx.recv_timeout(Duration::from_secs(60));
        }
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => hasher.update(&buf[..n]),
            }
        }
        let _ = conn.write_all(&hasher.finalize());
    });
    let stud = start_stud!(&pki, addr, &["-n", "1"]);
    let worker = stud.worker_pids(1)[0];
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"x").expect("first byte");
    std::thread::sleep(Duration::from_millis(300));
    let before = sample(worker).expect("worker").rss_kib;
    let uploader = std::thread::spawn(move || {
        tls.sock
            .set_write_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        tls.write_all(&pattern(4, PUSHED - 1))
            .expect("upload completes once the backend reads");
        net::half_close(&mut tls).expect("half-close");
        net::read_to_end(&mut tls).expect("the backend's answer, then close_notify")
    });
    let peak = peak_rss(worker, Duration::from_secs(3));
    report(
        "slow backend",
        &format!("worker RSS {before} KiB before, peak {peak} KiB while stalled"),
    );
    stalled_tx.send(()).expect("release the backend");
    let answer = uploader.join().expect("uploader");
    let mut expected = b"x".to_vec();
    expected.extend_from_slice(&pattern(4, PUSHED - 1));
    assert_eq!(answer, sha256(&expected), "the backend got different bytes");
    assert!(
        peak.saturating_sub(before) < GROWTH_LIMIT_KIB,
        "worker grew from {before} to {peak} KiB while the backend did not read"
    );
}
