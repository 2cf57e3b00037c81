//! Choosing a certificate for each handshake.
//!
//! With one certificate, it is served whatever the client asks (as stud always did). With several,
//! the choice follows the client's server name (SNI): a certificate whose names cover it (exact or
//! wildcard, as a TLS client would check) and whose key can sign with a scheme the client offers —
//! so an RSA and an ECDSA certificate for the same name serve old and new clients alike. A name
//! no certificate covers, or no SNI at all, gets the first certificate configured that can sign
//! for the client — unless the configuration is strict about names (`sni_strict`), where a name
//! no certificate covers fails the handshake (no SNI still gets the default).

use std::sync::Arc;

use rustls::pki_types::{DnsName, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Serves one of several certificates, by SNI and signature scheme.
#[derive(Debug)]
pub(crate) struct SniResolver {
    /// In configuration order; the first is the default.
    identities: Vec<Arc<CertifiedKey>>,
    /// Whether this server speaks TLS 1.3 (where the suite does not depend on the key type).
    tls13: bool,
    /// Refuse a server name no certificate covers rather than serve the default.
    strict: bool,
}

/// TLS 1.2 ECDHE suites by the key type that authenticates them (the ones stud offers).
const ECDHE_ECDSA_SUITES: [u16; 3] = [0xC02B, 0xC02C, 0xCCA9];
const ECDHE_RSA_SUITES: [u16; 3] = [0xC02F, 0xC030, 0xCCA8];
const TLS13_SUITES: [u16; 3] = [0x1301, 0x1302, 0x1303];

impl SniResolver {
    pub(crate) fn new(identities: Vec<Arc<CertifiedKey>>, tls13: bool, strict: bool) -> Self {
        SniResolver {
            identities,
            tls13,
            strict,
        }
    }

    fn covers(identity: &CertifiedKey, name: &ServerName<'_>) -> bool {
        let Some(der) = identity.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(der)
            .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
    }

    /// Whether `identity` can complete a handshake with this client: its key signs with a scheme
    /// the client accepts and, when the handshake will be TLS 1.2, some offered suite is
    /// authenticated by that key type.
    fn suits(&self, identity: &CertifiedKey, hello: &ClientHello<'_>) -> bool {
        if identity
            .key
            .choose_scheme(hello.signature_schemes())
            .is_none()
        {
            return false;
        }
        // Called per certificate per handshake: scan the offer in place, allocating nothing.
        let offers = |wanted: &[u16]| {
            hello
                .cipher_suites()
                .iter()
                .any(|s| wanted.contains(&u16::from(*s)))
        };
        if self.tls13 && offers(&TLS13_SUITES) {
            return true;
        }
        offers(match identity.key.algorithm() {
            rustls::SignatureAlgorithm::RSA => &ECDHE_RSA_SUITES,
            _ => &ECDHE_ECDSA_SUITES,
        })
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello
            .server_name()
            .and_then(|n| DnsName::try_from(n.to_owned()).ok())
            .map(ServerName::DnsName);
        if let Some(name) = &name {
            let by_name = self
                .identities
                .iter()
                .find(|id| Self::covers(id, name) && self.suits(id, &hello));
            if let Some(id) = by_name {
                return Some(id.clone());
            }
            if self.strict {
                // No certificate for this name that this client can verify: none at all, and
                // the handshake fails (another name's certificate would be wrong for it).
                return None;
            }
        }
        self.identities
            .iter()
            .find(|id| self.suits(id, &hello))
            .or_else(|| self.identities.first())
            .cloned()
    }
}
