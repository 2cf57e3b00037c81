//! `Conn`: one client connection and its backend twin, as a state machine over bytes and time.
//! The contract is on [`Conn`] itself.

mod plain_queue;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use self::plain_queue::{PlainQueue, MAX_WRITES_PER_CALL};
use crate::proxy::{
    encode_client_address, encode_proxy_v2_with, parse_proxy_header, ProxyHeaderParse,
    MAX_HEADER_LEN,
};
use crate::tls::alert_scan::AlertScan;
use crate::tls::client_hello::{self, HelloReader, Refusal, Verdict};
use crate::tls::early_data::EarlyDataSkip;
use crate::tls::{HandshakeInfo, TlsSession};
use crate::{ClientAddressMode, CloseReason, Config, Instant, TlsError};

/// Something the caller must do with its sockets.
///
/// New actions may come in a minor release, but only for behaviour a configuration must turn
/// on first: with the settings your code knows, only the actions it knows arrive, so a `_` arm
/// may ignore the rest.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum Action {
    /// Open a nonblocking connection to the backend now; report the outcome with
    /// [`Conn::handle_backend_connected`] or [`Conn::handle_backend_connect_failed`].
    ConnectBackend,
    /// Shut down the backend socket's write side (`shutdown(SHUT_WR)`): the client is done sending.
    ShutdownBackendWrite,
    /// Shut down the client socket's write side: the backend is done and close_notify is sent.
    ShutdownClientWrite,
    /// Close both sockets. The `Conn` is finished; drop it.
    Close(CloseReason),
}

/// Something that happened, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The TLS handshake completed.
    HandshakeComplete(HandshakeInfo),
}

/// Which socket readiness the connection wants now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// Read from the client (capacity is available and its stream is open).
    pub client_read: bool,
    /// Bytes wait for the client (ciphertext; plaintext in client mode).
    pub client_write: bool,
    /// Read from the backend.
    pub backend_read: bool,
    /// Bytes wait for the backend (plaintext or the client-address header; ciphertext in
    /// client mode).
    pub backend_write: bool,
}

/// Bytes held in flight, by direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Buffered {
    /// Decrypted client bytes (and header bytes) not yet taken by the backend; in client mode,
    /// the client's bytes and their ciphertext.
    pub to_backend: usize,
    /// Ciphertext not yet taken by the client; in client mode, decrypted backend bytes.
    pub to_client: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Reading the load balancer's PROXY header (only with `accept_proxy_header`).
    ProxyHeader,
    Handshaking,
    Connecting,
    Established,
    /// Flushing a last alert or close_notify before closing for the reason held.
    Closing(CloseReason),
    Closed,
}

#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    connect: bool,
    /// Shut the plaintext side's write half.
    shutdown_plain: bool,
    /// Shut the TLS side's write half.
    shutdown_tls: bool,
}

/// One client connection and its backend twin.
///
/// # Contract
///
/// A `Conn` does no I/O and reads no clock. The caller owns two sockets (the client's, accepted;
/// the backend's, connected when asked) and moves bytes and events between them and the `Conn`.
///
/// One side speaks TLS, the other plaintext. In server mode (the default) the TLS side is the
/// client and the plaintext side the backend. In client mode
/// ([`ConfigBuilder::client_mode`](crate::ConfigBuilder::client_mode)) the roles swap: the client
/// speaks plaintext, and the `Conn` is the TLS client of the backend. The methods keep naming
/// sockets (`client`, `backend`); what their bytes are follows from the mode. One state machine
/// serves both, with the same rules.
///
/// **Inputs** (`handle_*`), each with `now`, which must never go backwards:
/// - [`handle_client_data`](Conn::handle_client_data) — bytes read from the client. Returns how
///   many bytes were taken; all of them whenever `data.len() <= client_read_capacity()`.
/// - [`handle_client_eof`](Conn::handle_client_eof) / [`handle_client_reset`](Conn::handle_client_reset)
///   — the client's socket read end of stream, or failed (RST, EPIPE, …).
/// - [`handle_backend_connected`](Conn::handle_backend_connected) /
///   [`handle_backend_connect_failed`](Conn::handle_backend_connect_failed) — the outcome of
///   [`Action::ConnectBackend`].
/// - [`handle_backend_data`](Conn::handle_backend_data) — bytes read from the backend. Returns
///   how many bytes were taken; all of them whenever `data.len() <= backend_read_capacity()`.
/// - [`handle_client_data_mut`](Conn::handle_client_data_mut) /
///   [`handle_backend_data_mut`](Conn::handle_backend_data_mut) — the same, from a read buffer
///   the engine may decrypt in (one copy fewer); the reference driver uses these.
/// - [`handle_backend_eof`](Conn::handle_backend_eof) / [`handle_backend_reset`](Conn::handle_backend_reset).
/// - [`handle_timeout`](Conn::handle_timeout) — call when `now` reaches [`poll_timeout`](Conn::poll_timeout).
///
/// **Outputs**, to drain after every input, in this order:
/// 1. [`poll_event`](Conn::poll_event) — once, when the handshake completes (SNI, ALPN, version,
///    suite; in client mode, of the backend's session).
/// 2. [`poll_action`](Conn::poll_action) until `None` — connect the backend, shut one socket's write
///    side, or close both sockets with a [`CloseReason`]. After `Close` the `Conn` is finished,
///    and only then is [`is_closed`](Conn::is_closed) true: the close always comes through here.
/// 3. Bytes: [`poll_client_transmit`](Conn::poll_client_transmit) (or
///    [`write_client`](Conn::write_client)) and [`poll_backend_transmit`](Conn::poll_backend_transmit)
///    (or [`write_backend`](Conn::write_backend)). Sending bytes can make an action due (a shutdown
///    after the last byte), so poll actions again after transmitting.
/// 4. [`interest`](Conn::interest) — which sockets to watch for reading and writing — and
///    [`poll_timeout`](Conn::poll_timeout) — when to call `handle_timeout` next.
///
/// The order is the efficient one, not a trap: no other order loses an action or the close
/// reason. [`is_closed`](Conn::is_closed) stays `false` until `Action::Close` is taken, and
/// while any action waits, `poll_timeout` is already due, so a loop that sleeps after
/// transmitting wakes at once, calls `handle_timeout` (which then does nothing) and drains.
///
/// # Two ways for bytes to leave
/// - **Readiness-based I/O** (epoll, `poll()`, tokio's `try_write`):
///   [`write_client`](Conn::write_client) / [`write_backend`](Conn::write_backend) write
///   straight into a nonblocking `io::Write` until it says `WouldBlock`, with no copy through a
///   buffer of yours. Call them when the socket is writable and `interest()` asks for it.
/// - **Completion-based I/O** (io_uring, IOCP, a send queue of your own):
///   [`poll_client_transmit`](Conn::poll_client_transmit) /
///   [`poll_backend_transmit`](Conn::poll_backend_transmit) copy into a buffer you own, and
///   the bytes are yours from then on: submit the buffer, learn later how much was written,
///   and resubmit the rest yourself. Keep at most one buffer in flight per socket (poll that
///   side again when it has completed), so the budgets still bound what is held, and carry out
///   a shutdown [`Action`] for a socket after the buffer in flight on it completes: the action
///   follows the last byte handed out, not the last byte on the wire. Any buffer size works:
///   a short one takes part of a record, and the rest comes on the next call.
///
/// Both paths deliver the same bytes in the same order, and may be mixed between calls.
///
/// # Rules the engine keeps
/// - Server mode: no backend connection is asked for until the handshake completes. Client
///   mode: the backend is asked for at once (a plaintext client has no handshake to wait for);
///   the handshake with it starts when it connects, and the client's bytes that come first are
///   held, within the to-backend budget, until it completes. A failed handshake with the
///   backend closes with [`CloseReason::BackendHandshakeFailed`]: none of the client's bytes
///   reach a backend that did not prove its identity.
/// - The client-address header (per [`ClientAddressMode`](crate::ClientAddressMode)) is the first
///   thing the backend receives, exactly once (server mode only).
/// - Half-close both ways: the TLS side's end of stream (close_notify or FIN) becomes a shutdown
///   of the plaintext side's write half once every byte is delivered, and the reply keeps
///   flowing; the plaintext side's end of stream becomes close_notify, then a shutdown of the
///   TLS side's write half.
///   The connection closes when both directions are done, or when the remaining direction makes
///   no progress for the linger timeout.
/// - Each direction has a budget; with a full budget the producer's read interest is off and its
///   read capacity is zero. Nothing grows with a slow reader.
/// - The engine's buffers exist only while they hold bytes, the TLS layer's received and
///   outgoing ciphertext included: an idle established connection holds no buffer.
/// - Every close carries a reason.
pub struct Conn {
    config: Arc<Config>,
    tls: TlsSession,
    state: State,
    peer: SocketAddr,
    local: SocketAddr,
    /// What waits for the plaintext side: the client-address header, then decrypted bytes.
    to_plain: PlainQueue,
    /// A PROXY header from the load balancer, while it arrives in pieces.
    proxy_in: Vec<u8>,
    /// Watches for a plaintext close_notify while handshaking (rustls ignores one that early).
    alert_scan: AlertScan,
    /// Whether the ClientHello was judged (see [`client_hello`]) and handed to rustls.
    hello_judged: bool,
    /// The client's first bytes while its ClientHello arrives in pieces (bounded: a hello
    /// needing more than 128 KiB of records is refused); empty once judged.
    hello_in: Vec<u8>,
    /// Where the judging of those bytes has got to, so each record is read once.
    hello_reader: HelloReader,
    /// Drops the early data that follows a ClientHello offering it, until stud's first flight
    /// is out (see [`EarlyDataSkip`]); `None` otherwise.
    early: Option<EarlyDataSkip>,
    /// A plaintext alert stud sends itself (refusing a ClientHello), and how much of it is sent.
    own_alert: Option<([u8; 7], usize)>,
    event: Option<Box<HandshakeInfo>>,
    pending: Pending,
    close: Option<CloseReason>,
    /// The TLS side's transport reached end of stream.
    tls_eof: bool,
    /// Every byte from the TLS side reached the plaintext side, whose write half is (to be) shut.
    tls_in_done: bool,
    /// The plaintext side's stream ended.
    plain_eof: bool,
    close_notify_queued: bool,
    /// close_notify reached the TLS side's socket, whose write half is (to be) shut.
    plain_in_done: bool,
    /// Client mode: the TLS side is the backend, the plaintext side the client.
    client_mode: bool,
    /// Client mode: the client's bytes that came before the handshake with the backend
    /// completed, counted in the to-backend budget; empty otherwise.
    pre_tls: Vec<u8>,
    handshake_deadline: Instant,
    connect_deadline: Instant,
    closing_deadline: Instant,
    last_activity: Instant,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("state", &self.state)
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls_eof", &self.tls_eof)
            .field("plain_eof", &self.plain_eof)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection for a client accepted at `now` from `peer` on the local address `local`
    /// (the accepted socket's own address, used by the PROXY header).
    ///
    /// Fails only if the TLS library cannot create a session for `config`.
    pub fn new(
        config: Arc<Config>,
        now: Instant,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<Conn, TlsError> {
        let tls = TlsSession::new(&config)?;
        let client_mode = config.client_mode();
        let handshake_deadline = now + config.handshake_timeout;
        let (state, connect_deadline) = if client_mode {
            // Nothing to wait for from a plaintext client: the backend first.
            (State::Connecting, now + config.backend_connect_timeout)
        } else if config.accept_proxy_header {
            (State::ProxyHeader, Instant::ZERO)
        } else {
            (State::Handshaking, Instant::ZERO)
        };
        Ok(Conn {
            config,
            tls,
            state,
            peer,
            local,
            to_plain: PlainQueue::default(),
            proxy_in: Vec::new(),
            alert_scan: AlertScan::default(),
            // A ClientHello is judged on the server side only.
            hello_judged: client_mode,
            hello_in: Vec::new(),
            hello_reader: HelloReader::default(),
            early: None,
            own_alert: None,
            event: None,
            pending: Pending {
                connect: client_mode,
                ..Pending::default()
            },
            close: None,
            tls_eof: false,
            tls_in_done: false,
            plain_eof: false,
            close_notify_queued: false,
            plain_in_done: false,
            client_mode,
            pre_tls: Vec::new(),
            handshake_deadline,
            connect_deadline,
            closing_deadline: Instant::ZERO,
            last_activity: now,
        })
    }

    /// The client's address: as given to [`Conn::new`], or as the load balancer's PROXY header
    /// named it (with [`ConfigBuilder::accept_proxy_header`](crate::ConfigBuilder::accept_proxy_header)).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The accepted socket's local address, as given to [`Conn::new`], or the destination the
    /// load balancer's PROXY header named.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the handshake is still in progress (in client mode, from the start until the
    /// handshake with the backend completes).
    pub fn is_handshaking(&self) -> bool {
        matches!(self.state, State::ProxyHeader | State::Handshaking)
            || (self.client_mode && self.state == State::Connecting)
    }

    /// Whether the connection is finished: [`poll_action`](Conn::poll_action) has returned
    /// [`Action::Close`] and nothing more will happen; drop the `Conn`.
    ///
    /// Until that action is taken this stays `false`, even when the close is already decided,
    /// so asking `is_closed()` before draining actions cannot lose the close or its reason.
    pub fn is_closed(&self) -> bool {
        // `close` holds the reason until `poll_action` hands it out.
        self.state == State::Closed && self.close.is_none()
    }

    // ---------------------------------------------------------------- inputs: client

    /// How many bytes [`handle_client_data`](Conn::handle_client_data) is sure to take now.
    /// Zero while the to-backend budget is full or the client's stream is over.
    pub fn client_read_capacity(&self) -> usize {
        match self.client_mode {
            false => self.tls_read_capacity(),
            true => self.plain_read_capacity(),
        }
    }

    /// Bytes from the client (ciphertext; plaintext in client mode). Returns how many bytes
    /// were taken: all of `data` whenever `data.len() <= self.client_read_capacity()`, and all
    /// of it once the connection is closing (the bytes are then discarded). Untaken bytes must
    /// be offered again later.
    pub fn handle_client_data(&mut self, now: Instant, data: &[u8]) -> usize {
        match self.client_mode {
            false => self.tls_data(now, data),
            true => self.plain_data(now, data),
        }
    }

    /// As [`handle_client_data`](Conn::handle_client_data), but the engine may decrypt in
    /// `data`'s own bytes, which saves copying the ciphertext: pass a read buffer you are done
    /// with. Its contents are unspecified afterwards; the count taken is the same.
    pub fn handle_client_data_mut(&mut self, now: Instant, data: &mut [u8]) -> usize {
        match self.client_mode {
            false => self.tls_data_mut(now, data),
            true => self.plain_data(now, data),
        }
    }

    /// The client's stream ended (a read returned 0).
    pub fn handle_client_eof(&mut self, now: Instant) {
        match self.client_mode {
            false => self.tls_side_eof(now),
            true => self.plain_side_eof(now),
        }
    }

    /// The client's socket failed (reset, broken pipe, …): close at once.
    pub fn handle_client_reset(&mut self, _now: Instant) {
        match self.state {
            State::ProxyHeader | State::Handshaking if !self.client_mode => {
                self.close_now(CloseReason::ClientClosedInHandshake)
            }
            State::Closed => {}
            _ => self.close_now(CloseReason::ClientReset),
        }
    }

    // ---------------------------------------------------------------- inputs: the TLS side

    /// Whether the TLS side has a socket: in client mode, not before the backend connects.
    fn tls_side_connected(&self) -> bool {
        !(self.client_mode && self.state == State::Connecting)
    }

    /// The budget of bytes from the TLS side waiting for the plaintext side.
    fn tls_to_plain_budget(&self) -> usize {
        match self.client_mode {
            false => self.config.to_backend_budget,
            true => self.config.to_client_budget,
        }
    }

    /// The budget of bytes from the plaintext side waiting for the TLS side.
    fn plain_to_tls_budget(&self) -> usize {
        match self.client_mode {
            false => self.config.to_client_budget,
            true => self.config.to_backend_budget,
        }
    }

    /// How many ciphertext bytes [`tls_data`](Conn::tls_data) is sure to take now.
    fn tls_read_capacity(&self) -> usize {
        if self.tls_eof || self.tls.peer_closed() || !self.tls_side_connected() {
            return 0;
        }
        match self.state {
            State::ProxyHeader | State::Handshaking | State::Connecting | State::Established => {
                self.tls_to_plain_budget()
                    .saturating_sub(self.plain_pending())
            }
            State::Closing(_) | State::Closed => 0,
        }
    }

    /// Ciphertext from the TLS side; returns how many bytes were taken.
    fn tls_data(&mut self, now: Instant, data: &[u8]) -> usize {
        if self.state == State::ProxyHeader {
            return self.read_proxy_header(now, data);
        }
        if !matches!(
            self.state,
            State::Handshaking | State::Connecting | State::Established
        ) || self.tls_eof
            || self.tls.peer_closed()
            || !self.tls_side_connected()
        {
            // Closing, closed, or after close_notify: bytes are ignored (RFC 8446 §6.1).
            return data.len();
        }
        let take = data.len().min(self.tls_read_capacity());
        if take == 0 {
            return 0;
        }
        if self.state == State::Handshaking
            && !self.client_mode
            && self.alert_scan.saw_close_notify(&data[..take])
        {
            // The client ended the connection before a handshake could complete.
            self.close_now(CloseReason::ClientClosedInHandshake);
            return data.len();
        }
        if !self.hello_judged {
            return self.judge_hello(now, &data[..take]);
        }
        self.feed_client(now, &data[..take]);
        self.last_activity = now;
        self.update(now);
        take
    }

    /// Ciphertext from the TLS side that may be decrypted where it lies: once established,
    /// whole records are; before, as [`tls_data`](Conn::tls_data).
    fn tls_data_mut(&mut self, now: Instant, data: &mut [u8]) -> usize {
        if self.state != State::Established
            || self.tls_eof
            || self.tls.peer_closed()
            || !self.tls_side_connected()
        {
            return self.tls_data(now, data);
        }
        let take = data.len().min(self.tls_read_capacity());
        if take == 0 {
            return 0;
        }
        let budget = self.tls_to_plain_budget();
        let queue = &mut self.to_plain;
        let sink = &mut |record: &[u8]| queue.push_record(record, budget);
        if let Err(e) = self.tls.feed_in_place(&mut data[..take], sink) {
            self.fail(now, e);
        }
        self.last_activity = now;
        self.update(now);
        take
    }

    /// Holds the client's first bytes until its ClientHello is whole, then either gives them
    /// all to rustls or refuses with the alert the RFCs name. Returns the bytes taken (all).
    fn judge_hello(&mut self, now: Instant, data: &[u8]) -> usize {
        self.last_activity = now;
        // Judge in place when nothing is held (the usual case: the hello in one read).
        let mut held = std::mem::take(&mut self.hello_in);
        if !held.is_empty() {
            held.extend_from_slice(data);
        }
        let buf: &[u8] = if held.is_empty() { data } else { &held };
        match self.hello_reader.judge(buf, &self.config.hello) {
            Verdict::Incomplete => {
                if held.is_empty() {
                    held.extend_from_slice(data);
                }
                self.hello_in = held;
            }
            Verdict::Pass => {
                self.hello_judged = true;
                self.tls
                    .set_requested_name(self.hello_reader.take_server_name());
                if self.hello_reader.offers_early_data() {
                    let (hello, after) = buf.split_at(self.hello_reader.hello_end().min(buf.len()));
                    self.feed_tls(now, hello);
                    self.early = Some(EarlyDataSkip::default());
                    self.feed_client(now, after);
                } else {
                    self.feed_tls(now, buf);
                }
                self.update(now);
            }
            Verdict::Refuse(refusal) => self.refuse_hello(now, refusal),
        }
        data.len()
    }

    /// Sends `refusal`'s alert in plaintext (rustls has seen nothing), then closes.
    fn refuse_hello(&mut self, now: Instant, refusal: Refusal) {
        self.hello_judged = true;
        self.own_alert = Some((refusal.record(), 0));
        let error = TlsError::general(format!(
            "ClientHello refused with {}: {}",
            client_hello::alert::name(refusal.alert),
            refusal.why
        ));
        self.enter_closing(now, CloseReason::HandshakeFailed(error));
    }

    /// Whether bytes wait for the client: stud's own alert or rustls' output.
    fn tls_out_pending(&self) -> bool {
        self.own_alert.is_some() || self.tls.wants_write()
    }

    /// Writes what is left of stud's own alert; returns the count written.
    fn write_own_alert(&mut self, w: &mut dyn io::Write) -> io::Result<usize> {
        let Some((record, sent)) = self.own_alert.as_mut() else {
            return Ok(0);
        };
        let mut total = 0;
        while *sent < record.len() {
            match w.write(&record[*sent..]) {
                Ok(0) => break,
                Ok(n) => {
                    *sent += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return if total > 0 { Ok(total) } else { Err(e) },
            }
        }
        if *sent == record.len() {
            self.own_alert = None;
        }
        Ok(total)
    }

    /// Reads the load balancer's PROXY header; once it is whole, its addresses replace the
    /// socket's and the bytes after it go to TLS.
    fn read_proxy_header(&mut self, now: Instant, data: &[u8]) -> usize {
        let take = data.len().min(self.tls_read_capacity());
        if take == 0 {
            return 0;
        }
        self.last_activity = now;
        // Parse in place when nothing is held yet (the usual case: the header and the
        // ClientHello in one read); otherwise append and parse the whole.
        let mut held = std::mem::take(&mut self.proxy_in);
        if !held.is_empty() {
            held.extend_from_slice(&data[..take]);
        }
        let buf: &[u8] = if held.is_empty() {
            &data[..take]
        } else {
            &held
        };
        match parse_proxy_header(buf) {
            ProxyHeaderParse::Incomplete => {
                if held.is_empty() {
                    held.extend_from_slice(&data[..take]);
                }
                self.proxy_in = held;
                take
            }
            ProxyHeaderParse::Invalid(why) => {
                self.close_now(CloseReason::BadProxyHeader(why));
                data.len()
            }
            ProxyHeaderParse::Complete { len, addresses } => {
                if let Some((peer, local)) = addresses {
                    self.peer = peer;
                    self.local = local;
                }
                self.state = State::Handshaking;
                let rest = &buf[len..];
                if !rest.is_empty() {
                    // Within the capacity just checked, so all of it is taken.
                    let _ = self.tls_data(now, rest);
                }
                take
            }
        }
    }

    /// Gives the client's bytes to rustls, less the early data being skipped.
    fn feed_client(&mut self, now: Instant, data: &[u8]) {
        let Some(mut skip) = self.early.take() else {
            self.feed_tls(now, data);
            return;
        };
        skip.filter(data, &mut |piece| {
            if matches!(self.state, State::Handshaking) && !self.tls.peer_closed() {
                self.feed_tls(now, piece);
            }
        });
        if skip.is_active() && self.state == State::Handshaking {
            self.early = Some(skip);
        }
    }

    /// Gives all of `data` to rustls; each decrypted record goes straight to the plaintext
    /// queue. A TLS error moves to `Closing` and discards the rest; bytes after close_notify
    /// are ignored.
    fn feed_tls(&mut self, now: Instant, data: &[u8]) {
        if self.tls.peer_closed() {
            return;
        }
        let budget = self.tls_to_plain_budget();
        let queue = &mut self.to_plain;
        if let Err(e) = self
            .tls
            .feed(data, &mut |record| queue.push_record(record, budget))
        {
            self.fail(now, e);
        }
    }

    /// Encrypts `data` for the TLS side (within the budget checked by the caller).
    fn tls_write(&mut self, now: Instant, data: &[u8]) {
        let budget = self.tls_to_plain_budget();
        let queue = &mut self.to_plain;
        let sink = &mut |record: &[u8]| queue.push_record(record, budget);
        if let Err(e) = self.tls.write_plaintext(data, sink) {
            self.fail(now, e);
        }
    }

    /// Queues close_notify for the TLS side.
    fn tls_close_notify(&mut self, now: Instant) {
        let budget = self.tls_to_plain_budget();
        let queue = &mut self.to_plain;
        let sink = &mut |record: &[u8]| queue.push_record(record, budget);
        if let Err(e) = self.tls.send_close_notify(sink) {
            self.fail(now, e);
        }
    }

    /// The TLS side's stream ended (a read returned 0).
    fn tls_side_eof(&mut self, now: Instant) {
        match self.state {
            State::ProxyHeader | State::Handshaking if self.client_mode => {
                let error =
                    TlsError::general("the backend closed the connection during the handshake");
                self.close_now(CloseReason::BackendHandshakeFailed(error))
            }
            State::ProxyHeader | State::Handshaking => {
                self.close_now(CloseReason::ClientClosedInHandshake)
            }
            State::Connecting | State::Established => {
                if !self.tls_eof {
                    self.tls_eof = true;
                    self.last_activity = now;
                }
                self.update(now);
            }
            State::Closing(_) | State::Closed => {}
        }
    }

    // ---------------------------------------------------------------- inputs: backend

    /// The backend connection requested by [`Action::ConnectBackend`] is established. In
    /// client mode the handshake with the backend starts, with its deadline.
    pub fn handle_backend_connected(&mut self, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        if self.client_mode {
            self.state = State::Handshaking;
            self.handshake_deadline = now + self.config.handshake_timeout;
            self.last_activity = now;
            if let Err(e) = self.tls.start() {
                self.fail(now, e);
                return;
            }
            self.update(now);
            return;
        }
        self.state = State::Established;
        let mut buf = [0u8; MAX_HEADER_LEN];
        let mode = self.config.client_address;
        // Only a header that names the TLS session (PROXY v2) needs its details gathered.
        let info = mode.names_the_session().then(|| self.tls.info()).flatten();
        let n = match mode {
            ClientAddressMode::ProxyV2 => encode_proxy_v2_with(
                self.peer,
                self.local,
                info.as_ref(),
                self.config.proxy_tlvs,
                &mut buf,
            ),
            _ => encode_client_address(mode, self.peer, self.local, info.as_ref(), &mut buf),
        };
        if n > 0 {
            let header = crate::proxy::client_cert::finish(&self.config, &buf[..n], info.as_ref());
            self.to_plain.set_header(header);
        }
        self.last_activity = now;
        self.update(now);
    }

    /// The backend connection attempt failed (refused, unreachable, …): close.
    pub fn handle_backend_connect_failed(&mut self, _now: Instant) {
        if self.state == State::Connecting {
            self.close_now(CloseReason::BackendConnectFailed);
        }
    }

    /// How many bytes [`handle_backend_data`](Conn::handle_backend_data) takes now.
    /// Zero while the to-client budget is full.
    pub fn backend_read_capacity(&self) -> usize {
        match self.client_mode {
            false => self.plain_read_capacity(),
            true => self.tls_read_capacity(),
        }
    }

    /// Bytes from the backend (plaintext; ciphertext in client mode). Returns how many bytes
    /// were taken: `min(data.len(), self.backend_read_capacity())` (in client mode, all of
    /// `data` whenever it fits that capacity), or all of them once the connection is closing
    /// (discarded).
    pub fn handle_backend_data(&mut self, now: Instant, data: &[u8]) -> usize {
        match self.client_mode {
            false => self.plain_data(now, data),
            true => self.tls_data(now, data),
        }
    }

    /// As [`handle_backend_data`](Conn::handle_backend_data), but the engine may decrypt in
    /// `data`'s own bytes (client mode), which saves copying the ciphertext: pass a read
    /// buffer you are done with. Its contents are unspecified afterwards; the count taken is
    /// the same.
    pub fn handle_backend_data_mut(&mut self, now: Instant, data: &mut [u8]) -> usize {
        match self.client_mode {
            false => self.plain_data(now, data),
            true => self.tls_data_mut(now, data),
        }
    }

    /// The backend's stream ended: once its bytes are sent, close_notify follows, then a
    /// shutdown of the client's write side. In client mode, the bytes the backend sent before
    /// reach the client, then a shutdown of the client's write side.
    pub fn handle_backend_eof(&mut self, now: Instant) {
        match self.client_mode {
            false => self.plain_side_eof(now),
            true => self.tls_side_eof(now),
        }
    }

    /// The backend's socket failed: close at once.
    pub fn handle_backend_reset(&mut self, _now: Instant) {
        let live = match self.state {
            State::Connecting | State::Established => true,
            State::Handshaking => self.client_mode,
            _ => false,
        };
        if live {
            self.close_now(CloseReason::BackendReset);
        }
    }

    // ---------------------------------------------------------------- inputs: the plaintext side

    /// How many bytes [`plain_data`](Conn::plain_data) takes now: zero while the budget towards
    /// the TLS side is full. In client mode the client's bytes are taken from the start, and
    /// held until the handshake with the backend completes.
    fn plain_read_capacity(&self) -> usize {
        if self.plain_eof {
            return 0;
        }
        let budget = self.plain_to_tls_budget();
        match self.state {
            State::Established => budget.saturating_sub(self.tls.tls_out()),
            State::Connecting | State::Handshaking if self.client_mode => {
                budget.saturating_sub(self.pre_tls.len())
            }
            _ => 0,
        }
    }

    /// Plaintext for the TLS side; returns how many bytes were taken.
    fn plain_data(&mut self, now: Instant, data: &[u8]) -> usize {
        match self.state {
            State::Established if !self.plain_eof => {}
            State::Connecting | State::Handshaking if self.client_mode && !self.plain_eof => {
                let n = data.len().min(self.plain_read_capacity());
                if n > 0 {
                    self.pre_tls.extend_from_slice(&data[..n]);
                    self.last_activity = now;
                }
                return n;
            }
            State::Closing(_) | State::Closed => return data.len(),
            _ => return 0,
        }
        let n = data.len().min(self.plain_read_capacity());
        if n == 0 {
            return 0;
        }
        self.tls_write(now, &data[..n]);
        self.last_activity = now;
        self.update(now);
        n
    }

    /// The plaintext side's stream ended: once its bytes are encrypted and sent, close_notify
    /// follows, then a shutdown of the TLS side's write half.
    fn plain_side_eof(&mut self, now: Instant) {
        let open = match self.state {
            State::Established => true,
            State::Connecting | State::Handshaking => self.client_mode,
            _ => false,
        };
        if open && !self.plain_eof {
            self.plain_eof = true;
            self.last_activity = now;
            self.update(now);
        }
    }

    /// Ends the connection now at the caller's request (shutdown, drain deadline).
    pub fn abort(&mut self, _now: Instant) {
        if self.state != State::Closed {
            self.close_now(CloseReason::Aborted);
        }
    }

    // ---------------------------------------------------------------- time

    /// The next instant at which [`handle_timeout`](Conn::handle_timeout) must be called.
    ///
    /// While an action waits in [`poll_action`](Conn::poll_action) the deadline is already
    /// due (it is the last `now` that counted as activity): a loop that transmitted last and
    /// did not drain actions again wakes at once instead of sleeping on a shutdown or a close.
    /// `None` only once [`Action::Close`] is taken.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.actions_due() {
            return Some(self.last_activity);
        }
        match &self.state {
            State::ProxyHeader | State::Handshaking => Some(self.handshake_deadline),
            State::Connecting => Some(self.connect_deadline),
            State::Established => {
                let linger = self.linger_deadline();
                let idle = self.config.idle_timeout.map(|t| self.last_activity + t);
                match (linger, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closing(_) => Some(self.closing_deadline),
            State::Closed => None,
        }
    }

    /// Fires whatever deadline `now` has reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.state {
            State::ProxyHeader | State::Handshaking if now >= self.handshake_deadline => {
                self.close_now(CloseReason::HandshakeTimeout);
            }
            State::Connecting if now >= self.connect_deadline => {
                self.close_now(CloseReason::BackendConnectTimeout);
            }
            State::Established => {
                if self.linger_deadline().is_some_and(|d| now >= d) {
                    self.close_now(CloseReason::LingerTimeout);
                } else if self
                    .config
                    .idle_timeout
                    .is_some_and(|t| now >= self.last_activity + t)
                {
                    // Tell the client cleanly that we are done, then close.
                    self.tls_close_notify(now);
                    if self.state == State::Established {
                        self.enter_closing(now, CloseReason::IdleTimeout);
                    }
                }
            }
            State::Closing(reason) if now >= self.closing_deadline => {
                let reason = reason.clone();
                self.close_now(reason);
            }
            _ => {}
        }
    }

    /// Heap bytes of the buffers the engine owns for this connection: the TLS layer's
    /// ciphertext, the plaintext queue, and the bytes held while a PROXY header, a ClientHello
    /// or (in client mode) the handshake with the backend is awaited. rustls' own state is not
    /// counted. Zero on an idle connection.
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.tls.buffer_bytes()
            + self.to_plain.heap_bytes()
            + self.proxy_in.capacity()
            + self.hello_in.capacity()
            + self.pre_tls.capacity()
    }

    /// Whether [`poll_action`](Conn::poll_action) has something to hand out.
    fn actions_due(&self) -> bool {
        let p = self.pending;
        p.connect || p.shutdown_plain || p.shutdown_tls || self.close.is_some()
    }

    fn linger_deadline(&self) -> Option<Instant> {
        let half_closed = self.tls_eof || self.tls.peer_closed() || self.plain_eof;
        half_closed.then(|| self.last_activity + self.config.linger_timeout)
    }

    // ---------------------------------------------------------------- outputs

    /// The handshake's outcome, once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.event
            .take()
            .map(|info| Event::HandshakeComplete(*info))
    }

    /// The next thing to do with the sockets. After [`Action::Close`] nothing follows.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        if std::mem::take(&mut self.pending.connect) {
            return Some(Action::ConnectBackend);
        }
        // The plaintext side is the backend, or in client mode the client.
        let (plain, tls) = match self.client_mode {
            false => (Action::ShutdownBackendWrite, Action::ShutdownClientWrite),
            true => (Action::ShutdownClientWrite, Action::ShutdownBackendWrite),
        };
        if std::mem::take(&mut self.pending.shutdown_plain) {
            return Some(plain);
        }
        if std::mem::take(&mut self.pending.shutdown_tls) {
            return Some(tls);
        }
        self.close.take().map(Action::Close)
    }

    /// Which socket readiness to wait for.
    #[must_use]
    pub fn interest(&self) -> Interest {
        let open = !matches!(self.state, State::Closed);
        let tls_read = self.tls_read_capacity() > 0;
        let tls_write = open && self.tls_side_connected() && self.tls_out_pending();
        let plain_read = self.plain_read_capacity() > 0;
        let plain_write = self.state == State::Established && self.plain_out_pending();
        match self.client_mode {
            false => Interest {
                client_read: tls_read,
                client_write: tls_write,
                backend_read: plain_read,
                backend_write: plain_write,
            },
            true => Interest {
                client_read: plain_read,
                client_write: plain_write,
                backend_read: tls_read,
                backend_write: tls_write,
            },
        }
    }

    /// Bytes held in each direction.
    pub fn buffered(&self) -> Buffered {
        let own = self
            .own_alert
            .as_ref()
            .map_or(0, |(record, sent)| record.len() - sent);
        let to_plain = self.to_plain.buffered();
        let to_tls = self.tls.tls_out() + own + self.pre_tls.len();
        match self.client_mode {
            false => Buffered {
                to_backend: to_plain,
                to_client: to_tls,
            },
            true => Buffered {
                to_backend: to_tls,
                to_client: to_plain,
            },
        }
    }

    /// Copies bytes for the client (ciphertext; plaintext in client mode) into `buf`; returns
    /// the count (0: nothing to send). The bytes are the caller's from then on.
    #[must_use]
    pub fn poll_client_transmit(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        match self.client_mode {
            false => self.poll_tls_transmit(now, buf),
            true => self.poll_plain_transmit(now, buf),
        }
    }

    /// Writes bytes for the client (ciphertext; plaintext in client mode) straight into `w` (a
    /// nonblocking socket), without a copy through a caller buffer. Stops at `WouldBlock`
    /// (returning what was written, possibly 0) or after a bounded number of writes. Other
    /// errors are returned; report them with [`handle_client_reset`](Conn::handle_client_reset).
    pub fn write_client(&mut self, now: Instant, w: &mut dyn io::Write) -> io::Result<usize> {
        match self.client_mode {
            false => self.write_tls_side(now, w),
            true => self.write_plain_side(now, w),
        }
    }

    /// Copies bytes for the backend (plaintext, the client-address header first; ciphertext in
    /// client mode) into `buf`; returns the count (0: nothing to send, or the backend is not
    /// connected yet).
    #[must_use]
    pub fn poll_backend_transmit(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        match self.client_mode {
            false => self.poll_plain_transmit(now, buf),
            true => self.poll_tls_transmit(now, buf),
        }
    }

    /// Writes bytes for the backend (plaintext, the client-address header first; ciphertext in
    /// client mode) straight into `w`. Stops at `WouldBlock` or after a bounded number of
    /// writes; other errors are returned (report them with
    /// [`handle_backend_reset`](Conn::handle_backend_reset)).
    pub fn write_backend(&mut self, now: Instant, w: &mut dyn io::Write) -> io::Result<usize> {
        match self.client_mode {
            false => self.write_plain_side(now, w),
            true => self.write_tls_side(now, w),
        }
    }

    /// Copies ciphertext for the TLS side into `buf`.
    fn poll_tls_transmit(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        if !self.tls_side_connected() {
            return 0;
        }
        let mut out = &mut buf[..];
        let before = out.len();
        let _ = self.write_own_alert(&mut out);
        while !out.is_empty() && self.tls.wants_write() {
            match self.tls.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let n = before - out.len();
        self.after_tls_flush(now, n);
        n
    }

    /// Writes ciphertext for the TLS side straight into `w`.
    fn write_tls_side(&mut self, now: Instant, w: &mut dyn io::Write) -> io::Result<usize> {
        if !self.tls_side_connected() {
            return Ok(0);
        }
        let mut total = match self.write_own_alert(w) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        for _ in 0..MAX_WRITES_PER_CALL {
            if self.own_alert.is_some() || !self.tls.wants_write() {
                break;
            }
            match self.tls.write_tls(w) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.after_tls_flush(now, total);
                    return Err(e);
                }
            }
        }
        self.after_tls_flush(now, total);
        Ok(total)
    }

    fn after_tls_flush(&mut self, now: Instant, n: usize) {
        if n > 0 {
            if let Some(skip) = self.early.as_mut() {
                // The server's flight is out: the client's Finished may come next.
                skip.finish();
            }
            self.last_activity = now;
            self.update(now);
        }
    }

    fn plain_out_pending(&self) -> bool {
        self.to_plain.wants_write()
    }

    /// Decrypted bytes not yet sent to the backend.
    fn plain_pending(&self) -> usize {
        self.to_plain.pending()
    }

    /// Copies plaintext for the plaintext side (the client-address header first) into `buf`.
    fn poll_plain_transmit(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let mut out = &mut buf[..];
        let before = out.len();
        let _ = self.write_plain_side(now, &mut out);
        before - out.len()
    }

    /// Writes plaintext for the plaintext side (the client-address header first) into `w`.
    fn write_plain_side(&mut self, now: Instant, w: &mut dyn io::Write) -> io::Result<usize> {
        if self.state != State::Established {
            return Ok(0);
        }
        let (total, result) = self.to_plain.write_to(w);
        if total > 0 {
            self.last_activity = now;
            self.update(now);
        }
        result.map(|()| total)
    }

    // ---------------------------------------------------------------- internals

    /// Moves the state machine forward after any input or output.
    fn update(&mut self, now: Instant) {
        match self.state {
            State::ProxyHeader => {}
            State::Handshaking => {
                if !self.tls.is_handshaking() {
                    self.early = None;
                    self.event = self.tls.info().map(Box::new);
                    if self.client_mode {
                        // The backend is there: what the client sent meanwhile goes first.
                        self.state = State::Established;
                        let early = std::mem::take(&mut self.pre_tls);
                        if !early.is_empty() {
                            self.tls_write(now, &early);
                        }
                        self.update(now);
                    } else {
                        self.pending.connect = true;
                        self.state = State::Connecting;
                        self.connect_deadline = now + self.config.backend_connect_timeout;
                    }
                }
            }
            State::Connecting => {}
            State::Established => {
                if !self.tls_in_done
                    && (self.tls_eof || self.tls.peer_closed())
                    && self.plain_pending() == 0
                    && !self.to_plain.has_header()
                {
                    self.tls_in_done = true;
                    self.pending.shutdown_plain = true;
                }
                if self.plain_eof && !self.close_notify_queued {
                    self.close_notify_queued = true;
                    self.tls_close_notify(now);
                    if self.state != State::Established {
                        return; // the TLS layer failed: closing
                    }
                }
                if self.close_notify_queued && !self.plain_in_done && !self.tls.wants_write() {
                    self.plain_in_done = true;
                    self.pending.shutdown_tls = true;
                }
                if self.tls_in_done && self.plain_in_done {
                    self.state = State::Closed;
                    self.close = Some(CloseReason::Completed);
                }
            }
            State::Closing(ref reason) => {
                if !self.tls_out_pending() {
                    let reason = reason.clone();
                    self.close_now(reason);
                }
            }
            State::Closed => {}
        }
    }

    /// A TLS error: flush the alert rustls queued, then close.
    fn fail(&mut self, now: Instant, error: TlsError) {
        let handshaking = matches!(self.state, State::ProxyHeader | State::Handshaking);
        let reason = match self.client_mode {
            false if handshaking => CloseReason::HandshakeFailed(error),
            // A TLS 1.3 backend judges stud's certificate after stud's side of the handshake
            // is done: its refusal still fails the handshake.
            true if handshaking || crate::tls::client_side::refuses_handshake(&error.0) => {
                CloseReason::BackendHandshakeFailed(error)
            }
            _ => CloseReason::ProtocolError(error),
        };
        self.enter_closing(now, reason);
    }

    fn enter_closing(&mut self, now: Instant, reason: CloseReason) {
        self.pending = Pending::default();
        // Nothing more reaches the plaintext side: its bytes go now, not with the Conn.
        self.to_plain = PlainQueue::default();
        self.closing_deadline = now + self.config.linger_timeout;
        self.state = State::Closing(reason);
        self.update(now);
    }

    /// Close without flushing anything more: the caller closes both sockets.
    fn close_now(&mut self, reason: CloseReason) {
        self.pending = Pending::default();
        self.to_plain = PlainQueue::default();
        self.pre_tls = Vec::new();
        self.hello_in = Vec::new();
        self.early = None;
        self.own_alert = None;
        self.state = State::Closed;
        self.close = Some(reason);
    }
}
