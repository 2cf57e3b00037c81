//! The parent process: keeps its privileges and its root directory (so a reload can read what
//! start-up read), forks the workers, replaces the ones that die (with a back-off, so a
//! crash loop cannot spin), reloads the configuration on SIGHUP, and on SIGTERM/SIGINT drains
//! the workers and exits 0.
//!
//! A reload builds the configuration anew (certificates, cipher list, …) and, only if that
//! succeeds, starts a new generation of workers with it on the same listening sockets; the old
//! workers get SIGTERM, stop accepting, and finish their connections within the drain timeout.
//! No connection is dropped. If the new configuration fails, the old workers keep serving and
//! the error is logged.
//!
//! Even with `-n 1` the parent forks one worker rather than serving in-process: a crash in a
//! worker then costs only its connections, the process tree survives, and one code path serves
//! every worker count.
//!
//! A watchdog (`--worker-timeout`) finds workers whose event loop has stopped: each worker's loop
//! stores the time in its cell of a shared memory board (`sys::Heartbeats`) a few times per
//! period; the parent looks every half second and kills a worker whose cell is older than the
//! timeout, which the usual crash path then replaces.
//!
//! Signals reach the loop through a self-pipe ([`Signals`], installed at the start of `run`): the
//! handlers write the signal number, the loop blocks in poll(2) on the read end (and on the
//! workers' log pipe) with a timeout set by the next restart or kill deadline.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use crate::balance;
use crate::log;
use crate::metrics;
use crate::notify::Announcer;
use crate::refresh::BackendWatch;
use crate::setup::Privileges;
use crate::signals::Signals;
use crate::sys;
use crate::worker::{self, WorkerSetup};

/// A worker that lived at least this long is considered healthy: its replacement starts at once.
const HEALTHY_LIFETIME: Duration = Duration::from_secs(10);
/// The first delay before restarting a worker that died young; doubled per early death.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest delay between restarts of a crash-looping worker.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long workers get beyond the drain timeout before they are killed.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// One worker position (`-n` of them).
#[derive(Debug)]
struct Slot {
    pid: Option<i32>,
    started: Instant,
    /// When to start a replacement (set while the slot is empty).
    restart_at: Option<Instant>,
    backoff: Duration,
    /// The watchdog killed this worker; it is reported once and waited for.
    wedged: bool,
    /// Its block of the metrics board (`None`: it counts into the shared overflow block).
    block: Option<usize>,
    /// When it was forked ([`sys::monotonic_millis`]): a beat after this says it serves.
    spawned_ms: u64,
}

/// The parent's watchdog: the board the workers beat on, and how long a silence it tolerates.
#[derive(Debug)]
pub(crate) struct Watchdog {
    board: std::sync::Arc<sys::Heartbeats>,
    timeout: Duration,
    /// When the parent last looked ([`sys::monotonic_millis`]).
    last_look: u64,
    /// When the parent last came back from a pause of its own (a stopped or frozen process
    /// tree): silence before then is not the workers' fault.
    resumed_at: u64,
}

impl Watchdog {
    /// A board of `cells` cells: one per worker position of the metrics board, so a worker's
    /// block there is its cell here (see [`BLOCKS_PER_WORKER`]).
    pub(crate) fn new(cells: usize, timeout: Duration) -> std::io::Result<Watchdog> {
        let now = sys::monotonic_millis();
        Ok(Watchdog {
            board: std::sync::Arc::new(sys::Heartbeats::new(cells)?),
            timeout,
            last_look: now,
            resumed_at: now,
        })
    }
}

/// How often the parent looks at the board.
const WATCHDOG_CHECK: Duration = Duration::from_millis(500);

/// Board positions per configured worker: every live worker, draining ones included, holds
/// one position of its own (its metrics block and its heartbeat cell) from fork to reap, so
/// reloads in quick succession never make two workers share one. Beyond that many, a worker
/// counts into the overflow block and the watchdog does not watch it.
pub(crate) const BLOCKS_PER_WORKER: usize = 4;
/// A worker whose loop beat this recently is alive, for the service manager's watchdog (workers
/// beat at least once a second).
const ALIVE_WITHIN_MS: u64 = 3_000;

/// Builds a fresh worker configuration (on SIGHUP); errors are one-line messages.
pub(crate) type Reload = Box<dyn Fn() -> Result<WorkerSetup, String>>;

/// A worker of an earlier generation, draining after a reload.
#[derive(Debug)]
struct Retired {
    pid: i32,
    /// Its block of the metrics board.
    block: Option<usize>,
    /// When it is killed if it has not finished by then.
    kill_at: Instant,
}

/// What the supervisor serves besides its workers: signals and its workers' log lines (which
/// wake it), the service manager's protocol, and the metrics board the workers count into,
/// with its endpoint.
#[derive(Debug)]
pub(crate) struct Inputs {
    pub(crate) signals: Signals,
    pub(crate) log: log::Collector,
    pub(crate) announcer: Announcer,
    pub(crate) board: metrics::Board,
    pub(crate) endpoint: Option<metrics::Endpoint>,
    /// Where workers sharing a listening socket publish their loads (`None` with one socket
    /// per worker, or one worker).
    pub(crate) loads: Option<balance::Loads>,
}

/// The supervisor's state.
pub(crate) struct Supervisor {
    /// The self-pipe the signal handlers write into. `None` only in a freshly forked child,
    /// which closes its copy.
    signals: Option<Signals>,
    slots: Vec<Slot>,
    /// One group per frontend: one listener shared by all workers, or (with `--reuseport`) one
    /// per slot.
    listeners: Vec<Vec<TcpListener>>,
    setup: WorkerSetup,
    reload: Reload,
    /// Workers of earlier generations still draining.
    retired: Vec<Retired>,
    watchdog: Option<Watchdog>,
    /// What each worker drops to after fork (the parent keeps its own).
    privileges: Privileges,
    /// The read end of the workers' log pipe (and the write end each new worker inherits).
    /// `None` only in a freshly forked child, which takes it.
    collector: Option<log::Collector>,
    /// What the service manager hears (readiness, reload, stop, watchdog).
    announcer: Announcer,
    /// The metrics board every worker counts into, whether or not it is served.
    board: metrics::Board,
    /// Blocks of the board no live worker uses.
    free_blocks: Vec<usize>,
    /// The `--metrics` endpoint, served from this loop.
    endpoint: Option<metrics::Endpoint>,
    /// `backend-refresh`: how often, the watch, and when next.
    refresh: Option<(Duration, BackendWatch, Instant)>,
    /// The workers' loads, by board position, for an even spread over a shared socket.
    loads: Option<balance::Loads>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("slots", &self.slots)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Prepares `workers` slots; nothing is forked until [`Supervisor::run`].
    pub(crate) fn new(
        workers: usize,
        listeners: Vec<Vec<TcpListener>>,
        setup: WorkerSetup,
        reload: Reload,
        watchdog: Option<Watchdog>,
        privileges: Privileges,
        inputs: Inputs,
    ) -> Supervisor {
        let Inputs {
            signals,
            log,
            announcer,
            board,
            endpoint,
            loads,
        } = inputs;
        let now = Instant::now();
        Supervisor {
            signals: Some(signals),
            slots: (0..workers)
                .map(|_| Slot {
                    pid: None,
                    started: now,
                    restart_at: Some(now),
                    backoff: Duration::ZERO,
                    wedged: false,
                    block: None,
                    spawned_ms: 0,
                })
                .collect(),
            listeners,
            setup,
            reload,
            retired: Vec::new(),
            watchdog,
            privileges,
            collector: Some(log),
            free_blocks: (0..board.blocks()).rev().collect(),
            announcer,
            board,
            endpoint,
            refresh: None,
            loads,
        }
    }

    /// Where `--metrics` is served, if it is.
    pub(crate) fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.endpoint.as_ref().and_then(|e| e.local_addr().ok())
    }

    /// Resolves the backend again every `every`; a changed set of addresses reloads as SIGHUP
    /// does (`backend-refresh`).
    pub(crate) fn refresh_backend(&mut self, every: Duration, watch: BackendWatch) {
        self.refresh = Some((every, watch, Instant::now() + every));
    }

    /// Supervises until told to stop; returns the process exit status.
    pub(crate) fn run(mut self) -> i32 {
        let mut stop_deadline: Option<Instant> = None;
        let mut killed = false;
        loop {
            let now = Instant::now();
            if stop_deadline.is_none() {
                for index in 0..self.slots.len() {
                    if self.slots[index].restart_at.is_some_and(|t| t <= now) {
                        self.spawn(index);
                    }
                }
            }
            let watch =
                (self.watchdog.is_some() && stop_deadline.is_none()).then(|| now + WATCHDOG_CHECK);
            let next = match stop_deadline {
                Some(deadline) => Some(deadline),
                None => self
                    .slots
                    .iter()
                    .filter_map(|s| s.restart_at)
                    .chain(self.retired.iter().map(|r| r.kill_at))
                    .chain(watch)
                    .chain(self.announcer.next_wake(now))
                    .chain(self.refresh.as_ref().map(|r| r.2))
                    .min(),
            };
            let next = next
                .into_iter()
                .chain(
                    self.endpoint
                        .as_ref()
                        .and_then(metrics::Endpoint::next_deadline),
                )
                .min();
            let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            let Some(signals) = &self.signals else {
                return 1;
            };
            let mut fds = vec![(signals.raw_fd(), false)];
            fds.extend(self.collector.as_ref().map(|c| (c.raw_fd(), false)));
            if let Some(endpoint) = &self.endpoint {
                fds.extend(endpoint.interest());
            }
            if let Err(e) = sys::wait_any(&fds, timeout) {
                log::error(&format!("waiting for signals failed: {e}"));
                return 1;
            }
            self.drain_log();
            let signals = self.signals.as_mut().map(Signals::take).unwrap_or_default();
            let stop = signals.stop;
            if signals.hangup || signals.reopen {
                // logrotate's usual postrotate is a SIGHUP (hitch's) or SIGUSR1.
                log::reopen();
            }
            self.reap(stop_deadline.is_some());
            // A due backend-refresh that finds new addresses reloads as SIGHUP does.
            if !stop && stop_deadline.is_none() && (signals.hangup || self.backend_changed()) {
                self.reload();
            }
            self.serve_metrics();
            self.kill_overdue_retired();
            if stop_deadline.is_none() {
                self.kill_wedged();
                let (serving, alive) = (self.serving(), self.alive());
                let board = &self.board;
                let workers = self.slots.len();
                self.announcer
                    .tick(Instant::now(), serving, alive, || board.status(workers));
            }
            if stop && stop_deadline.is_none() {
                let deadline = Instant::now() + self.setup.options.drain_timeout + STOP_MARGIN;
                stop_deadline = Some(deadline);
                self.announcer.stopping();
                log::info("stopping: draining workers");
                // Close our copies of the listeners: once the workers close theirs, new clients
                // are refused at once instead of waiting in a backlog nobody will accept from.
                self.listeners.clear();
                for slot in &mut self.slots {
                    slot.restart_at = None;
                    if let Some(pid) = slot.pid {
                        let _ = sys::kill(pid, sys::SIGTERM);
                    }
                }
            }
            if let Some(deadline) = stop_deadline {
                if self.slots.iter().all(|s| s.pid.is_none()) && self.retired.is_empty() {
                    // The workers' last lines were written before they exited.
                    self.drain_log();
                    log::info("stopped");
                    return 0;
                }
                if Instant::now() >= deadline {
                    if killed {
                        // SIGKILL cannot be refused; a child still not reaped is beyond help.
                        log::error("workers did not exit after SIGKILL; giving up");
                        return 1;
                    }
                    log::warning("workers did not drain in time; killing them");
                    let old = self.retired.iter().map(|r| r.pid);
                    for pid in self.slots.iter().filter_map(|s| s.pid).chain(old) {
                        let _ = sys::kill(pid, sys::SIGKILL);
                    }
                    killed = true;
                    stop_deadline = Some(Instant::now() + STOP_MARGIN);
                }
            }
        }
    }

    /// Whether a due `backend-refresh` found the backend's addresses changed.
    fn backend_changed(&mut self) -> bool {
        let Some((every, watch, at)) = &mut self.refresh else {
            return false;
        };
        if *at > Instant::now() {
            return false;
        }
        *at = Instant::now() + *every;
        watch.changed()
    }

    /// SIGHUP: a new generation of workers with a freshly built configuration, the old one
    /// draining; or, if the configuration does not build, nothing changes.
    fn reload(&mut self) {
        self.announcer.reloading();
        let setup = match (self.reload)() {
            Ok(setup) => setup,
            Err(e) => {
                log::error(&format!(
                    "reload failed, still serving the previous configuration: {e}"
                ));
                self.board.reloaded(false);
                self.announcer.reload_failed(&e);
                return;
            }
        };
        self.board.reloaded(true);
        self.announcer.reloaded();
        self.setup = setup;
        let kill_at = Instant::now() + self.setup.options.drain_timeout + STOP_MARGIN;
        let mut retiring = 0;
        for slot in &mut self.slots {
            if let Some(pid) = slot.pid.take() {
                let _ = sys::kill(pid, sys::SIGTERM);
                let block = slot.block.take();
                self.retired.push(Retired {
                    pid,
                    block,
                    kill_at,
                });
                retiring += 1;
            }
            // A new worker at once, even for a slot that was waiting out a back-off: the
            // configuration it failed with is gone.
            slot.restart_at = Some(Instant::now());
            slot.backoff = Duration::ZERO;
        }
        log::info(&format!(
            "reloaded the configuration: starting new workers, {retiring} old worker{} draining",
            if retiring == 1 { "" } else { "s" }
        ));
    }

    /// Kills every worker whose loop has shown no sign of life for the watchdog's timeout (a
    /// worker stopped by SIGSTOP, or stuck): it is then reaped and replaced like a crashed one.
    ///
    /// Silence is counted from the parent's own last pause at most: when the whole tree was
    /// stopped (Ctrl-Z, `kill -STOP` of the group, a cgroup freezer) the parent may wake first
    /// and find every cell old, though no worker is at fault.
    fn kill_wedged(&mut self) {
        let slots = self.slots.len();
        let Some(watchdog) = &mut self.watchdog else {
            return;
        };
        let now = sys::monotonic_millis();
        let looked_ms = u64::try_from(WATCHDOG_CHECK.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(watchdog.last_look) > 4 * looked_ms {
            // The parent did not run for several checks: it was paused too.
            watchdog.resumed_at = now;
        }
        watchdog.last_look = now;
        let limit = u64::try_from(watchdog.timeout.as_millis()).unwrap_or(u64::MAX);
        for index in 0..slots {
            let slot = &mut self.slots[index];
            let (Some(pid), Some(cell)) = (slot.pid, slot.block) else {
                continue;
            };
            if slot.wedged {
                continue;
            }
            let since = watchdog.board.last(cell).max(watchdog.resumed_at);
            let silent = now.saturating_sub(since);
            if silent > limit {
                log::warning(&format!(
                    "worker {index} (pid {pid}) has shown no sign of life for {:.1} s; killing it",
                    silent as f64 / 1000.0
                ));
                let _ = sys::kill(pid, sys::SIGKILL);
                slot.wedged = true;
            }
        }
    }

    /// Kills workers of earlier generations that outlived their drain.
    fn kill_overdue_retired(&mut self) {
        let now = Instant::now();
        for old in self.retired.iter_mut().filter(|r| r.kill_at <= now) {
            log::warning(&format!(
                "old worker (pid {}) did not drain in time; killing it",
                old.pid
            ));
            let _ = sys::kill(old.pid, sys::SIGKILL);
            // Reaped later; give SIGKILL its margin before trying again.
            old.kill_at = now + STOP_MARGIN;
        }
    }

    /// Forwards the workers' waiting log lines.
    fn drain_log(&mut self) {
        if let Some(collector) = &mut self.collector {
            collector.drain();
        }
    }

    /// Collects every exited child and schedules replacements (unless stopping).
    fn reap(&mut self, stopping: bool) {
        loop {
            let (pid, raw) = match sys::reap_one() {
                Ok(Some(done)) => done,
                Ok(None) => return,
                Err(e) => {
                    log::error(&format!("waitpid failed: {e}"));
                    return;
                }
            };
            let status = std::process::ExitStatus::from_raw(raw);
            if let Some(i) = self.retired.iter().position(|r| r.pid == pid) {
                let old = self.retired.swap_remove(i);
                self.release(old.block);
                log::info(&format!(
                    "old worker (pid {pid}) finished draining ({status})"
                ));
                continue;
            }
            let Some((index, slot)) = self
                .slots
                .iter_mut()
                .enumerate()
                .find(|(_, s)| s.pid == Some(pid))
            else {
                continue; // not a worker (cannot happen: we fork nothing else)
            };
            slot.pid = None;
            let block = slot.block.take();
            if stopping {
                if status.success() {
                    log::info(&format!("worker {index} (pid {pid}) exited"));
                } else {
                    log::warning(&format!("worker {index} (pid {pid}) ended: {status}"));
                }
                self.release(block);
                continue;
            }
            let lived = slot.started.elapsed();
            slot.backoff = if lived >= HEALTHY_LIFETIME {
                Duration::ZERO
            } else {
                (slot.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF)
            };
            slot.restart_at = Some(Instant::now() + slot.backoff);
            log::warning(&format!(
                "worker {index} (pid {pid}) died ({status}) after {:.1} s; restarting in {:.1} s",
                lived.as_secs_f64(),
                slot.backoff.as_secs_f64()
            ));
            self.release(block);
            self.board.restarted();
        }
    }

    /// Forks the worker for `index`. Returns in the parent only: the child runs the worker and
    /// exits without unwinding into the parent's stack (whose destructors, such as the pidfile's,
    /// belong to the parent).
    fn spawn(&mut self, index: usize) {
        let parent = std::process::id() as i32;
        // The worker's position on the boards, its own until it is reaped. Out of positions
        // (reloads faster than drains): it counts into the overflow block, unwatched.
        let block = self.free_blocks.pop();
        let counters = self.board.worker(block.unwrap_or(self.board.blocks()));
        // A fresh worker starts with a fresh beat: the watchdog counts from its birth.
        let heartbeat = self
            .watchdog
            .as_ref()
            .zip(block)
            .map(|(w, cell)| worker::Heartbeat {
                board: w.board.clone(),
                cell,
            });
        // Its load cell starts empty: a previous owner's count must not linger.
        let gate = self.loads.as_ref().zip(block).map(|(loads, cell)| {
            loads.clear(cell);
            loads.gate(cell)
        });
        let spawned_ms = sys::monotonic_millis();
        if let Some(h) = &heartbeat {
            // A millisecond early, so the worker's first beat, even in the same millisecond,
            // shows it started its loop.
            h.board.beat(h.cell, spawned_ms.saturating_sub(1));
        }
        let mask = match sys::block_signals() {
            Ok(mask) => mask,
            Err(e) => {
                self.retry_later(index, &format!("cannot block signals: {e}"));
                return;
            }
        };
        match sys::fork() {
            Err(e) => {
                let _ = sys::unblock_signals(&mask);
                self.release(block);
                self.retry_later(index, &format!("cannot fork worker {index}: {e}"));
            }
            Ok(sys::Forked::Parent(pid)) => {
                let _ = sys::unblock_signals(&mask);
                let slot = &mut self.slots[index];
                slot.pid = Some(pid);
                slot.started = Instant::now();
                slot.restart_at = None;
                slot.wedged = false;
                slot.block = block;
                slot.spawned_ms = spawned_ms;
                log::info(&format!("worker {index} started (pid {pid})"));
            }
            Ok(sys::Forked::Child) => {
                let groups = std::mem::take(&mut self.listeners);
                let slots = self.slots.len();
                // Still one group per frontend: the worker pairs each with its configuration.
                let mine = groups
                    .into_iter()
                    .map(|group| {
                        if group.len() == slots && slots > 1 {
                            // --reuseport: keep this slot's socket; dropping the rest closes
                            // our copies.
                            group.into_iter().nth(index).into_iter().collect()
                        } else {
                            group
                        }
                    })
                    .collect();
                let setup = self.setup.clone();
                // The parent's self-pipe is not ours to keep.
                drop(self.signals.take());
                // Nor its metrics listener and scrapes: a scrape must end when the parent
                // closes it.
                drop(self.endpoint.take());
                // From here on this process's lines go to the supervisor.
                if let Some(collector) = self.collector.take() {
                    collector.into_worker();
                }
                std::process::exit(worker::run(
                    setup,
                    mine,
                    parent,
                    &mask,
                    heartbeat,
                    &self.privileges,
                    Some(counters),
                    gate,
                ))
            }
        }
    }

    /// Folds a finished worker's block into the board's totals and frees it.
    fn release(&mut self, block: Option<usize>) {
        if let Some(block) = block {
            // A dead worker's load must not hold the others back.
            if let Some(loads) = &self.loads {
                loads.clear(block);
            }
            self.board.fold(block);
            self.free_blocks.push(block);
        }
    }

    /// Whether every worker position has a worker that has started its event loop (it beat
    /// after it was forked). Without the watchdog's board, a forked worker counts as serving.
    fn serving(&self) -> bool {
        self.slots.iter().all(|slot| {
            slot.pid.is_some()
                && self
                    .watchdog
                    .as_ref()
                    .zip(slot.block)
                    .is_none_or(|(w, cell)| w.board.last(cell) >= slot.spawned_ms)
        })
    }

    /// Whether every worker position has a live worker whose loop beat within the last few
    /// seconds: what the service manager's watchdog is told.
    fn alive(&self) -> bool {
        let now = sys::monotonic_millis();
        self.slots.iter().all(|slot| {
            slot.pid.is_some()
                && !slot.wedged
                && self
                    .watchdog
                    .as_ref()
                    .zip(slot.block)
                    .is_none_or(|(w, cell)| {
                        now.saturating_sub(w.board.last(cell)) < ALIVE_WITHIN_MS
                    })
        })
    }

    /// Answers what scrapes are ready, never waiting.
    fn serve_metrics(&mut self) {
        let Some(endpoint) = &mut self.endpoint else {
            return;
        };
        let view = metrics::View {
            board: self.board.clone(),
            certificates: self.setup.expiry.clone(),
            workers: self.slots.len(),
        };
        endpoint.service(&view, Instant::now());
    }

    fn retry_later(&mut self, index: usize, why: &str) {
        let slot = &mut self.slots[index];
        slot.backoff = (slot.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        slot.restart_at = Some(Instant::now() + slot.backoff);
        log::error(&format!(
            "{why}; retrying in {:.1} s",
            slot.backoff.as_secs_f64()
        ));
    }
}
