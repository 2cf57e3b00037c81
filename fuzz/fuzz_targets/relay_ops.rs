//! Relay operation sequences through a real handshake, with the engine's invariants asserted:
//! every byte arrives in order and exactly once (a prefix of what was sent, all of it once
//! nothing stalls), budgets hold, and the pump always comes to rest (no progress-free loop).
//! Client bytes are offered copied in or to be decrypted in place (the chunk operation's high
//! bit), so both paths meet every cut of the records.
#![no_main]

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use stud_core::{Action, Config, Conn, Instant, MAX_RECORD_PLAINTEXT};

const TO_BACKEND_BUDGET: usize = 4096;
const TO_CLIENT_BUDGET: usize = 8192;

fn configs() -> (Arc<Config>, Arc<rustls::ClientConfig>) {
    static CELL: OnceLock<(Arc<Config>, Arc<rustls::ClientConfig>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let pem = include_bytes!("../../stud-core/tests/data/stud_ec_sec1_dhparam.pem");
        let server = Config::builder()
            .pem(&pem[..])
            .to_backend_budget(TO_BACKEND_BUDGET)
            .to_client_budget(TO_CLIENT_BUDGET)
            .idle_timeout(Some(Duration::from_secs(100)))
            .build()
            .expect("server config");
        let cert =
            CertificateDer::from_pem_slice(include_bytes!("../../stud-core/tests/data/ec.crt"))
                .expect("test certificate");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    })
    .clone()
}

/// Byte `i` of either stream: a position-dependent pattern, so order errors are visible.
fn pattern(i: usize, salt: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8) ^ salt
}

struct World {
    now: Instant,
    conn: Conn,
    client: rustls::ClientConnection,
    wire_to_conn: Vec<u8>,
    up_sent: usize,
    up_recv: usize,
    down_sent: usize,
    down_pending: usize,
    down_recv: usize,
    backend_stalled: bool,
    client_stalled: bool,
    chunk: usize,
    /// Client bytes go through `handle_client_data_mut`, decrypted in a copy of the read.
    in_place: bool,
    closed: bool,
    connected: bool,
    scratch: Vec<u8>,
}

impl World {
    fn drain_actions(&mut self) -> bool {
        let mut any = false;
        while let Some(a) = self.conn.poll_action() {
            any = true;
            assert!(!self.closed, "action after Close");
            match a {
                Action::ConnectBackend => {
                    self.connected = true;
                    self.conn.handle_backend_connected(self.now);
                }
                Action::Close(_) => self.closed = true,
                Action::ShutdownBackendWrite | Action::ShutdownClientWrite => {}
                other => panic!("an action this target does not know: {other:?}"),
            }
        }
        while self.conn.poll_event().is_some() {}
        let b = self.conn.buffered();
        assert!(b.to_backend <= TO_BACKEND_BUDGET + MAX_RECORD_PLAINTEXT + 64);
        assert!(b.to_client <= TO_CLIENT_BUDGET + MAX_RECORD_PLAINTEXT + 1024);
        any
    }

    fn step(&mut self) -> bool {
        let mut progress = self.drain_actions();
        if self.closed {
            return progress;
        }
        while self.client.wants_write() {
            if self.client.write_tls(&mut self.wire_to_conn).unwrap_or(0) == 0 {
                break;
            }
        }
        if !self.wire_to_conn.is_empty() {
            let n = self.chunk.min(self.wire_to_conn.len());
            let taken = if self.in_place {
                let mut read = self.wire_to_conn[..n].to_vec();
                self.conn.handle_client_data_mut(self.now, &mut read)
            } else {
                self.conn
                    .handle_client_data(self.now, &self.wire_to_conn[..n])
            };
            self.wire_to_conn.drain(..taken);
            progress |= taken > 0;
        }
        progress |= self.drain_actions();
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(self.chunk.min(1 << 16), 0);
        if !self.client_stalled {
            let n = self.conn.poll_client_transmit(self.now, &mut buf);
            if n > 0 {
                progress = true;
                let mut rd = &buf[..n];
                let mut plain = [0u8; 4096];
                while !rd.is_empty() {
                    self.client.read_tls(&mut rd).expect("client read");
                    self.client.process_new_packets().expect("client TLS");
                    while let Ok(k) = self.client.reader().read(&mut plain) {
                        if k == 0 {
                            break;
                        }
                        for &b in &plain[..k] {
                            assert_eq!(b, pattern(self.down_recv, 0xA5), "downstream order");
                            self.down_recv += 1;
                        }
                    }
                }
            }
        }
        progress |= self.drain_actions();
        if self.connected && !self.backend_stalled && !self.closed {
            let n = self.conn.poll_backend_transmit(self.now, &mut buf);
            for &b in &buf[..n] {
                assert_eq!(b, pattern(self.up_recv, 0x5A), "upstream order");
                self.up_recv += 1;
            }
            progress |= n > 0;
        }
        progress |= self.drain_actions();
        if self.connected && self.down_pending > 0 && !self.closed {
            let n = self.down_pending.min(self.chunk);
            let data: Vec<u8> = (self.down_sent..self.down_sent + n)
                .map(|i| pattern(i, 0xA5))
                .collect();
            let taken = self.conn.handle_backend_data(self.now, &data);
            self.down_sent += taken;
            self.down_pending -= taken;
            progress |= taken > 0;
        }
        progress |= self.drain_actions();
        self.scratch = buf;
        progress
    }

    /// Steps until nothing moves. Every step that reports progress moved at least one byte or
    /// one action, so a bound proportional to the bytes in play catches a progress-free loop.
    fn settle(&mut self) {
        let in_play = self.up_sent + self.down_sent + self.down_pending;
        for _ in 0..10_000 + 64 * in_play {
            if !self.step() {
                return;
            }
        }
        panic!("the pump never came to rest");
    }
}

fuzz_target!(|data: &[u8]| {
    let (server, client_cfg) = configs();
    let now = Instant::from_micros(1);
    let conn = Conn::new(
        server,
        now,
        "192.0.2.1:1000".parse().expect("addr"),
        "192.0.2.2:443".parse().expect("addr"),
    )
    .expect("conn");
    let mut client =
        rustls::ClientConnection::new(client_cfg, ServerName::try_from("localhost").expect("name"))
            .expect("client");
    client.set_buffer_limit(None);
    let mut w = World {
        now,
        conn,
        client,
        wire_to_conn: Vec::new(),
        up_sent: 0,
        up_recv: 0,
        down_sent: 0,
        down_pending: 0,
        down_recv: 0,
        backend_stalled: false,
        client_stalled: false,
        chunk: 1 << 16,
        in_place: false,
        closed: false,
        connected: false,
        scratch: Vec::new(),
    };
    w.settle();
    let mut client_closed = false;
    let mut backend_eof = false;
    for &op in data.iter().take(256) {
        let arg = usize::from(op & 0x1f);
        match op >> 5 {
            0 if !client_closed => {
                let n = arg * 211 + 1;
                let bytes: Vec<u8> = (w.up_sent..w.up_sent + n)
                    .map(|i| pattern(i, 0x5A))
                    .collect();
                w.client.writer().write_all(&bytes).expect("client write");
                w.up_sent += n;
            }
            1 if !backend_eof => w.down_pending += arg * 307 + 1,
            2 => w.backend_stalled = !w.backend_stalled,
            3 => w.client_stalled = !w.client_stalled,
            4 if !client_closed => {
                w.client.send_close_notify();
                client_closed = true;
            }
            5 if !backend_eof && w.connected && w.down_pending == 0 && !w.closed => {
                w.conn.handle_backend_eof(w.now);
                backend_eof = true;
            }
            6 => {
                w.chunk = [1, 7, 100, 1000, 5000, 16 * 1024, 1 << 16][arg % 7];
                w.in_place = arg >= 16;
            }
            7 => {
                w.now = w.now + Duration::from_secs(arg as u64);
                w.conn.handle_timeout(w.now);
            }
            _ => {}
        }
        w.settle();
        if w.closed {
            break;
        }
    }
    // Unstall everything: whatever is still open delivers every byte.
    w.backend_stalled = false;
    w.client_stalled = false;
    w.settle();
    assert!(w.up_recv <= w.up_sent && w.down_recv <= w.down_sent);
    if !w.closed && w.connected {
        assert_eq!(w.up_recv, w.up_sent, "upstream bytes lost");
        assert_eq!(w.down_pending, 0);
        assert_eq!(w.down_recv, w.down_sent, "downstream bytes lost");
    }
});
