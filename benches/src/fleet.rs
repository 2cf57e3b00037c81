//! `harness many`: tens of thousands of concurrent TLS connections held by one terminator with
//! several workers, and what the workers give back once the clients are gone — stud beside
//! hitch in the same run.
//!
//! ```text
//! target/release/harness many --connections 50000 --workers 6 [--clients 5] [--threads 4]
//!     [--peers stud,hitch] [--stud PATH] [--port-range LOW-HIGH] [--out FILE]
//! ```
//!
//! For each terminator, with a fresh backend each time:
//! - **backend**: several processes of the harness's own backend sharing one port with
//!   SO_REUSEPORT (one process holds at most ~19,000 sockets under a 20,000 descriptor limit);
//! - **terminator**: `-n WORKERS` on the proxy CPU; stud connects to the backend from four
//!   loopback addresses (`--backend-source=127.0.0.1,127.0.0.11,…`), each a whole ephemeral
//!   port range; hitch has no such option and connects from one;
//! - **clients**: `--clients` processes on the load CPU, each bound to its own loopback
//!   address (127.0.0.2, .3, …), opening TLS connections on `--threads` threads as fast as
//!   they can; each sends `I` and waits for the backend's `K`, so the terminator holds an
//!   established pair; SO_LINGER 0, so that the clients' exit resets every connection.
//!
//! Reported per terminator (after a warm-up of a hundred connections per worker, opened and
//! reset, so that "before" is a worker that has served): connections held and failed (stud must fail none), the time to
//! open them all, how they spread over the workers (from `/proc/PID/fd`: two sockets per
//! connection), resident memory before, at the peak and per connection; then, after the
//! clients reset everything, how long until every worker is back to its descriptors of
//! before the spike, and each worker's resident memory two seconds later against its own
//! before.
//!
//! The local port range (`/proc/sys/net/ipv4/ip_local_port_range`) is left alone unless
//! `--port-range` says otherwise, and restored at the end if it was changed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::{self, Helper};
use crate::proxies::{self, Child, Kind, PROXY_CPU};
use crate::{client, engine, procfs};

const USAGE: &str = "usage: harness many [--connections N] [--workers N] [--clients N] \
[--threads N] [--peers stud,hitch] [--stud PATH] [--port-range LOW-HIGH] [--out FILE]";

/// Connections one backend process takes on (below its descriptor limit with room to spare).
const PER_BACKEND: usize = 8_000;
/// stud's backend source addresses: each a whole ephemeral port range towards the backend.
const SOURCES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 11),
    Ipv4Addr::new(127, 0, 0, 12),
    Ipv4Addr::new(127, 0, 0, 13),
];
/// Connections per worker opened and reset before "before" is read.
const WARM_UP_PER_WORKER: usize = 100;
/// How long the workers get to close everything after the clients reset.
const RETURN_WITHIN: Duration = Duration::from_secs(30);
/// How long after the descriptors are back the memory is read.
const SETTLE: Duration = Duration::from_secs(2);
const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// What one terminator did.
#[derive(Debug, Default)]
struct Outcome {
    label: String,
    held: usize,
    errors: u64,
    first_error: String,
    open_secs: f64,
    /// Connections per worker at the peak.
    split: Vec<usize>,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    /// Time from telling the clients to exit until the last had (its sockets reset).
    clients_gone: Duration,
    /// Time from telling the clients to exit until every worker's descriptors were back (None:
    /// not within the wait).
    fd_return: Option<Duration>,
    /// Each worker's RSS after, over its RSS before.
    rss_after_ratio: Vec<f64>,
    rss_after_kib: u64,
}

/// The value after `flag`, if given.
fn opt<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn num(args: &[String], flag: &str, default: usize) -> io::Result<usize> {
    opt(args, flag).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| io::Error::other(format!("{flag}: not a number: {v}\n{USAGE}")))
    })
}

/// `harness many …`, and its helper processes (`harness many backend|client …`).
pub fn main(args: &[String]) -> io::Result<()> {
    match args.first().map(String::as_str) {
        Some("backend") => return backend_main(&args[1..]),
        Some("client") => return client_main(&args[1..]),
        _ => {}
    }
    helpers::handle_interrupts();
    let connections = num(args, "--connections", 50_000)?;
    let workers = num(args, "--workers", 6)?;
    let clients = num(args, "--clients", 5)?.max(1);
    let threads = num(args, "--threads", 4)?.max(1);
    let peers: Vec<Kind> = opt(args, "--peers")
        .unwrap_or("stud,hitch")
        .split(',')
        .map(|p| match p {
            "stud" => Ok(Kind::Stud),
            "hitch" => Ok(Kind::Hitch),
            other => Err(io::Error::other(format!("unknown peer '{other}'\n{USAGE}"))),
        })
        .collect::<io::Result<_>>()?;
    let exe = std::env::current_exe()?;
    let stud = match opt(args, "--stud") {
        Some(p) => PathBuf::from(p),
        None => exe.with_file_name("stud"),
    };
    if peers.contains(&Kind::Stud) && !stud.exists() {
        return Err(io::Error::other(format!(
            "no stud at {} (cargo build --release -p stud-cli --features jemalloc, or --stud)",
            stud.display()
        )));
    }
    helpers::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("stud-many-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pem = dir.join("site.pem");
    std::fs::write(&pem, engine::certificate_pem().map_err(io::Error::other)?)?;
    let range_before = std::fs::read_to_string(PORT_RANGE)?.trim().to_string();
    if let Some(range) = opt(args, "--port-range") {
        let (low, high) = range
            .split_once('-')
            .ok_or_else(|| io::Error::other(format!("--port-range LOW-HIGH\n{USAGE}")))?;
        std::fs::write(PORT_RANGE, format!("{low} {high}"))?;
    }
    let range_used = std::fs::read_to_string(PORT_RANGE)?.trim().to_string();
    let mut outcomes = Vec::new();
    let mut failure = None;
    for kind in peers {
        let run = Run {
            exe: &exe,
            stud: &stud,
            pem: &pem,
            dir: &dir,
            connections,
            workers,
            clients,
            threads,
        };
        match run.one(kind) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                eprintln!("{kind}: {e}");
                failure.get_or_insert(e);
            }
        }
    }
    if range_used != range_before {
        std::fs::write(PORT_RANGE, &range_before)?;
    }
    let text = report(
        &outcomes,
        connections,
        workers,
        clients,
        threads,
        &range_used,
    );
    print!("{text}");
    if let Some(out) = opt(args, "--out") {
        std::fs::write(out, &text)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(e) = failure {
        return Err(e);
    }
    match outcomes.iter().find(|o| o.label.starts_with("stud")) {
        Some(o) if o.errors > 0 || o.held < connections => Err(io::Error::other(format!(
            "stud held {} of {connections} connections ({} errors: {})",
            o.held, o.errors, o.first_error
        ))),
        _ => Ok(()),
    }
}

struct Run<'a> {
    exe: &'a Path,
    stud: &'a Path,
    pem: &'a Path,
    dir: &'a Path,
    connections: usize,
    workers: usize,
    clients: usize,
    threads: usize,
}

impl Run<'_> {
    fn one(&self, kind: Kind) -> io::Result<Outcome> {
        let backend_port = proxies::free_port()?;
        let backends = (0..self.connections.div_ceil(PER_BACKEND).max(2))
            .map(|_| {
                let mut h = Helper::start(
                    self.exe,
                    "backend",
                    &["many".into(), "backend".into(), backend_port.to_string()],
                )?;
                let line = h.line(Duration::from_secs(10))?;
                if !line.starts_with("LISTENING") {
                    return Err(io::Error::other(format!("backend said '{line}'")));
                }
                Ok(h)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let port = proxies::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = self.dir.join(format!("{kind}-{port}.log"));
        let (cmd, label) = match kind {
            Kind::Stud => {
                let mut c = proxies::command(self.stud, PROXY_CPU);
                let sources: Vec<String> = SOURCES.iter().map(ToString::to_string).collect();
                c.arg("-n")
                    .arg(self.workers.to_string())
                    .arg("-B")
                    .arg("1024")
                    .arg("-f")
                    .arg(format!("127.0.0.1,{port}"))
                    .arg("-b")
                    .arg(format!("127.0.0.1,{backend_port}"))
                    .arg(format!("--backend-source={}", sources.join(",")))
                    .arg(self.pem);
                (c, format!("stud -n {}", self.workers))
            }
            _ => {
                let mut c = proxies::command("hitch", PROXY_CPU);
                c.arg(format!("--workers={}", self.workers))
                    .arg("--backlog=1024")
                    .arg("--daemon=off")
                    .arg("--user=nobody")
                    .arg(format!("--frontend=[127.0.0.1]:{port}"))
                    .arg(format!("--backend=[127.0.0.1]:{backend_port}"))
                    .arg(format!("--ocsp-dir={}", self.dir.display()))
                    .arg(self.pem);
                (c, format!("hitch --workers={}", self.workers))
            }
        };
        let mut proxy = Child::spawn(kind.name(), cmd, Some(&log))?;
        if let Err(e) = proxies::wait_listening(addr, Duration::from_secs(15)) {
            let _ = proxy.check_alive();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(io::Error::other(format!(
                "{kind} did not start: {e}\n{text}"
            )));
        }
        // Every worker forked (a supervisor listens before its last fork is done).
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut workers = worker_pids(proxy.pid());
        while workers.len() < self.workers && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            workers = worker_pids(proxy.pid());
        }
        // A warm-up of a few connections per worker, opened and reset, so that "before" counts
        // the code and tables every worker keeps once it has served anyone (a cold worker has
        // not yet paged in its handshake code: some megabytes of resident memory).
        let warm = self.workers * WARM_UP_PER_WORKER;
        let mut warmer = Helper::start(
            self.exe,
            "client",
            &[
                "many".into(),
                "client".into(),
                Ipv4Addr::new(127, 0, 0, 2).to_string(),
                addr.to_string(),
                warm.to_string(),
                "1".into(),
            ],
        )?;
        let line = warmer.line(Duration::from_secs(120))?;
        if !line.starts_with(&format!("READY {warm} 0")) {
            return Err(io::Error::other(format!("warm-up client said '{line}'")));
        }
        warmer.stop();
        // Room for the closes and for a worker's once-a-second housekeeping.
        std::thread::sleep(Duration::from_secs(3));
        let before: BTreeMap<u32, Proc> = workers.iter().map(|&p| (p, Proc::read(p))).collect();
        eprintln!(
            "{label}: opening {} connections from {} clients",
            self.connections, self.clients
        );
        let started = Instant::now();
        let mut holders = Vec::new();
        for i in 0..self.clients {
            let share =
                self.connections / self.clients + usize::from(i < self.connections % self.clients);
            let source = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
            holders.push(Helper::start(
                self.exe,
                "client",
                &[
                    "many".into(),
                    "client".into(),
                    source.to_string(),
                    addr.to_string(),
                    share.to_string(),
                    self.threads.to_string(),
                ],
            )?);
        }
        let mut outcome = Outcome {
            label: label.clone(),
            ..Outcome::default()
        };
        for h in &mut holders {
            let line = h.line(Duration::from_secs(1_800))?;
            let mut words = line.splitn(4, ' ');
            if words.next() != Some("READY") {
                return Err(io::Error::other(format!("client said '{line}'")));
            }
            outcome.held += words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let errors: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            outcome.errors += errors;
            if errors > 0 && outcome.first_error.is_empty() {
                outcome.first_error = words.next().unwrap_or_default().to_string();
            }
        }
        outcome.open_secs = started.elapsed().as_secs_f64();
        // A moment for the last backend connections and their acknowledgements to settle.
        std::thread::sleep(Duration::from_millis(500));
        let peak: BTreeMap<u32, Proc> = workers.iter().map(|&p| (p, Proc::read(p))).collect();
        // The workers are the children holding connections, the most loaded first (hitch
        // has a helper process besides its workers).
        let mut split: Vec<usize> = workers
            .iter()
            .map(|p| peak[p].sockets.saturating_sub(before[p].sockets) / 2)
            .collect();
        split.sort_unstable_by(|a, b| b.cmp(a));
        split.truncate(self.workers);
        outcome.split = split;
        outcome.rss_before_kib = before.values().map(|p| p.rss_kib).sum();
        outcome.rss_peak_kib = peak.values().map(|p| p.rss_kib).sum();
        eprintln!(
            "{label}: held {} ({} errors) in {:.1} s; per worker {:?}",
            outcome.held, outcome.errors, outcome.open_secs, outcome.split
        );
        // The clients exit: every connection is reset. The clock starts before the first
        // client is told to go.
        // All clients are told at once; each takes a moment to exit with its sockets.
        let reset = Instant::now();
        std::thread::scope(|s| {
            for h in holders {
                s.spawn(move || h.stop());
            }
        });
        outcome.clients_gone = reset.elapsed();
        while reset.elapsed() < RETURN_WITHIN {
            let back = workers
                .iter()
                .all(|p| Proc::read(*p).fds <= before[p].fds || !procfs::alive(*p));
            if back {
                outcome.fd_return = Some(reset.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(SETTLE);
        let after: BTreeMap<u32, Proc> = workers.iter().map(|&p| (p, Proc::read(p))).collect();
        outcome.rss_after_kib = after.values().map(|p| p.rss_kib).sum();
        outcome.rss_after_ratio = workers
            .iter()
            .filter(|p| peak[p].sockets > before[p].sockets)
            .map(|p| after[p].rss_kib as f64 / before[p].rss_kib.max(1) as f64)
            .collect();
        eprintln!(
            "{label}: descriptors back after {:?}; RSS after / before per worker {:?}",
            outcome.fd_return, outcome.rss_after_ratio
        );
        proxy.kill(Duration::from_secs(5));
        for b in backends {
            b.stop();
        }
        Ok(outcome)
    }
}

/// The terminator's worker processes: its root's children (hitch and stud both fork theirs
/// from a supervisor that holds no connection).
fn worker_pids(root: u32) -> Vec<u32> {
    let children: Vec<u32> = procfs::tree(root)
        .into_iter()
        .filter(|&p| p != root)
        .collect();
    if children.is_empty() {
        vec![root]
    } else {
        children
    }
}

/// One process's descriptors and resident memory.
#[derive(Debug, Clone, Copy, Default)]
struct Proc {
    fds: usize,
    sockets: usize,
    rss_kib: u64,
}

impl Proc {
    fn read(pid: u32) -> Proc {
        let mut p = Proc::default();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for entry in dir.flatten() {
                p.fds += 1;
                if std::fs::read_link(entry.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                {
                    p.sockets += 1;
                }
            }
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            p.rss_kib = procfs::parse_kb(&status, "VmRSS").unwrap_or(0);
        }
        p
    }
}

fn report(
    outcomes: &[Outcome],
    connections: usize,
    workers: usize,
    clients: usize,
    threads: usize,
    range: &str,
) -> String {
    let mut t = format!(
        "{connections} idle TLS connections, {workers} workers on one CPU, {clients} client \
         processes × {threads} threads on the other, local port range {range}\n\n| |"
    );
    for o in outcomes {
        t.push_str(&format!(" {} |", o.label));
    }
    t.push_str("\n|---|");
    t.push_str(&"---:|".repeat(outcomes.len()));
    t.push('\n');
    let mut row = |name: &str, f: &dyn Fn(&Outcome) -> String| {
        t.push_str(&format!("| {name} |"));
        for o in outcomes {
            t.push_str(&format!(" {} |", f(o)));
        }
        t.push('\n');
    };
    row("connections held", &|o| o.held.to_string());
    row("failed", &|o| {
        if o.errors == 0 {
            "0".into()
        } else {
            format!("{} ({})", o.errors, o.first_error.trim())
        }
    });
    row("time to open them all", &|o| {
        format!("{:.1} s", o.open_secs)
    });
    row("connections per worker", &|o| {
        o.split
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" / ")
    });
    row("largest / smallest worker", &|o| {
        let (max, min) = (
            o.split.iter().max().copied().unwrap_or(0),
            o.split.iter().min().copied().unwrap_or(0),
        );
        if min == 0 {
            "∞".into()
        } else {
            format!("{:.2}", max as f64 / min as f64)
        }
    });
    row("RSS before → peak (workers)", &|o| {
        format!(
            "{:.0} → {:.0} MiB",
            o.rss_before_kib as f64 / 1024.0,
            o.rss_peak_kib as f64 / 1024.0
        )
    });
    row("KiB per connection", &|o| {
        format!(
            "{:.1}",
            o.rss_peak_kib.saturating_sub(o.rss_before_kib) as f64 / o.held.max(1) as f64
        )
    });
    row("clients exited (every connection reset)", &|o| {
        format!("{} ms", o.clients_gone.as_millis())
    });
    row("every worker's descriptors back to before", &|o| {
        o.fd_return.map_or_else(
            || format!("not within {} s", RETURN_WITHIN.as_secs()),
            |d| {
                format!(
                    "{} ms ({} ms after the last client exited)",
                    d.as_millis(),
                    d.saturating_sub(o.clients_gone).as_millis()
                )
            },
        )
    });
    row("RSS 2 s later, largest worker ratio to before", &|o| {
        let worst = o.rss_after_ratio.iter().copied().fold(0.0, f64::max);
        format!(
            "{worst:.2} ({:.0} MiB in all)",
            o.rss_after_kib as f64 / 1024.0
        )
    });
    t
}

// ---------------------------------------------------------------- helper processes

/// `harness many backend PORT`: the harness's backend on a port shared with SO_REUSEPORT.
fn backend_main(args: &[String]) -> io::Result<()> {
    helpers::exit_on_stdin_eof();
    helpers::raise_fd_limit();
    let port: u16 = args
        .first()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::other("usage: harness many backend PORT"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    println!("LISTENING {addr}");
    io::stdout().flush()?;
    crate::backend::run(socket.into())
}

/// `harness many client SOURCE ADDR COUNT THREADS`: opens COUNT idle TLS connections from
/// SOURCE, reports `READY <held> <errors> [first error]`, and holds them until stdin closes;
/// every socket has SO_LINGER 0, so the exit resets them all.
fn client_main(args: &[String]) -> io::Result<()> {
    let bad = || io::Error::other("usage: harness many client SOURCE ADDR COUNT THREADS");
    let source: IpAddr = args.first().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    let addr: SocketAddr = args.get(1).and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    let count: usize = args.get(2).and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    let threads: usize = args.get(3).and_then(|a| a.parse().ok()).ok_or_else(bad)?;
    helpers::raise_fd_limit();
    let (held, errors, first) =
        crate::load::hold_with(count, threads, move |cfg| idle_from(cfg, source, addr));
    helpers::report_ready_and_hold(held, errors, first)
}

/// One idle connection from `source`: TLS handshake, `I`, the backend's `K`.
fn idle_from(
    cfg: &Arc<rustls::ClientConfig>,
    source: IpAddr,
    addr: SocketAddr,
) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    // The port is chosen at connect, per destination (as stud's --backend-source does).
    bind_address_no_port(&socket);
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), client::IO_TIMEOUT)?;
    socket.set_linger(Some(Duration::ZERO))?;
    let sock: TcpStream = socket.into();
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(client::IO_TIMEOUT))?;
    sock.set_write_timeout(Some(client::IO_TIMEOUT))?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    tls.write_all(b"I\n")?;
    tls.flush()?;
    let mut ack = [0u8; 2];
    tls.read_exact(&mut ack)?;
    if &ack != b"K\n" {
        return Err(io::Error::other("bad acknowledgement from the backend"));
    }
    Ok(tls.sock)
}

/// IP_BIND_ADDRESS_NO_PORT: a bind to port 0 reserves no port until connect.
fn bind_address_no_port(socket: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, an int option of the right size; failure only costs ports.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
