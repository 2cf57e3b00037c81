//! Tools for the hostile-world tests: a backend that counts its connections, raw TCP probes that
//! say how and when stud ended a connection, TLS records built by hand, and a real ClientHello
//! captured in memory from a rustls client.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::net;
use crate::pki::Pki;
use crate::process::Stud;
use crate::TIMEOUT;

/// Starts the binary under test on a free loopback port with `backend`, `extra` flags and the
/// test certificate.
#[macro_export]
macro_rules! start_stud {
    ($pki:expr, $backend:expr, $extra:expr) => {
        $crate::hostile::start_with(&$crate::stud_bin!(), $pki, $backend, $extra)
    };
}

/// See [`start_stud!`].
pub fn start_with(bin: &std::path::Path, pki: &Pki, backend: SocketAddr, extra: &[&str]) -> Stud {
    let b = backend.to_string();
    let mut args = vec!["-f", "127.0.0.1,0", "-b", &b];
    args.extend_from_slice(extra);
    args.push(pki.site_pem.to_str().expect("temp paths are UTF-8"));
    Stud::start(bin, &args)
}

/// A loopback of one address family. The battery's supervision and resource tests run over
/// both at once (stud listening on each, clients and backends split between them), so IPv6 is
/// covered without running each test twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// 127.0.0.1
    V4,
    /// ::1
    V6,
}

impl Family {
    /// Both, IPv4 first (the order of [`start_dual`]'s `addrs`).
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The loopback address.
    pub fn loopback(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Family::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    }

    /// A free port on the loopback, as stud's `-f` takes it.
    pub fn frontend(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1,0",
            Family::V6 => "[::1]:0",
        }
    }
}

/// Starts the binary under test on a free port of each loopback (`stud.addrs[0]` is IPv4,
/// `stud.addrs[1]` IPv6) with `backend`, `extra` flags and the test certificate.
pub fn start_dual(bin: &std::path::Path, pki: &Pki, backend: SocketAddr, extra: &[&str]) -> Stud {
    let b = backend.to_string();
    let mut args = vec![
        "-f",
        Family::V4.frontend(),
        "-f",
        Family::V6.frontend(),
        "-b",
        &b,
    ];
    args.extend_from_slice(extra);
    args.push(pki.site_pem.to_str().expect("temp paths are UTF-8"));
    let stud = Stud::start(bin, &args);
    assert!(
        stud.addrs.len() == 2 && stud.addrs[0].is_ipv4() && stud.addrs[1].is_ipv6(),
        "not listening on both loopbacks: {:?}",
        stud.addrs
    );
    stud
}

/// An echo backend that counts the connections it accepted: proof that stud did or did not
/// reach the backend.
pub fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    counting_backend_on(Family::V4)
}

/// [`counting_backend`] on the loopback of `family`.
pub fn counting_backend_on(family: Family) -> (SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let bind = SocketAddr::new(family.loopback(), 0).to_string();
    let addr = net::backend_on(&bind, move |conn| {
        seen.fetch_add(1, Ordering::SeqCst);
        net::echo(conn);
    });
    (addr, count)
}

/// Reads the counter.
pub fn accepted(count: &AtomicUsize) -> usize {
    count.load(Ordering::SeqCst)
}

/// How stud ended a connection, seen from the raw TCP client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// An orderly FIN.
    Eof,
    /// A reset (or another socket error).
    Reset,
    /// Still open when the probe stopped waiting.
    Open,
}

/// What one raw probe observed.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Every byte stud sent.
    pub reply: Vec<u8>,
    /// How the connection ended.
    pub ending: Ending,
    /// From the end of our sending to the end of the connection.
    pub after: Duration,
}

impl Observed {
    /// Whether stud's reply contains a TLS alert record (content type 21).
    pub fn has_alert(&self) -> bool {
        records(&self.reply).iter().any(|(ty, _)| *ty == 21)
    }
}

/// A ClientHello handshake message (type 1, with its length) with `legacy_version`, these
/// cipher suites and extensions, a fixed random and no session id: for refusals stud must
/// judge from the hello alone.
pub fn client_hello_message(legacy_version: u16, suites: &[u16], extensions: &[u8]) -> Vec<u8> {
    let mut body = legacy_version.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x5a; 32]);
    body.push(0);
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    if !extensions.is_empty() {
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
    }
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    msg
}

/// Splits `bytes` into TLS records (type, payload); a trailing partial record is dropped.
pub fn records(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest.len() < 5 + len {
            break;
        }
        out.push((rest[0], &rest[5..5 + len]));
        rest = &rest[5 + len..];
    }
    out
}

/// Connects to `addr` (bounded by [`TIMEOUT`]).
pub fn raw_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    Ok(tcp)
}

/// Reads from `tcp` until it ends or `deadline` passes, collecting what stud sent.
pub fn watch(tcp: &mut TcpStream, deadline: Instant) -> Observed {
    let start = Instant::now();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let ending = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Ending::Open;
        }
        if tcp.set_read_timeout(Some(left)).is_err() {
            break Ending::Reset;
        }
        match tcp.read(&mut buf) {
            Ok(0) => break Ending::Eof,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                break Ending::Open
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break Ending::Reset,
        }
    };
    Observed {
        reply,
        ending,
        after: start.elapsed(),
    }
}

/// Connects, sends `payload` (a failed write is fine: stud may already have closed), then
/// watches until the connection ends or `within` passes.
pub fn probe(addr: SocketAddr, payload: &[u8], within: Duration) -> Observed {
    let mut tcp = raw_connect(addr).expect("stud accepts TCP connections");
    let _ = tcp.write_all(payload);
    watch(&mut tcp, Instant::now() + within)
}

/// A TLS record of `content_type` with legacy version `version` around `payload`.
pub fn record(content_type: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("test records are shorter than 64 KiB");
    let mut out = vec![content_type];
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a rustls client sends first: its ClientHello, as the records it writes. Captured in
/// memory, so the bytes are a real, current hello (TLS 1.3 and 1.2, key shares, SNI).
pub fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("valid name");
    let mut conn = ClientConnection::new(config.clone(), name).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)
            .expect("writing to a Vec cannot fail");
    }
    out
}

/// The handshake payload of a hello (the records' payloads joined).
pub fn hello_handshake(hello: &[u8]) -> Vec<u8> {
    records(hello)
        .iter()
        .filter(|(ty, _)| *ty == 22)
        .flat_map(|(_, p)| p.iter().copied())
        .collect()
}

/// Deterministic pseudo-random numbers (xorshift64), for reproducible mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (which must be positive).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One mutation of `hello`: flipped bits, random bytes, a truncation, lengths pushed to their
/// maximum, bytes inserted or removed. Which one depends on `rng`.
pub fn mutate(hello: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = hello.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if m.is_empty() {
            break;
        }
        let at = rng.below(m.len());
        match rng.below(6) {
            0 => m[at] ^= 1 << rng.below(8),
            1 => m[at] = rng.next_u64() as u8,
            2 => m.truncate(at.max(1)),
            3 => {
                // A length field somewhere: make it huge.
                m[at] = 0xff;
                if at + 1 < m.len() {
                    m[at + 1] = 0xff;
                }
            }
            4 => {
                let junk: Vec<u8> = (0..1 + rng.below(32))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                m.splice(at..at, junk);
            }
            _ => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                m.drain(at..end);
            }
        }
    }
    m
}

/// Sends RST instead of FIN when `tcp` is closed (SO_LINGER 0).
pub fn reset(tcp: TcpStream) {
    let sock = socket2::Socket::from(tcp);
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Shuts the write side, ignoring errors (the peer may be gone).
pub fn fin(tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Write);
}

/// Checks that a normal client still gets served: handshake, echo of a short message.
pub fn served(addr: SocketAddr, config: &Arc<ClientConfig>) -> io::Result<()> {
    let mut tls = net::connect(addr, config)?;
    tls.write_all(b"still serving")?;
    let got = net::read_exact(&mut tls, 13)?;
    if got != b"still serving" {
        return Err(io::Error::other("wrong echo"));
    }
    Ok(())
}

/// Clients opening short connections in a loop until stopped, counting outcomes.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `threads` clients, thread `i` on `addrs[i % addrs.len()]`.
    pub fn start(addrs: &[SocketAddr], config: &Arc<rustls::ClientConfig>, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|i| {
                let (stop, ok, failed, config) =
                    (stop.clone(), ok.clone(), failed.clone(), config.clone());
                let addr = addrs[i % addrs.len()];
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let counter = if served(addr, &config).is_ok() {
                            &ok
                        } else {
                            &failed
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Connections served so far.
    pub fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients and waits for them: (served, failed).
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
