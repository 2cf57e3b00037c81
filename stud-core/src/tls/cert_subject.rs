//! The subject's common name (CN) of a DER certificate, by a small bounded DER walk.
//!
//! Contract: [`common_name`] reads only inside its input, never recurses, never allocates, and
//! returns `None` for anything it does not understand (truncated or malformed DER, indefinite
//! lengths, a subject without a CN, a CN in a string type other than UTF8String,
//! PrintableString, IA5String or an ASCII-only TeletexString). With several CNs, the first in the
//! subject wins (as OpenSSL's lookup by NID). The certificate has been verified by the time
//! stud asks, but nothing here relies on that.

/// DER tags used below.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;

/// The OID 2.5.4.3 (id-at-commonName), content octets.
const CN_OID: [u8; 3] = [0x55, 0x04, 0x03];

/// One DER element: its tag and contents; the rest of the input after it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // High-tag-number form (low five bits all set) is never used by the fields read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length (not DER); more than 4 octets is no certificate.
        if count == 0 || count > 4 {
            return None;
        }
        let (octets, after) = rest.split_at_checked(count)?;
        rest = after;
        octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

/// The contents of an element that must carry `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, contents, rest) = element(input)?;
    (t == tag).then_some((contents, rest))
}

/// The subject CN of the DER certificate `cert`, as text.
pub(crate) fn common_name(cert: &[u8]) -> Option<&str> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, absent for v1 certificates.
    if let Some((CONTEXT_0, _, after)) = element(rest) {
        rest = after;
    }
    // serialNumber, signature, issuer, validity: skipped whatever they hold.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (mut rdns, _) = expect(rest, SEQUENCE)?;
    while !rdns.is_empty() {
        let (mut set, after) = expect(rdns, SET)?;
        rdns = after;
        while !set.is_empty() {
            let (attribute, after) = expect(set, SEQUENCE)?;
            set = after;
            let (oid, value) = expect(attribute, OID)?;
            if oid != CN_OID {
                continue;
            }
            let (tag, text, _) = element(value)?;
            return match tag {
                UTF8_STRING => std::str::from_utf8(text).ok(),
                PRINTABLE_STRING | IA5_STRING | TELETEX_STRING if text.is_ascii() => {
                    std::str::from_utf8(text).ok()
                }
                _ => None,
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["client.test".into()]).expect("params");
        params.distinguished_name = dn;
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn finds_the_cn_among_other_attributes() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "NL");
        dn.push(rcgen::DnType::OrganizationName, "Example Org");
        dn.push(rcgen::DnType::CommonName, "client-7 ünïcode");
        let der = cert_with(dn);
        assert_eq!(common_name(&der), Some("client-7 ünïcode"));
    }

    #[test]
    fn printable_string_cn_is_read() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::PrintableString("svc-a".try_into().expect("printable")),
        );
        assert_eq!(common_name(&cert_with(dn)), Some("svc-a"));
    }

    #[test]
    fn a_subject_without_cn_gives_none() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "No CN here");
        assert_eq!(common_name(&cert_with(dn)), None);
    }

    #[test]
    fn every_truncation_and_every_single_byte_corruption_is_handled_without_panic() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "walker");
        let der = cert_with(dn);
        assert_eq!(common_name(&der), Some("walker"));
        for cut in 0..der.len() {
            // A prefix is never a whole certificate: the outer length runs past it.
            assert_eq!(common_name(&der[..cut]), None, "prefix of {cut} bytes");
        }
        let mut bent = der.clone();
        for i in 0..der.len() {
            for value in [0x00, 0x80, 0x84, 0xff, der[i] ^ 0x01] {
                bent[i] = value;
                let _ = common_name(&bent);
            }
            bent[i] = der[i];
        }
    }

    #[test]
    fn lengths_past_the_input_and_indefinite_lengths_are_refused() {
        assert_eq!(element(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(element(&[0x30, 0x80, 0, 0]), None);
        assert_eq!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(element(&[0x1f, 0x01, 0]), None);
        assert_eq!(
            element(&[0x04, 0x81, 0x01, 9]),
            Some((0x04, &[9u8][..], &[][..]))
        );
    }
}
