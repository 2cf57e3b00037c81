//! Stopping a running server from another thread, a signal handler, or C.
//!
//! The channel is a nonblocking, close-on-exec Unix socket pair rather than a pipe: std can make a
//! socket nonblocking without any `unsafe`, and write(2) on it behaves like on a pipe. Each stop
//! request is one byte: `g` for a graceful stop, `n` for an immediate one. The server drains the
//! channel on every wake, so it never fills in practice; if it ever did, a write would fail with
//! `EAGAIN` instead of blocking a signal handler, and the requests already queued stop the server
//! anyway. Both ends live as long as the server or any handle does, so a write never meets a
//! closed reader (no `EPIPE`, no `SIGPIPE`).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The byte that asks for a graceful stop.
const GRACEFUL: u8 = b'g';
/// The byte that asks for an immediate stop.
const NOW: u8 = b'n';

/// Both ends of the stop channel.
#[derive(Debug)]
pub(super) struct StopChannel {
    tx: UnixStream,
    rx: UnixStream,
}

/// What the stop channel asked for since it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum StopRequest {
    None,
    Graceful,
    Now,
}

impl StopChannel {
    /// A new channel with both ends nonblocking (std makes them close-on-exec).
    pub(super) fn new() -> io::Result<Arc<StopChannel>> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Arc::new(StopChannel { tx, rx }))
    }

    /// The reading end, for the poller.
    pub(super) fn reader(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    /// Reads every queued request and returns the strongest.
    pub(super) fn drain(&self) -> StopRequest {
        let mut request = StopRequest::None;
        let mut buf = [0u8; 64];
        // Bounded: the channel holds at most one socket buffer of requests.
        for _ in 0..1024 {
            match (&self.rx).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for &byte in &buf[..n] {
                        let this = match byte {
                            GRACEFUL => StopRequest::Graceful,
                            NOW => StopRequest::Now,
                            _ => StopRequest::None,
                        };
                        request = request.max(this);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        request
    }

    fn send(&self, byte: u8) {
        // WouldBlock means the channel is full of requests already: nothing is lost that
        // matters, since any queued request stops the server.
        let _ = (&self.tx).write(&[byte]);
    }
}

/// Stops a running [`Server`](super::Server). Clone + Send + Sync.
///
/// Backed by the write end of a nonblocking socket pair registered with the server's poller.
/// A request made before [`Server::run`](super::Server::run) starts is honoured as soon as it does.
#[derive(Clone, Debug)]
pub struct StopHandle {
    channel: Arc<StopChannel>,
}

impl StopHandle {
    pub(super) fn new(channel: Arc<StopChannel>) -> StopHandle {
        StopHandle { channel }
    }

    /// Graceful: stop accepting, drain to the deadline, then return from run().
    pub fn stop(&self) {
        self.channel.send(GRACEFUL);
    }

    /// Immediate: abort every connection and return from run() now.
    pub fn stop_now(&self) {
        self.channel.send(NOW);
    }

    /// The pipe's write end. From a signal handler, `write(fd, b"g", 1)` = stop(), `write(fd, b"n", 1)` =
    /// stop_now(); write(2) is async-signal-safe. The fd is CLOEXEC and nonblocking.
    ///
    /// The descriptor stays open while the server or any `StopHandle` clone exists; keep a
    /// handle alive for as long as a signal handler may use the number.
    pub fn raw_fd(&self) -> RawFd {
        self.channel.tx.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_request_wins() {
        let channel = StopChannel::new().expect("socket pair");
        let handle = StopHandle::new(channel.clone());
        assert_eq!(channel.drain(), StopRequest::None);
        handle.stop();
        assert_eq!(channel.drain(), StopRequest::Graceful);
        handle.stop();
        handle.stop_now();
        handle.stop();
        assert_eq!(channel.drain(), StopRequest::Now);
        assert_eq!(channel.drain(), StopRequest::None);
    }

    #[test]
    fn a_full_channel_does_not_block_the_sender() {
        let channel = StopChannel::new().expect("socket pair");
        let handle = StopHandle::new(channel.clone());
        for _ in 0..100_000 {
            handle.stop();
        }
        assert_eq!(channel.drain(), StopRequest::Graceful);
    }
}
