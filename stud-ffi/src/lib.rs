//! # libstud: the C API of stud's TLS termination engine
//!
//! This crate builds `libstud.so` / `libstud.a`, described for C by `include/stud.h` (generated
//! from this source by cbindgen; a test fails when the committed header is stale). It exposes
//! the sans-IO engine of `stud-core` — one [`stud_conn`] per client connection, driven by the
//! caller's own event loop — plus its shared, immutable configuration and, for programs that
//! just want stud's loop, the reference server.
//!
//! Conventions (see `docs/c-api.md` for the full contract):
//! - every name starts with `stud_`; handles are opaque and come with `_new` and `_free`
//!   (`_free` accepts NULL);
//! - fallible functions return a [`stud_result`] whose numbers never change; out-parameters come
//!   last and are written only on success; every pointer is checked (`STUD_NULL_PARAMETER`);
//! - a panic never crosses into C: every entry point catches it and returns `STUD_PANIC`;
//! - time is `uint64_t` microseconds on the caller's monotonic clock.
//!
//! Module map: `ffi` (ownership casts, the only place that turns pointers into references),
//! `panic` (the boundary), `error` (result codes), `config`, `client_cert` (client-certificate
//! settings and what a connection learned of its client's certificate), `addr` (socket
//! addresses), `conn` (the handle and inputs), `output` (what a connection hands back),
//! `server`.

#![expect(
    non_camel_case_types,
    reason = "C names follow C conventions (`stud_conn`, `STUD_OK`) and cbindgen writes them \
              into the header verbatim"
)]
#![expect(
    clippy::missing_safety_doc,
    reason = "every exported function is `unsafe extern \"C\"` with the same contract, the \
              pointer validity its documentation states, so none has its own `# Safety`"
)]

mod addr;
mod client_cert;
mod config;
mod conn;
mod error;
mod ffi;
mod output;
mod panic;
mod server;

use std::ffi::c_char;

pub use client_cert::*;
pub use config::*;
pub use conn::*;
pub use error::*;
pub use output::*;
pub use server::*;

/// The library's version, `"MAJOR.MINOR.PATCH"`, as a static NUL-terminated string. The major
/// version is the ABI version (the soname is `libstud.so.MAJOR`).
#[no_mangle]
pub extern "C" fn stud_version() -> *const c_char {
    panic::ffi_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>()
    }
}
