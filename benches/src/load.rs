//! The load generator: threads of blocking rustls clients, pinned with the harness to the load
//! CPU. Each scenario returns what it counted; CPU is read from the proxy's process tree by the
//! caller-supplied probe, over a measurement window that starts after a warm-up.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{self, Tls};

/// Size of the small response of the handshake scenarios (an HTTP 200 with a short body).
pub const SMALL_RESPONSE: usize = 128;
/// Size of a request and of its echo in the latency scenarios.
pub const ECHO_SIZE: usize = 64;

/// Counters shared by the threads of one scenario.
#[derive(Debug, Default)]
struct Counters {
    done: AtomicU64,
    resumed: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, e: &io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| e.to_string());
        }
    }

    fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|f| f.clone())
    }
}

/// What a rate scenario measured in its window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// Completed operations (connections or requests) per second.
    pub per_sec: f64,
    /// Proxy CPU seconds per operation, in microseconds.
    pub cpu_us_per_op: f64,
    /// Proxy CPU seconds per wall second (1.0 = one core busy).
    pub cpu_util: f64,
    /// Fraction of connections that resumed a session.
    pub resumed: f64,
    /// Failed operations in the whole run, warm-up included.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
}

/// Counters and the proxy's CPU at one moment of a scenario.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Operations completed so far.
    pub done: u64,
    /// Of which resumed sessions.
    pub resumed: u64,
    /// The proxy's CPU seconds.
    pub cpu: f64,
    /// When it was read.
    pub at: Instant,
}

impl Window {
    /// The window between two samples; `errors` and `first_error` cover the whole run.
    pub fn between(a: &Sample, b: &Sample, errors: u64, first_error: Option<String>) -> Window {
        let ops = b.done.saturating_sub(a.done) as f64;
        let secs = b.at.saturating_duration_since(a.at).as_secs_f64().max(1e-9);
        let cpu = b.cpu - a.cpu;
        Window {
            per_sec: ops / secs,
            cpu_us_per_op: if ops > 0.0 { cpu * 1e6 / ops } else { f64::NAN },
            cpu_util: cpu / secs,
            resumed: if ops > 0.0 {
                b.resumed.saturating_sub(a.resumed) as f64 / ops
            } else {
                0.0
            },
            errors,
            first_error,
        }
    }
}

/// Open-loop pacing: slot `i` is due at `start + i / rate`, whichever thread takes it, so the
/// offered rate holds whatever each connection's latency (as long as enough threads are free).
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    interval: Duration,
    next: AtomicU64,
}

impl Pacer {
    /// Slots at `rate` per second from `start`. A rate that is not positive and finite is
    /// taken as one per second (no division by zero, no endless burst).
    pub fn new(start: Instant, rate: f64) -> Pacer {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        Pacer {
            start,
            interval: Duration::from_secs_f64(1.0 / rate),
            next: AtomicU64::new(0),
        }
    }

    /// When slot `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        // mul_f64 keeps sub-nanosecond intervals from rounding away over many slots.
        self.start + self.interval.mul_f64(i as f64)
    }

    /// Takes the next slot; returns when it is due.
    pub fn take(&self) -> Instant {
        self.due(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Runs `threads` workers calling `op` in a loop; measures the window after `warmup`.
/// `cpu` reads the proxy's CPU seconds.
fn windowed(
    threads: usize,
    warmup: Duration,
    duration: Duration,
    cpu: &dyn Fn() -> f64,
    op: impl Fn(usize, &Counters) + Send + Sync + 'static,
) -> Window {
    let counters = Arc::new(Counters::default());
    let op = Arc::new(op);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let c = counters.clone();
            let op = op.clone();
            thread::spawn(move || {
                while !c.stop.load(Ordering::Relaxed) {
                    op(i, &c);
                }
            })
        })
        .collect();
    thread::sleep(warmup);
    let (d0, r0, c0, t0) = (
        counters.done.load(Ordering::Relaxed),
        counters.resumed.load(Ordering::Relaxed),
        cpu(),
        Instant::now(),
    );
    thread::sleep(duration);
    let (d1, r1, c1, t1) = (
        counters.done.load(Ordering::Relaxed),
        counters.resumed.load(Ordering::Relaxed),
        cpu(),
        Instant::now(),
    );
    counters.stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Window::between(
        &Sample {
            done: d0,
            resumed: r0,
            cpu: c0,
            at: t0,
        },
        &Sample {
            done: d1,
            resumed: r1,
            cpu: c1,
            at: t1,
        },
        counters.errors.load(Ordering::Relaxed),
        counters.first_error(),
    )
}

/// Connections per second through `addr`, each a handshake (resumed when `resume`), one small
/// request/response and a close.
pub fn handshakes(
    addr: SocketAddr,
    resume: bool,
    threads: usize,
    warmup: Duration,
    duration: Duration,
    cpu: &dyn Fn() -> f64,
) -> io::Result<Window> {
    let configs: Vec<_> = (0..threads)
        .map(|_| client::config(resume))
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    Ok(paced_handshakes(addr, configs, None, warmup, duration, cpu))
}

/// As [`handshakes`], with one client configuration per thread (so one ticket store per
/// thread: a thread always holds a ticket of its own, and resumption never waits on a shared
/// store) and, when `rate` is given, connections started on an open-loop schedule of `rate`
/// per second instead of as fast as the threads can.
pub fn paced_handshakes(
    addr: SocketAddr,
    configs: Vec<Arc<rustls::ClientConfig>>,
    rate: Option<f64>,
    warmup: Duration,
    duration: Duration,
    cpu: &dyn Fn() -> f64,
) -> Window {
    let pacer = rate.map(|r| Pacer::new(Instant::now(), r));
    let threads = configs.len();
    windowed(threads, warmup, duration, cpu, move |i, c| {
        if let Some(p) = &pacer {
            let wait = p.take().saturating_duration_since(Instant::now());
            // A thread waits at most `threads / rate`: stopping stays prompt.
            thread::sleep(wait);
            if c.stop.load(Ordering::Relaxed) {
                return;
            }
        }
        match client::request(&configs[i], addr, SMALL_RESPONSE) {
            Ok(resumed) => {
                c.done.fetch_add(1, Ordering::Relaxed);
                if resumed {
                    c.resumed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                c.error(&e);
                // A refused connection fails fast: do not spin on it.
                thread::sleep(Duration::from_millis(10));
            }
        }
    })
}

/// Exactly `count` connections through `addr` (handshake, small response, close) over
/// `threads` threads, as fast as they go or started at `rate` per second; returns the
/// failures and the first one's message.
pub fn connections(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    count: u64,
    threads: usize,
    rate: Option<f64>,
) -> (u64, Option<String>) {
    let counters = Arc::new(Counters::default());
    let pacer = Arc::new(rate.map(|r| Pacer::new(Instant::now(), r)));
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (c, cfg, pacer) = (counters.clone(), config.clone(), pacer.clone());
            thread::spawn(move || {
                while c.done.fetch_add(1, Ordering::Relaxed) < count {
                    if let Some(p) = pacer.as_ref() {
                        thread::sleep(p.take().saturating_duration_since(Instant::now()));
                    }
                    if let Err(e) = client::request(&cfg, addr, SMALL_RESPONSE) {
                        c.error(&e);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let errors = counters.errors.load(Ordering::Relaxed);
    (errors, counters.first_error())
}

/// One bulk transfer of `bytes` through a fresh TLS connection; returns the seconds the
/// payload took (handshake excluded).
pub fn bulk(addr: SocketAddr, download: bool, bytes: u64) -> io::Result<f64> {
    let cfg = client::config(false).map_err(io::Error::other)?;
    let (mut tls, _) = client::connect(&cfg, addr)?;
    let start = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    if download {
        tls.write_all(format!("R {bytes}\n").as_bytes())?;
        tls.flush()?;
        let got = client::read_to_end(&mut tls, &mut buf)?;
        if got != bytes {
            return Err(io::Error::other(format!(
                "downloaded {got} of {bytes} bytes"
            )));
        }
    } else {
        tls.write_all(format!("S {bytes}\n").as_bytes())?;
        buf.fill(b'u');
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            tls.write_all(&buf[..n])?;
            left -= n as u64;
        }
        tls.flush()?;
        let mut reply = [0u8; 16];
        let n = client::read_to_end(&mut tls, &mut reply)?;
        if n == 0 {
            return Err(io::Error::other("no acknowledgement of the upload"));
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Opens `count` TLS connections over `threads` threads; each asks the backend to idle and
/// waits for its acknowledgement, so the proxy holds an established pair. Returns the open
/// sockets (the TLS state is dropped: only the proxy's side is measured) and the failures.
pub fn hold(
    addr: SocketAddr,
    count: usize,
    threads: usize,
) -> (Vec<TcpStream>, u64, Option<String>) {
    hold_with(count, threads, move |cfg| idle_connection(cfg, addr))
}

/// [`hold`] with the connection made by `open` (given a client configuration per thread):
/// `count` connections over `threads` threads, the open sockets and the failures.
pub fn hold_with<F>(count: usize, threads: usize, open: F) -> (Vec<TcpStream>, u64, Option<String>)
where
    F: Fn(&Arc<rustls::ClientConfig>) -> io::Result<TcpStream> + Send + Sync + 'static,
{
    let counters = Arc::new(Counters::default());
    let open = Arc::new(open);
    let threads = threads.clamp(1, count.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (c, open) = (counters.clone(), open.clone());
            let share = count / threads + usize::from(i < count % threads);
            thread::spawn(move || {
                let mut held = Vec::with_capacity(share);
                let cfg = match client::config(false) {
                    Ok(cfg) => cfg,
                    Err(e) => {
                        c.error(&io::Error::other(e));
                        return held;
                    }
                };
                for _ in 0..share {
                    match open(&cfg) {
                        Ok(sock) => held.push(sock),
                        Err(e) => c.error(&e),
                    }
                }
                held
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for h in handles {
        if let Ok(mut v) = h.join() {
            all.append(&mut v);
        }
    }
    let errors = counters.errors.load(Ordering::Relaxed);
    (all, errors, counters.first_error())
}

fn idle_connection(cfg: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> io::Result<TcpStream> {
    let (mut tls, _) = client::connect(cfg, addr)?;
    tls.write_all(b"I\n")?;
    tls.flush()?;
    let mut ack = [0u8; 2];
    tls.read_exact(&mut ack)?;
    if &ack != b"K\n" {
        return Err(io::Error::other("bad acknowledgement from the backend"));
    }
    Ok(tls.sock)
}

/// A kept-alive connection that echoes: TLS through a proxy, or plain to the backend.
enum Echo {
    Tls(Box<Tls>),
    Plain(TcpStream),
}

impl Echo {
    fn open(addr: SocketAddr, tls: bool) -> io::Result<Echo> {
        let mut e = if tls {
            let cfg = client::config(false).map_err(io::Error::other)?;
            Echo::Tls(Box::new(client::connect(&cfg, addr)?.0))
        } else {
            Echo::Plain(client::connect_plain(addr)?)
        };
        e.stream().write_all(b"E\n")?;
        e.stream().flush()?;
        Ok(e)
    }

    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Echo::Tls(t) => t.as_mut(),
            Echo::Plain(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Closed-loop requests per second over `threads × per_thread` kept-alive connections (the
/// saturation point). Each thread writes a request on each of its connections, then reads the
/// answers: one wake-up of the load generator serves many requests, so the proxy saturates
/// before the load generator's core does.
pub fn echo_saturation(
    addr: SocketAddr,
    tls: bool,
    threads: usize,
    per_thread: usize,
    warmup: Duration,
    duration: Duration,
    cpu: &dyn Fn() -> f64,
) -> io::Result<Window> {
    let groups: Vec<Mutex<Vec<Echo>>> = (0..threads)
        .map(|_| {
            (0..per_thread)
                .map(|_| Echo::open(addr, tls))
                .collect::<io::Result<Vec<_>>>()
                .map(Mutex::new)
        })
        .collect::<io::Result<_>>()?;
    let groups = Arc::new(groups);
    Ok(windowed(threads, warmup, duration, cpu, move |i, c| {
        let Ok(mut group) = groups[i].lock() else {
            return;
        };
        if group.is_empty() {
            thread::sleep(Duration::from_millis(10));
            return;
        }
        let req = [b'q'; ECHO_SIZE];
        let mut resp = [0u8; ECHO_SIZE];
        let result = (|| {
            for e in group.iter_mut() {
                let s = e.stream();
                s.write_all(&req)?;
                s.flush()?;
            }
            for e in group.iter_mut() {
                e.stream().read_exact(&mut resp)?;
            }
            Ok::<(), io::Error>(())
        })();
        match result {
            Ok(()) => {
                c.done.fetch_add(group.len() as u64, Ordering::Relaxed);
            }
            Err(err) => {
                c.error(&err);
                group.clear();
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_slots_are_evenly_spaced_from_the_start() {
        let t0 = Instant::now();
        let p = Pacer::new(t0, 250.0);
        assert_eq!(p.due(0), t0);
        assert_eq!(p.due(1) - t0, Duration::from_millis(4));
        assert_eq!(p.due(1000) - t0, Duration::from_secs(4));
        // Each take is the next slot, whoever takes it.
        assert_eq!(p.take(), t0);
        assert_eq!(p.take(), p.due(1));
        assert_eq!(p.take(), p.due(2));
    }

    #[test]
    fn pacer_slots_are_unique_across_threads() {
        let t0 = Instant::now();
        let p = Arc::new(Pacer::new(t0, 1000.0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                thread::spawn(move || (0..250).map(|_| p.take()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("pacer thread"))
            .map(|t| t - t0)
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000);
        assert_eq!(all[999], Duration::from_millis(999));
    }

    #[test]
    fn a_bad_rate_paces_at_one_per_second() {
        let t0 = Instant::now();
        for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Pacer::new(t0, rate).due(3) - t0, Duration::from_secs(3));
        }
    }

    #[test]
    fn a_window_divides_cpu_and_operations_between_samples() {
        let t0 = Instant::now();
        let a = Sample {
            done: 100,
            resumed: 0,
            cpu: 1.0,
            at: t0,
        };
        let b = Sample {
            done: 1100,
            resumed: 900,
            cpu: 1.5,
            at: t0 + Duration::from_secs(2),
        };
        let w = Window::between(&a, &b, 3, Some("x".into()));
        assert_eq!(w.per_sec, 500.0);
        assert!((w.cpu_us_per_op - 500.0).abs() < 1e-9);
        assert!((w.cpu_util - 0.25).abs() < 1e-12);
        assert!((w.resumed - 0.9).abs() < 1e-12);
        assert_eq!(w.errors, 3);
        // No operation in the window: no CPU per operation, not a division by zero.
        let idle = Window::between(&a, &a, 0, None);
        assert!(idle.cpu_us_per_op.is_nan());
        assert_eq!(idle.resumed, 0.0);
    }
}
