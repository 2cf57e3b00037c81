//! TLS-level abuse and close semantics: client-initiated renegotiation, KeyUpdate floods,
//! close_notify before FIN, and half-closes both ways with large replies intact.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use stud_tests::hostile::{accepted, counting_backend, served};
use stud_tests::net::{self, backend, connect, pattern, sha256, Tls};
use stud_tests::pki::Pki;
use stud_tests::process::alive;
use stud_tests::procfs::report;
use stud_tests::{require_tool, start_stud, TIMEOUT};

/// An `openssl s_client` whose stdin the test writes to and whose output it watches.
struct SClient {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    output: mpsc::Receiver<String>,
    seen: String,
}

impl SClient {
    fn start(port: u16, pki: &Pki, version: &str) -> SClient {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                version,
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "localhost",
                "-CAfile",
                pki.ca_pem_file.to_str().expect("UTF-8 path"),
                "-verify_return_error",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start openssl s_client");
        let (tx, output) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            });
        }
        let stdin = child.stdin.take();
        SClient {
            child,
            stdin,
            output,
            seen: String::new(),
        }
    }

    fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Waits until the output so far satisfies `pred`.
    fn wait(&mut self, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        while !pred(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(s) => self.seen.push_str(&s),
                Err(_) => return false,
            }
        }
        true
    }

    /// Closes stdin and waits for the client to exit.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(s) = self.output.try_recv() {
            self.seen.push_str(&s);
        }
        self.seen
    }
}

#[test]
fn client_initiated_renegotiation_is_refused_and_the_daemon_lives() {
    require_tool("openssl");
    let pki = Pki::new();
    let (backend, count) = counting_backend();
    let stud = start_stud!(&pki, backend, &["-n", "1"]);
    let worker = stud.worker_pids(1)[0];
    let mut client = SClient::start(stud.addr.port(), &pki, "-tls1_2");
    client.send("before renegotiation\n");
    assert!(
        client.wait(|s| s.matches("before renegotiation").count() >= 1 && s.contains("TLSv1.2")),
        "no TLS 1.2 echo: {}",
        client.seen
    );
    // `R` asks s_client to renegotiate (TLS 1.2 only).
    client.send("R\n");
    let refused = client.wait(|s| s.contains("RENEGOTIATING") && s.contains("no renegotiation"));
    let out = client.finish();
    assert!(refused, "renegotiation was not refused: {out}");
    assert!(alive(worker), "the worker died");
    assert_eq!(stud.worker_pids(1), vec![worker]);
    let config = net::client_config(&pki.ca_der);
    served(stud.addr, &config).expect("served after a renegotiation attempt");
    assert_eq!(accepted(&count), 2);
}

#[test]
fn openssl_key_updates_are_honoured() {
    require_tool("openssl");
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_stud!(&pki, backend, &[]);
    let mut client = SClient::start(stud.addr.port(), &pki, "-tls1_3");
    client.send("one\n");
    assert!(client.wait(|s| s.contains("one\n")), "{}", client.seen);
    // `K`: KeyUpdate requesting ours in return; `k`: KeyUpdate alone.
    for (i, cmd) in ["K\n", "k\n", "K\n", "k\n"].iter().enumerate() {
        client.send(cmd);
        // s_client takes a command only alone in its read of stdin: wait for it to act.
        assert!(
            client.wait(|s| s.matches("KEYUPDATE").count() > i),
            "{}",
            client.seen
        );
        let line = format!("after update {i}\n");
        client.send(&line);
        assert!(
            client.wait(|s| s.contains(&line)),
            "no echo after a key update: {}",
            client.seen
        );
    }
    let out = client.finish();
    assert_eq!(out.matches("KEYUPDATE").count(), 4, "{out}");
}

/// Sends KeyUpdate requests through a rustls client; with `data`, a byte after each one.
fn key_update_flood(tls: &mut Tls, updates: usize, data: bool) -> io::Result<()> {
    for i in 0..updates {
        tls.conn.refresh_traffic_keys().map_err(io::Error::other)?;
        if data {
            tls.conn.writer().write_all(&[i as u8])?;
        }
        while tls.conn.wants_write() {
            tls.conn.write_tls(&mut tls.sock)?;
        }
    }
    Ok(())
}

#[test]
fn a_key_update_flood_is_handled_or_refused_and_the_daemon_lives() {
    const UPDATES: usize = 2000;
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_stud!(&pki, backend, &["-n", "1"]);
    let worker = stud.worker_pids(1)[0];
    let config = net::client_config(&pki.ca_der);

    // Interleaved with data: every update is honoured and every byte echoed, in order.
    let mut tls = connect(stud.addr, &config).expect("handshake");
    // The echo of each byte waits in the kernel's buffers until the end (2000 records fit).
    key_update_flood(&mut tls, UPDATES, true).expect("flood with data");
    let echoed = net::read_exact(&mut tls, UPDATES).expect("every byte echoed");
    let expected: Vec<u8> = (0..UPDATES).map(|i| i as u8).collect();
    assert_eq!(echoed, expected);

    // Back to back with no data: rustls allows 32 pending requests, then refuses with an alert.
    let mut tls = connect(stud.addr, &config).expect("handshake");
    let flood = key_update_flood(&mut tls, UPDATES, false);
    let mut rest = Vec::new();
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let end = tls.read_to_end(&mut rest);
    report(
        "key update flood",
        &format!("flood without data: send {flood:?}, then {end:?}"),
    );
    assert!(
        end.is_err() || flood.is_err(),
        "stud accepted {UPDATES} KeyUpdate requests with no data in between"
    );
    assert!(alive(worker), "the worker died");
    assert_eq!(stud.worker_pids(1), vec![worker]);
    served(stud.addr, &config).expect("served after the floods");
}

/// Reads the raw stream to its FIN, feeding rustls, and reports the plaintext and whether
/// close_notify had arrived before the FIN.
fn read_until_fin(tls: &mut Tls) -> (Vec<u8>, bool) {
    tls.sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut plain = Vec::new();
    let mut close_notify = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => return (plain, close_notify),
            Ok(_) => {
                let state = tls.conn.process_new_packets().expect("valid TLS from stud");
                close_notify |= state.peer_has_closed();
                loop {
                    match tls.conn.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => plain.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("reading plaintext: {e}"),
                    }
                }
            }
            Err(e) => panic!("the connection ended with {e}, not a FIN"),
        }
    }
}

#[test]
fn close_notify_comes_before_fin_when_the_backend_closes() {
    let pki = Pki::new();
    let addr = backend(|mut conn| {
        let mut req = [0u8; 4];
        let _ = conn.read_exact(&mut req);
        let _ = conn.write_all(&pattern(3, 100_000));
        // A full close, not a half-close: stud must still say close_notify first.
    });
    let stud = start_stud!(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"send").expect("write");
    let (plain, close_notify) = read_until_fin(&mut tls);
    assert_eq!(plain.len(), 100_000);
    assert_eq!(sha256(&plain), sha256(&pattern(3, 100_000)));
    assert!(close_notify, "stud sent FIN without close_notify");
}

/// A backend that reads the request to its end, then answers with `reply_len` bytes and the
/// request's hash first.
fn answer_after_eof_backend(reply_len: usize) -> std::net::SocketAddr {
    backend(move |mut conn| {
        let mut req = Vec::new();
        let _ = conn.read_to_end(&mut req);
        let _ = conn.write_all(&sha256(&req));
        let _ = conn.write_all(&pattern(5, reply_len));
    })
}

#[test]
fn a_client_half_close_gets_the_whole_reply_with_or_without_close_notify() {
    const REQUEST: usize = 1 << 20;
    const REPLY: usize = 4 << 20;
    let pki = Pki::new();
    let stud = start_stud!(&pki, answer_after_eof_backend(REPLY), &[]);
    let config = net::client_config(&pki.ca_der);
    for with_close_notify in [true, false] {
        let mut tls = connect(stud.addr, &config).expect("handshake");
        let request = pattern(6, REQUEST);
        tls.write_all(&request).expect("request");
        if with_close_notify {
            net::half_close(&mut tls).expect("close_notify and FIN");
        } else {
            tls.flush().expect("flush");
            tls.sock.shutdown(Shutdown::Write).expect("bare FIN");
        }
        let (plain, close_notify) = read_until_fin(&mut tls);
        assert_eq!(
            plain.len(),
            32 + REPLY,
            "reply cut short (close_notify sent: {with_close_notify})"
        );
        assert_eq!(
            plain[..32],
            sha256(&request),
            "the backend got another request"
        );
        let mut h = Sha256::new();
        h.update(&plain[32..]);
        assert_eq!(<[u8; 32]>::from(h.finalize()), sha256(&pattern(5, REPLY)));
        assert!(close_notify, "reply not ended by close_notify");
    }
}

#[test]
fn a_backend_half_close_lets_a_large_upload_finish() {
    const UPLOAD: usize = 4 << 20;
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = backend(move |mut conn| {
        let _ = conn.write_all(b"ready, send it all");
        let _ = conn.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(got);
        }
    });
    let stud = start_stud!(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    let greeting = net::read_to_end(&mut tls).expect("greeting, then close_notify");
    assert_eq!(greeting, b"ready, send it all");
    tls.write_all(&pattern(8, UPLOAD))
        .expect("upload after the backend's close");
    net::half_close(&mut tls).expect("half-close");
    let got = rx.recv_timeout(TIMEOUT).expect("backend report");
    assert_eq!(got.len(), UPLOAD);
    assert_eq!(sha256(&got), sha256(&pattern(8, UPLOAD)));
}

#[test]
fn a_backend_reset_is_not_disguised_as_a_clean_end() {
    let pki = Pki::new();
    let addr = backend(|mut conn| {
        let mut req = [0u8; 4];
        let _ = conn.read_exact(&mut req);
        let _ = conn.write_all(b"partial answer");
        std::thread::sleep(Duration::from_millis(100));
        stud_tests::hostile::reset(conn);
    });
    let stud = start_stud!(&pki, addr, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"send").expect("write");
    // The bytes before the reset arrive; the end must read as a truncation, not close_notify,
    // so the client can tell the answer may be incomplete.
    let got = net::read_exact(&mut tls, 14).expect("the bytes before the reset");
    assert_eq!(got, b"partial answer");
    let mut rest = Vec::new();
    let end = tls.read_to_end(&mut rest);
    assert!(
        end.is_err(),
        "a backend reset reached the client as a clean close_notify"
    );
}
