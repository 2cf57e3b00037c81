//! Arbitrary bytes from a client into a fresh `Conn`: no panic, no backend before a handshake,
//! bounded output, and a clean close or a live deadline at the end.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use stud_core::{Action, Config, Conn, Instant};

fn config() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let pem = include_bytes!("../../stud-core/tests/data/stud_ec_sec1_dhparam.pem");
            Arc::new(
                Config::builder()
                    .pem(&pem[..])
                    .build()
                    .expect("test certificate"),
            )
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::from_micros(1);
    let peer = "192.0.2.1:1000".parse().expect("addr");
    let local = "192.0.2.2:443".parse().expect("addr");
    let mut conn = Conn::new(config(), now, peer, local).expect("conn");
    // The first byte picks a chunk size so record boundaries fall everywhere.
    let (chunk, rest) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    let mut out = [0u8; 4096];
    let mut sent = 0usize;
    for part in rest.chunks(chunk) {
        let mut part = part;
        let mut spins = 0;
        while !part.is_empty() {
            let n = conn.handle_client_data(now, part);
            part = &part[n..];
            spins += 1;
            assert!(spins < 64, "no progress on client bytes");
            if n == 0 {
                break;
            }
        }
        loop {
            let n = conn.poll_client_transmit(now, &mut out);
            sent += n;
            if n == 0 {
                break;
            }
        }
        while let Some(action) = conn.poll_action() {
            assert_ne!(
                action,
                Action::ConnectBackend,
                "fuzz bytes cannot complete a handshake"
            );
            if let Action::Close(_) = action {
                return;
            }
        }
        assert!(sent < 1 << 20, "output must stay bounded");
    }
    // Not closed: a deadline must be pending, so the connection cannot live forever.
    assert!(conn.poll_timeout().is_some());
});
