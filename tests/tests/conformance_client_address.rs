//! `--write-ip` on a dual-stack wildcard frontend: an IPv4 client is sent as IPv4 (family 2 and
//! four octets), as stud and hitch write it, not as the IPv4-mapped IPv6 address the socket sees.

use std::io::Write;
use std::net::SocketAddr;

use stud_tests::net::{self, capture_backend, connect};
use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{stud_bin, TIMEOUT};

#[test]
fn write_ip_on_a_dual_stack_wildcard_sends_an_ipv4_client_as_ipv4() {
    let pki = Pki::new();
    // Five header bytes and the payload: a 17-byte IPv6 header would show in the first 12.
    let (backend, rx) = capture_backend(12);
    let b = backend.to_string();
    let stud = Stud::start(
        &stud_bin!(),
        &[
            "-f",
            "*,0",
            "-b",
            &b,
            "--write-ip",
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    let target = SocketAddr::from(([127, 0, 0, 1], stud.addr.port()));
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(target, &config).expect("handshake");
    tls.write_all(b"PAYLOAD").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert_eq!(got, b"\x02\x7f\x00\x00\x01PAYLOAD");
}
