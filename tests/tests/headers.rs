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
        stud_tests::skipped(
            "no IPv6 loopback on this machine, so the IPv6 --write-ip case cannot run",
        );
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
        stud_tests::skipped(
            "no IPv6 loopback on this machine, so the IPv6 --write-proxy case cannot run",
        );
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

/// A PROXY v2 header read back by the specification, independently of stud's encoder: the
/// addresses, every TLV as (type, value), and the bytes after the header.
struct ProxyV2 {
    family: u8,
    src: SocketAddr,
    dst: SocketAddr,
    tlvs: Vec<(u8, Vec<u8>)>,
    rest: Vec<u8>,
}

/// Splits `bytes` into PROXY v2 TLVs (type, 16-bit length, value): the header's own TLVs, and the
/// sub-TLVs of its SSL TLV, are laid out alike.
fn type_length_values(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let n = u16::from_be_bytes([bytes[1], bytes[2]]) as usize;
        out.push((bytes[0], bytes[3..3 + n].to_vec()));
        bytes = &bytes[3 + n..];
    }
    out
}

fn parse_proxy_v2(got: &[u8]) -> ProxyV2 {
    assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n", "signature");
    assert_eq!(got[12], 0x21, "version 2, command PROXY");
    let family = got[13];
    let len = u16::from_be_bytes([got[14], got[15]]) as usize;
    let body = &got[16..16 + len];
    let (src, dst, tlv) = match family {
        0x11 => {
            let ip =
                |o: usize| std::net::Ipv4Addr::new(body[o], body[o + 1], body[o + 2], body[o + 3]);
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                SocketAddr::from((ip(0), port(8))),
                SocketAddr::from((ip(4), port(10))),
                &body[12..],
            )
        }
        other => panic!("unexpected family/transport {other:#x}"),
    };
    let tlvs = type_length_values(tlv);
    ProxyV2 {
        family,
        src,
        dst,
        tlvs,
        rest: got[16 + len..].to_vec(),
    }
}

#[test]
fn write_proxy_v2_names_the_addresses_and_the_tls_session() {
    let complete =
        |g: &[u8]| g.len() >= 16 && g.len() >= 16 + u16::from_be_bytes([g[14], g[15]]) as usize + 7;
    let (got, client, stud) = first_bytes("127.0.0.1,0", "--write-proxy-v2", b"PAYLOAD", complete);
    let h = parse_proxy_v2(&got);
    assert_eq!(h.family, 0x11, "TCP over IPv4");
    assert_eq!(h.src, client);
    assert_eq!(h.dst, stud);
    assert_eq!(h.rest, b"PAYLOAD");
    let tlv = |kind: u8| {
        h.tlvs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        tlv(0x02).as_deref(),
        Some(&b"localhost"[..]),
        "authority = SNI"
    );
    assert_eq!(tlv(0x01), None, "no ALPN was agreed");
    let ssl = tlv(0x20).expect("SSL TLV");
    assert_eq!(ssl[0], 0x01, "PP2_CLIENT_SSL");
    assert_eq!(&ssl[1..5], &[0, 0, 0, 0], "verify");
    let subs: Vec<(u8, String)> = type_length_values(&ssl[5..])
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).expect("text")))
        .collect();
    assert!(subs.contains(&(0x21, "TLSv1.3".to_owned())), "{subs:?}");
    assert!(
        subs.iter()
            .any(|(k, v)| *k == 0x23 && v.starts_with("TLS_")),
        "a TLS 1.3 cipher name: {subs:?}"
    );
}

#[test]
fn alpn_protos_are_agreed_and_named_in_the_proxy_v2_header() {
    let pki = Pki::new();
    let complete =
        |g: &[u8]| g.len() >= 16 && g.len() >= 16 + u16::from_be_bytes([g[14], g[15]]) as usize + 2;
    let (backend, rx) = capture_backend_until(complete);
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        backend,
        &["--write-proxy-v2", "--alpn-protos=h2,http/1.1"],
    );
    let mut config = (*net::client_config(&pki.ca_der)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"h2".to_vec()];
    let mut tls = connect(stud.addr, &std::sync::Arc::new(config)).expect("handshake");
    // The server's order wins: h2 is stud's first choice and the client offers it.
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"hi").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    let h = parse_proxy_v2(&got);
    assert!(h.tlvs.contains(&(0x01, b"h2".to_vec())), "{:?}", h.tlvs);
    assert_eq!(h.rest, b"hi");

    // A client offering only protocols stud does not speak is refused in the handshake
    // (no_application_protocol), not served without ALPN.
    let mut other = (*net::client_config(&pki.ca_der)).clone();
    other.alpn_protocols = vec![b"spdy/3".to_vec()];
    let refused = connect(stud.addr, &std::sync::Arc::new(other));
    let Err(e) = refused else {
        panic!("no common protocol: the handshake must fail");
    };
    assert!(
        e.to_string()
            .to_lowercase()
            .contains("noapplicationprotocol"),
        "{e}"
    );

    // A client that offers no ALPN at all is served, without a protocol.
    let plain = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    assert_eq!(plain.conn.alpn_protocol(), None);
}

#[test]
fn accept_proxy_passes_the_load_balancers_client_on() {
    let pki = Pki::new();
    let (backend, rx) = capture_backend_until(line_then(7));
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        backend,
        &["--accept-proxy", "--write-proxy"],
    );
    let config = net::client_config(&pki.ca_der);
    // The balancer's line, then the client's TLS on the same connection.
    let mut sock = std::net::TcpStream::connect(stud.addr).expect("connect");
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    sock.write_all(b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n")
        .expect("PROXY line");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("handshake after the PROXY line");
    }
    tls.write_all(b"PAYLOAD").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert_eq!(
        got,
        b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\nPAYLOAD"
    );

    // A client that talks TLS straight away is refused: only the balancer may name clients.
    assert!(
        connect(stud.addr, &config).is_err(),
        "TLS without a PROXY header must not be served"
    );
    assert!(
        stud.wait_line(|l| l.contains("bad_proxy_header"), TIMEOUT)
            .is_some(),
        "{}",
        stud.output()
    );
}
