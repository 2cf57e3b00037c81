//! The load generator's TLS clients. The rustls client of [`config`] offers TLS 1.3 only, one
//! cipher suite and one key-exchange group, so every proxy negotiates exactly the same thing;
//! the client [`Profile`]s measure handshakes as the clients people run make them (a real
//! OpenSSL client, a browser-like order, and that one-suite client).
//!
//! The client does not verify the server's certificate: the proxies still sign every handshake,
//! but the load generator saves the verification so one core of it can saturate a proxy's core.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, StreamOwned};

/// Every socket operation of the load generator gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The suite every scenario negotiates (AES-GCM, as operators deploy it).
pub const SUITE: &str = "TLS13_AES_128_GCM_SHA256";
/// The key exchange every scenario negotiates (what OpenSSL 3.0 in hitch and haproxy offers).
pub const GROUP: &str = "X25519";

#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration; `resume` keeps session tickets (TLS 1.3 resumption) in memory.
pub fn config(resume: bool) -> Result<Arc<ClientConfig>, rustls::Error> {
    let base = aws_lc_rs::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: vec![aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256],
        kx_groups: vec![aws_lc_rs::kx_group::X25519],
        ..base
    });
    accepting_any_server(provider, &[&rustls::version::TLS13], resume)
}

/// A configuration over `provider` and `versions` that trusts any server certificate; `resume`
/// keeps sessions in memory.
fn accepting_any_server(
    provider: Arc<CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    resume: bool,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    cfg.resumption = if resume {
        Resumption::in_memory_sessions(64)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(cfg))
}

/// Which client makes the handshakes of a scenario. Every handshake row names its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// A real OpenSSL 3 client with its defaults: Python's `ssl` module in a helper process
    /// (`openssl_client.py`), TLS_AES_256_GCM_SHA384 first, X25519, resumption with the
    /// session of its last connection (TLS 1.3 tickets).
    Openssl,
    /// A browser-like rustls client: TLS 1.3 and 1.2, AES-128-GCM first, then AES-256-GCM and
    /// ChaCha20-Poly1305; X25519MLKEM768 offered with an X25519 share beside it, as Chrome and
    /// Firefox do; resumption with tickets.
    Browser,
    /// The harness's one-suite rustls client ([`config`]): TLS 1.3, AES-128-GCM, X25519.
    Rustls,
}

impl Profile {
    /// Every profile, in the order of the tables.
    pub const ALL: [Profile; 3] = [Profile::Openssl, Profile::Browser, Profile::Rustls];

    /// The name on every row and in `--profiles`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Openssl => "openssl-default",
            Profile::Browser => "browser-like",
            Profile::Rustls => "rustls-1-suite",
        }
    }

    /// What the profile offers, in words, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Profile::Openssl => {
                "Python ssl (OpenSSL 3) with its defaults: TLS_AES_256_GCM_SHA384, \
                 TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256; X25519 share; \
                 resumes with the session of its last connection"
            }
            Profile::Browser => {
                "rustls: TLS 1.3 and 1.2, TLS_AES_128_GCM_SHA256 first, then AES-256-GCM and \
                 ChaCha20; X25519MLKEM768 and X25519 shares, then P-256, P-384; tickets"
            }
            Profile::Rustls => "rustls: TLS 1.3, TLS_AES_128_GCM_SHA256 only, X25519 only; tickets",
        }
    }

    /// The rustls configuration of a rustls profile (`None` for the OpenSSL client, which runs
    /// in its own process).
    pub fn rustls_config(self, resume: bool) -> Option<Result<Arc<ClientConfig>, rustls::Error>> {
        match self {
            Profile::Openssl => None,
            Profile::Browser => Some(browser_like_config(resume)),
            Profile::Rustls => Some(config(resume)),
        }
    }
}

/// A client ordered as Chrome and Firefox order TLS 1.3: AES-128-GCM first, the hybrid
/// post-quantum group first with an X25519 share sent beside it (rustls sends both shares
/// when a hybrid group leads), TLS 1.2 still offered.
pub fn browser_like_config(resume: bool) -> Result<Arc<ClientConfig>, rustls::Error> {
    let base = aws_lc_rs::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            aws_lc_rs::kx_group::X25519MLKEM768,
            aws_lc_rs::kx_group::X25519,
            aws_lc_rs::kx_group::SECP256R1,
            aws_lc_rs::kx_group::SECP384R1,
        ],
        ..base
    });
    accepting_any_server(
        provider,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        resume,
    )
}

/// What one connection agreed: the protocol version, the suite and the key-exchange group.
pub fn negotiated(config: &Arc<ClientConfig>, addr: SocketAddr) -> io::Result<String> {
    let (tls, _) = connect(config, addr)?;
    let c = &tls.conn;
    Ok(format!(
        "{} {} {}",
        c.protocol_version()
            .map_or("?".into(), |v| format!("{v:?}")),
        c.negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite())),
        c.negotiated_key_exchange_group()
            .map_or("?".into(), |g| format!("{:?}", g.name())),
    ))
}

/// A client that offers what OpenSSL 3 offers by default (curl, Python's `ssl`, most scripts
/// and health checkers): TLS 1.3 suites AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM in that
/// order, and X25519, P-256 and P-384 key exchange.
pub fn openssl_like_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let base = aws_lc_rs::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: vec![
            aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![
            aws_lc_rs::kx_group::X25519,
            aws_lc_rs::kx_group::SECP256R1,
            aws_lc_rs::kx_group::SECP384R1,
        ],
        ..base
    });
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A TLS stream over a blocking socket.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake; returns the stream and whether it was resumed.
pub fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> io::Result<(Tls, bool)> {
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let resumed = tls.conn.handshake_kind() == Some(HandshakeKind::Resumed);
    Ok((tls, resumed))
}

/// Connects without TLS (the direct-to-backend reference).
pub fn connect_plain(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(sock)
}

/// Reads until the peer's end of stream (close_notify, or a FIN some proxies send without
/// one); returns the byte count.
pub fn read_to_end(r: &mut impl Read, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One request/response over a fresh connection: handshake, `R <size>`, read the response to
/// its end, close. Returns whether the session was resumed.
pub fn request(config: &Arc<ClientConfig>, addr: SocketAddr, size: usize) -> io::Result<bool> {
    let (mut tls, resumed) = connect(config, addr)?;
    tls.write_all(format!("R {size}\n").as_bytes())?;
    tls.flush()?;
    let mut buf = [0u8; 4096];
    let got = read_to_end(&mut tls, &mut buf)?;
    if got != size as u64 {
        return Err(io::Error::other(format!(
            "response of {got} bytes, expected {size}"
        )));
    }
    Ok(resumed)
}
