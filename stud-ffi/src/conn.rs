//! `stud_conn`: one client connection and its backend twin, driven by the caller's event loop.
//! This file holds the handle and the inputs; `output.rs` the outputs.

use std::ffi::CString;
use std::sync::Arc;

use libc::{sockaddr, sockaddr_storage, socklen_t};
use stud_core::{CloseReason, Conn, Event, HandshakeInfo, Instant};

use crate::addr;
use crate::config::{stud_config, tls_version_to_u16};
use crate::error::stud_result;
use crate::ffi::{
    arc_clone, box_from_ptr, box_into_ptr, impl_handle, try_mut, try_out, try_ref, try_slice,
    try_slice_mut,
};
use crate::panic::ffi_boundary;

/// One client connection and its backend twin: a state machine over bytes and time, with no
/// sockets of its own. Not thread-safe: use each connection from one thread at a time (it may
/// move between threads). Different connections may be used on different threads at once.
#[derive(Debug)]
pub struct stud_conn {
    _private: [u8; 0],
}
impl_handle!(stud_conn => ConnState, BoxHandle);

/// The engine's `Conn` plus what the C view needs kept alive: strings handed out as pointers.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) conn: Conn,
    /// The handshake's outcome, kept for `stud_conn_handshake_info` until the conn is freed.
    pub(crate) handshake: Option<HandshakeC>,
    /// The handshake-complete event has not been returned by `stud_conn_poll_event` yet.
    pub(crate) event_pending: bool,
    /// The close reason as text, once `STUD_ACTION_CLOSE` was returned.
    pub(crate) close_message: Option<String>,
}

/// [`HandshakeInfo`] with NUL-terminated strings for C.
#[derive(Debug)]
pub(crate) struct HandshakeC {
    pub(crate) sni: Option<CString>,
    pub(crate) alpn: Option<Vec<u8>>,
    pub(crate) version: u16,
    pub(crate) cipher_suite: CString,
    pub(crate) resumed: bool,
    /// The client's chain (DER, leaf first), lent out by `stud_conn_peer_certificate`.
    pub(crate) peer_certificates: Vec<Vec<u8>>,
    pub(crate) client_verify: Option<stud_core::ClientVerify>,
}

impl HandshakeC {
    fn new(info: HandshakeInfo) -> HandshakeC {
        HandshakeC {
            // A server name never holds NUL (rustls accepts DNS names only).
            sni: info.sni.and_then(|s| CString::new(s).ok()),
            alpn: info.alpn,
            version: tls_version_to_u16(info.version),
            cipher_suite: CString::new(info.cipher_suite).unwrap_or_default(),
            resumed: info.resumed,
            peer_certificates: info.peer_certificates,
            client_verify: info.client_verify,
        }
    }
}

impl ConnState {
    /// Moves the engine's handshake event (if any) into the C view. Called after every input,
    /// so the info is there whether or not the caller polls events.
    pub(crate) fn capture_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            if let Event::HandshakeComplete(info) = event {
                self.handshake = Some(HandshakeC::new(info));
                self.event_pending = true;
            }
        }
    }

    /// Keeps the close reason's text for `stud_conn_close_message`.
    pub(crate) fn note_close(&mut self, reason: &CloseReason) {
        self.close_message = Some(reason.to_string());
    }
}

/// A connection for a client accepted at `now_us` (microseconds on the caller's monotonic clock;
/// it must never go backwards across calls for this connection).
///
/// `peer` / `peer_len` is the client's address as `accept(2)` returned it; `local` /
/// `local_len` the accepted socket's own address (`getsockname(2)`), used by the PROXY header.
/// Both must be `AF_INET` or `AF_INET6` (else `STUD_INVALID_PARAMETER`); they are copied.
///
/// The connection keeps its own reference to `config`. On success `*conn_out` receives the new
/// connection; free it with `stud_conn_free`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_new(
    config: *const stud_config,
    now_us: u64,
    peer: *const sockaddr,
    peer_len: socklen_t,
    local: *const sockaddr,
    local_len: socklen_t,
    conn_out: *mut *mut stud_conn,
) -> stud_result {
    ffi_boundary! {
        // SAFETY: the caller passes a live config from `stud_config_builder_build`, or NULL.
        let Some(config) = (unsafe { arc_clone::<stud_config>(config) }) else {
            return stud_result::STUD_NULL_PARAMETER;
        };
        // SAFETY: the caller passes `peer_len` readable bytes at `peer`, or NULL.
        let peer = match unsafe { addr::argument(peer, peer_len) } {
            Ok(a) => a,
            Err(r) => return r,
        };
        // SAFETY: the caller passes `local_len` readable bytes at `local`, or NULL.
        let local = match unsafe { addr::argument(local, local_len) } {
            Ok(a) => a,
            Err(r) => return r,
        };
        let conn_out = try_out!(conn_out);
        match Conn::new(Arc::clone(&config), Instant::from_micros(now_us), peer, local) {
            Ok(conn) => {
                *conn_out = box_into_ptr::<stud_conn>(ConnState {
                    conn,
                    handshake: None,
                    event_pending: false,
                    close_message: None,
                });
                stud_result::STUD_OK
            }
            Err(_) => stud_result::STUD_TLS_SESSION,
        }
    }
}

/// Frees a connection (NULL does nothing). Close its sockets yourself; pointers obtained from
/// `stud_conn_handshake_info` become invalid.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_free(conn: *mut stud_conn) {
    ffi_boundary! {
        // SAFETY: the caller gives up a connection from `stud_conn_new`, once.
        drop(unsafe { box_from_ptr(conn) });
    }
}

/// Writes the client's address (as given to `stud_conn_new`) into `*addr_out` and its length
/// into `*len_out`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_peer_addr(
    conn: *const stud_conn,
    addr_out: *mut sockaddr_storage,
    len_out: *mut socklen_t,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let addr_out = try_out!(addr_out);
        let len_out = try_out!(len_out);
        (*addr_out, *len_out) = addr::to_c(state.conn.peer_addr());
        stud_result::STUD_OK
    }
}

/// Writes the accepted socket's local address (as given to `stud_conn_new`) into `*addr_out`
/// and its length into `*len_out`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_local_addr(
    conn: *const stud_conn,
    addr_out: *mut sockaddr_storage,
    len_out: *mut socklen_t,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let addr_out = try_out!(addr_out);
        let len_out = try_out!(len_out);
        (*addr_out, *len_out) = addr::to_c(state.conn.local_addr());
        stud_result::STUD_OK
    }
}

/// Feeds ciphertext read from the client socket. `*consumed_out` receives how many bytes were
/// taken: all of them whenever `len <= stud_conn_client_read_capacity()`. Offer the rest again
/// later (after draining outputs). `data` may be NULL when `len` is 0.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_client_data(
    conn: *mut stud_conn,
    now_us: u64,
    data: *const u8,
    len: usize,
    consumed_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let data = try_slice!(data, len);
        let consumed_out = try_out!(consumed_out);
        *consumed_out = state.conn.handle_client_data(Instant::from_micros(now_us), data);
        state.capture_events();
        stud_result::STUD_OK
    }
}

/// Feeds plaintext read from the backend socket. `*consumed_out` receives how many bytes were
/// taken: at most `stud_conn_backend_read_capacity()`. `data` may be NULL when `len` is 0.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_backend_data(
    conn: *mut stud_conn,
    now_us: u64,
    data: *const u8,
    len: usize,
    consumed_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let data = try_slice!(data, len);
        let consumed_out = try_out!(consumed_out);
        *consumed_out = state.conn.handle_backend_data(Instant::from_micros(now_us), data);
        state.capture_events();
        stud_result::STUD_OK
    }
}

/// As `stud_conn_handle_client_data`, but libstud may decrypt the TLS records in `data`'s own
/// bytes, one copy fewer: pass the read buffer you are done with. Its contents are unspecified
/// afterwards; the count taken is the same. `data` may be NULL when `len` is 0.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_client_data_mut(
    conn: *mut stud_conn,
    now_us: u64,
    data: *mut u8,
    len: usize,
    consumed_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let data = try_slice_mut!(data, len);
        let consumed_out = try_out!(consumed_out);
        *consumed_out = state.conn.handle_client_data_mut(Instant::from_micros(now_us), data);
        state.capture_events();
        stud_result::STUD_OK
    }
}

/// As `stud_conn_handle_backend_data`, but libstud may decrypt in `data`'s own bytes where the
/// backend's side is TLS (client mode): pass the read buffer you are done with. Its contents
/// are unspecified afterwards; the count taken is the same. `data` may be NULL when `len` is 0.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_backend_data_mut(
    conn: *mut stud_conn,
    now_us: u64,
    data: *mut u8,
    len: usize,
    consumed_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let data = try_slice_mut!(data, len);
        let consumed_out = try_out!(consumed_out);
        *consumed_out = state.conn.handle_backend_data_mut(Instant::from_micros(now_us), data);
        state.capture_events();
        stud_result::STUD_OK
    }
}

/// The body of every input that takes only the connection and `now_us`.
///
/// # Safety
/// `conn` is NULL or a live connection used by no one else during the call.
unsafe fn simple_input(
    conn: *mut stud_conn,
    now_us: u64,
    input: fn(&mut Conn, Instant),
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        input(&mut state.conn, Instant::from_micros(now_us));
        state.capture_events();
        stud_result::STUD_OK
    }
}

/// The client socket reached end of stream (a read returned 0).
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_client_eof(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_client_eof) }
}

/// The client socket failed (`ECONNRESET`, `EPIPE`, …): the connection closes at once.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_client_reset(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_client_reset) }
}

/// The backend connection asked for by `STUD_ACTION_CONNECT_BACKEND` is established.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_backend_connected(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_backend_connected) }
}

/// The backend connection attempt failed (refused, unreachable): the connection closes.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_backend_connect_failed(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_backend_connect_failed) }
}

/// The backend socket reached end of stream: close_notify and a client write shutdown follow
/// once its bytes are delivered.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_backend_eof(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_backend_eof) }
}

/// The backend socket failed: the connection closes at once.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_backend_reset(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_backend_reset) }
}

/// Call when `now_us` reaches the deadline from `stud_conn_poll_timeout`; fires whatever
/// deadline has passed (calling it early is harmless).
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handle_timeout(
    conn: *mut stud_conn,
    now_us: u64,
) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::handle_timeout) }
}

/// Ends the connection now at the caller's request (shutdown, drain deadline); a
/// `STUD_ACTION_CLOSE` with `STUD_CLOSE_ABORTED` follows.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_abort(conn: *mut stud_conn, now_us: u64) -> stud_result {
    // SAFETY: the caller upholds this function\'s contract, which is simple_input\'s.
    unsafe { simple_input(conn, now_us, Conn::abort) }
}
