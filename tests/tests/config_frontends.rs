//! Frontends each with their own certificates and TLS policy (protocols, client certificates),
//! from a configuration file's `frontend = { … }` blocks, and a UNIX-domain socket backend.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixListener;
use std::path::Path;

use stud_tests::net::{self, connect, echo_backend, served_subject};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{run, Stud};
use stud_tests::{require_tool, stud_bin};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn two_frontend_blocks_serve_their_own_certificates_and_protocols() {
    require_tool("openssl");
    let pki = Pki::new();
    let dir = TempDir::new();
    let other = dir.path().join("other.pem");
    pki.write_leaf(&other, "other.test");
    let conf = dir.write(
        "hitch.conf",
        format!(
            "backend = \"[127.0.0.1]:{}\"
frontend = {{
    host = \"127.0.0.1\"
    port = \"0\"
    pem-file = \"{}\"
}}
frontend = {{
    host = \"127.0.0.1\"
    port = \"0\"
    pem-file = \"{}\"
    tls-protos = TLSv1.3
}}
",
            echo_backend().port(),
            s(&pki.site_pem),
            s(&other)
        ),
    );
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    assert_eq!(stud.addrs.len(), 2, "{}", stud.output());
    let (first, second) = (stud.addrs[0], stud.addrs[1]);
    // Each frontend answers every name with its own certificate, never the other's.
    for sni in ["localhost", "other.test"] {
        assert!(served_subject(first, sni).contains("CN=localhost"), "{sni}");
        assert!(
            served_subject(second, sni).contains("CN=other.test"),
            "{sni}"
        );
    }
    // And each keeps its own protocols: TLS 1.2 on the first, not on the second.
    let speaks = |addr, flag| {
        let out = net::s_client(addr, &["-servername", "other.test", flag]);
        out.lines().any(|l| l.starts_with("New, TLSv1."))
    };
    assert!(speaks(first, "-tls1_2"), "TLS 1.2 on the first frontend");
    assert!(
        !speaks(second, "-tls1_2"),
        "the TLS 1.3-only frontend spoke TLS 1.2"
    );
    assert!(speaks(second, "-tls1_3"), "TLS 1.3 on the second frontend");
    let mut ok = connect(first, &net::client_config(&pki.ca_der)).expect("handshake");
    ok.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut ok, 4).expect("echo"), b"ping");
}

/// A backend on a UNIX-domain socket that echoes what it reads.
fn unix_echo(path: &Path) {
    let listener = UnixListener::bind(path).expect("bind the UNIX socket");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn a_unix_socket_backend_from_the_command_line_or_a_file() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let sock = dir.path().join("varnish.sock");
    unix_echo(&sock);
    let b = format!("--backend={}", s(&sock));
    let cli = Stud::start(&stud_bin!(), &["-f", "127.0.0.1,0", &b, s(&pki.site_pem)]);
    assert!(
        cli.output().contains(&format!("backend {}", s(&sock))),
        "{}",
        cli.output()
    );
    let mut tls = connect(cli.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"over unix").expect("write");
    assert_eq!(net::read_exact(&mut tls, 9).expect("echo"), b"over unix");

    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"{}\"\npem-file = \"{}\"\n",
            s(&sock),
            s(&pki.site_pem)
        ),
    );
    let file = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    let mut tls = connect(file.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
}

#[test]
fn a_unix_socket_path_too_long_to_connect_to_is_one_line_at_start() {
    let pki = Pki::new();
    let long = format!("/{}", "x".repeat(200));
    let out = run(
        &stud_bin!(),
        &["-t", &format!("--backend={long}"), s(&pki.site_pem)],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("stud: error: backend /xxx"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
}

/// A client configuration trusting the test CA that presents `pem` (chain and key) when asked.
fn client_with_certificate(pki: &Pki, pem: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .expect("read the chain")
        .collect::<Result<_, _>>()
        .expect("parse the chain");
    let key = PrivateKeyDer::from_pem_file(pem).expect("read the key");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("add the CA");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate"),
    )
}

/// Whether a `ping` through `addr` comes back.
fn echoes(addr: std::net::SocketAddr, config: &std::sync::Arc<rustls::ClientConfig>) -> bool {
    let Ok(mut tls) = connect(addr, config) else {
        return false;
    };
    tls.write_all(b"ping").is_ok() && net::read_exact(&mut tls, 4).is_ok_and(|got| got == b"ping")
}

#[test]
fn a_frontend_block_may_require_client_certificates_and_another_not() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "backend = \"[127.0.0.1]:{}\"
pem-file = \"{}\"
frontend = \"[127.0.0.1]:0\"
frontend = {{
    host = \"127.0.0.1\"
    port = \"0\"
    client-verify = required
    client-verify-ca = \"{}\"
}}
",
            echo_backend().port(),
            s(&pki.site_pem),
            s(&pki.ca_pem_file)
        ),
    );
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    let (open, guarded) = (stud.addrs[0], stud.addrs[1]);
    let anonymous = net::client_config(&pki.ca_der);
    // The test CA signed the site's certificate, so it serves as a client certificate too.
    let known = client_with_certificate(&pki, &pki.site_pem);
    assert!(echoes(open, &anonymous), "the open frontend serves anyone");
    assert!(
        !echoes(guarded, &anonymous),
        "a client without a certificate was served"
    );
    assert!(
        echoes(guarded, &known),
        "a client with a certificate was refused"
    );
}

#[test]
fn client_verify_without_its_ca_is_one_line_at_start() {
    let pki = Pki::new();
    let out = run(
        &stud_bin!(),
        &["-t", "--client-verify=required", s(&pki.site_pem)],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("client-verify-ca"), "{}", out.stderr);
    let ok = run(
        &stud_bin!(),
        &[
            "-t",
            "--client-verify=optional",
            "--client-verify-ca",
            s(&pki.ca_pem_file),
            s(&pki.site_pem),
        ],
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
}

#[test]
fn frontend_blocks_listen_on_ipv6_and_ipv4_addresses() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "backend = \"[127.0.0.1]:{}\"\npem-file = \"{}\"\n\
             frontend = {{\n  host = \"::1\"\n  port = \"0\"\n}}\n\
             frontend = \"[127.0.0.1]:0\"\n",
            echo_backend().port(),
            s(&pki.site_pem)
        ),
    );
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    assert!(
        stud.addrs[0].is_ipv6() && stud.addrs[1].is_ipv4(),
        "{:?}",
        stud.addrs
    );
    for addr in &stud.addrs {
        let mut tls = connect(*addr, &net::client_config(&pki.ca_der)).expect("handshake");
        tls.write_all(b"ping").expect("write");
        assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
    }
}

#[test]
fn ecdh_curve_chooses_the_key_exchange_groups() {
    require_tool("openssl");
    let pki = Pki::new();
    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"[127.0.0.1]:{}\"\npem-file = \"{}\"\n\
             ecdh-curve = \"secp384r1\"\n",
            echo_backend().port(),
            s(&pki.site_pem)
        ),
    );
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    // A client that prefers X25519 but offers P-384 gets P-384, at TLS 1.3 and 1.2.
    for version in ["-tls1_3", "-tls1_2"] {
        let out = net::s_client(stud.addr, &["-groups", "X25519:secp384r1", version]);
        assert!(
            out.contains("Server Temp Key: ECDH, secp384r1"),
            "{version}: {out}"
        );
    }
    // One that offers only X25519 is refused.
    let out = net::s_client(stud.addr, &["-groups", "X25519"]);
    assert!(!out.lines().any(|l| l.starts_with("New, TLSv1.")), "{out}");
}
