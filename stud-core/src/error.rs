//! Errors and close reasons.
//!
//! Configuration errors say what was wrong and where (which file, which suite name). Close reasons
//! are the engine's account of why a connection ended, for logs and metrics; every close has one.

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM block is malformed (bad base64, missing END line, …).
    #[error("{origin}: malformed PEM: {detail}")]
    Pem {
        /// The file or buffer the PEM came from.
        origin: String,
        /// What the parser said.
        detail: String,
    },
    /// No `CERTIFICATE` block was found.
    #[error("{origin}: no certificate found (expected a -----BEGIN CERTIFICATE----- block)")]
    NoCertificate {
        /// The file or buffer searched.
        origin: String,
    },
    /// No private key block was found.
    #[error("{origin}: no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)")]
    NoPrivateKey {
        /// The file or buffer searched.
        origin: String,
    },
    /// More than one private key: which one is meant is ambiguous.
    #[error("{origin}: more than one private key; keep exactly one per certificate chain")]
    MultiplePrivateKeys {
        /// The file or buffer searched.
        origin: String,
    },
    /// The key is of a type or parameter set that cannot be used.
    #[error("{origin}: unusable private key: {detail}")]
    UnsupportedKey {
        /// Where the key came from.
        origin: String,
        /// Why it was rejected.
        detail: String,
    },
    /// The private key does not belong to the first certificate.
    #[error("{origin}: the private key does not match the certificate's public key")]
    KeyMismatch {
        /// Where the certificate came from.
        origin: String,
    },
    /// The certificate could not be parsed.
    #[error("{origin}: bad certificate: {detail}")]
    BadCertificate {
        /// Where the certificate came from.
        origin: String,
        /// What the parser said.
        detail: String,
    },
    /// A cipher name nobody knows.
    #[error("unknown cipher suite '{name}' in cipher list")]
    UnknownCipher {
        /// The name as written.
        name: String,
    },
    /// The cipher list leaves nothing usable for the enabled protocol versions.
    #[error("cipher list '{list}' selects no cipher suite usable with {versions}")]
    NoUsableCipher {
        /// The list as given.
        list: String,
        /// The enabled versions.
        versions: String,
    },
    /// No protocol version is enabled.
    #[error("no TLS protocol version enabled")]
    NoProtocolVersion,
    /// No certificate was configured at all.
    #[error("no certificate configured")]
    NoIdentity,
    /// A numeric or textual option is out of range.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// The option.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Tls(String),
    /// One of stud's certificate or TLS settings was given beside an embedder's own rustls
    /// configuration, which decides it instead
    /// ([`ConfigBuilder::rustls_server_config`](crate::ConfigBuilder::rustls_server_config)).
    #[error("`{setting}` cannot be combined with a rustls server configuration of your own; set it there")]
    ConflictsWithRustlsConfig {
        /// The builder method called (`pem_file`, `alpn_protocols`, …).
        setting: &'static str,
    },
}

/// A TLS-level failure, from the peer's bytes or the handshake.
///
/// Opaque so that the engine's public API does not change with the TLS library's version.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsError(pub(crate) rustls::Error);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TlsError {}

impl TlsError {
    /// A failure stud itself decided (not the TLS library), described by `why`.
    pub(crate) fn general(why: impl Into<String>) -> TlsError {
        TlsError(rustls::Error::General(why.into()))
    }
}

/// Why a connection ended. Every close has exactly one.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both directions finished: each side's end of stream was relayed to the other.
    Completed,
    /// The TLS handshake failed (bad bytes, no shared suite, alert from the client, …).
    HandshakeFailed(TlsError),
    /// The handshake did not complete before its deadline (in client mode, the backend's).
    HandshakeTimeout,
    /// The client closed or reset before completing the handshake.
    ClientClosedInHandshake,
    /// The backend refused or failed the connection attempt.
    BackendConnectFailed,
    /// The backend did not accept the connection before its deadline.
    BackendConnectTimeout,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// One direction finished and the other made no progress for the linger timeout, or a
    /// closing connection could not flush its last bytes in time.
    LingerTimeout,
    /// The client's socket failed (reset, broken pipe) after the handshake.
    ClientReset,
    /// The backend's socket failed (reset, broken pipe).
    BackendReset,
    /// The TLS peer (the client; in client mode the backend) sent bytes that broke the TLS
    /// protocol after the handshake.
    ProtocolError(TlsError),
    /// The caller ended the connection (shutdown, drain deadline).
    Aborted,
    /// A PROXY header was expected from the load balancer and what came was not one (or a
    /// malformed one): the reason names what was wrong.
    BadProxyHeader(&'static str),
    /// Client mode: the TLS handshake with the backend failed (its certificate did not verify,
    /// it refused stud's certificate or the lack of one, it closed mid-handshake, …).
    BackendHandshakeFailed(TlsError),
}

impl CloseReason {
    /// Every name [`CloseReason::as_str`] can return, in declaration order: the label set of a
    /// metric counted by close reason. This is the one table of the names: `as_str`, the
    /// metrics and libstud's `stud_close_reason_name` (reason number `n` is `NAMES[n - 1]`) all
    /// read it. A new reason is appended, never inserted.
    pub const NAMES: &'static [&'static str] = &[
        "completed",
        "handshake_failed",
        "handshake_timeout",
        "client_closed_in_handshake",
        "backend_connect_failed",
        "backend_connect_timeout",
        "idle_timeout",
        "linger_timeout",
        "client_reset",
        "backend_reset",
        "protocol_error",
        "aborted",
        "bad_proxy_header",
        "backend_handshake_failed",
    ];

    /// This reason's place in [`CloseReason::NAMES`].
    fn index(&self) -> usize {
        match self {
            CloseReason::Completed => 0,
            CloseReason::HandshakeFailed(_) => 1,
            CloseReason::HandshakeTimeout => 2,
            CloseReason::ClientClosedInHandshake => 3,
            CloseReason::BackendConnectFailed => 4,
            CloseReason::BackendConnectTimeout => 5,
            CloseReason::IdleTimeout => 6,
            CloseReason::LingerTimeout => 7,
            CloseReason::ClientReset => 8,
            CloseReason::BackendReset => 9,
            CloseReason::ProtocolError(_) => 10,
            CloseReason::Aborted => 11,
            CloseReason::BadProxyHeader(_) => 12,
            CloseReason::BackendHandshakeFailed(_) => 13,
        }
    }

    /// A short stable name for logs and metrics (`"completed"`, `"handshake_failed"`, …).
    pub fn as_str(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// Whether the client never got past the handshake (no backend was involved).
    pub fn is_handshake_failure(&self) -> bool {
        matches!(
            self,
            CloseReason::HandshakeFailed(_)
                | CloseReason::HandshakeTimeout
                | CloseReason::ClientClosedInHandshake
                | CloseReason::BadProxyHeader(_)
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::HandshakeFailed(e)
            | CloseReason::ProtocolError(e)
            | CloseReason::BackendHandshakeFailed(e) => {
                write!(f, "{}: {e}", self.as_str())
            }
            CloseReason::BadProxyHeader(why) => write!(f, "{}: {why}", self.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lists_every_close_reason_once() {
        let tls = || TlsError(rustls::Error::DecryptError);
        let all = [
            CloseReason::Completed,
            CloseReason::HandshakeFailed(tls()),
            CloseReason::HandshakeTimeout,
            CloseReason::ClientClosedInHandshake,
            CloseReason::BackendConnectFailed,
            CloseReason::BackendConnectTimeout,
            CloseReason::IdleTimeout,
            CloseReason::LingerTimeout,
            CloseReason::ClientReset,
            CloseReason::BackendReset,
            CloseReason::ProtocolError(tls()),
            CloseReason::Aborted,
            CloseReason::BadProxyHeader("x"),
            CloseReason::BackendHandshakeFailed(tls()),
        ];
        let indexes: Vec<usize> = all.iter().map(CloseReason::index).collect();
        assert_eq!(indexes, (0..CloseReason::NAMES.len()).collect::<Vec<_>>());
        let names: std::collections::HashSet<&str> = all.iter().map(CloseReason::as_str).collect();
        assert_eq!(names.len(), CloseReason::NAMES.len(), "no name twice");
        assert_eq!(all[12].as_str(), "bad_proxy_header");
    }
}
