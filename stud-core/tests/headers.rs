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

#[test]
fn proxy_v2_carries_the_addresses_then_alpn_sni_version_and_cipher() {
    let (_, _, der) = default_cert();
    let mut client = (*client_config(der)).clone();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let config = builder()
        .client_address(ClientAddressMode::ProxyV2)
        .alpn_protocols(vec![b"h2".to_vec(), b"http/1.1".to_vec()])
        .build()
        .expect("config");
    let mut p = Pair::with_client(config, Arc::new(client), "localhost");
    p.handshake();
    p.client_send(b"DATA");
    p.run();
    let Some(stud_core::Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no handshake event: {:?}", p.events);
    };
    assert_eq!(info.alpn.as_deref(), Some(&b"h2"[..]));

    let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let mut body = vec![192, 0, 2, 7, 127, 0, 0, 9, 0x9c, 0x41, 0x20, 0xfb];
    body.extend_from_slice(&[0x01, 0, 2]);
    body.extend_from_slice(b"h2");
    body.extend_from_slice(&[0x02, 0, 9]);
    body.extend_from_slice(b"localhost");
    let version = b"TLSv1.3";
    let cipher = info.cipher_suite.as_bytes();
    let ssl_len = 5 + 3 + version.len() + 3 + cipher.len();
    body.extend_from_slice(&[0x20, 0, ssl_len as u8, 0x01, 0, 0, 0, 0]);
    body.extend_from_slice(&[0x21, 0, version.len() as u8]);
    body.extend_from_slice(version);
    body.extend_from_slice(&[0x23, 0, cipher.len() as u8]);
    body.extend_from_slice(cipher);
    want.extend_from_slice(&[0x21, 0x11]);
    want.extend_from_slice(&(body.len() as u16).to_be_bytes());
    want.extend_from_slice(&body);
    want.extend_from_slice(b"DATA");
    assert_eq!(p.backend.received, want);
}
