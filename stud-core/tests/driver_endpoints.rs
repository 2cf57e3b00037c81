//! Where the driver's connections come in and go out: frontends with their own configurations,
//! UNIX-socket backends, rotation over backend addresses, and backend source addresses.

mod driver_support;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use driver_support::*;
use stud_core::driver::{BackendAddr, Frontend, Options, Server};
use stud_core::{ClientAddressMode, CloseReason, Config};

// ---------------------------------------------------------------- frontends

#[test]
fn each_frontend_serves_its_own_certificate() {
    let backend = Backend::echo();
    let (other_pem, other_der) = other_identity();
    let first = config(|b| b);
    let second = Arc::new(Config::builder().pem(other_pem).build().expect("config"));
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let frontends = vec![
        Frontend::bind(loopback, first).expect("bind"),
        Frontend::bind(loopback, second).expect("bind"),
    ];
    let server = Server::with_frontends(frontends, options(&[backend.addr])).expect("server");
    let addrs = server.local_addrs();
    let mut server = Running::run(server);
    let trusting_both = client_config_trusting(&[identity().1.clone(), other_der.clone()]);
    for (addr, want) in [(addrs[0], &identity().1), (addrs[1], &other_der)] {
        let mut tls = tls_connect_with(addr, trusting_both.clone());
        let presented = tls.conn.peer_certificates().expect("a certificate")[0].clone();
        assert_eq!(
            &presented, want,
            "frontend {addr} presented another's certificate"
        );
        tls.write_all(b"hi").expect("write");
        assert_eq!(read_exact(&mut tls, 2), b"hi");
    }
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

// ---------------------------------------------------------------- UNIX-socket backends

fn unix_options(path: &std::path::Path) -> Options {
    Options::new([BackendAddr::Unix(path.to_owned())])
}

#[test]
fn a_unix_socket_backend_relays_both_ways_and_half_closes() {
    let backend = UnixBackend::echo();
    let mut server = Running::start(config(|b| b), unix_options(&backend.path));
    let mut tls = tls_connect(server.addr);
    tls.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    assert_eq!(read_exact(&mut tls, 18), b"GET / HTTP/1.0\r\n\r\n");
    finish_sending(&mut tls);
    let (rest, clean) = read_to_end(&mut tls);
    assert!(rest.is_empty());
    assert!(
        clean,
        "the backend's end of stream must arrive as close_notify"
    );
    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::Completed);
    assert_eq!(closes[0].2.bytes_to_backend, 18);
    assert_eq!(closes[0].2.bytes_from_backend, 18);
    assert_eq!(backend.accepts(), 1);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

/// Sends "ping" through a server in `mode` to a UNIX backend; returns what the backend received,
/// the client's address and the server's.
fn through_unix_backend(mode: ClientAddressMode) -> (Vec<u8>, SocketAddr, SocketAddr) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let backend = UnixBackend::spawn(move |mut stream| {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("backend read");
        let _ = tx.lock().expect("tx").send(got);
    });
    let mut server = Running::start(
        config(|b| b.client_address(mode)),
        unix_options(&backend.path),
    );
    let mut tls = tls_connect(server.addr);
    let client = tls.sock.local_addr().expect("client addr");
    tls.write_all(b"ping").expect("write");
    finish_sending(&mut tls);
    let got = rx.recv_timeout(TIMEOUT).expect("backend received");
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
    (got, client, server.addr)
}

#[test]
fn a_proxy_v1_header_to_a_unix_backend_describes_the_clients_tcp_connection() {
    let (got, client, server) = through_unix_backend(ClientAddressMode::ProxyV1);
    let want = format!(
        "PROXY TCP4 {} {} {} {}\r\nping",
        client.ip(),
        server.ip(),
        client.port(),
        server.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn a_proxy_v2_header_to_a_unix_backend_describes_the_clients_tcp_connection() {
    let (got, client, server) = through_unix_backend(ClientAddressMode::ProxyV2);
    const SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    assert!(got.starts_with(SIGNATURE), "{got:?}");
    assert_eq!(got[12], 0x21, "version 2, PROXY command");
    assert_eq!(got[13], 0x11, "TCP over IPv4, not AF_UNIX");
    let len = usize::from(u16::from_be_bytes([got[14], got[15]]));
    let addrs = &got[16..28];
    let ip = |b: &[u8]| IpAddr::from([b[0], b[1], b[2], b[3]]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    assert_eq!(ip(&addrs[0..4]), client.ip(), "source");
    assert_eq!(ip(&addrs[4..8]), server.ip(), "destination");
    assert_eq!(port(&addrs[8..10]), client.port());
    assert_eq!(port(&addrs[10..12]), server.port());
    assert_eq!(&got[16 + len..], b"ping", "the header is whole and first");
}

#[test]
fn write_ip_to_a_unix_backend_names_the_clients_address() {
    let (got, _, _) = through_unix_backend(ClientAddressMode::WriteIp);
    assert_eq!(got, [&[2u8, 127, 0, 0, 1][..], b"ping"].concat());
}

/// Connects a client to a server whose only backend is `path`; asserts the client is closed
/// promptly as for a refusing TCP backend, with a warning naming the path.
fn assert_refused_promptly(path: &std::path::Path) {
    let mut server = Running::start(config(|b| b), unix_options(path));
    let started = Instant::now();
    let mut tls = tls_connect(server.addr);
    let (data, _) = read_to_end(&mut tls);
    assert!(data.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::BackendConnectFailed);
    let warnings = server.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&path.display().to_string())),
        "the backend path is named: {warnings:?}"
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn a_missing_unix_backend_closes_the_client_promptly() {
    let dir = TempDir::new();
    assert_refused_promptly(&dir.path().join("nothing-here.sock"));
}

#[test]
fn a_unix_backend_nobody_listens_on_closes_the_client_promptly() {
    let dir = TempDir::new();
    let path = dir.path().join("dead.sock");
    // Bound then closed: the socket file stays, and connecting to it is refused.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    assert_refused_promptly(&path);
}

#[test]
fn a_refused_unix_backend_falls_back_to_the_next_address() {
    let dir = TempDir::new();
    let backend = Backend::echo();
    let options = Options::new([
        BackendAddr::Unix(dir.path().join("missing.sock")),
        BackendAddr::Tcp(backend.addr),
    ]);
    let mut server = Running::start(config(|b| b), options);
    let mut tls = tls_connect(server.addr);
    tls.write_all(b"x").expect("write");
    assert_eq!(read_exact(&mut tls, 1), b"x");
    assert_eq!(backend.accepts(), 1);
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

// ---------------------------------------------------------------- spreading connections

/// Opens one connection through `addr`, sends a byte and reads it back, then closes.
fn one_round_trip(addr: SocketAddr) {
    let mut tls = tls_connect(addr);
    tls.write_all(b"x").expect("write");
    assert_eq!(read_exact(&mut tls, 1), b"x");
    finish_sending(&mut tls);
    assert!(read_to_end(&mut tls).1);
}

#[test]
fn each_new_connection_starts_at_the_next_backend_address() {
    let backends = [Backend::echo(), Backend::echo(), Backend::echo()];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let mut server = Running::start(config(|b| b), options(&addrs));
    let mut seen = Vec::new();
    for _ in 0..6 {
        let before: Vec<usize> = backends.iter().map(Backend::accepts).collect();
        one_round_trip(server.addr);
        let after: Vec<usize> = backends.iter().map(Backend::accepts).collect();
        let which = (0..3)
            .find(|&i| after[i] > before[i])
            .expect("a backend accepted");
        seen.push(which);
    }
    assert_eq!(seen, [0, 1, 2, 0, 1, 2]);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn a_connection_starting_at_a_refusing_last_address_wraps_to_the_first() {
    let backend = Backend::echo();
    let closed = closed_port();
    let mut server = Running::start(config(|b| b), options(&[backend.addr, closed.addr]));
    // Every second connection starts at the refusing address and must fall back.
    for _ in 0..4 {
        one_round_trip(server.addr);
    }
    assert_eq!(backend.accepts(), 4);
    let closes = server.wait_closes(4, TIMEOUT);
    assert!(
        closes.iter().all(|c| c.1 == CloseReason::Completed),
        "{closes:?}"
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn backend_connections_come_from_each_source_address_in_turn() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::spawn(reporting_peers(tx));
    let sources: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|s| s.parse().expect("address"))
        .collect();
    let opts = options(&[backend.addr]).with_source_addrs(sources.iter().copied());
    let mut server = Running::start(config(|b| b), opts);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut tls = tls_connect(server.addr);
        tls.write_all(b"x").expect("write");
        assert_eq!(read_exact(&mut tls, 1), b"x");
        seen.push(
            rx.recv_timeout(TIMEOUT)
                .expect("the backend saw a peer")
                .ip(),
        );
    }
    assert_eq!(seen, [sources[0], sources[1], sources[0], sources[1]]);
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

/// A backend that reports each connection's source address on `tx` and echoes.
fn reporting_peers(tx: mpsc::Sender<SocketAddr>) -> impl Fn(std::net::TcpStream) + Send + Sync {
    let tx = Mutex::new(tx);
    move |mut stream| {
        if let Ok(peer) = stream.peer_addr() {
            let _ = tx.lock().expect("tx").send(peer);
        }
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            if stream.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    }
}

#[test]
fn each_backend_family_takes_a_source_address_of_its_own_family() {
    let Ok(v6) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    };
    let (tx, rx) = mpsc::channel();
    let backend_v4 = Backend::spawn(reporting_peers(tx.clone()));
    let backend_v6 = Backend::serve(v6, reporting_peers(tx));
    let sources: Vec<IpAddr> = ["::1", "127.0.0.2"]
        .iter()
        .map(|s| s.parse().expect("address"))
        .collect();
    let opts = options(&[backend_v4.addr, backend_v6.addr]).with_source_addrs(sources);
    let mut server = Running::start(config(|b| b), opts);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut tls = tls_connect(server.addr);
        tls.write_all(b"x").expect("write");
        assert_eq!(read_exact(&mut tls, 1), b"x");
        let peer = rx.recv_timeout(TIMEOUT).expect("a backend saw a peer");
        seen.push(peer.ip().to_string());
    }
    // Alternating backends, each reached from the source of its family.
    assert_eq!(seen, ["127.0.0.2", "::1", "127.0.0.2", "::1"]);
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn a_source_address_this_host_lacks_is_refused_when_the_server_is_made() {
    // 192.0.2.1 (TEST-NET-1) belongs to no host.
    let opts = options(&["127.0.0.1:9".parse().expect("address")])
        .with_source_addrs(["192.0.2.1".parse().expect("address")]);
    let started = Instant::now();
    let e = Server::bind(config(|b| b), "127.0.0.1:0".parse().expect("address"), opts)
        .expect_err("a foreign source address must be refused");
    assert!(started.elapsed() < Duration::from_secs(1), "no retrying");
    let text = e.to_string();
    assert!(
        text.contains("192.0.2.1") && text.contains("address of this host"),
        "{text}"
    );
    assert_ne!(e.kind(), io::ErrorKind::Other);
}

#[test]
fn validate_reports_what_server_creation_would_refuse() {
    let good = options(&["127.0.0.1:9".parse().expect("address")])
        .with_source_addrs(["127.0.0.2".parse().expect("address")]);
    good.validate().expect("loopback sources are usable");
    let foreign = good
        .clone()
        .with_source_addrs(["192.0.2.1".parse().expect("address")]);
    let e = foreign.validate().expect_err("a foreign source address");
    assert!(e.to_string().contains("192.0.2.1"), "{e}");
    let none = Options::new(Vec::<SocketAddr>::new());
    let e = none.validate().expect_err("no backend");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn a_backend_with_no_source_address_of_its_family_is_refused_when_the_server_is_made() {
    let opts = options(&["[::1]:9".parse().expect("address")])
        .with_source_addrs(["127.0.0.1".parse().expect("address")]);
    let e = Server::bind(config(|b| b), "127.0.0.1:0".parse().expect("address"), opts)
        .expect_err("an IPv6 backend with only IPv4 sources must be refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("[::1]:9"), "{e}");
}
