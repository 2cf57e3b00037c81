//! The few certificate fields stud reads, by a small bounded DER walk (no X.509 library): the
//! subject's common name (CN) of a client certificate, for the backend, and a certificate's
//! notAfter, for the metrics; and the DER element reader the OCSP check uses too.
//!
//! Contract: every function reads only inside its input, never recurses, never allocates, and
//! returns `None` for anything it does not understand (truncated or malformed DER, indefinite
//! lengths, a subject without a CN, a CN in a string type other than UTF8String,
//! PrintableString, IA5String or an ASCII-only TeletexString, a time that is neither UTCTime
//! nor GeneralizedTime). With several CNs, the first in the subject wins (as OpenSSL's lookup
//! by NID). Nothing here relies on the certificate having been verified.

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
pub(crate) fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
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

/// The notAfter of a DER certificate, in seconds since the Unix epoch; `None` if the DER is not
/// an X.509 certificate this walker understands.
pub fn certificate_not_after(der: &[u8]) -> Option<i64> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&CONTEXT_0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (tag, validity, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    parse_time(tag, time)
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match tag {
        0x17 if text.len() == 13 => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 15 => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (h, m, s) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn not_after_is_read_from_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["x.test".into()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("certificate");
        let expected = days_from_civil(2031, 7, 4) * 86_400;
        assert_eq!(certificate_not_after(cert.der()), Some(expected));
        // Truncated or foreign input is refused, never a panic.
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = certificate_not_after(&der[..cut]);
        }
        assert_eq!(certificate_not_after(b"\x30\x84\xff\xff\xff\xff"), None);
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 29), 20_786);
        assert_eq!(parse_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(0x18, b"20500101000000Z"), Some(2_524_608_000));
        assert_eq!(parse_time(0x17, b"501301000000Z"), None);
    }
}
