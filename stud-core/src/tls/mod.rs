//! Everything that talks to rustls lives in this module, so a move to a new rustls release
//! stays in one place.
//!
//! - [`identity`]: PEM → certificate chain + signing key.
//! - [`client_hello`]: the ClientHello judged before rustls sees it (alerts the RFCs name).
//! - [`early_data`]: 0-RTT data stud rejects, dropped before rustls charges it twice.
//! - [`sni`]: the certificate for each handshake, by a name index built once.
//! - [`suites`]: OpenSSL-style cipher lists → rustls suites.
//! - [`client_auth`]: the client-certificate policy (modes, trust anchors, CRLs, depth).
//! - [`cert_fields`]: the subject CN of a client certificate (for the backend) and a
//!   certificate's notAfter (for the metrics), by a small DER walk.
//! - [`client_side`]: client mode, where stud is the TLS client of its backend.
//! - [`session`]: [`TlsSession`], the per-connection TLS state on rustls' unbuffered API, with
//!   stud's own ciphertext buffers, reduced to the operations the engine needs.

pub(crate) mod alert_scan;
pub(crate) mod cert_fields;
pub(crate) mod client_auth;
pub(crate) mod client_hello;
pub(crate) mod client_side;
pub(crate) mod early_data;
pub(crate) mod groups;
pub(crate) mod identity;
mod session;
pub(crate) mod sni;
pub(crate) mod suites;
pub(crate) mod tickets;

pub(crate) use session::TlsSession;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;

use crate::ConfigError;

/// A TLS protocol version stud can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl TlsVersion {
    /// The name OpenSSL uses (`TLSv1.2`, `TLSv1.3`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// What the handshake settled, reported once by [`Conn::poll_event`](crate::Conn::poll_event).
/// More fields may come in a minor release: read it, the engine makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeInfo {
    /// The server name the client asked for (SNI), if any. In client mode, the name stud sent
    /// to the backend (none for an IP address).
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    /// The protocol version.
    pub version: TlsVersion,
    /// The cipher suite, by its OpenSSL name (IANA name for TLS 1.3, as OpenSSL prints it).
    pub cipher_suite: &'static str,
    /// Whether the session was resumed (ticket or session ID) rather than fully negotiated.
    pub resumed: bool,
    /// The client's certificate chain as it sent it (DER, leaf first); empty when it sent
    /// none. For a resumed session, the chain of the handshake that made the session. In
    /// client mode, the backend's chain.
    pub peer_certificates: Vec<Vec<u8>>,
    /// The client-certificate outcome; `None` when no certificate was asked for
    /// ([`ClientVerifyMode::None`](crate::ClientVerifyMode::None)). A certificate that fails
    /// verification ends the handshake, so there is no "failed" value. With the embedder's own
    /// rustls configuration ([`ConfigBuilder::rustls_server_config`](crate::ConfigBuilder::rustls_server_config)):
    /// `Some(Verified)` when the client sent a certificate, `None` otherwise.
    pub client_verify: Option<client_auth::ClientVerify>,
}

impl HandshakeInfo {
    /// A handshake of `version` with `cipher_suite` and nothing else settled (no SNI, no ALPN,
    /// not resumed, no client certificate): for tests of code that consumes handshake
    /// reports. Set the other fields on the value it returns.
    ///
    /// ```
    /// use stud_core::{HandshakeInfo, TlsVersion};
    /// let mut info = HandshakeInfo::new(TlsVersion::Tls13, "TLS_AES_128_GCM_SHA256");
    /// info.sni = Some("example.test".into());
    /// assert!(!info.resumed);
    /// ```
    pub fn new(version: TlsVersion, cipher_suite: &'static str) -> HandshakeInfo {
        HandshakeInfo {
            sni: None,
            alpn: None,
            version,
            cipher_suite,
            resumed: false,
            peer_certificates: Vec::new(),
            client_verify: None,
        }
    }

    /// The subject common name (CN) of the client's certificate, if it sent one that has a CN
    /// in a text type (the first CN when there are several). The text is as the certificate
    /// holds it: escape it before writing it into a line-based log. `None` in client mode,
    /// where the certificates are the backend's.
    pub fn client_common_name(&self) -> Option<&str> {
        // Certificates are the client's only when one was asked for (server mode).
        self.client_verify.as_ref()?;
        self.peer_certificates
            .first()
            .and_then(|leaf| cert_fields::common_name(leaf))
    }
}

/// The OpenSSL-style names of every cipher suite stud can offer, most preferred first: the
/// values [`HandshakeInfo::cipher_suite`] takes.
pub fn cipher_suite_names() -> Vec<&'static str> {
    suites::default_suites()
        .into_iter()
        .map(suites::openssl_name)
        .collect()
}

/// The crypto provider stud uses, named explicitly: aws-lc-rs, with these suites and (when
/// given) these key-exchange groups.
pub(crate) fn provider(
    suites: Vec<rustls::SupportedCipherSuite>,
    kx_groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
) -> CryptoProvider {
    let default = rustls::crypto::aws_lc_rs::default_provider();
    CryptoProvider {
        cipher_suites: suites,
        kx_groups: kx_groups.unwrap_or(default.kx_groups.clone()),
        ..default
    }
}

/// Serves the one configured certificate whatever the client asks.
#[derive(Debug)]
struct SingleCert(Arc<CertifiedKey>);

impl ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Inputs to [`server_config`], gathered by the public builder.
pub(crate) struct TlsSettings<'a> {
    /// One or more certificates; the first is the default.
    /// Each with the OCSP response to staple, if any.
    pub(crate) identities: &'a [(identity::IdentitySource, Option<Vec<u8>>)],
    pub(crate) versions: &'a [TlsVersion],
    pub(crate) suites: Vec<rustls::SupportedCipherSuite>,
    pub(crate) cipher_list: Option<&'a str>,
    pub(crate) prefer_server_ciphers: bool,
    /// Refuse server names no certificate covers.
    pub(crate) sni_strict: bool,
    pub(crate) alpn: &'a [Vec<u8>],
    pub(crate) session_tickets: bool,
    /// The master secret for ticket keys (see [`tickets`]); random if `None`.
    pub(crate) ticket_secret: Option<&'a [u8]>,
    pub(crate) client_auth: &'a client_auth::ClientAuthSpec,
    /// The key-exchange groups, most preferred first (`None`: the provider's defaults).
    pub(crate) kx_groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
}

/// The shared, immutable TLS configuration.
pub(crate) struct ServerSetup {
    pub(crate) config: Arc<ServerConfig>,
    /// With `sni_strict`: the certificates' names, so a ClientHello naming none of them is
    /// refused with `unrecognized_name` before rustls sees it.
    pub(crate) strict_names: Option<Arc<sni::NameIndex>>,
}

/// The rustls versions for `versions`, once some version is enabled and some suite serves one.
pub(crate) fn check_versions(
    versions: &[TlsVersion],
    suites: &[rustls::SupportedCipherSuite],
    cipher_list: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, ConfigError> {
    if versions.is_empty() {
        return Err(ConfigError::NoProtocolVersion);
    }
    let rustls_versions: Vec<&'static rustls::SupportedProtocolVersion> = versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let usable = suites.iter().any(|suite| {
        rustls_versions
            .iter()
            .any(|v| suite.version().version == v.version)
    });
    if !usable {
        return Err(ConfigError::NoUsableCipher {
            list: cipher_list.unwrap_or("DEFAULT").to_owned(),
            versions: versions
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
        });
    }
    Ok(rustls_versions)
}

/// Builds the shared, immutable rustls configuration.
pub(crate) fn server_config(s: TlsSettings<'_>) -> Result<ServerSetup, ConfigError> {
    let versions = check_versions(s.versions, &s.suites, s.cipher_list)?;
    let provider = Arc::new(provider(s.suites, s.kx_groups));
    let mut keys = s
        .identities
        .iter()
        .map(|(id, ocsp)| identity::load(id, ocsp.as_deref(), &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let mut strict_names = None;
    let resolver: Arc<dyn ResolvesServerCert> = match keys.len() {
        0 => return Err(ConfigError::NoIdentity),
        1 if !s.sni_strict => Arc::new(SingleCert(keys.remove(0))),
        _ => {
            let names = Arc::new(sni::NameIndex::new(&keys));
            if s.sni_strict {
                strict_names = Some(names.clone());
            }
            Arc::new(sni::SniResolver::new(
                keys,
                names,
                s.versions.contains(&TlsVersion::Tls13),
                s.sni_strict,
            ))
        }
    };
    let client_auth = s.client_auth.load(&provider)?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let builder = match &client_auth {
        Some(policy) => builder.with_client_cert_verifier(policy.verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.ignore_client_order = s.prefer_server_ciphers;
    config.alpn_protocols = s.alpn.to_vec();
    if s.session_tickets {
        let mut secret = match s.ticket_secret {
            Some(secret) => secret.to_vec(),
            None => tickets::EpochTicketer::random_secret()
                .ok_or_else(|| ConfigError::Tls("no randomness for session-ticket keys".into()))?,
        };
        if let Some(policy) = &client_auth {
            // A ticket resumes only under the client-certificate policy that issued it.
            secret.extend_from_slice(b"client-auth policy");
            secret.extend_from_slice(&policy.fingerprint);
        }
        config.ticketer = Arc::new(tickets::EpochTicketer::new(secret));
        config.send_tls13_tickets = tickets::TLS13_TICKETS_PER_HANDSHAKE;
    } else {
        config.send_tls13_tickets = 0;
    }
    Ok(ServerSetup {
        config: Arc::new(config),
        strict_names,
    })
}
