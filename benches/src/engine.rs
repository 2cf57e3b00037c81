//! The engine in memory, with no sockets: a rustls client against a `stud_core::Conn` and a
//! backend that is just a byte counter. Shared by the criterion benchmarks and by the small
//! binary whose instructions callgrind counts.
//!
//! The `engine_*` functions are the only places that call the engine and are never inlined,
//! so a profiler can count the engine's work apart from the client's (callgrind's
//! `--toggle-collect=stud_benches::engine::engine_*`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, NamedGroup};
use stud_core::{Action, Config, Conn, Instant};

use crate::client;

/// A self-signed ECDSA P-256 certificate for `localhost` and its key, as one PEM (stud's
/// format: chain, then key).
pub fn certificate_pem() -> Result<String, rcgen::Error> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    Ok(format!(
        "{}{}",
        ck.cert.pem(),
        ck.signing_key.serialize_pem()
    ))
}

/// A fixed instant: nothing in these benchmarks waits for a deadline.
const NOW: Instant = Instant::ZERO;
/// The biggest piece a socket read would hand the engine at once.
const READ: usize = 64 * 1024;

/// A server configuration and a client configuration.
#[derive(Debug, Clone)]
pub struct Bench {
    server: Arc<Config>,
    client: Arc<ClientConfig>,
    /// The client's ticket store, when it keeps tickets.
    tickets: Option<Arc<TicketCounter>>,
}

/// A client's session store that counts the TLS 1.3 tickets the server sends and keeps only
/// the newest (as an OpenSSL client or a browser does: one session per server, replaced by
/// every ticket that arrives).
#[derive(Debug)]
pub struct TicketCounter {
    inner: ClientSessionMemoryCache,
    received: AtomicUsize,
}

impl TicketCounter {
    fn new() -> TicketCounter {
        TicketCounter {
            inner: ClientSessionMemoryCache::new(8),
            received: AtomicUsize::new(0),
        }
    }

    /// TLS 1.3 tickets received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

impl ClientSessionStore for TicketCounter {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.received.fetch_add(1, Ordering::Relaxed);
        // Keep the newest only.
        while self.inner.take_tls13_ticket(&server_name).is_some() {}
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// One connection in memory: the engine's `Conn` and the client talking to it.
pub struct Pair {
    conn: Conn,
    client: ClientConnection,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Bench {
    /// Fresh certificate, default stud configuration, the harness's client.
    pub fn new() -> io::Result<Bench> {
        let pem = certificate_pem().map_err(io::Error::other)?;
        let server = Config::builder()
            .pem(pem)
            .build()
            .map_err(io::Error::other)?;
        Ok(Bench {
            server: Arc::new(server),
            client: client::config(false).map_err(io::Error::other)?,
            tickets: None,
        })
    }

    /// As [`Bench::new`], with a client that keeps the server's session tickets, so every
    /// handshake after the first resumes.
    pub fn resuming() -> io::Result<Bench> {
        Ok(Bench {
            client: client::config(true).map_err(io::Error::other)?,
            ..Bench::new()?
        })
    }

    /// Whether the last handshake of `pair` resumed a session.
    pub fn resumed(pair: &Pair) -> bool {
        pair.client.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// As [`Bench::new`], with a client that offers what OpenSSL 3 offers by default and keeps
    /// no session, so every handshake is a full one.
    pub fn openssl_like() -> io::Result<Bench> {
        let mut client = (*client::openssl_like_config().map_err(io::Error::other)?).clone();
        client.resumption = Resumption::disabled();
        Ok(Bench {
            client: Arc::new(client),
            ..Bench::new()?
        })
    }

    /// As [`Bench::openssl_like`], with a server that follows the client's suite order
    /// (`prefer_server_ciphers(false)`, hitch's default) instead of its own.
    pub fn openssl_like_client_order() -> io::Result<Bench> {
        Bench::openssl_like()?.following_client_order()
    }

    /// This bench with a fresh server that follows the client's suite order.
    pub fn following_client_order(self) -> io::Result<Bench> {
        let pem = certificate_pem().map_err(io::Error::other)?;
        let server = Config::builder()
            .pem(pem)
            .prefer_server_ciphers(false)
            .build()
            .map_err(io::Error::other)?;
        Ok(Bench {
            server: Arc::new(server),
            ..self
        })
    }

    /// As [`Bench::openssl_like`], with a client that keeps the newest session ticket (one per
    /// server, as OpenSSL's clients and browsers do) and counts the tickets it receives, so
    /// every handshake after the first resumes as long as the server sends one each time.
    pub fn openssl_like_resuming() -> io::Result<Bench> {
        let tickets = Arc::new(TicketCounter::new());
        let mut client = (*client::openssl_like_config().map_err(io::Error::other)?).clone();
        client.resumption = Resumption::store(tickets.clone());
        Ok(Bench {
            client: Arc::new(client),
            tickets: Some(tickets),
            ..Bench::new()?
        })
    }

    /// As [`Bench::new`], with a client that speaks TLS 1.2 only (ECDHE-ECDSA-AES128-GCM-SHA256,
    /// X25519) and, with `resume`, keeps its session (a ticket, or the session ID).
    pub fn tls12(resume: bool) -> io::Result<Bench> {
        let base = rustls::crypto::aws_lc_rs::default_provider();
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![
                rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
                rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
            ..base
        });
        let pem = certificate_pem().map_err(io::Error::other)?;
        let mut roots = rustls::RootCertStore::empty();
        let server = Config::builder()
            .pem(pem.clone())
            .build()
            .map_err(io::Error::other)?;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots
                .add(cert.map_err(io::Error::other)?)
                .map_err(io::Error::other)?;
        }
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = match resume {
            true => Resumption::in_memory_sessions(64),
            false => Resumption::disabled(),
        };
        Ok(Bench {
            server: Arc::new(server),
            client: Arc::new(client),
            tickets: None,
        })
    }

    /// TLS 1.3 tickets the client has received so far (0 for a client that keeps none).
    pub fn tickets_received(&self) -> usize {
        self.tickets.as_ref().map_or(0, |t| t.received())
    }

    /// The cipher suite the last handshake of `pair` settled on.
    pub fn suite_of(pair: &Pair) -> Option<&'static str> {
        pair.client
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
    }

    /// `count` certificates (at least one): the first is [`Bench::new`]'s for `localhost`, the
    /// others name `host1.example.test`, `host2.example.test`, … (one key shared, to set up
    /// quickly; the engine's choice depends on the names alone).
    pub fn with_certificates(count: usize) -> io::Result<Bench> {
        let mut builder = Config::builder().pem(certificate_pem().map_err(io::Error::other)?);
        let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
        let key_pem = key.serialize_pem();
        for i in 1..count {
            let cert = rcgen::CertificateParams::new(vec![format!("host{i}.example.test")])
                .and_then(|params| params.self_signed(&key))
                .map_err(io::Error::other)?;
            builder = builder.pem(format!("{}{key_pem}", cert.pem()));
        }
        Ok(Bench {
            server: Arc::new(builder.build().map_err(io::Error::other)?),
            client: client::config(false).map_err(io::Error::other)?,
            tickets: None,
        })
    }

    /// A full TLS 1.3 handshake through the engine, up to an established backend.
    pub fn handshake(&self) -> io::Result<Pair> {
        self.handshake_for("localhost")
    }

    /// A full TLS 1.3 handshake for the server name `sni`.
    pub fn handshake_for(&self, sni: &str) -> io::Result<Pair> {
        let peer: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 40000));
        let local: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 443));
        let conn = engine_new(&self.server, peer, local)?;
        let name = ServerName::try_from(sni.to_owned()).map_err(io::Error::other)?;
        let client = ClientConnection::new(self.client.clone(), name).map_err(io::Error::other)?;
        let mut pair = Pair {
            conn,
            client,
            buf: vec![0u8; READ],
        };
        for _ in 0..32 {
            let moved = pair.client_to_engine()? + pair.engine_to_client()?;
            if !pair.client.is_handshaking() && !pair.conn.is_handshaking() && moved == 0 {
                return Ok(pair);
            }
        }
        Err(io::Error::other("handshake did not finish in 32 steps"))
    }
}

impl Pair {
    /// Moves the client's pending ciphertext into the engine; returns the byte count.
    fn client_to_engine(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while self.client.wants_write() {
            let mut out = Vec::new();
            self.client.write_tls(&mut out)?;
            total += out.len();
            let mut rest = &mut out[..];
            while !rest.is_empty() {
                let n = engine_client_data(&mut self.conn, rest);
                if n == 0 {
                    return Err(io::Error::other("engine refused client bytes"));
                }
                rest = &mut rest[n..];
            }
        }
        Ok(total)
    }

    /// Moves the engine's ciphertext to the client and lets it process; returns the count.
    fn engine_to_client(&mut self) -> io::Result<usize> {
        let n = engine_client_transmit(&mut self.conn, &mut self.buf);
        if n > 0 {
            let mut rest = &self.buf[..n];
            while !rest.is_empty() {
                self.client.read_tls(&mut rest)?;
                self.client
                    .process_new_packets()
                    .map_err(io::Error::other)?;
            }
            // Drain plaintext so the client never stops reading.
            let mut sink = [0u8; 16 * 1024];
            while let Ok(m) = self.client.reader().read(&mut sink) {
                if m == 0 {
                    break;
                }
            }
        }
        Ok(n)
    }

    /// A short exchange each way (a request and its response), as an idle connection has
    /// seen before it goes quiet; every byte is delivered.
    pub fn exchange(&mut self, bytes: usize) -> io::Result<()> {
        self.client.writer().write_all(&vec![b'q'; bytes])?;
        self.client_to_engine()?;
        while engine_backend_transmit(&mut self.conn, &mut self.buf) > 0 {}
        let reply = vec![b'r'; bytes];
        if engine_backend_data(&mut self.conn, &reply) != bytes {
            return Err(io::Error::other("engine refused the reply"));
        }
        while self.engine_to_client()? > 0 {}
        Ok(())
    }

    /// The engine's connection alone, the client dropped (for measuring what it holds).
    pub fn into_conn(self) -> Conn {
        self.conn
    }

    /// Relays `bytes` from the backend to the client: the engine encrypts, the client's part is
    /// only discarding ciphertext (so the count is the engine's).
    pub fn download(&mut self, bytes: usize) -> io::Result<()> {
        let data = vec![b'd'; READ];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(READ);
            let taken = engine_backend_data(&mut self.conn, &data[..n]);
            if taken == 0 && engine_client_transmit(&mut self.conn, &mut self.buf) == 0 {
                return Err(io::Error::other("engine neither takes nor sends"));
            }
            left -= taken;
            while engine_client_transmit(&mut self.conn, &mut self.buf) > 0 {}
        }
        Ok(())
    }

    /// Encrypts `bytes` of client data with the client (not measured by callgrind's toggle),
    /// then relays them through the engine to the backend.
    pub fn upload(&mut self, bytes: usize) -> io::Result<()> {
        let cipher = self.client_ciphertext(bytes)?;
        self.feed_upload(&cipher)
    }

    /// The engine's part of an upload: decrypt and hand the plaintext to the backend.
    pub fn feed_upload(&mut self, cipher: &[u8]) -> io::Result<()> {
        let mut rest = cipher;
        // The driver's read buffer: the engine may decrypt in it.
        let mut scratch = vec![0u8; READ];
        while !rest.is_empty() {
            let take = rest.len().min(READ);
            scratch[..take].copy_from_slice(&rest[..take]);
            let n = engine_client_data(&mut self.conn, &mut scratch[..take]);
            rest = &rest[n..];
            if engine_backend_transmit(&mut self.conn, &mut self.buf) == 0 && n == 0 {
                return Err(io::Error::other("engine neither takes nor delivers"));
            }
            while engine_backend_transmit(&mut self.conn, &mut self.buf) > 0 {}
        }
        Ok(())
    }

    /// Ciphertext for `bytes` of client data, made by this pair's client (for benchmarks that
    /// time only the engine's part).
    pub fn client_ciphertext(&mut self, bytes: usize) -> io::Result<Vec<u8>> {
        let chunk = vec![b'u'; 16 * 1024];
        let mut cipher = Vec::with_capacity(bytes + bytes / 50 + 1024);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            self.client.writer().write_all(&chunk[..n])?;
            while self.client.wants_write() {
                self.client.write_tls(&mut cipher)?;
            }
            left -= n;
        }
        Ok(cipher)
    }
}

/// `Conn::new`.
#[inline(never)]
fn engine_new(cfg: &Arc<Config>, peer: SocketAddr, local: SocketAddr) -> io::Result<Conn> {
    Conn::new(cfg.clone(), NOW, peer, local).map_err(io::Error::other)
}

/// Client ciphertext into the engine (from a read buffer it may decrypt in, as the driver's),
/// and what it asks for in response.
#[inline(never)]
fn engine_client_data(conn: &mut Conn, data: &mut [u8]) -> usize {
    let n = conn.handle_client_data_mut(NOW, data);
    while let Some(_event) = conn.poll_event() {}
    while let Some(action) = conn.poll_action() {
        if action == Action::ConnectBackend {
            conn.handle_backend_connected(NOW);
        }
    }
    n
}

/// Backend plaintext into the engine.
#[inline(never)]
fn engine_backend_data(conn: &mut Conn, data: &[u8]) -> usize {
    conn.handle_backend_data(NOW, data)
}

/// Ciphertext out of the engine for the client.
#[inline(never)]
fn engine_client_transmit(conn: &mut Conn, buf: &mut [u8]) -> usize {
    conn.poll_client_transmit(NOW, buf)
}

/// Plaintext out of the engine for the backend.
#[inline(never)]
fn engine_backend_transmit(conn: &mut Conn, buf: &mut [u8]) -> usize {
    conn.poll_backend_transmit(NOW, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_relay_in_memory() {
        let bench = Bench::new().expect("bench setup");
        let mut pair = bench.handshake().expect("handshake");
        pair.download(1 << 20).expect("download");
        pair.upload(1 << 20).expect("upload");
    }

    #[test]
    fn each_client_profile_handshakes_and_resumes_as_named() {
        let full = Bench::openssl_like().expect("bench setup");
        for _ in 0..2 {
            assert!(!Bench::resumed(&full.handshake().expect("handshake")));
        }
        let resuming = Bench::openssl_like_resuming().expect("bench setup");
        resuming.handshake().expect("handshake");
        for _ in 0..3 {
            let mut pair = resuming.handshake().expect("handshake");
            pair.exchange(128).expect("exchange");
            assert!(Bench::resumed(&pair));
        }
        assert_eq!(resuming.tickets_received(), 4, "one ticket per handshake");
        let client_order = Bench::openssl_like_client_order().expect("bench setup");
        let pair = client_order.handshake().expect("handshake");
        assert_eq!(Bench::suite_of(&pair), Some("TLS13_AES_256_GCM_SHA384"));
        let resuming_client_order = Bench::openssl_like_resuming()
            .and_then(Bench::following_client_order)
            .expect("bench setup");
        resuming_client_order.handshake().expect("handshake");
        let pair = resuming_client_order.handshake().expect("handshake");
        assert!(Bench::resumed(&pair));
        assert_eq!(Bench::suite_of(&pair), Some("TLS13_AES_256_GCM_SHA384"));
        let tls12 = Bench::tls12(true).expect("bench setup");
        tls12.handshake().expect("handshake");
        assert!(Bench::resumed(&tls12.handshake().expect("handshake")));
    }

    #[test]
    fn many_certificates_serve_every_name() {
        let bench = Bench::with_certificates(50).expect("bench setup");
        for name in ["localhost", "host49.example.test", "unknown.example.test"] {
            bench.handshake_for(name).expect("handshake");
        }
    }
}
