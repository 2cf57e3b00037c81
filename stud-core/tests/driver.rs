//! The reference driver over real sockets: rustls clients ⇄ `Server` ⇄ TCP backends on loopback.

mod driver_support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use driver_support::*;
use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use stud_core::{ClientAddressMode, CloseReason};

#[test]
fn handshake_then_request_and_response_are_relayed() {
    let backend = Backend::echo();
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let mut tls = tls_connect(server.addr);
    tls.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    assert_eq!(read_exact(&mut tls, 18), b"GET / HTTP/1.0\r\n\r\n");
    finish_sending(&mut tls);
    let (rest, clean) = read_to_end(&mut tls);
    assert!(rest.is_empty());
    assert!(
        clean,
        "the echo's end of stream must arrive as close_notify"
    );

    let closes = server.wait_closes(1, TIMEOUT);
    let (_, reason, stats) = &closes[0];
    assert_eq!(reason, &CloseReason::Completed);
    assert_eq!(stats.bytes_to_backend, 18);
    assert_eq!(stats.bytes_from_backend, 18);
    assert!(
        stats.bytes_from_client > 18 && stats.bytes_to_client > 18,
        "{stats:?}"
    );
    {
        let record = server.record.lock().expect("record");
        assert_eq!(record.handshakes.len(), 1);
        // The observer heard of the accept, and of the handshake with the time it took.
        assert_eq!(record.accepted, vec![closes[0].0]);
        let took = record.handshake_times[0];
        assert!(took > Duration::ZERO && took < TIMEOUT, "{took:?}");
    }
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

/// Drives a client by hand over a nonblocking socket, so it uploads and downloads at once.
/// Returns what it received and whether the stream ended with close_notify and then EOF.
fn full_duplex(addr: std::net::SocketAddr, upload: &[u8]) -> (Vec<u8>, bool) {
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_nonblocking(true).expect("nonblocking");
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = ClientConnection::new(client_config(), name).expect("client");
    let (mut sent, mut close_sent, mut shut) = (0, false, false);
    let (mut received, mut close_notify, mut eof) = (Vec::new(), false, false);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(close_notify && eof) {
        assert!(
            Instant::now() < deadline,
            "full-duplex transfer hung at {sent} sent, {} received",
            received.len()
        );
        let mut progress = false;
        if !conn.is_handshaking() && sent < upload.len() && !conn.wants_write() {
            let end = upload.len().min(sent + 32 * 1024);
            sent += conn
                .writer()
                .write(&upload[sent..end])
                .expect("buffer plaintext");
            progress = true;
        }
        if sent == upload.len() && !close_sent && !conn.is_handshaking() {
            conn.send_close_notify();
            close_sent = true;
        }
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("client write: {e}"),
            }
        }
        if close_sent && !conn.wants_write() && !shut {
            sock.shutdown(Shutdown::Write).expect("shutdown");
            shut = true;
        }
        if !eof {
            match conn.read_tls(&mut sock) {
                Ok(0) => eof = true,
                Ok(_) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
            let state = conn.process_new_packets().expect("TLS from the server");
            close_notify |= state.peer_has_closed();
            loop {
                match conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        received.extend_from_slice(&buf[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return (received, false),
                }
            }
        }
        if eof && !close_notify {
            return (received, false);
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (received, true)
}

#[test]
fn eight_mib_each_way_at_once_arrive_intact() {
    const SIZE: usize = 8 << 20;
    let upload = pattern(1, SIZE);
    let download = Arc::new(pattern(2, SIZE));
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let to_send = download.clone();
    let backend = Backend::spawn(move |stream| {
        let mut writer = stream.try_clone().expect("clone");
        let data = to_send.clone();
        let sender = std::thread::spawn(move || {
            writer.write_all(&data).expect("backend write");
            writer.shutdown(Shutdown::Write).expect("backend shutdown");
        });
        let mut got = Vec::new();
        (&stream).read_to_end(&mut got).expect("backend read");
        sender.join().expect("backend sender");
        let _ = tx.lock().expect("tx").send(got);
    });
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));

    let (received, clean) = full_duplex(server.addr, &upload);
    assert!(
        received == *download,
        "download corrupted: {} of {SIZE} bytes",
        received.len()
    );
    assert!(clean, "the download must end with close_notify, then EOF");
    let got = rx.recv_timeout(TIMEOUT).expect("backend finished");
    assert!(
        got == upload,
        "upload corrupted: {} of {SIZE} bytes",
        got.len()
    );

    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::Completed);
    assert_eq!(closes[0].2.bytes_from_backend, SIZE as u64);
    assert_eq!(closes[0].2.bytes_to_backend, SIZE as u64);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn two_hundred_concurrent_connections() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let backend = Backend::echo();
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let addr = server.addr;
    let all_open = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let all_open = all_open.clone();
            std::thread::spawn(move || {
                let mut conns: Vec<_> = (0..PER_THREAD).map(|_| tls_connect(addr)).collect();
                all_open.wait();
                for (i, tls) in conns.iter_mut().enumerate() {
                    let msg = format!("connection {t}/{i}");
                    tls.write_all(msg.as_bytes()).expect("write");
                    assert_eq!(read_exact(tls, msg.len()), msg.as_bytes());
                }
                conns
            })
        })
        .collect();
    let mut conns = Vec::new();
    for t in threads {
        conns.extend(t.join().expect("client thread"));
    }
    // Every connection has had its echo, so every backend connection is open at once.
    assert_eq!(
        backend.max_active.load(std::sync::atomic::Ordering::SeqCst),
        THREADS * PER_THREAD
    );
    for tls in &mut conns {
        finish_sending(tls);
    }
    for tls in &mut conns {
        let (rest, clean) = read_to_end(tls);
        assert!(rest.is_empty() && clean);
    }
    let closes = server.wait_closes(THREADS * PER_THREAD, TIMEOUT);
    assert!(
        closes.iter().all(|(_, r, _)| *r == CloseReason::Completed),
        "{closes:?}"
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn client_half_close_still_gets_the_backend_reply() {
    // The backend answers only once the client is done sending.
    let backend = Backend::spawn(|mut stream| {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("backend read");
        let reply = format!("received {} bytes", got.len());
        stream.write_all(reply.as_bytes()).expect("backend write");
    });
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let mut tls = tls_connect(server.addr);
    tls.write_all(&[7u8; 1000]).expect("write");
    finish_sending(&mut tls);
    let (reply, clean) = read_to_end(&mut tls);
    assert_eq!(reply, b"received 1000 bytes");
    assert!(clean);
    assert_eq!(server.wait_closes(1, TIMEOUT)[0].1, CloseReason::Completed);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn backend_eof_becomes_close_notify_then_eof() {
    let backend = Backend::spawn(|mut stream| {
        stream.write_all(b"bye").expect("backend write");
        // Dropping the stream closes it: end of stream for the driver.
    });
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let mut tls = tls_connect(server.addr);
    let (data, clean) = read_to_end(&mut tls);
    assert_eq!(data, b"bye");
    assert!(clean, "close_notify must come before the end of the stream");
    assert!(
        socket_closes_within(&tls.sock, Duration::from_secs(5)),
        "the client's socket must see EOF after close_notify"
    );
    drop(tls);
    assert_eq!(server.wait_closes(1, TIMEOUT)[0].1, CloseReason::Completed);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn a_refusing_backend_closes_the_client_promptly() {
    let closed = closed_port();
    let refused = closed.addr;
    let mut server = Running::start(config(|b| b), options(&[refused]));
    let started = Instant::now();
    let mut tls = tls_connect(server.addr);
    let (data, _) = read_to_end(&mut tls);
    assert!(data.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::BackendConnectFailed);
    let warnings = server.warnings();
    assert!(
        warnings.iter().any(|w| w.contains(&refused.to_string())),
        "the refusing backend is named: {warnings:?}"
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn the_second_backend_address_is_used_when_the_first_refuses() {
    let backend = Backend::echo();
    let closed = closed_port();
    let mut server = Running::start(config(|b| b), options(&[closed.addr, backend.addr]));
    for round in 0..3 {
        let mut tls = tls_connect(server.addr);
        let msg = format!("round {round}");
        tls.write_all(msg.as_bytes()).expect("write");
        assert_eq!(read_exact(&mut tls, msg.len()), msg.as_bytes());
        finish_sending(&mut tls);
        assert!(read_to_end(&mut tls).1);
    }
    assert_eq!(backend.accepts(), 3);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn an_address_that_never_answers_yields_to_the_next_after_its_share_of_the_timeout() {
    let silent = silent_address();
    let backend = Backend::echo();
    let cfg = config(|b| b.backend_connect_timeout(Duration::from_secs(6)));
    let mut server = Running::start(cfg, options(&[silent.addr, backend.addr]));
    let started = Instant::now();
    let mut tls = tls_connect(server.addr);
    tls.write_all(b"ping").expect("write");
    // Two addresses share the 6 s: the silent one yields after 3 s, and the echo answers before
    // the whole timeout would have closed the connection (which an answer at all proves).
    assert_eq!(read_exact(&mut tls, 4), b"ping");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "took {took:?}"
    );
    finish_sending(&mut tls);
    assert!(read_to_end(&mut tls).1);
    assert_eq!(backend.accepts(), 1);
    let warnings = server.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&silent.addr.to_string()) && w.contains("timed out")),
        "the silent address is named: {warnings:?}"
    );
    assert_eq!(server.wait_closes(1, TIMEOUT)[0].1, CloseReason::Completed);
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn a_single_silent_address_gets_the_whole_connect_timeout() {
    let silent = silent_address();
    let cfg = config(|b| b.backend_connect_timeout(Duration::from_millis(1500)));
    let mut server = Running::start(cfg, options(&[silent.addr]));
    let started = Instant::now();
    let mut tls = tls_connect(server.addr);
    let (data, _) = read_to_end(&mut tls);
    assert!(data.is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert_eq!(
        server.wait_closes(1, TIMEOUT)[0].1,
        CloseReason::BackendConnectTimeout
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn heartbeats_come_at_their_interval_while_idle_and_never_without_one() {
    let backend = Backend::echo();
    let beating = Running::start(
        config(|b| b),
        options(&[backend.addr]).with_heartbeat(Some(Duration::from_millis(100))),
    );
    let quiet = Running::start(config(|b| b), options(&[backend.addr]));
    // An idle loop wakes for its heartbeats: five arrive (bounded wait, for a loaded machine).
    let started = Instant::now();
    let beats = loop {
        let beats = beating.record.lock().expect("record").heartbeats.clone();
        if beats.len() >= 5 {
            break beats;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "only {} heartbeats in {TIMEOUT:?}",
            beats.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // And it does not spin: never two within half an interval (a spinning loop would give
    // microseconds; half leaves room for a late observer on a loaded machine).
    for pair in beats.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(50),
            "heartbeats {:?} apart",
            pair[1] - pair[0]
        );
    }
    assert!(quiet.record.lock().expect("record").heartbeats.is_empty());
    for mut server in [beating, quiet] {
        server.stop.stop();
        server.join(TIMEOUT).expect("run");
    }
}

#[test]
fn a_silent_client_meets_the_handshake_timeout() {
    let backend = Backend::echo();
    let cfg = config(|b| b.handshake_timeout(Duration::from_millis(300)));
    let mut server = Running::start(cfg, options(&[backend.addr]));
    let started = Instant::now();
    let sock = TcpStream::connect(server.addr).expect("connect");
    assert!(
        socket_closes_within(&sock, Duration::from_secs(5)),
        "silent client not closed"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed too early: {elapsed:?}"
    );
    assert_eq!(
        server.wait_closes(1, TIMEOUT)[0].1,
        CloseReason::HandshakeTimeout
    );
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

/// On Linux a listener serving TLS clients takes a connection from the kernel only once it has
/// spoken (`Options::defer_accept`): a port scan or a TCP-only health check costs no session,
/// while a client that speaks is served at once. (A silent client is still handed over after the
/// wait and meets its handshake deadline: `a_silent_client_meets_the_handshake_timeout`.)
#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn a_connection_that_never_speaks_costs_no_session() {
    let backend = Backend::echo();
    let options = options(&[backend.addr]).with_defer_accept(Some(Duration::from_secs(30)));
    let mut server = Running::start(config(|b| b), options);
    let silent = TcpStream::connect(server.addr).expect("connect");
    let mut tls = tls_connect(server.addr);
    tls.write_all(b"ping").expect("write");
    assert_eq!(read_exact(&mut tls, 4), b"ping");
    std::thread::sleep(Duration::from_millis(200));
    let accepted = server.record.lock().expect("record").accepted.clone();
    assert_eq!(
        accepted,
        vec![tls.sock.local_addr().expect("addr")],
        "only the client that spoke was accepted"
    );
    drop((silent, tls));
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn no_backend_connection_without_a_finished_handshake() {
    let backend = Backend::echo();
    let cfg = config(|b| b.handshake_timeout(Duration::from_millis(300)));
    let mut server = Running::start(cfg, options(&[backend.addr]));
    // Silent.
    let silent = TcpStream::connect(server.addr).expect("connect");
    // Half a ClientHello: a record header promising 512 bytes, then 10 of them.
    let mut partial = TcpStream::connect(server.addr).expect("connect");
    partial
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3, 0, 0, 0, 0,
        ])
        .expect("write");
    // Not TLS at all.
    let mut plain = TcpStream::connect(server.addr).expect("connect");
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    // Gone at once.
    drop(TcpStream::connect(server.addr).expect("connect"));

    let closes = server.wait_closes(4, TIMEOUT);
    assert!(
        closes.iter().all(|(_, r, _)| r.is_handshake_failure()),
        "{closes:?}"
    );
    assert_eq!(
        backend.accepts(),
        0,
        "a backend connection was opened for a failed handshake"
    );
    drop((silent, partial, plain));
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}

/// Runs one request through a server in `mode`; returns what the backend received and the
/// client's local address.
fn through_backend(
    mode: ClientAddressMode,
) -> (Vec<u8>, std::net::SocketAddr, std::net::SocketAddr) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let backend = Backend::spawn(move |mut stream| {
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("backend read");
        let _ = tx.lock().expect("tx").send(got);
    });
    let mut server = Running::start(config(|b| b.client_address(mode)), options(&[backend.addr]));
    let mut tls = tls_connect(server.addr);
    let client_addr = tls.sock.local_addr().expect("client addr");
    tls.write_all(b"ping").expect("write");
    finish_sending(&mut tls);
    let got = rx.recv_timeout(TIMEOUT).expect("backend received");
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
    (got, client_addr, server.addr)
}

#[test]
fn write_ip_header_reaches_the_backend_first() {
    let (got, _, _) = through_backend(ClientAddressMode::WriteIp);
    assert_eq!(got, [&[2u8, 127, 0, 0, 1][..], b"ping"].concat());
}

#[test]
fn proxy_v1_header_carries_the_real_peer_and_local_addresses() {
    let (got, client, server) = through_backend(ClientAddressMode::ProxyV1);
    let want = format!(
        "PROXY TCP4 {} {} {} {}\r\nping",
        client.ip(),
        server.ip(),
        client.port(),
        server.port()
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[test]
fn a_stalled_client_stalls_the_backend() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CHUNK: usize = 64 * 1024;
    const LIMIT: usize = 256 << 20;
    let chunk = Arc::new(pattern(5, CHUNK));
    let written = Arc::new(AtomicUsize::new(0));
    let (data, count) = (chunk.clone(), written.clone());
    let backend = Backend::spawn(move |mut stream| {
        // Writes until the server stops taking bytes (or the test ends the connection).
        while count.load(Ordering::SeqCst) < LIMIT {
            if stream.write_all(&data).is_err() {
                return;
            }
            count.fetch_add(CHUNK, Ordering::SeqCst);
        }
    });
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let mut tls = tls_connect(server.addr);

    // The client reads nothing: once the buffers on the way are full, the backend must stall.
    let mut last = 0;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = written.load(Ordering::SeqCst);
        if now > 0 && now == last {
            break;
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "the backend never stalled ({now} bytes written)"
        );
    }
    assert!(last < LIMIT, "nothing held the backend back");

    // Reading resumes the flow, in order: the backend moves on once the client has taken
    // enough for the buffers on the way to drain.
    let deadline = Instant::now() + TIMEOUT;
    let mut read = 0;
    while written.load(Ordering::SeqCst) < last + (1 << 20) {
        assert!(
            Instant::now() < deadline,
            "the backend did not resume after {read} bytes read"
        );
        assert!(
            read_exact(&mut tls, CHUNK) == *chunk,
            "bytes out of order after the stall"
        );
        read += CHUNK;
    }
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

#[test]
fn idle_and_half_closed_connections_cost_no_cpu() {
    // A backend that never speaks first: it reads, ends its own stream when told "close", and
    // holds the connection open for a while after the client's end of stream.
    let backend = Backend::spawn(|mut stream| {
        let mut buf = [0u8; 64];
        if let Ok(n) = stream.read(&mut buf) {
            if &buf[..n] == b"close" {
                let _ = stream.shutdown(Shutdown::Write);
            }
        }
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        std::thread::sleep(Duration::from_secs(3));
    });
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    // Handshaking and silent.
    let _handshaking = TcpStream::connect(server.addr).expect("connect");
    // Established and idle.
    let mut idle = tls_connect(server.addr);
    idle.write_all(b"x").expect("write");
    // The client is done; the backend has not answered.
    let mut client_done = tls_connect(server.addr);
    client_done.write_all(b"y").expect("write");
    finish_sending(&mut client_done);
    // The backend is done; the client has not closed.
    let mut backend_done = tls_connect(server.addr);
    backend_done.write_all(b"close").expect("write");
    let (data, clean) = read_to_end(&mut backend_done);
    assert!(data.is_empty() && clean);
    wait_until("three backend connections", TIMEOUT, || {
        backend.accepts() == 3
    });
    std::thread::sleep(Duration::from_millis(200));

    let before = server.cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = server.cpu_time().saturating_sub(before);
    assert!(
        used <= Duration::from_millis(50),
        "idle connections cost {used:?} of CPU in 1 s"
    );
    assert_eq!(server.record.lock().expect("record").closes.len(), 0);
    server.stop.stop_now();
    server.join(TIMEOUT).expect("run");
}

/// The server-side socket of `client` in this process (the driver runs on a thread here): the
/// open descriptor whose local address is `server` and whose peer is `client`'s local address.
fn server_side_of(server: std::net::SocketAddr, client: &TcpStream) -> Option<std::os::fd::RawFd> {
    let peer = client.local_addr().ok()?;
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry
            .file_name()
            .to_string_lossy()
            .parse::<std::os::fd::RawFd>()
        else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for two getsockname/getpeername calls while
        // the connection it names is held open by `client`'s peer; a descriptor that is not
        // a socket makes them fail.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        let local = sock.local_addr().ok().and_then(|a| a.as_socket());
        let remote = sock.peer_addr().ok().and_then(|a| a.as_socket());
        if local == Some(server) && remote == Some(peer) {
            return Some(fd);
        }
    }
    None
}

/// A client that connected before the server existed (queued while a worker was starting) sits
/// in a socket the kernel cloned from the listener before its options were set: it gets
/// TCP_NODELAY and keepalive all the same, and so does one accepted later, which inherits them.
#[test]
fn a_connection_queued_before_the_server_starts_is_tuned_like_the_rest() {
    let backend = Backend::echo();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let early = TcpStream::connect(addr).expect("connect before the server exists");
    let idle = Duration::from_secs(77);
    let options = options(&[backend.addr]).with_keepalive(Some(idle));
    let frontend = stud_core::driver::Frontend::new(listener, config(|b| b));
    let server =
        stud_core::driver::Server::with_frontends(vec![frontend], options).expect("server");
    let mut server = Running::run(server);
    let late = TcpStream::connect(addr).expect("connect");
    for (what, client) in [("queued early", &early), ("accepted later", &late)] {
        let mut fd = None;
        wait_until("the driver accepts the connection", TIMEOUT, || {
            fd = server_side_of(addr, client);
            fd.is_some()
        });
        let fd = fd.expect("found");
        // SAFETY: as in `server_side_of`; the connection stays open while `client` lives.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&borrowed);
        assert!(sock.tcp_nodelay().expect("nodelay"), "{what}: TCP_NODELAY");
        assert!(sock.keepalive().expect("keepalive"), "{what}: SO_KEEPALIVE");
        assert_eq!(sock.tcp_keepalive_time().expect("idle"), idle, "{what}");
    }
    drop((early, late));
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
}
