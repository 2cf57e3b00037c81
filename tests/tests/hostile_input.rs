//! Malformed input before and during the handshake: garbage, plaintext HTTP, SSLv2 and SSLv3
//! hellos, truncated and fragmented hellos, oversized lengths, records before the hello, alerts
//! mid-handshake, and hundreds of mutated real ClientHellos.
//!
//! Each must end in an alert or a close within the handshake timeout, the backend must never be
//! contacted, no worker may die, and a normal client is served right after. stud listens on both
//! loopbacks: every malformed case is sent over IPv4 and IPv6 at once, and the mutants alternate.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stud_tests::hostile::{
    self, accepted, client_hello, client_hello_message as hello_body, counting_backend,
    hello_handshake, probe, raw_connect, record, records, start_dual, watch, Ending, Observed, Rng,
};
use stud_tests::net;
use stud_tests::pki::Pki;
use stud_tests::process::alive;
use stud_tests::procfs::report;
use stud_tests::{start_stud, stud_bin};

/// The handshake timeout these tests give stud, in seconds.
const HANDSHAKE_SECS: u64 = 3;
/// Slack on top of a deadline for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

/// How a case must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Refused on sight: closed well before the handshake timeout.
    Prompt,
    /// Incomplete input stud must wait for: closed by the handshake timeout.
    ByTimeout,
}

/// An SSLv2-format ClientHello (the "compatible" form old clients sent).
fn sslv2_hello() -> Vec<u8> {
    let mut body = vec![0x01, 0x03, 0x01]; // CLIENT-HELLO, asking for TLS 1.0
    let ciphers: [[u8; 3]; 3] = [[0x00, 0x00, 0x2f], [0x00, 0x00, 0x35], [0x07, 0x00, 0xc0]];
    body.extend_from_slice(&((ciphers.len() * 3) as u16).to_be_bytes());
    body.extend_from_slice(&[0, 0]); // session id length
    body.extend_from_slice(&[0, 16]); // challenge length
    for c in ciphers {
        body.extend_from_slice(&c);
    }
    body.extend_from_slice(&[0x5a; 16]);
    let mut out = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

fn cases(hello: &[u8]) -> Vec<(&'static str, Vec<u8>, Expect)> {
    let mut rng = Rng::new(7);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    let handshake = hello_handshake(hello);
    // A real hello whose handshake message spans several records, the last one missing.
    let half = handshake.len() / 2;
    let mut fragmented_unfinished = record(22, 0x0301, &handshake[..half / 2]);
    fragmented_unfinished.extend(record(22, 0x0301, &handshake[half / 2..half]));
    let mut many_empty = Vec::new();
    for _ in 0..2000 {
        many_empty.extend(record(22, 0x0301, &[]));
    }
    let mut oversized_handshake = vec![1, 0xff, 0xff, 0xff];
    oversized_handshake.extend_from_slice(&[0; 200]);
    vec![
        ("random garbage", garbage, Expect::Prompt),
        (
            "plaintext HTTP",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            Expect::Prompt,
        ),
        ("SSLv2 hello", sslv2_hello(), Expect::Prompt),
        (
            "SSLv3 hello",
            record(22, 0x0300, &hello_body(0x0300, &[0x002f, 0x000a], &[])),
            Expect::Prompt,
        ),
        (
            "TLS 1.0-only hello",
            record(22, 0x0301, &hello_body(0x0301, &[0xc013, 0x002f], &[])),
            Expect::Prompt,
        ),
        (
            "TLS 1.2 hello with only CBC and RC4 suites",
            record(
                22,
                0x0301,
                &hello_body(0x0303, &[0x002f, 0x0035, 0x0005], &[]),
            ),
            Expect::Prompt,
        ),
        (
            "oversized record length",
            {
                let mut r = vec![22, 3, 1, 0xff, 0xff];
                r.extend_from_slice(&[0; 300]);
                r
            },
            Expect::Prompt,
        ),
        (
            "oversized handshake length",
            record(22, 0x0301, &oversized_handshake),
            Expect::Prompt,
        ),
        (
            "application data before the hello",
            record(23, 0x0303, &[0xaa; 64]),
            Expect::Prompt,
        ),
        (
            "heartbeat before the hello",
            record(24, 0x0303, &[1, 0x40, 0x00]),
            Expect::Prompt,
        ),
        (
            "unknown record type",
            record(99, 0x0303, &[1, 2, 3]),
            Expect::Prompt,
        ),
        (
            "fatal alert instead of a hello",
            record(21, 0x0303, &[2, 40]),
            Expect::Prompt,
        ),
        (
            "two thousand empty handshake records",
            many_empty,
            Expect::Prompt,
        ),
        (
            "truncated hello",
            hello[..hello.len().min(60)].to_vec(),
            Expect::ByTimeout,
        ),
        (
            "three bytes of a record header",
            vec![22, 3, 1],
            Expect::ByTimeout,
        ),
        (
            "hello split over records, last one missing",
            fragmented_unfinished,
            Expect::ByTimeout,
        ),
        ("nothing at all", Vec::new(), Expect::ByTimeout),
    ]
}

/// Sends a real hello, waits for stud's first flight, then sends `then`; `fin` also shuts our
/// write side.
fn mid_handshake(addr: SocketAddr, hello: &[u8], then: &[u8], fin: bool) -> (Observed, bool) {
    let mut tcp = raw_connect(addr).expect("connect");
    tcp.write_all(hello).expect("send hello");
    let first = watch(&mut tcp, Instant::now() + Duration::from_millis(700));
    let got_flight = records(&first.reply)
        .first()
        .is_some_and(|(ty, _)| *ty == 22);
    let _ = tcp.write_all(then);
    if fin {
        hostile::fin(&tcp);
    }
    let within = Duration::from_secs(HANDSHAKE_SECS) + SLACK;
    (watch(&mut tcp, Instant::now() + within), got_flight)
}

#[test]
fn malformed_handshakes_end_in_alert_or_close_and_never_reach_the_backend() {
    let pki = Pki::new();
    let (backend, count) = counting_backend();
    let hs = HANDSHAKE_SECS.to_string();
    let stud = start_dual(
        &stud_bin!(),
        &pki,
        backend,
        &["-n", "2", "--ssl-handshake-timeout", &hs],
    );
    let workers = stud.worker_pids(2);
    let config = net::client_config(&pki.ca_der);
    let hello = client_hello(&config);
    assert_eq!(
        records(&hello).first().map(|r| r.0),
        Some(22),
        "captured hello"
    );

    // All cases at once, each on its own thread and over each family: the slowest bounds the
    // test.
    let within = Duration::from_secs(HANDSHAKE_SECS) + SLACK;
    let mut threads = Vec::new();
    for addr in stud.addrs.clone() {
        let family = if addr.is_ipv6() { "IPv6" } else { "IPv4" };
        for (name, payload, expect) in cases(&hello) {
            let name = format!("{name} ({family})");
            threads.push(std::thread::spawn(move || {
                (name, expect, probe(addr, &payload, within))
            }));
        }
    }
    let mid: [(&str, Vec<u8>, bool); 4] = [
        (
            "fatal alert mid-handshake",
            record(21, 0x0303, &[2, 40]),
            false,
        ),
        (
            "close_notify mid-handshake",
            record(21, 0x0303, &[1, 0]),
            false,
        ),
        ("FIN mid-handshake", Vec::new(), true),
        (
            "application data mid-handshake",
            record(23, 0x0303, &[0x55; 40]),
            false,
        ),
    ];
    for (i, (name, then, fin)) in mid.into_iter().enumerate() {
        // Alternating families: each mid-handshake case once.
        let addr = stud.addrs[i % 2];
        let name = format!("{name} ({addr})");
        let hello = hello.clone();
        threads.push(std::thread::spawn(move || {
            let (seen, flight) = mid_handshake(addr, &hello, &then, fin);
            assert!(
                flight,
                "{name}: stud sent no handshake flight to a real hello"
            );
            (name, Expect::Prompt, seen)
        }));
    }

    let mut failures = Vec::new();
    for t in threads {
        let (name, expect, seen) = t.join().expect("probe thread");
        report(
            "malformed",
            &format!(
                "{name}: {:?} after {:?}, {} bytes back, alert {}",
                seen.ending,
                seen.after,
                seen.reply.len(),
                seen.has_alert()
            ),
        );
        if seen.ending == Ending::Open {
            failures.push(format!("{name}: still open after {within:?}"));
            continue;
        }
        let timeout = Duration::from_secs(HANDSHAKE_SECS);
        match expect {
            Expect::Prompt if seen.after >= timeout => failures.push(format!(
                "{name}: closed only after {:?} (by the timeout, not on sight)",
                seen.after
            )),
            Expect::ByTimeout if seen.after + Duration::from_millis(300) < timeout => failures
                .push(format!(
                    "{name}: closed after {:?}, before the handshake timeout",
                    seen.after
                )),
            _ => {}
        }
        // Whatever stud sent is TLS: records only, ending in an alert if anything was refused.
        let parsed: usize = records(&seen.reply).iter().map(|(_, p)| 5 + p.len()).sum();
        if parsed != seen.reply.len() {
            failures.push(format!("{name}: reply is not whole TLS records"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", stud.output());
    assert_eq!(accepted(&count), 0, "stud contacted the backend");
    for pid in &workers {
        assert!(alive(*pid), "worker {pid} died");
    }
    assert_eq!(stud.worker_pids(2), workers, "a worker was replaced");
    for addr in &stud.addrs {
        hostile::served(*addr, &config).expect("a normal client is served right after");
    }
    assert_eq!(accepted(&count), 2);
}

#[test]
fn a_hello_fragmented_into_tiny_records_and_segments_still_completes() {
    let pki = Pki::new();
    let (backend, count) = counting_backend();
    let stud = start_stud!(&pki, backend, &[]);
    let config = net::client_config(&pki.ca_der);
    // The legal extreme: the hello's handshake message cut into 1..=7-byte records, each
    // written as its own TCP segment.
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let mut first = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut first).expect("to a Vec");
    }
    let handshake = hello_handshake(&first);
    let mut tcp = raw_connect(stud.addr).expect("connect");
    let mut rng = Rng::new(11);
    let mut at = 0;
    while at < handshake.len() {
        let end = (at + 1 + rng.below(7)).min(handshake.len());
        tcp.write_all(&record(22, 0x0301, &handshake[at..end]))
            .expect("send fragment");
        at = end;
    }
    tcp.set_read_timeout(Some(stud_tests::TIMEOUT))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("the fragmented handshake completes");
    }
    tls.write_all(b"fragmented").expect("write");
    assert_eq!(net::read_exact(&mut tls, 10).expect("echo"), b"fragmented");
    assert_eq!(accepted(&count), 1);
}

#[test]
fn hundreds_of_mutated_client_hellos_are_refused_and_logged_sparingly() {
    const MUTANTS: usize = 400;
    const BATCH: usize = 100;
    let pki = Pki::new();
    let (backend, count) = counting_backend();
    let stud = start_dual(
        &stud_bin!(),
        &pki,
        backend,
        &["-n", "1", "-B", "512", "--ssl-handshake-timeout", "2"],
    );
    let workers = stud.worker_pids(1);
    let config = net::client_config(&pki.ca_der);
    let hello = client_hello(&config);
    let mut rng = Rng::new(2024);
    let started = Instant::now();
    let mut endings = std::collections::HashMap::new();
    let within = Duration::from_secs(2) + SLACK;
    for batch in 0..MUTANTS / BATCH {
        // Send a whole batch, then watch them all against one deadline.
        let mut open = Vec::new();
        for i in 0..BATCH {
            let mutant = hostile::mutate(&hello, &mut rng);
            let mut tcp = raw_connect(stud.addrs[i % 2]).expect("connect");
            let _ = tcp.write_all(&mutant);
            open.push((batch * BATCH + i, tcp, mutant));
        }
        let deadline = Instant::now() + within;
        for (i, mut tcp, mutant) in open {
            let seen = watch(&mut tcp, deadline);
            assert_ne!(
                seen.ending,
                Ending::Open,
                "mutant {i} still open after the handshake timeout: {mutant:02x?}"
            );
            *endings
                .entry(format!("{:?}", seen.ending))
                .or_insert(0usize) += 1;
        }
    }
    let elapsed = started.elapsed();
    report(
        "mutants",
        &format!("{MUTANTS} mutants in {elapsed:?}: {endings:?}"),
    );
    assert_eq!(accepted(&count), 0, "a mutant reached the backend");
    assert_eq!(stud.worker_pids(1), workers);
    assert!(workers.iter().all(|p| alive(*p)), "the worker died");
    hostile::served(stud.addr, &config).expect("served after the mutants");
    // Handshake failures are logged at a bounded rate, not one line per bad client.
    let failure_lines = stud
        .output()
        .lines()
        .filter(|l| l.contains("handshake with"))
        .count();
    let bound = 5 * (elapsed.as_secs() as usize + 2);
    assert!(
        failure_lines <= bound,
        "{failure_lines} handshake-failure lines in {elapsed:?} (bound {bound})"
    );
}

#[test]
fn close_notify_instead_of_a_hello_closes_at_once() {
    let pki = Pki::new();
    let (backend, count) = counting_backend();
    let hs = HANDSHAKE_SECS.to_string();
    let stud = start_stud!(&pki, backend, &["--ssl-handshake-timeout", &hs]);
    // The client says it will send nothing more: no handshake can follow, so waiting for the
    // timeout only holds a socket.
    let seen = probe(
        stud.addr,
        &record(21, 0x0303, &[1, 0]),
        Duration::from_secs(HANDSHAKE_SECS) + SLACK,
    );
    assert_ne!(seen.ending, Ending::Open);
    assert!(
        seen.after < Duration::from_secs(1),
        "closed only after {:?}",
        seen.after
    );
    assert_eq!(accepted(&count), 0);
}
