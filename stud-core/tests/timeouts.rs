//! Deadlines: handshake, backend connect, idle, linger, and the flush of a closing connection.

mod common;
use common::*;
use std::time::Duration;
use stud_core::{Action, CloseReason};

#[test]
fn a_silent_client_is_cut_at_the_handshake_deadline() {
    let mut p = Pair::new(
        builder()
            .handshake_timeout(Duration::from_secs(5))
            .build()
            .expect("config"),
    );
    let start = p.now;
    assert_eq!(p.conn.poll_timeout(), Some(start + Duration::from_secs(5)));
    p.advance(Duration::from_secs(4));
    p.conn.handle_timeout(p.now);
    assert_eq!(p.conn.poll_action(), None, "not yet");
    let fired = p.fire_timeout();
    assert_eq!(fired, start + Duration::from_secs(5));
    assert_eq!(p.closed, Some(CloseReason::HandshakeTimeout));
    assert_eq!(p.backend.connect_requests, 0);
}

#[test]
fn a_trickling_handshake_is_cut_however_the_bytes_arrive() {
    let mut p = Pair::new(
        builder()
            .handshake_timeout(Duration::from_secs(10))
            .build()
            .expect("config"),
    );
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("hello");
    // One byte a second: activity must not extend the handshake deadline.
    for b in hello.iter().take(9) {
        let _ = p.conn.handle_client_data(p.now, std::slice::from_ref(b));
        p.advance(Duration::from_secs(1));
        p.conn.handle_timeout(p.now);
    }
    p.advance(Duration::from_secs(1));
    p.conn.handle_timeout(p.now);
    assert_eq!(
        p.conn.poll_action(),
        Some(Action::Close(CloseReason::HandshakeTimeout))
    );
}

#[test]
fn a_backend_that_never_accepts_is_cut_at_the_connect_deadline() {
    let mut p = Pair::new(
        builder()
            .backend_connect_timeout(Duration::from_secs(3))
            .build()
            .expect("config"),
    );
    p.auto_connect = false;
    p.run();
    assert_eq!(p.backend.connect_requests, 1);
    let hs_done = p.now;
    let fired = p.fire_timeout();
    assert_eq!(fired, hs_done + Duration::from_secs(3));
    assert_eq!(p.closed, Some(CloseReason::BackendConnectTimeout));
}

#[test]
fn idle_timeout_sends_close_notify_then_closes() {
    let mut p = Pair::new(
        builder()
            .idle_timeout(Some(Duration::from_secs(60)))
            .build()
            .expect("config"),
    );
    p.handshake();
    p.advance(Duration::from_secs(30));
    p.client_send(b"activity");
    p.run();
    let last = p.now;
    assert_eq!(p.conn.poll_timeout(), Some(last + Duration::from_secs(60)));
    p.fire_timeout();
    assert!(
        p.closed.is_none(),
        "close waits for close_notify to be flushed"
    );
    p.run();
    assert!(p.client_side.saw_close_notify);
    assert_eq!(p.closed, Some(CloseReason::IdleTimeout));
}

#[test]
fn no_idle_deadline_unless_configured() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    assert_eq!(p.conn.poll_timeout(), None);
}

#[test]
fn a_half_closed_connection_lingers_then_closes() {
    let mut p = Pair::new(
        builder()
            .linger_timeout(Duration::from_secs(20))
            .build()
            .expect("config"),
    );
    p.handshake();
    p.client_close_notify();
    p.run();
    assert!(p.backend.write_shut);
    let since = p.now;
    assert_eq!(p.conn.poll_timeout(), Some(since + Duration::from_secs(20)));
    // Progress on the remaining direction pushes the deadline out.
    p.advance(Duration::from_secs(15));
    p.backend.to_send = b"still talking".to_vec();
    p.run();
    assert_eq!(p.conn.poll_timeout(), Some(p.now + Duration::from_secs(20)));
    p.fire_timeout();
    assert_eq!(p.closed, Some(CloseReason::LingerTimeout));
}

#[test]
fn a_closing_connection_whose_client_never_reads_is_closed_at_the_linger_deadline() {
    let mut p = Pair::new(
        builder()
            .linger_timeout(Duration::from_secs(7))
            .idle_timeout(Some(Duration::from_secs(1)))
            .build()
            .expect("config"),
    );
    p.handshake();
    p.client_side.stalled = true;
    p.fire_timeout(); // idle: close_notify queued, nobody reads it
    assert!(p.closed.is_none());
    let t = p.fire_timeout();
    assert_eq!(p.closed, Some(CloseReason::IdleTimeout));
    assert!(t >= p.now);
}

#[test]
fn timeouts_before_the_deadline_do_nothing() {
    let mut p = Pair::new(builder().build().expect("config"));
    for _ in 0..10 {
        p.conn.handle_timeout(p.now);
    }
    assert_eq!(p.conn.poll_action(), None);
    p.handshake();
}
