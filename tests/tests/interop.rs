//! The interop matrix: independent TLS stacks — OpenSSL (`s_client`, curl, python's `ssl`),
//! GnuTLS (`gnutls-cli`), Go's `crypto/tls` and Java's `javax.net.ssl` — each through stud at
//! TLS 1.2 and TLS 1.3, with the bytes checked by hash both ways and the connection ended by
//! close_notify. A missing tool fails the test (see `.ci/apt-packages`).

#[path = "interop/clients.rs"]
mod interop_clients;

use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use stud_tests::net::{backend, pattern, sha256};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::start_stud;

/// Bytes each client sends.
pub(crate) const REQUEST: usize = 256 * 1024;
/// Bytes of payload each client receives after the request's hash.
pub(crate) const REPLY: usize = 1 << 20;
/// The two protocol versions stud speaks.
pub(crate) const VERSIONS: [Version; 2] = [Version::Tls12, Version::Tls13];

/// A TLS version the client is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads exactly `n` bytes; `None` if the stream ends first.
fn read_n(conn: &mut impl Read, n: usize) -> Option<Vec<u8>> {
    let mut body = vec![0u8; n];
    conn.read_exact(&mut body).ok()?;
    Some(body)
}

/// The answer to a request body: its SHA-256 in hex and a newline, then [`REPLY`] bytes.
fn answer(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\n", hex(&sha256(body))).into_bytes();
    out.extend_from_slice(&pattern(77, REPLY));
    out
}

/// A backend speaking either HTTP (`POST` with a Content-Length, for curl) or a length line
/// followed by that many bytes (for the stream clients). It answers, then closes.
fn hash_backend() -> SocketAddr {
    backend(|conn| {
        let Ok(writer) = conn.try_clone() else { return };
        let mut reader = BufReader::new(conn);
        let mut first = String::new();
        if reader.read_line(&mut first).is_err() {
            return;
        }
        let mut writer = writer;
        if first.starts_with("POST ") {
            let mut length = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse::<usize>().ok();
                    }
                }
            }
            let Some(body) = length.and_then(|n| read_n(&mut reader, n)) else {
                return;
            };
            let reply = answer(&body);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reply.len()
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(&reply);
        } else {
            let Ok(n) = first.trim().parse::<usize>() else {
                return;
            };
            let Some(body) = read_n(&mut reader, n) else {
                return;
            };
            let _ = writer.write_all(&answer(&body));
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
    })
}

/// stud in front of a hash backend, a request file in both framings, and the CA file.
pub(crate) struct Fixture {
    /// Certificates; `ca_pem_file` is what clients trust.
    pub(crate) pki: Pki,
    /// The daemon.
    pub(crate) stud: Stud,
    /// Scratch space for client programs.
    pub(crate) dir: TempDir,
    /// The request body.
    pub(crate) body: Vec<u8>,
    /// The body with its length line, for the stream clients.
    pub(crate) framed: PathBuf,
    /// The body alone, for curl.
    pub(crate) raw: PathBuf,
}

impl Fixture {
    /// Starts everything.
    pub(crate) fn new() -> Fixture {
        let pki = Pki::new();
        let stud = start_stud!(&pki, hash_backend(), &["-n", "1"]);
        let dir = TempDir::new();
        let body = pattern(66, REQUEST);
        let mut framed = format!("{REQUEST}\n").into_bytes();
        framed.extend_from_slice(&body);
        let framed = dir.write("request.framed", framed);
        let raw = dir.write("request.raw", &body);
        Fixture {
            pki,
            stud,
            dir,
            body,
            framed,
            raw,
        }
    }

    /// The frontend port.
    pub(crate) fn port(&self) -> u16 {
        self.stud.addr.port()
    }

    /// The CA file as a string argument.
    pub(crate) fn ca(&self) -> &str {
        self.pki.ca_pem_file.to_str().expect("UTF-8 path")
    }

    /// Checks what a client received: the request's hash, then the whole payload.
    pub(crate) fn check_reply(&self, stack: &str, got: &[u8]) {
        let expected_head = format!("{}\n", hex(&sha256(&self.body)));
        assert!(
            got.len() >= expected_head.len(),
            "{stack}: short reply ({} bytes): {:?}",
            got.len(),
            String::from_utf8_lossy(&got[..got.len().min(200)])
        );
        let (head, payload) = got.split_at(expected_head.len());
        assert_eq!(
            String::from_utf8_lossy(head),
            expected_head,
            "{stack}: the backend received other bytes than were sent"
        );
        assert_eq!(payload.len(), REPLY, "{stack}: reply length");
        assert!(
            sha256(payload) == sha256(&pattern(77, REPLY)),
            "{stack}: the reply was corrupted"
        );
        // And stud is still there for the next stack.
        assert!(TcpStream::connect(self.stud.addr).is_ok());
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

#[test]
fn openssl_s_client() {
    interop_clients::openssl(&Fixture::new());
}

#[test]
fn curl() {
    interop_clients::curl(&Fixture::new());
}

#[test]
fn python_ssl() {
    interop_clients::python(&Fixture::new());
}

#[test]
fn gnutls_cli() {
    interop_clients::gnutls(&Fixture::new());
}

#[test]
fn go_crypto_tls() {
    interop_clients::go(&Fixture::new());
}

#[test]
fn java_jsse() {
    interop_clients::java(&Fixture::new());
}
