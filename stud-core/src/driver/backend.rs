//! The backend's addresses: where a backend connection goes ([`BackendAddr`]), and the rotation
//! that picks, for each new connection, the destination to try first and the local address to
//! bind it from.
//!
//! Everything is checked once, when the [`Server`](super::Server) is made, so that an operator's
//! mistake (a path too long for a socket address, a source address this host does not have, a
//! backend family no source address can reach) is one clear error at start rather than a warning
//! per connection.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use socket2::SockAddr;

use super::sockets::check_source;

/// Where backend connections go: a TCP address, or the path of a UNIX-domain stream socket
/// (hitch's `backend = "/path/to/socket"`).
///
/// A path is looked up at each connect, by the process that connects: in a daemon whose workers
/// chroot, inside the chroot; a relative path, from the working directory of that moment.
///
/// ```
/// use stud_core::driver::BackendAddr;
///
/// let tcp: BackendAddr = "[::1]:8080".parse()?;
/// let unix: BackendAddr = "/run/varnish/proxy.sock".parse()?;
/// assert_eq!(tcp, BackendAddr::Tcp("[::1]:8080".parse()?));
/// assert_eq!(unix.to_string(), "/run/varnish/proxy.sock");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendAddr {
    /// A TCP address (IPv4 or IPv6).
    Tcp(SocketAddr),
    /// The filesystem path of a UNIX-domain stream socket.
    Unix(PathBuf),
}

impl From<SocketAddr> for BackendAddr {
    fn from(addr: SocketAddr) -> BackendAddr {
        BackendAddr::Tcp(addr)
    }
}

impl From<PathBuf> for BackendAddr {
    fn from(path: PathBuf) -> BackendAddr {
        BackendAddr::Unix(path)
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddr::Tcp(addr) => addr.fmt(f),
            BackendAddr::Unix(path) => path.display().fmt(f),
        }
    }
}

/// A backend address that is neither `IP:port` (`[IPv6]:port`) nor an absolute path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidBackendAddr(String);

impl fmt::Display for InvalidBackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid backend address '{}': expected IP:port, [IPv6]:port or an absolute path",
            self.0
        )
    }
}

impl std::error::Error for InvalidBackendAddr {}

impl FromStr for BackendAddr {
    type Err = InvalidBackendAddr;

    /// Parses `IP:port`, `[IPv6]:port`, or an absolute path (starting with `/`). Host names are
    /// not resolved here: resolving is the caller's choice of when and how.
    fn from_str(s: &str) -> Result<BackendAddr, InvalidBackendAddr> {
        if s.starts_with('/') {
            return Ok(BackendAddr::Unix(PathBuf::from(s)));
        }
        s.parse::<SocketAddr>()
            .map(BackendAddr::Tcp)
            .map_err(|_| InvalidBackendAddr(s.to_owned()))
    }
}

/// A backend address with its socket address built once.
#[derive(Debug)]
pub(super) struct Destination {
    pub(super) addr: BackendAddr,
    pub(super) sockaddr: SockAddr,
}

impl Destination {
    /// Whether connections to it are TCP (and so take TCP options and a source address).
    pub(super) fn is_tcp(&self) -> bool {
        matches!(self.addr, BackendAddr::Tcp(_))
    }

    /// Whether it is a TCP address on this host's loopback (127.0.0.0/8, ::1).
    pub(super) fn is_loopback(&self) -> bool {
        matches!(self.addr, BackendAddr::Tcp(a) if a.ip().is_loopback())
    }
}

/// The destinations and source addresses of one server, and where each rotation stands.
///
/// Destinations: each new connection starts one further along the list; a connection whose
/// attempt fails goes on through the rest of the list from there (wrapping), so refusal still
/// falls back while the load is spread. Sources: each TCP attempt binds the next source address
/// of its destination's family.
#[derive(Debug)]
pub(super) struct Endpoints {
    destinations: Vec<Destination>,
    next_destination: usize,
    sources_v4: Rotation,
    sources_v6: Rotation,
}

/// A round-robin over a list of source addresses of one family.
#[derive(Debug, Default)]
struct Rotation {
    addrs: Vec<SocketAddr>,
    next: usize,
}

impl Rotation {
    fn take(&mut self) -> Option<SocketAddr> {
        let addr = *self.addrs.get(self.next % self.addrs.len().max(1))?;
        self.next = self.next.wrapping_add(1);
        Some(addr)
    }
}

impl Endpoints {
    /// Checks and prepares `backends` and `sources`; the error says what to fix.
    pub(super) fn new(backends: &[BackendAddr], sources: &[IpAddr]) -> io::Result<Endpoints> {
        if backends.is_empty() {
            return Err(invalid("no backend address configured".to_owned()));
        }
        let mut destinations = Vec::with_capacity(backends.len());
        for addr in backends {
            let sockaddr = match addr {
                BackendAddr::Tcp(a) => SockAddr::from(*a),
                BackendAddr::Unix(path) => SockAddr::unix(path).map_err(|e| {
                    invalid(format!(
                        "backend {}: not a usable socket path: {e}",
                        path.display()
                    ))
                })?,
            };
            destinations.push(Destination {
                addr: addr.clone(),
                sockaddr,
            });
        }
        let (mut sources_v4, mut sources_v6) = (Rotation::default(), Rotation::default());
        for &ip in sources {
            let addr = SocketAddr::new(ip, 0);
            check_source(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "source address {ip} cannot be bound ({e}): is it an address of this host?"
                    ),
                )
            })?;
            match ip {
                IpAddr::V4(_) => sources_v4.addrs.push(addr),
                IpAddr::V6(_) => sources_v6.addrs.push(addr),
            }
        }
        if !sources.is_empty() {
            for d in &destinations {
                if let BackendAddr::Tcp(a) = d.addr {
                    let family = if a.is_ipv4() {
                        &sources_v4
                    } else {
                        &sources_v6
                    };
                    if family.addrs.is_empty() {
                        let kind = if a.is_ipv4() { "IPv4" } else { "IPv6" };
                        return Err(invalid(format!(
                            "backend {a}: no {kind} source address to connect from"
                        )));
                    }
                }
            }
        }
        Ok(Endpoints {
            destinations,
            next_destination: 0,
            sources_v4,
            sources_v6,
        })
    }

    /// How many destinations there are (at least one).
    pub(super) fn len(&self) -> usize {
        self.destinations.len()
    }

    /// Where a new connection starts in the list; the next connection starts one further.
    pub(super) fn start(&mut self) -> usize {
        let first = self.next_destination;
        self.next_destination = (first + 1) % self.destinations.len();
        first
    }

    /// Attempt `attempt` of a connection that started at `first`.
    pub(super) fn destination(&self, first: usize, attempt: usize) -> &Destination {
        &self.destinations[(first + attempt) % self.destinations.len()]
    }

    /// The source address the next connect to `destination` binds, if sources are configured.
    pub(super) fn source_for(&mut self, first: usize, attempt: usize) -> Option<SocketAddr> {
        match self.destination(first, attempt).addr {
            BackendAddr::Tcp(SocketAddr::V4(_)) => self.sources_v4.take(),
            BackendAddr::Tcp(SocketAddr::V6(_)) => self.sources_v6.take(),
            BackendAddr::Unix(_) => None,
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> BackendAddr {
        BackendAddr::Tcp(s.parse().expect("address"))
    }

    #[test]
    fn backend_addresses_parse_and_print_as_written() {
        for text in ["127.0.0.1:8000", "[::1]:443", "/run/app.sock"] {
            let addr: BackendAddr = text.parse().expect(text);
            assert_eq!(addr.to_string(), text);
        }
        assert_eq!(
            "/tmp/x".parse::<BackendAddr>(),
            Ok(BackendAddr::Unix("/tmp/x".into()))
        );
        for bad in ["", "localhost:80", "relative/path", "127.0.0.1"] {
            let e = bad.parse::<BackendAddr>().expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn each_new_connection_starts_at_the_next_destination() {
        let backends = [tcp("127.0.0.1:1"), tcp("127.0.0.1:2"), tcp("127.0.0.1:3")];
        let mut e = Endpoints::new(&backends, &[]).expect("endpoints");
        let firsts: Vec<usize> = (0..4).map(|_| e.start()).collect();
        assert_eq!(firsts, [0, 1, 2, 0]);
        // A connection that started at the last address falls back to the first.
        assert_eq!(e.destination(2, 1).addr, backends[0]);
    }

    #[test]
    fn sources_rotate_within_the_destination_family() {
        let backends = [tcp("127.0.0.1:1")];
        let sources = [
            "127.0.0.2".parse().expect("ip"),
            "127.0.0.3".parse().expect("ip"),
        ];
        let mut e = Endpoints::new(&backends, &sources).expect("endpoints");
        let taken: Vec<String> = (0..3)
            .map(|_| e.source_for(0, 0).expect("a source").ip().to_string())
            .collect();
        assert_eq!(taken, ["127.0.0.2", "127.0.0.3", "127.0.0.2"]);
        let unix = [BackendAddr::Unix("/tmp/x.sock".into())];
        let mut e = Endpoints::new(&unix, &sources).expect("endpoints");
        assert_eq!(e.source_for(0, 0), None, "a UNIX backend binds no source");
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        let e = Endpoints::new(&[], &[]).expect_err("no backend");
        assert!(e.to_string().contains("no backend"), "{e}");

        let long = BackendAddr::Unix(format!("/{}", "x".repeat(200)).into());
        let e = Endpoints::new(&[long], &[]).expect_err("path too long");
        assert!(e.to_string().contains("not a usable socket path"), "{e}");

        // TEST-NET-1: no host has it.
        let foreign = ["192.0.2.1".parse().expect("ip")];
        let e = Endpoints::new(&[tcp("127.0.0.1:1")], &foreign).expect_err("not local");
        assert!(e.to_string().contains("source address 192.0.2.1"), "{e}");

        let v4 = ["127.0.0.1".parse().expect("ip")];
        let e = Endpoints::new(&[tcp("[::1]:1")], &v4).expect_err("no IPv6 source");
        assert!(e.to_string().contains("no IPv6 source address"), "{e}");
    }
}
