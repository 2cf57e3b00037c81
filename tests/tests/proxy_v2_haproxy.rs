//! PROXY v2 both ways against haproxy. `--write-proxy-v2` read by a real receiver: haproxy with
//! `accept-proxy` answers each request with the client and destination addresses and the
//! authority TLV it decoded from stud's header, so a header haproxy rejected or misread fails the
//! test. `--accept-proxy` fed by a real sender: haproxy in front with `send-proxy-v2`.

use std::io::Write;

use stud_tests::haproxy::Haproxy;
use stud_tests::net::{self, connect};
use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{optional_tool, stud_bin, TIMEOUT};

/// Starts haproxy answering every request with what it read from the PROXY header.
fn start_haproxy() -> Haproxy {
    Haproxy::start(|addr| {
        format!(
            "global\n  maxconn 100\n\
             defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind {addr} accept-proxy\n  \
             http-request return status 200 content-type text/plain lf-string \
             \"src=%[src]:%[src_port] dst=%[dst]:%[dst_port] authority=%[fc_pp_authority]\\n\"\n"
        )
    })
}

#[test]
fn haproxy_reads_the_addresses_and_the_authority_from_write_proxy_v2() {
    if !optional_tool("haproxy") {
        return;
    }
    let haproxy = start_haproxy();
    let pki = Pki::new();
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        haproxy.addr,
        &["--write-proxy-v2"],
    );
    let config = net::client_config(&pki.ca_der);
    for _ in 0..2 {
        let mut tls = connect(stud.addr, &config).expect("handshake");
        let client = tls.sock.local_addr().expect("client address");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut answer = Vec::new();
        // haproxy closes after the response; stud then ends the stream with close_notify.
        let _ = std::io::Read::read_to_end(&mut tls, &mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let want = format!("src={client} dst={} authority=localhost\n", stud.addr);
        assert!(answer.ends_with(&want), "want {want:?} in {answer:?}");
    }
}

#[test]
fn accept_proxy_reads_haproxys_send_proxy_v2() {
    if !optional_tool("haproxy") {
        return;
    }
    let pki = Pki::new();
    let (backend, rx) = net::capture_backend_until(|got: &[u8]| {
        got.windows(2)
            .position(|w| w == b"\r\n")
            .is_some_and(|i| got.len() >= i + 2 + 7)
    });
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        backend,
        &["--accept-proxy", "--write-proxy"],
    );
    let stud_addr = stud.addr;
    // haproxy in front, passing the TLS bytes through and announcing each client with PROXY v2.
    let haproxy = Haproxy::start(|addr| {
        format!(
            "global\n  maxconn 100\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             listen lb\n  bind {addr}\n  server stud {stud_addr} send-proxy-v2\n"
        )
    });
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(haproxy.addr, &config).expect("handshake through haproxy");
    let client = tls.sock.local_addr().expect("client address");
    tls.write_all(b"PAYLOAD").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    let want = format!(
        "PROXY TCP4 {} {} {} {}\r\nPAYLOAD",
        client.ip(),
        haproxy.addr.ip(),
        client.port(),
        haproxy.addr.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
}
