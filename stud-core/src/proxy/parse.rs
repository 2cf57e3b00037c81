//! Reading the PROXY header a load balancer sends before the client's bytes
//! ([`ConfigBuilder::accept_proxy_header`](crate::ConfigBuilder::accept_proxy_header)):
//! version 1 (text) or 2 (binary), decided at every prefix, never read past its end.
//! The rules are on [`parse_proxy_header`].

use std::net::{IpAddr, SocketAddr};

use super::PROXY_V2_SIGNATURE;

/// The longest PROXY header stud accepts from a load balancer: a v1 line is at most 107 bytes;
/// a v2 header is 16 bytes plus what its length field says, which stud caps here (addresses
/// take 216 at most; the rest is TLVs, which stud skips).
pub const MAX_INCOMING_PROXY_HEADER: usize = 4096;

/// The outcome of [`parse_proxy_header`] on the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyHeaderParse {
    /// A prefix of a valid header: wait for more bytes.
    Incomplete,
    /// A complete header of `len` bytes (the TLS bytes follow it). `addresses` is the client's
    /// and the address it connected to as the load balancer saw them; `None` for a header that
    /// names none (v1 `UNKNOWN`, v2 `LOCAL`, or a family other than TCP over IPv4/IPv6): the
    /// connection's own addresses stand.
    Complete {
        /// Header bytes to skip.
        len: usize,
        /// (client, destination), when the header names them.
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
    /// Not a PROXY header, or a malformed one: close the connection.
    Invalid(&'static str),
}

/// Parses a PROXY protocol header (version 1 or 2) at the start of `buf`, the bytes a load
/// balancer sends before the client's. Never reads past the header. Bytes that cannot begin
/// either signature are invalid at once; after the signature, a v1 line is judged at its CRLF
/// (or at 107 bytes without one) and a v2 header once its 16-byte preamble and then its body
/// have arrived, so a stalled prefix waits for the caller's deadline. Rules, from the HAProxy
/// specification: a v1 line is `PROXY TCP4|TCP6 src dst sport dport\r\n` or
/// `PROXY UNKNOWN…\r\n`, at most 107 bytes with its CRLF, with addresses of the named family and
/// ports without leading zeros; a v2 header has version 2, command `LOCAL` (addresses ignored)
/// or `PROXY`, a known address family (unspecified, IPv4, IPv6, UNIX) and transport
/// (unspecified, stream, datagram), and at most [`MAX_INCOMING_PROXY_HEADER`] bytes.
pub fn parse_proxy_header(buf: &[u8]) -> ProxyHeaderParse {
    const V1: &[u8] = b"PROXY ";
    let n = buf.len().min(PROXY_V2_SIGNATURE.len());
    if buf[..n] == PROXY_V2_SIGNATURE[..n] {
        if n < PROXY_V2_SIGNATURE.len() {
            return ProxyHeaderParse::Incomplete;
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(V1.len());
    if buf[..n] == V1[..n] {
        if n < V1.len() {
            return ProxyHeaderParse::Incomplete;
        }
        return parse_v1(buf);
    }
    ProxyHeaderParse::Invalid("the connection does not start with a PROXY header")
}

fn parse_v1(buf: &[u8]) -> ProxyHeaderParse {
    const MAX_V1: usize = 107;
    // The CR can be at most at index 105: the LF after it is the 107th byte.
    let window = &buf[..buf.len().min(MAX_V1 - 1)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if buf.len() >= MAX_V1 - 1 {
            ProxyHeaderParse::Invalid("PROXY v1 line longer than 107 bytes")
        } else if window.contains(&b'\n') {
            ProxyHeaderParse::Invalid("PROXY v1 line ends without CR")
        } else {
            ProxyHeaderParse::Incomplete
        };
    };
    match buf.get(cr + 1) {
        None => return ProxyHeaderParse::Incomplete,
        Some(b'\n') => {}
        Some(_) => return ProxyHeaderParse::Invalid("PROXY v1 line: CR without LF"),
    }
    let len = cr + 2;
    let Ok(line) = std::str::from_utf8(&buf[6..cr]) else {
        return ProxyHeaderParse::Invalid("PROXY v1 line is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.first() == Some(&"UNKNOWN") {
        return ProxyHeaderParse::Complete {
            len,
            addresses: None,
        };
    }
    let [proto, src, dst, sport, dport] = fields[..] else {
        return ProxyHeaderParse::Invalid("PROXY v1 line: expected 5 fields after PROXY");
    };
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return ProxyHeaderParse::Invalid(
                "PROXY v1 line: protocol is not TCP4, TCP6 or UNKNOWN",
            )
        }
    };
    let ip = |s: &str| -> Option<IpAddr> {
        let ip: IpAddr = s.parse().ok()?;
        (ip.is_ipv6() == v6).then_some(ip)
    };
    let port = |s: &str| -> Option<u16> {
        let ok = !s.is_empty()
            && s.len() <= 5
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        ok.then(|| s.parse().ok()).flatten()
    };
    match (ip(src), ip(dst), port(sport), port(dport)) {
        (Some(s), Some(d), Some(sp), Some(dp)) => ProxyHeaderParse::Complete {
            len,
            addresses: Some((SocketAddr::new(s, sp), SocketAddr::new(d, dp))),
        },
        _ => ProxyHeaderParse::Invalid("PROXY v1 line: bad address or port"),
    }
}

fn parse_v2(buf: &[u8]) -> ProxyHeaderParse {
    if buf.len() < 16 {
        return ProxyHeaderParse::Incomplete;
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return ProxyHeaderParse::Invalid("PROXY v2 header: version is not 2");
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_INCOMING_PROXY_HEADER {
        return ProxyHeaderParse::Invalid("PROXY v2 header longer than stud accepts");
    }
    if buf.len() < len {
        return ProxyHeaderParse::Incomplete;
    }
    let body = &buf[16..len];
    let (family, transport) = (buf[13] >> 4, buf[13] & 0x0f);
    // A LOCAL header's address block is ignored, whatever its family byte says.
    if command == 0x1 && (family > 3 || transport > 2) {
        return ProxyHeaderParse::Invalid("PROXY v2 header: unknown address family or transport");
    }
    let addresses = match (command, buf[13]) {
        // LOCAL: the balancer's own connection (a health check); its addresses are not a client's.
        (0x0, _) => None,
        (0x1, 0x11) if body.len() >= 12 => {
            let ip = |o: usize| IpAddr::from([body[o], body[o + 1], body[o + 2], body[o + 3]]);
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        (0x1, 0x21) if body.len() >= 36 => {
            let ip = |o: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[o..o + 16]);
                IpAddr::from(octets)
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        (0x1, 0x11 | 0x21) => {
            return ProxyHeaderParse::Invalid("PROXY v2 header: too short for its addresses")
        }
        // UNSPEC, UDP or UNIX: nothing stud can use; the connection's own addresses stand.
        (0x1, _) => None,
        _ => return ProxyHeaderParse::Invalid("PROXY v2 header: unknown command"),
    };
    ProxyHeaderParse::Complete { len, addresses }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::encode::tests::{info, v2};
    use crate::proxy::encode::{encode_client_address, MAX_HEADER_LEN};
    use crate::ClientAddressMode;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn complete(len: usize, src: &str, dst: &str) -> ProxyHeaderParse {
        ProxyHeaderParse::Complete {
            len,
            addresses: Some((sa(src), sa(dst))),
        }
    }

    #[test]
    fn incoming_v1_lines_are_parsed_and_decided_at_every_prefix() {
        let line = b"PROXY TCP4 192.0.2.10 127.0.0.5 51000 8443\r\n";
        let mut with_tls = line.to_vec();
        with_tls.extend_from_slice(&[0x16, 0x03, 0x01]);
        for cut in 0..line.len() {
            assert_eq!(
                parse_proxy_header(&line[..cut]),
                ProxyHeaderParse::Incomplete,
                "prefix of {cut} bytes"
            );
        }
        let want = complete(line.len(), "192.0.2.10:51000", "127.0.0.5:8443");
        assert_eq!(parse_proxy_header(line), want);
        assert_eq!(
            parse_proxy_header(&with_tls),
            want,
            "TLS bytes after it are not read"
        );
        assert_eq!(
            parse_proxy_header(b"PROXY TCP6 2001:db8::7 ::1 1 443\r\n"),
            complete(34, "[2001:db8::7]:1", "[::1]:443")
        );
        assert_eq!(
            parse_proxy_header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
            ProxyHeaderParse::Complete {
                len: 35,
                addresses: None
            }
        );
        // Our own encoder's lines read back.
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = encode_client_address(
            ClientAddressMode::ProxyV1,
            sa("[2001:db8::9]:65535"),
            sa("[::1]:1"),
            None,
            &mut buf,
        );
        assert_eq!(
            parse_proxy_header(&buf[..n]),
            complete(n, "[2001:db8::9]:65535", "[::1]:1")
        );
    }

    #[test]
    fn incoming_v1_mistakes_are_invalid() {
        for bad in [
            &b"\x16\x03\x01\x02\x00"[..],
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 192.0.2.10 127.0.0.5 51000\r\n",
            b"PROXY TCP4 2001:db8::1 127.0.0.5 1 2\r\n",
            b"PROXY TCP6 10.0.0.1 ::1 1 2\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 01 2\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 -1 2\r\n",
            b"PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\rX",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n",
            b"PROXY TCP4  10.0.0.1 10.0.0.2 1 2\r\n",
        ] {
            assert!(
                matches!(parse_proxy_header(bad), ProxyHeaderParse::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(
            parse_proxy_header(&long),
            ProxyHeaderParse::Invalid(_)
        ));
        // 107 bytes with the CRLF is the most the specification allows; 108 is too long.
        for (total, ok) in [(107, true), (108, false)] {
            let pad = "x".repeat(total - "PROXY UNKNOWN \r\n".len());
            let line = format!("PROXY UNKNOWN {pad}\r\n");
            assert_eq!(line.len(), total);
            let got = parse_proxy_header(line.as_bytes());
            assert_eq!(
                matches!(got, ProxyHeaderParse::Complete { len: 107, .. }),
                ok,
                "{total} bytes: {got:?}"
            );
            if !ok {
                assert!(matches!(got, ProxyHeaderParse::Invalid(_)), "{got:?}");
            }
        }
    }

    #[test]
    fn incoming_v2_headers_are_parsed_and_decided_at_every_prefix() {
        let i = info(Some("example.com"), Some(b"h2"));
        let header = v2("192.0.2.10:51000", "127.0.0.5:8443", Some(&i));
        for cut in 0..header.len() {
            assert_eq!(
                parse_proxy_header(&header[..cut]),
                ProxyHeaderParse::Incomplete,
                "prefix of {cut} bytes"
            );
        }
        assert_eq!(
            parse_proxy_header(&header),
            complete(header.len(), "192.0.2.10:51000", "127.0.0.5:8443")
        );
        let six = v2("[2001:db8::7]:1", "[::1]:443", None);
        assert_eq!(
            parse_proxy_header(&six),
            complete(52, "[2001:db8::7]:1", "[::1]:443")
        );
        // LOCAL (a health check) and UNSPEC name no client.
        let mut local = six.clone();
        local[12] = 0x20;
        assert_eq!(
            parse_proxy_header(&local),
            ProxyHeaderParse::Complete {
                len: 52,
                addresses: None
            }
        );
        // LOCAL ignores its address block, whatever its family byte says.
        local[13] = 0xff;
        assert!(matches!(
            parse_proxy_header(&local),
            ProxyHeaderParse::Complete {
                addresses: None,
                ..
            }
        ));
        let unspec = v2("10.0.0.1:1", "[2001:db8::2]:443", None);
        assert_eq!(
            parse_proxy_header(&unspec),
            ProxyHeaderParse::Complete {
                len: 16,
                addresses: None
            }
        );
    }

    #[test]
    fn incoming_v2_mistakes_are_invalid() {
        let good = v2("192.0.2.10:51000", "127.0.0.5:8443", None);
        let mut version1 = good.clone();
        version1[12] = 0x11;
        let mut command = good.clone();
        command[12] = 0x2f;
        let mut short = good.clone();
        short[15] = 4; // TCP over IPv4 in 4 bytes
        short.truncate(20);
        let mut huge = good.clone();
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        let mut family = good.clone();
        family[13] = 0x41; // no such address family
        let mut transport = good.clone();
        transport[13] = 0x13; // no such transport
        for bad in [version1, command, short, huge, family, transport] {
            assert!(
                matches!(parse_proxy_header(&bad), ProxyHeaderParse::Invalid(_)),
                "{bad:?}"
            );
        }
    }
}
