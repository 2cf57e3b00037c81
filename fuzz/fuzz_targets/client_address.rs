//! The client-address encoders: any addresses fit the buffer, and the bytes say what they should.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use stud_core::{encode_client_address, ClientAddressMode, MAX_HEADER_LEN};

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

fuzz_target!(|data: &[u8]| {
    if data.len() < 37 {
        return;
    }
    let flags = data[0];
    let peer = addr(&data[1..19], flags & 1 != 0);
    let local = addr(&data[19..37], flags & 2 != 0);
    let mut buf = [0u8; MAX_HEADER_LEN];

    let n = encode_client_address(ClientAddressMode::WriteIp, peer, local, &mut buf);
    match peer.ip() {
        IpAddr::V4(v4) => assert_eq!(&buf[..n], [&[2u8][..], &v4.octets()].concat()),
        IpAddr::V6(v6) => assert_eq!(&buf[..n], [&[10u8][..], &v6.octets()].concat()),
    }

    let n = encode_client_address(ClientAddressMode::ProxyV1, peer, local, &mut buf);
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
});
