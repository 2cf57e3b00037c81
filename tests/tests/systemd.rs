//! The service manager's protocols, spoken to a fake manager: readiness, reload and stop
//! notifications on `$NOTIFY_SOCKET`, the watchdog keep-alive, and sockets passed the way
//! systemd passes them (`LISTEN_FDS`, `LISTEN_PID`, descriptors from 3).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use stud_tests::activation::socket_activated;
use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{send_signal, Stud};
use stud_tests::{stud_bin, TIMEOUT};

/// The manager's end of the notification socket.
struct Manager {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: TempDir,
}

impl Manager {
    fn new() -> Manager {
        let dir = TempDir::new();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        Manager {
            socket,
            path,
            _dir: dir,
        }
    }

    /// The next message, or `None` if none comes within `within`.
    fn next(&self, within: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(within.max(Duration::from_millis(1))))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Skips messages until one contains `needle`; panics after `TIMEOUT`.
    fn expect(&self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(m) if m.lines().any(|l| l == needle) => return m,
                Some(m) => seen.push(m),
                None => break,
            }
        }
        panic!("no {needle:?} from stud; got {seen:?}");
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts)
    };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1000
}

fn stud_command(pki: &Pki, extra: &[&str]) -> Command {
    let mut command = Command::new(stud_bin!());
    let backend = echo_backend().to_string();
    command.args(["-f", "127.0.0.1,0", "-b", &backend]);
    command.args(extra);
    command.arg(&pki.site_pem);
    command
}

fn serves(addr: SocketAddr, pki: &Pki) {
    let mut tls = connect(addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
}

#[test]
fn the_manager_hears_ready_reloading_and_stopping_at_the_right_moments() {
    let pki = Pki::new();
    let manager = Manager::new();
    let mut command = stud_command(&pki, &["-n", "2"]);
    command.env("NOTIFY_SOCKET", &manager.path);
    let mut stud = Stud::start_command(command);

    let ready = manager.expect("READY=1");
    assert!(ready.contains("STATUS=2 workers serving"), "{ready}");
    // Ready means serving.
    serves(stud.addr, &pki);

    let before = monotonic_usec();
    assert!(send_signal(stud.pid(), libc::SIGHUP));
    let reloading = manager.expect("RELOADING=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(
        usec >= before && usec < before + TIMEOUT.as_micros() as u64,
        "{usec} vs {before}"
    );
    let ready = manager.expect("READY=1");
    assert!(!ready.contains("failed"), "{ready}");
    serves(stud.addr, &pki);

    // A reload that cannot load: the manager is told, and the old workers serve on.
    let good = std::fs::read(&pki.site_pem).expect("read the PEM");
    std::fs::write(&pki.site_pem, b"not a certificate").expect("break the PEM");
    assert!(send_signal(stud.pid(), libc::SIGHUP));
    manager.expect("RELOADING=1");
    let failed = manager.expect("READY=1");
    assert!(failed.contains("reload failed"), "{failed}");
    serves(stud.addr, &pki);
    std::fs::write(&pki.site_pem, good).expect("restore the PEM");

    assert!(send_signal(stud.pid(), libc::SIGTERM));
    manager.expect("STOPPING=1");
    assert_eq!(stud.wait_exit(TIMEOUT).and_then(|s| s.code()), Some(0));
}

#[test]
fn the_watchdog_is_fed_only_while_every_worker_lives() {
    let pki = Pki::new();
    let manager = Manager::new();
    let mut command = stud_command(&pki, &[]);
    command.env("NOTIFY_SOCKET", &manager.path);
    command.env("WATCHDOG_USEC", "400000");
    let stud = Stud::start_command(command);
    manager.expect("READY=1");
    manager.expect("WATCHDOG=1");
    manager.expect("WATCHDOG=1");

    // A stopped worker is not alive: after its last beat ages out, the pings stop.
    let worker = stud.worker_pids(1)[0];
    assert!(send_signal(worker, libc::SIGSTOP));
    let quiet_from = Instant::now() + Duration::from_secs(4);
    let mut pings_after = 0;
    while Instant::now() < quiet_from + Duration::from_secs(2) {
        if let Some(m) = manager.next(Duration::from_millis(200)) {
            if m.lines().any(|l| l == "WATCHDOG=1") && Instant::now() > quiet_from {
                pings_after += 1;
            }
        }
    }
    assert_eq!(pings_after, 0, "the watchdog was fed for a stopped worker");

    assert!(send_signal(worker, libc::SIGCONT));
    manager.expect("WATCHDOG=1");
}

#[test]
fn a_socket_passed_by_the_service_manager_is_served_with_connections_made_before_start() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    // A client that arrives while stud is not running waits in the manager's socket's backlog.
    let early = TcpStream::connect(addr).expect("connect before stud starts");
    let backend = echo_backend().to_string();
    let args = vec![
        "-f".to_string(),
        format!("127.0.0.1,{}", addr.port()),
        "-b".to_string(),
        backend,
        pki.site_pem.display().to_string(),
    ];
    let stud = Stud::start_command(socket_activated(&stud_bin!(), &listener, &args));
    drop(listener);
    assert_eq!(stud.addr, addr, "{}", stud.output());
    // The early client's connection is accepted and served.
    let mut tls = net::handshake_over(early, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"early").expect("write");
    assert_eq!(net::read_exact(&mut tls, 5).expect("echo"), b"early");
    serves(addr, &pki);
}

#[test]
fn a_passed_socket_that_no_frontend_names_is_refused() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = echo_backend().to_string();
    let args = vec![
        "-f".to_string(),
        "127.0.0.1,0".to_string(),
        "-b".to_string(),
        backend,
        pki.site_pem.display().to_string(),
    ];
    let mut stud = Stud::spawn_command(socket_activated(&stud_bin!(), &listener, &args));
    let status = stud.wait_exit(TIMEOUT).expect("stud exits");
    assert!(!status.success());
    let out = stud.output();
    assert!(out.contains("matches no -f"), "{out}");
}
