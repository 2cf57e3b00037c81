//! Bytes through stud with real clients: rustls, openssl s_client, curl and python's ssl; large
//! transfers both ways at once; half-closes both ways; a backend that is down or resets.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stud_tests::net::{self, backend, connect, echo_backend, half_close, pattern, sha256};
use stud_tests::pki::Pki;
use stud_tests::process::{alive, Stud};
use stud_tests::{require_tool, stud_bin, TIMEOUT};

fn start(pki: &Pki, backend: SocketAddr, extra: &[&str]) -> Stud {
    Stud::serve(&stud_bin!(), &pki.site_pem, backend, extra)
}

#[test]
fn rustls_client_echo() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"hello through stud").expect("write");
    assert_eq!(
        net::read_exact(&mut tls, 18).expect("read"),
        b"hello through stud"
    );
}

/// Runs an interactive client: writes `input`, waits until stdout contains `expect`, closes
/// stdin; the client must then exit. Returns its stdout.
fn interactive(cmd: &mut Command, input: &[u8], expect: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write to client");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut all = Vec::new();
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(String::from_utf8_lossy(&all).into_owned());
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = String::new();
    while !seen.contains(expect) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => seen = s,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("client output");
                panic!(
                    "client never printed {expect:?}; stdout {seen:?}, stderr {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    drop(stdin);
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("client did not exit after stdin closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

#[test]
fn openssl_s_client_echo() {
    require_tool("openssl");
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &[]);
    let out = interactive(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &stud.addr.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
            pki.ca_pem_file.to_str().expect("utf-8"),
            "-verify_return_error",
            "-brief",
        ]),
        b"ping from openssl\n",
        "ping from openssl",
    );
    assert!(out.contains("ping from openssl"));
}

/// An HTTP backend: one canned response per connection.
fn http_backend() -> SocketAddr {
    backend(|mut conn| {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello, curl\n",
        );
    })
}

#[test]
fn curl_gets_a_page() {
    require_tool("curl");
    let pki = Pki::new();
    let stud = start(&pki, http_backend(), &[]);
    let port = stud.addr.port();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--cacert",
            pki.ca_pem_file.to_str().expect("utf-8"),
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &format!("https://localhost:{port}/"),
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello, curl\n");
    // And with --insecure, as an operator would try first.
    let out = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "10",
            &format!("https://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("run curl");
    assert_eq!(out.stdout, b"hello, curl\n");
}

#[test]
fn python_ssl_client() {
    require_tool("python3");
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &[]);
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"python says hi")
        got = b""
        while len(got) < 14:
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        print(got.decode(), s.version())
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            pki.ca_pem_file.to_str().expect("utf-8"),
            &stud.addr.port().to_string(),
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("python says hi TLSv1.3"), "{stdout}");
}

#[test]
fn thirty_two_mib_both_ways_at_once() {
    const LEN: usize = 32 << 20;
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = backend(move |conn| {
        // Receive and send on two threads, so both directions really run at once.
        let mut reader = conn.try_clone().expect("clone");
        let mut writer = conn;
        let sender = std::thread::spawn(move || {
            let data = pattern(2, LEN);
            let ok = writer.write_all(&data).is_ok();
            let _ = writer.shutdown(Shutdown::Write);
            ok
        });
        let mut got = Vec::with_capacity(LEN);
        let _ = reader.read_to_end(&mut got);
        let sent_ok = sender.join().unwrap_or(false);
        if let Ok(tx) = tx.lock() {
            let _ = tx.send((sha256(&got), got.len(), sent_ok));
        }
    });
    let stud = start(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let upload = pattern(1, LEN);
    let (hash, len) = net::exchange(stud.addr, &config, &upload, Duration::from_secs(120))
        .expect("exchange completes");
    assert_eq!(len, LEN, "bytes received by the client");
    assert_eq!(hash, sha256(&pattern(2, LEN)), "download corrupted");
    let (backend_hash, backend_len, sent_ok) = rx.recv_timeout(TIMEOUT).expect("backend report");
    assert!(sent_ok, "backend could not send everything");
    assert_eq!(backend_len, LEN, "bytes received by the backend");
    assert_eq!(backend_hash, sha256(&upload), "upload corrupted");
}

#[test]
fn client_half_close_still_gets_the_reply() {
    let pki = Pki::new();
    // Reads the whole request (to EOF), then answers and closes.
    let addr = backend(|mut conn| {
        let mut req = Vec::new();
        let _ = conn.read_to_end(&mut req);
        let _ = conn.write_all(format!("got {} bytes", req.len()).as_bytes());
    });
    let stud = start(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(&[7u8; 5000]).expect("write");
    half_close(&mut tls).expect("half-close");
    let reply = net::read_to_end(&mut tls).expect("reply then close_notify");
    assert_eq!(reply, b"got 5000 bytes");
}

#[test]
fn backend_half_close_lets_the_client_keep_sending() {
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    // Says hello, shuts its write side, then reads what the client still sends.
    let addr = backend(move |mut conn| {
        let _ = conn.write_all(b"hello and goodbye");
        let _ = conn.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest);
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(rest);
        }
    });
    let stud = start(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    // The backend's EOF arrives as close_notify: a clean end of the download.
    let got = net::read_to_end(&mut tls).expect("clean end of stream");
    assert_eq!(got, b"hello and goodbye");
    tls.write_all(b"after your close")
        .expect("client may still write");
    half_close(&mut tls).expect("half-close");
    let rest = rx.recv_timeout(TIMEOUT).expect("backend got the rest");
    assert_eq!(rest, b"after your close");
}

/// The client's connection ends (EOF or error, not a hang) within `within`.
fn closes_promptly(tls: &mut net::Tls, within: Duration) {
    let start = Instant::now();
    tls.sock
        .set_read_timeout(Some(within))
        .expect("set timeout");
    let mut buf = [0u8; 100];
    let result = tls.read(&mut buf);
    assert!(
        !matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "connection still open after {within:?}"
    );
    assert!(
        matches!(result, Ok(0) | Err(_)),
        "unexpected data: {result:?}"
    );
    assert!(start.elapsed() < within);
}

#[test]
fn backend_down_closes_the_client_and_stud_survives() {
    let pki = Pki::new();
    let dead = net::dead_address();
    let stud = start(&pki, dead.addr, &["-n", "1"]);
    let config = net::client_config(&pki.ca_der);
    for _ in 0..3 {
        let mut tls = connect(stud.addr, &config).expect("handshake still completes");
        let _ = tls.write_all(b"anyone there?");
        closes_promptly(&mut tls, Duration::from_secs(5));
    }
    assert!(alive(stud.pid()));
    for pid in stud.worker_pids(1) {
        assert!(alive(pid), "worker died on a refused backend");
    }
}

#[test]
fn backend_reset_closes_the_client() {
    let pki = Pki::new();
    let addr = backend(|conn| {
        let mut buf = [0u8; 16];
        let mut c = &conn;
        let _ = c.read(&mut buf);
        // Linger 0: close sends RST.
        let sock = socket2::Socket::from(conn);
        let _ = sock.set_linger(Some(Duration::ZERO));
        drop(sock);
    });
    let stud = start(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"trigger").expect("write");
    closes_promptly(&mut tls, Duration::from_secs(5));
    // Still serving.
    let addr_alive = connect(stud.addr, &config);
    assert!(addr_alive.is_ok(), "stud stopped serving after a reset");
}

#[test]
fn a_client_reset_reaches_the_backend_as_a_reset() {
    let pki = Pki::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = backend(move |conn| {
        let mut c = &conn;
        let mut buf = [0u8; 64];
        // The request, then whatever ends the connection: a reset, or an orderly end of stream.
        let _ = c.read(&mut buf);
        let end = loop {
            match c.read(&mut buf) {
                Ok(0) => break "end of stream".to_string(),
                Ok(_) => {}
                Err(e) => break format!("{:?}", e.kind()),
            }
        };
        let _ = tx.send(end);
    });
    let stud = start(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"request").expect("write");
    tls.flush().expect("flush");
    // Let the request reach the backend before the client aborts.
    std::thread::sleep(Duration::from_millis(200));
    let sock = socket2::Socket::from(tls.sock);
    sock.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    drop(sock);
    let end = rx
        .recv_timeout(TIMEOUT)
        .expect("the backend's connection ends");
    assert_eq!(end, "ConnectionReset");
}

#[test]
fn garbage_instead_of_a_handshake_is_closed() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &[]);
    let mut tcp = TcpStream::connect(stud.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let mut buf = Vec::new();
    let result = tcp.read_to_end(&mut buf);
    assert!(
        result.is_ok()
            || result
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{result:?}"
    );
    assert!(
        stud.wait_line(|l| l.contains("handshake with 127.0.0.1:"), TIMEOUT)
            .is_some(),
        "handshake failure not logged: {}",
        stud.output()
    );
}
