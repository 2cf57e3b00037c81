//! Client mode: stud speaks TLS to the backend, as a TLS client, and plaintext to its clients.
//!
//! [`BackendTls`] is what the caller says about the backend (whom to trust, which name to
//! verify, which certificate to present); [`BackendSetup`] is the shared rustls client
//! configuration built from it once, whose session cache every connection shares, so the
//! second connection to a backend resumes the first one's session.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::client_auth::{anchors_of, Source};
use super::identity::{self, IdentitySource, PemSource};
use crate::ConfigError;

/// Where trust anchors come from when none are given: the CA bundle Debian, Ubuntu, Alpine and
/// Arch install (`ca-certificates`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How many backend sessions the shared cache keeps for resumption.
const SESSION_CACHE_SIZE: usize = 256;

/// The backend's side of client mode, given to
/// [`ConfigBuilder::client_mode`](crate::ConfigBuilder::client_mode).
///
/// ```no_run
/// use stud_core::{BackendTls, Config};
/// let config = Config::builder()
///     .client_mode(
///         BackendTls::new("backend.example")
///             .ca_file("/etc/stud/backend-ca.pem")
///             .client_cert_file("/etc/stud/stud-client.pem"),
///     )
///     .build()?;
/// # Ok::<(), stud_core::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct BackendTls {
    server_name: String,
    anchors: Vec<Source>,
    insecure: bool,
    identity: Option<IdentityInput>,
    resumption: bool,
}

#[derive(Clone, Debug)]
enum IdentityInput {
    File(PathBuf),
    Pem(Vec<u8>),
}

impl BackendTls {
    /// Talk TLS to a backend known as `server_name`: the name sent in SNI and checked against
    /// the backend's certificate. An IP address is checked against the certificate's IP
    /// addresses and sends no SNI (RFC 6066 allows names only).
    pub fn new(server_name: impl Into<String>) -> BackendTls {
        BackendTls {
            server_name: server_name.into(),
            anchors: Vec::new(),
            insecure: false,
            identity: None,
            resumption: true,
        }
    }

    /// Adds the CA certificates of a PEM file as trust anchors for the backend's certificate
    /// (may be called again). Without any, the system bundle ([`SYSTEM_CA_BUNDLE`]) is read.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.anchors.push(Source::File(path.as_ref().to_path_buf()));
        self
    }

    /// Like [`ca_file`](Self::ca_file), from PEM bytes.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.anchors.push(Source::Bytes(pem.into()));
        self
    }

    /// Accept any certificate from the backend (default off): the traffic is encrypted but
    /// anyone on the path can pose as the backend. The built configuration warns about it.
    pub fn insecure(mut self, yes: bool) -> Self {
        self.insecure = yes;
        self
    }

    /// Presents the certificate chain and key of this PEM file (both in one file) when the
    /// backend asks for a client certificate.
    pub fn client_cert_file(mut self, path: impl AsRef<Path>) -> Self {
        self.identity = Some(IdentityInput::File(path.as_ref().to_path_buf()));
        self
    }

    /// Like [`client_cert_file`](Self::client_cert_file), from PEM bytes.
    pub fn client_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.identity = Some(IdentityInput::Pem(pem.into()));
        self
    }

    /// Resume sessions with the backend (default on): one cache shared by every connection
    /// made with the configuration.
    pub fn resumption(mut self, yes: bool) -> Self {
        self.resumption = yes;
        self
    }

    /// The name sent to and verified against the backend.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Builds the rustls client configuration; reads every file.
    pub(crate) fn build(
        &self,
        provider: Arc<CryptoProvider>,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[Vec<u8>],
        warnings: &mut Vec<String>,
    ) -> Result<BackendSetup, ConfigError> {
        let server_name =
            ServerName::try_from(self.server_name.clone()).map_err(|e| ConfigError::Invalid {
                what: "backend server name",
                detail: format!("'{}': {e}", self.server_name),
            })?;
        let roots = if self.insecure {
            warnings.push(format!(
                "the backend's certificate is not verified (backend-insecure): anyone on the path to the backend can pose as '{}'",
                self.server_name
            ));
            if !self.anchors.is_empty() {
                warnings.push("backend CA certificates are ignored: the backend's certificate is not verified (backend-insecure)".into());
            }
            rustls::RootCertStore::empty()
        } else {
            self.roots()?
        };
        let identity = self
            .identity
            .as_ref()
            .map(|input| {
                let source = match input {
                    IdentityInput::File(path) => PemSource {
                        origin: path.display().to_string(),
                        bytes: std::fs::read(path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?,
                    },
                    IdentityInput::Pem(bytes) => PemSource {
                        origin: "backend client certificate PEM data".into(),
                        bytes: bytes.clone(),
                    },
                };
                identity::load(&IdentitySource::Combined(source), None, &provider)
            })
            .transpose()?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(key) => builder.with_client_cert_resolver(Arc::new(OneClientCert(key))),
            None => builder.with_no_client_auth(),
        };
        if self.insecure {
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(AnyServerCert(provider)));
        }
        config.alpn_protocols = alpn.to_vec();
        config.resumption = if self.resumption {
            Resumption::in_memory_sessions(SESSION_CACHE_SIZE)
        } else {
            Resumption::disabled()
        };
        Ok(BackendSetup {
            config: Arc::new(config),
            server_name,
        })
    }

    /// The given anchors, or the system bundle when none are given.
    fn roots(&self) -> Result<rustls::RootCertStore, ConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        if self.anchors.is_empty() {
            let bytes = std::fs::read(SYSTEM_CA_BUNDLE).map_err(|e| ConfigError::Invalid {
                what: "backend trust anchors",
                detail: format!(
                    "no CA file given for the backend (backend-ca) and the system bundle {SYSTEM_CA_BUNDLE} cannot be read: {e}"
                ),
            })?;
            // A system bundle may hold anchors webpki cannot use; the rest still serve.
            let (added, _) = roots.add_parsable_certificates(anchors_of(&bytes, SYSTEM_CA_BUNDLE)?);
            if added == 0 {
                return Err(ConfigError::NoCertificate {
                    origin: SYSTEM_CA_BUNDLE.into(),
                });
            }
            return Ok(roots);
        }
        for source in &self.anchors {
            let (bytes, origin) = source.read("backend CA PEM")?;
            for der in anchors_of(&bytes, &origin)? {
                roots.add(der).map_err(|e| ConfigError::BadCertificate {
                    origin: origin.clone(),
                    detail: e.to_string(),
                })?;
            }
        }
        Ok(roots)
    }
}

/// The shared client-mode TLS configuration.
pub(crate) struct BackendSetup {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

impl fmt::Debug for BackendSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSetup")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Presents the one configured certificate whatever the backend hints.
#[derive(Debug)]
struct OneClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for OneClientCert {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        // A key the backend cannot verify is not worth sending: rustls then sends none.
        self.0
            .key
            .choose_scheme(schemes)
            .is_some()
            .then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts every certificate, but still checks the handshake signatures (so the session key
/// belongs to whoever holds the certificate's key, whoever that is).
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether `error` is the backend's refusal of the handshake (of stud's certificate, or of
/// its lack of one), which in TLS 1.3 arrives after stud's side of the handshake is done.
pub(crate) fn refuses_handshake(error: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        error,
        rustls::Error::AlertReceived(
            A::CertificateRequired
                | A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::HandshakeFailure
        )
    )
}

/// A server configuration no handshake can succeed with: the server-side slot of a client-mode
/// [`Config`](crate::Config), which never accepts TLS.
pub(crate) fn unused_server_config(
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    #[derive(Debug)]
    struct NoCert;
    impl rustls::server::ResolvesServerCert for NoCert {
        fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            None
        }
    }
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCert));
    Ok(Arc::new(config))
}
