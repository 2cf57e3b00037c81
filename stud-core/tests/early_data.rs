//! 0-RTT data stud rejects: a client resuming with a ticket that allowed early data sends up to
//! 16 KiB of it that stud cannot decrypt; stud must skip it and complete a 1-RTT handshake
//! (RFC 8446 §4.2.10), and none of it may reach the backend.

mod common;
use common::*;

use std::io::Write;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};

/// Moves everything `from` wants to send into `to`.
fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection) {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).expect("to a Vec");
    }
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read_tls");
        to.process_new_packets().expect("in-memory TLS");
    }
}

/// A client holding a ticket for `localhost` that allows 16 KiB of early data, from a rustls
/// server that accepts 0-RTT and serves the same certificate as stud's test configuration.
fn client_with_early_data_ticket() -> Arc<rustls::ClientConfig> {
    let (_, key_pem, der) = default_cert();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("test key");
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .expect("server config");
    server.max_early_data_size = 16_384;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).expect("anchor");
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.enable_early_data = true;
    let client = Arc::new(client);
    let name = ServerName::try_from("localhost").expect("name");
    let mut c = rustls::Connection::from(
        rustls::ClientConnection::new(client.clone(), name).expect("client"),
    );
    let mut s =
        rustls::Connection::from(rustls::ServerConnection::new(Arc::new(server)).expect("server"));
    for _ in 0..10 {
        pump(&mut c, &mut s);
        pump(&mut s, &mut c);
    }
    assert!(!c.is_handshaking(), "ticket handshake");
    client
}

#[test]
fn sixteen_kib_of_rejected_early_data_is_skipped_and_the_handshake_completes() {
    let client = client_with_early_data_ticket();
    let config = builder().build().expect("config");
    let mut p = Pair::with_client(config, client, "localhost");
    let mut early = p.client.early_data().expect("the ticket allows early data");
    assert_eq!(early.bytes_left(), 16_384);
    early
        .write_all(&[0x55; 16_384])
        .expect("16 KiB of early data");
    p.handshake();
    assert!(
        !p.client.is_early_data_accepted(),
        "stud never accepts early data"
    );
    p.client_send(b"after the handshake");
    p.run();
    assert_eq!(
        p.backend.received, b"after the handshake",
        "no early data reaches the backend"
    );
}
