//! An in-memory world for engine tests: a rustls client ⇄ `Conn` ⇄ a fake backend, on virtual
//! time, with a step limit that turns a livelock into a test failure.

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    reason = "each test file uses a different part of the harness"
)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use stud_core::{
    Action, ClientAddressMode, CloseReason, Config, ConfigBuilder, Conn, Event, Instant,
};

pub use stud_test_support::{client_config_trusting, KeyKind};

/// A self-signed certificate for `localhost` with a key of `kind`: (cert PEM, key PEM, cert DER).
pub fn cert(kind: KeyKind) -> (String, String, CertificateDer<'static>) {
    cert_for(kind, &["localhost"])
}

/// A self-signed certificate for `names` with a key of `kind`.
pub fn cert_for(kind: KeyKind, names: &[&str]) -> (String, String, CertificateDer<'static>) {
    let id = stud_test_support::self_signed(kind, names);
    (id.cert_pem, id.key_pem, id.der)
}

/// One P-256 identity shared by tests that don't care about the key type.
pub fn default_cert() -> &'static (String, String, CertificateDer<'static>) {
    static CELL: std::sync::OnceLock<(String, String, CertificateDer<'static>)> =
        std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let id = stud_test_support::localhost();
        (id.cert_pem.clone(), id.key_pem.clone(), id.der.clone())
    })
}

pub fn builder() -> ConfigBuilder {
    let (c, k, _) = default_cert();
    Config::builder().pem(format!("{c}{k}"))
}

pub fn client_config(trust: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    client_config_trusting(std::slice::from_ref(trust))
}

pub const PEER: &str = "192.0.2.7:40001";
pub const LOCAL: &str = "127.0.0.9:8443";

/// The fake backend: records what it received and whether it was shut.
#[derive(Default, Debug)]
pub struct Backend {
    pub connected: bool,
    pub received: Vec<u8>,
    pub write_shut: bool,
    /// Bytes the backend will send once connected.
    pub to_send: Vec<u8>,
    /// Send EOF after `to_send`.
    pub eof_after_send: bool,
    pub eof_sent: bool,
    /// Stop reading from the Conn (slow backend).
    pub stalled: bool,
    pub connect_requests: usize,
}

/// What happened to the client side.
#[derive(Default, Debug)]
pub struct ClientSide {
    pub received: Vec<u8>,
    pub saw_close_notify: bool,
    pub write_shut: bool,
    pub stalled: bool,
}

pub struct Pair {
    pub now: Instant,
    pub conn: Conn,
    pub client: rustls::ClientConnection,
    pub backend: Backend,
    pub client_side: ClientSide,
    pub events: Vec<Event>,
    pub closed: Option<CloseReason>,
    /// Ciphertext from the client not yet taken by the Conn.
    pub to_conn: Vec<u8>,
    /// Max bytes moved per hop per step (random chunking uses a callback).
    pub chunk: Box<dyn FnMut() -> usize>,
    /// Auto-complete backend connects.
    pub auto_connect: bool,
    pub max_to_backend_seen: usize,
    pub max_to_client_seen: usize,
    pub steps: usize,
    /// Offer the client's bytes through `handle_client_data_mut`, from a scratch copy.
    pub in_place: bool,
}

pub const STEP_LIMIT: usize = 200_000;

impl Pair {
    pub fn new(config: impl Into<Arc<Config>>) -> Pair {
        Pair::with_sni(config, "localhost")
    }

    pub fn with_sni(config: impl Into<Arc<Config>>, sni: &str) -> Pair {
        let (_, _, der) = default_cert();
        Pair::with_client(config, client_config(der), sni)
    }

    pub fn with_client(
        config: impl Into<Arc<Config>>,
        client: Arc<rustls::ClientConfig>,
        sni: &str,
    ) -> Pair {
        let now = Instant::from_micros(1_000_000);
        let conn = Conn::new(
            config.into(),
            now,
            PEER.parse::<SocketAddr>().expect("peer"),
            LOCAL.parse::<SocketAddr>().expect("local"),
        )
        .expect("conn");
        let name = ServerName::try_from(sni.to_string()).expect("server name");
        let mut client = rustls::ClientConnection::new(client, name).expect("client");
        client.set_buffer_limit(None);
        Pair {
            now,
            conn,
            client,
            backend: Backend::default(),
            client_side: ClientSide::default(),
            events: Vec::new(),
            closed: None,
            to_conn: Vec::new(),
            chunk: Box::new(|| usize::MAX),
            auto_connect: true,
            max_to_backend_seen: 0,
            max_to_client_seen: 0,
            steps: 0,
            in_place: false,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
    }

    /// Drains the Conn's outputs; returns whether anything happened.
    fn drain_conn(&mut self) -> bool {
        let mut progress = false;
        while let Some(ev) = self.conn.poll_event() {
            self.events.push(ev);
            progress = true;
        }
        while let Some(action) = self.conn.poll_action() {
            progress = true;
            assert!(self.closed.is_none(), "action {action:?} after Close");
            match action {
                Action::ConnectBackend => {
                    self.backend.connect_requests += 1;
                    if self.auto_connect {
                        self.backend.connected = true;
                        self.conn.handle_backend_connected(self.now);
                    }
                }
                Action::ShutdownBackendWrite => {
                    assert!(!self.backend.write_shut, "backend write shut twice");
                    self.backend.write_shut = true;
                }
                Action::ShutdownClientWrite => {
                    assert!(!self.client_side.write_shut, "client write shut twice");
                    self.client_side.write_shut = true;
                }
                Action::Close(reason) => self.closed = Some(reason),
                other => panic!("an action the harness does not know: {other:?}"),
            }
        }
        let b = self.conn.buffered();
        self.max_to_backend_seen = self.max_to_backend_seen.max(b.to_backend);
        self.max_to_client_seen = self.max_to_client_seen.max(b.to_client);
        progress
    }

    /// One round of moving bytes every way; returns whether anything moved.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        assert!(self.steps < STEP_LIMIT, "step limit reached: livelock?");
        let mut progress = self.drain_conn();
        if self.closed.is_some() {
            return progress;
        }
        // client -> conn
        let mut buf = vec![0u8; 64 * 1024];
        if !self.client_side.write_shut_by_client() {
            while self.client.wants_write() {
                let n = self
                    .client
                    .write_tls(&mut self.to_conn)
                    .expect("client write_tls");
                if n == 0 {
                    break;
                }
            }
        }
        if !self.to_conn.is_empty() {
            let cap = self.conn.client_read_capacity();
            let limit = (self.chunk)().min(self.to_conn.len());
            // Offer more than capacity sometimes, to exercise partial consumption.
            let offer = limit;
            let taken = if self.in_place {
                let mut scratch = self.to_conn[..offer].to_vec();
                self.conn.handle_client_data_mut(self.now, &mut scratch)
            } else {
                self.conn
                    .handle_client_data(self.now, &self.to_conn[..offer])
            };
            if offer <= cap {
                assert_eq!(taken, offer, "Conn must take all bytes within its capacity");
            }
            if taken > 0 {
                self.to_conn.drain(..taken);
                progress = true;
            }
        }
        progress |= self.drain_conn();
        // conn -> client
        if !self.client_side.stalled {
            let limit = (self.chunk)().min(buf.len());
            let n = self.conn.poll_client_transmit(self.now, &mut buf[..limit]);
            if n > 0 {
                progress = true;
                let mut rd = &buf[..n];
                let mut plain = vec![0u8; 64 * 1024];
                while !rd.is_empty() {
                    self.client.read_tls(&mut rd).expect("client read_tls");
                    let st = self.client.process_new_packets().expect("client TLS error");
                    if st.peer_has_closed() {
                        self.client_side.saw_close_notify = true;
                    }
                    loop {
                        match self.client.reader().read(&mut plain) {
                            Ok(0) => {
                                self.client_side.saw_close_notify = true;
                                break;
                            }
                            Ok(n) => self.client_side.received.extend_from_slice(&plain[..n]),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        progress |= self.drain_conn();
        // conn -> backend
        if self.backend.connected && !self.backend.stalled {
            let limit = (self.chunk)().min(buf.len());
            let n = self.conn.poll_backend_transmit(self.now, &mut buf[..limit]);
            if n > 0 {
                progress = true;
                self.backend.received.extend_from_slice(&buf[..n]);
            }
        }
        progress |= self.drain_conn();
        // backend -> conn
        if self.backend.connected && self.closed.is_none() {
            if !self.backend.to_send.is_empty() {
                let limit = (self.chunk)().min(self.backend.to_send.len());
                let cap = self.conn.backend_read_capacity();
                let taken = self
                    .conn
                    .handle_backend_data(self.now, &self.backend.to_send[..limit]);
                assert_eq!(
                    taken,
                    limit.min(cap),
                    "backend data taken = min(offer, capacity)"
                );
                if taken > 0 {
                    self.backend.to_send.drain(..taken);
                    progress = true;
                }
            } else if self.backend.eof_after_send && !self.backend.eof_sent {
                self.backend.eof_sent = true;
                self.conn.handle_backend_eof(self.now);
                progress = true;
            }
        }
        progress |= self.drain_conn();
        progress
    }

    /// Steps until nothing moves (or the Conn closes).
    pub fn run(&mut self) {
        while self.closed.is_none() && self.step() {}
        self.drain_conn();
    }

    pub fn handshake(&mut self) {
        self.run();
        assert!(!self.client.is_handshaking(), "client handshake incomplete");
        assert!(
            matches!(self.events.first(), Some(Event::HandshakeComplete(_))),
            "no handshake event: {:?}",
            self.events
        );
    }

    pub fn client_send(&mut self, data: &[u8]) {
        self.client.writer().write_all(data).expect("client write");
    }

    pub fn client_close_notify(&mut self) {
        self.client.send_close_notify();
    }

    /// Runs the timer: advance to the Conn's deadline and fire it.
    pub fn fire_timeout(&mut self) -> Instant {
        let t = self.conn.poll_timeout().expect("a deadline is set");
        if t > self.now {
            self.now = t;
        }
        self.conn.handle_timeout(self.now);
        self.drain_conn();
        t
    }
}

impl ClientSide {
    fn write_shut_by_client(&self) -> bool {
        false
    }
}

pub fn proxy_mode(mode: ClientAddressMode) -> Config {
    builder().client_address(mode).build().expect("config")
}

/// A small deterministic generator (xorshift64*) so property-style tests are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The OCSP responses a client saw, one per handshake (empty when none was stapled).
pub type StapleLog = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

/// A client that accepts any server certificate (signatures are still checked), to observe what
/// the server offers for names it does not cover.
pub fn client_config_accepting_any() -> Arc<rustls::ClientConfig> {
    client_config_recording_ocsp().0
}

/// Like [`client_config_accepting_any`], and records the OCSP response the server staples
/// (empty when none) at every handshake.
pub fn client_config_recording_ocsp() -> (Arc<rustls::ClientConfig>, StapleLog) {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::UnixTime;
    use rustls::DigitallySignedStruct;

    #[derive(Debug)]
    struct AcceptAny(rustls::crypto::WebPkiSupportedAlgorithms, StapleLog);
    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            ocsp: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if let Ok(mut seen) = self.1.lock() {
                seen.push(ocsp.to_vec());
            }
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algs = provider.signature_verification_algorithms;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(algs, seen.clone())))
        .with_no_client_auth();
    (Arc::new(cfg), seen)
}
