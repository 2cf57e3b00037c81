//! Relay: every byte arrives, in order, exactly once, however the bytes are chunked.

mod common;
use common::*;
use stud_core::{CloseReason, Event};

/// Property: with random chunk sizes on every hop, both directions deliver exactly what was sent.
#[test]
fn random_chunking_delivers_every_byte_in_order_exactly_once() {
    for seed in 1..=24u64 {
        let mut rng = Rng::new(seed);
        let up_len = rng.below(200_000) as usize + 1;
        let up = rng.bytes(up_len);
        let down_len = rng.below(200_000) as usize + 1;
        let down = rng.bytes(down_len);
        let mut p = Pair::new(builder().build().expect("config"));
        let mut chunks = Rng::new(seed ^ 0xabcdef);
        p.chunk = Box::new(move || match chunks.below(4) {
            0 => 1 + chunks.below(7) as usize,
            1 => 1 + chunks.below(600) as usize,
            2 => 1 + chunks.below(20_000) as usize,
            _ => usize::MAX,
        });
        p.handshake();
        // Interleave writes from the client with the relay.
        let part_len = 1 + rng.below(30_000) as usize;
        for part in up.chunks(part_len) {
            p.client_send(part);
            p.step();
        }
        p.backend.to_send = down.clone();
        p.run();
        assert_eq!(p.backend.received.len(), up.len(), "seed {seed}");
        assert!(
            p.backend.received == up,
            "seed {seed}: upstream bytes differ"
        );
        assert!(
            p.client_side.received == down,
            "seed {seed}: downstream bytes differ"
        );
        assert!(
            p.closed.is_none(),
            "seed {seed}: closed early: {:?}",
            p.closed
        );
    }
}

#[test]
fn a_record_split_at_every_byte_boundary_is_reassembled() {
    let payload = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let mut base = Pair::new(builder().build().expect("config"));
    base.handshake();
    // Capture one application-data record from the client.
    base.client_send(payload);
    let mut record = Vec::new();
    while base.client.wants_write() {
        base.client.write_tls(&mut record).expect("record");
    }
    for split in 1..record.len() {
        let mut p = Pair::new(builder().build().expect("config"));
        p.handshake();
        p.client_send(payload);
        let mut rec = Vec::new();
        while p.client.wants_write() {
            p.client.write_tls(&mut rec).expect("record");
        }
        let (a, b) = rec.split_at(split.min(rec.len() - 1));
        assert_eq!(p.conn.handle_client_data(p.now, a), a.len());
        assert_eq!(
            p.conn.buffered().to_backend,
            0,
            "no plaintext from half a record"
        );
        assert_eq!(p.conn.handle_client_data(p.now, b), b.len());
        p.run();
        assert_eq!(p.backend.received, payload, "split at {split}");
    }
}

#[test]
fn backend_bytes_larger_than_a_record_are_split_into_records_and_arrive_whole() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    let big = Rng::new(7).bytes(1 << 20);
    p.backend.to_send = big.clone();
    p.run();
    assert!(p.client_side.received == big);
}

#[test]
fn client_data_sent_before_the_backend_connects_is_held_then_delivered() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.auto_connect = false;
    p.run();
    assert_eq!(p.backend.connect_requests, 1);
    p.client_send(b"early bytes");
    p.run();
    assert!(p.backend.received.is_empty());
    assert_eq!(p.conn.buffered().to_backend, 11);
    assert!(
        !p.conn.interest().backend_write,
        "nothing to write before connect"
    );
    p.backend.connected = true;
    p.conn.handle_backend_connected(p.now);
    p.run();
    assert_eq!(p.backend.received, b"early bytes");
}

#[test]
fn handshake_event_is_reported_exactly_once() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"x");
    p.run();
    let n = p
        .events
        .iter()
        .filter(|e| matches!(e, Event::HandshakeComplete(_)))
        .count();
    assert_eq!(n, 1);
    assert!(p.conn.poll_event().is_none());
}

#[test]
fn a_full_exchange_ends_completed_after_both_directions_close() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"request");
    p.client_close_notify();
    p.backend.to_send = b"response".to_vec();
    p.backend.eof_after_send = true;
    p.run();
    assert_eq!(p.backend.received, b"request");
    assert_eq!(p.client_side.received, b"response");
    assert!(p.client_side.saw_close_notify);
    assert!(p.backend.write_shut && p.client_side.write_shut);
    assert_eq!(p.closed, Some(CloseReason::Completed));
    assert!(p.conn.poll_timeout().is_none());
}

/// A writer that takes everything and counts the calls.
#[derive(Default)]
struct CountingWriter {
    writes: usize,
    data: Vec<u8>,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.writes += 1;
        let mut n = 0;
        for b in bufs {
            self.data.extend_from_slice(b);
            n += b.len();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Several records decrypted in one go reach the backend in one write, not one write per
/// record: the syscall count per byte toward the backend matches the other direction.
#[test]
fn records_decrypted_together_reach_the_backend_in_one_write() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    // Drain the client-address-free start: nothing is pending for the backend yet.
    let mut w = CountingWriter::default();
    let _ = p.conn.write_backend(p.now, &mut w).expect("write");
    assert_eq!(w.writes, 0);

    // Three full records (the client splits at 16 KiB) in one delivery to the Conn.
    let data: Vec<u8> = (0..3 * 16 * 1024).map(|i| (i % 251) as u8).collect();
    p.client_send(&data);
    let mut wire = Vec::new();
    while p.client.wants_write() {
        p.client.write_tls(&mut wire).expect("client write_tls");
    }
    assert!(wire.len() > data.len(), "three records with their overhead");
    assert!(
        wire.len() <= p.conn.client_read_capacity(),
        "fits the budget"
    );
    assert_eq!(p.conn.handle_client_data(p.now, &wire), wire.len());

    let mut w = CountingWriter::default();
    let n = p.conn.write_backend(p.now, &mut w).expect("write");
    assert_eq!(n, data.len());
    assert_eq!(w.data, data);
    assert_eq!(w.writes, 1, "all three records in one write");
    assert_eq!(p.conn.buffered().to_backend, 0);
}
