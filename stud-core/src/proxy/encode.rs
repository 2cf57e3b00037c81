//! Writing client-address headers: what stud sends the backend before the client's first byte.
//!
//! Two encodings exist, chosen by [`ClientAddressMode`]:
//!
//! - **write-ip** (`--write-ip`): one octet of the address family as Linux numbers it
//!   (`AF_INET` = 2, `AF_INET6` = 10), then the 4 or 16 address octets in network order. No port.
//!   This is what stud's code wrote (its help text said otherwise); we match the code so existing
//!   backends keep working. An IPv4 client on a dual-stack socket (`::ffff:a.b.c.d`) is sent as
//!   IPv4 (family 2, 4 octets), as the PROXY encodings unmap it too.
//! - **PROXY v1** (`--write-proxy`): the text line of the HAProxy PROXY protocol, version 1,
//!   `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`. The destination is the *real* local address of
//!   the accepted socket, not the configured listen address (stud wrote `0.0.0.0` on a wildcard).
//!   Mixed families (an IPv4 client on an IPv6 socket, seen as `::ffff:a.b.c.d`) are unmapped to
//!   IPv4 so both addresses share one family; when they still differ the line is `PROXY UNKNOWN`.
//! - **PROXY v2** (`--write-proxy-v2`): the binary form, version 2, command `PROXY`, TCP over IPv4
//!   or IPv6 (addresses unmapped as for v1; mixed families are sent as `AF_UNSPEC` with no
//!   addresses). After the addresses come TLVs describing the TLS session, as haproxy and hitch
//!   send them: `PP2_TYPE_ALPN` (the protocol agreed, if any), `PP2_TYPE_AUTHORITY` (the SNI host
//!   name, if any) and `PP2_TYPE_SSL` with the `PP2_CLIENT_SSL` flag, `verify` 0 and the
//!   sub-TLVs `PP2_SUBTYPE_SSL_VERSION` (`TLSv1.2`/`TLSv1.3`) and
//!   `PP2_SUBTYPE_SSL_CIPHER` (the OpenSSL name of the suite). With a client certificate, the
//!   `client` field adds `PP2_CLIENT_CERT_SESS`, and `PP2_CLIENT_CERT_CONN` unless the session
//!   was resumed (the certificate was then sent on an earlier connection), and the sub-TLV
//!   `PP2_SUBTYPE_SSL_CN` carries the subject's common name. The specification reads `verify`
//!   as "zero if the client presented a certificate and it was verified, non-zero otherwise":
//!   stud sends 0 for a verified certificate, and 1 when it asked for a certificate
//!   ([`ClientVerifyMode::Optional`](crate::ClientVerifyMode)) and the client sent none. When
//!   no certificate is asked for it sends 0, as haproxy does, since receivers treat any
//!   non-zero value as a failed verification. See [`encode_proxy_v2`]. (The whole client
//!   certificate can follow, with
//!   [`ConfigBuilder::proxy_client_cert`](crate::ConfigBuilder::proxy_client_cert).)
//!
//! The encoders write into a caller buffer of [`MAX_HEADER_LEN`] bytes and return the length, so
//! nothing is allocated to build a header.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::PROXY_V2_SIGNATURE;
use crate::HandshakeInfo;

/// How (and whether) the backend is told the client's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAddressMode {
    /// Send nothing: the backend sees only the client's plaintext.
    #[default]
    None,
    /// stud's `--write-ip`: family octet + raw address octets.
    WriteIp,
    /// HAProxy PROXY protocol version 1 (a text line).
    ProxyV1,
    /// HAProxy PROXY protocol version 2 (binary), with TLVs for ALPN, SNI, the TLS version
    /// and cipher, and the client certificate's flags, verification and CN (the certificate
    /// itself with [`ConfigBuilder::proxy_client_cert`](crate::ConfigBuilder::proxy_client_cert)).
    ProxyV2,
}

/// The longest header any mode produces: a PROXY v2 header for IPv6 (16 + 36 bytes) with the
/// longest ALPN and SNI TLVs (3 + 255 each) and the SSL TLV (3 + 5 + 3 + 7 + 3 + at most 64 for
/// the cipher name + 3 + at most 64 for the client's CN) is 720 bytes. (A PROXY v1 line is at
/// most 107.) The client certificate itself, when asked for, is added outside this buffer.
pub const MAX_HEADER_LEN: usize = 720;

/// `AF_INET` as Linux numbers it.
pub const AF_INET_LINUX: u8 = 2;
/// `AF_INET6` as Linux numbers it.
pub const AF_INET6_LINUX: u8 = 10;

/// Encodes the header for `mode` into `out` and returns its length (0 for [`ClientAddressMode::None`]).
///
/// `peer` is the client's address as accepted; `local` is the accepted socket's own address.
/// `tls` describes the session for the modes that name it (PROXY v2's TLVs); the others ignore
/// it, and `None` leaves the TLVs out.
///
/// ```
/// use stud_core::internal::proxy::{encode_client_address, MAX_HEADER_LEN};
/// use stud_core::ClientAddressMode;
/// let mut buf = [0u8; MAX_HEADER_LEN];
/// let n = encode_client_address(
///     ClientAddressMode::WriteIp,
///     "192.0.2.7:5555".parse().unwrap(),
///     "192.0.2.1:443".parse().unwrap(),
///     None,
///     &mut buf,
/// );
/// assert_eq!(&buf[..n], &[2, 192, 0, 2, 7]);
/// ```
pub fn encode_client_address(
    mode: ClientAddressMode,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<&HandshakeInfo>,
    out: &mut [u8; MAX_HEADER_LEN],
) -> usize {
    match mode {
        ClientAddressMode::None => 0,
        ClientAddressMode::WriteIp => encode_write_ip(unmap(peer).ip(), out),
        ClientAddressMode::ProxyV1 => encode_proxy_v1(peer, local, out),
        ClientAddressMode::ProxyV2 => encode_proxy_v2(peer, local, tls, out),
    }
}

impl ClientAddressMode {
    /// Whether the header names the TLS session, so the session's details are worth gathering.
    pub fn names_the_session(self) -> bool {
        self == ClientAddressMode::ProxyV2
    }
}

/// PROXY v2 TLV types and SSL sub-types stud writes (from the HAProxy specification).
const PP2_TYPE_ALPN: u8 = 0x01;
const PP2_TYPE_AUTHORITY: u8 = 0x02;
pub(super) const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
const PP2_CLIENT_CERT_SESS: u8 = 0x04;

/// Encodes a PROXY v2 header: the 16-byte preamble, the addresses (TCP over IPv4 or IPv6;
/// `AF_UNSPEC` with none when the families differ after unmapping) and, when `tls` is given, the
/// TLVs naming the session (ALPN and authority when present, and the SSL TLV). Values longer
/// than a TLS field can carry (255 bytes for ALPN and SNI, 64 for the cipher name and the
/// client's CN) are left out rather than cut, so the header always fits [`MAX_HEADER_LEN`].
///
/// The SSL TLV's `client` field is `PP2_CLIENT_SSL`, plus `PP2_CLIENT_CERT_SESS` when the client
/// has a certificate and `PP2_CLIENT_CERT_CONN` when it sent it on this connection (not on a
/// resumed session); `verify` is 0, or 1 when a certificate was asked for and none was sent; the
/// sub-TLVs are the version, the client's CN (`PP2_SUBTYPE_SSL_CN`, when it has one) and the
/// cipher.
///
/// ```
/// use stud_core::internal::proxy::{encode_proxy_v2, MAX_HEADER_LEN, PROXY_V2_SIGNATURE};
/// let mut buf = [0u8; MAX_HEADER_LEN];
/// let n = encode_proxy_v2(
///     "192.0.2.7:5555".parse().unwrap(),
///     "192.0.2.1:443".parse().unwrap(),
///     None,
///     &mut buf,
/// );
/// assert_eq!(&buf[..12], &PROXY_V2_SIGNATURE);
/// assert_eq!(&buf[12..16], &[0x21, 0x11, 0, 12]); // v2 PROXY, TCP/IPv4, 12 bytes follow
/// assert_eq!(&buf[16..n], &[192, 0, 2, 7, 192, 0, 2, 1, 0x15, 0xb3, 0x01, 0xbb]);
/// ```
pub fn encode_proxy_v2(
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<&HandshakeInfo>,
    out: &mut [u8; MAX_HEADER_LEN],
) -> usize {
    encode_proxy_v2_with(peer, local, tls, ProxyV2Tlvs::default(), out)
}

/// Which of the session's TLVs a PROXY v2 header carries (the ALPN TLV always does, when a
/// protocol was agreed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProxyV2Tlvs {
    /// `PP2_TYPE_SSL`: the TLS version, cipher, client-certificate flags and CN.
    pub(crate) ssl: bool,
    /// `PP2_TYPE_AUTHORITY`: the server name the client asked for.
    pub(crate) authority: bool,
}

impl Default for ProxyV2Tlvs {
    fn default() -> Self {
        ProxyV2Tlvs {
            ssl: true,
            authority: true,
        }
    }
}

/// [`encode_proxy_v2`] with some of the session's TLVs left out.
pub(crate) fn encode_proxy_v2_with(
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<&HandshakeInfo>,
    tlvs: ProxyV2Tlvs,
    out: &mut [u8; MAX_HEADER_LEN],
) -> usize {
    let mut w = Writer { out, len: 0 };
    w.put(&PROXY_V2_SIGNATURE);
    // Version 2, command PROXY.
    w.put(&[0x21]);
    match (unmap(peer), unmap(local)) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            w.put(&[0x11, 0, 0]);
            w.put(&s.ip().octets());
            w.put(&d.ip().octets());
            w.put(&s.port().to_be_bytes());
            w.put(&d.port().to_be_bytes());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            w.put(&[0x21, 0, 0]);
            w.put(&s.ip().octets());
            w.put(&d.ip().octets());
            w.put(&s.port().to_be_bytes());
            w.put(&d.port().to_be_bytes());
        }
        // AF_UNSPEC: the receiver uses the connection's own addresses.
        _ => w.put(&[0x00, 0, 0]),
    }
    if let Some(info) = tls {
        if let Some(alpn) = info.alpn.as_deref().filter(|a| a.len() <= 255) {
            w.tlv(PP2_TYPE_ALPN, &[alpn]);
        }
        if let Some(sni) = info
            .sni
            .as_deref()
            .filter(|s| tlvs.authority && s.len() <= 255)
        {
            w.tlv(PP2_TYPE_AUTHORITY, &[sni.as_bytes()]);
        }
        if tlvs.ssl {
            let version = info.version.as_str().as_bytes();
            let cipher = info.cipher_suite.as_bytes();
            let cn = client_common_name(info);
            let mut sub = [0u8; 3 + 7 + 3 + 64 + 3 + 64];
            let mut n = 0;
            for (kind, value) in [
                (PP2_SUBTYPE_SSL_VERSION, version),
                (PP2_SUBTYPE_SSL_CN, cn),
                (PP2_SUBTYPE_SSL_CIPHER, cipher),
            ] {
                if value.is_empty() && kind == PP2_SUBTYPE_SSL_CN {
                    continue;
                }
                if value.len() > 64 || n + 3 + value.len() > sub.len() {
                    continue;
                }
                sub[n] = kind;
                sub[n + 1..n + 3].copy_from_slice(&(value.len() as u16).to_be_bytes());
                sub[n + 3..n + 3 + value.len()].copy_from_slice(value);
                n += 3 + value.len();
            }
            let (client, verify) = ssl_client_and_verify(info);
            let verify = verify.to_be_bytes();
            w.tlv(PP2_TYPE_SSL, &[&[client], &verify, &sub[..n]]);
        }
    }
    // The length field counts every byte after the 16-byte preamble.
    let after = (w.len - 16) as u16;
    w.out[14..16].copy_from_slice(&after.to_be_bytes());
    w.len
}

/// The `client` bits and the `verify` field of the SSL TLV.
fn ssl_client_and_verify(info: &HandshakeInfo) -> (u8, u32) {
    let mut client = PP2_CLIENT_SSL;
    if !info.peer_certificates.is_empty() {
        client |= PP2_CLIENT_CERT_SESS;
        if !info.resumed {
            client |= PP2_CLIENT_CERT_CONN;
        }
    }
    let verify = match info.client_verify {
        Some(crate::ClientVerify::NoCertificate) => 1,
        Some(crate::ClientVerify::Verified) | None => 0,
    };
    (client, verify)
}

/// The client certificate's subject CN, if it has one of at most 64 bytes (X.520's bound);
/// empty otherwise.
fn client_common_name(info: &HandshakeInfo) -> &[u8] {
    info.client_common_name()
        .filter(|cn| cn.len() <= 64)
        .map_or(&[], str::as_bytes)
}

/// Appends to a header buffer that is large enough by construction (see [`MAX_HEADER_LEN`]).
struct Writer<'a> {
    out: &'a mut [u8; MAX_HEADER_LEN],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        debug_assert!(end <= MAX_HEADER_LEN, "a header always fits MAX_HEADER_LEN");
        if let Some(dst) = self.out.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        }
    }

    /// One TLV: type, 16-bit length, then the parts of the value in order.
    fn tlv(&mut self, kind: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.put(&[kind]);
        self.put(&(len as u16).to_be_bytes());
        for part in parts {
            self.put(part);
        }
    }
}

fn encode_write_ip(ip: IpAddr, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            out[0] = AF_INET_LINUX;
            out[1..5].copy_from_slice(&v4.octets());
            5
        }
        IpAddr::V6(v6) => {
            out[0] = AF_INET6_LINUX;
            out[1..17].copy_from_slice(&v6.octets());
            17
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

fn encode_proxy_v1(peer: SocketAddr, local: SocketAddr, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    let (src, dst) = (unmap(peer), unmap(local));
    let mut cursor = std::io::Cursor::new(&mut out[..]);
    // The longest line fits MAX_HEADER_LEN by construction, so these writes cannot fail.
    let written = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => write!(
            cursor,
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        (SocketAddr::V6(s), SocketAddr::V6(d)) => write!(
            cursor,
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        ),
        _ => cursor.write_all(b"PROXY UNKNOWN\r\n"),
    };
    debug_assert!(written.is_ok(), "a PROXY v1 line always fits 107 bytes");
    cursor.position() as usize
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn enc(mode: ClientAddressMode, peer: &str, local: &str) -> Vec<u8> {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = encode_client_address(
            mode,
            peer.parse().expect("test address"),
            local.parse().expect("test address"),
            None,
            &mut buf,
        );
        buf[..n].to_vec()
    }

    #[test]
    fn write_ip_v4_is_family_2_then_four_octets() {
        assert_eq!(
            enc(
                ClientAddressMode::WriteIp,
                "10.1.2.3:40000",
                "127.0.0.1:8443"
            ),
            [2, 10, 1, 2, 3]
        );
    }

    #[test]
    fn write_ip_v6_is_family_10_then_sixteen_octets() {
        let got = enc(
            ClientAddressMode::WriteIp,
            "[2001:db8::1]:40000",
            "[::1]:8443",
        );
        let mut want = vec![10u8, 0x20, 0x01, 0x0d, 0xb8];
        want.extend_from_slice(&[0; 11]);
        want.push(1);
        assert_eq!(got, want);
    }

    #[test]
    fn write_ip_unmaps_an_ipv4_client_on_a_dual_stack_socket() {
        assert_eq!(
            enc(
                ClientAddressMode::WriteIp,
                "[::ffff:127.0.0.1]:40000",
                "[::ffff:127.0.0.1]:8443"
            ),
            [2, 127, 0, 0, 1]
        );
    }

    #[test]
    fn proxy_v1_tcp4_uses_the_real_local_address() {
        assert_eq!(
            enc(
                ClientAddressMode::ProxyV1,
                "192.0.2.10:51000",
                "127.0.0.5:8443"
            ),
            b"PROXY TCP4 192.0.2.10 127.0.0.5 51000 8443\r\n"
        );
    }

    #[test]
    fn proxy_v1_tcp6() {
        assert_eq!(
            enc(ClientAddressMode::ProxyV1, "[2001:db8::7]:1", "[::1]:443"),
            b"PROXY TCP6 2001:db8::7 ::1 1 443\r\n"
        );
    }

    #[test]
    fn proxy_v1_unmaps_ipv4_mapped_addresses_on_a_dual_stack_socket() {
        assert_eq!(
            enc(
                ClientAddressMode::ProxyV1,
                "[::ffff:10.0.0.1]:999",
                "[::ffff:10.0.0.2]:443"
            ),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 999 443\r\n"
        );
    }

    #[test]
    fn proxy_v1_mixed_families_is_unknown() {
        assert_eq!(
            enc(
                ClientAddressMode::ProxyV1,
                "10.0.0.1:999",
                "[2001:db8::2]:443"
            ),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn proxy_v1_longest_line_fits() {
        let got = enc(
            ClientAddressMode::ProxyV1,
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        );
        assert!(got.ends_with(b" 65535 65535\r\n"));
        assert!(got.len() <= MAX_HEADER_LEN);
    }

    pub(in crate::proxy) fn v2(peer: &str, local: &str, tls: Option<&HandshakeInfo>) -> Vec<u8> {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = encode_proxy_v2(
            peer.parse().expect("test address"),
            local.parse().expect("test address"),
            tls,
            &mut buf,
        );
        buf[..n].to_vec()
    }

    pub(in crate::proxy) fn info(sni: Option<&str>, alpn: Option<&[u8]>) -> HandshakeInfo {
        HandshakeInfo {
            sni: sni.map(str::to_owned),
            alpn: alpn.map(<[u8]>::to_vec),
            version: crate::TlsVersion::Tls13,
            cipher_suite: "TLS_AES_128_GCM_SHA256",
            resumed: false,
            peer_certificates: Vec::new(),
            client_verify: None,
        }
    }

    const SIG: &[u8] = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a";

    #[test]
    fn proxy_v2_tcp4_without_tls_details() {
        let mut want = SIG.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
        want.extend_from_slice(&[192, 0, 2, 10, 127, 0, 0, 5]);
        want.extend_from_slice(&[0xc7, 0x38, 0x20, 0xfb]); // 51000, 8443
        assert_eq!(v2("192.0.2.10:51000", "127.0.0.5:8443", None), want);
        // The generic entry point writes the same header.
        assert_eq!(
            enc(
                ClientAddressMode::ProxyV2,
                "192.0.2.10:51000",
                "127.0.0.5:8443"
            ),
            want
        );
    }

    #[test]
    fn proxy_v2_tcp6_and_unmapped_and_mixed_families() {
        let got = v2("[2001:db8::7]:1", "[::1]:443", None);
        assert_eq!(&got[12..16], &[0x21, 0x21, 0x00, 36]);
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        src[15] = 7;
        let mut dst = [0u8; 16];
        dst[15] = 1;
        assert_eq!(&got[16..32], &src);
        assert_eq!(&got[32..48], &dst);
        assert_eq!(&got[48..], &[0, 1, 0x01, 0xbb]);

        let mapped = v2("[::ffff:10.0.0.1]:999", "[::ffff:10.0.0.2]:443", None);
        assert_eq!(&mapped[12..16], &[0x21, 0x11, 0x00, 12]);
        assert_eq!(&mapped[16..24], &[10, 0, 0, 1, 10, 0, 0, 2]);

        // Mixed families: AF_UNSPEC, no address block.
        let mixed = v2("10.0.0.1:999", "[2001:db8::2]:443", None);
        assert_eq!(&mixed[12..], &[0x21, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn proxy_v2_tlvs_name_alpn_sni_version_and_cipher() {
        let i = info(Some("example.com"), Some(b"h2"));
        let got = v2("10.0.0.1:1", "10.0.0.2:2", Some(&i));
        let mut tlvs = Vec::new();
        tlvs.extend_from_slice(&[0x01, 0, 2]);
        tlvs.extend_from_slice(b"h2");
        tlvs.extend_from_slice(&[0x02, 0, 11]);
        tlvs.extend_from_slice(b"example.com");
        // SSL: client flags, verify (4 bytes), then two sub-TLVs.
        let mut ssl = vec![0x01, 0, 0, 0, 0];
        ssl.extend_from_slice(&[0x21, 0, 7]);
        ssl.extend_from_slice(b"TLSv1.3");
        ssl.extend_from_slice(&[0x23, 0, 22]);
        ssl.extend_from_slice(b"TLS_AES_128_GCM_SHA256");
        tlvs.extend_from_slice(&[0x20, 0, ssl.len() as u8]);
        tlvs.extend_from_slice(&ssl);
        assert_eq!(&got[28..], &tlvs[..]);
        let after = u16::from_be_bytes([got[14], got[15]]) as usize;
        assert_eq!(after, got.len() - 16);
        assert_eq!(after, 12 + tlvs.len());
    }

    #[test]
    fn proxy_v2_leaves_out_the_ssl_or_authority_tlv_when_told() {
        let i = info(Some("example.com"), Some(b"h2"));
        let encode = |ssl, authority| {
            let mut buf = [0u8; MAX_HEADER_LEN];
            let n = encode_proxy_v2_with(
                "10.0.0.1:1".parse().expect("peer"),
                "10.0.0.2:2".parse().expect("local"),
                Some(&i),
                ProxyV2Tlvs { ssl, authority },
                &mut buf,
            );
            buf[..n].to_vec()
        };
        let alpn = [&[0x01, 0, 2][..], b"h2"].concat();
        let authority = [&[0x02, 0, 11][..], b"example.com"].concat();
        // Only the ALPN and authority TLVs after the addresses.
        let no_ssl = encode(false, true);
        assert_eq!(
            &no_ssl[28..],
            &[alpn.clone(), authority.clone()].concat()[..]
        );
        assert_eq!(
            u16::from_be_bytes([no_ssl[14], no_ssl[15]]) as usize,
            no_ssl.len() - 16
        );
        // ALPN, then the SSL TLV straight away.
        let no_authority = encode(true, false);
        assert_eq!(&no_authority[28..28 + alpn.len()], &alpn[..]);
        assert_eq!(no_authority[28 + alpn.len()], 0x20);
        assert_eq!(encode(true, true), v2("10.0.0.1:1", "10.0.0.2:2", Some(&i)));
        assert_eq!(&encode(false, false)[28..], &alpn[..]);
    }

    #[test]
    fn proxy_v2_leaves_out_absent_values_and_fits_at_its_longest() {
        let bare = v2("10.0.0.1:1", "10.0.0.2:2", Some(&info(None, None)));
        assert_eq!(bare[28], 0x20, "only the SSL TLV");

        let long_name = "a".repeat(255);
        let long_alpn = vec![b'x'; 255];
        let longest = info(Some(&long_name), Some(&long_alpn));
        let got = v2(
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            Some(&longest),
        );
        assert_eq!(
            u16::from_be_bytes([got[14], got[15]]) as usize,
            got.len() - 16
        );
        assert!(got.windows(255).any(|w| w == long_name.as_bytes()));
        // The worst case MAX_HEADER_LEN is sized for: IPv6, 255-byte ALPN and SNI, TLSv1.3, a
        // client CN of 64 bytes and a 64-byte cipher name, exactly.
        let worst = HandshakeInfo {
            cipher_suite: "C123456789012345678901234567890123456789012345678901234567890123",
            peer_certificates: vec![client_cert_named(&"n".repeat(64))],
            client_verify: Some(crate::ClientVerify::Verified),
            ..longest.clone()
        };
        assert_eq!(worst.cipher_suite.len(), 64);
        let got = v2(
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            Some(&worst),
        );
        assert_eq!(got.len(), MAX_HEADER_LEN);
        assert!(got.ends_with(worst.cipher_suite.as_bytes()));

        // A value no TLS field can hold is left out, not cut.
        let too_long = "b".repeat(256);
        let got = v2(
            "10.0.0.1:1",
            "10.0.0.2:2",
            Some(&info(Some(&too_long), None)),
        );
        assert!(!got.windows(256).any(|w| w == too_long.as_bytes()));
        assert_eq!(got[28], 0x20);
    }

    /// A self-signed DER certificate whose subject CN is `cn`.
    fn client_cert_named(cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    /// The SSL TLV's value (client, verify, sub-TLVs) of a header with addresses for IPv4.
    fn ssl_tlv(header: &[u8]) -> &[u8] {
        assert_eq!(
            header[28], 0x20,
            "the SSL TLV comes first without ALPN and SNI"
        );
        let len = u16::from_be_bytes([header[29], header[30]]) as usize;
        &header[31..31 + len]
    }

    #[test]
    fn proxy_v2_client_bits_verify_and_cn_follow_the_client_certificate() {
        let leaf = client_cert_named("client-7");
        let full = HandshakeInfo {
            peer_certificates: vec![leaf.clone()],
            client_verify: Some(crate::ClientVerify::Verified),
            ..info(None, None)
        };
        let got = v2("10.0.0.1:1", "10.0.0.2:2", Some(&full));
        let ssl = ssl_tlv(&got);
        // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS, verify 0.
        assert_eq!(&ssl[..5], &[0x07, 0, 0, 0, 0]);
        let mut subs = vec![0x21, 0, 7];
        subs.extend_from_slice(b"TLSv1.3");
        subs.extend_from_slice(&[0x22, 0, 8]);
        subs.extend_from_slice(b"client-7");
        subs.extend_from_slice(&[0x23, 0, 22]);
        subs.extend_from_slice(b"TLS_AES_128_GCM_SHA256");
        assert_eq!(&ssl[5..], &subs[..]);

        // Resumed: the certificate belongs to the session, not to this connection.
        let resumed = HandshakeInfo {
            resumed: true,
            ..full.clone()
        };
        let got = v2("10.0.0.1:1", "10.0.0.2:2", Some(&resumed));
        assert_eq!(&ssl_tlv(&got)[..5], &[0x05, 0, 0, 0, 0]);

        // Asked for, none sent: no certificate bits, verify non-zero, no CN.
        let none = HandshakeInfo {
            client_verify: Some(crate::ClientVerify::NoCertificate),
            ..info(None, None)
        };
        let got = v2("10.0.0.1:1", "10.0.0.2:2", Some(&none));
        let ssl = ssl_tlv(&got);
        assert_eq!(&ssl[..5], &[0x01, 0, 0, 0, 1]);
        assert_eq!(ssl[5], 0x21);
        assert!(!ssl.windows(3).any(|w| w[0] == 0x22 && w[1] == 0));

        // A CN longer than X.520 allows is left out, not cut.
        let long = HandshakeInfo {
            peer_certificates: vec![client_cert_named(&"x".repeat(65))],
            ..full
        };
        let got = v2("10.0.0.1:1", "10.0.0.2:2", Some(&long));
        assert!(!got.windows(65).any(|w| w == "x".repeat(65).as_bytes()));
        assert_eq!(ssl_tlv(&got)[0], 0x07);
    }

    #[test]
    fn none_writes_nothing() {
        assert!(enc(ClientAddressMode::None, "10.0.0.1:1", "10.0.0.2:2").is_empty());
    }
}
