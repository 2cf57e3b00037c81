//! Client mode end to end: curl speaks plain HTTP to `stud --client`, which speaks TLS to
//! `openssl s_server` (and haproxy) as the backend, verifying it and presenting a client
//! certificate when asked.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{net, require_tool, stud_bin, TIMEOUT};

/// A TLS backend process, killed when dropped.
struct Backend {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts on `addr`.
fn wait_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the backend exited at start: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the backend never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `openssl s_server -www` on a free loopback port, serving `pem`; with `client_ca`, it demands
/// a client certificate chaining to it.
fn s_server(pem: &Path, client_ca: Option<&Path>) -> Backend {
    require_tool("openssl");
    let port = net::free_port();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-quiet", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(pem)
        .arg("-key")
        .arg(pem);
    if let Some(ca) = client_ca {
        cmd.args(["-Verify", "1", "-verify_return_error", "-CAfile"])
            .arg(ca);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr, &mut child);
    Backend { child, addr }
}

/// `stud --client` in front of `backend`, with `extra` flags.
fn stud_client(backend: SocketAddr, extra: &[&str]) -> Stud {
    let b = backend.to_string();
    let mut args = vec!["--client", "-f", "127.0.0.1,0", "-b", &b];
    args.extend_from_slice(extra);
    Stud::start(&stud_bin!(), &args)
}

/// `curl http://ADDR/`: (exit code, body).
fn curl(addr: SocketAddr) -> (i32, String) {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--http1.0"])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("run curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

#[test]
fn curl_reaches_a_tls_backend_through_stud_in_client_mode() {
    let pki = Pki::new();
    let backend = s_server(&pki.site_pem, None);
    let ca = format!("--backend-ca={}", path(&pki.ca_pem_file));
    // No PEM for the frontend: client mode needs none.
    let stud = stud_client(backend.addr, &[&ca, "--log-conns"]);
    let (code, body) = curl(stud.addr);
    assert_eq!(code, 0, "curl failed; stud said:\n{}", stud.output());
    // s_server -www answers with a page describing the session it negotiated.
    assert!(body.contains("Ciphers"), "{body}");
    assert!(body.contains("TLSv1.3"), "{body}");
    assert!(body.contains("no client certificate available"), "{body}");
    assert!(body.contains("New, TLSv1.3"), "{body}");
    // The worker's session cache serves the next connection: the backend resumes it.
    let (code, body) = curl(stud.addr);
    assert_eq!(code, 0, "curl failed; stud said:\n{}", stud.output());
    assert!(body.contains("Reused, TLSv1.3"), "{body}");
}

#[test]
fn a_backend_demanding_a_client_certificate_gets_backend_cert_and_refuses_without() {
    let pki = Pki::new();
    // The site's certificate, issued by the test CA, serves as stud's client certificate.
    let backend = s_server(&pki.site_pem, Some(&pki.ca_pem_file));
    let ca = format!("--backend-ca={}", path(&pki.ca_pem_file));

    let cert = format!("--backend-cert={}", path(&pki.site_pem));
    let stud = stud_client(backend.addr, &[&ca, &cert]);
    let (code, body) = curl(stud.addr);
    assert_eq!(code, 0, "curl failed; stud said:\n{}", stud.output());
    assert!(body.contains("Client certificate"), "{body}");
    assert!(
        body.contains("CN=localhost") || body.contains("CN = localhost"),
        "{body}"
    );
    drop(stud);

    let stud = stud_client(backend.addr, &[&ca]);
    let (_, body) = curl(stud.addr);
    assert!(
        !body.contains("Ciphers"),
        "served without a certificate: {body}"
    );
    stud.wait_line(|l| l.contains("backend_handshake_failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no failed backend handshake logged:\n{}", stud.output()));
}

#[test]
fn a_backend_whose_certificate_does_not_verify_is_refused() {
    let pki = Pki::new();
    let other = Pki::new();
    let backend = s_server(&pki.site_pem, None);

    // Issued by a CA stud was not told to trust.
    let ca = format!("--backend-ca={}", path(&other.ca_pem_file));
    let stud = stud_client(backend.addr, &[&ca]);
    let (_, body) = curl(stud.addr);
    assert!(body.is_empty(), "bytes from an unverified backend: {body}");
    let line = stud
        .wait_line(|l| l.contains("backend_handshake_failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no failed backend handshake logged:\n{}", stud.output()));
    assert!(line.contains("certificate"), "{line}");
    drop(stud);

    // Trusted, but for another name.
    let ca = format!("--backend-ca={}", path(&pki.ca_pem_file));
    let stud = stud_client(backend.addr, &[&ca, "--backend-sni=elsewhere.example"]);
    let (_, body) = curl(stud.addr);
    assert!(
        body.is_empty(),
        "bytes from a backend of another name: {body}"
    );
    stud.wait_line(|l| l.contains("backend_handshake_failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no failed backend handshake logged:\n{}", stud.output()));
    drop(stud);

    // --backend-insecure accepts it, and says so at start.
    let stud = stud_client(backend.addr, &["--backend-insecure"]);
    assert!(
        stud.output().contains("not verified"),
        "no warning:\n{}",
        stud.output()
    );
    let (code, body) = curl(stud.addr);
    assert_eq!(code, 0, "curl failed; stud said:\n{}", stud.output());
    assert!(body.contains("Ciphers"), "{body}");
}

#[test]
fn client_mode_flags_are_checked_at_start() {
    let pki = Pki::new();
    let run = |args: &[&str]| stud_tests::process::run(&stud_bin!(), args);
    let missing = run(&["--client", "-t", "--backend-ca=/nonexistent/ca.pem"]);
    assert_ne!(missing.code, Some(0));
    assert!(
        missing.stderr.contains("/nonexistent/ca.pem"),
        "{}",
        missing.stderr
    );
    let garbage = format!("--backend-ca={}", path(&pki.garbage));
    let bad = run(&["--client", "-t", &garbage]);
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("garbage.pem"), "{}", bad.stderr);
    let no_key = format!("--backend-cert={}", path(&pki.cert_only));
    let ca = format!("--backend-ca={}", path(&pki.ca_pem_file));
    let bad = run(&["--client", "-t", &ca, &no_key]);
    assert_ne!(bad.code, Some(0));
    assert!(bad.stderr.contains("private key"), "{}", bad.stderr);
    let good = run(&["--client", "-t", &ca]);
    assert_eq!(good.code, Some(0), "{}", good.stderr);
}

#[test]
fn haproxy_verifying_client_certificates_serves_stud() {
    if !stud_tests::optional_tool("haproxy") {
        return;
    }
    let pki = Pki::new();
    let port = net::free_port();
    let dir = pki.dir.path();
    let cfg = pki.dir.write(
        "haproxy.cfg",
        format!(
            "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
             frontend tls\n  bind 127.0.0.1:{port} ssl crt {site} ca-file {ca} verify required\n  \
             http-request return status 200 content-type text/plain lf-string \"verified %[ssl_c_verify] cn=%[ssl_c_s_dn(cn)]\\n\"\n",
            site = path(&pki.site_pem),
            ca = path(&pki.ca_pem_file),
        ),
    );
    let mut child = Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(addr, &mut child);
    let backend = Backend { child, addr };

    let ca = format!("--backend-ca={}", path(&pki.ca_pem_file));
    let cert = format!("--backend-cert={}", path(&pki.site_pem));
    let stud = stud_client(backend.addr, &[&ca, &cert]);
    let (code, body) = curl(stud.addr);
    assert_eq!(code, 0, "curl failed; stud said:\n{}", stud.output());
    assert_eq!(body, "verified 0 cn=localhost\n");
    drop(stud);

    let stud = stud_client(backend.addr, &[&ca]);
    let (_, body) = curl(stud.addr);
    assert!(
        !body.contains("verified"),
        "served without a certificate: {body}"
    );
    stud.wait_line(|l| l.contains("backend_handshake_failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no failed backend handshake logged:\n{}", stud.output()));
}
