//! `stud_server`: stud's reference event loop (one thread, many connections) for C programs
//! that want a whole TLS terminator rather than a connection engine.

use std::ffi::{c_char, c_int, c_void, CString};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libc::{sockaddr, sockaddr_storage, socklen_t};
use stud_core::driver::{ConnStats, Observer, Options, Server, StopHandle};
use stud_core::{CloseReason, HandshakeInfo};

use crate::addr;
use crate::config::stud_config;
use crate::error::stud_result;
use crate::ffi::{arc_clone, box_from_ptr, box_into_ptr, impl_handle, slice, try_out, try_ref};
use crate::panic::ffi_boundary;

/// A listening TLS terminator: accepts clients on one address and relays each to a backend,
/// running many connections on the thread that calls `stud_server_run`. Thread-safe: any
/// thread may call `stud_server_stop` / `stud_server_stop_now` while another runs it.
#[derive(Debug)]
pub struct stud_server {
    _private: [u8; 0],
}
impl_handle!(stud_server => ServerState, BoxHandle);

/// The server, out of its slot while `run` has it, and what other threads may use meanwhile.
#[derive(Debug)]
pub(crate) struct ServerState {
    server: Mutex<Option<Server>>,
    stop: StopHandle,
    local: SocketAddr,
}

/// What a `stud_log_callback` line is about.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_log_kind {
    /// A client completed its handshake: `PEER handshake sni=… alpn=… version=… suite=…`.
    STUD_LOG_HANDSHAKE = 1,
    /// A connection ended: `PEER closed REASON from_client=N to_client=N from_backend=N
    /// to_backend=N duration_ms=N`.
    STUD_LOG_CLOSED = 2,
    /// An operational problem (accept failing, a backend refusing), already rate-limited.
    STUD_LOG_WARNING = 3,
}

/// Receives the server's reports, one NUL-terminated line at a time, on the thread running
/// `stud_server_run`. `message` is valid only during the call. Keep it short: the loop waits.
pub type stud_log_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, kind: stud_log_kind, message: *const c_char),
>;

/// Forwards the driver's reports to a C callback.
struct CallbackObserver {
    callback: unsafe extern "C" fn(*mut c_void, stud_log_kind, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the observer moves to the thread that runs the server; `stud_server_set_log_callback`
// documents that the callback and its userdata must be usable from that thread.
unsafe impl Send for CallbackObserver {}

impl CallbackObserver {
    fn emit(&mut self, kind: stud_log_kind, line: String) {
        // Interior NULs cannot come from the driver's formatting; drop them rather than fail.
        let line = CString::new(line.replace('\0', "")).unwrap_or_default();
        // SAFETY: the callback's contract: called on the run thread with a string valid for
        // the duration of the call.
        unsafe { (self.callback)(self.userdata, kind, line.as_ptr()) };
    }
}

impl Observer for CallbackObserver {
    fn handshake(&mut self, peer: SocketAddr, info: &HandshakeInfo, _elapsed: Duration) {
        let alpn = info.alpn.as_deref().map_or_else(
            || "-".to_owned(),
            |p| String::from_utf8_lossy(p).into_owned(),
        );
        let line = format!(
            "{peer} handshake sni={} alpn={alpn} version={} suite={}",
            info.sni.as_deref().unwrap_or("-"),
            info.version.as_str(),
            info.cipher_suite,
        );
        self.emit(stud_log_kind::STUD_LOG_HANDSHAKE, line);
    }

    fn closed(&mut self, peer: SocketAddr, reason: &CloseReason, stats: &ConnStats) {
        let line = format!(
            "{peer} closed {reason} from_client={} to_client={} from_backend={} to_backend={} \
             duration_ms={}",
            stats.bytes_from_client,
            stats.bytes_to_client,
            stats.bytes_from_backend,
            stats.bytes_to_backend,
            stats.duration.as_millis(),
        );
        self.emit(stud_log_kind::STUD_LOG_CLOSED, line);
    }

    fn warning(&mut self, message: &str) {
        self.emit(stud_log_kind::STUD_LOG_WARNING, message.to_owned());
    }
}

/// Binds `listen` (with `SO_REUSEADDR`; port 0 picks a free port) and makes a server that
/// relays every client to `backend`, with the connection settings of `config` (the server keeps
/// its own reference). TCP keepalive is on (an hour idle); [`stud_server_new_backends`] takes
/// several backends and sets keepalive.
///
/// `drain_timeout_ms`: on a graceful stop, how long open connections may finish (0: the default,
/// 30 s). `max_connections`: stop accepting while this many are open (0: no limit but the
/// descriptor limit). Returns `STUD_IO` if the address cannot be bound. Free with
/// `stud_server_free`.
#[no_mangle]
pub unsafe extern "C" fn stud_server_new(
    config: *const stud_config,
    listen: *const sockaddr,
    listen_len: socklen_t,
    backend: *const sockaddr,
    backend_len: socklen_t,
    drain_timeout_ms: u64,
    max_connections: usize,
    server_out: *mut *mut stud_server,
) -> stud_result {
    ffi_boundary! {
        // SAFETY: the caller passes `backend_len` readable bytes at `backend`, or NULL.
        let backend = match unsafe { addr::argument(backend, backend_len) } {
            Ok(a) => a,
            Err(r) => return r,
        };
        // SAFETY: as this function's own contract, passed on.
        unsafe {
            new_server(
                config,
                listen,
                listen_len,
                vec![backend],
                DEFAULT_KEEPALIVE_SECS,
                drain_timeout_ms,
                max_connections,
                server_out,
            )
        }
    }
}

/// TCP keepalive's idle time for [`stud_server_new`]: the driver's default.
const DEFAULT_KEEPALIVE_SECS: u32 = 3600;

/// As [`stud_server_new`], relaying to `backend_count` backend addresses: `backends[i]` is
/// `backend_lens[i]` bytes long. Each new connection starts at the next address in turn and
/// falls back to the following ones when one refuses or does not answer within its share of the
/// connect timeout. `keepalive_secs`: TCP keepalive's idle time on both sockets (0: off).
///
/// Returns `STUD_NULL_PARAMETER` for a NULL array or element, `STUD_INVALID_PARAMETER` for no
/// backend or an address that is not IPv4 or IPv6.
#[no_mangle]
pub unsafe extern "C" fn stud_server_new_backends(
    config: *const stud_config,
    listen: *const sockaddr,
    listen_len: socklen_t,
    backends: *const *const sockaddr,
    backend_lens: *const socklen_t,
    backend_count: usize,
    keepalive_secs: u32,
    drain_timeout_ms: u64,
    max_connections: usize,
    server_out: *mut *mut stud_server,
) -> stud_result {
    ffi_boundary! {
        if backend_count == 0 {
            return stud_result::STUD_INVALID_PARAMETER;
        }
        // SAFETY: the caller passes `backend_count` readable pointers and lengths, or NULL.
        let (Some(addrs), Some(lens)) = (unsafe { slice(backends, backend_count) }, unsafe {
            slice(backend_lens, backend_count)
        }) else {
            return stud_result::STUD_NULL_PARAMETER;
        };
        let mut parsed = Vec::with_capacity(backend_count);
        for (&a, &len) in addrs.iter().zip(lens) {
            // SAFETY: each element points at `len` readable bytes, or is NULL.
            match unsafe { addr::argument(a, len) } {
                Ok(a) => parsed.push(a),
                Err(r) => return r,
            }
        }
        // SAFETY: as this function's own contract, passed on.
        unsafe {
            new_server(
                config,
                listen,
                listen_len,
                parsed,
                keepalive_secs,
                drain_timeout_ms,
                max_connections,
                server_out,
            )
        }
    }
}

/// What both constructors share.
///
/// # Safety
/// `config` is a live config or NULL; `listen` points at `listen_len` readable bytes or is NULL;
/// `server_out` is writable or NULL.
#[expect(
    clippy::too_many_arguments,
    reason = "the C constructors' arguments, passed through"
)]
unsafe fn new_server(
    config: *const stud_config,
    listen: *const sockaddr,
    listen_len: socklen_t,
    backends: Vec<std::net::SocketAddr>,
    keepalive_secs: u32,
    drain_timeout_ms: u64,
    max_connections: usize,
    server_out: *mut *mut stud_server,
) -> stud_result {
    // SAFETY: the caller passes a live config from `stud_config_builder_build`, or NULL.
    let Some(config) = (unsafe { arc_clone::<stud_config>(config) }) else {
        return stud_result::STUD_NULL_PARAMETER;
    };
    // SAFETY: the caller passes `listen_len` readable bytes at `listen`, or NULL.
    let listen = match unsafe { addr::argument(listen, listen_len) } {
        Ok(a) => a,
        Err(r) => return r,
    };
    // SAFETY: the caller passes a writable pointer, or NULL.
    let Some(server_out) = (unsafe { crate::ffi::out(server_out) }) else {
        return stud_result::STUD_NULL_PARAMETER;
    };
    let mut options = Options::new(backends)
        .with_keepalive(
            (keepalive_secs > 0).then(|| Duration::from_secs(u64::from(keepalive_secs))),
        )
        .with_max_connections((max_connections > 0).then_some(max_connections));
    if drain_timeout_ms > 0 {
        options = options.with_drain_timeout(Duration::from_millis(drain_timeout_ms));
    }
    let server = match Server::bind(Arc::clone(&config), listen, options) {
        Ok(server) => server,
        Err(_) => return stud_result::STUD_IO,
    };
    let Some(local) = server.local_addrs().first().copied() else {
        return stud_result::STUD_IO;
    };
    *server_out = box_into_ptr::<stud_server>(ServerState {
        stop: server.stop_handle(),
        server: Mutex::new(Some(server)),
        local,
    });
    stud_result::STUD_OK
}

/// The address the server listens on (useful after binding port 0).
#[no_mangle]
pub unsafe extern "C" fn stud_server_local_addr(
    server: *const stud_server,
    addr_out: *mut sockaddr_storage,
    len_out: *mut socklen_t,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(server);
        let addr_out = try_out!(addr_out);
        let len_out = try_out!(len_out);
        (*addr_out, *len_out) = addr::to_c(state.local);
        stud_result::STUD_OK
    }
}

/// Sends the server's reports (handshakes, closes, warnings) to `callback`, called with
/// `userdata` on the thread that runs the server; both must be usable from that thread. NULL
/// `callback` turns reporting off. Call it before `stud_server_run` (while the server runs:
/// `STUD_ALREADY_USED`).
#[no_mangle]
pub unsafe extern "C" fn stud_server_set_log_callback(
    server: *const stud_server,
    callback: stud_log_callback,
    userdata: *mut c_void,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(server);
        let mut slot = state.server.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(server) = slot.as_mut() else {
            return stud_result::STUD_ALREADY_USED;
        };
        match callback {
            Some(callback) => server.set_observer(Box::new(CallbackObserver { callback, userdata })),
            None => server.set_observer(Box::new(Silent)),
        }
        stud_result::STUD_OK
    }
}

/// The observer that reports nothing.
struct Silent;

impl Observer for Silent {}

/// Runs the server on the calling thread until it is stopped; returns `STUD_OK` after a stop
/// (graceful: connections drained or aborted at the drain deadline), `STUD_IO` if the event loop
/// failed, `STUD_ALREADY_USED` if another thread is running it. Once it has returned, the
/// listener is closed and running it again returns at once.
#[no_mangle]
pub unsafe extern "C" fn stud_server_run(server: *const stud_server) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(server);
        // Take the server out of its slot so stop/free callers never wait on a running loop.
        let taken = state.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(mut running) = taken else {
            return stud_result::STUD_ALREADY_USED;
        };
        let result = running.run();
        *state.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(running);
        match result {
            Ok(()) => stud_result::STUD_OK,
            Err(_) => stud_result::STUD_IO,
        }
    }
}

/// Asks the server to stop gracefully: stop accepting, let open connections finish until the
/// drain timeout, then return from `stud_server_run`. Callable from any thread, before or
/// during the run (a stop asked before the run is honoured when it starts).
#[no_mangle]
pub unsafe extern "C" fn stud_server_stop(server: *const stud_server) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(server);
        state.stop.stop();
        stud_result::STUD_OK
    }
}

/// Asks the server to stop now: abort every connection and return from `stud_server_run`.
#[no_mangle]
pub unsafe extern "C" fn stud_server_stop_now(server: *const stud_server) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(server);
        state.stop.stop_now();
        stud_result::STUD_OK
    }
}

/// The write end of the server's stop pipe, for signal handlers (which may not call
/// `stud_server_stop`): `write(fd, "g", 1)` stops gracefully, `write(fd, "n", 1)` stops now;
/// `write(2)` is async-signal-safe. The descriptor is nonblocking and close-on-exec, owned by the
/// server: do not close it, and stop using it before `stud_server_free`.
#[no_mangle]
pub unsafe extern "C" fn stud_server_stop_fd(
    server: *const stud_server,
    fd_out: *mut c_int,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(server);
        let fd_out = try_out!(fd_out);
        let fd: RawFd = state.stop.raw_fd();
        *fd_out = fd;
        stud_result::STUD_OK
    }
}

/// Frees a server (NULL does nothing), closing its listener and any connection left. Never
/// while `stud_server_run` is running on another thread: stop it and wait for the run to
/// return first.
#[no_mangle]
pub unsafe extern "C" fn stud_server_free(server: *mut stud_server) {
    ffi_boundary! {
        // SAFETY: the caller gives up a server from `stud_server_new`, once, not running.
        drop(unsafe { box_from_ptr(server) });
    }
}
