//! 0-RTT data stud rejects: a client resuming with a ticket that allowed early data sends up to
//! 16 KiB of it that stud cannot decrypt; stud must skip it and complete a 1-RTT handshake
//! (RFC 8446 §4.2.10), and none of it may reach the backend.

mod common;
use common::*;

use std::io::Write;
use std::sync::Arc;

/// A client holding a ticket for `localhost` that allows 16 KiB of early data, from a rustls
/// server that accepts 0-RTT and serves the same certificate as stud's test configuration.
fn client_with_early_data_ticket() -> Arc<rustls::ClientConfig> {
    let id = stud_test_support::localhost();
    stud_test_support::client_with_early_data_ticket(
        vec![id.der.clone()],
        id.private_key(),
        &id.der,
    )
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
