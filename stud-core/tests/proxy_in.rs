//! A PROXY header from a load balancer in front: its addresses replace the socket's, however
//! the bytes arrive; anything else closes the connection with a reason.

mod common;
use common::*;
use std::time::Duration;
use stud_core::{ClientAddressMode, CloseReason};

fn pair(mode: ClientAddressMode) -> Pair {
    Pair::new(
        builder()
            .accept_proxy_header(true)
            .client_address(mode)
            .build()
            .expect("config"),
    )
}

/// Sends `header` ahead of the client's TLS bytes, in pieces of `chunk`, then relays "DATA".
fn through(header: &[u8], chunk: usize) -> Pair {
    let mut p = pair(ClientAddressMode::ProxyV1);
    p.to_conn.extend_from_slice(header);
    p.chunk = Box::new(move || chunk);
    p.handshake();
    p.client_send(b"DATA");
    p.run();
    p
}

#[test]
fn the_headers_addresses_reach_the_backend_whatever_the_chunking() {
    let v1 = b"PROXY TCP4 198.51.100.7 203.0.113.9 4242 443\r\n";
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 7, 203, 0, 113, 9, 0x10, 0x92, 0x01, 0xbb]);
    for header in [&v1[..], &v2[..]] {
        for chunk in [1, 3, 7, usize::MAX] {
            let p = through(header, chunk);
            assert_eq!(p.closed, None, "chunk {chunk}");
            assert_eq!(
                p.backend.received, b"PROXY TCP4 198.51.100.7 203.0.113.9 4242 443\r\nDATA",
                "chunk {chunk}"
            );
            assert_eq!(p.conn.peer_addr().to_string(), "198.51.100.7:4242");
            assert_eq!(p.conn.local_addr().to_string(), "203.0.113.9:443");
        }
    }
}

#[test]
fn a_header_naming_no_client_keeps_the_sockets_addresses() {
    for header in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", // v2 LOCAL: a health check
    ] {
        let p = through(header, usize::MAX);
        // PEER and LOCAL, the socket's own addresses.
        assert_eq!(
            p.backend.received,
            b"PROXY TCP4 192.0.2.7 127.0.0.9 40001 8443\r\nDATA"
        );
        assert_eq!(p.conn.peer_addr().to_string(), PEER);
    }
}

#[test]
fn tls_without_a_header_is_closed_with_a_reason_and_nothing_reaches_a_backend() {
    let mut p = pair(ClientAddressMode::None);
    p.run();
    match &p.closed {
        Some(CloseReason::BadProxyHeader(why)) => assert!(why.contains("PROXY"), "{why}"),
        other => panic!("closed with {other:?}"),
    }
    assert!(p
        .closed
        .as_ref()
        .is_some_and(CloseReason::is_handshake_failure));
    assert_eq!(p.backend.connect_requests, 0);
}

#[test]
fn a_malformed_header_is_closed_with_what_was_wrong() {
    for (bad, needle) in [
        (
            &b"PROXY TCP4 198.51.100.7 203.0.113.9 4242\r\n"[..],
            "5 fields",
        ),
        (
            b"PROXY TCP4 198.51.100.7 203.0.113.9 04242 443\r\n",
            "bad address or port",
        ),
        (
            b"\r\n\r\n\0\r\nQUIT\n\x21\x41\x00\x00",
            "unknown address family",
        ),
    ] {
        let mut p = pair(ClientAddressMode::ProxyV1);
        assert_eq!(p.conn.handle_client_data(p.now, bad), bad.len());
        p.run();
        match &p.closed {
            Some(CloseReason::BadProxyHeader(why)) => assert!(why.contains(needle), "{why}"),
            other => panic!("{:?}: closed with {other:?}", String::from_utf8_lossy(bad)),
        }
        assert_eq!(p.backend.connect_requests, 0);
    }
}

#[test]
fn a_header_that_never_completes_meets_the_handshake_deadline() {
    let mut p = Pair::new(
        builder()
            .accept_proxy_header(true)
            .handshake_timeout(Duration::from_secs(2))
            .build()
            .expect("config"),
    );
    assert_eq!(p.conn.handle_client_data(p.now, b"PROXY TCP4 1.2"), 14);
    p.advance(Duration::from_secs(3));
    p.fire_timeout();
    p.run();
    assert_eq!(p.closed, Some(CloseReason::HandshakeTimeout));
}

#[test]
fn the_client_closing_during_the_header_is_a_handshake_close() {
    let mut p = Pair::new(builder().accept_proxy_header(true).build().expect("config"));
    assert_eq!(p.conn.handle_client_data(p.now, b"PROX"), 4);
    p.conn.handle_client_eof(p.now);
    p.run();
    assert_eq!(p.closed, Some(CloseReason::ClientClosedInHandshake));
}
