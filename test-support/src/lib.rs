//! What stud's test trees share, so that each helper has one home: self-signed certificates,
//! rustls client configurations that trust them, and loopback addresses that refuse every
//! connection or never answer one, and temporary directories.
//!
//! Contract: everything here is for tests only and panics (with a message) when the machine
//! cannot do what it promises — a test has nothing better to do then. It depends on rustls and
//! rcgen, never on stud's own crates, so that any of them can use it as a dev-dependency.
//! Specialised worlds (a CA with client certificates and CRLs, OCSP responses, the engine's
//! in-memory `Pair`, the driver's scripted backends) stay beside the tests that need them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

/// Key types the tests cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// ECDSA P-256 with SHA-256.
    EcdsaP256,
    /// ECDSA P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

/// A self-signed certificate and its key.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER: the trust anchor for clients.
    pub der: CertificateDer<'static>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl Identity {
    /// The certificate then the key in one PEM, as stud reads a `--pem-file`.
    pub fn combined(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }

    /// The private key, for a rustls server of this identity.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A fresh self-signed certificate for `names` (DNS names or IP addresses) with a key of `kind`.
pub fn self_signed(kind: KeyKind, names: &[&str]) -> Identity {
    let alg = match kind {
        KeyKind::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        KeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyKind::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key = rcgen::KeyPair::generate_for(alg).expect("key generation");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = rcgen::CertificateParams::new(names).expect("certificate parameters");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

/// One P-256 identity for `localhost`, made once per test process and shared by the tests
/// that do not care which certificate they get.
pub fn localhost() -> &'static Identity {
    static CELL: OnceLock<Identity> = OnceLock::new();
    CELL.get_or_init(|| self_signed(KeyKind::EcdsaP256, &["localhost"]))
}

/// A client configuration (aws-lc-rs, TLS 1.2 and 1.3) trusting exactly `anchors`.
pub fn client_config_trusting(anchors: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    client_config_speaking(anchors, rustls::DEFAULT_VERSIONS)
}

/// [`client_config_trusting`] that speaks only `versions`.
pub fn client_config_speaking(
    anchors: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        roots.add(anchor.clone()).expect("trust anchor");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Moves everything `from` wants to send into `to`, which processes it (an in-memory TLS
/// exchange: call it both ways in turn until neither is handshaking).
pub fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection) {
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

/// A TLS 1.3 client configuration for `localhost` trusting `anchor` and holding a ticket that
/// allows 16 KiB of early data, got from an in-memory rustls server that accepts 0-RTT with
/// `chain` and `key` (the server under test's identity): its next connection offers 0-RTT.
pub fn client_with_early_data_ticket(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    anchor: &CertificateDer<'static>,
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    server.max_early_data_size = 16_384;
    let anchors = std::slice::from_ref(anchor);
    let mut client = (*client_config_speaking(anchors, &[&rustls::version::TLS13])).clone();
    client.enable_early_data = true;
    let client = Arc::new(client);
    let name = "localhost".try_into().expect("server name");
    let connection = rustls::ClientConnection::new(client.clone(), name).expect("client");
    let mut c = rustls::Connection::from(connection);
    let server = rustls::ServerConnection::new(Arc::new(server)).expect("server");
    let mut s = rustls::Connection::from(server);
    for _ in 0..10 {
        pump(&mut c, &mut s);
        pump(&mut s, &mut c);
    }
    assert!(!c.is_handshaking(), "the ticket's handshake completes");
    client
}

/// A backend's connection handler that copies every byte back and, at the peer's end of
/// stream, ends its own (shuts its write side): the echo server of the relay tests.
pub fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// A loopback address that refuses every connection for as long as this value lives: bound but
/// not listening. Holding the binding keeps the port from going to another test's listener or
/// to an outgoing connection (which could connect to itself), either of which would turn
/// "refused" into "accepted" at random.
#[derive(Debug)]
pub struct RefusingPort {
    /// The address to connect to.
    pub addr: SocketAddr,
    _held: socket2::Socket,
}

/// See [`RefusingPort`].
pub fn refusing_port() -> RefusingPort {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let addr = socket
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("an inet address");
    RefusingPort {
        addr,
        _held: socket,
    }
}

/// A loopback address whose connects never complete while this value lives: a listener with a
/// backlog of zero whose one queue place is taken, so the kernel drops every further SYN (the
/// client retransmits, as towards a host that has gone away).
#[derive(Debug)]
pub struct SilentAddress {
    /// The address to connect to.
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: TcpStream,
}

/// See [`SilentAddress`]. Checks its premise: a further connect gets no answer.
pub fn silent_address() -> SilentAddress {
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("an inet address");
    let queued = TcpStream::connect(addr).expect("the one queue place");
    let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
    assert!(
        probe.is_err(),
        "a connect to a full backlog was answered; the test's premise does not hold here"
    );
    SilentAddress {
        addr,
        _listener: listener,
        _queued: queued,
    }
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "stud-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns the file's path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn a_client_trusting_the_identity_completes_a_handshake_with_it() {
        let id = localhost();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("key PEM");
        assert_eq!(key, id.private_key(), "the PEM and DER keys are one key");
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![id.der.clone()], key)
            .expect("server config");
        let server = rustls::ServerConnection::new(Arc::new(server)).expect("server");
        let mut server = rustls::Connection::from(server);
        let name = "localhost".try_into().expect("name");
        let trusting = client_config_trusting(std::slice::from_ref(&id.der));
        let client = rustls::ClientConnection::new(trusting, name).expect("client");
        let mut client = rustls::Connection::from(client);
        for _ in 0..10 {
            pump(&mut client, &mut server);
            pump(&mut server, &mut client);
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
    }

    #[test]
    fn a_temporary_directory_holds_its_files_until_dropped() {
        let dir = TempDir::new();
        let file = dir.write("a.pem", "x");
        assert_eq!(std::fs::read_to_string(&file).expect("written"), "x");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_refusing_port_refuses() {
        let port = refusing_port();
        let err = std::net::TcpStream::connect(port.addr).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
