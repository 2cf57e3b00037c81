//! Client certificates: the verification policy of one [`Config`](crate::Config).
//!
//! Contract:
//! - [`ClientVerifyMode::None`] (the default) asks for no certificate. `Optional` asks for one and
//!   serves a client that sends none; a certificate that is sent must verify. `Required` refuses
//!   a client without one (TLS 1.3: the `certificate_required` alert).
//! - Trust anchors come from PEM bundles (files or bytes); every certificate in them is an
//!   anchor. A bundle that cannot be read, holds no certificate or a certificate that does not
//!   parse is a [`ConfigError`] naming it.
//! - CRLs (PEM `X509 CRL` blocks or one DER CRL per file) are read and parsed when the `Config`
//!   is built, so rebuilding the `Config` re-reads them. With CRLs, every certificate of the
//!   client's chain must be covered by a CRL of its issuer (as OpenSSL's `crl_check_all`); a
//!   revoked one is refused with `certificate_revoked`, one whose status no CRL gives with
//!   `unknown_ca`. A CRL past its `nextUpdate` is still used.
//! - The depth limit counts the intermediate CA certificates the client sends (OpenSSL's
//!   `verify_depth`: 0 allows a leaf issued by an anchor directly). It is checked on the chain
//!   as sent, so a client sending more intermediates than its path needs is refused too
//!   (`certificate_unknown`). Without a limit, rustls-webpki's own bound applies.
//! - Resumption: a session resumes only under the same policy. The policy's fingerprint (mode,
//!   depth, anchors and CRLs) is mixed into the session-ticket secret, so a ticket issued under
//!   another policy (another frontend, or before a CA or CRL change) does not open and the client
//!   makes a full handshake. rustls restores the certificate chain of a resumed session (TLS 1.2
//!   and 1.3): it is reported, but neither its expiry nor its revocation is checked again while
//!   the ticket still opens (its key's epoch and the two after it, see `tickets.rs`) unless the
//!   policy changes. Turn session tickets off where that window matters.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};

use crate::ConfigError;

/// Whether clients are asked for a certificate (`--client-verify`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientVerifyMode {
    /// Ask for none (default).
    #[default]
    None,
    /// Ask for one; serve a client that sends none, refuse one whose certificate does not verify.
    Optional,
    /// Refuse a client without a certificate that verifies.
    Required,
}

impl ClientVerifyMode {
    /// The name the daemon's flag uses: `none`, `optional` or `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientVerifyMode::None => "none",
            ClientVerifyMode::Optional => "optional",
            ClientVerifyMode::Required => "required",
        }
    }
}

impl fmt::Display for ClientVerifyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientVerifyMode {
    type Err = ConfigError;

    /// Parses `none`, `optional` or `required` (ASCII case ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientVerifyMode::None),
            "optional" => Ok(ClientVerifyMode::Optional),
            "required" => Ok(ClientVerifyMode::Required),
            _ => Err(ConfigError::Invalid {
                what: "client-verify mode",
                detail: format!("'{s}': expected none, optional or required"),
            }),
        }
    }
}

/// What became of the client's certificate, when one was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientVerify {
    /// The client sent no certificate (only possible with [`ClientVerifyMode::Optional`]).
    NoCertificate,
    /// The client's chain verified against the trust anchors (and CRLs), in this handshake or,
    /// for a resumed session, in the handshake that made it.
    Verified,
}

/// Bytes given by the caller or a file to read when the configuration is built.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Source {
    /// The bytes and a name for them in errors.
    pub(crate) fn read(&self, what: &str) -> Result<(Vec<u8>, String), ConfigError> {
        match self {
            Source::Bytes(b) => Ok((b.clone(), format!("{what} data"))),
            Source::File(path) => std::fs::read(path)
                .map(|b| (b, path.display().to_string()))
                .map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }),
        }
    }
}

/// The client-certificate settings as the builder was told them (files are read by `load`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientAuthSpec {
    pub(crate) mode: ClientVerifyMode,
    pub(crate) anchors: Vec<Source>,
    pub(crate) crls: Vec<Source>,
    pub(crate) max_intermediates: Option<usize>,
}

/// A loaded policy: the verifier for rustls and a fingerprint that names the policy.
pub(crate) struct ClientAuth {
    pub(crate) verifier: Arc<dyn ClientCertVerifier>,
    /// SHA-256 over the mode, the depth, every anchor and every CRL.
    pub(crate) fingerprint: [u8; 32],
}

impl ClientAuthSpec {
    /// Warnings for settings that do nothing with the chosen mode.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.mode == ClientVerifyMode::None {
            if !self.anchors.is_empty() {
                out.push("client CA certificates are given but client verification is off (client-verify = none): they are ignored".into());
            }
            if !self.crls.is_empty() {
                out.push("CRLs are given but client verification is off (client-verify = none): they are ignored".into());
            }
        }
        out
    }

    /// Reads the anchors and CRLs and builds the verifier; `None` when no certificate is asked for.
    pub(crate) fn load(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Option<ClientAuth>, ConfigError> {
        if self.mode == ClientVerifyMode::None {
            return Ok(None);
        }
        if self.anchors.is_empty() {
            return Err(ConfigError::Invalid {
                what: "client verification",
                detail: format!(
                    "client-verify = {} needs the CA certificates that issue client certificates (client-verify-ca)",
                    self.mode
                ),
            });
        }
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mode_byte: u8 = match self.mode {
            ClientVerifyMode::None => 0,
            ClientVerifyMode::Optional => 1,
            ClientVerifyMode::Required => 2,
        };
        digest.update(b"stud client-auth policy v1");
        digest.update(&[mode_byte]);
        let depth = self.max_intermediates.map_or(u64::MAX, |d| d as u64);
        digest.update(&depth.to_be_bytes());

        let mut roots = rustls::RootCertStore::empty();
        for source in &self.anchors {
            let (bytes, origin) = source.read("client CA PEM")?;
            for der in anchors_of(&bytes, &origin)? {
                roots
                    .add(der.clone())
                    .map_err(|e| ConfigError::BadCertificate {
                        origin: origin.clone(),
                        detail: e.to_string(),
                    })?;
                digest.update(b"anchor");
                digest.update(&(der.len() as u64).to_be_bytes());
                digest.update(&der);
            }
        }
        let mut crls = Vec::new();
        for source in &self.crls {
            let (bytes, origin) = source.read("CRL")?;
            for der in crls_of(&bytes, &origin)? {
                digest.update(b"crl");
                digest.update(&(der.len() as u64).to_be_bytes());
                digest.update(&der);
                crls.push(der);
            }
        }

        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls(crls);
        if self.mode == ClientVerifyMode::Optional {
            builder = builder.allow_unauthenticated();
        }
        let inner = builder
            .build()
            .map_err(|e| ConfigError::Tls(format!("client verification: {e}")))?;
        let verifier: Arc<dyn ClientCertVerifier> = match self.max_intermediates {
            Some(max) => Arc::new(DepthLimit { inner, max }),
            None => inner,
        };
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.finish().as_ref());
        Ok(Some(ClientAuth {
            verifier,
            fingerprint,
        }))
    }
}

/// Every certificate of a PEM bundle, each checked to parse as X.509.
pub(crate) fn anchors_of(
    bytes: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Pem {
            origin: origin.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(ConfigError::NoCertificate {
            origin: origin.to_owned(),
        });
    }
    Ok(certs)
}

/// The CRLs of one file: PEM `X509 CRL` blocks, or one DER CRL. Each must parse.
fn crls_of(
    bytes: &[u8],
    origin: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
    let bad = |detail: String| ConfigError::Invalid {
        what: "CRL",
        detail: format!("{origin}: {detail}"),
    };
    let crls = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Pem {
                origin: origin.to_owned(),
                detail: e.to_string(),
            })?;
        if crls.is_empty() {
            return Err(bad(
                "no CRL found (expected a -----BEGIN X509 CRL----- block, or DER)".into(),
            ));
        }
        crls
    } else {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    };
    for crl in &crls {
        webpki::BorrowedCertRevocationList::from_der(crl.as_ref())
            .map_err(|e| bad(format!("not a valid CRL: {e}")))?;
    }
    Ok(crls)
}

/// A verifier that refuses a chain with more intermediates than allowed, then asks `inner`.
#[derive(Debug)]
struct DepthLimit {
    inner: Arc<dyn ClientCertVerifier>,
    max: usize,
}

/// The client sent more intermediate certificates than the depth limit allows.
#[derive(Debug)]
struct ChainTooLong {
    sent: usize,
    max: usize,
}

impl fmt::Display for ChainTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client certificate chain has {} intermediate certificates; at most {} allowed",
            self.sent, self.max
        )
    }
}

impl std::error::Error for ChainTooLong {}

impl ClientCertVerifier for DepthLimit {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.len() > self.max {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(ChainTooLong {
                    sent: intermediates.len(),
                    max: self.max,
                })),
            )));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_the_flag_spellings_and_print_back() {
        for mode in [
            ClientVerifyMode::None,
            ClientVerifyMode::Optional,
            ClientVerifyMode::Required,
        ] {
            assert_eq!(mode.as_str().parse::<ClientVerifyMode>().ok(), Some(mode));
        }
        assert_eq!(
            "REQUIRED".parse::<ClientVerifyMode>().ok(),
            Some(ClientVerifyMode::Required)
        );
        let err = "yes"
            .parse::<ClientVerifyMode>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid client-verify mode: 'yes': expected none, optional or required")
        );
    }

    #[test]
    fn a_crl_file_that_is_neither_pem_nor_der_is_an_error_naming_it() {
        let err = crls_of(b"\x30\x03\x02\x01\x00", "/etc/crl.der").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("invalid CRL: /etc/crl.der: not a valid CRL"),
            "{text}"
        );
        let err = crls_of(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "x.pem",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("x.pem: no CRL found"), "{err}");
    }
}
