//! Half-close in both directions, close_notify before FIN, resets.

mod common;
use common::*;
use stud_core::{Action, CloseReason};

#[test]
fn client_close_notify_shuts_backend_write_and_the_reply_still_flows() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"request");
    p.client_close_notify();
    p.run();
    assert!(p.backend.write_shut, "backend write side should be shut");
    assert_eq!(p.backend.received, b"request");
    assert!(p.closed.is_none(), "reply direction still open");
    p.backend.to_send = b"late reply".to_vec();
    p.run();
    assert_eq!(p.client_side.received, b"late reply");
}

#[test]
fn client_fin_without_close_notify_is_a_half_close_too() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"abc");
    p.run();
    p.conn.handle_client_eof(p.now);
    p.run();
    assert!(p.backend.write_shut);
    assert_eq!(p.backend.received, b"abc");
    p.backend.to_send = b"reply".to_vec();
    p.backend.eof_after_send = true;
    p.run();
    assert_eq!(p.client_side.received, b"reply");
    assert_eq!(p.closed, Some(CloseReason::Completed));
}

#[test]
fn backend_shutdown_waits_for_every_client_byte() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.backend.stalled = true;
    p.client_send(&[7u8; 5000]);
    p.client_close_notify();
    p.run();
    assert!(
        !p.backend.write_shut,
        "must not shut before the bytes are delivered"
    );
    p.backend.stalled = false;
    p.run();
    assert_eq!(p.backend.received.len(), 5000);
    assert!(p.backend.write_shut);
}

#[test]
fn backend_eof_sends_close_notify_then_shuts_client_write() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.backend.to_send = b"bye".to_vec();
    p.backend.eof_after_send = true;
    p.run();
    assert_eq!(p.client_side.received, b"bye");
    assert!(
        p.client_side.saw_close_notify,
        "close_notify must reach the client"
    );
    assert!(p.client_side.write_shut);
    assert!(p.closed.is_none(), "the client may still send");
    // The client keeps talking after the backend finished: still relayed.
    p.client_send(b"more");
    p.run();
    assert_eq!(p.backend.received, b"more");
}

#[test]
fn close_notify_is_sent_before_the_client_write_shutdown() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.conn.handle_backend_eof(p.now);
    // Before the alert is flushed, no shutdown may be requested.
    let mut actions = Vec::new();
    while let Some(a) = p.conn.poll_action() {
        actions.push(a);
    }
    assert!(
        !actions.contains(&Action::ShutdownClientWrite),
        "{actions:?}"
    );
    assert!(
        p.conn.interest().client_write,
        "close_notify waits to be sent"
    );
    let mut buf = [0u8; 4096];
    let n = p.conn.poll_client_transmit(p.now, &mut buf);
    assert!(n > 0);
    assert_eq!(p.conn.poll_action(), Some(Action::ShutdownClientWrite));
}

#[test]
fn both_directions_closed_in_either_order_completes() {
    for backend_first in [true, false] {
        let mut p = Pair::new(builder().build().expect("config"));
        p.handshake();
        if backend_first {
            p.conn.handle_backend_eof(p.now);
            p.run();
            p.client_close_notify();
        } else {
            p.client_close_notify();
            p.run();
            p.conn.handle_backend_eof(p.now);
        }
        p.run();
        assert_eq!(
            p.closed,
            Some(CloseReason::Completed),
            "backend_first={backend_first}"
        );
        assert!(p.backend.write_shut && p.client_side.write_shut);
    }
}

#[test]
fn client_reset_closes_at_once_with_its_reason() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"partial");
    p.run();
    p.conn.handle_client_reset(p.now);
    p.run();
    assert_eq!(p.closed, Some(CloseReason::ClientReset));
    assert!(!p.backend.write_shut, "no orderly shutdown after a reset");
    assert_eq!(p.conn.interest(), Default::default());
}

#[test]
fn backend_reset_closes_at_once() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.conn.handle_backend_reset(p.now);
    p.run();
    assert_eq!(p.closed, Some(CloseReason::BackendReset));
}

#[test]
fn backend_connect_failure_closes_without_further_actions() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.auto_connect = false;
    p.run();
    assert_eq!(p.backend.connect_requests, 1);
    p.conn.handle_backend_connect_failed(p.now);
    assert_eq!(
        p.conn.poll_action(),
        Some(Action::Close(CloseReason::BackendConnectFailed))
    );
    assert_eq!(p.conn.poll_action(), None);
    assert!(p.conn.is_closed());
}

#[test]
fn client_eof_during_handshake_closes_and_never_asks_for_a_backend() {
    let mut p = Pair::new(builder().build().expect("config"));
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("hello");
    let _ = p.conn.handle_client_data(p.now, &hello[..hello.len() / 2]);
    p.conn.handle_client_eof(p.now);
    assert_eq!(
        p.conn.poll_action(),
        Some(Action::Close(CloseReason::ClientClosedInHandshake))
    );
    assert_eq!(p.conn.poll_action(), None);
}

#[test]
fn abort_closes_with_aborted_and_inputs_after_close_are_ignored() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.conn.abort(p.now);
    assert_eq!(
        p.conn.poll_action(),
        Some(Action::Close(CloseReason::Aborted))
    );
    assert_eq!(p.conn.handle_client_data(p.now, b"junk"), 4);
    assert_eq!(p.conn.handle_backend_data(p.now, b"junk"), 4);
    p.conn.handle_backend_eof(p.now);
    p.conn.handle_timeout(p.now);
    assert_eq!(p.conn.poll_action(), None);
    assert_eq!(p.conn.poll_timeout(), None);
}

/// A loop that asks `is_closed()` before draining actions (the order an embedder may well
/// write) still receives every action and the close with its reason.
fn drain_checking_is_closed_first(conn: &mut stud_core::Conn) -> Vec<Action> {
    let mut taken = Vec::new();
    while !conn.is_closed() {
        let Some(action) = conn.poll_action() else {
            break;
        };
        taken.push(action);
    }
    taken
}

#[test]
fn is_closed_turns_true_only_once_the_close_action_is_taken() {
    let mut p = Pair::new(builder().build().expect("config"));
    let deadline = p.conn.poll_timeout().expect("handshake deadline");
    p.conn.handle_timeout(deadline);
    assert!(
        !p.conn.is_closed(),
        "decided, but the close is not taken yet"
    );
    assert_eq!(
        drain_checking_is_closed_first(&mut p.conn),
        [Action::Close(CloseReason::HandshakeTimeout)]
    );
    assert!(p.conn.is_closed());
    assert_eq!(p.conn.poll_action(), None, "nothing after Close");
}

#[test]
fn shutdowns_and_the_close_all_reach_a_loop_that_checks_is_closed_first() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    // Both ends finish at once; the last close_notify goes out, then nothing is left to do
    // but the actions: two shutdowns and the close.
    p.conn.handle_client_eof(p.now);
    p.conn.handle_backend_eof(p.now);
    let mut buf = [0u8; 1024];
    assert!(
        p.conn.poll_client_transmit(p.now, &mut buf) > 0,
        "close_notify"
    );
    assert!(!p.conn.is_closed());
    assert_eq!(
        drain_checking_is_closed_first(&mut p.conn),
        [
            Action::ShutdownBackendWrite,
            Action::ShutdownClientWrite,
            Action::Close(CloseReason::Completed)
        ]
    );
    assert!(p.conn.is_closed());
}

/// The other wrong order: bytes transmitted last, actions not drained again. The shutdown the
/// last byte made due is not lost to a sleeping loop: the deadline is due at once, and the
/// wake-up (`handle_timeout`, then the drain) hands it out, and the close with its reason.
#[test]
fn a_loop_that_transmits_last_is_woken_for_the_actions_the_bytes_made_due() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"request");
    p.client_close_notify();
    // Feed the client's bytes and its close_notify by hand, draining actions first, then
    // transmitting to the backend last, the way a loop that drains only once would.
    let mut wire = Vec::new();
    while p.client.wants_write() {
        p.client.write_tls(&mut wire).expect("client write_tls");
    }
    assert_eq!(p.conn.handle_client_data(p.now, &wire), wire.len());
    assert_eq!(p.conn.poll_action(), None, "the request is not sent yet");
    let mut buf = [0u8; 1024];
    let n = p.conn.poll_backend_transmit(p.now, &mut buf);
    assert_eq!(&buf[..n], b"request");
    // The loop would now sleep until poll_timeout(): it must be due.
    let due = p.conn.poll_timeout().expect("a deadline");
    assert!(due <= p.now, "due at once, not at the linger deadline");
    p.advance(std::time::Duration::from_millis(1));
    p.conn.handle_timeout(p.now);
    assert_eq!(p.conn.poll_action(), Some(Action::ShutdownBackendWrite));
    assert!(
        p.conn.poll_timeout().is_some_and(|t| t > p.now),
        "nothing due once drained"
    );
    // The backend ends too; its close_notify is sent, and again actions are left behind.
    p.conn.handle_backend_eof(p.now);
    let n = p.conn.poll_client_transmit(p.now, &mut buf);
    assert!(n > 0, "close_notify");
    let due = p.conn.poll_timeout().expect("the close is due");
    assert!(due <= p.now);
    p.conn.handle_timeout(p.now);
    assert_eq!(
        drain_checking_is_closed_first(&mut p.conn),
        [
            Action::ShutdownClientWrite,
            Action::Close(CloseReason::Completed)
        ]
    );
    assert_eq!(p.conn.poll_timeout(), None, "nothing after Close");
}
