//! The client's whole certificate in the PROXY v2 header
//! ([`ConfigBuilder::proxy_client_cert`](crate::ConfigBuilder::proxy_client_cert)).
//!
//! Contract: [`with_client_cert`] takes a finished PROXY v2 header (as
//! [`encode_proxy_v2`](super::encode_proxy_v2) writes it, its SSL TLV included) and the leaf
//! certificate (DER), and returns the header with two additions:
//! - the sub-TLV `PP2_SUBTYPE_SSL_CLIENT_CERT` (0x28) at the end of the `PP2_TYPE_SSL` TLV,
//!   holding the DER certificate. The published specification defines SSL sub-types up to
//!   0x27 (`PP2_SUBTYPE_SSL_SIG_SCHEME`) and not this one; a receiver that does not know it
//!   skips it, as the specification requires of unknown TLVs;
//! - the custom TLV 0xE0 after every other TLV, holding the certificate as PEM
//!   (`-----BEGIN CERTIFICATE-----`, base64 in lines of 64, `-----END CERTIFICATE-----\n`),
//!   as hitch's `proxy-client-cert` sends it.
//!
//! Both lengths and the header's own length are 16-bit: a certificate too large for them (a DER
//! certificate of more than about 27 KiB) is left out and the header goes unchanged — a
//! truncated certificate would be worse than none. A header that is not a PROXY v2 header with
//! an SSL TLV also goes unchanged. The header is built once per connection, is at most 64 KiB
//! and, like the shorter headers, is held until the backend takes it.

use super::encode::PP2_TYPE_SSL;
use super::PROXY_V2_SIGNATURE;
use crate::HandshakeInfo;

/// Sub-TLV of `PP2_TYPE_SSL`: the client certificate, DER.
const PP2_SUBTYPE_SSL_CLIENT_CERT: u8 = 0x28;
/// The first custom TLV type: the client certificate, PEM (hitch).
const PP2_TYPE_CLIENT_CERT_PEM: u8 = 0xE0;

/// The header for the backend: `header` as given, or with the client's certificate added when
/// the configuration asks for it and the client sent one.
pub(crate) fn finish(
    config: &crate::Config,
    header: &[u8],
    info: Option<&HandshakeInfo>,
) -> Box<[u8]> {
    let leaf = info
        .filter(|_| config.proxy_client_cert)
        .and_then(|i| i.peer_certificates.first());
    match leaf.and_then(|leaf| with_client_cert(header, leaf)) {
        Some(longer) => longer.into_boxed_slice(),
        None => header.into(),
    }
}

/// `header` with the certificate's TLVs added, or `None` when they do not fit or the header has
/// no SSL TLV.
pub(crate) fn with_client_cert(header: &[u8], leaf: &[u8]) -> Option<Vec<u8>> {
    if header.len() < 16 || header[..12] != PROXY_V2_SIGNATURE {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if header.len() != 16 + declared {
        return None;
    }
    let addresses = match header[13] {
        0x11 => 12,
        0x21 => 36,
        0x00 => 0,
        _ => return None,
    };
    // Find the SSL TLV.
    let mut at = 16 + addresses;
    let ssl = loop {
        let kind = *header.get(at)?;
        let len = usize::from(u16::from_be_bytes([
            *header.get(at + 1)?,
            *header.get(at + 2)?,
        ]));
        let end = at + 3 + len;
        if end > header.len() {
            return None;
        }
        if kind == PP2_TYPE_SSL {
            break at..end;
        }
        at = end;
    };
    let pem = pem_certificate(leaf);
    let ssl_len = ssl.len() - 3 + 3 + leaf.len();
    let total = header.len() + 3 + leaf.len() + 3 + pem.len();
    if ssl_len > usize::from(u16::MAX)
        || pem.len() > usize::from(u16::MAX)
        || total - 16 > usize::from(u16::MAX)
    {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&header[..ssl.start]);
    out.push(PP2_TYPE_SSL);
    out.extend_from_slice(&(ssl_len as u16).to_be_bytes());
    out.extend_from_slice(&header[ssl.start + 3..ssl.end]);
    out.push(PP2_SUBTYPE_SSL_CLIENT_CERT);
    out.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
    out.extend_from_slice(leaf);
    out.extend_from_slice(&header[ssl.end..]);
    out.push(PP2_TYPE_CLIENT_CERT_PEM);
    out.extend_from_slice(&(pem.len() as u16).to_be_bytes());
    out.extend_from_slice(&pem);
    let after = (out.len() - 16) as u16;
    out[14..16].copy_from_slice(&after.to_be_bytes());
    Some(out)
}

/// A DER certificate as PEM, the way OpenSSL writes it.
pub(crate) fn pem_certificate(der: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 64 + 60);
    out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_matches_the_known_base64_of_short_inputs_and_wraps_at_64() {
        let pem = |der: &[u8]| String::from_utf8(pem_certificate(der)).expect("ASCII");
        let body = |der: &[u8]| {
            pem(der)
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .join("")
        };
        // RFC 4648 §10 test vectors.
        for (input, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(body(input), want);
        }
        let long = pem(&[0xffu8; 100]);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 136 - 128);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
        assert!(long.ends_with("-----END CERTIFICATE-----\n"));
        // The PEM decodes back to the DER rustls' own parser reads.
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let back = <rustls::pki_types::CertificateDer<'_> as rustls::pki_types::pem::PemObject>::from_pem_slice(&pem_certificate(&der))
            .expect("PEM parses");
        assert_eq!(back.as_ref(), &der[..]);
    }

    #[test]
    fn a_header_without_an_ssl_tlv_or_with_a_bad_length_is_left_alone() {
        let mut buf = [0u8; crate::proxy::MAX_HEADER_LEN];
        let n = crate::proxy::encode_proxy_v2(
            "10.0.0.1:1".parse().expect("addr"),
            "10.0.0.2:2".parse().expect("addr"),
            None,
            &mut buf,
        );
        assert_eq!(with_client_cert(&buf[..n], b"cert"), None);
        assert_eq!(with_client_cert(&buf[..n - 1], b"cert"), None);
        assert_eq!(with_client_cert(b"PROXY TCP4 ...\r\n", b"cert"), None);
    }

    #[test]
    fn a_certificate_too_large_for_16_bit_lengths_is_left_out() {
        let mut buf = [0u8; crate::proxy::MAX_HEADER_LEN];
        let info = HandshakeInfo {
            sni: None,
            alpn: None,
            version: crate::TlsVersion::Tls13,
            cipher_suite: "TLS_AES_128_GCM_SHA256",
            resumed: false,
            peer_certificates: Vec::new(),
            client_verify: None,
        };
        let n = crate::proxy::encode_proxy_v2(
            "10.0.0.1:1".parse().expect("addr"),
            "10.0.0.2:2".parse().expect("addr"),
            Some(&info),
            &mut buf,
        );
        assert!(with_client_cert(&buf[..n], &[1u8; 20_000]).is_some());
        assert_eq!(with_client_cert(&buf[..n], &[1u8; 40_000]), None);
    }
}
