//! Bad bytes from the network: every one ends in a clean close with a reason, never a backend.

mod common;
use common::*;
use stud_core::{Action, CloseReason, Conn};

/// Feeds `bytes` to a fresh Conn, flushes its replies, and returns how it closed (if it did)
/// and whether a backend was ever asked for.
fn feed(bytes: &[u8]) -> (Option<CloseReason>, bool) {
    let mut p = Pair::new(builder().build().expect("config"));
    feed_conn(&mut p.conn, p.now, bytes)
}

fn feed_conn(
    conn: &mut Conn,
    now: stud_core::Instant,
    bytes: &[u8],
) -> (Option<CloseReason>, bool) {
    let mut asked = false;
    let mut closed = None;
    let mut rest = bytes;
    for _ in 0..10_000 {
        let n = conn.handle_client_data(now, rest);
        rest = &rest[n..];
        let mut buf = [0u8; 8192];
        while conn.poll_client_transmit(now, &mut buf) > 0 {}
        while let Some(a) = conn.poll_action() {
            match a {
                Action::ConnectBackend => asked = true,
                Action::Close(r) => closed = Some(r),
                _ => {}
            }
        }
        if rest.is_empty() || closed.is_some() {
            break;
        }
    }
    (closed, asked)
}

fn assert_handshake_failure(bytes: &[u8]) {
    let (closed, asked) = feed(bytes);
    assert!(
        !asked,
        "backend asked for on {:02x?}",
        &bytes[..bytes.len().min(16)]
    );
    match closed {
        Some(CloseReason::HandshakeFailed(_)) => {}
        other => panic!("expected a handshake failure, got {other:?}"),
    }
}

#[test]
fn plaintext_http_is_a_handshake_failure() {
    assert_handshake_failure(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
}

#[test]
fn random_garbage_is_a_handshake_failure() {
    let mut rng = Rng::new(99);
    for _ in 0..50 {
        let len = 1 + rng.below(2000) as usize;
        let mut junk = rng.bytes(len);
        junk[0] = 0x17; // application data before any hello
        assert_handshake_failure(&junk);
    }
}

#[test]
fn an_sslv2_hello_is_refused() {
    // SSLv2-format ClientHello (as old scanners send): 2-byte length with the high bit set.
    let hello = [
        0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x07, 0x00, 0xc0, 0x05,
        0x00, 0x80, 0x03, 0x00, 0x80, 0x01, 0x00, 0x80, 0x06, 0x00, 0x40, 0x04, 0x00, 0x80, 0x02,
        0x00, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
        0xee, 0xff, 0x00,
    ];
    assert_handshake_failure(&hello);
}

#[test]
fn an_sslv3_only_hello_is_refused() {
    // A minimal SSLv3 ClientHello: record version 3.0, client_version 3.0.
    let mut body = vec![0x03, 0x00];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // one suite
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x00, 0x00, hs.len() as u8];
    rec.extend_from_slice(&hs);
    assert_handshake_failure(&rec);
}

#[test]
fn an_oversized_record_length_is_refused() {
    // A handshake record claiming 65535 bytes (over the 16 KiB + expansion limit).
    let mut rec = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    rec.extend_from_slice(&[0u8; 100]);
    assert_handshake_failure(&rec);
}

#[test]
fn an_oversized_handshake_message_is_refused_without_unbounded_buffering() {
    // A ClientHello claiming 16 MiB, split over maximal records.
    let mut stream = Vec::new();
    let mut first = vec![0x01, 0xff, 0xff, 0xff];
    first.extend_from_slice(&[0u8; 16380]);
    for i in 0..8 {
        let payload = if i == 0 {
            first.clone()
        } else {
            vec![0u8; 16384]
        };
        stream.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
        stream.extend_from_slice(&payload);
    }
    let mut p = Pair::new(builder().build().expect("config"));
    let (closed, asked) = feed_conn(&mut p.conn, p.now, &stream);
    assert!(!asked);
    assert!(
        matches!(closed, Some(CloseReason::HandshakeFailed(_))),
        "{closed:?}"
    );
}

#[test]
fn a_fatal_alert_mid_handshake_closes_cleanly() {
    let mut p = Pair::new(builder().build().expect("config"));
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("hello");
    let _ = feed_conn(&mut p.conn, p.now, &hello);
    // handshake_failure alert, plaintext (as a client would send before keys are set)
    let (closed, asked) = feed_conn(
        &mut p.conn,
        p.now,
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
    );
    assert!(!asked);
    assert!(
        matches!(closed, Some(CloseReason::HandshakeFailed(_))),
        "{closed:?}"
    );
}

#[test]
fn a_close_notify_mid_handshake_closes_without_a_backend() {
    let mut p = Pair::new(builder().build().expect("config"));
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("hello");
    let _ = feed_conn(&mut p.conn, p.now, &hello);
    let (mut closed, mut saw_connect) = feed_conn(
        &mut p.conn,
        p.now,
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00],
    );
    p.conn.handle_client_eof(p.now);
    while let Some(a) = p.conn.poll_action() {
        match a {
            Action::ConnectBackend => saw_connect = true,
            Action::Close(r) => closed = Some(r),
            _ => {}
        }
    }
    assert!(!saw_connect);
    assert!(
        closed.as_ref().is_some_and(|r| r.is_handshake_failure()),
        "{closed:?}"
    );
}

#[test]
fn a_truncated_hello_then_eof_closes_in_handshake() {
    let mut p = Pair::new(builder().build().expect("config"));
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("hello");
    let (closed, _) = feed_conn(&mut p.conn, p.now, &hello[..20]);
    assert!(closed.is_none());
    p.conn.handle_client_eof(p.now);
    assert_eq!(
        p.conn.poll_action(),
        Some(Action::Close(CloseReason::ClientClosedInHandshake))
    );
}

#[test]
fn mutated_real_client_hellos_never_reach_a_backend() {
    let mut p = Pair::new(builder().build().expect("config"));
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("hello");
    let mut rng = Rng::new(2024);
    for _ in 0..300 {
        let mut m = hello.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len() as u64) as usize;
            m[i] ^= 1 << rng.below(8);
        }
        let mut q = Pair::new(builder().build().expect("config"));
        let (closed, asked) = feed_conn(&mut q.conn, q.now, &m);
        assert!(
            !asked,
            "a mutated hello alone can never complete a handshake"
        );
        // Either rejected, or still waiting for more bytes (the handshake deadline covers it).
        if let Some(reason) = closed {
            assert!(reason.is_handshake_failure(), "{reason:?}");
        } else {
            assert!(q.conn.poll_timeout().is_some());
        }
    }
}

#[test]
fn garbage_after_the_handshake_is_a_protocol_error_with_an_alert() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    junk.extend_from_slice(&[0xAB; 0x40]);
    let n = p.conn.handle_client_data(p.now, &junk);
    assert_eq!(n, junk.len());
    assert!(p.conn.interest().client_write, "an alert waits to be sent");
    let mut buf = [0u8; 1024];
    assert!(p.conn.poll_client_transmit(p.now, &mut buf) > 0);
    assert!(matches!(
        p.conn.poll_action(),
        Some(Action::Close(CloseReason::ProtocolError(_)))
    ));
}

#[test]
fn renegotiation_attempt_in_tls12_does_not_kill_the_relay_state_machine() {
    // A TLS 1.2 client that sends a second ClientHello would have to encrypt it; rustls refuses
    // renegotiation. Here: a HelloRequest-shaped record in plaintext after the handshake is a
    // protocol error, handled cleanly.
    let mut p = Pair::new(
        builder()
            .versions(&[stud_core::TlsVersion::Tls12])
            .build()
            .expect("config"),
    );
    p.handshake();
    let n = p.conn.handle_client_data(
        p.now,
        &[0x16, 0x03, 0x03, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00],
    );
    assert_eq!(n, 9);
    let mut buf = [0u8; 1024];
    while p.conn.poll_client_transmit(p.now, &mut buf) > 0 {}
    assert!(matches!(p.conn.poll_action(), Some(Action::Close(_))));
}

#[test]
fn a_plaintext_close_notify_instead_of_a_hello_closes_at_once() {
    let mut p = Pair::new(builder().build().expect("config"));
    let (closed, asked) = feed_conn(
        &mut p.conn,
        p.now,
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00],
    );
    assert!(!asked);
    assert_eq!(closed, Some(CloseReason::ClientClosedInHandshake));
}
