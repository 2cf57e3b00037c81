//! The effect of each operational flag: --self-signed, --daemon/-p, -u/-g/-r, -q, -s, -k, -B,
//! -c and the timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{alive, run, send_signal, Stud};
use stud_tests::{optional_tool, require_tool, stud_bin, TIMEOUT};

fn start(pki: &Pki, backend: SocketAddr, extra: &[&str]) -> Stud {
    Stud::serve(&stud_bin!(), &pki.site_pem, backend, extra)
}

/// Retries the TLS handshake until stud listens (for runs that do not log where).
fn connect_retrying(addr: SocketAddr, pki: &Pki) -> net::Tls {
    let config = net::client_config(&pki.ca_der);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match connect(addr, &config) {
            Ok(tls) => return tls,
            Err(e) if Instant::now() > deadline => panic!("stud never served {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn echo_works(tls: &mut net::Tls) {
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(tls, 4).expect("echo"), b"ping");
}

#[test]
fn self_signed_serves_and_prints_the_fingerprint() {
    require_tool("python3");
    let b = echo_backend().to_string();
    let stud = Stud::start(
        &stud_bin!(),
        &["--self-signed", "-f", "127.0.0.1,0", "-b", &b],
    );
    let line = stud
        .wait_line(|l| l.contains("SHA-256 fingerprint "), TIMEOUT)
        .expect("fingerprint printed");
    let printed = line.rsplit(' ').next().expect("fingerprint").to_string();
    let script = r#"
import hashlib, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        der = s.getpeercert(binary_form=True)
        s.sendall(b"ok?")
        print(":".join("%02X" % b for b in hashlib.sha256(der).digest()), s.recv(3).decode())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &stud.addr.port().to_string()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{printed} ok?"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn daemon_writes_and_removes_the_pidfile() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let pidfile = dir.path().join("stud.pid");
    let port = net::free_port();
    let b = echo_backend().to_string();
    let f = format!("127.0.0.1,{port}");
    let out = run(
        &stud_bin!(),
        &[
            "--daemon",
            "-p",
            pidfile.to_str().expect("utf-8"),
            "-f",
            &f,
            "-b",
            &b,
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(0), "foreground exit: {}", out.stderr);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pidfile written")
        .trim()
        .parse()
        .expect("pid in pidfile");
    // Make sure the daemon goes away even if an assertion below fails.
    struct Reaper(i32);
    impl Drop for Reaper {
        fn drop(&mut self) {
            send_signal(-self.0, libc::SIGKILL);
            send_signal(self.0, libc::SIGKILL);
        }
    }
    let _reaper = Reaper(pid);
    assert!(alive(pid), "daemon not running");
    let mut tls = connect_retrying(SocketAddr::from(([127, 0, 0, 1], port)), &pki);
    echo_works(&mut tls);
    drop(tls);
    assert!(send_signal(pid, libc::SIGTERM));
    let deadline = Instant::now() + TIMEOUT;
    while alive(pid) || pidfile.exists() {
        assert!(
            Instant::now() < deadline,
            "daemon did not stop and remove its pidfile"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_start_up_errors_reach_the_terminal() {
    let pki = Pki::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let f = format!("127.0.0.1,{}", taken.local_addr().expect("addr").port());
    let out = run(
        &stud_bin!(),
        &["--daemon", "-f", &f, pki.site_pem.to_str().expect("utf-8")],
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("stud: error: cannot listen"),
        "{}",
        out.stderr
    );
}

fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn workers_drop_privileges_after_binding_and_the_supervisor_keeps_them() {
    if stud_tests::process::effective_uid() != 0 {
        stud_tests::skipped("not root, so -u/-g/-r cannot be exercised here");
        return;
    }
    let pki = Pki::new();
    let jail = TempDir::new();
    let stud = start(
        &pki,
        echo_backend(),
        &[
            "-u",
            "nobody",
            "-g",
            "nogroup",
            "-r",
            jail.path().to_str().expect("utf-8"),
        ],
    );
    let worker = stud.worker_pids(1)[0];
    // The worker drops privileges as its first act after fork; give it that moment.
    let deadline = Instant::now() + TIMEOUT;
    while status_field(worker, "Uid:") != "65534" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status_field(worker, "Uid:"), "65534", "uid of the worker");
    assert_eq!(status_field(worker, "Gid:"), "65534", "gid of the worker");
    let root = std::fs::read_link(format!("/proc/{worker}/root")).expect("root link");
    assert_eq!(root, jail.path().canonicalize().expect("jail"));
    // The supervisor keeps root, so it can read root-only keys again on SIGHUP.
    assert_eq!(
        status_field(stud.pid(), "Uid:"),
        "0",
        "uid of the supervisor"
    );
    let mut tls = connect_retrying(stud.addr, &pki);
    echo_works(&mut tls);
}

/// Starts stud on a free port with `extra` flags in front of an echo backend, for runs whose
/// log does not say where they listen, and waits until it serves a handshake.
fn spawn_serving(pki: &Pki, extra: &[&str]) -> Stud {
    let port = net::free_port();
    let b = echo_backend().to_string();
    let f = format!("127.0.0.1,{port}");
    let mut args = extra.to_vec();
    args.extend_from_slice(&["-f", &f, "-b", &b, pki.site_pem.to_str().expect("utf-8")]);
    let stud = Stud::spawn(&stud_bin!(), &args);
    let mut tls = connect_retrying(SocketAddr::from(([127, 0, 0, 1], port)), pki);
    echo_works(&mut tls);
    stud
}

#[test]
fn quiet_keeps_warnings_only() {
    let pki = Pki::new();
    let stud = spawn_serving(&pki, &["-q", "--ssl"]);
    let out = stud.output();
    assert!(out.contains("stud: warning: --ssl"), "{out}");
    assert!(
        !out.contains("listening on") && !out.contains("started"),
        "{out}"
    );
}

#[test]
fn syslog_takes_the_routine_lines_off_stderr() {
    let pki = Pki::new();
    let stud = spawn_serving(&pki, &["-s", "--syslog-facility=local3"]);
    assert!(!stud.output().contains("listening on"), "{}", stud.output());
}

/// `ss` output for sockets matching `filter` (callers check `optional_tool("ss")` first).
fn ss(args: &[&str]) -> String {
    let out = Command::new("ss").args(args).output().expect("ss");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn backlog_sets_the_listen_queue() {
    if !optional_tool("ss") {
        return;
    }
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &["-B", "7"]);
    let port = stud.addr.port();
    let table = ss(&["-ltnH", &format!("sport = :{port}")]);
    // For a listening socket, Send-Q is the backlog.
    let send_q: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(send_q, vec!["7"], "{table}");
}

#[test]
fn keepalive_is_set_on_client_sockets_and_zero_turns_it_off() {
    if !optional_tool("ss") {
        return;
    }
    let pki = Pki::new();
    for (flag, expect) in [("60", true), ("0", false)] {
        let stud = start(&pki, echo_backend(), &["-k", flag]);
        let mut tls = connect_retrying(stud.addr, &pki);
        echo_works(&mut tls);
        let port = stud.addr.port();
        // `ss` shows one timer per socket: while a segment awaits its ACK the retransmit timer
        // ("on") hides the keepalive timer, so sample a few times over a bounded window.
        let filter = format!("sport = :{port}");
        let mut table = String::new();
        let mut seen = false;
        for _ in 0..20 {
            table = ss(&["-tnoH", "state", "established", &filter]);
            if table.contains("keepalive") {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(seen, expect, "-k {flag}: {table}");
    }
}

/// The raw TCP connection is closed by stud (EOF or reset) within `within`.
fn closed_within(mut tcp: TcpStream, within: Duration) {
    tcp.set_read_timeout(Some(within)).expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed within {within:?}: {e}"),
        }
    }
    assert!(start.elapsed() < within);
}

#[test]
fn handshake_timeout_closes_silent_clients() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &["--ssl-handshake-timeout=1"]);
    let tcp = TcpStream::connect(stud.addr).expect("connect");
    closed_within(tcp, Duration::from_secs(4));
}

#[test]
fn idle_timeout_closes_quiet_connections() {
    let pki = Pki::new();
    let stud = start(&pki, echo_backend(), &["--idle-timeout=1"]);
    let mut tls = connect_retrying(stud.addr, &pki);
    echo_works(&mut tls);
    let start = Instant::now();
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 8];
    let r = tls.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "idle connection lived {:?}",
        start.elapsed()
    );
}

#[test]
fn backend_connect_timeout_gives_up_on_a_silent_backend() {
    let pki = Pki::new();
    // A listener that never accepts, with its queue filled, drops further SYNs: connects hang.
    let silent = net::silent_address();
    let stud = start(&pki, silent.addr, &["--backend-connect-timeout=1"]);
    let mut tls = connect_retrying(stud.addr, &pki);
    let _ = tls.write_all(b"hello?");
    let start = Instant::now();
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(6)))
        .expect("timeout");
    let mut buf = [0u8; 8];
    let r = tls.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[test]
fn cipher_list_limits_tls12_suites() {
    require_tool("openssl");
    let pki = Pki::new();
    let stud = start(
        &pki,
        echo_backend(),
        &["-c", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    let handshake = |cipher: &str| {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &stud.addr.to_string(),
                "-tls1_2",
                "-cipher",
                cipher,
                "-CAfile",
                pki.ca_pem_file.to_str().expect("utf-8"),
                "-verify_return_error",
                "-servername",
                "localhost",
                "-brief",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl")
    };
    let allowed = handshake("ECDHE-ECDSA-AES256-GCM-SHA384");
    let text = String::from_utf8_lossy(&allowed.stderr);
    assert!(text.contains("ECDHE-ECDSA-AES256-GCM-SHA384"), "{text}");
    let refused = handshake("ECDHE-ECDSA-AES128-GCM-SHA256");
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() || !text.contains("Cipher is"),
        "{text}"
    );
}

#[test]
fn several_frontends_each_serve_with_shared_and_reuseport_sockets() {
    let pki = Pki::new();
    let backend = echo_backend();
    let b = backend.to_string();
    let pem = pki.site_pem.to_str().expect("utf-8");
    for extra in [&["-n", "1"][..], &["-n", "2", "--reuseport"][..]] {
        let mut args = vec!["-f", "127.0.0.1,0", "-f", "127.0.0.1,0", "-b", &b];
        args.extend_from_slice(extra);
        args.push(pem);
        let stud = Stud::start(&stud_bin!(), &args);
        let addrs = stud.addrs.clone();
        assert_eq!(addrs.len(), 2, "{extra:?}: {}", stud.output());
        assert_ne!(addrs[0], addrs[1]);
        assert_eq!(stud.addr, addrs[0]);
        for addr in addrs {
            // Several connections each, so that with --reuseport both workers' sockets serve.
            for _ in 0..6 {
                let mut tls = connect(addr, &net::client_config(&pki.ca_der)).expect("handshake");
                echo_works(&mut tls);
            }
        }
    }
}

#[test]
fn a_frontend_that_cannot_bind_stops_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let pki = Pki::new();
    let busy = format!("127.0.0.1,{port}");
    let out = run(
        &stud_bin!(),
        &[
            "-f",
            "127.0.0.1,0",
            "-f",
            &busy,
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains(&port.to_string()), "{}", out.stderr);
}

#[test]
fn tls_protos_limits_the_versions_offered() {
    let pki = Pki::new();
    let backend = echo_backend();
    let only13 = start(&pki, backend, &["--tls-protos=TLSv1.3"]);
    let tls12 = net::client_config_speaking(&pki.ca_der, &[&rustls::version::TLS12]);
    let tls13 = net::client_config_speaking(&pki.ca_der, &[&rustls::version::TLS13]);
    assert!(
        connect(only13.addr, &tls12).is_err(),
        "a TLS 1.2 client must be refused"
    );
    let mut ok = connect(only13.addr, &tls13).expect("TLS 1.3 handshake");
    echo_works(&mut ok);

    let only12 = start(&pki, backend, &["--tls-protos=TLSv1.2"]);
    assert!(
        connect(only12.addr, &tls13).is_err(),
        "a TLS 1.3 client must be refused"
    );
    let mut ok = connect(only12.addr, &tls12).expect("TLS 1.2 handshake");
    assert_eq!(
        ok.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    echo_works(&mut ok);
}

#[test]
fn max_conns_holds_further_clients_in_the_backlog_until_one_leaves() {
    let pki = Pki::new();
    let backend = echo_backend();
    let stud = start(&pki, backend, &["--max-conns=2"]);
    let config = net::client_config(&pki.ca_der);
    let mut first = connect(stud.addr, &config).expect("first");
    echo_works(&mut first);
    let mut second = connect(stud.addr, &config).expect("second");
    echo_works(&mut second);
    // The third is queued by the kernel, but its handshake waits: the worker is not accepting.
    let (tx, rx) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn({
        let config = config.clone();
        let addr = stud.addr;
        move || {
            let mut third = connect(addr, &config).expect("third, once a place frees");
            let _ = tx.send(());
            echo_works(&mut third);
        }
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "the third client was served while two connections were open"
    );
    drop(first);
    rx.recv_timeout(TIMEOUT)
        .expect("the third client is served once a place frees");
    waiting.join().expect("third client");
    echo_works(&mut second);
}

#[test]
fn two_spellings_of_one_frontend_are_refused_even_with_reuseport() {
    let pki = Pki::new();
    let port = net::free_port();
    // "127.1" is resolved (inet_aton's short form), not parsed, and names 127.0.0.1.
    let by_name = format!("127.1,{port}");
    let by_number = format!("127.0.0.1,{port}");
    let out = run(
        &stud_bin!(),
        &[
            "--reuseport",
            "-n",
            "2",
            "-f",
            &by_name,
            "-f",
            &by_number,
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("the same address"), "{}", out.stderr);
    // -t says so too: the check needs no socket.
    let checked = run(
        &stud_bin!(),
        &[
            "-t",
            "-f",
            &by_name,
            "-f",
            &by_number,
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(checked.code, Some(1), "{}", checked.stdout);
    assert!(
        checked.stderr.contains("the same address"),
        "{}",
        checked.stderr
    );
}

#[test]
fn log_conns_writes_one_line_per_finished_connection() {
    let pki = Pki::new();
    let backend = echo_backend();
    let stud = start(&pki, backend, &["--log-conns"]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    let client = tls.sock.local_addr().expect("client address");
    echo_works(&mut tls);
    net::half_close(&mut tls).expect("close_notify and FIN");
    let _ = net::read_to_end(&mut tls);
    let wanted = format!("connection {client} closed: completed");
    let line = stud
        .wait_line(|l| l.contains(&wanted), TIMEOUT)
        .unwrap_or_else(|| panic!("no connection line: {}", stud.output()));
    // 4 bytes each way through the backend.
    assert!(line.contains("4 B to the backend, 4 B from it"), "{line}");
    // Without the flag, a completed connection is not logged: after it, a failed handshake
    // (always logged) shows the log has caught up, and no connection line came before it.
    let plain = start(&pki, backend, &[]);
    let mut tls = connect(plain.addr, &config).expect("handshake");
    echo_works(&mut tls);
    net::half_close(&mut tls).expect("close");
    let _ = net::read_to_end(&mut tls);
    drop(tls);
    let mut junk = TcpStream::connect(plain.addr).expect("connect");
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
    let _ = junk.read(&mut [0u8; 64]);
    assert!(
        plain
            .wait_line(|l| l.contains("handshake with"), TIMEOUT)
            .is_some(),
        "{}",
        plain.output()
    );
    assert!(
        !plain.output().contains("closed: completed"),
        "{}",
        plain.output()
    );
}

/// Whether `openssl s_client`, which does not verify, completes a handshake asking for `sni`.
fn openssl_handshake_completes(addr: SocketAddr, sni: &str) -> bool {
    net::s_client(addr, &["-servername", sni, "-brief"]).contains("CONNECTION ESTABLISHED")
}

#[test]
fn sni_nomatch_abort_refuses_unknown_names_only() {
    require_tool("openssl");
    let pki = Pki::new();
    let backend = echo_backend();
    let strict = start(&pki, backend, &["--sni-nomatch-abort"]);
    let lenient = start(&pki, backend, &[]);
    assert!(openssl_handshake_completes(strict.addr, "localhost"));
    assert!(openssl_handshake_completes(lenient.addr, "nobody.example"));
    assert!(
        !openssl_handshake_completes(strict.addr, "nobody.example"),
        "a name no certificate covers must fail the handshake"
    );
}

#[test]
fn backend_refresh_keeps_serving_and_does_not_reload_while_the_addresses_stay() {
    let pki = Pki::new();
    let backend = echo_backend();
    let b = format!("localhost,{}", backend.port());
    let stud = Stud::start(
        &stud_bin!(),
        &[
            "-f",
            "127.0.0.1,0",
            "-b",
            &b,
            "--backend-refresh=1",
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    // Two refreshes and more: the name resolves to the same addresses each time.
    std::thread::sleep(Duration::from_millis(2500));
    let mut tls = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    echo_works(&mut tls);
    let out = stud.output();
    assert!(!out.contains("reload"), "{out}");
    assert!(!out.contains("backend-refresh"), "{out}");
}
