//! The parent's signals, from its first moment: a self-pipe the handlers write signal numbers
//! into, installed before anything slow (loading a thousand certificates, resolving names,
//! binding), so that no signal sent during start-up takes its default action and kills stud
//! without a word.
//!
//! What arrives before the supervisor's loop runs is kept, not lost: a SIGHUP during start-up
//! becomes one reload as soon as the workers are up (the files may have changed while they were
//! read), a SIGTERM or SIGINT makes start-up stop at its next check, cleanly and with a line.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use crate::sys;

/// What the signals since the last look ask for.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pending {
    /// SIGTERM or SIGINT: drain and exit.
    pub(crate) stop: bool,
    /// SIGHUP: reload (and reopen the log file).
    pub(crate) hangup: bool,
    /// SIGUSR1: reopen the log file.
    pub(crate) reopen: bool,
}

/// The self-pipe and what was read from it but not yet acted on.
#[derive(Debug)]
pub(crate) struct Signals {
    rx: File,
    /// Kept open for the handlers, which write into it.
    _tx: OwnedFd,
    pending: Pending,
}

impl Signals {
    /// Makes the pipe and installs the parent's handlers (SIGTERM, SIGINT, SIGHUP, SIGUSR1,
    /// SIGCHLD).
    pub(crate) fn install() -> std::io::Result<Signals> {
        let (rx, tx) = sys::pipe()?;
        sys::install_parent_handlers(tx.as_raw_fd())?;
        Ok(Signals {
            rx: File::from(rx),
            _tx: tx,
            pending: Pending::default(),
        })
    }

    /// The descriptor that becomes readable when a signal arrives.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    /// Reads the signals that arrived since the last call into the pending set.
    fn read(&mut self) {
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = self.rx.read(&mut buf) {
            for &signal in &buf[..n] {
                match i32::from(signal) {
                    sys::SIGTERM | sys::SIGINT => self.pending.stop = true,
                    sys::SIGHUP => self.pending.hangup = true,
                    sys::SIGUSR1 => self.pending.reopen = true,
                    // SIGCHLD only wakes the loop, which reaps after every wake-up.
                    _ => {}
                }
            }
        }
    }

    /// Whether SIGTERM or SIGINT has arrived (what else arrived stays pending).
    pub(crate) fn stop_requested(&mut self) -> bool {
        self.read();
        self.pending.stop
    }

    /// Everything pending, which is then cleared.
    pub(crate) fn take(&mut self) -> Pending {
        self.read();
        std::mem::take(&mut self.pending)
    }
}
