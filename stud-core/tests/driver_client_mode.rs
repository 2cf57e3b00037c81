//! Client mode over real sockets: plaintext TCP clients ⇄ the reference driver ⇄ a rustls
//! server as the TLS backend, on loopback.

mod driver_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use driver_support::*;
use stud_core::{BackendTls, CloseReason, Config};

/// A TLS echo backend for `localhost`: echoes every byte; at the client's close_notify it
/// sends its own and shuts its socket. Returns it and the certificate's PEM to trust.
fn tls_echo_backend() -> (Backend, String) {
    tls_backend(b"")
}

/// [`tls_echo_backend`] that first sends `greeting`, as servers that speak first do (SMTP,
/// FTP, POP3…).
fn tls_backend(greeting: &'static [u8]) -> (Backend, String) {
    let id = stud_test_support::self_signed(stud_test_support::KeyKind::EcdsaP256, &["localhost"]);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![id.der.clone()], id.private_key())
        .expect("server config");
    let server = Arc::new(server);
    let backend = Backend::spawn(move |sock| {
        let Ok(conn) = rustls::ServerConnection::new(server.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, sock);
        if !greeting.is_empty() && tls.write_all(greeting).is_err() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tls.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.sock.shutdown(Shutdown::Write);
    });
    (backend, id.cert_pem)
}

#[test]
fn plaintext_clients_reach_a_tls_backend_and_half_close_both_ways() {
    let (backend, ca) = tls_echo_backend();
    let config = Config::builder()
        .client_mode(BackendTls::new("localhost").ca_pem(ca))
        .build()
        .expect("client-mode config");
    let mut server = Running::start(Arc::new(config), options(&[backend.addr]));
    for round in 0..2 {
        let mut sock = TcpStream::connect(server.addr).expect("connect");
        sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let upload = pattern(round, 200_000);
        // The bytes go before the backend exists, then the client's end of stream.
        sock.write_all(&upload).expect("write");
        sock.shutdown(Shutdown::Write).expect("shutdown");
        let mut echoed = Vec::new();
        sock.read_to_end(&mut echoed).expect("read to the end");
        assert!(echoed == upload, "round {round}: the echo differs");
    }
    let closes = server.wait_closes(2, TIMEOUT);
    for (_, reason, stats) in &closes {
        assert_eq!(reason, &CloseReason::Completed);
        assert_eq!(stats.bytes_from_client, 200_000);
        assert_eq!(stats.bytes_to_client, 200_000);
        assert!(stats.bytes_to_backend > 200_000, "ciphertext: {stats:?}");
    }
    {
        let record = server.record.lock().expect("record");
        assert_eq!(record.handshakes.len(), 2);
        assert_eq!(record.handshakes[0].1.sni.as_deref(), Some("localhost"));
        assert!(!record.handshakes[0].1.resumed);
        assert!(
            record.handshakes[1].1.resumed,
            "the second connection resumes"
        );
    }
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn an_unverified_backend_closes_the_plaintext_client() {
    let (backend, _) = tls_echo_backend();
    let (_, other_ca) = tls_echo_backend();
    let config = Config::builder()
        .client_mode(BackendTls::new("localhost").ca_pem(other_ca))
        .build()
        .expect("client-mode config");
    let mut server = Running::start(Arc::new(config), options(&[backend.addr]));
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    sock.write_all(b"secret").expect("write");
    let mut got = Vec::new();
    // Closed without a byte (a reset is as good as an end of stream here).
    let _ = sock.read_to_end(&mut got);
    assert!(got.is_empty(), "{got:?}");
    let closes = server.wait_closes(1, TIMEOUT);
    assert!(
        matches!(closes[0].1, CloseReason::BackendHandshakeFailed(_)),
        "{:?}",
        closes[0].1
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn a_backend_that_speaks_first_is_connected_before_the_client_sends_anything() {
    let (backend, ca) = tls_backend(b"220 ready\r\n");
    let config = Config::builder()
        .client_mode(BackendTls::new("localhost").ca_pem(ca))
        .build()
        .expect("client-mode config");
    let server = Running::start(Arc::new(config), options(&[backend.addr]));
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    // The client only listens: the backend must be asked for without a byte from it.
    let mut greeting = [0u8; 11];
    sock.read_exact(&mut greeting)
        .expect("the backend's greeting");
    assert_eq!(&greeting, b"220 ready\r\n");
    sock.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    sock.read_to_end(&mut rest).expect("read to the end");
    assert!(rest.is_empty(), "{rest:?}");
    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::Completed);
}
