//! Real C programs against the real libstud: the unit-style API test (`tests/c/api_test.c`),
//! the embedding example (`examples/c/embed.c`) driven end to end with a TLS client and a
//! backend, and the two programs printed in docs/c-api.md (the per-connection API in a poll()
//! loop, and `stud_server`) copied out of the document and driven with curl — each built with
//! `-Wall -Wextra -Werror`, run plain, under ASan+UBSan, and under valgrind (skipped with one
//! line when valgrind or curl is not installed; see `support`).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::{Flavor, TestCert};

/// Generous: valgrind slows TLS handshakes down a lot.
const RUN_LIMIT: Duration = Duration::from_secs(240);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn write_cert_files(dir: &Path, cert: &TestCert) {
    std::fs::write(dir.join("site.pem"), &cert.combined).expect("write site.pem");
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).expect("write cert.pem");
    std::fs::write(dir.join("key.pem"), &cert.key_pem).expect("write key.pem");
}

/// The first flight of a rustls client to `localhost`.
fn client_hello(cert: &TestCert) -> Vec<u8> {
    let name = "localhost".try_into().expect("valid server name");
    let mut client = rustls::ClientConnection::new(support::client_config(cert), name)
        .expect("client connection");
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).expect("write to a Vec");
    }
    hello
}

/// The C API test: its main and configuration half, and its connection half.
fn api_test_sources() -> [PathBuf; 2] {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    [dir.join("api_test.c"), dir.join("api_conn_test.c")]
}

fn assert_success(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn api_test_passes_plain_sanitized_and_under_valgrind() {
    let dir = support::scratch("api");
    let lib = support::install(&dir);
    let cert = support::test_cert();
    write_cert_files(&dir, &cert);
    std::fs::write(dir.join("hello.bin"), client_hello(&cert)).expect("write hello.bin");
    let args = ["site.pem", "cert.pem", "key.pem", "hello.bin"].map(|f| dir.join(f));
    let source = api_test_sources();

    let plain = dir.join("api_test");
    support::compile(&lib, &source, &plain, Flavor::Plain);
    let mut cmd = Command::new(&plain);
    cmd.args(&args);
    let out = support::run_with_timeout(cmd, RUN_LIMIT);
    assert_success("api_test", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains(", 0 failures"));

    let sanitized = dir.join("api_test_asan");
    support::compile(&lib, &source, &sanitized, Flavor::Sanitized);
    let mut cmd = Command::new(&sanitized);
    cmd.args(&args);
    support::sanitizer_env(&mut cmd);
    assert_success(
        "api_test (ASan+UBSan)",
        &support::run_with_timeout(cmd, RUN_LIMIT),
    );

    let Some(mut cmd) = support::valgrind_command(&plain) else {
        return;
    };
    cmd.args(&args);
    assert_success(
        "api_test (valgrind)",
        &support::run_with_timeout(cmd, RUN_LIMIT),
    );
}

/// A backend that, per connection, reads everything until end of stream and then sends it
/// back and closes: the reply can only arrive if the client's close reached the backend as a
/// write shutdown while the way back stayed open.
fn start_backend() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("local addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let mut data = Vec::new();
                if stream.read_to_end(&mut data).is_ok() {
                    let _ = stream.write_all(&data);
                }
            });
        }
    });
    (port, accepted)
}

/// The C server as a child process, with its stdout lines streamed to the test.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(mut cmd: Command) -> (Server, u16) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the embed server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            seen: Vec::new(),
        };
        let line = server.wait_for("listening on ");
        let port = line["listening on ".len()..]
            .trim()
            .parse()
            .expect("the port is a number");
        (server, port)
    }

    /// Waits for a stdout line starting with `prefix`; returns it.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!("no line starting with {prefix:?}; saw {:?}", self.seen),
            }
        }
    }

    /// Waits for the process to exit by itself; returns its stdout lines and stderr.
    fn finish(mut self) -> (Vec<String>, String) {
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait works") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the embed server did not exit; saw {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(
            status.success(),
            "the embed server exited with {status:?}\nstdout: {:#?}\nstderr:\n{stderr}",
            self.seen
        );
        (std::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached with the child still running when a test assertion failed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One TLS client: sends `data`, then close_notify, then reads the reply to the backend's
/// end of stream, which must arrive as a clean close_notify.
fn tls_round_trip(port: u16, cert: &TestCert, data: &[u8]) -> Vec<u8> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to the C server");
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("set timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT))
        .expect("set timeout");
    let name = "localhost".try_into().expect("valid server name");
    let conn = rustls::ClientConnection::new(support::client_config(cert), name)
        .expect("client connection");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(data).expect("send through the C server");
    tls.conn.send_close_notify();
    tls.flush().expect("flush close_notify");
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply)
        .expect("the reply ends with close_notify, not a bare FIN or reset");
    reply
}

fn run_embed(flavor: Flavor, under_valgrind: bool) {
    if under_valgrind && !support::optional_tool("valgrind") {
        return;
    }
    let name = match (flavor, under_valgrind) {
        (Flavor::Sanitized, _) => "embed-asan",
        (Flavor::Plain, true) => "embed-valgrind",
        (Flavor::Plain, false) => "embed",
    };
    let dir = support::scratch(name);
    let lib = support::install(&dir);
    let cert = support::test_cert();
    write_cert_files(&dir, &cert);
    let source = [Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c/embed.c")];
    let binary = dir.join(name);
    support::compile(&lib, &source, &binary, flavor);

    let (backend_port, accepted) = start_backend();
    let args = [
        dir.join("site.pem").display().to_string(),
        "0".to_owned(),
        "127.0.0.1".to_owned(),
        backend_port.to_string(),
        "3".to_owned(), // connections before a clean exit
    ];
    let mut cmd = if under_valgrind {
        match support::valgrind_command(&binary) {
            Some(cmd) => cmd,
            None => return,
        }
    } else {
        Command::new(&binary)
    };
    cmd.args(&args);
    if flavor == Flavor::Sanitized {
        support::sanitizer_env(&mut cmd);
    }
    let (mut server, port) = Server::start(cmd);

    // A small exchange and, at the same time, one big enough to exercise the budgets.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let big_client = {
        let cert = TestCert {
            combined: cert.combined.clone(),
            cert_pem: cert.cert_pem.clone(),
            key_pem: cert.key_pem.clone(),
            der: cert.der.clone(),
        };
        let big = big.clone();
        std::thread::spawn(move || tls_round_trip(port, &cert, &big))
    };
    let small = tls_round_trip(port, &cert, b"hello through libstud\n");
    assert_eq!(small, b"hello through libstud\n");
    let big_reply = big_client.join().expect("the big client thread ran");
    assert!(big_reply == big, "the 2 MB reply came back intact");
    server.wait_for("handshake sni=localhost");

    // Not TLS at all: the handshake fails and no backend connection is made for it.
    let mut raw = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    raw.set_read_timeout(Some(IO_TIMEOUT)).expect("set timeout");
    raw.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("send garbage");
    let mut alert = Vec::new();
    let _ = raw.read_to_end(&mut alert);
    assert_eq!(alert.first(), Some(&0x15), "a TLS alert record came back");

    let (lines, _stderr) = server.finish();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one backend connection per good client"
    );
    let handshakes: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("handshake "))
        .collect();
    assert_eq!(handshakes.len(), 2, "{lines:?}");
    for h in &handshakes {
        assert!(h.contains("sni=localhost"), "{h}");
        assert!(h.contains("alpn=http/1.1"), "{h}");
        assert!(h.contains("version=0304"), "{h}");
        assert!(h.contains("suite=TLS_"), "{h}");
    }
    let completed = lines
        .iter()
        .filter(|l| l.starts_with("closed reason=completed"))
        .count();
    assert_eq!(completed, 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("closed reason=handshake_failed message=handshake_failed: ")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "exiting after 3 connections"),
        "{lines:?}"
    );
}

#[test]
fn embed_example_terminates_tls_under_sanitizers() {
    run_embed(Flavor::Sanitized, false);
}

#[test]
fn embed_example_terminates_tls_under_valgrind() {
    run_embed(Flavor::Plain, true);
}

/// A CA (PEM) and a client certificate it issued (chain and PKCS#8 key, DER).
fn client_ca_and_cert() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let ca = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("client key");
    let params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    let cert = params.signed_by(&key, &ca).expect("client certificate");
    (ca_cert.pem(), cert.der().to_vec(), key.serialize_der())
}

/// Connects with a client certificate and sends one line, or without one and only
/// handshakes; returns what came back, or the client's error.
fn client_cert_round_trip(
    port: u16,
    cert: &TestCert,
    client: Option<(&[u8], &[u8])>,
) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("server trust anchor");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(roots);
    let config = match client {
        Some((der, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(der.to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to the C server");
    tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("set timeout");
    tcp.set_write_timeout(Some(IO_TIMEOUT))
        .expect("set timeout");
    let name = "localhost".try_into().expect("valid server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    if client.is_none() {
        // Only the handshake: the server reads the whole flight before it answers with its
        // alert, so the alert is not lost to a reset caused by unread data.
        let mut reply = Vec::new();
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
        tls.read_to_end(&mut reply).map_err(|e| e.to_string())?;
        return Ok(reply);
    }
    tls.write_all(b"who am I?\n").map_err(|e| e.to_string())?;
    tls.conn.send_close_notify();
    tls.flush().map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    tls.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    Ok(reply)
}

/// `embed.c` with `STUD_CLIENT_CA`: a client with a certificate from that CA is served and
/// its certificate, read through `stud_conn_peer_certificate`, is the one it sent; a client
/// without one is refused with `certificate_required` and gets no backend.
fn run_embed_client_cert(flavor: Flavor, under_valgrind: bool) {
    let name = match (flavor, under_valgrind) {
        (Flavor::Sanitized, _) => "embed-mtls-asan",
        (Flavor::Plain, true) => "embed-mtls-valgrind",
        (Flavor::Plain, false) => "embed-mtls",
    };
    let dir = support::scratch(name);
    let lib = support::install(&dir);
    let cert = support::test_cert();
    write_cert_files(&dir, &cert);
    let (ca_pem, client_der, client_key) = client_ca_and_cert();
    std::fs::write(dir.join("clients-ca.pem"), &ca_pem).expect("write clients-ca.pem");
    let source = [Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c/embed.c")];
    let binary = dir.join(name);
    support::compile(&lib, &source, &binary, flavor);

    let (backend_port, accepted) = start_backend();
    let mut cmd = if under_valgrind {
        match support::valgrind_command(&binary) {
            Some(cmd) => cmd,
            None => return,
        }
    } else {
        Command::new(&binary)
    };
    cmd.arg(dir.join("site.pem"))
        .args(["0", "127.0.0.1"])
        .arg(backend_port.to_string())
        .arg("2")
        .env("STUD_CLIENT_CA", dir.join("clients-ca.pem"));
    if flavor == Flavor::Sanitized {
        support::sanitizer_env(&mut cmd);
    }
    let (server, port) = Server::start(cmd);

    let reply = client_cert_round_trip(port, &cert, Some((&client_der, &client_key)));
    assert_eq!(reply.as_deref(), Ok(&b"who am I?\n"[..]));
    let refused = client_cert_round_trip(port, &cert, None);
    let error = refused.expect_err("a client without a certificate is refused");
    assert!(error.contains("CertificateRequired"), "{error}");

    let (lines, _stderr) = server.finish();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a backend only for the verified client"
    );
    let tail: String = client_der[client_der.len() - 8..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let want = format!(
        " client=verified certs=1 leaf_len={} leaf_tail={tail}",
        client_der.len()
    );
    let handshakes: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("handshake "))
        .collect();
    assert_eq!(handshakes.len(), 1, "{lines:?}");
    assert!(
        handshakes[0].ends_with(&want),
        "{} does not end with {want}",
        handshakes[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("closed reason=handshake_failed message=handshake_failed: ")),
        "{lines:?}"
    );
}

#[test]
fn embed_example_verifies_client_certificates_under_sanitizers() {
    run_embed_client_cert(Flavor::Sanitized, false);
}

#[test]
fn embed_example_verifies_client_certificates_under_valgrind() {
    run_embed_client_cert(Flavor::Plain, true);
}

/// `server_test.c`: the stud_server API from C, with one TLS exchange through the running
/// server while it waits for the go-ahead on its standard input.
fn run_server_test(flavor: Flavor, under_valgrind: bool) {
    if under_valgrind && !support::optional_tool("valgrind") {
        return;
    }
    let name = match (flavor, under_valgrind) {
        (Flavor::Sanitized, _) => "server-asan",
        (Flavor::Plain, true) => "server-valgrind",
        (Flavor::Plain, false) => "server",
    };
    let dir = support::scratch(name);
    let lib = support::install(&dir);
    let cert = support::test_cert();
    write_cert_files(&dir, &cert);
    let source = [Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/server_test.c")];
    let binary = dir.join(name);
    support::compile(&lib, &source, &binary, flavor);

    let (backend_port, accepted) = start_backend();
    let mut cmd = if under_valgrind {
        match support::valgrind_command(&binary) {
            Some(cmd) => cmd,
            None => return,
        }
    } else {
        Command::new(&binary)
    };
    cmd.arg(dir.join("site.pem")).arg(backend_port.to_string());
    cmd.stdin(Stdio::piped());
    if flavor == Flavor::Sanitized {
        support::sanitizer_env(&mut cmd);
    }
    let (mut server, port) = Server::start(cmd);
    let reply = tls_round_trip(port, &cert, b"through stud_server\n");
    assert_eq!(reply, b"through stud_server\n");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let mut stdin = server.child.stdin.take().expect("piped stdin");
    stdin.write_all(b"go\n").expect("send the go-ahead");
    drop(stdin);
    let (lines, _) = server.finish();
    assert!(
        lines.iter().any(|l| l == "server_test: 0 failures"),
        "{lines:?}"
    );
}

#[test]
fn server_api_works_from_c_under_sanitizers() {
    run_server_test(Flavor::Sanitized, false);
}

#[test]
fn server_api_works_from_c_under_valgrind() {
    run_server_test(Flavor::Plain, true);
}

/// The program of docs/c-api.md whose ```c block opens with `/* NAME.c:`, so that the
/// documentation is the tested program and cannot rot.
fn doc_program(name: &str) -> String {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/c-api.md");
    let text = std::fs::read_to_string(&doc).expect("docs/c-api.md is readable");
    let opening = format!("```c\n/* {name}.c:");
    let start = text
        .find(&opening)
        .unwrap_or_else(|| panic!("docs/c-api.md has no program {name}"))
        + "```c\n".len();
    let len = text[start..].find("```").expect("the C program is closed");
    text[start..start + len].to_owned()
}

/// An HTTP backend: answers each request with a page naming the first line it received (the
/// PROXY v1 line) and the request line, then closes. Returns its port and a count of
/// connections.
fn start_http_backend() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().expect("local addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let mut reader = BufReader::new(&stream);
                let mut seen = Vec::new();
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => seen.push(line.trim_end().to_owned()),
                    }
                }
                let body = format!(
                    "{}\n",
                    seen.iter().take(2).cloned().collect::<Vec<_>>().join("\n")
                );
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = &stream;
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    (port, accepted)
}

/// `curl` fetches `path` through the TLS port, trusting the test certificate; returns the page.
fn curl(dir: &Path, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "120",
            "--cacert",
        ])
        .arg(dir.join("cert.pem"))
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("run curl");
    assert_success("curl", &out);
    String::from_utf8(out.stdout).expect("the page is text")
}

/// Builds the docs' program `name` for `flavor` and starts it with `args` after the PEM file;
/// `None` when a tool it needs is missing (the skip is printed).
fn start_doc_program(
    name: &str,
    flavor: Flavor,
    under_valgrind: bool,
    args: &[String],
) -> Option<(Server, u16, PathBuf)> {
    if !support::optional_tool("curl") || (under_valgrind && !support::optional_tool("valgrind")) {
        return None;
    }
    let tag = match (flavor, under_valgrind) {
        (Flavor::Sanitized, _) => "asan",
        (Flavor::Plain, true) => "valgrind",
        (Flavor::Plain, false) => "plain",
    };
    let dir = support::scratch(&format!("doc-{name}-{tag}"));
    let lib = support::install(&dir);
    write_cert_files(&dir, &support::test_cert());
    let source = [dir.join(format!("{name}.c"))];
    std::fs::write(&source[0], doc_program(name)).expect("write the program");
    let binary = dir.join(name);
    support::compile(&lib, &source, &binary, flavor);
    let mut cmd = if under_valgrind {
        support::valgrind_command(&binary)?
    } else {
        Command::new(&binary)
    };
    cmd.arg(dir.join("site.pem")).args(args);
    if flavor == Flavor::Sanitized {
        support::sanitizer_env(&mut cmd);
    }
    let (server, port) = Server::start(cmd);
    Some((server, port, dir))
}

/// A page fetched through the program shows the client's address reached the backend first.
fn assert_page(page: &str, path: &str) {
    let mut lines = page.lines();
    let proxy = lines.next().unwrap_or_default();
    assert!(
        proxy.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 "),
        "{page:?}"
    );
    assert_eq!(
        lines.next(),
        Some(format!("GET {path} HTTP/1.1").as_str()),
        "{page:?}"
    );
}

/// docs/c-api.md's per-connection program: two curl fetches, then it exits cleanly.
fn run_doc_conn_loop(flavor: Flavor, under_valgrind: bool) {
    let (backend, accepted) = start_http_backend();
    let args = ["0".to_owned(), backend.to_string(), "2".to_owned()];
    let Some((server, port, dir)) = start_doc_program("conn_loop", flavor, under_valgrind, &args)
    else {
        return;
    };
    for path in ["/first", "/second"] {
        assert_page(&curl(&dir, port, path), path);
    }
    let (lines, _) = server.finish();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    let handshakes = lines
        .iter()
        .filter(|l| l.starts_with("handshake sni=localhost"))
        .count();
    let closes = lines
        .iter()
        .filter(|l| l.starts_with("closed reason="))
        .count();
    assert_eq!((handshakes, closes), (2, 2), "{lines:?}");
}

/// docs/c-api.md's stud_server program: curl through it (its first backend refuses), then
/// SIGTERM stops it cleanly.
fn run_doc_server(flavor: Flavor, under_valgrind: bool) {
    let (backend, accepted) = start_http_backend();
    let refusing = stud_test_support::refusing_port();
    let args = [
        "0".to_owned(),
        refusing.addr.port().to_string(),
        backend.to_string(),
    ];
    let Some((mut server, port, dir)) = start_doc_program("server", flavor, under_valgrind, &args)
    else {
        return;
    };
    for path in ["/one", "/two", "/three"] {
        assert_page(&curl(&dir, port, path), path);
    }
    server.wait_for("closed ");
    let kill = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .output()
        .expect("run kill");
    assert_success("kill -TERM", &kill);
    let (lines, _) = server.finish();
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert!(lines.iter().any(|l| l == "stopped"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("warning ")),
        "the refusing backend was tried and reported: {lines:?}"
    );
    assert!(
        lines.iter().filter(|l| l.starts_with("handshake ")).count() == 3,
        "{lines:?}"
    );
}

#[test]
fn docs_conn_loop_serves_curl_under_sanitizers() {
    run_doc_conn_loop(Flavor::Sanitized, false);
}

#[test]
fn docs_conn_loop_serves_curl_under_valgrind() {
    run_doc_conn_loop(Flavor::Plain, true);
}

#[test]
fn docs_server_serves_curl_under_sanitizers() {
    run_doc_server(Flavor::Sanitized, false);
}

#[test]
fn docs_server_serves_curl_under_valgrind() {
    run_doc_server(Flavor::Plain, true);
}

/// The static library links on its own with the system libraries stud.pc lists as private.
#[test]
fn api_test_links_statically() {
    let dir = support::scratch("static");
    let lib = support::install(&dir);
    let cert = support::test_cert();
    write_cert_files(&dir, &cert);
    std::fs::write(dir.join("hello.bin"), client_hello(&cert)).expect("write hello.bin");
    let source = api_test_sources();
    let binary = dir.join("api_test_static");
    support::compile_static(&lib, &source, &binary);
    let mut cmd = Command::new(&binary);
    cmd.args(["site.pem", "cert.pem", "key.pem", "hello.bin"].map(|f| dir.join(f)));
    assert_success(
        "api_test (static)",
        &support::run_with_timeout(cmd, RUN_LIMIT),
    );
}
