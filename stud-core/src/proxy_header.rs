//! Client-address headers: what stud writes to the backend before the client's first byte.
//!
//! Two encodings exist, chosen by [`ClientAddressMode`]:
//!
//! - **write-ip** (`--write-ip`): one octet of the address family as Linux numbers it
//!   (`AF_INET` = 2, `AF_INET6` = 10), then the 4 or 16 address octets in network order. No port.
//!   This is what stud's code wrote (its help text said otherwise); we match the code so existing
//!   backends keep working.
//! - **PROXY v1** (`--write-proxy`): the text line of the HAProxy PROXY protocol, version 1,
//!   `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`. The destination is the *real* local address of
//!   the accepted socket, not the configured listen address (stud wrote `0.0.0.0` on a wildcard).
//!   Mixed families (an IPv4 client on an IPv6 socket, seen as `::ffff:a.b.c.d`) are unmapped to
//!   IPv4 so both addresses share one family; when they still differ the line is `PROXY UNKNOWN`.
//!
//! The encoders write into a caller buffer of [`MAX_HEADER_LEN`] bytes and return the length, so
//! nothing is allocated to build a header.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

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
}

/// The longest header any mode produces (a PROXY v1 TCP6 line is at most 104 bytes; the
/// specification allows 107).
pub const MAX_HEADER_LEN: usize = 107;

/// `AF_INET` as Linux numbers it.
pub const AF_INET_LINUX: u8 = 2;
/// `AF_INET6` as Linux numbers it.
pub const AF_INET6_LINUX: u8 = 10;

/// Encodes the header for `mode` into `out` and returns its length (0 for [`ClientAddressMode::None`]).
///
/// `peer` is the client's address as accepted; `local` is the accepted socket's own address.
///
/// ```
/// use stud_core::{encode_client_address, ClientAddressMode};
/// let mut buf = [0u8; stud_core::MAX_HEADER_LEN];
/// let n = encode_client_address(
///     ClientAddressMode::WriteIp,
///     "192.0.2.7:5555".parse().unwrap(),
///     "192.0.2.1:443".parse().unwrap(),
///     &mut buf,
/// );
/// assert_eq!(&buf[..n], &[2, 192, 0, 2, 7]);
/// ```
pub fn encode_client_address(
    mode: ClientAddressMode,
    peer: SocketAddr,
    local: SocketAddr,
    out: &mut [u8; MAX_HEADER_LEN],
) -> usize {
    match mode {
        ClientAddressMode::None => 0,
        ClientAddressMode::WriteIp => encode_write_ip(peer.ip(), out),
        ClientAddressMode::ProxyV1 => encode_proxy_v1(peer, local, out),
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
mod tests {
    use super::*;

    fn enc(mode: ClientAddressMode, peer: &str, local: &str) -> Vec<u8> {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = encode_client_address(
            mode,
            peer.parse().expect("test address"),
            local.parse().expect("test address"),
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

    #[test]
    fn none_writes_nothing() {
        assert!(enc(ClientAddressMode::None, "10.0.0.1:1", "10.0.0.2:2").is_empty());
    }
}
