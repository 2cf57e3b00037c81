//! Session resumption: across the workers of one stud, and across stud instances (hosts) that
//! share `--ticket-secret`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::HandshakeKind;
use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::stud_bin;

fn start(pki: &Pki, backend: SocketAddr, extra: &[&str]) -> Stud {
    Stud::serve(&stud_bin!(), &pki.site_pem, backend, extra)
}

/// Connects, echoes (which also delivers the session tickets), and says how the handshake went.
fn handshake_kind(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> HandshakeKind {
    let mut tls = connect(addr, config).expect("handshake");
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
    tls.conn.handshake_kind().expect("handshake done")
}

#[test]
fn hosts_sharing_a_ticket_secret_resume_each_others_sessions() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let secret = dir.write(
        "tickets.key",
        "Zm9yIHRlc3RzIG9ubHk6IGEgc2hhcmVkIHRpY2tldCBzZWNyZXQgb2YgNDggYnl0ZXM=\n",
    );
    let other = dir.write(
        "other.key",
        "YW5vdGhlciBzZWNyZXQsIGxvbmcgZW5vdWdoIHRvIGJlIGFjY2VwdGVkIGJ5IHN0dWQ=\n",
    );
    let secret = secret.to_str().expect("utf-8");
    let other = other.to_str().expect("utf-8");
    let backend = echo_backend();
    let host_a = start(&pki, backend, &["--ticket-secret", secret]);
    let host_b = start(&pki, backend, &["--ticket-secret", secret]);
    let host_c = start(&pki, backend, &["--ticket-secret", other]);
    // One client configuration = one session cache, as a browser would have.
    let client = net::client_config(&pki.ca_der);
    assert_eq!(handshake_kind(host_a.addr, &client), HandshakeKind::Full);
    assert_eq!(handshake_kind(host_b.addr, &client), HandshakeKind::Resumed);
    let fresh = net::client_config(&pki.ca_der);
    assert_eq!(handshake_kind(host_a.addr, &fresh), HandshakeKind::Full);
    assert_eq!(
        handshake_kind(host_c.addr, &fresh),
        HandshakeKind::Full,
        "another secret"
    );
}

#[test]
fn every_worker_resumes_sessions_issued_by_any_other() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &["-n", "2", "--reuseport"]);
    let client = net::client_config(&pki.ca_der);
    assert_eq!(handshake_kind(stud.addr, &client), HandshakeKind::Full);
    // SO_REUSEPORT spreads connections over both workers by their source ports.
    for i in 0..12 {
        assert_eq!(
            handshake_kind(stud.addr, &client),
            HandshakeKind::Resumed,
            "connection {i} was not resumed"
        );
    }
}

#[test]
fn a_short_ticket_secret_is_a_startup_error() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let short = dir.write("short.key", "too short\n");
    let out = stud_tests::process::run(
        &stud_bin!(),
        &[
            "-t",
            "--ticket-secret",
            short.to_str().expect("utf-8"),
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("at least 32"), "{}", out.stderr);
}
