//! A frontend: one listening socket paired with the TLS configuration its connections get
//! (certificates, protocols, ciphers, SNI policy), as hitch's `frontend = { … }` blocks pair them.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use super::sockets::bind_listener;
use crate::Config;

/// One listening socket and the [`Config`] of every connection accepted on it.
///
/// A [`Server`](super::Server) made with [`Server::with_frontends`](super::Server::with_frontends)
/// serves each listener with its own configuration; frontends may share one `Arc<Config>`.
///
/// ```no_run
/// use std::sync::Arc;
/// use stud_core::driver::{BackendAddr, Frontend, Options, Server};
/// use stud_core::Config;
///
/// let public = Arc::new(Config::builder().pem_file("www.pem").build()?);
/// let admin = Arc::new(Config::builder().pem_file("admin.pem").build()?);
/// let frontends = vec![
///     Frontend::bind("0.0.0.0:443".parse()?, public)?,
///     Frontend::bind("10.0.0.1:8443".parse()?, admin)?,
/// ];
/// let backend: BackendAddr = "127.0.0.1:8000".parse()?;
/// let mut server = Server::with_frontends(frontends, Options::new([backend]))?;
/// server.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Frontend {
    pub(super) listener: TcpListener,
    pub(super) config: Arc<Config>,
}

impl Frontend {
    /// Pairs an already bound, listening socket with its configuration (the server makes the
    /// socket nonblocking).
    pub fn new(listener: TcpListener, config: Arc<Config>) -> Frontend {
        Frontend { listener, config }
    }

    /// Binds `addr` (SO_REUSEADDR, backlog 1024) and pairs it with `config`.
    pub fn bind(addr: SocketAddr, config: Arc<Config>) -> io::Result<Frontend> {
        Ok(Frontend::new(bind_listener(addr)?, config))
    }

    /// The listening socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The configuration of this frontend's connections.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }
}
