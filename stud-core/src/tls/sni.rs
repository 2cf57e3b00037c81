//! Choosing a certificate for each handshake.
//!
//! With one certificate, it is served whatever the client asks (as stud always did). With several,
//! the choice follows the client's server name (SNI): a certificate whose names cover it and whose
//! key can sign with a scheme the client offers — so an RSA and an ECDSA certificate for the same
//! name serve old and new clients alike. The most specific name wins whatever the order of the
//! certificates: an exact name (`www.example.test`) before a wildcard (`*.example.test`), and among
//! equals the one configured first. A name no certificate covers, or no SNI at all, gets the first
//! certificate configured that can sign for the client — unless the configuration is strict about
//! names (`sni_strict`), where a name no certificate covers fails the handshake (no SNI still gets
//! the default).
//!
//! The names are read once per configuration into a [`NameIndex`]: the certificates' DNS names
//! (subjectAltName, as a TLS client checks them; RFC 6125) in a hash map of exact names and one of
//! wildcard parents, compared without case and without a trailing dot. A handshake costs two
//! lookups whatever the number of certificates, including for a name no certificate covers.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

/// The longest DNS name (RFC 1035), without its trailing dot.
const MAX_NAME: usize = 253;

/// Every certificate's DNS names, by name; values are indexes into the configuration's list.
#[derive(Debug, Default)]
pub(crate) struct NameIndex {
    /// `www.example.test` → the certificates naming it exactly, in configuration order.
    exact: HashMap<Box<str>, Vec<usize>>,
    /// `example.test` → the certificates holding `*.example.test`, in configuration order.
    wildcard: HashMap<Box<str>, Vec<usize>>,
}

/// `name` in lower case without its trailing dot, in `buf`; `None` when it is not a DNS name
/// stud could have indexed (too long, empty, not ASCII).
fn normalize<'b>(name: &str, buf: &'b mut [u8; MAX_NAME]) -> Option<&'b str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME || !name.is_ascii() {
        return None;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

impl NameIndex {
    /// Indexes the DNS names of each identity's end-entity certificate. A certificate that does
    /// not parse, or names no DNS name, is indexed under no name (it can still be the default).
    pub(crate) fn new(identities: &[Arc<CertifiedKey>]) -> NameIndex {
        let mut index = NameIndex::default();
        for (i, identity) in identities.iter().enumerate() {
            let Some(der) = identity.cert.first() else {
                continue;
            };
            let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
                continue;
            };
            for name in cert.valid_dns_names() {
                index.add(i, name);
            }
        }
        index
    }

    /// Indexes `name` (exact, or `*.` and its parent) for identity `i`.
    fn add(&mut self, i: usize, name: &str) {
        let mut buf = [0u8; MAX_NAME];
        let Some(name) = normalize(name, &mut buf) else {
            return;
        };
        let (map, key) = match name.strip_prefix("*.") {
            Some(parent) => (&mut self.wildcard, parent),
            None => (&mut self.exact, name),
        };
        let list = map.entry(key.into()).or_default();
        if !list.contains(&i) {
            list.push(i);
        }
    }

    /// An index of one identity holding `names`.
    #[cfg(test)]
    pub(crate) fn for_tests(names: &[&str]) -> NameIndex {
        let mut index = NameIndex::default();
        for name in names {
            index.add(0, name);
        }
        index
    }

    /// The certificates covering `name`, most specific first: exact names, then wildcards (which
    /// stand for one whole leftmost label, as webpki and RFC 6125 §6.4.3 have it).
    pub(crate) fn candidates(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        let mut buf = [0u8; MAX_NAME];
        let (exact, wild) = match normalize(name, &mut buf) {
            Some(name) => (
                self.exact.get(name),
                name.split_once('.')
                    .filter(|(label, _)| !label.is_empty())
                    .and_then(|(_, parent)| self.wildcard.get(parent)),
            ),
            None => (None, None),
        };
        exact
            .into_iter()
            .chain(wild)
            .flat_map(|list| list.iter().copied())
    }

    /// Whether any certificate covers `name`.
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.candidates(name).next().is_some()
    }
}

/// Serves one of several certificates, by SNI and signature scheme.
#[derive(Debug)]
pub(crate) struct SniResolver {
    /// In configuration order; the first is the default.
    identities: Vec<Arc<CertifiedKey>>,
    names: Arc<NameIndex>,
    /// For a client whose name no certificate covers: the first identity of each distinct set of
    /// signature schemes, in configuration order. Identities with the same schemes suit the same
    /// clients (as far as their keys go), so the default is found among these few.
    defaults: Vec<usize>,
    /// Whether this server speaks TLS 1.3 (where the suite does not depend on the key type).
    tls13: bool,
    /// Refuse a server name no certificate covers rather than serve the default.
    strict: bool,
}

/// TLS 1.2 ECDHE suites by the key type that authenticates them (the ones stud offers).
const ECDHE_ECDSA_SUITES: [u16; 3] = [0xC02B, 0xC02C, 0xCCA9];
const ECDHE_RSA_SUITES: [u16; 3] = [0xC02F, 0xC030, 0xCCA8];
const TLS13_SUITES: [u16; 3] = [0x1301, 0x1302, 0x1303];

/// Every signature scheme a key of stud's may sign with, to tell keys apart by what they sign.
const SCHEMES: [SignatureScheme; 10] = [
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
];

/// Which of [`SCHEMES`] `identity`'s key signs with, as a bit set (plus its algorithm, which
/// decides the TLS 1.2 suites).
fn profile(identity: &CertifiedKey) -> (u16, rustls::SignatureAlgorithm) {
    let schemes = SCHEMES
        .iter()
        .enumerate()
        .filter(|(_, s)| identity.key.choose_scheme(&[**s]).is_some())
        .fold(0u16, |set, (i, _)| set | 1 << i);
    (schemes, identity.key.algorithm())
}

impl SniResolver {
    pub(crate) fn new(
        identities: Vec<Arc<CertifiedKey>>,
        names: Arc<NameIndex>,
        tls13: bool,
        strict: bool,
    ) -> Self {
        let mut seen = Vec::new();
        let mut defaults = Vec::new();
        for (i, identity) in identities.iter().enumerate() {
            let p = profile(identity);
            if !seen.contains(&p) {
                seen.push(p);
                defaults.push(i);
            }
        }
        SniResolver {
            identities,
            names,
            defaults,
            tls13,
            strict,
        }
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
        // Called per candidate per handshake: scan the offer in place, allocating nothing.
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

    fn first_suiting(
        &self,
        mut indexes: impl Iterator<Item = usize>,
        hello: &ClientHello<'_>,
    ) -> Option<&Arc<CertifiedKey>> {
        indexes.find_map(|i| self.identities.get(i).filter(|id| self.suits(id, hello)))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            if let Some(id) = self.first_suiting(self.names.candidates(name), &hello) {
                return Some(id.clone());
            }
            if self.strict {
                // No certificate for this name that this client can verify: none at all, and
                // the handshake fails (another name's certificate would be wrong for it).
                return None;
            }
        }
        self.first_suiting(self.defaults.iter().copied(), &hello)
            .or_else(|| self.identities.first())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(names: &[&[&str]]) -> NameIndex {
        let mut index = NameIndex::default();
        for (i, list) in names.iter().enumerate() {
            for name in *list {
                index.add(i, name);
            }
        }
        index
    }

    fn found(index: &NameIndex, name: &str) -> Vec<usize> {
        index.candidates(name).collect()
    }

    #[test]
    fn an_exact_name_comes_before_a_wildcard_configured_earlier() {
        let ix = index(&[&["*.example.test"], &["www.example.test"]]);
        assert_eq!(found(&ix, "www.example.test"), [1, 0]);
        assert_eq!(found(&ix, "api.example.test"), [0]);
    }

    #[test]
    fn names_match_without_case_or_trailing_dot() {
        let ix = index(&[&["WWW.Example.test"], &["*.Wild.TEST"]]);
        assert_eq!(found(&ix, "www.example.TEST."), [0]);
        assert_eq!(found(&ix, "A.wild.test"), [1]);
    }

    #[test]
    fn a_wildcard_stands_for_one_leftmost_label_only() {
        let ix = index(&[&["*.example.test"]]);
        assert!(ix.covers("a.example.test"));
        assert!(!ix.covers("example.test"));
        assert!(!ix.covers("a.b.example.test"));
        assert!(!ix.covers(".example.test"));
        assert!(!ix.covers(""));
        assert!(!ix.covers(&"a".repeat(300)));
    }
}
