//! Accept limits of the reference driver: the connection cap, and running out of descriptors.

mod driver_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use driver_support::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use stud_core::driver::{Observer, Server};

#[test]
fn accepting_pauses_at_max_connections_and_resumes_below_it() {
    let backend = Backend::echo();
    let opts = options(&[backend.addr]).with_max_connections(Some(2));
    let mut server = Running::start(config(|b| b), opts);
    let mut first = tls_connect(server.addr);
    let mut second = tls_connect(server.addr);
    for tls in [&mut first, &mut second] {
        tls.write_all(b"ok").expect("write");
        assert_eq!(read_exact(tls, 2), b"ok");
    }

    // A third client gets a TCP connection from the kernel, but the server does not accept it.
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = ClientConnection::new(client_config(), name).expect("client");
    assert!(
        conn.complete_io(&mut sock).is_err(),
        "the handshake must wait at the cap"
    );
    assert!(conn.is_handshaking());
    assert_eq!(server.record.lock().expect("record").handshakes.len(), 2);

    // One connection ends: the third is accepted and completes.
    finish_sending(&mut first);
    assert!(read_to_end(&mut first).1);
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .expect("handshake after resuming");
    }
    let mut third = StreamOwned::new(conn, sock);
    third.write_all(b"third").expect("write");
    assert_eq!(read_exact(&mut third, 5), b"third");
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

// ------------------------------------------------------------------ descriptor exhaustion
//
// Running out of descriptors is process-wide, so it happens in a child process: this test
// binary re-executed to run `emfile_child` alone, talking to the parent over stdin/stdout.

const CHILD_ENV: &str = "STUD_DRIVER_EMFILE_CHILD";

/// Prints warnings to stdout at once, for the parent to count.
struct PrintWarnings;

impl Observer for PrintWarnings {
    fn warning(&mut self, message: &str) {
        println!("WARN {message}");
    }
}

/// CPU time this process has used (user + system), from `stat`, an open /proc/self/stat
/// (opened in advance: there is no descriptor to spare when it is needed).
fn cpu_time(stat: &std::fs::File) -> Duration {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 1024];
    let n = stat.read_at(&mut buf, 0).expect("read /proc/self/stat");
    let stat = String::from_utf8_lossy(&buf[..n]);
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime), counted from field 3 here; ticks of 10 ms
    // (USER_HZ is 100 on every Linux architecture).
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// The child's side. A no-op unless run by the parent test.
#[test]
fn emfile_child() {
    // The parent's identity, so that its clients trust this server.
    let Some(pem) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let config = stud_core::Config::builder()
        .pem(pem.into_encoded_bytes())
        .build()
        .expect("config");
    let backend = Backend::echo();
    let mut server = Server::bind(
        std::sync::Arc::new(config),
        "127.0.0.1:0".parse().expect("addr"),
        options(&[backend.addr]),
    )
    .expect("bind");
    server.set_observer(Box::new(PrintWarnings));
    let stop = server.stop_handle();
    println!("ADDR {}", server.local_addrs()[0]);
    let runner = std::thread::spawn(move || server.run());

    let stat = std::fs::File::open("/proc/self/stat").expect("/proc/self/stat");
    let mut files = Vec::new();
    let exhausted = loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => break e,
        }
        assert!(files.len() < 10_000_000, "no descriptor limit");
    };
    println!("EXHAUSTED {exhausted}");
    let stdin = std::io::stdin();
    let mut line = String::new();
    let mut expect = |word: &str| {
        line.clear();
        stdin.read_line(&mut line).expect("stdin");
        assert_eq!(line.trim(), word);
    };
    expect("measure");
    let before = cpu_time(&stat);
    expect("release");
    let used = cpu_time(&stat).saturating_sub(before);
    println!("CPU {}", used.as_millis());
    drop(files);
    println!("RELEASED");
    expect("stop");
    stop.stop_now();
    runner.join().expect("server thread").expect("run");
    println!("DONE");
}

/// Kills the child if the test fails half-way.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send(stdin: &mut ChildStdin, word: &str) {
    writeln!(stdin, "{word}").expect("write to the child");
}

#[test]
fn running_out_of_descriptors_pauses_accepting_without_spinning() {
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new(exe)
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &identity().0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let mut child = ChildGuard(child);
    let mut stdin = child.0.stdin.take().expect("stdin");
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let warnings = std::cell::Cell::new(0);
    let wait_for = |prefix: &str| -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("child never said {prefix}"));
            // libtest may print "test emfile_child ... " on the same line first.
            if line.contains("WARN ") {
                assert!(line.contains("accept"), "unexpected warning: {line}");
                warnings.set(warnings.get() + 1);
            }
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_string();
            }
        }
    };

    let addr: std::net::SocketAddr = wait_for("ADDR").parse().expect("address");
    let why = wait_for("EXHAUSTED");
    assert!(why.contains("os error 24"), "expected EMFILE, got {why}");

    // A client arrives while the child has no descriptor left to accept it with.
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tls = tls_connect(addr);
        tls.write_all(b"served at last").expect("write");
        let _ = done_tx.send(read_exact(&mut tls, 14));
    });
    std::thread::sleep(Duration::from_millis(200));
    send(&mut stdin, "measure");
    std::thread::sleep(Duration::from_millis(1500));
    send(&mut stdin, "release");
    let cpu: u64 = wait_for("CPU").parse().expect("milliseconds");
    assert!(
        cpu < 300,
        "the driver burned {cpu} ms of CPU in 1.5 s while out of descriptors"
    );
    let warnings = warnings.get();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warnings in 1.7 s: want one a second at most"
    );
    wait_for("RELEASED");

    let echoed = done
        .recv_timeout(TIMEOUT)
        .expect("the waiting client is served once descriptors are back");
    assert_eq!(echoed, b"served at last");
    send(&mut stdin, "stop");
    wait_for("DONE");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert!(status.success(), "child failed: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "child did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ------------------------------------------------------------------ the accept gate

/// A gate the test opens and closes, counting how often it is asked and what it was told.
struct TestGate {
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The largest connection count the server reported.
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl stud_core::driver::AcceptGate for TestGate {
    fn check(&mut self, open: usize, able: bool) -> stud_core::driver::Verdict {
        use std::sync::atomic::Ordering;
        assert!(able, "nothing else stops this server from accepting");
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.most.fetch_max(open, Ordering::Relaxed);
        stud_core::driver::Verdict {
            accept: self.open.load(Ordering::Relaxed),
            recheck: Some(Duration::from_millis(20)),
        }
    }
}

#[test]
fn a_closed_accept_gate_holds_clients_in_the_backlog_and_is_asked_again_on_its_timer() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let backend = Backend::echo();
    let open = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut server = Server::bind(
        config(|b| b),
        "127.0.0.1:0".parse().expect("addr"),
        options(&[backend.addr]),
    )
    .expect("bind");
    server.set_accept_gate(Box::new(TestGate {
        open: open.clone(),
        asked: asked.clone(),
        most: most.clone(),
    }));
    let mut server = Running::run(server);

    // The kernel completes the TCP handshake; the server, gated, does not accept.
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = ClientConnection::new(client_config(), name).expect("client");
    let before = asked.load(Ordering::Relaxed);
    let waited = Instant::now();
    let _ = conn.complete_io(&mut sock);
    std::thread::sleep(Duration::from_millis(400));
    let _ = conn.complete_io(&mut sock);
    let during = asked.load(Ordering::Relaxed) - before;
    let elapsed = waited.elapsed().as_millis() as usize;
    assert!(conn.is_handshaking(), "the gate holds the client back");
    assert!(server.record.lock().expect("record").handshakes.is_empty());
    // Asked again on its timer (every 20 ms), and not in a spin.
    assert!(
        during >= 5 && during <= elapsed / 20 * 3 + 10,
        "asked {during} times in {elapsed} ms"
    );

    // Opened: the waiting client is accepted within the gate's next look.
    open.store(true, Ordering::Relaxed);
    sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("handshake once opened");
    }
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"gate").expect("write");
    assert_eq!(read_exact(&mut tls, 4), b"gate");
    assert_eq!(most.load(Ordering::Relaxed), 1, "the gate hears the count");
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}
