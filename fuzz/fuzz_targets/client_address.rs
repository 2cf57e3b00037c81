//! The client-address encoders: any addresses fit the buffer, and the bytes say what they should.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use stud_core::internal::proxy::{
    encode_client_address, encode_proxy_v2, parse_proxy_header, ProxyHeaderParse, MAX_HEADER_LEN,
    MAX_INCOMING_PROXY_HEADER, PROXY_V2_SIGNATURE,
};
use stud_core::{ClientAddressMode, HandshakeInfo, TlsVersion};

fn addr(bytes: &[u8], v6: bool) -> SocketAddr {
    let port = u16::from_be_bytes([bytes[0], bytes[1]]);
    let ip = if v6 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&bytes[2..18]);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[2], bytes[3], bytes[4], bytes[5]))
    };
    SocketAddr::new(ip, port)
}

/// The incoming parser on any bytes: no panic, and a complete header lies within the input.
fn parse_any(data: &[u8]) {
    if let ProxyHeaderParse::Complete { len, .. } = parse_proxy_header(data) {
        assert!(len <= data.len() && len <= MAX_INCOMING_PROXY_HEADER);
        // A prefix of the header alone is never complete.
        assert_eq!(
            parse_proxy_header(&data[..len - 1]),
            ProxyHeaderParse::Incomplete
        );
    }
}

fn unmapped(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
        IpAddr::V4(_) => a,
    }
}

fuzz_target!(|data: &[u8]| {
    parse_any(data);
    if data.len() < 37 {
        return;
    }
    let flags = data[0];
    let peer = addr(&data[1..19], flags & 1 != 0);
    let local = addr(&data[19..37], flags & 2 != 0);
    let mut buf = [0u8; MAX_HEADER_LEN];

    let n = encode_client_address(ClientAddressMode::WriteIp, peer, local, None, &mut buf);
    // An IPv4-mapped IPv6 client (a dual-stack listener) goes out as IPv4.
    match unmapped(peer).ip() {
        IpAddr::V4(v4) => assert_eq!(&buf[..n], [&[2u8][..], &v4.octets()].concat()),
        IpAddr::V6(v6) => assert_eq!(&buf[..n], [&[10u8][..], &v6.octets()].concat()),
    }

    let n = encode_client_address(ClientAddressMode::ProxyV1, peer, local, None, &mut buf);
    // What stud writes, stud reads back (addresses unmapped, as written).
    match parse_proxy_header(&buf[..n]) {
        ProxyHeaderParse::Complete { len, addresses } => {
            assert_eq!(len, n);
            if let Some((src, dst)) = addresses {
                assert_eq!((src, dst), (unmapped(peer), unmapped(local)));
            }
        }
        other => panic!("own PROXY v1 line not read back: {other:?}"),
    }
    let line = std::str::from_utf8(&buf[..n]).expect("PROXY v1 is ASCII");
    assert!(line.starts_with("PROXY ") && line.ends_with("\r\n"));
    let fields: Vec<&str> = line.trim_end().split(' ').collect();
    if fields[1] != "UNKNOWN" {
        assert_eq!(fields.len(), 6);
        let src: IpAddr = fields[2].parse().expect("source address");
        let sport: u16 = fields[4].parse().expect("source port");
        assert_eq!(sport, peer.port());
        let unmapped = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            ip => ip,
        };
        assert_eq!(src, unmapped);
    }

    // PROXY v2 with TLVs from the rest of the input (any lengths, including ones no TLS field
    // can carry): the header fits, its length field is right, and its TLVs parse back.
    let rest = &data[37..];
    let cut = rest.first().map_or(0, |&b| b as usize * 2).min(rest.len());
    let (sni, alpn) = rest.split_at(cut);
    let version = if flags & 4 != 0 {
        TlsVersion::Tls12
    } else {
        TlsVersion::Tls13
    };
    let mut info = HandshakeInfo::new(version, "TLS_CHACHA20_POLY1305_SHA256");
    info.sni = (!sni.is_empty()).then(|| String::from_utf8_lossy(sni).into_owned());
    info.alpn = (!alpn.is_empty()).then(|| alpn.to_vec());
    info.resumed = flags & 16 != 0;
    // Any bytes as the client's certificate: the CN walker must cope, and a CN it finds
    // still fits the header.
    if flags & 8 != 0 {
        info.peer_certificates = vec![rest.to_vec()];
    }
    let n = encode_proxy_v2(peer, local, Some(&info), &mut buf);
    // The generic entry point, as the engine calls it, writes the same header.
    let mut same = [0u8; MAX_HEADER_LEN];
    let m = encode_client_address(
        ClientAddressMode::ProxyV2,
        peer,
        local,
        Some(&info),
        &mut same,
    );
    assert_eq!(&same[..m], &buf[..n]);
    match parse_proxy_header(&buf[..n]) {
        ProxyHeaderParse::Complete { len, addresses } => {
            assert_eq!(len, n);
            if let Some((src, dst)) = addresses {
                assert_eq!((src, dst), (unmapped(peer), unmapped(local)));
            }
        }
        other => panic!("own PROXY v2 header not read back: {other:?}"),
    }
    assert_eq!(&buf[..12], &PROXY_V2_SIGNATURE);
    let after = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    assert_eq!(16 + after, n);
    let addresses = match buf[13] {
        0x11 => 12,
        0x21 => 36,
        0x00 => 0,
        other => panic!("family {other:#x}"),
    };
    let mut tlv = &buf[16 + addresses..n];
    let mut saw_ssl = false;
    while !tlv.is_empty() {
        let len = u16::from_be_bytes([tlv[1], tlv[2]]) as usize;
        assert!(3 + len <= tlv.len(), "a TLV runs past the header");
        saw_ssl |= tlv[0] == 0x20;
        tlv = &tlv[3 + len..];
    }
    assert!(saw_ssl);
});
