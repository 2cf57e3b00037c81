//! The two ways bytes leave a `Conn`, each driven the way its kind of I/O works:
//! - completion-based (io_uring style): `poll_*_transmit` fills a buffer the caller owns, the
//!   caller submits it and learns later how much was written, resubmitting the rest; nothing
//!   is polled for that side while a buffer is in flight, and a shutdown action waits for the
//!   buffer before it;
//! - readiness-based: `write_client` / `write_backend` into a nonblocking `io::Write` that takes
//!   a little and then says `WouldBlock`.
//!
//! Both carry a large upload and download, then half-close both ways, and must deliver every
//! byte in order, shut each write side only after its last byte, and close `Completed`.

mod common;
use common::*;

use std::io::{self, Read};
use std::time::Duration;

use stud_core::{Action, CloseReason, Conn, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Io {
    Completion,
    Readiness,
}

/// One socket's write side as the caller sees it.
#[derive(Default)]
struct Out {
    /// Completion: the submitted buffer and how much of it completed.
    in_flight: Vec<u8>,
    done: usize,
    /// Bytes the peer received, in order.
    wire: Vec<u8>,
    /// A shutdown was asked for; carried out once nothing is in flight.
    shut_asked: bool,
    shut: bool,
}

impl Out {
    fn idle(&self) -> bool {
        self.done == self.in_flight.len()
    }

    /// The kernel completes part of the submitted buffer.
    fn complete_some(&mut self, rng: &mut Rng) {
        if self.idle() {
            return;
        }
        let left = self.in_flight.len() - self.done;
        let n = 1 + rng.below(left as u64) as usize;
        self.wire
            .extend_from_slice(&self.in_flight[self.done..self.done + n]);
        self.done += n;
    }

    fn maybe_shut(&mut self) {
        if self.shut_asked && self.idle() {
            self.shut = true;
        }
    }
}

/// A nonblocking socket with room for `room` bytes before `WouldBlock`.
struct Trickle<'a> {
    room: usize,
    wire: &'a mut Vec<u8>,
}

impl io::Write for Trickle<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.wire.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn transmit(
    io: Io,
    conn: &mut Conn,
    now: Instant,
    out: &mut Out,
    rng: &mut Rng,
    client: bool,
) -> usize {
    match io {
        Io::Completion => {
            out.complete_some(rng);
            if !out.idle() {
                return 0; // one buffer in flight per socket
            }
            let mut buf = vec![0u8; 1 + rng.below(20_000) as usize];
            let n = match client {
                true => conn.poll_client_transmit(now, &mut buf),
                false => conn.poll_backend_transmit(now, &mut buf),
            };
            buf.truncate(n);
            out.in_flight = buf;
            out.done = 0;
            n
        }
        Io::Readiness => {
            let mut w = Trickle {
                room: rng.below(20_000) as usize,
                wire: &mut out.wire,
            };
            let written = match client {
                true => conn.write_client(now, &mut w),
                false => conn.write_backend(now, &mut w),
            };
            written.expect("a trickling socket fails no write")
        }
    }
}

/// The client takes `fresh` ciphertext, appending the plaintext to `got`; returns the count
/// of ciphertext bytes taken (all of them).
fn client_reads(client: &mut rustls::ClientConnection, fresh: &[u8], got: &mut Vec<u8>) -> usize {
    let mut rest = fresh;
    let mut plain = [0u8; 65536];
    while !rest.is_empty() {
        client.read_tls(&mut rest).expect("client read_tls");
        client.process_new_packets().expect("client TLS");
        while let Ok(n @ 1..) = client.reader().read(&mut plain) {
            got.extend_from_slice(&plain[..n]);
        }
    }
    fresh.len()
}

fn relay_both_ways(io: Io, seed: u64) {
    let mut rng = Rng::new(seed);
    let upload = rng.bytes(300_000);
    let download = rng.bytes(300_000);
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    std::io::Write::write_all(&mut p.client.writer(), &upload).expect("client write");
    p.client.send_close_notify();
    let (mut to_client, mut to_backend) = (Out::default(), Out::default());
    let (mut from_client, mut from_backend) = (Vec::new(), &download[..]);
    let (mut backend_eof_sent, mut client_read, mut closed) = (false, 0, None);
    let mut downloaded = Vec::new();
    for _ in 0..STEP_LIMIT {
        p.now = p.now + Duration::from_micros(10);
        if p.conn.poll_timeout().is_some_and(|t| t <= p.now) {
            p.conn.handle_timeout(p.now);
        }
        // Client -> Conn.
        while p.client.wants_write() {
            p.client
                .write_tls(&mut from_client)
                .expect("client write_tls");
        }
        let offer = from_client.len().min(1 + rng.below(30_000) as usize);
        let taken = p.conn.handle_client_data(p.now, &from_client[..offer]);
        from_client.drain(..taken);
        // Backend -> Conn, then its end of stream.
        let offer = from_backend.len().min(1 + rng.below(30_000) as usize);
        let taken = p.conn.handle_backend_data(p.now, &from_backend[..offer]);
        from_backend = &from_backend[taken..];
        if from_backend.is_empty() && !backend_eof_sent {
            backend_eof_sent = true;
            p.conn.handle_backend_eof(p.now);
        }
        // Outputs, in the contract's order: actions, bytes, actions again.
        for round in 0..2 {
            while let Some(action) = p.conn.poll_action() {
                match action {
                    Action::ShutdownBackendWrite => to_backend.shut_asked = true,
                    Action::ShutdownClientWrite => to_client.shut_asked = true,
                    Action::Close(reason) => closed = Some(reason),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if round == 0 {
                let n = transmit(io, &mut p.conn, p.now, &mut to_client, &mut rng, true);
                assert!(n == 0 || !to_client.shut, "no byte after the client's FIN");
                let n = transmit(io, &mut p.conn, p.now, &mut to_backend, &mut rng, false);
                assert!(
                    n == 0 || !to_backend.shut,
                    "no byte after the backend's FIN"
                );
            }
        }
        to_backend.maybe_shut();
        to_client.maybe_shut();
        // The client reads what reached it.
        client_read += client_reads(
            &mut p.client,
            &to_client.wire[client_read..],
            &mut downloaded,
        );
        if closed.is_some() {
            // Completion: the buffers still in flight finish before the sockets close.
            while !to_client.idle() || !to_backend.idle() {
                to_client.complete_some(&mut rng);
                to_backend.complete_some(&mut rng);
            }
            to_backend.maybe_shut();
            to_client.maybe_shut();
            break;
        }
    }
    assert_eq!(closed, Some(CloseReason::Completed));
    assert!(to_backend.wire == upload, "every uploaded byte, in order");
    assert!(to_backend.shut && to_client.shut, "both write sides shut");
    client_reads(
        &mut p.client,
        &to_client.wire[client_read..],
        &mut downloaded,
    );
    let mut plain = [0u8; 1];
    assert_eq!(
        p.client.reader().read(&mut plain).ok(),
        Some(0),
        "the client saw close_notify"
    );
    assert!(downloaded == download, "every downloaded byte, in order");
}

#[test]
fn completion_based_io_submits_caller_buffers_and_resubmits_short_completions() {
    for seed in 1..=4 {
        relay_both_ways(Io::Completion, seed);
    }
}

#[test]
fn readiness_based_io_writes_until_would_block() {
    for seed in 1..=4 {
        relay_both_ways(Io::Readiness, seed);
    }
}
