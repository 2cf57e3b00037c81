//! What a `stud_conn` hands back: events, actions, bytes for each socket, interest and deadlines.
//!
//! After every input, drain in this order: `stud_conn_poll_event`, `stud_conn_poll_action`
//! until `STUD_ACTION_NONE`, the transmit (or write) functions for both sockets, then actions
//! again (sending the last byte can make a shutdown due); finally re-arm the sockets from
//! `stud_conn_interest` and the timer from `stud_conn_poll_timeout`.

use std::ffi::{c_char, c_void, CString};
use std::io;
use std::ptr;
use std::sync::OnceLock;

use stud_core::{Action, CloseReason, Instant};

use crate::conn::stud_conn;
use crate::error::{copy_c_string, stud_io_result, stud_result};
use crate::ffi::{try_mut, try_out, try_ref, try_slice_mut};
use crate::panic::ffi_boundary;

/// `stud_conn_poll_timeout`'s answer when no deadline is pending.
pub const STUD_NO_DEADLINE: u64 = u64::MAX;

/// Interest bit: read from the client socket.
pub const STUD_INTEREST_CLIENT_READ: u32 = 1;
/// Interest bit: ciphertext waits to be written to the client socket.
pub const STUD_INTEREST_CLIENT_WRITE: u32 = 2;
/// Interest bit: read from the backend socket.
pub const STUD_INTEREST_BACKEND_READ: u32 = 4;
/// Interest bit: plaintext waits to be written to the backend socket.
pub const STUD_INTEREST_BACKEND_WRITE: u32 = 8;

/// Something that happened, from `stud_conn_poll_event`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_event {
    /// Nothing (more) to report.
    STUD_EVENT_NONE = 0,
    /// The TLS handshake completed; `stud_conn_handshake_info` has the details.
    STUD_EVENT_HANDSHAKE_COMPLETE = 1,
}

/// Something to do with the sockets, from `stud_conn_poll_action`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_action {
    /// Nothing (more) to do.
    STUD_ACTION_NONE = 0,
    /// Open a nonblocking connection to the backend now; report the outcome with
    /// `stud_conn_handle_backend_connected` or `stud_conn_handle_backend_connect_failed`.
    STUD_ACTION_CONNECT_BACKEND = 1,
    /// `shutdown(backend, SHUT_WR)`: the client is done sending.
    STUD_ACTION_SHUTDOWN_BACKEND_WRITE = 2,
    /// `shutdown(client, SHUT_WR)`: the backend is done and close_notify was sent.
    STUD_ACTION_SHUTDOWN_CLIENT_WRITE = 3,
    /// Close both sockets and free the connection; the reason comes with it.
    STUD_ACTION_CLOSE = 4,
}

/// Why a connection closed. Numbers are stable; new reasons may be added.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_close_reason {
    /// Not closed (the reason out-parameter of any action but `STUD_ACTION_CLOSE`).
    STUD_CLOSE_NONE = 0,
    /// Both directions finished: each side's end of stream reached the other.
    STUD_CLOSE_COMPLETED = 1,
    /// The TLS handshake failed.
    STUD_CLOSE_HANDSHAKE_FAILED = 2,
    /// The handshake did not complete before its deadline.
    STUD_CLOSE_HANDSHAKE_TIMEOUT = 3,
    /// The client closed or reset before completing the handshake.
    STUD_CLOSE_CLIENT_CLOSED_IN_HANDSHAKE = 4,
    /// The backend refused or failed the connection attempt.
    STUD_CLOSE_BACKEND_CONNECT_FAILED = 5,
    /// The backend did not accept before its deadline.
    STUD_CLOSE_BACKEND_CONNECT_TIMEOUT = 6,
    /// No byte moved either way for the idle timeout.
    STUD_CLOSE_IDLE_TIMEOUT = 7,
    /// One direction finished and the other stalled for the linger timeout.
    STUD_CLOSE_LINGER_TIMEOUT = 8,
    /// The client's socket failed after the handshake.
    STUD_CLOSE_CLIENT_RESET = 9,
    /// The backend's socket failed.
    STUD_CLOSE_BACKEND_RESET = 10,
    /// The client broke the TLS protocol after the handshake.
    STUD_CLOSE_PROTOCOL_ERROR = 11,
    /// The caller ended the connection (`stud_conn_abort`).
    STUD_CLOSE_ABORTED = 12,
    /// A PROXY header from a load balancer was expected and not found (or malformed);
    /// `stud_conn_close_message` says what was wrong.
    STUD_CLOSE_BAD_PROXY_HEADER = 13,
    /// Client mode: the TLS handshake with the backend failed; `stud_conn_close_message` says
    /// why.
    STUD_CLOSE_BACKEND_HANDSHAKE_FAILED = 14,
    /// A reason newer than this header; `stud_conn_close_message` names it.
    STUD_CLOSE_OTHER = 99,
}

impl From<&CloseReason> for stud_close_reason {
    fn from(reason: &CloseReason) -> Self {
        match reason {
            CloseReason::Completed => stud_close_reason::STUD_CLOSE_COMPLETED,
            CloseReason::HandshakeFailed(_) => stud_close_reason::STUD_CLOSE_HANDSHAKE_FAILED,
            CloseReason::HandshakeTimeout => stud_close_reason::STUD_CLOSE_HANDSHAKE_TIMEOUT,
            CloseReason::ClientClosedInHandshake => {
                stud_close_reason::STUD_CLOSE_CLIENT_CLOSED_IN_HANDSHAKE
            }
            CloseReason::BackendConnectFailed => {
                stud_close_reason::STUD_CLOSE_BACKEND_CONNECT_FAILED
            }
            CloseReason::BackendConnectTimeout => {
                stud_close_reason::STUD_CLOSE_BACKEND_CONNECT_TIMEOUT
            }
            CloseReason::IdleTimeout => stud_close_reason::STUD_CLOSE_IDLE_TIMEOUT,
            CloseReason::LingerTimeout => stud_close_reason::STUD_CLOSE_LINGER_TIMEOUT,
            CloseReason::ClientReset => stud_close_reason::STUD_CLOSE_CLIENT_RESET,
            CloseReason::BackendReset => stud_close_reason::STUD_CLOSE_BACKEND_RESET,
            CloseReason::ProtocolError(_) => stud_close_reason::STUD_CLOSE_PROTOCOL_ERROR,
            CloseReason::Aborted => stud_close_reason::STUD_CLOSE_ABORTED,
            CloseReason::BadProxyHeader(_) => stud_close_reason::STUD_CLOSE_BAD_PROXY_HEADER,
            CloseReason::BackendHandshakeFailed(_) => {
                stud_close_reason::STUD_CLOSE_BACKEND_HANDSHAKE_FAILED
            }
            // The engine may grow new reasons; the message still names them.
            _ => stud_close_reason::STUD_CLOSE_OTHER,
        }
    }
}

/// What the handshake settled, from `stud_conn_handshake_info`. Every pointer stays valid until
/// the connection is freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct stud_handshake_info {
    /// The server name the client asked for (SNI), NUL-terminated; NULL if none.
    pub sni: *const c_char,
    /// The protocol agreed by ALPN (not NUL-terminated); NULL if none.
    pub alpn: *const u8,
    /// Length of `alpn` (0 if none).
    pub alpn_len: usize,
    /// The protocol version: `STUD_TLS_1_2` or `STUD_TLS_1_3`.
    pub version: u16,
    /// Whether the session was resumed rather than fully negotiated.
    pub resumed: bool,
    /// The cipher suite's OpenSSL name (IANA name for TLS 1.3), NUL-terminated.
    pub cipher_suite: *const c_char,
}

/// Writes `len` bytes at `buf` somewhere (usually `send(2)` on a nonblocking socket).
///
/// On success return 0 and store the count written (possibly fewer than `len`) in `*out_n`.
/// Otherwise return an `errno` value: `EAGAIN`/`EWOULDBLOCK` when nothing can be written now,
/// anything else for a failure. `userdata` is passed through untouched. The callback must not
/// call back into the same connection.
pub type stud_write_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        buf: *const u8,
        len: usize,
        out_n: *mut usize,
    ) -> stud_io_result,
>;

/// Reports the handshake completion, once: `*event_out` receives
/// `STUD_EVENT_HANDSHAKE_COMPLETE` the first time after the handshake completed, then
/// `STUD_EVENT_NONE`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_poll_event(
    conn: *mut stud_conn,
    event_out: *mut stud_event,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let event_out = try_out!(event_out);
        state.capture_events();
        *event_out = if std::mem::take(&mut state.event_pending) {
            stud_event::STUD_EVENT_HANDSHAKE_COMPLETE
        } else {
            stud_event::STUD_EVENT_NONE
        };
        stud_result::STUD_OK
    }
}

/// The next thing to do with the sockets. Call until `*action_out` is `STUD_ACTION_NONE`.
/// `*reason_out` is `STUD_CLOSE_NONE` unless the action is `STUD_ACTION_CLOSE`; after a close
/// nothing more happens and `stud_conn_close_message` describes the reason.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_poll_action(
    conn: *mut stud_conn,
    action_out: *mut stud_action,
    reason_out: *mut stud_close_reason,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let action_out = try_out!(action_out);
        let reason_out = try_out!(reason_out);
        let (action, reason) = loop {
            break match state.conn.poll_action() {
                None => (stud_action::STUD_ACTION_NONE, stud_close_reason::STUD_CLOSE_NONE),
                Some(Action::ConnectBackend) => {
                    (stud_action::STUD_ACTION_CONNECT_BACKEND, stud_close_reason::STUD_CLOSE_NONE)
                }
                Some(Action::ShutdownBackendWrite) => (
                    stud_action::STUD_ACTION_SHUTDOWN_BACKEND_WRITE,
                    stud_close_reason::STUD_CLOSE_NONE,
                ),
                Some(Action::ShutdownClientWrite) => (
                    stud_action::STUD_ACTION_SHUTDOWN_CLIENT_WRITE,
                    stud_close_reason::STUD_CLOSE_NONE,
                ),
                Some(Action::Close(reason)) => {
                    state.note_close(&reason);
                    (stud_action::STUD_ACTION_CLOSE, stud_close_reason::from(&reason))
                }
                // A new action comes only with a setting that turns it on (see
                // `stud_core::Action`); libstud exposes none it cannot map. Skip, as allowed.
                Some(_) => continue,
            };
        };
        *action_out = action;
        *reason_out = reason;
        stud_result::STUD_OK
    }
}

/// A short stable name for a close reason (`"completed"`, `"handshake_failed"`, …), for logs
/// and metrics: a static NUL-terminated string, never NULL (`"unknown"` for unknown numbers).
#[no_mangle]
pub extern "C" fn stud_close_reason_name(reason: u32) -> *const c_char {
    ffi_boundary! {
        let name = match reason {
            0 => c"none",
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| close_reason_c_names().get(i))
                .map_or(c"unknown", CString::as_c_str),
        };
        name.as_ptr()
    }
}

/// stud-core's close-reason names as C strings: reason number `n` is the name at `n - 1`
/// (pinned against the header's enum by a test).
fn close_reason_c_names() -> &'static [CString] {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    NAMES.get_or_init(|| {
        CloseReason::NAMES
            .iter()
            .filter_map(|name| CString::new(*name).ok())
            .collect()
    })
}

/// Writes why the connection closed (with the TLS error's detail, if any) into `buf` as a
/// NUL-terminated string, its length without the NUL into `*out_n`. `STUD_NOT_FOUND` before
/// `STUD_ACTION_CLOSE` was returned; `STUD_INSUFFICIENT_SIZE` (nothing written) if it does not
/// fit — 256 bytes is ample.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_close_message(
    conn: *const stud_conn,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let buf = try_slice_mut!(buf.cast::<u8>(), len);
        let out_n = try_out!(out_n);
        let Some(text) = &state.close_message else {
            return stud_result::STUD_NOT_FOUND;
        };
        match copy_c_string(text.as_bytes(), buf) {
            Some(n) => {
                *out_n = n;
                stud_result::STUD_OK
            }
            None => stud_result::STUD_INSUFFICIENT_SIZE,
        }
    }
}

/// Fills `*info_out` with what the handshake settled. `STUD_NOT_FOUND` while handshaking. The
/// pointers inside stay valid until `stud_conn_free`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_handshake_info(
    conn: *const stud_conn,
    info_out: *mut stud_handshake_info,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let info_out = try_out!(info_out);
        let Some(info) = &state.handshake else {
            return stud_result::STUD_NOT_FOUND;
        };
        let (alpn, alpn_len) = match &info.alpn {
            Some(p) => (p.as_ptr(), p.len()),
            None => (ptr::null(), 0),
        };
        *info_out = stud_handshake_info {
            sni: info.sni.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            alpn,
            alpn_len,
            version: info.version,
            resumed: info.resumed,
            cipher_suite: info.cipher_suite.as_ptr(),
        };
        stud_result::STUD_OK
    }
}

/// Copies ciphertext for the client into `buf` (room for `len` bytes); `*out_n` receives the
/// count, 0 when nothing waits. Send those bytes to the client; they are yours now.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_poll_client_transmit(
    conn: *mut stud_conn,
    now_us: u64,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let buf = try_slice_mut!(buf, len);
        let out_n = try_out!(out_n);
        *out_n = state.conn.poll_client_transmit(Instant::from_micros(now_us), buf);
        stud_result::STUD_OK
    }
}

/// Copies plaintext for the backend (the client-address header first) into `buf`; `*out_n`
/// receives the count, 0 when nothing waits or the backend is not connected yet.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_poll_backend_transmit(
    conn: *mut stud_conn,
    now_us: u64,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let buf = try_slice_mut!(buf, len);
        let out_n = try_out!(out_n);
        *out_n = state.conn.poll_backend_transmit(Instant::from_micros(now_us), buf);
        stud_result::STUD_OK
    }
}

/// An `io::Write` over a C write callback.
struct CallbackWriter {
    callback: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut usize) -> stud_io_result,
    userdata: *mut c_void,
}

impl io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut n = 0usize;
        // SAFETY: the callback's contract (see `stud_write_callback`): `buf` is valid for
        // `len` bytes during the call and `out_n` points at our local.
        let rc = unsafe { (self.callback)(self.userdata, buf.as_ptr(), buf.len(), &mut n) };
        if rc.0 != 0 {
            return Err(io::Error::from_raw_os_error(rc.0));
        }
        if n > buf.len() {
            // A callback claiming more than it was given would desynchronise the stream.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Shared body of the callback-based writes.
fn write_through(
    callback: stud_write_callback,
    userdata: *mut c_void,
    out_n: &mut usize,
    write: impl FnOnce(&mut CallbackWriter) -> io::Result<usize>,
) -> stud_io_result {
    let Some(callback) = callback else {
        return stud_io_result(libc::EINVAL);
    };
    let mut writer = CallbackWriter { callback, userdata };
    match write(&mut writer) {
        Ok(n) => {
            *out_n = n;
            stud_io_result(0)
        }
        Err(e) => stud_io_result(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Writes ciphertext for the client straight through `callback` (no copy into a buffer of
/// yours), calling it a bounded number of times until it writes short or says `EAGAIN`.
/// Returns 0 with the total in `*out_n` (possibly 0), or the callback's `errno` on failure —
/// then report `stud_conn_handle_client_reset`. `EINVAL` if an argument is NULL.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_write_client(
    conn: *mut stud_conn,
    now_us: u64,
    callback: stud_write_callback,
    userdata: *mut c_void,
    out_n: *mut usize,
) -> stud_io_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let out_n = try_out!(out_n);
        write_through(callback, userdata, out_n, |w| {
            state.conn.write_client(Instant::from_micros(now_us), w)
        })
    }
}

/// Writes plaintext for the backend (the client-address header first) through `callback`, as
/// `stud_conn_write_client`. On failure report `stud_conn_handle_backend_reset`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_write_backend(
    conn: *mut stud_conn,
    now_us: u64,
    callback: stud_write_callback,
    userdata: *mut c_void,
    out_n: *mut usize,
) -> stud_io_result {
    ffi_boundary! {
        let state = try_mut!(conn);
        let out_n = try_out!(out_n);
        write_through(callback, userdata, out_n, |w| {
            state.conn.write_backend(Instant::from_micros(now_us), w)
        })
    }
}

/// The next instant (same clock as `now_us`) at which to call `stud_conn_handle_timeout`, or
/// `STUD_NO_DEADLINE` when none is pending.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_poll_timeout(
    conn: *const stud_conn,
    deadline_us_out: *mut u64,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let out = try_out!(deadline_us_out);
        *out = state.conn.poll_timeout().map_or(STUD_NO_DEADLINE, Instant::as_micros);
        stud_result::STUD_OK
    }
}

/// Which socket readiness to wait for: a bitmask of `STUD_INTEREST_*`.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_interest(
    conn: *const stud_conn,
    interest_out: *mut u32,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let out = try_out!(interest_out);
        let i = state.conn.interest();
        *out = [
            (i.client_read, STUD_INTEREST_CLIENT_READ),
            (i.client_write, STUD_INTEREST_CLIENT_WRITE),
            (i.backend_read, STUD_INTEREST_BACKEND_READ),
            (i.backend_write, STUD_INTEREST_BACKEND_WRITE),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, bit)| acc | bit);
        stud_result::STUD_OK
    }
}

/// How many ciphertext bytes `stud_conn_handle_client_data` is sure to take now (0 while the
/// to-backend budget is full or the client's stream is over): read at most this much.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_client_read_capacity(
    conn: *const stud_conn,
    capacity_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let out = try_out!(capacity_out);
        *out = state.conn.client_read_capacity();
        stud_result::STUD_OK
    }
}

/// How many plaintext bytes `stud_conn_handle_backend_data` takes now (0 while the to-client
/// budget is full, before the backend is connected, or after its end of stream).
#[no_mangle]
pub unsafe extern "C" fn stud_conn_backend_read_capacity(
    conn: *const stud_conn,
    capacity_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let out = try_out!(capacity_out);
        *out = state.conn.backend_read_capacity();
        stud_result::STUD_OK
    }
}

/// Bytes held in flight: decrypted client bytes (and header bytes) not yet taken by the
/// backend, and ciphertext not yet taken by the client.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_buffered(
    conn: *const stud_conn,
    to_backend_out: *mut usize,
    to_client_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let to_backend_out = try_out!(to_backend_out);
        let to_client_out = try_out!(to_client_out);
        let b = state.conn.buffered();
        *to_backend_out = b.to_backend;
        *to_client_out = b.to_client;
        stud_result::STUD_OK
    }
}

/// Whether the TLS handshake is still in progress.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_is_handshaking(
    conn: *const stud_conn,
    yes_out: *mut bool,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let out = try_out!(yes_out);
        *out = state.conn.is_handshaking();
        stud_result::STUD_OK
    }
}

/// Whether the connection is closed: `stud_conn_poll_action` has returned `STUD_ACTION_CLOSE`.
/// A close that is decided but not yet polled reads false, so the reason is never skipped.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_is_closed(
    conn: *const stud_conn,
    yes_out: *mut bool,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let out = try_out!(yes_out);
        *out = state.conn.is_closed();
        stud_result::STUD_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// Every `STUD_CLOSE_<NAME> = n` of the committed header names stud-core's `NAMES[n - 1]`,
    /// and `stud_close_reason_name(n)` returns it.
    #[test]
    fn close_reason_numbers_name_stud_cores_table() {
        let header = include_str!("../include/stud.h");
        let mut seen = 0;
        for line in header.lines() {
            let Some(rest) = line.trim().strip_prefix("STUD_CLOSE_") else {
                continue;
            };
            let Some((name, number)) = rest.trim_end_matches(',').split_once(" = ") else {
                continue;
            };
            let n: u32 = number.parse().expect("a number");
            // SAFETY: the function returns a static NUL-terminated string, never NULL.
            #[expect(unsafe_code, reason = "reading the C string the function returns")]
            let c_name = unsafe { CStr::from_ptr(stud_close_reason_name(n)) };
            let c_name = c_name.to_str().expect("ASCII");
            match name {
                "NONE" => assert_eq!(c_name, "none"),
                "OTHER" => assert_eq!(c_name, "unknown"),
                _ => {
                    let index = usize::try_from(n - 1).expect("small");
                    assert_eq!(CloseReason::NAMES[index].to_uppercase(), name);
                    assert_eq!(c_name, CloseReason::NAMES[index]);
                    seen += 1;
                }
            }
        }
        assert_eq!(
            seen,
            CloseReason::NAMES.len(),
            "the header names every reason"
        );
    }
}
