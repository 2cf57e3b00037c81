//! `--write-ip` and `--write-proxy`: the exact bytes the backend receives before the client's.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use stud_tests::net::{self, capture_backend_until, connect};
use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{stud_bin, TIMEOUT};

/// Starts stud on `frontend` with `flag`, connects, sends `payload`, and returns (what the
/// backend received, up to `complete`; the client's local address; stud's address).
fn first_bytes(
    frontend: &str,
    flag: &str,
    payload: &[u8],
    complete: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
) -> (Vec<u8>, SocketAddr, SocketAddr) {
    let pki = Pki::new();
    let (backend, rx) = capture_backend_until(complete);
    let b = backend.to_string();
    let stud = Stud::start(
        &stud_bin!(),
        &[
            "-f",
            frontend,
            "-b",
            &b,
            flag,
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    let config = net::client_config(&pki.ca_der);
    // On a wildcard, connect over IPv4 (the dual-stack socket sees ::ffff:127.0.0.1).
    let target = if stud.addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], stud.addr.port()))
    } else {
        stud.addr
    };
    let mut tls = connect(target, &config).expect("handshake");
    tls.write_all(payload).expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    let local = tls.sock.local_addr().expect("client address");
    (got, local, stud.addr)
}

/// Complete once a line and then `extra` bytes have arrived.
fn line_then(extra: usize) -> impl Fn(&[u8]) -> bool + Send + Sync + 'static {
    move |got: &[u8]| {
        got.windows(2)
            .position(|w| w == b"\r\n")
            .is_some_and(|i| got.len() >= i + 2 + extra)
    }
}

fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn write_ip_v4_is_family_then_address() {
    let (got, _, _) = first_bytes("127.0.0.1,0", "--write-ip", b"PAYLOAD", |g| g.len() >= 12);
    assert_eq!(got, b"\x02\x7f\x00\x00\x01PAYLOAD");
}

#[test]
fn write_ip_v6() {
    if !ipv6_available() {
        eprintln!("note: no IPv6 loopback on this machine; the IPv6 --write-ip case cannot run");
        return;
    }
    let (got, _, _) = first_bytes("[::1]:0", "--write-ip", b"PAYLOAD", |g| g.len() >= 24);
    let mut expected = vec![10u8];
    expected.extend_from_slice(&[0; 15]);
    expected.push(1);
    expected.extend_from_slice(b"PAYLOAD");
    assert_eq!(got, expected);
}

#[test]
fn write_proxy_v4_names_the_real_addresses() {
    let (got, client, stud) = first_bytes("127.0.0.1,0", "--write-proxy", b"PAYLOAD", line_then(7));
    let expected = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\nPAYLOAD",
        client.port(),
        stud.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

#[test]
fn write_proxy_on_a_wildcard_names_the_accepting_address() {
    // stud wrote the configured 0.0.0.0 here; the destination must be where the client connected.
    let (got, client, stud) = first_bytes("*,0", "--write-proxy", b"X", line_then(1));
    let expected = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\nX",
        client.port(),
        stud.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), expected);
}

#[test]
fn write_proxy_v6() {
    if !ipv6_available() {
        eprintln!("note: no IPv6 loopback on this machine; the IPv6 --write-proxy case cannot run");
        return;
    }
    let (got, client, stud) = first_bytes("[::1]:0", "--write-proxy", b"PAYLOAD", line_then(7));
    let expected = format!(
        "PROXY TCP6 ::1 ::1 {} {}\r\nPAYLOAD",
        client.port(),
        stud.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), expected);
}
