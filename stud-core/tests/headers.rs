//! The client-address header reaches the backend first, exactly once, exactly as specified.

mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::Arc;
use stud_core::{ClientAddressMode, Conn, Instant};

fn backend_bytes(mode: ClientAddressMode, chunk: usize) -> Vec<u8> {
    let mut p = Pair::new(proxy_mode(mode));
    p.chunk = Box::new(move || chunk);
    p.handshake();
    p.client_send(b"DATA");
    p.run();
    p.client_send(b"MORE");
    p.run();
    p.backend.received
}

#[test]
fn write_ip_v4_is_five_octets_then_the_data() {
    let got = backend_bytes(ClientAddressMode::WriteIp, usize::MAX);
    assert_eq!(got, [&[2u8, 192, 0, 2, 7][..], b"DATAMORE"].concat());
}

#[test]
fn proxy_v1_v4_names_the_real_local_address() {
    let got = backend_bytes(ClientAddressMode::ProxyV1, usize::MAX);
    assert_eq!(
        got,
        [
            &b"PROXY TCP4 192.0.2.7 127.0.0.9 40001 8443\r\n"[..],
            b"DATAMORE"
        ]
        .concat()
    );
}

#[test]
fn header_sent_in_one_byte_writes_is_still_first_and_once() {
    let got = backend_bytes(ClientAddressMode::ProxyV1, 1);
    assert_eq!(
        got,
        [
            &b"PROXY TCP4 192.0.2.7 127.0.0.9 40001 8443\r\n"[..],
            b"DATAMORE"
        ]
        .concat()
    );
}

#[test]
fn header_is_sent_even_if_the_client_sends_nothing_and_closes() {
    let mut p = Pair::new(proxy_mode(ClientAddressMode::WriteIp));
    p.handshake();
    p.client_close_notify();
    p.run();
    assert_eq!(p.backend.received, [2u8, 192, 0, 2, 7]);
    assert!(p.backend.write_shut, "shutdown follows the header");
}

#[test]
fn no_header_without_a_mode() {
    assert_eq!(
        backend_bytes(ClientAddressMode::None, usize::MAX),
        b"DATAMORE"
    );
}

fn v6_pair(mode: ClientAddressMode) -> Pair {
    let mut p = Pair::new(proxy_mode(mode));
    let config = Arc::new(proxy_mode(mode));
    p.conn = Conn::new(
        config,
        Instant::from_micros(1),
        "[2001:db8::7]:40001"
            .parse::<SocketAddr>()
            .expect("v6 peer"),
        "[::1]:8443".parse::<SocketAddr>().expect("v6 local"),
    )
    .expect("conn");
    p
}

#[test]
fn write_ip_v6_is_seventeen_octets() {
    let mut p = v6_pair(ClientAddressMode::WriteIp);
    p.handshake();
    p.client_send(b"x");
    p.run();
    let mut want = vec![10u8, 0x20, 0x01, 0x0d, 0xb8];
    want.extend_from_slice(&[0; 11]);
    want.push(7);
    want.push(b'x');
    assert_eq!(p.backend.received, want);
}

#[test]
fn proxy_v1_v6_line() {
    let mut p = v6_pair(ClientAddressMode::ProxyV1);
    p.handshake();
    p.client_send(b"x");
    p.run();
    assert_eq!(
        p.backend.received,
        b"PROXY TCP6 2001:db8::7 ::1 40001 8443\r\nx"
    );
}
