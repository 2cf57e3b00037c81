//! `TlsSession`: one connection's TLS state on rustls' unbuffered API, with stud's own
//! ciphertext buffers.
//!
//! Contract:
//! - [`TlsSession::feed`] takes ciphertext from the peer. It is appended to the receive
//!   buffer, every whole record in it is processed at once, and each decrypted application
//!   record is handed to the caller's `sink` as it comes out of rustls (no plaintext is held
//!   here). What is left is the start of a record (or of a handshake message spread over
//!   records), moved to the front; an empty receive buffer is freed, not kept.
//!   [`TlsSession::feed_in_place`] does the same from a buffer the caller gives up: whole
//!   records are decrypted where they lie, and only what completes the held record and the
//!   incomplete record at the end are copied.
//! - The receive buffer is bounded like rustls' own was: what waits for the rest of a record
//!   or handshake message never exceeds [`RX_BOUND`] (a 64 KiB handshake message and one
//!   record), and input is taken in pieces of at most [`RX_STEP`] bytes, each processed before
//!   the next is appended. Bytes that would need more close the session with an error.
//! - Handshake messages, alerts and encrypted records for the peer go into the send buffer;
//!   [`TlsSession::write_tls`] drains it into a writer, and a drained send buffer leaves the
//!   session (for this thread's one spare slot, see [`SPARE`], or freed).
//!   [`TlsSession::tls_out`] is what it holds.
//! - [`TlsSession::write_plaintext`] encrypts all of its input at once (the engine budgets
//!   before); [`TlsSession::send_close_notify`] queues close_notify. Both need the handshake
//!   complete, and may hand the sink plaintext that rustls had ready.
//! - Errors are sticky: after one, every call returns it. The fatal alert rustls queued for
//!   the error is in the send buffer first.
//! - After the peer's close_notify, input is ignored (RFC 8446 §6.1) and the receive buffer
//!   freed.
//! - No call loops without bound: each pass through rustls' states is counted against a
//!   limit proportional to the bytes at hand.

use std::cell::Cell;
use std::io;
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedConnectionCommon, UnbufferedStatus,
};

use super::{client_auth, suites, HandshakeInfo, TlsVersion};
use crate::TlsError;

/// The most bytes the receive buffer holds while waiting for the rest of a record or a
/// handshake message: rustls' limits, a handshake message of 64 KiB (0xffff plus its 4-byte
/// header) and one record on the wire (16 KiB of data, 2 KiB of expansion, a 5-byte header).
pub(crate) const RX_BOUND: usize = 0x1_0003 + MAX_WIRE_RECORD;

/// One TLS record on the wire at its largest.
const MAX_WIRE_RECORD: usize = 16_384 + 2_048 + 5;

/// The most input appended to the receive buffer before it is processed.
pub(crate) const RX_STEP: usize = 64 * 1024;

/// The two kinds of rustls connection, without their buffers.
enum Side {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// rustls' `process_tls_records`, which each side defines on its own.
trait Records<D> {
    fn records<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, D>;

    /// Takes the early data rustls accepted. stud never reads 0-RTT data: it is dropped, as
    /// it was when no one read rustls' early-data reader.
    fn drop_early_data(state: ConnectionState<'_, '_, D>) -> Result<(), rustls::Error>;
}

impl Records<ServerConnectionData> for UnbufferedConnectionCommon<ServerConnectionData> {
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }

    fn drop_early_data(
        state: ConnectionState<'_, '_, ServerConnectionData>,
    ) -> Result<(), rustls::Error> {
        if let ConnectionState::ReadEarlyData(mut early) = state {
            while let Some(record) = early.next_record() {
                record?;
            }
        }
        Ok(())
    }
}

impl Records<ClientConnectionData> for UnbufferedConnectionCommon<ClientConnectionData> {
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }

    fn drop_early_data(
        _state: ConnectionState<'_, '_, ClientConnectionData>,
    ) -> Result<(), rustls::Error> {
        Err(rustls::Error::General(
            "early data offered to a client".into(),
        ))
    }
}

/// The send side of stud's ciphertext buffers (allocated only while it holds bytes), and
/// what the peer signalled.
#[derive(Default)]
struct Buffers {
    /// Ciphertext for the peer: `tx[tx_sent..tx_end]` is unsent. The bytes past `tx_end` are
    /// initialised room (a buffer reused from [`SPARE`] keeps its length, so filling it needs
    /// no zeroing).
    tx: Vec<u8>,
    tx_sent: usize,
    tx_end: usize,
    /// The peer's close_notify was processed.
    peer_closed: bool,
}

impl Buffers {
    /// Room for `n` more bytes of ciphertext after what waits; [`filled`](Buffers::filled)
    /// then says how many were written.
    fn room(&mut self, n: usize) -> &mut [u8] {
        if self.tx.capacity() == 0 {
            // During thread teardown the slot may be gone: then a new buffer is allocated.
            self.tx = SPARE.try_with(Cell::take).unwrap_or_default();
        }
        if self.tx_sent > 0 && self.tx_end + n > self.tx.len() {
            // Move what waits to the front rather than grow past it.
            self.tx.copy_within(self.tx_sent..self.tx_end, 0);
            self.tx_end -= self.tx_sent;
            self.tx_sent = 0;
        }
        if self.tx_end + n > self.tx.len() {
            self.tx.resize(self.tx_end + n, 0);
        }
        &mut self.tx[self.tx_end..self.tx_end + n]
    }

    fn filled(&mut self, n: usize) {
        self.tx_end += n;
        self.release_if_drained();
    }

    /// Ciphertext waiting for the peer.
    fn pending(&self) -> &[u8] {
        &self.tx[self.tx_sent..self.tx_end]
    }

    fn sent(&mut self, n: usize) {
        self.tx_sent = (self.tx_sent + n).min(self.tx_end);
        self.release_if_drained();
    }

    /// An empty send buffer leaves the connection: it goes to this thread's spare slot (if it
    /// is no larger than [`SPARE_MAX`]) or is freed.
    fn release_if_drained(&mut self) {
        if self.tx_sent == self.tx_end && self.tx.capacity() > 0 {
            let tx = std::mem::take(&mut self.tx);
            self.tx_sent = 0;
            self.tx_end = 0;
            if tx.capacity() <= SPARE_MAX {
                // During thread teardown the slot may be gone: then the buffer is freed.
                let _ = SPARE.try_with(|spare| spare.set(tx));
            }
        }
    }
}

thread_local! {
    /// One emptied send buffer per thread, for the next connection this thread encrypts for:
    /// a bulk transfer then reuses one warm, initialised buffer instead of allocating and
    /// zeroing one per flush. It belongs to the thread, not to a connection (as a driver's
    /// scratch read buffer does): an idle connection holds no buffer.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The largest send buffer kept as a thread's spare (the default budget and its records'
/// overhead fit several times over).
const SPARE_MAX: usize = 256 * 1024;

/// What one pass through rustls' states should do besides processing input.
struct Work<'a> {
    /// Plaintext to encrypt once application data may be sent.
    write: Option<&'a [u8]>,
    /// Queue close_notify once application data may be sent.
    close: bool,
}

/// Runs rustls' state machine over `incoming` (received ciphertext, decrypted in place) until
/// it needs more input (or, with work to do, until the work is done). Decrypted application
/// data goes to `sink`. Returns how many bytes at the front of `incoming` rustls is done with;
/// the rest must come first in the next call's input.
fn run<D, C: Records<D>>(
    conn: &mut C,
    incoming: &mut [u8],
    bufs: &mut Buffers,
    sink: &mut dyn FnMut(&[u8]),
    mut work: Work<'_>,
) -> (usize, Result<(), rustls::Error>) {
    // The front of `incoming` already processed: discarded by slicing.
    let mut start = 0;
    // Each pass consumes input, produces output or changes state; a generous limit so that a
    // state machine going round in circles ends as an error, never a hang.
    let limit = 64 + incoming.len() + work.write.map_or(0, |w| w.len() / 1024);
    let mut result = Ok(());
    for _ in 0..limit {
        let status = conn.records(&mut incoming[start..]);
        let mut discard = status.discard;
        let state = match status.state {
            Ok(state) => state,
            Err(e) => {
                start += discard;
                result = Err(e);
                break;
            }
        };
        let mut done = false;
        match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            sink(record.payload);
                        }
                        Err(e) => {
                            result = Err(e);
                            done = true;
                            break;
                        }
                    }
                }
            }
            state @ ConnectionState::ReadEarlyData(_) => {
                if let Err(e) = C::drop_early_data(state) {
                    result = Err(e);
                    done = true;
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                let need = match encode.encode(&mut []) {
                    Err(EncodeError::InsufficientSize(e)) => e.required_size,
                    Ok(_) | Err(EncodeError::AlreadyEncoded) => 0,
                };
                match encode.encode(bufs.room(need)) {
                    Ok(n) => bufs.filled(n),
                    Err(e) => {
                        bufs.filled(0);
                        result = Err(rustls::Error::General(e.to_string()));
                        done = true;
                    }
                }
            }
            // The bytes wait in `tx`, in order: they count as handed over.
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::BlockedHandshake => done = true,
            ConnectionState::PeerClosed => {
                bufs.peer_closed = true;
            }
            ConnectionState::Closed => done = true,
            ConnectionState::WriteTraffic(mut traffic) => {
                if let Some(data) = work.write.take() {
                    if let Err(e) = encrypt(bufs, |out| traffic.encrypt(data, out)) {
                        result = Err(e);
                        done = true;
                    }
                    // A key update may follow: one more pass.
                } else if std::mem::take(&mut work.close) {
                    if let Err(e) = encrypt(bufs, |out| traffic.queue_close_notify(out)) {
                        result = Err(e);
                        done = true;
                    }
                } else {
                    done = true;
                }
            }
            _ => {
                result = Err(rustls::Error::General(
                    "a TLS state stud does not handle".into(),
                ));
                done = true;
            }
        }
        start += discard;
        if done {
            break;
        }
        if bufs.peer_closed && incoming.len() == start && work.write.is_none() && !work.close {
            // Nothing more can come; no need to go round again.
            break;
        }
    }
    if result.is_ok() && work.write.is_some() {
        result = Err(rustls::Error::General(
            "plaintext to send before the handshake completed".into(),
        ));
    }
    (start.min(incoming.len()), result)
}

/// Runs `f` (which encrypts into the slice it is given) into the send buffer: once with no
/// room to learn the size, once with the room.
fn encrypt(
    bufs: &mut Buffers,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    let need = match f(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncryptError::InsufficientSize(e)) => e.required_size,
        Err(e) => return Err(rustls::Error::General(e.to_string())),
    };
    match f(bufs.room(need)) {
        Ok(n) => {
            bufs.filled(n);
            Ok(())
        }
        Err(e) => {
            bufs.filled(0);
            Err(rustls::Error::General(e.to_string()))
        }
    }
}

/// One TLS session: the server side of a client's connection, or in client mode the client
/// side of the backend's.
pub(crate) struct TlsSession {
    side: Side,
    /// Received ciphertext not yet processed: the start of a record or handshake message.
    rx: Vec<u8>,
    /// `rx` is exactly the start of one record as it arrived, never shown to rustls as whole:
    /// its header, once complete, is that record's own. Only then may
    /// [`feed_in_place`](TlsSession::feed_in_place) complete it by copying just the bytes it
    /// lacks. (While rustls joins a handshake message spread over records, `rx` also holds
    /// bytes rustls already processed and rewrote, which no header walk may read.)
    rx_pristine: bool,
    bufs: Buffers,
    /// The first error, returned by every call after it.
    error: Option<rustls::Error>,
    /// Whether the configuration asks clients for a certificate.
    asks_for_certificate: bool,
    /// The server name: the one the client asked for (as rustls normalises it), or in client
    /// mode the DNS name sent to the backend.
    server_name: Option<String>,
    /// The verifier is the embedder's: whether it asks is unknown, a chain kept is verified.
    embedders_verifier: bool,
}

impl TlsSession {
    pub(crate) fn new(config: &crate::Config) -> Result<Self, TlsError> {
        let mut server_name = None;
        let side = match &config.backend_tls {
            Some(backend) => {
                if let rustls::pki_types::ServerName::DnsName(name) = &backend.server_name {
                    server_name = Some(name.as_ref().to_owned());
                }
                Side::Client(
                    UnbufferedClientConnection::new(
                        backend.config.clone(),
                        backend.server_name.clone(),
                    )
                    .map_err(TlsError)?,
                )
            }
            None => Side::Server(
                UnbufferedServerConnection::new(Arc::clone(&config.tls)).map_err(TlsError)?,
            ),
        };
        Ok(TlsSession {
            side,
            rx: Vec::new(),
            rx_pristine: false,
            bufs: Buffers::default(),
            error: None,
            asks_for_certificate: config.client_verify() != client_auth::ClientVerifyMode::None,
            server_name,
            embedders_verifier: config.tls_is_embedders,
        })
    }

    /// Client side: makes the hello, which goes first, into the send buffer. Call once, when
    /// the transport to the server is there (until then the session holds nothing).
    pub(crate) fn start(&mut self) -> Result<(), TlsError> {
        self.process_rx(&mut |_| {})
    }

    /// Records the server name the client's hello asked for, as read before rustls saw it
    /// (the unbuffered server connection does not report it).
    pub(crate) fn set_requested_name(&mut self, name: Option<String>) {
        if matches!(self.side, Side::Server(_)) {
            self.server_name = name;
        }
    }

    fn common(&self) -> &rustls::CommonState {
        match &self.side {
            Side::Server(c) => c,
            Side::Client(c) => c,
        }
    }

    /// One pass of the state machine with `work`; records the first error.
    fn drive(&mut self, sink: &mut dyn FnMut(&[u8]), work: Work<'_>) -> Result<(), TlsError> {
        if let Some(e) = &self.error {
            return Err(TlsError(e.clone()));
        }
        let mut rx = std::mem::take(&mut self.rx);
        let (done, result) = match &mut self.side {
            Side::Server(c) => run(&mut **c, &mut rx, &mut self.bufs, sink, work),
            Side::Client(c) => run(&mut **c, &mut rx, &mut self.bufs, sink, work),
        };
        // One move of what is left (at most the start of a record), or a free.
        if done < rx.len() {
            rx.drain(..done);
            self.rx = rx;
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Makes `e` sticky and moves the alert rustls queued for it into the send buffer.
    fn failed(&mut self, e: rustls::Error) -> TlsError {
        self.error = Some(e.clone());
        // What rustls queued for the error (the fatal alert), a few messages at most.
        let bufs = &mut self.bufs;
        for _ in 0..4 {
            let more = match &mut self.side {
                Side::Server(c) => flush_alert(&mut **c, bufs),
                Side::Client(c) => flush_alert(&mut **c, bufs),
            };
            if !more {
                break;
            }
        }
        self.rx = Vec::new();
        self.rx_pristine = false;
        TlsError(e)
    }

    /// Takes ciphertext from the peer (see the module's contract); decrypted application
    /// data goes to `sink`. Bytes after the peer's close_notify are ignored.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TlsError> {
        self.feed_bounded(data, sink, RX_BOUND)
    }

    /// [`feed`](TlsSession::feed) with the receive buffer's bound given.
    fn feed_bounded(
        &mut self,
        mut data: &[u8],
        sink: &mut dyn FnMut(&[u8]),
        bound: usize,
    ) -> Result<(), TlsError> {
        if let Some(e) = &self.error {
            return Err(TlsError(e.clone()));
        }
        self.rx_pristine = false;
        while !data.is_empty() && !self.bufs.peer_closed {
            let room = bound.saturating_sub(self.rx.len()).min(RX_STEP);
            if room == 0 {
                return Err(self.over_bound(bound));
            }
            let (now, rest) = data.split_at(room.min(data.len()));
            self.rx.extend_from_slice(now);
            data = rest;
            self.process_rx(sink)?;
        }
        self.check_rx(bound)
    }

    /// Processes what the receive buffer holds (no other work).
    fn process_rx(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<(), TlsError> {
        self.drive(
            sink,
            Work {
                write: None,
                close: false,
            },
        )
    }

    /// After input: frees the receive buffer once the peer has closed, or fails the session
    /// when what it still holds has reached `bound`.
    fn check_rx(&mut self, bound: usize) -> Result<(), TlsError> {
        if self.bufs.peer_closed {
            self.rx = Vec::new();
        } else if self.rx.len() >= bound {
            return Err(self.over_bound(bound));
        }
        Ok(())
    }

    /// Fails the session: a record or handshake message would need more than `bound` bytes
    /// of receive buffer.
    fn over_bound(&mut self, bound: usize) -> TlsError {
        self.failed(rustls::Error::General(format!(
            "a record or handshake message needing more than {bound} bytes"
        )))
    }

    /// As [`feed`](TlsSession::feed), but decrypts in `data` itself where it can, saving the
    /// copy into the receive buffer: whole records are processed where they lie, and only
    /// what completes the record the receive buffer holds, and the incomplete record at the
    /// end, are copied. `data`'s contents are unspecified afterwards.
    pub(crate) fn feed_in_place(
        &mut self,
        data: &mut [u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TlsError> {
        let mut at = 0;
        // Complete the record held, by copying only the bytes it lacks (its header first, if
        // that is incomplete). Only a pristine `rx` is read this way.
        while self.rx_pristine && !self.rx.is_empty() && at < data.len() {
            let Some(gap) = record_gap(&self.rx) else {
                break;
            };
            let k = gap.min(data.len() - at);
            let held = self.rx.len();
            self.feed(&data[at..at + k], sink)?;
            at += k;
            // Still the same incomplete record, untouched by rustls: pristine still.
            self.rx_pristine = self.rx.len() == held + k && record_gap(&self.rx).is_some();
        }
        if self.bufs.peer_closed {
            self.rx = Vec::new();
            return Ok(());
        }
        let rest = &mut data[at..];
        if rest.is_empty() {
            return Ok(());
        }
        if !self.rx.is_empty() {
            // rustls holds a handshake message in pieces (or the record could not be
            // completed above): everything goes the ordinary way, after what `rx` holds.
            return self.feed(rest, sink);
        }
        if let Some(e) = &self.error {
            return Err(TlsError(e.clone()));
        }
        let work = Work {
            write: None,
            close: false,
        };
        let (done, result) = match &mut self.side {
            Side::Server(c) => run(&mut **c, rest, &mut self.bufs, sink, work),
            Side::Client(c) => run(&mut **c, rest, &mut self.bufs, sink, work),
        };
        if let Err(e) = result {
            return Err(self.failed(e));
        }
        let tail = &rest[done..];
        if tail.is_empty() || self.bufs.peer_closed {
            return Ok(());
        }
        if single_record(tail) {
            // The start of the next record, untouched: kept until the rest comes.
            self.rx.extend_from_slice(tail);
            self.rx_pristine = true;
            return Ok(());
        }
        // rustls stopped inside a handshake message it is joining in `tail` itself, whose
        // first bytes it has processed: it must see the same bytes again from the same start,
        // all at once (its positions count from there), and within the receive bound.
        if tail.len() >= RX_BOUND {
            return Err(self.over_bound(RX_BOUND));
        }
        self.rx.extend_from_slice(tail);
        self.process_rx(sink)?;
        self.check_rx(RX_BOUND)
    }

    /// Ciphertext waiting for the peer.
    pub(crate) fn tls_out(&self) -> usize {
        self.bufs.pending().len()
    }

    /// Whether ciphertext waits for the peer.
    pub(crate) fn wants_write(&self) -> bool {
        self.tls_out() > 0
    }

    /// The peer sent close_notify.
    pub(crate) fn peer_closed(&self) -> bool {
        self.bufs.peer_closed
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    /// Writes ciphertext for the peer into `w` (one write); a drained send buffer is freed.
    pub(crate) fn write_tls(&mut self, w: &mut dyn io::Write) -> io::Result<usize> {
        let pending = self.bufs.pending();
        if pending.is_empty() {
            return Ok(0);
        }
        let n = w.write(pending)?;
        self.bufs.sent(n);
        Ok(n)
    }

    /// Encrypts `data` for the peer; takes all of it (the engine budgets beforehand). Needs
    /// the handshake complete.
    pub(crate) fn write_plaintext(
        &mut self,
        data: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TlsError> {
        if data.is_empty() {
            return Ok(());
        }
        self.drive(
            sink,
            Work {
                write: Some(data),
                close: false,
            },
        )
    }

    /// Queues close_notify for the peer (once the handshake is complete; before, nothing).
    pub(crate) fn send_close_notify(
        &mut self,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), TlsError> {
        if self.is_handshaking() {
            return Ok(());
        }
        self.drive(
            sink,
            Work {
                write: None,
                close: true,
            },
        )
    }

    /// Heap bytes of stud's own ciphertext buffers (receive and send).
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.rx.capacity() + self.bufs.tx.capacity()
    }

    pub(crate) fn info(&self) -> Option<HandshakeInfo> {
        let common = self.common();
        let version = match common.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => TlsVersion::Tls13,
            _ => TlsVersion::Tls12,
        };
        let suite = common.negotiated_cipher_suite()?;
        Some(HandshakeInfo {
            sni: self.server_name.clone(),
            alpn: common.alpn_protocol().map(<[u8]>::to_vec),
            version,
            cipher_suite: suites::openssl_name(suite),
            resumed: matches!(
                common.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed)
            ),
            peer_certificates: self.peer_certificates(),
            client_verify: self.client_verify(),
        })
    }

    /// The peer's chain (DER, leaf first); empty when it sent none.
    fn peer_certificates(&self) -> Vec<Vec<u8>> {
        self.common()
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    }

    /// A chain rustls kept is one its verifier accepted (a failure ends the handshake).
    fn client_verify(&self) -> Option<client_auth::ClientVerify> {
        let sent = self
            .common()
            .peer_certificates()
            .is_some_and(|c| !c.is_empty());
        if self.embedders_verifier {
            return sent.then_some(client_auth::ClientVerify::Verified);
        }
        self.asks_for_certificate.then_some(match sent {
            true => client_auth::ClientVerify::Verified,
            false => client_auth::ClientVerify::NoCertificate,
        })
    }
}

/// Whether `bytes` (from a record boundary) is the start of one record and no more: shorter than
/// a header, or than the header's record.
fn single_record(bytes: &[u8]) -> bool {
    bytes.len() < 5 || bytes.len() < 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]))
}

/// How many bytes the last record in `held` (a run of whole records and the start of one,
/// from a record boundary) still lacks: the rest of its header, or of its body once the header
/// is whole. `None` when `held` ends on a record boundary.
fn record_gap(held: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let have = held.len() - at;
        if have == 0 {
            return None;
        }
        if have < 5 {
            return Some(5 - have);
        }
        let len = usize::from(u16::from_be_bytes([held[at + 3], held[at + 4]]));
        if have < 5 + len {
            return Some(5 + len - have);
        }
        at += 5 + len;
    }
}

/// One pass for a failed session: encodes the next message rustls queued (its fatal alert),
/// while it has one. rustls hands out what it queued before it looks at input again, and it is
/// never asked to look at input again. Returns whether to look again.
fn flush_alert<D, C: Records<D> + std::ops::Deref<Target = rustls::CommonState>>(
    conn: &mut C,
    bufs: &mut Buffers,
) -> bool {
    if !conn.wants_write() {
        return false;
    }
    let status = conn.records(&mut []);
    let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state else {
        return false;
    };
    let need = match encode.encode(&mut []) {
        Err(EncodeError::InsufficientSize(e)) => e.required_size,
        _ => return false,
    };
    match encode.encode(bufs.room(need)) {
        Ok(n) => {
            bufs.filled(n);
            true
        }
        Err(_) => {
            bufs.filled(0);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn server() -> TlsSession {
        let id = stud_test_support::localhost();
        let config = crate::Config::builder()
            .pem(format!("{}{}", id.cert_pem, id.key_pem))
            .build()
            .expect("config");
        TlsSession::new(&config).expect("session")
    }

    /// A client's first flight (its ClientHello record), as it goes on the wire.
    fn client_hello() -> Vec<u8> {
        let id = stud_test_support::localhost();
        let config = stud_test_support::client_config_trusting(std::slice::from_ref(&id.der));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut client = rustls::ClientConnection::new(Arc::clone(&config), name).expect("client");
        let mut out = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut out).expect("write_tls");
        }
        out
    }

    #[test]
    fn only_the_start_of_one_record_counts_as_a_single_record() {
        // Shorter than a header, or than the header's record: one record's start.
        assert!(single_record(&[0x17, 0x03]));
        assert!(single_record(&[0x17, 0x03, 0x03, 0x00, 0x20, 1, 2]));
        // A whole record, or a whole one and more: not a single record's start.
        let mut whole = vec![0x17, 0x03, 0x03, 0x00, 0x02, 1, 2];
        assert!(!single_record(&whole));
        whole.extend_from_slice(&[0x17, 0x03]);
        assert!(!single_record(&whole));
        assert_eq!(record_gap(&whole), Some(3));
    }

    #[test]
    fn a_partial_message_past_the_bound_is_an_error_that_stays() {
        let hello = client_hello();
        assert!(hello.len() > 200, "a hello of {} bytes", hello.len());
        let mut sink = |_: &[u8]| panic!("no application data in a handshake");
        // Within the bound, part of a hello just waits for the rest.
        let mut session = server();
        session
            .feed_bounded(&hello[..150], &mut sink, 151)
            .expect("a partial hello within the bound waits");
        assert_eq!(session.rx.len(), 150, "held until whole");
        // At the bound, it is an error, and the error stays.
        let mut session = server();
        let err = session
            .feed_bounded(&hello[..150], &mut sink, 150)
            .expect_err("a hello needing more than the bound");
        assert!(err.to_string().contains("more than 150 bytes"), "{err}");
        assert_eq!(session.buffer_bytes(), 0, "the receive buffer is gone");
        let again = session.feed(&hello[150..], &mut sink).expect_err("sticky");
        assert_eq!(again, err);
    }

    #[test]
    fn a_whole_hello_leaves_no_receive_buffer_and_the_flight_drains_to_nothing() {
        let hello = client_hello();
        let mut session = server();
        // One byte at a time: each call keeps the start of the record, the last completes it.
        for (i, byte) in hello.iter().enumerate() {
            session
                .feed(std::slice::from_ref(byte), &mut |_| {})
                .expect("hello");
            let held = session.rx.len();
            assert_eq!(held, if i + 1 == hello.len() { 0 } else { i + 1 });
        }
        assert_eq!(session.rx.capacity(), 0, "an empty receive buffer is freed");
        assert!(session.wants_write(), "the server's flight waits");
        let mut wire = Vec::new();
        while session.wants_write() {
            let n = session.write_tls(&mut wire).expect("write");
            assert!(n > 0);
        }
        assert_eq!(session.tls_out(), 0);
        assert_eq!(session.buffer_bytes(), 0, "a drained send buffer is freed");
        assert!(wire.len() > 100, "the flight was {} bytes", wire.len());
    }

    #[test]
    fn the_gap_is_what_the_last_record_lacks() {
        let record =
            |len: u16| [&[23, 3, 3][..], &len.to_be_bytes(), &vec![0; len.into()]].concat();
        assert_eq!(record_gap(&[]), None);
        assert_eq!(record_gap(&[23, 3]), Some(3), "the rest of the header");
        assert_eq!(
            record_gap(&[23, 3, 3, 0, 10, 1, 2]),
            Some(8),
            "the rest of the body"
        );
        let two = [record(4), record(0)].concat();
        assert_eq!(record_gap(&two), None, "whole records");
        assert_eq!(record_gap(&[two.clone(), vec![23]].concat()), Some(4));
    }

    #[test]
    fn a_drained_send_buffer_goes_to_the_threads_spare_slot_only_when_small() {
        std::thread::spawn(|| {
            let spare = || {
                SPARE.with(|s| {
                    let v = s.take();
                    let capacity = v.capacity();
                    s.set(v);
                    capacity
                })
            };
            let mut bufs = Buffers::default();
            bufs.room(1_000).fill(7);
            bufs.filled(1_000);
            assert_eq!(bufs.pending(), &[7; 1_000][..]);
            let kept = bufs.tx.capacity();
            bufs.sent(400);
            assert_eq!(
                (bufs.pending().len(), spare()),
                (600, 0),
                "still holding bytes"
            );
            bufs.sent(600);
            assert_eq!(
                bufs.tx.capacity(),
                0,
                "the session holds nothing once drained"
            );
            assert_eq!(spare(), kept, "the thread keeps it for the next flush");
            // Reused: no new allocation for the next bytes.
            bufs.room(10);
            assert_eq!((bufs.tx.capacity(), spare()), (kept, 0));
            bufs.filled(10);
            bufs.sent(10);
            assert_eq!(spare(), kept);
            // A buffer grown past the cap (from the spare) is freed, not kept.
            let mut big = Buffers::default();
            big.room(SPARE_MAX + 1);
            big.filled(SPARE_MAX + 1);
            big.sent(SPARE_MAX + 1);
            assert_eq!((big.tx.capacity(), spare()), (0, 0));
        })
        .join()
        .expect("test thread");
    }
}
