//! Client mode in memory: a plaintext client ⇄ `Conn` ⇄ a rustls server as the TLS backend, on
//! virtual time, with a step limit that turns a livelock into a test failure.

mod client_pki;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use stud_core::{
    Action, BackendTls, ClientAddressMode, CloseReason, Config, ConfigBuilder, Conn, Event,
    HandshakeInfo, Instant, TlsVersion,
};

const STEP_LIMIT: usize = 10_000;

/// A backend identity: a self-signed certificate for `names`.
struct BackendId {
    cert_pem: String,
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn backend_id(names: &[&str]) -> BackendId {
    let id = stud_test_support::self_signed(stud_test_support::KeyKind::EcdsaP256, names);
    BackendId {
        cert_pem: id.cert_pem,
        cert: id.der,
        key_der: id.key_der,
    }
}

/// A rustls server for `id`, asking for a client certificate from `client_ca` if given.
fn backend_config(
    id: &BackendId,
    client_ca: Option<&CertificateDer<'static>>,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).expect("client CA");
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone()));
    let mut config = builder
        .with_single_cert(vec![id.cert.clone()], key)
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn client_mode(backend: BackendTls) -> ConfigBuilder {
    Config::builder().client_mode(backend)
}

/// The world: the plaintext client, the `Conn`, the TLS backend.
struct World {
    now: Instant,
    conn: Conn,
    backend: rustls::ServerConnection,
    /// Plaintext the client has yet to hand to the `Conn`.
    client_out: Vec<u8>,
    /// The client has sent its FIN (delivered once `client_out` is empty).
    client_fin: bool,
    client_fin_delivered: bool,
    client_received: Vec<u8>,
    client_write_shut: bool,
    /// The backend socket exists (ConnectBackend was answered).
    connected: bool,
    /// Ciphertext from the backend not yet taken by the `Conn`.
    to_conn: Vec<u8>,
    backend_received: Vec<u8>,
    backend_saw_close_notify: bool,
    backend_read_shut: bool,
    backend_error: Option<rustls::Error>,
    /// Plaintext the backend sends once its handshake is done.
    backend_to_send: Vec<u8>,
    /// The backend sends close_notify and FIN after `backend_to_send`.
    backend_close_after_send: bool,
    backend_fin_delivered: bool,
    /// Answer ConnectBackend at once.
    auto_connect: bool,
    /// The client reads nothing (a slow reader).
    client_stalled: bool,
    /// The most bytes held for the client at any step.
    max_to_client_seen: usize,
    connect_requests: usize,
    events: Vec<Event>,
    closed: Option<CloseReason>,
}

impl World {
    fn new(config: &Arc<Config>, backend: Arc<rustls::ServerConfig>) -> World {
        let now = Instant::from_micros(1_000_000);
        let peer: SocketAddr = "192.0.2.7:40001".parse().expect("peer");
        let local: SocketAddr = "127.0.0.9:8080".parse().expect("local");
        let conn = Conn::new(config.clone(), now, peer, local).expect("conn");
        let mut backend = rustls::ServerConnection::new(backend).expect("backend");
        backend.set_buffer_limit(None);
        World {
            now,
            conn,
            backend,
            client_out: Vec::new(),
            client_fin: false,
            client_fin_delivered: false,
            client_received: Vec::new(),
            client_write_shut: false,
            connected: false,
            to_conn: Vec::new(),
            backend_received: Vec::new(),
            backend_saw_close_notify: false,
            backend_read_shut: false,
            backend_error: None,
            backend_to_send: Vec::new(),
            backend_close_after_send: false,
            backend_fin_delivered: false,
            auto_connect: true,
            client_stalled: false,
            max_to_client_seen: 0,
            connect_requests: 0,
            events: Vec::new(),
            closed: None,
        }
    }

    /// One round of every hop; returns whether anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        // client → Conn
        if !self.client_out.is_empty() {
            let n = self.conn.handle_client_data(now, &self.client_out);
            self.client_out.drain(..n);
            moved |= n > 0;
        }
        if self.client_fin && self.client_out.is_empty() && !self.client_fin_delivered {
            self.client_fin_delivered = true;
            self.conn.handle_client_eof(now);
            moved = true;
        }
        moved |= self.drain_outputs();
        // Conn → backend
        let mut buf = vec![0u8; 32 * 1024];
        if self.connected {
            let n = self.conn.poll_backend_transmit(now, &mut buf);
            if n > 0 {
                moved = true;
                let mut rd = &buf[..n];
                while !rd.is_empty() && self.backend_error.is_none() {
                    if self.backend.read_tls(&mut rd).expect("backend read_tls") == 0 {
                        break;
                    }
                    if let Err(e) = self.backend.process_new_packets() {
                        self.backend_error = Some(e);
                    }
                }
            }
        }
        if self.backend_read_shut && !self.backend_saw_close_notify {
            // FIN without close_notify: rustls sees end of stream.
            let _ = self.backend.read_tls(&mut &[][..]);
        }
        // backend application
        if self.backend_error.is_none() {
            let mut plain = [0u8; 16 * 1024];
            loop {
                use std::io::Read as _;
                match self.backend.reader().read(&mut plain) {
                    Ok(0) => {
                        self.backend_saw_close_notify = true;
                        break;
                    }
                    Ok(n) => {
                        self.backend_received.extend_from_slice(&plain[..n]);
                        moved = true;
                    }
                    Err(_) => break,
                }
            }
            if !self.backend.is_handshaking() && !self.backend_to_send.is_empty() {
                use std::io::Write as _;
                let data = std::mem::take(&mut self.backend_to_send);
                self.backend
                    .writer()
                    .write_all(&data)
                    .expect("backend write");
                if self.backend_close_after_send {
                    self.backend.send_close_notify();
                }
                moved = true;
            }
        }
        // backend → Conn
        while self.backend.wants_write() {
            let mut out = Vec::new();
            let _ = self.backend.write_tls(&mut out);
            self.to_conn.extend_from_slice(&out);
        }
        if self.connected && !self.to_conn.is_empty() {
            let n = self.conn.handle_backend_data(now, &self.to_conn);
            self.to_conn.drain(..n);
            moved |= n > 0;
        }
        if self.connected
            && self.backend_close_after_send
            && self.backend_to_send.is_empty()
            && self.to_conn.is_empty()
            && !self.backend.is_handshaking()
            && !self.backend_fin_delivered
        {
            self.backend_fin_delivered = true;
            self.conn.handle_backend_eof(now);
            moved = true;
        }
        moved |= self.drain_outputs();
        // Conn → client
        self.max_to_client_seen = self.max_to_client_seen.max(self.conn.buffered().to_client);
        let n = if self.client_stalled {
            0
        } else {
            self.conn.poll_client_transmit(now, &mut buf)
        };
        if n > 0 {
            assert!(
                !self.client_write_shut,
                "bytes after the client's write side was shut"
            );
            self.client_received.extend_from_slice(&buf[..n]);
            moved = true;
        }
        moved |= self.drain_outputs();
        moved
    }

    fn drain_outputs(&mut self) -> bool {
        let mut moved = false;
        while let Some(event) = self.conn.poll_event() {
            self.events.push(event);
            moved = true;
        }
        while let Some(action) = self.conn.poll_action() {
            moved = true;
            match action {
                Action::ConnectBackend => {
                    self.connect_requests += 1;
                    if self.auto_connect {
                        self.connected = true;
                        self.conn.handle_backend_connected(self.now);
                    }
                }
                Action::ShutdownClientWrite => self.client_write_shut = true,
                Action::ShutdownBackendWrite => self.backend_read_shut = true,
                Action::Close(reason) => {
                    assert!(self.closed.is_none(), "closed twice");
                    self.closed = Some(reason);
                }
                other => panic!("an action this test does not know: {other:?}"),
            }
        }
        moved
    }

    /// Steps until nothing moves (or the connection closed).
    fn run(&mut self) {
        for _ in 0..STEP_LIMIT {
            if !self.step() || self.closed.is_some() {
                return;
            }
        }
        panic!("no quiescence after {STEP_LIMIT} steps: {:?}", self.conn);
    }

    fn handshake(&self) -> &HandshakeInfo {
        match self.events.first() {
            Some(Event::HandshakeComplete(info)) => info,
            other => panic!("no handshake event: {other:?}"),
        }
    }
}

fn config(b: ConfigBuilder) -> Arc<Config> {
    Arc::new(b.build().expect("client-mode config"))
}

#[test]
fn relays_both_ways_with_early_client_bytes_held_until_the_handshake() {
    let id = backend_id(&["localhost"]);
    let cfg = config(
        client_mode(BackendTls::new("localhost").ca_pem(id.cert_pem.clone()))
            .alpn_protocols(vec![b"h2".to_vec(), b"http/1.1".to_vec()]),
    );
    assert!(cfg.client_mode());
    let mut w = World::new(&cfg, backend_config(&id, None, &[b"http/1.1"]));
    // The plaintext client speaks first, before any backend exists.
    w.client_out = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    w.backend_to_send = b"HTTP/1.1 200 OK\r\n\r\nhi".to_vec();
    w.run();
    assert_eq!(w.connect_requests, 1, "the backend is asked for at once");
    assert_eq!(w.backend_received, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(w.client_received, b"HTTP/1.1 200 OK\r\n\r\nhi");
    let info = w.handshake();
    assert_eq!(info.sni.as_deref(), Some("localhost"));
    assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(info.version, TlsVersion::Tls13);
    assert!(!info.resumed);
    assert_eq!(info.peer_certificates, vec![id.cert.as_ref().to_vec()]);
    assert_eq!(info.client_verify, None);
    assert_eq!(
        info.client_common_name(),
        None,
        "the backend's certificate is no client's"
    );
    assert!(w.closed.is_none());
}

#[test]
fn client_bytes_wait_for_the_backend_within_the_budget() {
    let id = backend_id(&["localhost"]);
    let cfg = config(
        client_mode(BackendTls::new("localhost").ca_pem(id.cert_pem.clone()))
            .to_backend_budget(4096),
    );
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.auto_connect = false;
    w.client_out = vec![b'x'; 10_000];
    w.run();
    assert_eq!(w.connect_requests, 1);
    assert_eq!(w.client_out.len(), 10_000 - 4096, "held up to the budget");
    assert_eq!(w.conn.client_read_capacity(), 0);
    assert!(!w.conn.interest().client_read);
    assert!(!w.conn.interest().backend_write, "no backend socket yet");
    assert_eq!(w.conn.buffered().to_backend, 4096);
    // The backend connects: everything flows.
    w.connected = true;
    w.conn.handle_backend_connected(w.now);
    w.run();
    assert_eq!(w.backend_received, vec![b'x'; 10_000]);
}

#[test]
fn a_slow_client_stops_reads_from_the_backend_within_the_budget() {
    let id = backend_id(&["localhost"]);
    let budget = 16 * 1024;
    let cfg = config(
        client_mode(BackendTls::new("localhost").ca_pem(id.cert_pem.clone()))
            .to_client_budget(budget),
    );
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    w.backend_to_send = big.clone();
    w.client_stalled = true;
    w.run();
    assert!(w.client_received.is_empty());
    assert!(
        !w.conn.interest().backend_read,
        "reads from the backend must stop"
    );
    assert_eq!(w.conn.backend_read_capacity(), 0);
    assert!(
        !w.to_conn.is_empty(),
        "the backend's bytes wait on its side"
    );
    assert!(
        w.max_to_client_seen <= budget + stud_core::MAX_RECORD_PLAINTEXT,
        "{} bytes held for the client",
        w.max_to_client_seen
    );
    w.client_stalled = false;
    w.run();
    assert_eq!(w.client_received.len(), big.len());
    assert!(
        w.client_received == big,
        "the bytes arrive intact and in order"
    );
}

#[test]
fn client_half_close_becomes_close_notify_and_the_reply_still_flows() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(id.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.client_out = b"request".to_vec();
    w.client_fin = true;
    w.run();
    assert_eq!(w.backend_received, b"request");
    assert!(w.backend_saw_close_notify, "close_notify before the FIN");
    assert!(w.backend_read_shut, "the backend's write side is shut");
    assert!(w.closed.is_none(), "the reply may still come");
    w.backend_to_send = b"reply".to_vec();
    w.backend_close_after_send = true;
    w.run();
    assert_eq!(w.client_received, b"reply");
    assert!(w.client_write_shut);
    assert_eq!(w.closed, Some(CloseReason::Completed));
}

#[test]
fn backend_close_notify_shuts_the_client_side_and_the_client_keeps_sending() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(id.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.backend_to_send = b"banner".to_vec();
    w.backend_close_after_send = true;
    w.run();
    assert_eq!(w.client_received, b"banner");
    assert!(w.client_write_shut, "the client's write side is shut");
    assert!(w.closed.is_none());
    w.client_out = b"late words".to_vec();
    w.client_fin = true;
    w.run();
    assert_eq!(w.backend_received, b"late words");
    assert!(w.backend_saw_close_notify);
    assert!(w.backend_read_shut);
    assert_eq!(w.closed, Some(CloseReason::Completed));
}

fn assert_backend_handshake_failed(w: &World, needle: &str) {
    match &w.closed {
        Some(reason @ CloseReason::BackendHandshakeFailed(e)) => {
            assert_eq!(reason.as_str(), "backend_handshake_failed");
            assert!(e.to_string().contains(needle), "{e}");
        }
        other => panic!("expected a failed backend handshake, got {other:?}"),
    }
    assert!(
        w.backend_received.is_empty(),
        "client bytes reached the backend"
    );
    assert!(
        w.client_received.is_empty(),
        "backend bytes reached the client"
    );
}

#[test]
fn an_untrusted_backend_certificate_is_refused_and_nothing_leaks() {
    let id = backend_id(&["localhost"]);
    let other = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(other.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.client_out = b"secret".to_vec();
    w.backend_to_send = b"never".to_vec();
    w.run();
    assert_backend_handshake_failed(&w, "certificate");
    assert!(w.events.is_empty());
}

#[test]
fn a_backend_certificate_for_another_name_is_refused() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("backend.example").ca_pem(id.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.client_out = b"secret".to_vec();
    w.run();
    assert_backend_handshake_failed(&w, "certificate");
}

#[test]
fn insecure_mode_accepts_any_backend_with_a_warning() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(BackendTls::new("elsewhere").insecure(true)));
    assert!(
        cfg.warnings().iter().any(|w| w.contains("not verified")),
        "{:?}",
        cfg.warnings()
    );
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.client_out = b"ping".to_vec();
    w.backend_to_send = b"pong".to_vec();
    w.run();
    assert_eq!(w.backend_received, b"ping");
    assert_eq!(w.client_received, b"pong");
}

#[test]
fn a_backend_demanding_a_client_certificate_gets_the_configured_one() {
    let pki = client_pki::Pki::new();
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost")
            .ca_pem(id.cert_pem.clone())
            .client_cert_pem(format!("{}{}", pki.good.cert_pem, pki.good.key_pem)),
    ));
    let mut w = World::new(&cfg, backend_config(&id, Some(&pki.ca_der), &[]));
    w.client_out = b"with a certificate".to_vec();
    w.backend_to_send = b"welcome".to_vec();
    w.run();
    assert_eq!(w.backend_received, b"with a certificate");
    assert_eq!(w.client_received, b"welcome");
    let seen = w.backend.peer_certificates().expect("client certificate");
    assert_eq!(seen[0].as_ref(), pki.good.leaf());
}

#[test]
fn a_backend_demanding_a_client_certificate_refuses_stud_without_one() {
    let pki = client_pki::Pki::new();
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(id.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, Some(&pki.ca_der), &[]));
    w.client_out = b"no certificate".to_vec();
    w.backend_to_send = b"never".to_vec();
    w.run();
    assert!(w.backend_error.is_some(), "the backend refused");
    assert!(w.backend_received.is_empty());
    assert!(w.client_received.is_empty());
    assert!(
        matches!(w.closed, Some(CloseReason::BackendHandshakeFailed(_))),
        "{:?}",
        w.closed
    );
}

#[test]
fn a_second_connection_resumes_the_backend_session() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(id.cert_pem.clone()),
    ));
    let backend = backend_config(&id, None, &[]);
    for round in 0..2 {
        let mut w = World::new(&cfg, backend.clone());
        w.client_out = b"hello".to_vec();
        w.backend_to_send = b"again".to_vec();
        w.run();
        assert_eq!(w.client_received, b"again");
        let resumed = round == 1;
        assert_eq!(w.handshake().resumed, resumed, "round {round}");
        assert_eq!(
            w.backend.handshake_kind(),
            Some(if resumed {
                rustls::HandshakeKind::Resumed
            } else {
                rustls::HandshakeKind::Full
            }),
            "round {round}"
        );
    }
}

#[test]
fn resumption_can_be_turned_off() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost")
            .ca_pem(id.cert_pem.clone())
            .resumption(false),
    ));
    let backend = backend_config(&id, None, &[]);
    for _ in 0..2 {
        let mut w = World::new(&cfg, backend.clone());
        w.backend_to_send = b"x".to_vec();
        w.run();
        assert!(!w.handshake().resumed);
    }
}

#[test]
fn a_backend_closing_in_the_handshake_is_a_failed_handshake() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(id.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.auto_connect = false;
    w.client_out = b"secret".to_vec();
    w.step();
    // Connected, the ClientHello sent, and then the backend hangs up.
    w.connected = true;
    w.conn.handle_backend_connected(w.now);
    let mut hello = [0u8; 4096];
    assert!(
        w.conn.poll_backend_transmit(w.now, &mut hello) > 0,
        "a ClientHello"
    );
    w.conn.handle_backend_eof(w.now);
    w.drain_outputs();
    assert_backend_handshake_failed(&w, "closed");
}

#[test]
fn the_backend_handshake_has_a_deadline() {
    let id = backend_id(&["localhost"]);
    let cfg = config(client_mode(
        BackendTls::new("localhost").ca_pem(id.cert_pem.clone()),
    ));
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.auto_connect = false;
    w.drain_outputs();
    assert_eq!(w.connect_requests, 1);
    let deadline = w.conn.poll_timeout().expect("connect deadline");
    w.now = deadline;
    w.conn.handle_timeout(deadline);
    w.drain_outputs();
    assert_eq!(w.closed, Some(CloseReason::BackendConnectTimeout));

    // Connected, then silent.
    let mut w = World::new(&cfg, backend_config(&id, None, &[]));
    w.drain_outputs();
    let deadline = w.conn.poll_timeout().expect("handshake deadline");
    w.now = deadline;
    w.conn.handle_timeout(deadline);
    w.drain_outputs();
    assert_eq!(w.closed, Some(CloseReason::HandshakeTimeout));
}

#[test]
fn client_mode_refuses_headers_and_client_verification() {
    let backend = || BackendTls::new("localhost").insecure(true);
    for (name, b) in [
        (
            "write-proxy",
            client_mode(backend()).client_address(ClientAddressMode::ProxyV1),
        ),
        (
            "write-ip",
            client_mode(backend()).client_address(ClientAddressMode::WriteIp),
        ),
        (
            "proxy-proxy",
            client_mode(backend()).accept_proxy_header(true),
        ),
        (
            "client-verify",
            client_mode(backend()).client_verify(stud_core::ClientVerifyMode::Required),
        ),
    ] {
        let err = b.build().expect_err(name).to_string();
        assert!(err.contains("client mode"), "{name}: {err}");
    }
}

#[test]
fn client_mode_needs_no_certificate_and_checks_its_inputs() {
    // No certificate for the frontends: fine.
    let id = backend_id(&["localhost"]);
    client_mode(BackendTls::new("localhost").ca_pem(id.cert_pem.clone()))
        .build()
        .expect("no certificate needed");
    // A certificate given anyway is unused, with a warning.
    let cfg = client_mode(BackendTls::new("localhost").ca_pem(id.cert_pem.clone()))
        .pem(format!(
            "{}{}",
            id.cert_pem, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"
        ))
        .build();
    // Whether or not the bogus key parses, the build never panics; when it builds, it warns.
    if let Ok(cfg) = cfg {
        assert!(cfg.warnings().iter().any(|w| w.contains("not used")));
    }
    for (b, needle) in [
        (
            BackendTls::new("localhost").ca_pem("not PEM"),
            "certificate",
        ),
        (
            BackendTls::new("localhost").ca_file("/nonexistent/ca.pem"),
            "/nonexistent/ca.pem",
        ),
        (BackendTls::new("not a name!").insecure(true), "server name"),
        (
            BackendTls::new("localhost")
                .insecure(true)
                .client_cert_pem(id.cert_pem.clone()),
            "private key",
        ),
    ] {
        let err = client_mode(b).build().expect_err(needle).to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
