//! The accept gate: a hook through which the embedder holds accepting off beyond the driver's
//! own limits — typically a daemon whose worker processes share one listening socket, so that
//! one worker does not take far more than its share of the connections while the others idle.

use std::time::Duration;

/// Decides, beside the driver's own limits, whether the [`Server`](super::Server) takes new
/// connections now. Set one with [`Server::set_accept_gate`](super::Server::set_accept_gate).
///
/// The server asks before every wait of its loop (so after every wake, including the ones that
/// closed connections) and before every single accept, with the number of connections it holds
/// and whether its own rules allow accepting (running, not paused for want of descriptors, under
/// [`Options::max_connections`](super::Options::max_connections)). While the gate says no, the
/// listeners leave the poller, so new clients do not wake this server; it asks again after
/// [`Verdict::recheck`] at the latest. A gate must answer quickly and without blocking: it runs
/// inside the loop, once per accepted connection.
///
/// The gate can only hold accepting off: when the driver's own rules forbid accepting, the
/// server does not accept, whatever the gate answers.
pub trait AcceptGate: Send {
    /// Whether to accept now, holding `open` connections; `able` says whether the server's own
    /// rules would accept.
    fn check(&mut self, open: usize, able: bool) -> Verdict;
}

/// A gate's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Accept (if the server's own rules allow it).
    pub accept: bool,
    /// Ask again no later than this from now, even if nothing wakes the loop (`None`: only
    /// when something does). A gate that says no must give one, or a server with no
    /// connections would never look again.
    pub recheck: Option<Duration>,
}
