//! A real world for driver tests: a `Server` on a loopback port in its own thread, scripted TCP
//! backends in threads, and rustls clients over real sockets. Every wait has a deadline.

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    reason = "each test file uses a different part of the harness"
)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};
use stud_core::driver::{ConnStats, Observer, Options, Server, StopHandle};
use stud_core::{CloseReason, Config, ConfigBuilder, HandshakeInfo};

/// The longest any single step of a test may take before it counts as a hang.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub use stud_test_support::client_config_trusting;
pub use stud_test_support::{refusing_port as closed_port, RefusingPort as ClosedPort};
pub use stud_test_support::{silent_address, SilentAddress, TempDir};

/// One P-256 identity for `localhost`: (combined PEM, certificate DER).
pub fn identity() -> &'static (String, CertificateDer<'static>) {
    static CELL: OnceLock<(String, CertificateDer<'static>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let id = stud_test_support::localhost();
        (id.combined(), id.der.clone())
    })
}

/// A fresh P-256 identity for `localhost`, distinct from [`identity`] (a second frontend's
/// certificate): (combined PEM, certificate DER).
pub fn other_identity() -> (String, CertificateDer<'static>) {
    let id = stud_test_support::self_signed(stud_test_support::KeyKind::EcdsaP256, &["localhost"]);
    (id.combined(), id.der)
}

/// A server configuration with the test identity, adjusted by `f`.
pub fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Arc<Config> {
    let builder = Config::builder().pem(identity().0.clone());
    Arc::new(f(builder).build().expect("config"))
}

/// A rustls client configuration trusting the test identity.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    static CELL: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CELL.get_or_init(|| client_config_trusting(std::slice::from_ref(&identity().1)))
        .clone()
}

// ---------------------------------------------------------------- the observer

/// Everything the server reported.
#[derive(Debug, Default)]
pub struct Record {
    pub handshakes: Vec<(SocketAddr, HandshakeInfo)>,
    /// How long after accept each handshake completed, in the order of `handshakes`.
    pub handshake_times: Vec<Duration>,
    /// Every accepted client, in order.
    pub accepted: Vec<SocketAddr>,
    /// Every accept pause, with its length.
    pub accept_pauses: Vec<Duration>,
    pub closes: Vec<(SocketAddr, CloseReason, ConnStats)>,
    pub warnings: Vec<String>,
    /// When each heartbeat came.
    pub heartbeats: Vec<Instant>,
}

#[derive(Debug, Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Record>>);

impl Observer for Recorder {
    fn accepted(&mut self, peer: SocketAddr) {
        self.0.lock().expect("record").accepted.push(peer);
    }
    fn handshake(&mut self, peer: SocketAddr, info: &HandshakeInfo, elapsed: Duration) {
        let mut record = self.0.lock().expect("record");
        record.handshakes.push((peer, info.clone()));
        record.handshake_times.push(elapsed);
    }
    fn accept_paused(&mut self, pause: Duration) {
        self.0.lock().expect("record").accept_pauses.push(pause);
    }
    fn closed(&mut self, peer: SocketAddr, reason: &CloseReason, stats: &ConnStats) {
        self.0
            .lock()
            .expect("record")
            .closes
            .push((peer, reason.clone(), *stats));
    }
    fn heartbeat(&mut self) {
        self.0
            .lock()
            .expect("record")
            .heartbeats
            .push(Instant::now());
    }
    fn warning(&mut self, message: &str) {
        self.0
            .lock()
            .expect("record")
            .warnings
            .push(message.to_string());
    }
}

// ---------------------------------------------------------------- the server

/// A server running in its own thread.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: StopHandle,
    pub record: Arc<Mutex<Record>>,
    done: Option<mpsc::Receiver<io::Result<()>>>,
    thread_name: String,
}

impl Running {
    /// Binds 127.0.0.1:0 and runs a server with `options`.
    pub fn start(config: Arc<Config>, options: Options) -> Running {
        let server =
            Server::bind(config, "127.0.0.1:0".parse().expect("addr"), options).expect("bind");
        Running::run(server)
    }

    /// Runs an already built server.
    pub fn run(mut server: Server) -> Running {
        let addr = server.local_addrs()[0];
        let stop = server.stop_handle();
        let recorder = Recorder::default();
        let record = recorder.0.clone();
        server.set_observer(Box::new(recorder));
        let (tx, rx) = mpsc::channel();
        // A name unique in this process, so that its CPU time can be found in /proc.
        let thread_name = format!("drv-{}", addr.port());
        std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                let result = server.run().and_then(|()| match server.connection_count() {
                    0 => Ok(()),
                    n => Err(io::Error::other(format!(
                        "{n} connections left after run()"
                    ))),
                });
                let _ = tx.send(result);
            })
            .expect("spawn the server thread");
        Running {
            addr,
            stop,
            record,
            done: Some(rx),
            thread_name,
        }
    }

    /// Waits for `run()` to return, at most `within`; panics on a hang.
    pub fn join(&mut self, within: Duration) -> io::Result<()> {
        let rx = self.done.take().expect("joined once");
        match rx.recv_timeout(within) {
            Ok(result) => result,
            Err(e) => panic!("server did not return from run() within {within:?}: {e}"),
        }
    }

    /// Waits until at least `n` connections have been reported closed; returns them all.
    pub fn wait_closes(
        &self,
        n: usize,
        within: Duration,
    ) -> Vec<(SocketAddr, CloseReason, ConnStats)> {
        let deadline = Instant::now() + within;
        loop {
            {
                let record = self.record.lock().expect("record");
                if record.closes.len() >= n {
                    return record.closes.clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "only {} of {n} closes within {within:?}: {:?}",
                    record.closes.len(),
                    record.closes
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// CPU time (user + system) the server's thread has used so far, from /proc (Linux).
    pub fn cpu_time(&self) -> Duration {
        let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
        for task in tasks {
            let path = task.expect("task").path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if comm.trim() != self.thread_name {
                continue;
            }
            let stat = std::fs::read_to_string(path.join("stat")).expect("stat");
            let rest = &stat[stat.rfind(')').expect("comm") + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime, fields 14 and 15 of the file, in ticks of 10 ms (USER_HZ = 100).
            let ticks: u64 = fields[11].parse::<u64>().expect("utime")
                + fields[12].parse::<u64>().expect("stime");
            return Duration::from_millis(ticks * 10);
        }
        panic!("no thread named {} in /proc/self/task", self.thread_name);
    }

    pub fn warnings(&self) -> Vec<String> {
        self.record.lock().expect("record").warnings.clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a server running in the test process.
        self.stop.stop_now();
    }
}

/// Options pointing at `backends`, everything else default.
pub fn options(backends: &[SocketAddr]) -> Options {
    Options::new(backends.iter().copied())
}

// ---------------------------------------------------------------- backends

/// A TCP backend: each accepted connection goes to `handler` in its own thread.
pub struct Backend {
    pub addr: SocketAddr,
    pub accepts: Arc<AtomicUsize>,
    pub active: Arc<AtomicUsize>,
    pub max_active: Arc<AtomicUsize>,
}

impl Backend {
    pub fn spawn(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("backend bind");
        Backend::serve(listener, handler)
    }

    /// [`Backend::spawn`] on a listener of the test's choice (another address, IPv6).
    pub fn serve(
        listener: TcpListener,
        handler: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> Backend {
        let addr = listener.local_addr().expect("backend addr");
        let accepts = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let max_active = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (a, act, max) = (accepts.clone(), active.clone(), max_active.clone());
        // The accept loop lives as long as the test process; it holds nothing else.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let now = act.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                let (handler, act) = (handler.clone(), act.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(TIMEOUT));
                    let _ = stream.set_write_timeout(Some(TIMEOUT));
                    handler(stream);
                    act.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Backend {
            addr,
            accepts,
            active,
            max_active,
        }
    }

    /// Echoes every byte; on the client's end of stream, ends its own.
    pub fn echo() -> Backend {
        Backend::spawn(stud_test_support::echo)
    }

    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

/// A UNIX-socket backend in a directory of its own (removed on drop): each accepted connection
/// goes to `handler` in its own thread.
pub struct UnixBackend {
    pub path: PathBuf,
    pub accepts: Arc<AtomicUsize>,
    _dir: TempDir,
}

impl UnixBackend {
    pub fn spawn(handler: impl Fn(UnixStream) + Send + Sync + 'static) -> UnixBackend {
        let dir = TempDir::new();
        let path = dir.path().join("backend.sock");
        let listener = UnixListener::bind(&path).expect("backend bind");
        let accepts = Arc::new(AtomicUsize::new(0));
        let a = accepts.clone();
        let handler = Arc::new(handler);
        // The accept loop lives as long as the test process; it holds nothing else.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(TIMEOUT));
                    let _ = stream.set_write_timeout(Some(TIMEOUT));
                    handler(stream);
                });
            }
        });
        UnixBackend {
            path,
            accepts,
            _dir: dir,
        }
    }

    /// Echoes every byte; on the client's end of stream, ends its own.
    pub fn echo() -> UnixBackend {
        UnixBackend::spawn(|mut stream| {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = stream.shutdown(Shutdown::Write);
        })
    }

    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------- clients

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` and completes the TLS handshake (blocking, with timeouts).
pub fn tls_connect(addr: SocketAddr) -> Tls {
    tls_connect_with(addr, client_config())
}

/// [`tls_connect`] with a client configuration of the test's choice.
pub fn tls_connect_with(addr: SocketAddr, client_config: Arc<rustls::ClientConfig>) -> Tls {
    let sock = TcpStream::connect(addr).expect("connect to the server");
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    sock.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = ClientConnection::new(client_config, name).expect("client");
    let mut sock = sock;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    StreamOwned::new(conn, sock)
}

/// Reads plaintext until the stream ends. Returns the bytes and whether it ended with
/// close_notify (a clean end) rather than a bare EOF or an error.
pub fn read_to_end(tls: &mut Tls) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                assert_ne!(
                    e.kind(),
                    io::ErrorKind::WouldBlock,
                    "read timed out: a hang"
                );
                return (out, false);
            }
        }
    }
}

/// Reads exactly `n` plaintext bytes.
pub fn read_exact(tls: &mut Tls, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    tls.read_exact(&mut out).expect("read the expected bytes");
    out
}

/// Sends close_notify, flushes it, and shuts the socket's write side: the client is done.
pub fn finish_sending(tls: &mut Tls) {
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        tls.conn
            .write_tls(&mut tls.sock)
            .expect("flush close_notify");
    }
    tls.sock.shutdown(Shutdown::Write).expect("shutdown");
}

/// Whether the raw socket reaches EOF (or a reset) within `within`; false if data arrives or
/// the wait times out.
pub fn socket_closes_within(sock: &TcpStream, within: Duration) -> bool {
    sock.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match (&*sock).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {
                if Instant::now() >= deadline {
                    return false;
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Deterministic test data: `len` bytes from a seeded xorshift generator.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Waits until `cond` holds, at most `within`.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
