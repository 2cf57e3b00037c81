//! The TLS layer's own buffers: received and outgoing ciphertext are held only while there
//! are bytes, and a record may arrive in any number of pieces.

mod common;
use common::*;
use stud_core::internal::buffer_bytes;
use stud_core::{CloseReason, Instant};

#[test]
fn an_idle_connection_holds_no_buffer_after_traffic_both_ways() {
    for in_place in [false, true] {
        idle_after_traffic(in_place);
    }
}

fn idle_after_traffic(in_place: bool) {
    let mut p = Pair::new(builder().build().expect("config"));
    p.in_place = in_place;
    p.handshake();
    assert_eq!(buffer_bytes(&p.conn), 0, "none after the handshake");
    let up = Rng::new(7).bytes(100_000);
    let down = Rng::new(8).bytes(70_000);
    // In odd pieces, so that records end mid-read and a partial record is held between calls.
    let mut sizes = Rng::new(9);
    p.chunk = Box::new(move || 1 + sizes.below(5_000) as usize);
    p.client_send(&up);
    p.backend.to_send = down.clone();
    let mut held_mid_way = 0;
    while p.step() {
        held_mid_way = held_mid_way.max(buffer_bytes(&p.conn));
    }
    assert!(held_mid_way > 0, "bytes in flight are held somewhere");
    assert!(p.backend.received.ends_with(&up));
    assert_eq!(p.client_side.received, down);
    assert_eq!(p.closed, None);
    assert_eq!(
        buffer_bytes(&p.conn),
        0,
        "an idle connection holds no buffer"
    );
}

#[test]
fn a_full_record_fed_a_byte_at_a_time_arrives_whole_and_only_once_complete() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    let data = Rng::new(3).bytes(stud_core::MAX_RECORD_PLAINTEXT);
    p.client_send(&data);
    let mut wire = Vec::new();
    while p.client.wants_write() {
        p.client.write_tls(&mut wire).expect("client write_tls");
    }
    assert!(wire.len() > data.len(), "one record of ciphertext");
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = Vec::new();
    for (i, byte) in wire.iter().enumerate() {
        let now = p.now;
        assert_eq!(
            p.conn.handle_client_data(now, std::slice::from_ref(byte)),
            1
        );
        let n = p.conn.poll_backend_transmit(now, &mut buf);
        received.extend_from_slice(&buf[..n]);
        if i + 1 < wire.len() {
            assert!(received.is_empty(), "plaintext before the record is whole");
            assert!(buffer_bytes(&p.conn) > 0, "the partial record is held");
        }
    }
    assert_eq!(received, data);
    assert_eq!(
        buffer_bytes(&p.conn),
        0,
        "nothing held once it is delivered"
    );
    assert!(p.conn.poll_action().is_none(), "no close: {:?}", p.closed);
}

#[test]
fn a_record_header_announcing_too_much_closes_with_a_reason() {
    let mut p = Pair::new(builder().build().expect("config"));
    p.handshake();
    let now: Instant = p.now;
    // An application-data record header claiming 65,000 bytes: more than any record may hold.
    let header = [0x17, 0x03, 0x03, 0xfd, 0xe8];
    assert_eq!(p.conn.handle_client_data(now, &header), header.len());
    // The alert goes out first (one TLS 1.3 record: 2 bytes, content type, 16-byte tag),
    // then the close.
    let mut buf = [0u8; 64];
    let n = p.conn.poll_client_transmit(now, &mut buf);
    assert_eq!(
        &buf[..n.min(5)],
        &[0x17, 0x03, 0x03, 0, 19],
        "an alert: {:?}",
        &buf[..n]
    );
    assert_eq!(n, 5 + 19);
    let mut close = None;
    while let Some(action) = p.conn.poll_action() {
        if let stud_core::Action::Close(reason) = action {
            close = Some(reason);
        }
    }
    assert!(
        matches!(close, Some(CloseReason::ProtocolError(_))),
        "closed with {close:?}"
    );
    assert_eq!(buffer_bytes(&p.conn), 0);
}

/// Bytes decrypted where they lie arrive as those copied in do: every byte, in order, once,
/// however the reads cut the records, with a small budget that stops reads mid-record.
#[test]
fn decrypting_in_the_callers_buffer_delivers_every_byte_however_cut() {
    for seed in 1..=12u64 {
        let mut p = Pair::new(
            builder()
                .to_backend_budget(1 + Rng::new(seed).below(40_000) as usize)
                .build()
                .expect("config"),
        );
        p.in_place = true;
        let mut sizes = Rng::new(seed ^ 0x5eed);
        p.chunk = Box::new(move || match sizes.below(3) {
            0 => 1 + sizes.below(30) as usize,
            1 => 1 + sizes.below(20_000) as usize,
            _ => usize::MAX,
        });
        p.handshake();
        let up = Rng::new(seed).bytes(150_000);
        for part in up.chunks(7_000) {
            p.client_send(part);
            p.step();
        }
        p.run();
        assert_eq!(p.closed, None, "seed {seed}");
        assert!(p.backend.received.ends_with(&up), "seed {seed}");
        assert_eq!(p.backend.received.len(), up.len(), "seed {seed}");
        assert_eq!(buffer_bytes(&p.conn), 0, "seed {seed}");
    }
}

/// Corrupted ciphertext, fed in random pieces from a writable buffer, ends the connection with
/// a reason (or, where the damage is after the data, delivers what came before it); never a
/// panic, and nothing is held afterwards.
#[test]
fn corrupted_records_fed_in_place_close_with_a_reason() {
    for seed in 1..=40u64 {
        let mut rng = Rng::new(seed);
        let mut p = Pair::new(builder().build().expect("config"));
        p.handshake();
        let len = 1 + rng.below(60_000) as usize;
        let data = rng.bytes(len);
        p.client_send(&data);
        let mut wire = Vec::new();
        while p.client.wants_write() {
            p.client.write_tls(&mut wire).expect("client write_tls");
        }
        let at = rng.below(wire.len() as u64) as usize;
        wire[at] ^= 1 + rng.below(255) as u8;
        let mut rest = &wire[..];
        let mut close = None;
        let mut buf = vec![0u8; 64 * 1024];
        while !rest.is_empty() && close.is_none() {
            let n = (1 + rng.below(20_000) as usize).min(rest.len());
            let mut piece = rest[..n].to_vec();
            let taken = p.conn.handle_client_data_mut(p.now, &mut piece);
            assert_eq!(
                taken, n,
                "seed {seed}: all taken within the capacity or once closing"
            );
            rest = &rest[n..];
            while p.conn.poll_client_transmit(p.now, &mut buf) > 0 {}
            while p.conn.poll_backend_transmit(p.now, &mut buf) > 0 {}
            while let Some(action) = p.conn.poll_action() {
                if let stud_core::Action::Close(reason) = action {
                    close = Some(reason);
                }
            }
        }
        match close {
            Some(CloseReason::ProtocolError(_)) => {}
            other => panic!(
                "seed {seed}: byte {at} of {} changed, closed with {other:?}",
                wire.len()
            ),
        }
        assert_eq!(buffer_bytes(&p.conn), 0, "seed {seed}");
    }
}

/// Seals `fragment` as one TLS 1.3 record of content type `kind` under the client's traffic
/// keys, as a client sends it.
fn seal_record(
    keys: &rustls::ConnectionTrafficSecrets,
    seq: &mut u64,
    kind: u8,
    fragment: &[u8],
) -> Vec<u8> {
    use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
    use rustls::ConnectionTrafficSecrets as S;
    let (algorithm, key, iv) = match keys {
        S::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
        S::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
        S::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
        _ => panic!("a suite this test does not seal"),
    };
    let key = LessSafeKey::new(UnboundKey::new(algorithm, key.as_ref()).expect("key"));
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(iv.as_ref());
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    *seq += 1;
    let mut body = fragment.to_vec();
    body.push(kind);
    let len = u16::try_from(body.len() + 16).expect("a record");
    let header = [0x17, 0x03, 0x03, (len >> 8) as u8, len as u8];
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(header),
        &mut body,
    )
    .expect("seal");
    let mut record = header.to_vec();
    record.extend_from_slice(&body);
    record
}

/// A post-handshake message announced at 64 KiB and sent one byte per record, over 64 KiB of it
/// in one read handed over to be decrypted in place (an embedder's budget larger than the
/// reference driver's): rustls joins the fragments where they lie, and what it has joined must
/// reach it again whole, from the same start. No panic and no stall: the receive bound ends
/// the connection with a reason, and nothing is held afterwards.
#[test]
fn a_handshake_message_in_tiny_records_read_in_place_ends_within_the_bound() {
    let config = builder()
        .to_backend_budget(1 << 20)
        .build()
        .expect("config");
    let (_, _, der) = default_cert();
    let mut client_config = (*client_config(der)).clone();
    client_config.enable_secret_extraction = true;
    let mut p = Pair::with_client(config, std::sync::Arc::new(client_config), "localhost");
    p.handshake();
    let spare = rustls::ClientConnection::new(
        common::client_config(der),
        rustls::pki_types::ServerName::try_from("localhost").expect("name"),
    )
    .expect("client");
    let client = std::mem::replace(&mut p.client, spare);
    let (mut seq, keys) = client.dangerous_extract_secrets().expect("secrets").tx;
    const HANDSHAKE: u8 = 22;
    // KeyUpdate's type with a length of 65,535, then its body a byte per record.
    let mut wire = seal_record(&keys, &mut seq, HANDSHAKE, &[24, 0, 0xff, 0xff]);
    while wire.len() <= 70 * 1024 {
        wire.extend(seal_record(&keys, &mut seq, HANDSHAKE, &[0]));
    }
    let now = p.now;
    let mut read = wire.clone();
    assert_eq!(p.conn.handle_client_data_mut(now, &mut read), wire.len());
    let mut close = None;
    for _ in 0..100 {
        while let Some(action) = p.conn.poll_action() {
            if let stud_core::Action::Close(reason) = action {
                close = Some(reason);
            }
        }
        if close.is_some() {
            break;
        }
        let mut more = Vec::new();
        for _ in 0..200 {
            more.extend(seal_record(&keys, &mut seq, HANDSHAKE, &[0]));
        }
        let offered = more.len();
        assert_eq!(p.conn.handle_client_data_mut(now, &mut more), offered);
        let mut out = vec![0u8; 64 * 1024];
        while p.conn.poll_client_transmit(now, &mut out) > 0 {}
    }
    assert!(
        close.is_some(),
        "a message past the receive bound ends the connection"
    );
    assert_eq!(buffer_bytes(&p.conn), 0, "nothing is held after the close");
}
