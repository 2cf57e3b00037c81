//! Bounded buffers: a reader that stops costs at most its budget, then every byte arrives.

mod common;
use common::*;
use stud_core::MAX_RECORD_PLAINTEXT;

#[test]
fn a_stalled_backend_bounds_memory_and_turns_client_reads_off() {
    let budget = 8 * 1024;
    let mut p = Pair::new(builder().to_backend_budget(budget).build().expect("config"));
    p.handshake();
    p.backend.stalled = true;
    let data = Rng::new(3).bytes(1 << 20);
    p.client_send(&data);
    p.run();
    // Records decrypt whole: the budget may be exceeded by at most one record.
    let bound = budget + MAX_RECORD_PLAINTEXT;
    let b = p.conn.buffered();
    assert!(b.to_backend <= bound, "held {} > {bound}", b.to_backend);
    assert!(
        p.max_to_backend_seen <= bound,
        "peak {}",
        p.max_to_backend_seen
    );
    assert_eq!(p.conn.client_read_capacity(), 0);
    assert!(
        !p.conn.interest().client_read,
        "client read interest must be off"
    );
    assert!(p.backend.received.is_empty());
    p.backend.stalled = false;
    p.run();
    assert!(p.backend.received == data, "every byte after the stall");
}

#[test]
fn a_stalled_client_bounds_memory_and_turns_backend_reads_off() {
    let budget = 32 * 1024;
    let mut p = Pair::new(builder().to_client_budget(budget).build().expect("config"));
    p.handshake();
    p.run();
    p.client_side.stalled = true;
    let data = Rng::new(4).bytes(1 << 20);
    p.backend.to_send = data.clone();
    p.run();
    // A record's overhead may exceed the budget by one record at most.
    assert!(
        p.max_to_client_seen <= budget + MAX_RECORD_PLAINTEXT + 1024,
        "peak {}",
        p.max_to_client_seen
    );
    assert_eq!(p.conn.backend_read_capacity(), 0);
    assert!(!p.conn.interest().backend_read);
    assert!(
        p.backend.to_send.len() > (1 << 20) - 2 * budget,
        "backend kept its bytes"
    );
    p.client_side.stalled = false;
    p.run();
    assert!(p.client_side.received == data);
}

#[test]
fn backend_data_beyond_capacity_is_refused_not_buffered() {
    let mut p = Pair::new(builder().to_client_budget(4096).build().expect("config"));
    p.handshake();
    p.client_side.stalled = true;
    p.run();
    let cap = p.conn.backend_read_capacity();
    let big = vec![1u8; 100_000];
    let taken = p.conn.handle_backend_data(p.now, &big);
    assert_eq!(taken, cap.min(big.len()));
    assert_eq!(
        p.conn.handle_backend_data(p.now, &big),
        0,
        "full budget takes nothing"
    );
}

#[test]
fn client_bytes_offered_beyond_capacity_are_partly_taken() {
    let budget = 4096;
    let mut p = Pair::new(builder().to_backend_budget(budget).build().expect("config"));
    p.handshake();
    p.backend.stalled = true;
    p.client_send(&[9u8; 50_000]);
    let mut ct = Vec::new();
    while p.client.wants_write() {
        p.client.write_tls(&mut ct).expect("ciphertext");
    }
    let taken = p.conn.handle_client_data(p.now, &ct);
    assert!(taken < ct.len(), "must not take everything");
    assert!(p.conn.buffered().to_backend <= budget + MAX_RECORD_PLAINTEXT);
    p.to_conn = ct[taken..].to_vec();
    p.backend.stalled = false;
    p.run();
    assert_eq!(p.backend.received.len(), 50_000);
}

#[test]
fn an_idle_connection_holds_no_relay_buffers() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(&[1u8; 70_000]);
    p.backend.to_send = vec![2u8; 70_000];
    p.run();
    assert_eq!(p.conn.buffered(), stud_core::Buffered::default());
    assert!(!p.conn.interest().client_write);
    assert!(!p.conn.interest().backend_write);
}
