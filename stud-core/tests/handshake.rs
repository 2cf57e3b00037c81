//! The handshake: every key type, what the handshake event reports, versions, suites, ALPN,
//! resumption — and that nothing reaches for the backend before it completes.

mod common;
use common::*;
use std::sync::Arc;
use stud_core::{Action, Config, Event, TlsVersion};

fn handshake_with(kind: KeyKind) -> Pair {
    let (c, k, der) = cert(kind);
    let config = Config::builder()
        .pem(format!("{c}{k}"))
        .build()
        .expect("config");
    let mut p = Pair::with_client(config, client_config(&der), "localhost");
    p.handshake();
    p
}

#[test]
fn handshake_with_rsa_key() {
    let p = handshake_with(KeyKind::Rsa2048);
    assert_eq!(p.backend.connect_requests, 1);
}

#[test]
fn handshake_with_ecdsa_p256_key() {
    handshake_with(KeyKind::EcdsaP256);
}

#[test]
fn handshake_with_ecdsa_p384_key() {
    handshake_with(KeyKind::EcdsaP384);
}

#[test]
fn handshake_with_ed25519_key() {
    handshake_with(KeyKind::Ed25519);
}

#[test]
fn handshake_event_reports_sni_version_and_suite() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    let Some(Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no event")
    };
    assert_eq!(info.sni.as_deref(), Some("localhost"));
    assert_eq!(info.version, TlsVersion::Tls13);
    assert!(
        info.cipher_suite.starts_with("TLS_"),
        "{}",
        info.cipher_suite
    );
    assert_eq!(info.alpn, None);
    assert!(!info.resumed);
}

#[test]
fn tls12_only_server_negotiates_tls12_with_the_chosen_suite() {
    let config = builder()
        .versions(&[TlsVersion::Tls12])
        .ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
        .build()
        .expect("config");
    let mut p = Pair::new(config);
    p.handshake();
    let Some(Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no event")
    };
    assert_eq!(info.version, TlsVersion::Tls12);
    assert_eq!(info.cipher_suite, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

#[test]
fn alpn_is_negotiated_and_reported() {
    let config = builder()
        .alpn_protocols(vec![b"h2".to_vec(), b"http/1.1".to_vec()])
        .build()
        .expect("config");
    let (_, _, der) = default_cert();
    let mut cc = (*client_config(der)).clone();
    cc.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut p = Pair::with_client(config, Arc::new(cc), "localhost");
    p.handshake();
    let Some(Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no event")
    };
    assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[test]
fn a_second_connection_resumes_with_a_ticket() {
    let config = Arc::new(builder().build().expect("config"));
    let (_, _, der) = default_cert();
    let client = client_config(der);
    let mut first = Pair::with_client(config.clone(), client.clone(), "localhost");
    first.handshake();
    first.run(); // deliver the session tickets
    let mut second = Pair::with_client(config, client, "localhost");
    second.handshake();
    let Some(Event::HandshakeComplete(info)) = second.events.first() else {
        panic!("no event")
    };
    assert!(info.resumed, "second handshake should resume");
}

#[test]
fn no_backend_is_requested_before_the_handshake_completes() {
    let mut p = Pair::new(builder().build().expect("config"));
    // Move the ClientHello only: the Conn answers, but the handshake cannot finish.
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("client hello");
    let n = p.conn.handle_client_data(p.now, &hello);
    assert_eq!(n, hello.len());
    while let Some(action) = p.conn.poll_action() {
        assert_ne!(
            action,
            Action::ConnectBackend,
            "backend asked for mid-handshake"
        );
    }
    assert!(p.conn.is_handshaking());
    assert!(
        p.conn.interest().client_write,
        "server flight should be waiting"
    );
    assert!(!p.conn.interest().backend_read && !p.conn.interest().backend_write);
}

#[test]
fn handshake_survives_one_byte_at_a_time_in_both_directions() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.chunk = Box::new(|| 1);
    p.handshake();
    p.client_send(b"ping");
    p.backend.to_send = b"pong".to_vec();
    p.run();
    assert_eq!(p.backend.received, b"ping");
    assert_eq!(p.client_side.received, b"pong");
}

#[test]
fn another_host_with_the_same_ticket_secret_resumes_the_session() {
    let secret = [42u8; 48];
    let host_a = builder().ticket_secret(secret).build().expect("config");
    let host_b = builder().ticket_secret(secret).build().expect("config");
    let host_c = builder().ticket_secret([1u8; 48]).build().expect("config");
    let (_, _, der) = default_cert();
    let client = client_config(der);
    let mut first = Pair::with_client(host_a, client.clone(), "localhost");
    first.handshake();
    first.run();
    let resumed = |p: &Pair| match p.events.first() {
        Some(Event::HandshakeComplete(info)) => info.resumed,
        _ => panic!("no event"),
    };
    let mut other_host = Pair::with_client(host_b, client.clone(), "localhost");
    other_host.handshake();
    assert!(resumed(&other_host), "same secret: resumed");
    let mut stranger = Pair::with_client(host_c, client, "localhost");
    stranger.handshake();
    assert!(!resumed(&stranger), "different secret: full handshake");
}

#[test]
fn a_random_ticket_secret_always_passes_the_builder_whole() {
    // A file's trailing white space is trimmed from a secret: a random one must never lose a
    // byte to that, nor fall under the 32-byte minimum (one draw in 43 would, unguarded).
    for _ in 0..2000 {
        let secret = stud_core::random_ticket_secret().expect("randomness");
        assert!(secret.len() >= 32);
        assert_eq!(secret.trim_ascii_end().len(), secret.len(), "{secret:02x?}");
    }
    let secret = stud_core::random_ticket_secret().expect("randomness");
    builder().ticket_secret(secret).build().expect("accepted");
}

#[test]
fn one_random_ticket_secret_lets_two_configurations_resume_each_others_sessions() {
    let secret = stud_core::random_ticket_secret().expect("randomness");
    let other = stud_core::random_ticket_secret().expect("randomness");
    assert_ne!(secret, other, "fresh each time");
    let first = builder()
        .ticket_secret(secret.clone())
        .build()
        .expect("config");
    let rebuilt = builder().ticket_secret(secret).build().expect("config");
    let (_, _, der) = default_cert();
    let client = client_config(der);
    Pair::with_client(first, client.clone(), "localhost").handshake();
    let mut again = Pair::with_client(rebuilt, client, "localhost");
    again.handshake();
    assert!(
        matches!(again.events.first(), Some(Event::HandshakeComplete(i)) if i.resumed),
        "resumed under the rebuilt configuration"
    );
}

#[test]
fn a_short_ticket_secret_is_rejected() {
    let err = builder()
        .ticket_secret([0u8; 16])
        .build()
        .expect_err("too short");
    assert!(err.to_string().contains("at least 32"), "{err}");
}

#[test]
fn post_quantum_hybrid_key_exchange_is_chosen_when_the_client_offers_it() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    let group = p
        .client
        .negotiated_key_exchange_group()
        .expect("key exchange done")
        .name();
    assert_eq!(group, rustls::NamedGroup::X25519MLKEM768);
}

/// A client's session store that keeps only the newest TLS 1.3 ticket (as OpenSSL's clients
/// and browsers keep one session per server) and counts the tickets that arrive.
#[derive(Debug)]
struct NewestTicket {
    inner: rustls::client::ClientSessionMemoryCache,
    received: std::sync::atomic::AtomicUsize,
}

impl rustls::client::ClientSessionStore for NewestTicket {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, g: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, g);
    }
    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value);
    }
    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }
    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        while self.inner.take_tls13_ticket(&name).is_some() {}
        self.inner.insert_tls13_ticket(name, value);
    }
    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

#[test]
fn one_ticket_follows_every_handshake_and_keeps_a_one_session_client_resuming() {
    let config = Arc::new(builder().build().expect("config"));
    let (_, _, der) = default_cert();
    let store = Arc::new(NewestTicket {
        inner: rustls::client::ClientSessionMemoryCache::new(8),
        received: std::sync::atomic::AtomicUsize::new(0),
    });
    let mut client = (*client_config(der)).clone();
    client.resumption = rustls::client::Resumption::store(store.clone());
    let client = Arc::new(client);
    let received = || store.received.load(std::sync::atomic::Ordering::Relaxed);
    let mut kinds = Vec::new();
    let mut tickets = Vec::new();
    for _ in 0..4 {
        let before = received();
        let mut p = Pair::with_client(config.clone(), client.clone(), "localhost");
        p.handshake();
        p.client_send(b"ping");
        p.run(); // deliver the ticket
        let Some(Event::HandshakeComplete(info)) = p.events.first() else {
            panic!("no event")
        };
        kinds.push(info.resumed);
        tickets.push(received() - before);
    }
    // Each connection, full or resumed, brings exactly one ticket; since the client keeps only
    // the newest, every resumption after the first needed the ticket its predecessor brought.
    assert_eq!(kinds, [false, true, true, true]);
    assert_eq!(tickets, [1, 1, 1, 1]);
}

#[test]
fn no_tickets_without_session_tickets() {
    let config = Arc::new(builder().session_tickets(false).build().expect("config"));
    let (_, _, der) = default_cert();
    let store = Arc::new(NewestTicket {
        inner: rustls::client::ClientSessionMemoryCache::new(8),
        received: std::sync::atomic::AtomicUsize::new(0),
    });
    let mut client = (*client_config(der)).clone();
    client.resumption = rustls::client::Resumption::store(store.clone());
    let mut p = Pair::with_client(config, Arc::new(client), "localhost");
    p.handshake();
    p.client_send(b"ping");
    p.run();
    assert_eq!(store.received.load(std::sync::atomic::Ordering::Relaxed), 0);
}
