//! The event loop: frontends' listeners, the stop channel, sessions and their deadlines on one
//! poller.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Endpoints;
use super::frontend::Frontend;
use super::gate::AcceptGate;
use super::poller::{Event, Events, Poller};
use super::ratelimit::{Backoff, WarningKind, Warnings};
use super::session::{Ctx, Ready, Session};
use super::sockets::{
    accept_nonblocking, classify_accept_error, defer_accept, fixed_local_addr, tune, AcceptFailure,
    Registration, ACCEPTED_INHERIT_TUNING,
};
use super::stop::{StopChannel, StopHandle, StopRequest};
use super::timers::Timers;
use super::{NoObserver, Observer, Options};
use crate::{Config, Conn, Instant};

/// Poller keys: the low two bits say what the key names, the rest is an index.
const TAG_LISTENER: usize = 0;
const TAG_STOP: usize = 1;
const TAG_CLIENT: usize = 2;
const TAG_BACKEND: usize = 3;

fn key(index: usize, tag: usize) -> usize {
    (index << 2) | tag
}

/// Most events taken from the poller per wake.
const EVENTS_PER_WAKE: usize = 1024;

/// When a session's deadline fires but it still reports one in the past, it is woken again no
/// sooner than this: a misbehaving deadline costs a little latency, never a spinning loop.
const MIN_TIMER_RETRY: Duration = Duration::from_millis(1);

/// Session table entries kept when the last session closes (see [`Slots::recycle`]).
const SLOTS_KEPT: usize = 256;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Stopped accepting; connections finish until the deadline.
    Draining {
        deadline: Instant,
    },
    /// `run` returned (or will): no listeners, no connections.
    Finished,
}

#[derive(Debug)]
struct Listener {
    socket: TcpListener,
    /// The configuration of connections accepted here.
    config: Arc<Config>,
    reg: Registration,
    /// The local address of every connection accepted here, when known without asking
    /// ([`fixed_local_addr`]).
    local: Option<SocketAddr>,
    /// Accepted sockets inherit the listener's TCP_NODELAY and keepalive, set once here.
    tuned: bool,
    /// An accept has found the queue empty since the listener was tuned. Until then an accepted
    /// socket may be one the kernel cloned from the listener before its options were set (a
    /// client that connected while the process was starting), so it is tuned itself.
    drained: bool,
    /// Connections arrive only with their first bytes ([`Options::defer_accept`]), so a new
    /// session reads at once instead of waiting for a wake.
    deferred: bool,
}

/// The sessions, by index. Freed indexes are reused only after the current batch of poller
/// events, so an event already fetched for a closed session cannot reach its successor.
#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Session>>,
    free: Vec<usize>,
    released: Vec<usize>,
    live: usize,
}

impl Slots {
    fn vacant(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        })
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Session> {
        self.entries.get_mut(index).and_then(Option::as_mut)
    }

    fn remove(&mut self, index: usize) -> Option<Session> {
        let session = self.entries.get_mut(index).and_then(Option::take)?;
        self.live -= 1;
        self.released.push(index);
        Some(session)
    }

    /// Makes the indexes freed during the last batch reusable. Once no session is left, a
    /// table grown by a spike of connections is given back (each entry is a whole session,
    /// near 2 KiB: 40 MB at 20,000), since nothing else would shrink it.
    fn recycle(&mut self) {
        self.free.append(&mut self.released);
        if self.live == 0 && self.entries.capacity() > SLOTS_KEPT {
            self.entries = Vec::new();
            self.free = Vec::new();
        }
    }
}

/// A single-threaded event loop running many [`Conn`]s over nonblocking sockets.
///
/// See the [module documentation](super) for what one wake does and how work is bounded.
pub struct Server {
    options: Options,
    endpoints: Endpoints,
    poller: Poller,
    listeners: Vec<Listener>,
    local_addrs: Vec<SocketAddr>,
    stop: Arc<StopChannel>,
    stop_reg: Registration,
    slots: Slots,
    timers: Timers,
    /// Due timer entries, gathered before any is handled (reused, bounded by the heap).
    due: Vec<(usize, u64)>,
    scratch: Box<[u8]>,
    observer: Box<dyn Observer>,
    warnings: Warnings,
    backoff: Backoff,
    epoch: std::time::Instant,
    /// When [`Observer::heartbeat`] is due next (with [`Options::heartbeat`]).
    next_heartbeat: Option<Instant>,
    phase: Phase,
    events: Option<Events>,
    /// What else decides whether to accept ([`Server::set_accept_gate`]), and when it asked to
    /// be asked again.
    gate: Option<Box<dyn AcceptGate>>,
    gate_recheck: Option<Instant>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs)
            .field("options", &self.options)
            .field("phase", &self.phase)
            .field("connections", &self.slots.live)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Takes already-bound listeners (set nonblocking by `new`) that all serve one configuration:
    /// shorthand for [`Server::with_frontends`] with `config` on every listener.
    ///
    /// Fails as [`Server::with_frontends`] does.
    pub fn new(
        config: Arc<Config>,
        listeners: Vec<TcpListener>,
        options: Options,
    ) -> io::Result<Server> {
        let frontends = listeners
            .into_iter()
            .map(|l| Frontend::new(l, Arc::clone(&config)))
            .collect();
        Server::with_frontends(frontends, options)
    }

    /// Takes frontends, each a bound listener (set nonblocking here) with the configuration its
    /// connections get.
    ///
    /// Fails with `InvalidInput` and a message saying what to fix when `options.backends` is
    /// empty, a backend path cannot be a socket address, a source address in
    /// `options.source_addrs` cannot be bound (it is not an address of this host), or a TCP
    /// backend has no source address of its family; fails too if the poller or the stop channel
    /// cannot be made.
    pub fn with_frontends(frontends: Vec<Frontend>, options: Options) -> io::Result<Server> {
        let endpoints = Endpoints::new(&options.backends, &options.source_addrs)?;
        let poller = Poller::new()?;
        let mut local_addrs = Vec::with_capacity(frontends.len());
        let mut listeners = Vec::with_capacity(frontends.len());
        for Frontend { listener, config } in frontends {
            listener.set_nonblocking(true)?;
            local_addrs.push(listener.local_addr()?);
            // Where accepted sockets inherit them, the options are set once, on the listener.
            let tuned = ACCEPTED_INHERIT_TUNING && tune(&listener, options.keepalive);
            let deferred = match options.defer_accept {
                Some(wait) if !config.client_mode() => defer_accept(&listener, wait),
                _ => false,
            };
            listeners.push(Listener {
                local: fixed_local_addr(&listener),
                socket: listener,
                config,
                reg: Registration::default(),
                tuned,
                drained: false,
                deferred,
            });
        }
        let stop = StopChannel::new()?;
        let mut server = Server {
            scratch: vec![0u8; options.scratch_size.max(1)].into_boxed_slice(),
            options,
            endpoints,
            poller,
            listeners,
            local_addrs,
            stop,
            stop_reg: Registration::default(),
            slots: Slots::default(),
            timers: Timers::default(),
            due: Vec::new(),
            observer: Box::new(NoObserver),
            warnings: Warnings::default(),
            backoff: Backoff::default(),
            epoch: std::time::Instant::now(),
            // The first heartbeat goes out as the loop starts.
            next_heartbeat: None,
            phase: Phase::Running,
            events: None,
            gate: None,
            gate_recheck: None,
        };
        server.stop_reg.update(
            &server.poller,
            server.stop.reader(),
            key(0, TAG_STOP),
            true,
            false,
        )?;
        for (i, listener) in server.listeners.iter_mut().enumerate() {
            listener.reg.update(
                &server.poller,
                listener.socket.as_fd(),
                key(i, TAG_LISTENER),
                true,
                false,
            )?;
        }
        Ok(server)
    }

    /// Convenience: bind one address (SO_REUSEADDR, backlog 1024) and build a server.
    pub fn bind(config: Arc<Config>, addr: SocketAddr, options: Options) -> io::Result<Server> {
        Server::with_frontends(vec![Frontend::bind(addr, config)?], options)
    }

    /// Replaces the observer that hears about handshakes, closes and warnings.
    pub fn set_observer(&mut self, observer: Box<dyn Observer>) {
        self.observer = observer;
    }

    /// Adds a gate that may hold accepting off beyond the server's own limits (see
    /// [`AcceptGate`]); it replaces any earlier one.
    pub fn set_accept_gate(&mut self, gate: Box<dyn AcceptGate>) {
        self.gate = Some(gate);
    }

    /// The listeners' local addresses (useful after binding port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local_addrs.clone()
    }

    /// A handle that stops `run` from another thread, a signal handler, or C.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(self.stop.clone())
    }

    /// Currently open connections.
    pub fn connection_count(&self) -> usize {
        self.slots.live
    }

    /// Runs until stopped: graceful stop = stop accepting, let in-flight connections finish until
    /// drain_timeout, abort the rest, return Ok(()). Returns Err only for unrecoverable poller errors.
    ///
    /// Once `run` has returned, the listeners are closed and a later call returns at once.
    ///
    /// Before it accepts anything, `run` seeds the process's random generator (a few tens of
    /// milliseconds in a freshly forked process), so that the first client does not wait for it.
    pub fn run(&mut self) -> io::Result<()> {
        warm_up_randomness();
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(EVENTS_PER_WAKE));
        let result = self.run_loop(&mut events);
        self.events = Some(events);
        result
    }

    fn run_loop(&mut self, events: &mut Events) -> io::Result<()> {
        loop {
            let now = self.now();
            self.beat(now);
            self.fire_timers(now);
            match self.phase {
                Phase::Finished => return Ok(()),
                Phase::Draining { deadline } => {
                    if self.slots.live == 0 || now >= deadline {
                        self.finish(now);
                        return Ok(());
                    }
                }
                Phase::Running => {}
            }
            self.update_accepting(now);
            let timeout = self.wake_deadline(now).map(|d| d - now);
            if let Err(e) = self.poller.wait(events, timeout) {
                self.finish(self.now());
                return Err(e);
            }
            let now = self.now();
            for (i, event) in events.iter().enumerate() {
                // A long wake (a flood of handshakes) still shows signs of life.
                if i % 64 == 63 {
                    let now = self.now();
                    self.beat(now);
                }
                self.dispatch(event, now);
            }
            self.slots.recycle();
            let slots = &self.slots;
            self.timers.compact(slots.live, |k| {
                slots
                    .entries
                    .get(k)
                    .and_then(Option::as_ref)
                    .map(|s| &s.timer)
            });
        }
    }

    /// The driver's clock: time since the server was made, as the engine counts it.
    fn now(&self) -> Instant {
        Instant::from_std(self.epoch, std::time::Instant::now())
    }

    /// Reports a heartbeat when one is due, and schedules the next.
    fn beat(&mut self, now: Instant) {
        let Some(interval) = self.options.heartbeat else {
            return;
        };
        if self.next_heartbeat.is_none_or(|t| now >= t) {
            self.observer.heartbeat();
            self.next_heartbeat = Some(now + interval);
        }
    }

    /// The earliest of: a connection deadline, the end of an accept pause, the drain deadline,
    /// the next heartbeat, the accept gate's next look.
    fn wake_deadline(&self, now: Instant) -> Option<Instant> {
        let candidates = [
            self.next_heartbeat,
            self.timers.next_deadline(),
            self.backoff.active_until(now),
            self.gate_recheck,
            match self.phase {
                Phase::Draining { deadline } => Some(deadline),
                _ => None,
            },
        ];
        candidates.into_iter().flatten().min()
    }

    fn dispatch(&mut self, event: Event, now: Instant) {
        if self.phase == Phase::Finished {
            return;
        }
        let index = event.key >> 2;
        match event.key & 3 {
            TAG_STOP => match self.stop.drain() {
                StopRequest::None => {}
                StopRequest::Graceful => self.begin_drain(now),
                StopRequest::Now => self.finish(now),
            },
            TAG_LISTENER => {
                if event.readable {
                    self.accept(index, now);
                }
            }
            TAG_CLIENT => {
                let ready = Ready {
                    client_read: event.readable,
                    ..Ready::default()
                };
                self.with_session(index, now, false, |s, ctx| s.drive(ctx, ready));
            }
            _ => {
                let ready = Ready {
                    backend_read: event.readable,
                    backend_any: true,
                    ..Ready::default()
                };
                self.with_session(index, now, false, |s, ctx| s.drive(ctx, ready));
            }
        }
    }

    /// Runs `f` on a session, then re-arms its sockets and deadline, or closes it.
    fn with_session(
        &mut self,
        index: usize,
        now: Instant,
        from_timer: bool,
        f: impl FnOnce(&mut Session, &mut Ctx<'_>),
    ) {
        let Some(session) = self.slots.entries.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let mut ctx = Ctx {
            now,
            poller: &self.poller,
            scratch: &mut self.scratch,
            options: &self.options,
            endpoints: &mut self.endpoints,
            observer: &mut *self.observer,
            warnings: &mut self.warnings,
        };
        f(session, &mut ctx);
        session.rearm(&mut ctx);
        if !session.is_closed() {
            let mut deadline = session.deadline();
            if from_timer {
                deadline = deadline.map(|d| d.max(now + MIN_TIMER_RETRY));
            }
            self.timers.schedule(index, &mut session.timer, deadline);
            return;
        }
        if let Some(session) = self.slots.remove(index) {
            session.finish(&self.poller, &mut *self.observer, now);
        }
    }

    /// Handles every deadline that has passed.
    fn fire_timers(&mut self, now: Instant) {
        // Gathered first: a session rescheduled while handling is not handled twice.
        while let Some(entry) = self.timers.pop_due(now) {
            self.due.push(entry);
        }
        let mut due = std::mem::take(&mut self.due);
        for (index, generation) in due.drain(..) {
            let live = self
                .slots
                .get_mut(index)
                .is_some_and(|s| s.timer.fire(generation));
            if live {
                self.with_session(index, now, true, |s, ctx| s.on_timer(ctx));
            }
        }
        self.due = due;
    }

    // ------------------------------------------------------------ accepting

    /// Whether new connections may be accepted now.
    fn may_accept(&self, now: Instant) -> bool {
        self.phase == Phase::Running
            && self.backoff.active_until(now).is_none()
            && self
                .options
                .max_connections
                .is_none_or(|max| self.slots.live < max)
    }

    /// [`Server::may_accept`], then the accept gate, if there is one.
    fn accepting(&mut self, now: Instant) -> bool {
        let able = self.may_accept(now);
        let Some(gate) = &mut self.gate else {
            return able;
        };
        let verdict = gate.check(self.slots.live, able);
        // Never sooner than a millisecond: a gate cannot make the loop spin.
        self.gate_recheck = verdict.recheck.map(|d| now + d.max(MIN_TIMER_RETRY));
        able && verdict.accept
    }

    /// Watches the listeners for readability exactly while accepting is allowed.
    fn update_accepting(&mut self, now: Instant) {
        let on = self.accepting(now);
        for (i, listener) in self.listeners.iter_mut().enumerate() {
            let result = listener.reg.update(
                &self.poller,
                listener.socket.as_fd(),
                key(i, TAG_LISTENER),
                on,
                false,
            );
            if let Err(e) = result {
                if let Some(text) = self.warnings.check(WarningKind::Accept, now, || {
                    format!("cannot watch a listening socket: {e}")
                }) {
                    self.observer.warning(&text);
                }
            }
        }
    }

    /// Accepts up to `accept_batch` connections from listener `index`.
    fn accept(&mut self, index: usize, now: Instant) {
        for _ in 0..self.options.accept_batch.max(1) {
            if !self.accepting(now) {
                break;
            }
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match accept_nonblocking(&listener.socket) {
                Ok((stream, peer)) => {
                    self.backoff.reset();
                    let config = Arc::clone(&listener.config);
                    let (local, tuned) = (listener.local, listener.tuned && listener.drained);
                    let arrived = listener.deferred;
                    self.add_session(config, stream, peer, (local, tuned, arrived), now);
                }
                Err(e) => match classify_accept_error(&e) {
                    AcceptFailure::Empty => {
                        if let Some(listener) = self.listeners.get_mut(index) {
                            listener.drained = true;
                        }
                        break;
                    }
                    AcceptFailure::Skip => {}
                    AcceptFailure::Exhausted => {
                        let pause = self.backoff.trigger(now);
                        self.observer.accept_paused(pause);
                        self.warn(WarningKind::Accept, now, || {
                            format!(
                                "accept failed: {e}; not accepting for {} ms",
                                pause.as_millis()
                            )
                        });
                        break;
                    }
                },
            }
        }
        // At the cap, or paused: stop watching the listeners before the next wait.
        self.update_accepting(now);
    }

    /// Starts a session for a socket just accepted (nonblocking already). `local` is its local
    /// address if the listener's tells it; `tuned`: it inherited the listener's options;
    /// `arrived`: its first bytes are likely there already (a deferred accept), so it is read
    /// now rather than after the next wait.
    fn add_session(
        &mut self,
        config: Arc<Config>,
        stream: TcpStream,
        peer: SocketAddr,
        (local, tuned, arrived): (Option<SocketAddr>, bool, bool),
        now: Instant,
    ) {
        if !tuned {
            tune(&stream, self.options.keepalive);
        }
        // The accepted socket's own address: the PROXY header's destination. Failing means the
        // peer is already gone.
        let local = match local {
            Some(local) => local,
            None => match stream.local_addr() {
                Ok(local) => local,
                Err(_) => return,
            },
        };
        let conn = match Conn::new(config, now, peer, local) {
            Ok(conn) => conn,
            Err(e) => {
                self.warn(WarningKind::Connection, now, || {
                    format!("cannot start a TLS session: {e}")
                });
                return;
            }
        };
        let index = self.slots.vacant();
        let keys = (key(index, TAG_CLIENT), key(index, TAG_BACKEND));
        self.slots.entries[index] = Some(Session::new(conn, stream, keys, now));
        self.slots.live += 1;
        self.observer.accepted(peer);
        // Registers the client socket for the handshake and schedules the handshake deadline;
        // with the first bytes already there, answers them in the same wake.
        let ready = Ready {
            client_read: arrived,
            ..Ready::default()
        };
        self.with_session(index, now, false, |s, ctx| s.drive(ctx, ready));
    }

    fn warn(&mut self, kind: WarningKind, now: Instant, message: impl FnOnce() -> String) {
        if let Some(text) = self.warnings.check(kind, now, message) {
            self.observer.warning(&text);
        }
    }

    // ------------------------------------------------------------ stopping

    /// Graceful stop: close the listeners; connections run on until the drain deadline.
    fn begin_drain(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        self.close_listeners();
        self.phase = Phase::Draining {
            deadline: now + self.options.drain_timeout,
        };
    }

    /// Aborts every connection and closes the listeners.
    fn finish(&mut self, now: Instant) {
        self.close_listeners();
        for index in 0..self.slots.entries.len() {
            self.with_session(index, now, false, |s, ctx| s.abort(ctx));
        }
        self.slots.recycle();
        self.phase = Phase::Finished;
    }

    fn close_listeners(&mut self) {
        for mut listener in self.listeners.drain(..) {
            listener.reg.clear(&self.poller, listener.socket.as_fd());
        }
    }
}

/// Draws once from the TLS library's random generator, so that the first client of a new process
/// does not pay for seeding it.
///
/// aws-lc seeds its generator from CPU-jitter entropy once per process and again in every child
/// after fork (a child must not share its parent's state), at the first draw: 20-30 ms on an idle
/// machine, more while other processes compete for the CPU, as a daemon's freshly forked workers
/// do. Drawing here, before the loop accepts anything, moves that cost out of the first handshake
/// (see docs/architecture.md for the measurement). The seed is per process, so the thread that
/// runs the loop is as good as any; a failure here would show again in the first handshake, where
/// it is reported properly.
fn warm_up_randomness() {
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
}

impl Drop for Server {
    fn drop(&mut self) {
        // Keeps the poller's contract: every source leaves the poller before it is closed.
        self.close_listeners();
        for entry in &mut self.slots.entries {
            if let Some(session) = entry.take() {
                session.forget(&self.poller);
            }
        }
        self.stop_reg.clear(&self.poller, self.stop.reader());
    }
}
