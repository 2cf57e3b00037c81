//! Backends (plain TCP servers on threads) and TLS clients (rustls) for the tests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use sha2::{Digest, Sha256};

use crate::TIMEOUT;

/// A backend: a listener on 127.0.0.1 (or `bind`) whose every connection runs `handler` on its
/// own thread. The threads live until the test process ends.
pub fn backend_on(bind: &str, handler: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind(bind).expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(TIMEOUT));
            let _ = conn.set_write_timeout(Some(TIMEOUT));
            let h = handler.clone();
            std::thread::spawn(move || h(conn));
        }
    });
    addr
}

/// A backend on 127.0.0.1 (see [`backend_on`]).
pub fn backend(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    backend_on("127.0.0.1:0", handler)
}

/// Copies everything back; on EOF, shuts its write side.
pub use stud_test_support::echo;

/// An echo backend.
pub fn echo_backend() -> SocketAddr {
    backend(echo)
}

/// A backend that reports, for each connection, the first `n` bytes it received (fewer if the
/// stream ended), then echoes the rest.
pub fn capture_backend(n: usize) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    capture_backend_until(move |got| got.len() >= n)
}

/// A backend that reports, for each connection, what it received until `complete` says it has
/// enough (or the stream ended), then echoes the rest.
pub fn capture_backend_until(
    complete: impl Fn(&[u8]) -> bool + Send + Sync + 'static,
) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = backend(move |mut conn| {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        // One byte at a time so nothing past "enough" is consumed.
        while !complete(&got) {
            match conn.read(&mut byte) {
                Ok(0) | Err(_) => break,
                Ok(_) => got.push(byte[0]),
            }
        }
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(got);
        }
        echo(conn);
    });
    (addr, rx)
}

/// A loopback port that was free a moment ago, for a process that binds it itself (another
/// process may take it in between: callers retry or accept that rare failure).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A loopback address that refuses every connection while this value lives (see
/// [`stud_test_support::RefusingPort`]).
pub use stud_test_support::RefusingPort as DeadAddress;

/// An address nothing listens on, held so that nothing else can take it.
pub fn dead_address() -> DeadAddress {
    stud_test_support::refusing_port()
}

pub use stud_test_support::{silent_address, SilentAddress};

/// A client configuration trusting only `ca`.
pub fn client_config(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    client_config_speaking(ca, rustls::DEFAULT_VERSIONS)
}

/// A client configuration trusting only `ca` that speaks only `versions`.
pub fn client_config_speaking(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    stud_test_support::client_config_speaking(std::slice::from_ref(ca), versions)
}

/// Runs `openssl s_client` against `addr` (as `127.0.0.1:PORT`) with `args` and nothing on its
/// standard input, and returns what it printed, standard output then standard error.
pub fn s_client(addr: SocketAddr, args: &[&str]) -> String {
    let connect = format!("127.0.0.1:{}", addr.port());
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &connect])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The subject of the certificate served at `addr` for the server name `sni`, as `openssl
/// s_client` prints it, spaces removed (`subject=CN=localhost`).
pub fn served_subject(addr: SocketAddr, sni: &str) -> String {
    let out = s_client(addr, &["-servername", sni]);
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no certificate for {sni}: {out}"))
        .replace(' ', "")
}

/// A blocking TLS stream to stud.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` and completes the handshake for `localhost`.
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<Tls> {
    handshake_over(TcpStream::connect_timeout(&addr, TIMEOUT)?, config)
}

/// Completes a handshake for `localhost` over a connection already made.
pub fn handshake_over(tcp: TcpStream, config: &Arc<ClientConfig>) -> io::Result<Tls> {
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("valid name");
    let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads until a clean end of stream (close_notify).
pub fn read_to_end(tls: &mut Tls) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tls.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads exactly `n` bytes.
pub fn read_exact(tls: &mut Tls, n: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    tls.read_exact(&mut out)?;
    Ok(out)
}

/// Sends close_notify and shuts the TCP write side: a TLS half-close.
pub fn half_close(tls: &mut Tls) -> io::Result<()> {
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut tls.sock)?;
    }
    tls.sock.shutdown(Shutdown::Write)
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Sends `send` over TLS while receiving until the server's close_notify, both at once, on one
/// nonblocking socket. Returns (SHA-256 of what was received, its length). Bounded by `timeout`.
pub fn exchange(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    send: &[u8],
    timeout: Duration,
) -> io::Result<([u8; 32], usize)> {
    let tls = connect(addr, config)?;
    let (mut conn, mut sock) = (tls.conn, tls.sock);
    sock.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let mut sent = 0usize;
    let mut closed_write = false;
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("exchange timed out: sent {sent}, received {received}"),
            ));
        }
        let mut progress = false;
        // Plaintext in, a bounded amount at a time so TLS output does not pile up.
        if sent < send.len() && !conn.wants_write() {
            let end = (sent + 64 * 1024).min(send.len());
            sent += conn.writer().write(&send[sent..end])?;
            progress = true;
        } else if sent == send.len() && !closed_write {
            conn.send_close_notify();
            closed_write = true;
            progress = true;
        }
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if closed_write && !conn.wants_write() {
            let _ = sock.shutdown(Shutdown::Write);
        }
        match conn.read_tls(&mut sock) {
            Ok(0) => {
                conn.process_new_packets().map_err(io::Error::other)?;
                drain_plaintext(&mut conn, &mut buf, &mut hasher, &mut received)?;
                return Ok((hasher.finalize().into(), received));
            }
            Ok(_) => {
                conn.process_new_packets().map_err(io::Error::other)?;
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let peer_done = drain_plaintext(&mut conn, &mut buf, &mut hasher, &mut received)?;
        if peer_done && closed_write && !conn.wants_write() {
            return Ok((hasher.finalize().into(), received));
        }
        if !progress {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Moves decrypted bytes into the hash; returns true once the peer's close_notify was seen.
fn drain_plaintext(
    conn: &mut ClientConnection,
    buf: &mut [u8],
    hasher: &mut Sha256,
    received: &mut usize,
) -> io::Result<bool> {
    loop {
        match conn.reader().read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                hasher.update(&buf[..n]);
                *received += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}
