//! Client certificates over real sockets with real clients: `openssl s_client -cert` and
//! `curl --cert` against the reference driver, with a backend that reads the PROXY v2 header
//! and answers with the client CN it found there.

mod client_pki;
mod driver_support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use client_pki::Pki;
use driver_support::*;
use stud_core::{ClientAddressMode, ClientVerifyMode, CloseReason};

fn pki() -> &'static Pki {
    static CELL: OnceLock<Pki> = OnceLock::new();
    CELL.get_or_init(Pki::new)
}

/// A scratch directory with the files the command-line clients need.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("stud-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // The server's identity as the clients' trust anchor (the key in it is ignored).
        std::fs::write(dir.join("server-ca.pem"), &identity().0).expect("write");
        for (id, name) in [
            (&pki().good, "good"),
            (&pki().revoked, "revoked"),
            (&pki().wrong_ca, "wrong-ca"),
        ] {
            std::fs::write(dir.join(format!("{name}.crt")), &id.cert_pem).expect("write");
            std::fs::write(dir.join(format!("{name}.key")), &id.key_pem).expect("write");
        }
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `cmd` with `input` on its standard input; kills it at [`TIMEOUT`].
fn run(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{program} must be installed to run this test: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    child.wait_with_output().expect("collect output")
}

/// A backend that reads the PROXY v2 header, finds the client CN in its SSL TLV, reads the
/// HTTP request and answers `hello <CN>` (or `hello -`), then closes.
fn cn_backend() -> Backend {
    Backend::spawn(|mut stream| {
        let mut head = [0u8; 16];
        if stream.read_exact(&mut head).is_err() {
            return;
        }
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[14], head[15]]))];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let cn = client_cn(head[13], &body).unwrap_or_else(|| "-".into());
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            request.push(byte[0]);
        }
        let reply = format!("hello {cn}");
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
    })
}

/// The `PP2_SUBTYPE_SSL_CN` of a PROXY v2 body (after the 16-byte preamble).
fn client_cn(family: u8, body: &[u8]) -> Option<String> {
    let mut at = match family {
        0x11 => 12,
        0x21 => 36,
        _ => 0,
    };
    while at + 3 <= body.len() {
        let len = usize::from(u16::from_be_bytes([body[at + 1], body[at + 2]]));
        let value = body.get(at + 3..at + 3 + len)?;
        if body[at] == 0x20 {
            let mut sub = 5;
            while sub + 3 <= value.len() {
                let l = usize::from(u16::from_be_bytes([value[sub + 1], value[sub + 2]]));
                let v = value.get(sub + 3..sub + 3 + l)?;
                if value[sub] == 0x22 {
                    return String::from_utf8(v.to_vec()).ok();
                }
                sub += 3 + l;
            }
        }
        at += 3 + len;
    }
    None
}

fn required_server(backend: &Backend) -> Running {
    let config = config(|b| {
        b.client_verify(ClientVerifyMode::Required)
            .client_verify_ca_pem(pki().ca_pem.clone())
            .crl(pki().crl(&[pki().revoked.serial]))
            .client_address(ClientAddressMode::ProxyV2)
    });
    Running::start(config, options(&[backend.addr]))
}

fn s_client(files: &Files, port: u16, id: Option<&str>) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
        ])
        .arg("-CAfile")
        .arg(files.path("server-ca.pem"));
    if let Some(name) = id {
        cmd.arg("-cert")
            .arg(files.path(&format!("{name}.crt")))
            .arg("-key")
            .arg(files.path(&format!("{name}.key")));
    }
    run(cmd, b"GET / HTTP/1.0\r\n\r\n")
}

fn curl(files: &Files, port: u16, id: Option<&str>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "15"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(files.path("server-ca.pem"));
    if let Some(name) = id {
        cmd.arg("--cert")
            .arg(files.path(&format!("{name}.crt")))
            .arg("--key")
            .arg(files.path(&format!("{name}.key")));
    }
    cmd.arg(format!("https://localhost:{port}/"));
    run(cmd, b"")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn openssl_s_client_with_a_good_certificate_is_served_and_named_to_the_backend() {
    let files = Files::new("s-client-mtls");
    let backend = cn_backend();
    let mut server = required_server(&backend);
    let out = s_client(&files, server.addr.port(), Some("good"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello client-good"),
        "{}",
        text(&out)
    );
    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::Completed);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn openssl_s_client_refused_without_certificate_revoked_or_from_another_ca() {
    let files = Files::new("s-client-refused");
    let backend = cn_backend();
    let mut server = required_server(&backend);
    for (id, alert) in [
        (None, "certificate required"),
        (Some("revoked"), "certificate revoked"),
        (Some("wrong-ca"), "unknown ca"),
    ] {
        let out = s_client(&files, server.addr.port(), id);
        let all = text(&out);
        assert!(all.contains(alert), "{id:?}: expected '{alert}' in\n{all}");
        assert!(!all.contains("hello "), "{all}");
    }
    let closes = server.wait_closes(3, TIMEOUT);
    assert!(closes
        .iter()
        .all(|(_, reason, _)| reason.as_str() == "handshake_failed"));
    assert_eq!(backend.accepts(), 0, "no backend for a refused client");
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn curl_with_a_certificate_is_served_and_without_one_refused() {
    let files = Files::new("curl-mtls");
    let backend = cn_backend();
    let mut server = required_server(&backend);
    let port = server.addr.port();
    let out = curl(&files, port, Some("good"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello client-good");
    let out = curl(&files, port, None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate required"),
        "{}",
        text(&out)
    );
    let _ = server.wait_closes(2, TIMEOUT);
    assert_eq!(backend.accepts(), 1);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}
