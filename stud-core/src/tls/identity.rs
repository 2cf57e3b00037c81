//! Certificate chains and private keys from PEM.
//!
//! stud's classic input is one file holding the chain and the key (and sometimes a
//! `DH PARAMETERS` block, which TLS 1.2+ ECDHE/1.3 never use and which is skipped). Separate
//! certificate and key sources work too. Keys may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC): RSA,
//! ECDSA P-256/P-384 and Ed25519 are accepted. The key must match the first certificate.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::cert_fields::element;
use crate::ConfigError;

/// PEM bytes and a name for them in error messages (a path, or "PEM data").
#[derive(Clone, Debug)]
pub(crate) struct PemSource {
    pub(crate) origin: String,
    pub(crate) bytes: Vec<u8>,
}

/// Where a certificate chain and its key come from.
#[derive(Clone, Debug)]
pub(crate) enum IdentitySource {
    /// One PEM holding both.
    Combined(PemSource),
    /// A chain and a key apart.
    Split { chain: PemSource, key: PemSource },
}

/// Every known PEM section of `src`, in order; unknown labels (such as `DH PARAMETERS`) are skipped.
fn sections(src: &PemSource) -> Result<Vec<(SectionKind, Vec<u8>)>, ConfigError> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(&src.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Pem {
            origin: src.origin.clone(),
            detail: e.to_string(),
        })
}

fn chain_of(
    src: &PemSource,
    sections: &[(SectionKind, Vec<u8>)],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let chain: Vec<_> = sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if chain.is_empty() {
        return Err(ConfigError::NoCertificate {
            origin: src.origin.clone(),
        });
    }
    Ok(chain)
}

fn key_of(
    src: &PemSource,
    sections: &[(SectionKind, Vec<u8>)],
) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let mut keys = sections.iter().filter_map(|(kind, der)| match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.clone().into())),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.clone().into())),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.clone().into())),
        _ => None,
    });
    let key = keys.next().ok_or_else(|| ConfigError::NoPrivateKey {
        origin: src.origin.clone(),
    })?;
    if keys.next().is_some() {
        return Err(ConfigError::MultiplePrivateKeys {
            origin: src.origin.clone(),
        });
    }
    Ok(key)
}

/// Checks that `der` is an `OCSPResponse` (RFC 6960 §4.2.1) that can be stapled: a DER SEQUENCE
/// spanning exactly the bytes, holding `responseStatus` ENUMERATED 0 (successful) and then the
/// `responseBytes [0]` that a successful response must carry, which runs to the end. The
/// response inside is the client's to verify; stud only refuses what no client could use, such
/// as a PEM file, an error answer from the responder, or a truncated download.
pub(crate) fn check_ocsp_response(der: &[u8]) -> Result<(), String> {
    let not_der =
        || "not a DER OCSP response (expected a SEQUENCE; PEM must be converted)".to_string();
    let (tag, body, rest) = element(der).ok_or_else(not_der)?;
    if tag != 0x30 {
        return Err(not_der());
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes follow the response; its encoding says it ends before them",
            rest.len()
        ));
    }
    let (tag, status, after) = element(body).ok_or_else(not_der)?;
    match (tag, status) {
        (0x0a, [0]) => {}
        (0x0a, [n]) => {
            return Err(format!(
                "the responder answered with status {n} (not successful); nothing to staple"
            ))
        }
        _ => return Err(not_der()),
    }
    match element(after) {
        Some((0xa0, _, [])) => Ok(()),
        _ => {
            Err("a successful response must hold its responseBytes, and nothing after them".into())
        }
    }
}

/// Loads and checks one identity: the chain parses, the key is usable and matches. `ocsp` is
/// stapled as given (checked by [`check_ocsp_response`]).
pub(crate) fn load(
    source: &IdentitySource,
    ocsp: Option<&[u8]>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, ConfigError> {
    let (chain, key, cert_origin) = match source {
        IdentitySource::Combined(src) => {
            let secs = sections(src)?;
            (chain_of(src, &secs)?, key_of(src, &secs)?, &src.origin)
        }
        IdentitySource::Split { chain, key } => {
            let chain_secs = sections(chain)?;
            let key_secs = sections(key)?;
            (
                chain_of(chain, &chain_secs)?,
                key_of(key, &key_secs)?,
                &chain.origin,
            )
        }
    };
    let key_origin = match source {
        IdentitySource::Combined(src) => &src.origin,
        IdentitySource::Split { key, .. } => &key.origin,
    };
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| ConfigError::UnsupportedKey {
                origin: key_origin.clone(),
                detail: e.to_string(),
            })?;
    let mut certified = CertifiedKey::new(chain, signing_key);
    certified.ocsp = ocsp.map(<[u8]>::to_vec);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(ConfigError::KeyMismatch {
                origin: cert_origin.clone(),
            })
        }
        // The provider cannot derive the public key for every key type; nothing to compare then.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(ConfigError::BadCertificate {
                origin: cert_origin.clone(),
                detail: e.to_string(),
            })
        }
    }
    Ok(Arc::new(certified))
}
