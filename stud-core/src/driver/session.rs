//! One connection under the driver: a [`Conn`] with its client socket and, once asked for, its
//! backend socket, driven by the `Conn` contract.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;

use socket2::{SockRef, Socket};

use super::backend::Endpoints;
use super::poller::Poller;
use super::ratelimit::{WarningKind, Warnings};
use super::sockets::{finish_connect, start_connect, ConnectStart, Registration, SendNoSignal};
use super::timers::TimerSlot;
use super::{ConnStats, Observer, Options};
use crate::{Action, CloseReason, Conn, Event, Instant};

/// Rounds of read → drain → write per wake: with one read per side per round, at most this many
/// reads per socket per wake, so a fast connection yields to the others.
const MAX_ROUNDS: usize = 4;

/// What one driver step may touch besides the session itself.
pub(super) struct Ctx<'a> {
    pub(super) now: Instant,
    pub(super) poller: &'a Poller,
    /// The one read buffer shared by every connection.
    pub(super) scratch: &'a mut [u8],
    pub(super) options: &'a Options,
    /// The backend destinations and source addresses, with their rotations.
    pub(super) endpoints: &'a mut Endpoints,
    pub(super) observer: &'a mut dyn Observer,
    pub(super) warnings: &'a mut Warnings,
}

impl Ctx<'_> {
    /// Reports a warning if its kind has not been reported in the last second.
    pub(super) fn warn(&mut self, kind: WarningKind, message: impl FnOnce() -> String) {
        if let Some(text) = self.warnings.check(kind, self.now, message) {
            self.observer.warning(&text);
        }
    }

    /// Reports a backend problem with the address of attempt `attempt` of a connection that
    /// started at `first`; the text is built only if it is reported.
    fn warn_attempt(&mut self, first: usize, attempt: usize, what: impl std::fmt::Display) {
        let endpoints = &*self.endpoints;
        let report = self.warnings.check(WarningKind::Backend, self.now, || {
            let addr = &endpoints.destination(first, attempt).addr;
            format!("backend {addr}: {what}")
        });
        if let Some(text) = report {
            self.observer.warning(&text);
        }
    }
}

/// The readiness one poller event reported for a session.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Ready {
    pub(super) client_read: bool,
    pub(super) backend_read: bool,
    /// Any event on the backend socket (a pending connect finished, or failed).
    pub(super) backend_any: bool,
}

/// What one read from a socket brought.
enum Got {
    Bytes(usize),
    Eof,
    /// Would block, or interrupted: nothing happened.
    Nothing,
    /// The socket failed (reset, …).
    Failed,
}

/// Reads once from `stream` (a `&TcpStream` or a `&Socket`) into `buf`, clearing `readable` when
/// the socket is drained: at end of stream, on a failure, on EAGAIN, and after a short read
/// (asking again would only return EAGAIN; polling is level-triggered, so bytes that arrive later
/// wake the loop again).
fn read_some(mut stream: impl Read, buf: &mut [u8], readable: &mut bool) -> Got {
    match stream.read(buf) {
        Ok(0) => {
            *readable = false;
            Got::Eof
        }
        Ok(n) => {
            if n < buf.len() {
                *readable = false;
            }
            Got::Bytes(n)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Got::Nothing,
        Err(e) => {
            *readable = false;
            if e.kind() == io::ErrorKind::WouldBlock {
                Got::Nothing
            } else {
                Got::Failed
            }
        }
    }
}

/// The backend socket's life.
#[derive(Debug)]
enum Backend {
    /// Not asked for yet (handshake in progress), or every address failed.
    None,
    /// A nonblocking connect in progress: attempt `attempt` (0, 1, …) of a connection whose
    /// first attempt went to destination `first` (see [`Endpoints::destination`]).
    /// `give_up` is when this attempt yields to the next address: its share of the time left
    /// before the `Conn`'s connect deadline (`None` for the last address, which gets it all).
    Connecting {
        stream: Socket,
        first: usize,
        attempt: usize,
        give_up: Option<Instant>,
    },
    Connected(Socket),
}

/// A connection and its sockets.
#[derive(Debug)]
pub(super) struct Session {
    conn: Conn,
    client: TcpStream,
    client_key: usize,
    client_reg: Registration,
    backend: Backend,
    backend_key: usize,
    backend_reg: Registration,
    pub(super) timer: TimerSlot,
    started: Instant,
    stats: ConnStats,
    /// Set once the `Conn` returned [`Action::Close`]; the server then calls [`Session::finish`].
    closed: Option<CloseReason>,
}

impl Session {
    /// A session for an accepted, tuned, nonblocking client socket.
    pub(super) fn new(
        conn: Conn,
        client: TcpStream,
        (client_key, backend_key): (usize, usize),
        now: Instant,
    ) -> Session {
        Session {
            conn,
            client,
            client_key,
            client_reg: Registration::default(),
            backend: Backend::None,
            backend_key,
            backend_reg: Registration::default(),
            timer: TimerSlot::default(),
            started: now,
            stats: ConnStats::default(),
            closed: None,
        }
    }

    /// Whether the connection is over; the server must then call [`Session::finish`].
    pub(super) fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// When [`Session::on_timer`] must run next.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let give_up = match &self.backend {
            Backend::Connecting { give_up, .. } => *give_up,
            _ => None,
        };
        self.conn.poll_timeout().into_iter().chain(give_up).min()
    }

    /// Handles readiness from the poller: bounded reads, then everything the `Conn` asks for.
    pub(super) fn drive(&mut self, ctx: &mut Ctx<'_>, ready: Ready) {
        if ready.backend_any && matches!(self.backend, Backend::Connecting { .. }) {
            self.finish_connecting(ctx);
        }
        let mut client_readable = ready.client_read;
        let mut backend_readable = ready.backend_read;
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;
            if client_readable && !self.is_closed() {
                progress |= self.read_client(ctx, &mut client_readable);
            }
            if backend_readable && !self.is_closed() {
                progress |= self.read_backend(ctx, &mut backend_readable);
            }
            progress |= self.flush(ctx);
            if self.is_closed() || !progress {
                break;
            }
        }
    }

    /// A deadline may have passed.
    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_>) {
        if let Backend::Connecting {
            first,
            attempt,
            give_up: Some(t),
            ..
        } = self.backend
        {
            if t <= ctx.now {
                // This address has had its share of the connect timeout: on to the next one.
                ctx.warn_attempt(first, attempt, "connect timed out; trying the next address");
                self.connect_backend(ctx, first, attempt + 1);
                self.drain_outputs(ctx);
            }
        }
        if self.conn.poll_timeout().is_some_and(|t| t <= ctx.now) {
            self.conn.handle_timeout(ctx.now);
        }
        // Even with nothing due, flushing is harmless and keeps the session consistent.
        self.flush(ctx);
    }

    /// Ends the connection at the server's request (stop, drain deadline, poller failure).
    pub(super) fn abort(&mut self, ctx: &mut Ctx<'_>) {
        self.conn.abort(ctx.now);
        self.drain_outputs(ctx);
    }

    /// Registers the sockets for what the `Conn` wants now. A poller failure aborts the session.
    pub(super) fn rearm(&mut self, ctx: &mut Ctx<'_>) {
        if self.is_closed() {
            return;
        }
        if let Err(e) = self.try_rearm(ctx.poller) {
            ctx.warn(WarningKind::Connection, || {
                format!("cannot watch a connection's sockets: {e}; closing it")
            });
            self.abort(ctx);
        }
    }

    fn try_rearm(&mut self, poller: &Poller) -> io::Result<()> {
        let want = self.conn.interest();
        self.client_reg.update(
            poller,
            self.client.as_fd(),
            self.client_key,
            want.client_read,
            want.client_write,
        )?;
        match &self.backend {
            Backend::None => Ok(()),
            Backend::Connecting { stream, .. } => {
                self.backend_reg
                    .update(poller, stream.as_fd(), self.backend_key, false, true)
            }
            Backend::Connected(stream) => self.backend_reg.update(
                poller,
                stream.as_fd(),
                self.backend_key,
                want.backend_read,
                want.backend_write,
            ),
        }
    }

    /// Removes the sockets from the poller, closes them and reports the close. Call once the
    /// session [is closed](Session::is_closed), or when the server is dropped.
    pub(super) fn finish(mut self, poller: &Poller, observer: &mut dyn Observer, now: Instant) {
        let reason = self.closed.take().unwrap_or(CloseReason::Aborted);
        if reason == CloseReason::ClientReset {
            if let Backend::Connected(stream) = &self.backend {
                // The client aborted: the backend hears an abort too (a reset, as haproxy
                // sends), not an orderly end it could take for a complete request. It also
                // spares the kernel the FIN exchange and the TIME_WAIT entry of each such close.
                let _ = stream.set_linger(Some(std::time::Duration::ZERO));
            }
        }
        self.client_reg.clear(poller, self.client.as_fd());
        self.set_backend(poller, Backend::None);
        self.stats.duration = now - self.started;
        observer.closed(self.conn.peer_addr(), &reason, &self.stats);
    }

    /// Unregisters `finish`'s sockets without a report, for a server that is being dropped.
    pub(super) fn forget(mut self, poller: &Poller) {
        self.client_reg.clear(poller, self.client.as_fd());
        self.set_backend(poller, Backend::None);
    }

    // ------------------------------------------------------------ reading

    /// One read from the client into the scratch buffer; returns whether anything happened.
    fn read_client(&mut self, ctx: &mut Ctx<'_>, readable: &mut bool) -> bool {
        let capacity = self.conn.client_read_capacity().min(ctx.scratch.len());
        if capacity == 0 {
            return false;
        }
        let buf = &mut ctx.scratch[..capacity];
        match read_some(&self.client, buf, readable) {
            Got::Nothing => return false,
            Got::Eof => self.conn.handle_client_eof(ctx.now),
            Got::Failed => self.conn.handle_client_reset(ctx.now),
            Got::Bytes(n) => {
                self.stats.bytes_from_client += n as u64;
                let taken = self.conn.handle_client_data_mut(ctx.now, &mut buf[..n]);
                self.check_taken(ctx, "client", n, taken);
            }
        }
        true
    }

    /// One read from the backend into the scratch buffer; returns whether anything happened.
    fn read_backend(&mut self, ctx: &mut Ctx<'_>, readable: &mut bool) -> bool {
        let Backend::Connected(stream) = &self.backend else {
            return false;
        };
        let capacity = self.conn.backend_read_capacity().min(ctx.scratch.len());
        if capacity == 0 {
            return false;
        }
        let buf = &mut ctx.scratch[..capacity];
        match read_some(stream, buf, readable) {
            Got::Nothing => return false,
            Got::Eof => self.conn.handle_backend_eof(ctx.now),
            Got::Failed => self.conn.handle_backend_reset(ctx.now),
            Got::Bytes(n) => {
                self.stats.bytes_from_backend += n as u64;
                let taken = self.conn.handle_backend_data_mut(ctx.now, &mut buf[..n]);
                self.check_taken(ctx, "backend", n, taken);
            }
        }
        true
    }

    /// The `Conn` promised to take every byte within its read capacity; bytes it left would be
    /// lost, so the stream can no longer be trusted and the connection ends.
    fn check_taken(&mut self, ctx: &mut Ctx<'_>, side: &str, read: usize, taken: usize) {
        if taken < read {
            ctx.warn(WarningKind::Connection, || {
                format!(
                    "engine left {} of {read} {side} bytes; closing the connection",
                    read - taken
                )
            });
            self.conn.abort(ctx.now);
        }
    }

    // ------------------------------------------------------------ outputs

    /// Drains events and actions, writes what is pending to both sockets (optimistically: a
    /// socket with room takes the bytes now rather than after another wake), and drains again,
    /// since a write can make a shutdown or the close due. Returns whether any byte moved.
    fn flush(&mut self, ctx: &mut Ctx<'_>) -> bool {
        self.drain_outputs(ctx);
        if self.is_closed() {
            return false;
        }
        let mut progress = false;
        let want = self.conn.interest();
        if want.client_write {
            match self
                .conn
                .write_client(ctx.now, &mut SendNoSignal(SockRef::from(&self.client)))
            {
                Ok(n) => {
                    self.stats.bytes_to_client += n as u64;
                    progress |= n > 0;
                }
                Err(_) => self.conn.handle_client_reset(ctx.now),
            }
        }
        if let (true, Backend::Connected(stream)) = (want.backend_write, &self.backend) {
            match self
                .conn
                .write_backend(ctx.now, &mut SendNoSignal(SockRef::from(stream)))
            {
                Ok(n) => {
                    self.stats.bytes_to_backend += n as u64;
                    progress |= n > 0;
                }
                Err(_) => self.conn.handle_backend_reset(ctx.now),
            }
        }
        self.drain_outputs(ctx);
        progress
    }

    /// Events to the observer; actions carried out until none is left or the `Conn` closed.
    fn drain_outputs(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(event) = self.conn.poll_event() {
            // Events added later are of no interest to this driver.
            #[allow(irrefutable_let_patterns)]
            if let Event::HandshakeComplete(info) = event {
                ctx.observer
                    .handshake(self.conn.peer_addr(), &info, ctx.now - self.started);
            }
        }
        // Shutdowns wait for the end of the batch: one followed by the close is left to
        // close(2), which sends the same FIN (one call fewer for most connections, whose last
        // half-close and close come together). Nothing is written between, so the order of
        // bytes and FIN on the wire is the same.
        let (mut shut_backend, mut shut_client) = (false, false);
        while self.closed.is_none() {
            let Some(action) = self.conn.poll_action() else {
                break;
            };
            match action {
                Action::ConnectBackend => {
                    let first = ctx.endpoints.start();
                    self.connect_backend(ctx, first, 0);
                }
                Action::ShutdownBackendWrite => shut_backend = true,
                Action::ShutdownClientWrite => shut_client = true,
                Action::Close(reason) => self.closed = Some(reason),
            }
        }
        if self.closed.is_some() {
            return;
        }
        if let (true, Backend::Connected(stream)) = (shut_backend, &self.backend) {
            // An error means the backend is gone; its next read says so.
            let _ = stream.shutdown(Shutdown::Write);
        }
        if shut_client {
            let _ = self.client.shutdown(Shutdown::Write);
        }
    }

    // ------------------------------------------------------------ backend connect

    /// Tries the backend destinations from attempt `attempt` of a connection that started at
    /// `first` on, until one connects or is pending; when every destination has been tried,
    /// tells the `Conn` the connect failed.
    fn connect_backend(&mut self, ctx: &mut Ctx<'_>, first: usize, attempt: usize) {
        let count = ctx.endpoints.len();
        for attempt in attempt..count {
            let source = ctx.endpoints.source_for(first, attempt);
            let dest = ctx.endpoints.destination(first, attempt);
            match start_connect(dest, source, ctx.options.keepalive) {
                ConnectStart::Connected(stream) => {
                    self.set_backend(ctx.poller, Backend::Connected(stream));
                    self.conn.handle_backend_connected(ctx.now);
                    return;
                }
                ConnectStart::Pending(stream) => {
                    let give_up = self.attempt_share(ctx, count - attempt);
                    self.set_backend(
                        ctx.poller,
                        Backend::Connecting {
                            stream,
                            first,
                            attempt,
                            give_up,
                        },
                    );
                    return;
                }
                ConnectStart::Failed(e) => {
                    ctx.warn_attempt(first, attempt, format_args!("connect failed: {e}"));
                }
            }
        }
        self.set_backend(ctx.poller, Backend::None);
        self.conn.handle_backend_connect_failed(ctx.now);
    }

    /// The pending connect's socket reported readiness: connected, or on to the next address.
    fn finish_connecting(&mut self, ctx: &mut Ctx<'_>) {
        let backend = std::mem::replace(&mut self.backend, Backend::None);
        let Backend::Connecting {
            stream,
            first,
            attempt,
            give_up,
        } = backend
        else {
            self.backend = backend;
            return;
        };
        match finish_connect(&stream) {
            Ok(()) => {
                // Same socket, same registration: rearm switches it to the Conn's interest.
                self.backend = Backend::Connected(stream);
                self.conn.handle_backend_connected(ctx.now);
            }
            Err(e) => {
                // Put it back so that the retry unregisters it before closing it.
                self.backend = Backend::Connecting {
                    stream,
                    first,
                    attempt,
                    give_up,
                };
                ctx.warn_attempt(first, attempt, format_args!("connect failed: {e}"));
                self.connect_backend(ctx, first, attempt + 1);
            }
        }
        self.drain_outputs(ctx);
    }

    /// When an attempt with `remaining` addresses left (itself included) yields to the next: an
    /// equal share of the time left before the `Conn`'s connect deadline, so that one address
    /// that never answers cannot use up the time of those after it. The last address gets
    /// everything left (`None`).
    fn attempt_share(&self, ctx: &Ctx<'_>, remaining: usize) -> Option<Instant> {
        if remaining <= 1 {
            return None;
        }
        let deadline = self.conn.poll_timeout()?;
        let left = deadline.saturating_duration_since(ctx.now);
        Some(ctx.now + left / u32::try_from(remaining).unwrap_or(u32::MAX))
    }

    /// Replaces the backend socket, unregistering the old one before it closes.
    fn set_backend(&mut self, poller: &Poller, backend: Backend) {
        match &self.backend {
            Backend::None => {}
            Backend::Connecting { stream, .. } | Backend::Connected(stream) => {
                self.backend_reg.clear(poller, stream.as_fd());
            }
        }
        self.backend = backend;
    }
}
