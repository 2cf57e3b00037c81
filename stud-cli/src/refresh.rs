//! `backend-refresh`: the supervisor resolves the backend's name again every so often; when the
//! set of addresses changed, it reloads exactly as on SIGHUP (the reload resolves the name anew
//! and new workers connect to the new addresses while the old ones drain).
//!
//! The order of the addresses is not a change: resolvers rotate answers, and a reload for each
//! rotation would replace the workers at every refresh. A failed lookup keeps the addresses in
//! use, with a warning.

use std::net::SocketAddr;

use crate::args::Backend;
use crate::log;

/// How a backend's name is looked up (a parameter so tests can stand in for DNS).
pub(crate) type Resolve = fn(&Backend) -> Result<Vec<SocketAddr>, String>;

/// The backend's addresses as last seen.
pub(crate) struct BackendWatch {
    backend: Backend,
    last: Vec<SocketAddr>,
    resolve: Resolve,
}

impl std::fmt::Debug for BackendWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendWatch")
            .field("backend", &self.backend)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

fn sorted(mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    addrs.sort();
    addrs.dedup();
    addrs
}

impl BackendWatch {
    /// Watches `backend`, whose addresses at start were `now`.
    pub(crate) fn new(backend: Backend, now: Vec<SocketAddr>, resolve: Resolve) -> BackendWatch {
        BackendWatch {
            backend,
            last: sorted(now),
            resolve,
        }
    }

    /// Resolves the name again: `true` when the set of addresses differs from the last one seen.
    pub(crate) fn changed(&mut self) -> bool {
        match (self.resolve)(&self.backend) {
            Ok(now) => {
                let now = sorted(now);
                if now == self.last {
                    return false;
                }
                let shown: Vec<String> = now.iter().map(ToString::to_string).collect();
                log::info(&format!(
                    "backend {} now resolves to {}: reloading",
                    self.backend,
                    shown.join(" ")
                ));
                self.last = now;
                true
            }
            Err(e) => {
                log::warning(&format!(
                    "backend-refresh: {e}; keeping the addresses in use"
                ));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Endpoint;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static STEP: AtomicUsize = AtomicUsize::new(0);

    /// Answers in turn: A B; B A (rotated); A C (changed); a failure; A C.
    fn scripted(_: &Backend) -> Result<Vec<SocketAddr>, String> {
        let a: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:80".parse().expect("addr");
        let c: SocketAddr = "10.0.0.3:80".parse().expect("addr");
        match STEP.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(vec![b, a]),
            1 => Ok(vec![a, c]),
            2 => Err("cannot resolve host 'backend.test'".into()),
            _ => Ok(vec![c, a]),
        }
    }

    #[test]
    fn only_a_different_set_of_addresses_is_a_change() {
        let backend = Backend::Tcp(Endpoint {
            host: Some("backend.test".into()),
            port: 80,
        });
        let start = vec![
            "10.0.0.1:80".parse().expect("a"),
            "10.0.0.2:80".parse().expect("b"),
        ];
        let mut watch = BackendWatch::new(backend, start, scripted);
        assert!(!watch.changed(), "a rotated answer is no change");
        assert!(watch.changed(), "a new address is a change");
        assert!(!watch.changed(), "a failed lookup keeps what is in use");
        assert!(!watch.changed(), "the same set again is no change");
    }
}
