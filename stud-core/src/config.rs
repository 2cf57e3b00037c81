//! `Config`: everything that is the same for every connection, built once and shared by `Arc`.
//!
//! ```no_run
//! use std::time::Duration;
//! use stud_core::{ClientAddressMode, Config};
//! let config = Config::builder()
//!     .pem_file("/etc/stud/site.pem")
//!     .ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
//!     .client_address(ClientAddressMode::ProxyV1)
//!     .handshake_timeout(Duration::from_secs(10))
//!     .build()?;
//! for warning in config.warnings() {
//!     eprintln!("warning: {warning}");
//! }
//! # Ok::<(), stud_core::ConfigError>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::proxy::ProxyV2Tlvs;
use crate::tls::client_auth::{ClientAuthSpec, Source};
use crate::tls::client_side::{BackendSetup, BackendTls};
use crate::tls::identity::{IdentitySource, PemSource};
use crate::tls::{self, TlsVersion};
use crate::{ClientAddressMode, ClientVerifyMode, ConfigError};

/// The largest TLS record's plaintext. Records are decrypted whole, so a direction's buffered
/// bytes may exceed its budget by up to one record.
pub const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// The largest budget either direction accepts.
const MAX_BUDGET: usize = 64 << 20;

/// The shared, immutable configuration of every [`Conn`](crate::Conn).
pub struct Config {
    pub(crate) tls: Arc<rustls::ServerConfig>,
    /// What the engine checks in the ClientHello before rustls sees it.
    pub(crate) hello: tls::client_hello::HelloPolicy,
    /// `tls` came from [`ConfigBuilder::rustls_server_config`]: its verifier is the embedder's.
    pub(crate) tls_is_embedders: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) backend_connect_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) linger_timeout: Duration,
    pub(crate) to_backend_budget: usize,
    pub(crate) to_client_budget: usize,
    pub(crate) client_address: ClientAddressMode,
    pub(crate) accept_proxy_header: bool,
    client_verify: ClientVerifyMode,
    pub(crate) proxy_client_cert: bool,
    pub(crate) proxy_tlvs: ProxyV2Tlvs,
    warnings: Vec<String>,
    /// Client mode: the backend's TLS configuration (stud is its TLS client).
    pub(crate) backend_tls: Option<BackendSetup>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("backend_connect_timeout", &self.backend_connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("linger_timeout", &self.linger_timeout)
            .field("to_backend_budget", &self.to_backend_budget)
            .field("to_client_budget", &self.to_client_budget)
            .field("client_address", &self.client_address)
            .field("accept_proxy_header", &self.accept_proxy_header)
            .field("client_verify", &self.client_verify)
            .field("proxy_client_cert", &self.proxy_client_cert)
            .field("proxy_tlvs", &self.proxy_tlvs)
            .field("backend_tls", &self.backend_tls)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Starts a builder with stud's defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Things the operator should hear about that did not stop the build (cipher names that
    /// exist in OpenSSL but not here, for instance).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The client-address header mode.
    pub fn client_address(&self) -> ClientAddressMode {
        self.client_address
    }

    /// Whether each connection must start with a PROXY header from a load balancer.
    pub fn accept_proxy_header(&self) -> bool {
        self.accept_proxy_header
    }

    /// The handshake deadline, counted from the connection's creation (in client mode, from
    /// the backend's connect).
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The backend connect deadline, counted from the end of the handshake (in client mode,
    /// from the connection's creation).
    pub fn backend_connect_timeout(&self) -> Duration {
        self.backend_connect_timeout
    }

    /// The idle deadline, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The linger deadline after one direction finished.
    pub fn linger_timeout(&self) -> Duration {
        self.linger_timeout
    }

    /// Budget of decrypted client bytes waiting for the backend.
    pub fn to_backend_budget(&self) -> usize {
        self.to_backend_budget
    }

    /// Budget of encrypted bytes waiting for the client.
    pub fn to_client_budget(&self) -> usize {
        self.to_client_budget
    }

    /// Whether clients are asked for a certificate ([`ClientVerifyMode::None`] with
    /// [`ConfigBuilder::rustls_server_config`]: the policy is then that configuration's).
    pub fn client_verify(&self) -> ClientVerifyMode {
        self.client_verify
    }

    /// Whether the PROXY v2 header carries the client's whole certificate.
    pub fn proxy_client_cert(&self) -> bool {
        self.proxy_client_cert
    }

    /// Whether this is client mode: plaintext clients, TLS to the backend (see
    /// [`ConfigBuilder::client_mode`]).
    pub fn client_mode(&self) -> bool {
        self.backend_tls.is_some()
    }
}

/// Builds a [`Config`]. Every setter has a default except the certificate.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    /// Each certificate with the OCSP response to staple for it, if any.
    identities: Vec<(IdentitySpec, Option<OcspSpec>)>,
    /// An OCSP response was given before any certificate: `build` reports it.
    ocsp_without_identity: bool,
    versions: Vec<TlsVersion>,
    ciphers: Option<String>,
    prefer_server_ciphers: bool,
    sni_strict: bool,
    alpn: Vec<Vec<u8>>,
    session_tickets: bool,
    ticket_secret: Option<TicketSecret>,
    handshake_timeout: Duration,
    backend_connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    linger_timeout: Duration,
    to_backend_budget: usize,
    to_client_budget: usize,
    client_address: ClientAddressMode,
    accept_proxy_header: bool,
    client_auth: ClientAuthSpec,
    proxy_client_cert: bool,
    proxy_tlvs: ProxyV2Tlvs,
    ecdh_curves: Option<String>,
    /// The embedder's own rustls configuration, used instead of one built from the settings.
    rustls_config: Option<Arc<rustls::ServerConfig>>,
    /// The stud TLS settings set so far, by method name: none may meet `rustls_config`.
    tls_settings: Vec<&'static str>,
    client_mode: Option<BackendTls>,
}

impl ConfigBuilder {
    /// The default of [`handshake_timeout`](Self::handshake_timeout).
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default of [`backend_connect_timeout`](Self::backend_connect_timeout).
    pub const DEFAULT_BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default of [`linger_timeout`](Self::linger_timeout).
    pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(60);
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            identities: Vec::new(),
            ocsp_without_identity: false,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            ciphers: None,
            prefer_server_ciphers: true,
            sni_strict: false,
            alpn: Vec::new(),
            session_tickets: true,
            ticket_secret: None,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            backend_connect_timeout: Self::DEFAULT_BACKEND_CONNECT_TIMEOUT,
            idle_timeout: None,
            linger_timeout: Self::DEFAULT_LINGER_TIMEOUT,
            to_backend_budget: 64 * 1024,
            to_client_budget: 64 * 1024,
            client_address: ClientAddressMode::None,
            accept_proxy_header: false,
            client_auth: ClientAuthSpec::default(),
            proxy_client_cert: false,
            proxy_tlvs: ProxyV2Tlvs::default(),
            ecdh_curves: None,
            rustls_config: None,
            tls_settings: Vec::new(),
            client_mode: None,
        }
    }
}

/// A DER OCSP response to staple, as the builder was told (files are read by `build`).
#[derive(Debug, Clone)]
enum OcspSpec {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl OcspSpec {
    fn load(self) -> Result<Vec<u8>, ConfigError> {
        let (bytes, origin) = match self {
            OcspSpec::Bytes(b) => (b, "OCSP response data".to_string()),
            OcspSpec::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (bytes, path.display().to_string())
            }
        };
        tls::identity::check_ocsp_response(&bytes).map_err(|detail| ConfigError::Invalid {
            what: "OCSP response",
            detail: format!("{origin}: {detail}"),
        })?;
        Ok(bytes)
    }
}

/// Where the certificate and key come from, as the builder was told (files are read by `build`).
#[derive(Debug, Clone)]
enum IdentitySpec {
    Loaded(IdentitySource),
    CombinedFile(PathBuf),
    SplitFiles(PathBuf, PathBuf),
}

fn read_file(path: &Path) -> Result<PemSource, ConfigError> {
    std::fs::read(path)
        .map(|bytes| PemSource {
            origin: path.display().to_string(),
            bytes,
        })
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Where the session-ticket master secret comes from.
#[derive(Debug, Clone)]
enum TicketSecret {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl TicketSecret {
    fn load(self) -> Result<Vec<u8>, ConfigError> {
        let (secret, origin) = match self {
            TicketSecret::Bytes(b) => (b, "ticket secret".to_string()),
            TicketSecret::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (bytes, path.display().to_string())
            }
        };
        // Text files usually end in a newline that editors add or remove: ignore it.
        let trimmed = secret.trim_ascii_end();
        if trimmed.len() < tls::tickets::MIN_SECRET_LEN {
            return Err(ConfigError::Invalid {
                what: "session-ticket secret",
                detail: format!(
                    "{origin}: {} bytes, need at least {} (e.g. `openssl rand -base64 48`)",
                    trimmed.len(),
                    tls::tickets::MIN_SECRET_LEN
                ),
            });
        }
        Ok(trimmed.to_vec())
    }
}

impl IdentitySpec {
    fn load(self) -> Result<IdentitySource, ConfigError> {
        Ok(match self {
            IdentitySpec::Loaded(source) => source,
            IdentitySpec::CombinedFile(path) => IdentitySource::Combined(read_file(&path)?),
            IdentitySpec::SplitFiles(chain, key) => IdentitySource::Split {
                chain: read_file(&chain)?,
                key: read_file(&key)?,
            },
        })
    }
}

impl ConfigBuilder {
    /// Adds one PEM file with a certificate chain and its private key (stud's format).
    ///
    /// Every `pem*`/`cert_and_key*` call adds a certificate. With several, each handshake gets
    /// the one whose names cover the client's SNI and whose key suits the client; the first
    /// added is the default.
    pub fn pem_file(self, path: impl AsRef<Path>) -> Self {
        self.add_identity(
            "pem_file",
            IdentitySpec::CombinedFile(path.as_ref().to_path_buf()),
        )
    }

    /// Adds PEM bytes with a certificate chain and its private key.
    pub fn pem(self, pem: impl Into<Vec<u8>>) -> Self {
        self.add_identity(
            "pem",
            IdentitySpec::Loaded(IdentitySource::Combined(PemSource {
                origin: "PEM data".into(),
                bytes: pem.into(),
            })),
        )
    }

    /// Adds a certificate chain file and a separate private key file.
    pub fn cert_and_key_files(self, chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.add_identity(
            "cert_and_key_files",
            IdentitySpec::SplitFiles(chain.as_ref().to_path_buf(), key.as_ref().to_path_buf()),
        )
    }

    /// Adds a certificate chain and a private key, each as PEM bytes.
    pub fn cert_and_key_pem(self, chain: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.add_identity(
            "cert_and_key_pem",
            IdentitySpec::Loaded(IdentitySource::Split {
                chain: PemSource {
                    origin: "certificate PEM data".into(),
                    bytes: chain.into(),
                },
                key: PemSource {
                    origin: "key PEM data".into(),
                    bytes: key.into(),
                },
            }),
        )
    }

    /// Terminates TLS with your own rustls configuration instead of one stud builds: your
    /// certificate resolver (ACME, certificates made on demand), ALPN, key log, client-certificate
    /// verifier, session storage and tickets. stud's own settings still apply on top of it: the
    /// client-address header, an incoming PROXY header, budgets and deadlines.
    ///
    /// `config` must be built with the same rustls stud-core uses: it is re-exported as
    /// [`stud_core::rustls`](crate::rustls), so the types cannot drift. What stud then relies on
    /// and what becomes yours:
    /// - **Crypto provider**: any provider rustls accepts (the one inside `config` does all the
    ///   cryptography; stud's aws-lc-rs is not used for it). Cipher suites without an OpenSSL
    ///   name in stud's table are reported in [`HandshakeInfo::cipher_suite`](crate::HandshakeInfo)
    ///   as `"UNKNOWN"`.
    /// - **Protocol versions**: yours. stud refuses ClientHellos up front (with the alert the
    ///   RFCs name) only by the versions your provider has cipher suites for; the rest is
    ///   rustls' to refuse.
    /// - **Certificates, SNI checks, OCSP stapling, session tickets and resumption, ALPN,
    ///   client certificates**: yours, entirely. stud adds no SNI check of its own (a resolver
    ///   that returns `None` fails the handshake, as rustls does). With a client-certificate
    ///   verifier of yours, [`HandshakeInfo::client_verify`](crate::HandshakeInfo) is
    ///   `Some(Verified)` when the client sent a certificate (your verifier accepted it, or the
    ///   handshake would have failed) and `None` otherwise, and
    ///   [`Config::client_verify`] reports [`ClientVerifyMode::None`].
    /// - **Early data**: `max_early_data_size` must be 0; stud does not accept 0-RTT data, so
    ///   `build` refuses anything else with [`ConfigError::Invalid`].
    /// - **Buffer limits**: stud lifts rustls' per-connection buffer limit and enforces its own
    ///   budgets instead.
    ///
    /// stud's own certificate and TLS methods cannot be combined with it: `build` fails with
    /// [`ConfigError::ConflictsWithRustlsConfig`] naming the first one called
    /// (`pem*`, `cert_and_key*`, `ocsp_response*`, `versions`, `ciphers`, `sni_strict`,
    /// `prefer_server_ciphers`, `alpn_protocols`, `session_tickets`, `ticket_secret*`,
    /// `client_verify*`, `crl*`, `ecdh_curves`), rather than ignore it. Configure those in
    /// `config` (key-exchange groups are its provider's `kx_groups`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stud_core::{rustls, Config, ConfigError};
    ///
    /// # fn resolver() -> Arc<dyn rustls::server::ResolvesServerCert> {
    /// #     Arc::new(rustls::server::ResolvesServerCertUsingSni::new())
    /// # }
    /// let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    /// let mut tls = rustls::ServerConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()
    ///     .expect("the provider supports TLS 1.2 and 1.3")
    ///     .with_no_client_auth()
    ///     .with_cert_resolver(resolver()); // yours: ACME, certificates made on demand, …
    /// tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    /// let config = Config::builder().rustls_server_config(Arc::new(tls)).build()?;
    /// # let _ = config;
    ///
    /// // stud's own TLS settings are refused beside it, never silently ignored:
    /// let refused = Config::builder()
    ///     .rustls_server_config(Arc::clone(&config_tls()))
    ///     .alpn_protocols(vec![b"h2".to_vec()])
    ///     .build();
    /// assert!(matches!(refused, Err(ConfigError::ConflictsWithRustlsConfig { setting: "alpn_protocols" })));
    /// # fn config_tls() -> Arc<rustls::ServerConfig> {
    /// #     let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    /// #     Arc::new(rustls::ServerConfig::builder_with_provider(provider)
    /// #         .with_safe_default_protocol_versions().expect("versions")
    /// #         .with_no_client_auth().with_cert_resolver(resolver()))
    /// # }
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn rustls_server_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.rustls_config = Some(config);
        self
    }

    fn add_identity(mut self, method: &'static str, spec: IdentitySpec) -> Self {
        self.tls_settings.push(method);
        self.identities.push((spec, None));
        self
    }

    /// Staples this DER-encoded OCSP response (RFC 6960 `OCSPResponse`) to the certificate added
    /// last: clients that ask for certificate status (`status_request`) get it in the handshake.
    /// The response must parse as a successful one; its freshness is the caller's to keep
    /// (fetch a new one before `nextUpdate` and rebuild). Given before any certificate, `build`
    /// fails.
    pub fn ocsp_response(self, der: impl Into<Vec<u8>>) -> Self {
        self.set_ocsp("ocsp_response", OcspSpec::Bytes(der.into()))
    }

    /// Like [`ocsp_response`](ConfigBuilder::ocsp_response), read from a file by `build`.
    pub fn ocsp_response_file(self, path: impl AsRef<Path>) -> Self {
        self.set_ocsp(
            "ocsp_response_file",
            OcspSpec::File(path.as_ref().to_path_buf()),
        )
    }

    fn set_ocsp(mut self, method: &'static str, spec: OcspSpec) -> Self {
        self.tls_settings.push(method);
        match self.identities.last_mut() {
            Some((_, ocsp)) => *ocsp = Some(spec),
            None => self.ocsp_without_identity = true,
        }
        self
    }

    /// The protocol versions to offer (default TLS 1.2 and 1.3).
    pub fn versions(mut self, versions: &[TlsVersion]) -> Self {
        self.tls_settings.push("versions");
        self.versions = versions.to_vec();
        self
    }

    /// A cipher list in OpenSSL syntax or IANA names; see the crate docs for the mapping.
    pub fn ciphers(mut self, list: impl Into<String>) -> Self {
        self.tls_settings.push("ciphers");
        self.ciphers = Some(list.into());
        self
    }

    /// Refuse a handshake whose server name (SNI) no configured certificate covers with a key
    /// the client can verify, instead of answering with another certificate (default off). A
    /// client that sends no server name is still served, as without this setting. A name no
    /// certificate covers gets the fatal `unrecognized_name` alert (RFC 6066 §3); a covered name
    /// whose certificates this client cannot verify fails as rustls fails it.
    pub fn sni_strict(mut self, yes: bool) -> Self {
        self.tls_settings.push("sni_strict");
        self.sni_strict = yes;
        self
    }

    /// Choose the suite by the server's order rather than the client's (default true).
    pub fn prefer_server_ciphers(mut self, yes: bool) -> Self {
        self.tls_settings.push("prefer_server_ciphers");
        self.prefer_server_ciphers = yes;
        self
    }

    /// ALPN protocols to accept, most preferred first (default none: ALPN is not negotiated).
    pub fn alpn_protocols(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.tls_settings.push("alpn_protocols");
        self.alpn = protocols;
        self
    }

    /// Issue TLS session tickets (default on).
    pub fn session_tickets(mut self, yes: bool) -> Self {
        self.tls_settings.push("session_tickets");
        self.session_tickets = yes;
        self
    }

    /// The master secret session-ticket keys derive from (at least 32 bytes). Processes and hosts
    /// given the same secret resume each other's sessions. Default: random, made when the
    /// configuration is built (shared by processes forked after that).
    pub fn ticket_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.tls_settings.push("ticket_secret");
        self.ticket_secret = Some(TicketSecret::Bytes(secret.into()));
        self
    }

    /// Like [`ticket_secret`](Self::ticket_secret), read from a file (trailing whitespace ignored).
    pub fn ticket_secret_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls_settings.push("ticket_secret_file");
        self.ticket_secret = Some(TicketSecret::File(path.as_ref().to_path_buf()));
        self
    }

    /// Deadline for the whole handshake, from the connection's creation (default 30 s).
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Deadline for the backend to accept, from the end of the handshake (default 30 s). The
    /// reference driver gives each of several backend addresses an equal share of the time left,
    /// so one address that never answers cannot use up the time of those after it.
    pub fn backend_connect_timeout(mut self, t: Duration) -> Self {
        self.backend_connect_timeout = t;
        self
    }

    /// Close an established connection after this long with no byte in either direction
    /// (default: never).
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Once one direction has finished (or the connection is closing), how long the rest may go
    /// without progress before the connection is closed (default 60 s).
    pub fn linger_timeout(mut self, t: Duration) -> Self {
        self.linger_timeout = t;
        self
    }

    /// Client bytes (decrypted, or ciphertext not yet decrypted) held for a slow backend before
    /// reads from the client stop (default 64 KiB; one record may exceed it, see
    /// [`MAX_RECORD_PLAINTEXT`]).
    pub fn to_backend_budget(mut self, bytes: usize) -> Self {
        self.to_backend_budget = bytes;
        self
    }

    /// Encrypted bytes held for a slow client before reads from the backend stop (default 64 KiB;
    /// record framing may exceed it by one record's overhead).
    pub fn to_client_budget(mut self, bytes: usize) -> Self {
        self.to_client_budget = bytes;
        self
    }

    /// Tell the backend the client's address (default: don't).
    pub fn client_address(mut self, mode: ClientAddressMode) -> Self {
        self.client_address = mode;
        self
    }

    /// Expect every connection to start with a PROXY protocol header (v1 or v2) from a load
    /// balancer in front, before the TLS handshake (default off). The addresses it names
    /// replace the socket's: the client-address header to the backend and
    /// [`Conn::peer_addr`](crate::Conn::peer_addr) report the real client. A connection that
    /// starts otherwise is closed with [`CloseReason::BadProxyHeader`](crate::CloseReason). Turn
    /// it on only where every client comes through such a balancer: anyone who can connect
    /// directly could claim any address.
    pub fn accept_proxy_header(mut self, yes: bool) -> Self {
        self.accept_proxy_header = yes;
        self
    }

    /// Whether to ask clients for a certificate (`--client-verify`; default
    /// [`ClientVerifyMode::None`]). `Optional` and `Required` need trust anchors
    /// ([`client_verify_ca_file`](Self::client_verify_ca_file)); see
    /// [`ClientVerifyMode`] for what each serves and refuses.
    pub fn client_verify(mut self, mode: ClientVerifyMode) -> Self {
        self.tls_settings.push("client_verify");
        self.client_auth.mode = mode;
        self
    }

    /// Adds the CA certificates of a PEM file as trust anchors for client certificates
    /// (`--client-verify-ca`; may be called again to add more). Every certificate in the file
    /// is an anchor. Read by `build`: an unreadable file, one without a certificate or with one
    /// that does not parse is an error naming the file.
    pub fn client_verify_ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls_settings.push("client_verify_ca_file");
        self.client_auth
            .anchors
            .push(Source::File(path.as_ref().to_path_buf()));
        self
    }

    /// Like [`client_verify_ca_file`](Self::client_verify_ca_file), from PEM bytes.
    pub fn client_verify_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_settings.push("client_verify_ca_pem");
        self.client_auth.anchors.push(Source::Bytes(pem.into()));
        self
    }

    /// Adds a certificate revocation list file, PEM (one or more `X509 CRL` blocks) or DER
    /// (`--crl`; may be called again). Read when the configuration is built, so a rebuild
    /// (the daemon's reload) picks up a new CRL. With CRLs, each certificate of a client's
    /// chain must be covered by a CRL from its issuer; a revoked client is refused with the
    /// `certificate_revoked` alert.
    pub fn crl_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls_settings.push("crl_file");
        self.client_auth
            .crls
            .push(Source::File(path.as_ref().to_path_buf()));
        self
    }

    /// Like [`crl_file`](Self::crl_file), from bytes (PEM or DER).
    pub fn crl(mut self, pem_or_der: impl Into<Vec<u8>>) -> Self {
        self.tls_settings.push("crl");
        self.client_auth.crls.push(Source::Bytes(pem_or_der.into()));
        self
    }

    /// The most intermediate CA certificates a client may send between its certificate and a
    /// trust anchor (`--client-verify-depth`; OpenSSL's `verify_depth`: 0 accepts only
    /// certificates issued by an anchor itself). Default: no limit beyond rustls-webpki's own.
    pub fn client_verify_depth(mut self, max_intermediates: usize) -> Self {
        self.tls_settings.push("client_verify_depth");
        self.client_auth.max_intermediates = Some(max_intermediates);
        self
    }

    /// With [`ClientAddressMode::ProxyV2`], also send the client's certificate to the backend
    /// (`--proxy-client-cert`; default off): DER in the `PP2_SUBTYPE_SSL_CLIENT_CERT` (0x28)
    /// sub-TLV and PEM in the custom TLV 0xE0 (as hitch). The subject CN is sent either way.
    pub fn proxy_client_cert(mut self, yes: bool) -> Self {
        self.proxy_client_cert = yes;
        self
    }

    /// The key-exchange groups to offer, most preferred first, as OpenSSL names them and hitch's
    /// `ecdh-curve` lists them (`X25519:prime256v1:secp384r1`; default, or `auto`:
    /// X25519MLKEM768, X25519, P-256, P-384). A group OpenSSL has and rustls has not (X448, P-521,
    /// finite-field groups) draws a warning; an unknown name is an error.
    pub fn ecdh_curves(mut self, list: impl Into<String>) -> Self {
        self.tls_settings.push("ecdh_curves");
        self.ecdh_curves = Some(list.into());
        self
    }

    /// Checks a list for [`ecdh_curves`](Self::ecdh_curves) without building anything (for a
    /// configuration file reader that reports the line): the error `build` would give, if any.
    pub fn check_ecdh_curves(list: &str) -> Result<(), ConfigError> {
        tls::groups::parse(list).map(drop)
    }

    /// With [`ClientAddressMode::ProxyV2`], send the `PP2_TYPE_SSL` TLV (TLS version, cipher,
    /// client-certificate flags and CN; default on, as hitch's `proxy-tlv`). Off, the header
    /// carries the addresses, the ALPN TLV and the authority TLV only (and no client
    /// certificate, which travels in the SSL TLV).
    pub fn proxy_tlv(mut self, yes: bool) -> Self {
        self.proxy_tlvs.ssl = yes;
        self
    }

    /// With [`ClientAddressMode::ProxyV2`], send the `PP2_TYPE_AUTHORITY` TLV naming the
    /// server name the client asked for (default on, as hitch's `proxy-authority`).
    pub fn proxy_authority(mut self, yes: bool) -> Self {
        self.proxy_tlvs.authority = yes;
        self
    }

    /// Client mode (`--client`): clients speak plaintext, and stud speaks TLS to the backend
    /// as `backend` describes (default: server mode, TLS from clients).
    ///
    /// Each connection asks for the backend at once, handshakes with it, and relays the
    /// client's bytes (held within the to-backend budget until the handshake completes)
    /// encrypted. The protocol versions, cipher list, key-exchange groups and ALPN protocols of
    /// this builder are what stud offers the backend. The connect deadline counts from the
    /// connection's creation, the handshake deadline from the backend's connect.
    /// [`Event::HandshakeComplete`](crate::Event) reports the backend's session.
    ///
    /// No certificate is needed. The settings that only make sense for a TLS client in front
    /// are refused by `build`: the client-address header
    /// ([`client_address`](Self::client_address): a TLS backend expects TLS first),
    /// [`accept_proxy_header`](Self::accept_proxy_header),
    /// [`client_verify`](Self::client_verify) and
    /// [`rustls_server_config`](Self::rustls_server_config). Certificates given are unused (a
    /// warning).
    pub fn client_mode(mut self, backend: BackendTls) -> Self {
        self.client_mode = Some(backend);
        self
    }

    /// Checks everything, loads the certificate and builds the configuration.
    pub fn build(mut self) -> Result<Config, ConfigError> {
        if self.client_mode.is_some() && self.rustls_config.is_some() {
            return Err(ConfigError::ConflictsWithRustlsConfig {
                setting: "client_mode",
            });
        }
        let tls = match self.rustls_config.take() {
            Some(config) => self.adopt(config)?,
            None => self.build_tls()?,
        };
        self.check_limits()?;
        let mut warnings = tls.warnings;
        if self.proxy_client_cert && self.client_address != ClientAddressMode::ProxyV2 {
            warnings.push(
                "proxy-client-cert does nothing without the PROXY v2 header (write-proxy-v2)"
                    .into(),
            );
        }
        Ok(Config {
            tls: tls.config,
            hello: tls.hello,
            tls_is_embedders: tls.is_embedders,
            handshake_timeout: self.handshake_timeout,
            backend_connect_timeout: self.backend_connect_timeout,
            idle_timeout: self.idle_timeout,
            linger_timeout: self.linger_timeout,
            to_backend_budget: self.to_backend_budget,
            to_client_budget: self.to_client_budget,
            client_address: self.client_address,
            accept_proxy_header: self.accept_proxy_header,
            client_verify: tls.client_verify,
            proxy_client_cert: self.proxy_client_cert,
            proxy_tlvs: self.proxy_tlvs,
            warnings,
            backend_tls: tls.backend_tls,
        })
    }

    /// The deadlines and budgets: the same checks whoever made the TLS configuration.
    fn check_limits(&self) -> Result<(), ConfigError> {
        for (what, t) in [
            ("handshake timeout", self.handshake_timeout),
            ("backend connect timeout", self.backend_connect_timeout),
            ("linger timeout", self.linger_timeout),
        ] {
            if t.is_zero() {
                return Err(ConfigError::Invalid {
                    what,
                    detail: "must be greater than zero".into(),
                });
            }
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::Invalid {
                what: "idle timeout",
                detail: "must be greater than zero (use None to disable)".into(),
            });
        }
        for (what, budget) in [
            ("to-backend budget", self.to_backend_budget),
            ("to-client budget", self.to_client_budget),
        ] {
            if !(512..=MAX_BUDGET).contains(&budget) {
                return Err(ConfigError::Invalid {
                    what,
                    detail: format!("{budget} bytes is outside 512..={MAX_BUDGET}"),
                });
            }
        }
        Ok(())
    }

    /// The embedder's rustls configuration, checked against stud's settings and rules (see
    /// [`rustls_server_config`](Self::rustls_server_config)).
    fn adopt(&self, config: Arc<rustls::ServerConfig>) -> Result<TlsPart, ConfigError> {
        if let Some(setting) = self.tls_settings.first() {
            return Err(ConfigError::ConflictsWithRustlsConfig { setting });
        }
        if config.max_early_data_size != 0 {
            return Err(ConfigError::Invalid {
                what: "rustls server config",
                detail: format!(
                    "max_early_data_size is {}; stud does not accept 0-RTT data, set it to 0",
                    config.max_early_data_size
                ),
            });
        }
        let offers = |version: rustls::ProtocolVersion| {
            config
                .crypto_provider()
                .cipher_suites
                .iter()
                .any(|suite| suite.version().version == version)
        };
        Ok(TlsPart {
            hello: tls::client_hello::HelloPolicy {
                tls12: offers(rustls::ProtocolVersion::TLSv1_2),
                tls13: offers(rustls::ProtocolVersion::TLSv1_3),
                strict_names: None,
            },
            config,
            is_embedders: true,
            client_verify: ClientVerifyMode::None,
            warnings: Vec::new(),
            backend_tls: None,
        })
    }

    /// The rustls configuration stud makes from its certificate and TLS settings.
    fn build_tls(&mut self) -> Result<TlsPart, ConfigError> {
        if self.identities.is_empty() && self.client_mode.is_none() {
            return Err(ConfigError::NoIdentity);
        }
        if self.ocsp_without_identity {
            return Err(ConfigError::Invalid {
                what: "OCSP response",
                detail: "given before any certificate; add the certificate first".into(),
            });
        }
        let identities = std::mem::take(&mut self.identities)
            .into_iter()
            .map(|(spec, ocsp)| Ok((spec.load()?, ocsp.map(OcspSpec::load).transpose()?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        // RFC 7301: each protocol name is 1 to 255 bytes.
        if let Some(bad) = self.alpn.iter().find(|p| p.is_empty() || p.len() > 255) {
            return Err(ConfigError::Invalid {
                what: "ALPN protocol",
                detail: format!(
                    "a protocol name must be 1 to 255 bytes long (got {} bytes)",
                    bad.len()
                ),
            });
        }
        let mut warnings = self.client_auth.warnings();
        let kx_groups = match &self.ecdh_curves {
            None => None,
            Some(list) => {
                let choice = tls::groups::parse(list)?;
                for name in choice.unsupported {
                    warnings.push(format!(
                        "key-exchange group '{name}' is not offered (only X25519, P-256, P-384 and the ML-KEM hybrids are)"
                    ));
                }
                choice.groups
            }
        };
        let suites = match &self.ciphers {
            None => tls::suites::default_suites(),
            Some(list) => {
                let choice = tls::suites::parse(list)?;
                for name in choice.unsupported {
                    warnings.push(format!(
                        "cipher '{name}' is not offered: only AEAD suites with forward secrecy are supported"
                    ));
                }
                choice.suites
            }
        };
        let ticket_secret = self
            .ticket_secret
            .take()
            .map(TicketSecret::load)
            .transpose()?;
        let mut versions = self.versions.clone();
        versions.sort();
        versions.dedup();
        if let Some(backend) = &self.client_mode {
            let refused = if self.client_address != ClientAddressMode::None {
                Some("a client-address header (write-ip, write-proxy) cannot go before the TLS handshake with the backend")
            } else if self.accept_proxy_header {
                Some("a PROXY header from a load balancer (proxy-proxy) is not read from plaintext clients")
            } else if self.client_auth.mode != ClientVerifyMode::None {
                Some("client certificates (client-verify) need TLS from the clients")
            } else {
                None
            };
            if let Some(detail) = refused {
                return Err(ConfigError::Invalid {
                    what: "client mode",
                    detail: detail.into(),
                });
            }
            if !identities.is_empty() {
                warnings.push("certificates are not used in client mode: clients speak plaintext (a certificate for the backend is backend-cert)".into());
            }
            let rustls_versions = tls::check_versions(&versions, &suites, self.ciphers.as_deref())?;
            let provider = Arc::new(tls::provider(suites, kx_groups));
            let setup = backend.build(
                provider.clone(),
                &rustls_versions,
                &self.alpn,
                &mut warnings,
            )?;
            return Ok(TlsPart {
                config: tls::client_side::unused_server_config(provider)?,
                hello: tls::client_hello::HelloPolicy {
                    tls12: false,
                    tls13: false,
                    strict_names: None,
                },
                is_embedders: false,
                client_verify: ClientVerifyMode::None,
                warnings,
                backend_tls: Some(setup),
            });
        }
        let setup = tls::server_config(tls::TlsSettings {
            identities: &identities,
            versions: &versions,
            suites,
            cipher_list: self.ciphers.as_deref(),
            prefer_server_ciphers: self.prefer_server_ciphers,
            sni_strict: self.sni_strict,
            alpn: &self.alpn,
            session_tickets: self.session_tickets,
            ticket_secret: ticket_secret.as_deref(),
            client_auth: &self.client_auth,
            kx_groups,
        })?;
        Ok(TlsPart {
            config: setup.config,
            hello: tls::client_hello::HelloPolicy {
                tls12: versions.contains(&TlsVersion::Tls12),
                tls13: versions.contains(&TlsVersion::Tls13),
                strict_names: setup.strict_names,
            },
            is_embedders: false,
            client_verify: self.client_auth.mode,
            warnings,
            backend_tls: None,
        })
    }
}

/// The TLS half of a configuration, as stud built it or the embedder gave it.
struct TlsPart {
    config: Arc<rustls::ServerConfig>,
    hello: tls::client_hello::HelloPolicy,
    /// Made by the embedder ([`ConfigBuilder::rustls_server_config`]).
    is_embedders: bool,
    client_verify: ClientVerifyMode,
    warnings: Vec<String>,
    /// Client mode: the backend's TLS configuration.
    backend_tls: Option<BackendSetup>,
}
