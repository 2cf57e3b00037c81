//! Stopping the reference driver: graceful drain, drain deadline, immediate stop.

mod driver_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use driver_support::*;
use stud_core::driver::Server;
use stud_core::CloseReason;

fn refuses_connections(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

#[test]
fn graceful_stop_drains_an_in_flight_transfer_then_returns() {
    const SIZE: usize = 2 << 20;
    // The backend trickles 2 MiB over about half a second, then ends its stream.
    let backend = Backend::spawn(|mut stream| {
        let data = pattern(9, SIZE);
        for chunk in data.chunks(64 * 1024) {
            if stream.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let mut tls = tls_connect(server.addr);
    let first = read_exact(&mut tls, 1000);

    server.stop.stop();
    // The listener goes away at once…
    wait_until("the listener to close", TIMEOUT, || {
        refuses_connections(server.addr)
    });
    // …while the transfer in flight completes.
    let (rest, clean) = read_to_end(&mut tls);
    assert!(clean, "the drained connection must end with close_notify");
    assert!(
        [first, rest].concat() == pattern(9, SIZE),
        "transfer corrupted or cut short"
    );
    finish_sending(&mut tls);
    server.join(TIMEOUT).expect("run returns Ok after draining");
    let closes = server.wait_closes(1, TIMEOUT);
    assert_eq!(closes[0].1, CloseReason::Completed);
}

#[test]
fn the_drain_deadline_aborts_what_is_left() {
    let backend = Backend::echo();
    let opts = options(&[backend.addr]).with_drain_timeout(Duration::from_millis(300));
    let mut server = Running::start(config(|b| b), opts);
    let mut tls = tls_connect(server.addr);
    tls.write_all(b"x").expect("write");
    assert_eq!(read_exact(&mut tls, 1), b"x");

    let started = Instant::now();
    server.stop.stop();
    server.join(TIMEOUT).expect("run");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250),
        "returned before the drain deadline: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "drain took {elapsed:?}");
    assert_eq!(server.wait_closes(1, TIMEOUT)[0].1, CloseReason::Aborted);
    assert!(socket_closes_within(&tls.sock, Duration::from_secs(5)));
}

#[test]
fn stop_now_returns_promptly_and_closes_everything() {
    let backend = Backend::echo();
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let mut conns: Vec<_> = (0..5).map(|_| tls_connect(server.addr)).collect();
    for tls in &mut conns {
        tls.write_all(b"hi").expect("write");
        assert_eq!(read_exact(tls, 2), b"hi");
    }
    // In the middle of a handshake: the start of a ClientHello's record header.
    let mut handshaking = TcpStream::connect(server.addr).expect("connect");
    handshaking.write_all(&[0x16, 0x03, 0x01]).expect("write");
    wait_until("the handshaking client is accepted", TIMEOUT, || {
        server.record.lock().expect("record").accepted.len() == 6
    });

    let started = Instant::now();
    server.stop.stop_now();
    server.join(Duration::from_secs(5)).expect("run");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop_now took {:?}",
        started.elapsed()
    );
    let closes = server.wait_closes(6, TIMEOUT);
    assert!(
        closes
            .iter()
            .all(|(_, r, _)| matches!(r, CloseReason::Aborted)),
        "{closes:?}"
    );
    for tls in &conns {
        assert!(socket_closes_within(&tls.sock, Duration::from_secs(5)));
    }
    assert!(socket_closes_within(&handshaking, Duration::from_secs(5)));
    assert!(refuses_connections(server.addr));
}

#[test]
fn a_stop_requested_before_run_is_honoured() {
    let backend = Backend::echo();
    let server = Server::bind(
        config(|b| b),
        "127.0.0.1:0".parse().expect("addr"),
        options(&[backend.addr]),
    )
    .expect("bind");
    server.stop_handle().stop();
    let mut running = Running::run(server);
    running.join(Duration::from_secs(5)).expect("run");
}

#[test]
fn the_raw_fd_stops_the_server_like_a_signal_handler_would() {
    use std::os::fd::BorrowedFd;
    let backend = Backend::echo();
    let mut server = Running::start(config(|b| b), options(&[backend.addr]));
    let fd = server.stop.raw_fd();
    // What a signal handler does with write(2): one byte on the descriptor.
    // SAFETY: `server.stop` keeps the descriptor open for as long as this borrow lives.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = std::os::unix::net::UnixStream::from(borrowed.try_clone_to_owned().expect("dup"));
    (&sock).write_all(b"n").expect("write");
    server.join(Duration::from_secs(5)).expect("run");
}

#[test]
fn run_after_it_returned_returns_at_once() {
    let backend = Backend::echo();
    let mut server = Server::bind(
        config(|b| b),
        "127.0.0.1:0".parse().expect("addr"),
        options(&[backend.addr]),
    )
    .expect("bind");
    server.stop_handle().stop_now();
    server.run().expect("first run");
    let started = Instant::now();
    server.run().expect("second run");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(Server::bind(
        config(|b| b),
        "127.0.0.1:0".parse().expect("addr"),
        options(&[])
    )
    .is_err());
}

#[test]
fn a_server_moves_to_its_thread_and_handles_are_shared() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync + Clone>() {}
    send::<Server>();
    send_sync::<stud_core::driver::StopHandle>();
}
