//! hitch's command line beside the original stud's: `=on|off` booleans, `-f '[HOST]:PORT+CERT'`,
//! `write-proxy` and `proxy-proxy` meaning PROXY v1 on the command line (the original stud's)
//! and v2 in a file (hitch's), and one clear line for every option stud refuses.

use std::io::Write as _;
use std::path::Path;

use stud_tests::net::{self, capture_backend, capture_backend_until, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{run, Stud};
use stud_tests::{stud_bin, TIMEOUT};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The PROXY v2 signature.
const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

#[test]
fn hitch_booleans_and_spellings_are_accepted() {
    let pki = Pki::new();
    let out = run(
        &stud_bin!(),
        &[
            "-t",
            "--quiet=on",
            "--daemon=off",
            "--syslog=off",
            "--write-ip=off",
            "--sni-nomatch-abort=on",
            "--prefer-server-ciphers=off",
            "--enable-tcp-fastopen=on",
            "--proxy-tlv=on",
            "--workers=2",
            "-L",
            "1",
            "-R",
            "0",
            "--tls-protos=TLSv1.2 TLSv1.3",
            "--ciphersuites=TLS_AES_256_GCM_SHA384",
            "-f",
            "[127.0.0.1]:8443",
            "--backend=[127.0.0.1]:8000",
            s(&pki.site_pem),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("configuration OK"), "{}", out.stdout);
}

/// Runs stud and checks: exit 1 and one `stud: error:` line containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let line = stud_tests::process::one_error(&stud_bin!(), args);
    assert!(line.contains(needle), "{args:?}: {line}");
}

#[test]
fn options_stud_cannot_honour_are_refused_with_one_line() {
    let pki = Pki::new();
    let pem = s(&pki.site_pem);
    refused(&["--ssl-engine=rdrand", pem], "there is no OpenSSL here");
    refused(&["-e", "rdrand", pem], "there is no OpenSSL here");
    refused(&["--quiet=maybe", pem], "expected on or off");
    refused(&["-f", "[127.0.0.1]:8443+", pem], "nothing after '+'");
    refused(
        &["--ciphersuites=ECDHE-RSA-AES128-GCM-SHA256", pem],
        "not a TLS 1.3 suite",
    );
    refused(&["--log-level=7", pem], "invalid log level '7'");
    refused(&["--pem-dir-glob=*.pem", pem], "pem-dir-glob needs pem-dir");
    refused(
        &["--config=a", "--config=b", pem],
        "--config given more than once",
    );
    refused(
        &["--client", "--write-proxy", pem],
        "--client cannot be combined",
    );
    refused(&["--backend-ca=ca.pem", pem], "client mode (--client)");
}

#[test]
fn a_frontend_may_bring_its_own_certificate() {
    let pki = Pki::new();
    let port = net::free_port();
    let f = format!("[127.0.0.1]:{port}+{}", s(&pki.site_pem));
    let b = echo_backend().to_string();
    let stud = Stud::start(&stud_bin!(), &["-f", &f, "-b", &b]);
    let mut tls = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
}

#[test]
fn write_proxy_is_v1_on_the_command_line_and_v2_in_a_file() {
    let pki = Pki::new();
    let (backend, rx) = capture_backend(12);
    let b = backend.to_string();
    let cli = Stud::start(
        &stud_bin!(),
        &[
            "-f",
            "127.0.0.1,0",
            "-b",
            &b,
            "--write-proxy",
            s(&pki.site_pem),
        ],
    );
    assert!(
        cli.output()
            .contains("--write-proxy on the command line means PROXY v1"),
        "{}",
        cli.output()
    );
    let mut tls = connect(cli.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"x").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert!(got.starts_with(b"PROXY TCP4 "), "{got:?}");

    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"[127.0.0.1]:{}\"\nwrite-proxy = on\n\
             pem-file = \"{}\"\n",
            backend.port(),
            s(&pki.site_pem)
        ),
    );
    let file = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    let line = file
        .wait_line(
            |l| l.contains("write-proxy in a configuration file"),
            TIMEOUT,
        )
        .unwrap_or_else(|| panic!("{}", file.output()));
    assert!(
        line.contains("PROXY v2")
            && line.contains("write-proxy-v1")
            && line.contains("write-proxy-v2"),
        "{line}"
    );
    let mut tls = connect(file.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"x").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert_eq!(&got[..12], V2, "{got:?}");
}

/// Sends a balancer's PROXY v1 line then a TLS client's `x` to `addr`.
fn through_a_balancer(
    addr: std::net::SocketAddr,
    pki: &Pki,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    sock.write_all(b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n")
        .expect("PROXY line");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let config = net::client_config(&pki.ca_der);
    let conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("handshake after the PROXY line");
    }
    tls.write_all(b"x").expect("write");
    tls
}

#[test]
fn proxy_proxy_passes_the_balancers_client_on_as_v1_from_the_command_line_and_v2_from_a_file() {
    let pki = Pki::new();
    // Enough for a v1 line and the client's byte, or a v2 header for IPv6 without TLVs.
    let (backend, rx) = capture_backend_until(|got: &[u8]| {
        let v1 = got.starts_with(b"PROXY ")
            && got
                .windows(2)
                .position(|w| w == b"\r\n")
                .is_some_and(|i| got.len() > i + 2);
        v1 || got.len() >= 16 + 36
    });
    let cli = Stud::serve(&stud_bin!(), &pki.site_pem, backend, &["--proxy-proxy"]);
    let _tls = through_a_balancer(cli.addr, &pki);
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert!(
        got.starts_with(b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"[127.0.0.1]:{}\"\nproxy-proxy = on\n\
             pem-file = \"{}\"\n",
            backend.port(),
            s(&pki.site_pem)
        ),
    );
    let file = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    let _tls = through_a_balancer(file.addr, &pki);
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert_eq!(&got[..12], V2, "{got:?}");
    assert_eq!(got[13], 0x21, "TCP over IPv6: {got:?}");
    let source: std::net::Ipv6Addr = "2001:db8::7".parse().expect("address");
    assert_eq!(
        &got[16..32],
        &source.octets(),
        "the balancer's client: {got:?}"
    );
    assert_eq!(&got[48..50], &4242u16.to_be_bytes(), "its port: {got:?}");
}

#[test]
fn the_default_config_printed_loads_back() {
    let pki = Pki::new();
    let printed = run(&stud_bin!(), &["--default-config"]);
    assert_eq!(printed.code, Some(0), "{}", printed.stderr);
    assert!(
        printed.stdout.contains("frontend = \"[*]:8443\""),
        "{}",
        printed.stdout
    );
    let dir = TempDir::new();
    let conf = dir.write("stud.conf", &printed.stdout);
    let out = run(
        &stud_bin!(),
        &["-t", &format!("--config={}", s(&conf)), s(&pki.site_pem)],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

#[test]
fn proxy_tlv_and_proxy_authority_off_leave_those_tlvs_out() {
    let pki = Pki::new();
    // A PROXY v2 header for IPv4 with no TLV is 28 bytes; then the client's byte.
    let (backend, rx) = capture_backend(29);
    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"[127.0.0.1]:{}\"\nwrite-proxy-v2 = on\n\
             proxy-tlv = off\nproxy-authority = off\npem-file = \"{}\"\n",
            backend.port(),
            s(&pki.site_pem)
        ),
    );
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    // The client names a server (SNI "localhost"), which proxy-authority = off keeps to itself.
    let mut tls = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"x").expect("write");
    let got = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    assert_eq!(&got[..12], V2, "{got:?}");
    assert_eq!(
        u16::from_be_bytes([got[14], got[15]]),
        12,
        "addresses only: {got:?}"
    );
    assert_eq!(got[28], b'x', "the client's byte follows: {got:?}");

    // The defaults (on) send both: the authority TLV (0x02) and the SSL TLV (0x20).
    let (backend, rx) = capture_backend(16);
    let b = backend.to_string();
    let both = Stud::start(
        &stud_bin!(),
        &[
            "-f",
            "127.0.0.1,0",
            "-b",
            &b,
            "--write-proxy-v2",
            s(&pki.site_pem),
        ],
    );
    let mut tls = connect(both.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"x").expect("write");
    let head = rx.recv_timeout(TIMEOUT).expect("backend got bytes");
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    assert!(len > 12, "TLVs follow the addresses: {head:?}");
}
