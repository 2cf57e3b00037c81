//! # stud-core: the TLS termination engine of stud
//!
//! stud accepts TLS connections, terminates them, and relays the plaintext to one backend with a
//! strict 1:1 connection pattern, optionally telling the backend the client's address first.
//! This crate is that behaviour as a library, in two layers:
//!
//! - [`Conn`], a **sans-IO state machine** for one client and its backend twin. It owns no socket
//!   and reads no clock: you feed it bytes, end-of-stream and `now`; it hands back bytes for each
//!   side, [`Action`]s (connect the backend, shut a write side, close with a [`CloseReason`]), the
//!   handshake [`Event`], the next deadline and which sockets it wants to read or write. The same
//!   `Conn` runs under the reference driver, under your own event loop, and under C via libstud.
// The driver's entry links to it only where it is built (docs without default features).
#![cfg_attr(
    feature = "driver",
    doc = " - [`driver`] (feature `driver`, on by default): a single-threaded poll loop with nonblocking"
)]
#![cfg_attr(
    not(feature = "driver"),
    doc = " - `driver` (feature `driver`, on by default): a single-threaded poll loop with nonblocking"
)]
//!   sockets that runs many `Conn`s — the heart of the `stud` daemon.
//!
//! ```text
//!            ciphertext                                   plaintext
//!  client  ───────────────▶ ┌──────────────────────┐ ─────────────────▶  backend
//!  (TLS)   ◀─────────────── │ Conn                 │ ◀─────────────────  (TCP)
//!                           │  rustls session      │   [client-address header first]
//!                           │  budgets, deadlines  │
//!                           └──────────────────────┘
//!                               ▲ handle_*(now, …)  │ poll_* / interest()
//!                               │                   ▼
//!                                  your event loop
//! ```
//!
//! ## Driving a `Conn` by hand
//!
//! The contract is on [`Conn`]: after every input, drain events, then actions, then bytes, and
//! re-arm from [`Conn::interest`] and [`Conn::poll_timeout`]. In outline (sockets elided):
//!
//! ```no_run
//! use std::sync::Arc;
//! use stud_core::{Action, Config, Conn, Instant};
//!
//! let config = Arc::new(Config::builder().pem_file("site.pem").build()?);
//! let now = Instant::from_micros(0);
//! let mut conn = Conn::new(config, now, "192.0.2.7:5555".parse()?, "192.0.2.1:443".parse()?)?;
//! # let bytes_from_client: &[u8] = &[];
//! // Bytes arrived from the client socket:
//! let taken = conn.handle_client_data(now, bytes_from_client);
//! # let _ = taken;
//! while let Some(event) = conn.poll_event() {
//!     println!("{event:?}"); // handshake done: SNI, ALPN, version, suite
//! }
//! while let Some(action) = conn.poll_action() {
//!     match action {
//!         Action::ConnectBackend => { /* start a nonblocking connect, later: */
//!             conn.handle_backend_connected(now) }
//!         Action::ShutdownBackendWrite => { /* backend.shutdown(Write) */ }
//!         Action::ShutdownClientWrite => { /* client.shutdown(Write) */ }
//!         Action::Close(reason) => { println!("closed: {reason}"); break }
//!         _ => {} // actions of settings not used here
//!     }
//! }
//! let mut buf = [0u8; 16 * 1024];
//! let n = conn.poll_client_transmit(now, &mut buf);   // send buf[..n] to the client
//! let m = conn.poll_backend_transmit(now, &mut buf);  // send buf[..m] to the backend
//! # let _ = (n, m);
//! let wants = conn.interest();      // which sockets to poll for reading / writing
//! let deadline = conn.poll_timeout(); // call conn.handle_timeout(now) when it passes
//! # let _ = (wants, deadline);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A real loop also feeds backend bytes with [`Conn::handle_backend_data`], ends of stream with
//! [`Conn::handle_client_eof`] / [`Conn::handle_backend_eof`], and socket failures with the
//! `handle_*_reset` inputs. [`Conn::write_client`] and [`Conn::write_backend`] write straight
//! into a nonblocking socket instead of through a buffer (readiness-based I/O); the
//! `poll_*_transmit` calls above suit completion-based I/O such as io_uring (see "Two ways for
//! bytes to leave" on [`Conn`]). Take `now` from your clock with
//! [`Instant::from_std`] (one base for the whole loop) and sleep until
//! [`Instant::to_std`] of the deadline.
//!
//! Two complete programs in the repository's `stud-core/examples/` show both ways to run it:
//! `minimal.rs` serves with the reference driver in ten lines, and `tokio.rs` is a whole
//! terminator on tokio — a task per client driving a `Conn` with readiness-based I/O
//! (`ready`, `try_read`, `try_write`) — in under 200 lines.
//!
//! ## Configuration
//! [`Config::builder`] takes the certificate chain and key (one stud-style PEM or separate files;
//! RSA, ECDSA P-256/P-384, Ed25519), protocol versions (TLS 1.2 and 1.3 — rustls speaks nothing
//! older), an OpenSSL-style cipher list, timeouts, per-direction buffer budgets and the
//! [`ClientAddressMode`]. It can also ask clients for a certificate ([`ClientVerifyMode`], with
//! CA certificates, CRLs and a depth limit); what was verified reaches the embedder in
//! [`HandshakeInfo`] and the backend in the PROXY v2 header. Cryptography is rustls with the
//! aws-lc-rs provider.
//!
//! To bring your own TLS (a certificate resolver of yours for ACME or certificates made on
//! demand, a key log, a verifier), hand a `rustls::ServerConfig` built with the re-exported
//! [`rustls`] to [`ConfigBuilder::rustls_server_config`]; stud's client-address header,
//! budgets and deadlines still apply.

// The engine has no unsafe code. `deny` rather than `forbid` lets the driver's system calls
// that need it opt out locally, each with its SAFETY note: the epoll calls in
// `driver/poller.rs`, and in `driver/sockets.rs` the socket calls socket2 lacks.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// docs.rs marks what needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod conn;
mod error;
mod proxy;
mod time;
mod tls;

#[cfg(feature = "driver")]
#[cfg_attr(docsrs, doc(cfg(feature = "driver")))]
pub mod driver;

pub use config::{Config, ConfigBuilder, MAX_RECORD_PLAINTEXT};
pub use conn::{Action, Buffered, Conn, Event, Interest};
pub use error::{CloseReason, ConfigError, TlsError};
pub use proxy::ClientAddressMode;
/// The rustls stud-core is built on, for [`ConfigBuilder::rustls_server_config`]: build your
/// `ServerConfig` with this one and the versions always match.
pub use rustls;
pub use time::Instant;
pub use tls::cert_fields::certificate_not_after;
pub use tls::client_auth::{ClientVerify, ClientVerifyMode};
pub use tls::client_side::{BackendTls, SYSTEM_CA_BUNDLE};
pub use tls::{cipher_suite_names, HandshakeInfo, TlsVersion};

/// A fresh random master secret for [`ConfigBuilder::ticket_secret`], from the TLS library's
/// generator: what a configuration makes for itself when none is given, for a program that
/// builds several configurations (or rebuilds one on reload) and wants them all to resume each
/// other's sessions. Its last byte is never ASCII white space, which
/// [`ConfigBuilder::ticket_secret`] would trim as a file's trailing newline: the secret always
/// passes whole. `None` only when the system has no randomness to give.
pub fn random_ticket_secret() -> Option<Vec<u8>> {
    let mut secret = tls::tickets::EpochTicketer::random_secret()?;
    if let Some(last) = secret.last_mut() {
        *last |= 0x80;
    }
    Some(secret)
}

/// Entry points for the fuzz targets and for tests of stud itself, not part of the API: they
/// may change in any release. (rustls keeps its own the same way.)
#[doc(hidden)]
pub mod internal {
    /// The PROXY codec: stud's client-address encoders and the incoming PROXY header parser.
    pub mod proxy {
        pub use crate::proxy::{
            encode_client_address, encode_proxy_v2, parse_proxy_header, ProxyHeaderParse,
            AF_INET6_LINUX, AF_INET_LINUX, MAX_HEADER_LEN, MAX_INCOMING_PROXY_HEADER,
            PROXY_V2_SIGNATURE,
        };
    }

    /// Heap bytes of the buffers the engine owns for `conn` (rustls' own state not counted):
    /// zero on an idle connection, since a buffer exists only while it holds bytes.
    pub fn buffer_bytes(conn: &crate::Conn) -> usize {
        conn.buffer_bytes()
    }
}
