mod common;
use common::*;

#[test]
fn smoke_handshake_and_echo() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    p.client_send(b"hello backend");
    p.backend.to_send = b"hello client".to_vec();
    p.run();
    assert_eq!(p.backend.received, b"hello backend");
    assert_eq!(p.client_side.received, b"hello client");
}
