//! `stud_config_builder` and `stud_config`: the shared, immutable configuration.

use std::ffi::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stud_core::{ClientAddressMode, Config, ConfigBuilder, TlsVersion};

use crate::error::{copy_c_string, copy_c_string_truncated, stud_result};
use crate::ffi::{
    arc_free, arc_into_ptr, box_from_ptr, box_into_ptr, impl_handle, slice, try_c_str, try_mut,
    try_out, try_ref, try_slice, try_slice_mut,
};
use crate::panic::ffi_boundary;

/// Collects configuration settings; `stud_config_builder_build` turns it into a `stud_config`.
/// Not thread-safe: use a builder from one thread at a time.
#[derive(Debug)]
pub struct stud_config_builder {
    _private: [u8; 0],
}
impl_handle!(stud_config_builder => ConfigBuilder, BoxHandle);

/// The immutable configuration shared by connections: certificate, protocol versions, ciphers,
/// timeouts, budgets, client-address mode. Reference-counted and thread-safe: any number of
/// threads may create connections from one config at the same time.
#[derive(Debug)]
pub struct stud_config {
    _private: [u8; 0],
}
impl_handle!(stud_config => Config, ArcHandle);

/// TLS 1.2, as a `uint16_t` protocol version number.
pub const STUD_TLS_1_2: u16 = 0x0303;
/// TLS 1.3, as a `uint16_t` protocol version number.
pub const STUD_TLS_1_3: u16 = 0x0304;

/// How the backend learns the client's address (`stud_config_builder_set_client_address`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_client_address {
    /// Send nothing before the client's bytes (default).
    STUD_CLIENT_ADDRESS_NONE = 0,
    /// stud's `--write-ip`: one family octet (2 for IPv4, 10 for IPv6), then the 4 or 16
    /// address octets in network order.
    STUD_CLIENT_ADDRESS_WRITE_IP = 1,
    /// stud's `--write-proxy`: a HAProxy PROXY protocol version 1 line.
    STUD_CLIENT_ADDRESS_PROXY_V1 = 2,
    /// stud's `--write-proxy-v2`: a binary HAProxy PROXY protocol version 2 header, with TLVs
    /// for the agreed ALPN protocol, the SNI host name, the TLS version and cipher, and the
    /// client certificate's CN (see also `stud_config_builder_set_proxy_client_cert`).
    STUD_CLIENT_ADDRESS_PROXY_V2 = 3,
}

/// A borrowed byte string: `len` bytes at `data`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct stud_slice_bytes {
    /// The bytes (may be NULL when `len` is 0).
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

pub(crate) fn tls_version_from_u16(v: u16) -> Option<TlsVersion> {
    match v {
        STUD_TLS_1_2 => Some(TlsVersion::Tls12),
        STUD_TLS_1_3 => Some(TlsVersion::Tls13),
        _ => None,
    }
}

pub(crate) fn tls_version_to_u16(v: TlsVersion) -> u16 {
    match v {
        TlsVersion::Tls12 => STUD_TLS_1_2,
        TlsVersion::Tls13 => STUD_TLS_1_3,
    }
}

/// Applies one `ConfigBuilder` method to the builder behind a handle.
pub(crate) fn update(builder: &mut ConfigBuilder, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) {
    *builder = f(std::mem::take(builder));
}

/// A new builder with stud's defaults: TLS 1.2 and 1.3, the default cipher suites, handshake
/// and backend connect timeouts of 30 s, no idle timeout, a 60 s linger timeout, budgets of
/// 64 KiB in each direction, no client-address header.
///
/// At least one certificate must be added before building. Free with `stud_config_builder_free`, or hand it
/// to `stud_config_builder_build`, which frees it. Returns NULL only on an internal error.
#[no_mangle]
pub extern "C" fn stud_config_builder_new() -> *mut stud_config_builder {
    ffi_boundary! {
        box_into_ptr::<stud_config_builder>(Config::builder())
    }
}

/// Frees a builder that was not built. NULL does nothing.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_free(builder: *mut stud_config_builder) {
    ffi_boundary! {
        // SAFETY: the caller gives up a builder from `stud_config_builder_new`, once.
        drop(unsafe { box_from_ptr(builder) });
    }
}

/// Adds a certificate chain and its private key from one PEM buffer (stud's combined format).
/// The bytes are copied.
///
/// Every `stud_config_builder_add_*` call adds a certificate. With several, each handshake gets
/// the one whose names cover the client's SNI and whose key suits the client; the first added
/// is the default.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_pem(
    builder: *mut stud_config_builder,
    pem: *const u8,
    pem_len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let pem = try_slice!(pem, pem_len);
        update(builder, |b| b.pem(pem));
        stud_result::STUD_OK
    }
}

/// Adds a certificate chain and its private key from one PEM file, read by
/// `stud_config_builder_build`. `path` is a NUL-terminated path, copied.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_pem_file(
    builder: *mut stud_config_builder,
    path: *const c_char,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let path = Path::new(std::ffi::OsStr::from_bytes(try_c_str!(path).to_bytes()));
        update(builder, |b| b.pem_file(path));
        stud_result::STUD_OK
    }
}

/// Adds a certificate chain and its private key from two PEM files, read by
/// `stud_config_builder_build`. The paths are copied.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_cert_and_key_files(
    builder: *mut stud_config_builder,
    chain_path: *const c_char,
    key_path: *const c_char,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let chain = Path::new(std::ffi::OsStr::from_bytes(try_c_str!(chain_path).to_bytes()));
        let key = Path::new(std::ffi::OsStr::from_bytes(try_c_str!(key_path).to_bytes()));
        update(builder, |b| b.cert_and_key_files(chain, key));
        stud_result::STUD_OK
    }
}

/// Adds a certificate chain and its private key from two PEM buffers, copied.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_cert_and_key_pem(
    builder: *mut stud_config_builder,
    chain: *const u8,
    chain_len: usize,
    key: *const u8,
    key_len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let chain = try_slice!(chain, chain_len);
        let key = try_slice!(key, key_len);
        update(builder, |b| b.cert_and_key_pem(chain, key));
        stud_result::STUD_OK
    }
}

/// Staples a DER-encoded OCSP response (RFC 6960 `OCSPResponse`, copied) to the certificate
/// added last; clients that ask for certificate status get it in the handshake. Checked by
/// `stud_config_builder_build`: it must be a successful response, and a certificate must have
/// been added before it. Refresh it before its `nextUpdate` by building a new configuration.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_ocsp_response(
    builder: *mut stud_config_builder,
    der: *const u8,
    der_len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let der = try_slice!(der, der_len);
        update(builder, |b| b.ocsp_response(der));
        stud_result::STUD_OK
    }
}

/// Sets the protocol versions to offer: `len` values among `STUD_TLS_1_2` and `STUD_TLS_1_3`.
/// An unknown number gives `STUD_INVALID_PARAMETER` and leaves the setting unchanged; an empty
/// list makes the build fail with `STUD_CONFIG_NO_PROTOCOL_VERSION`.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_versions(
    builder: *mut stud_config_builder,
    versions: *const u16,
    len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        // SAFETY: the caller passes `len` readable, aligned `uint16_t` values, or NULL.
        let Some(raw) = (unsafe { slice(versions, len) }) else {
            return stud_result::STUD_NULL_PARAMETER;
        };
        let mut list = Vec::with_capacity(raw.len());
        for v in raw {
            match tls_version_from_u16(*v) {
                Some(v) => list.push(v),
                None => return stud_result::STUD_INVALID_PARAMETER,
            }
        }
        update(builder, |b| b.versions(&list));
        stud_result::STUD_OK
    }
}

/// Sets the master secret session-ticket keys derive from (at least 32 bytes, copied; checked
/// by the build). Processes and hosts given the same secret resume each other's sessions.
/// Default: a random secret made by the build.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_ticket_secret(
    builder: *mut stud_config_builder,
    secret: *const u8,
    len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let secret = try_slice!(secret, len);
        update(builder, |b| b.ticket_secret(secret));
        stud_result::STUD_OK
    }
}

/// Like `stud_config_builder_set_ticket_secret`, from a file read by the build (trailing
/// whitespace ignored). `path` is copied.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_ticket_secret_file(
    builder: *mut stud_config_builder,
    path: *const c_char,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let path = Path::new(std::ffi::OsStr::from_bytes(try_c_str!(path).to_bytes()));
        update(builder, |b| b.ticket_secret_file(path));
        stud_result::STUD_OK
    }
}

/// Sets the cipher list, in OpenSSL syntax (`ECDHE-RSA-AES128-GCM-SHA256:…`) or IANA names.
/// Checked by `stud_config_builder_build`. Must be UTF-8 (else `STUD_INVALID_PARAMETER`).
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_ciphers(
    builder: *mut stud_config_builder,
    list: *const c_char,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let Ok(list) = try_c_str!(list).to_str() else {
            return stud_result::STUD_INVALID_PARAMETER;
        };
        update(builder, |b| b.ciphers(list));
        stud_result::STUD_OK
    }
}

/// Chooses the cipher suite by the server's preference (true, the default) or the client's.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_prefer_server_ciphers(
    builder: *mut stud_config_builder,
    yes: bool,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.prefer_server_ciphers(yes));
        stud_result::STUD_OK
    }
}

/// Sets the ALPN protocols to accept, most preferred first (`len` entries; the bytes are
/// copied). With none (the default) ALPN is not negotiated. An empty protocol name or one longer
/// than 255 bytes gives `STUD_INVALID_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_alpn_protocols(
    builder: *mut stud_config_builder,
    protocols: *const stud_slice_bytes,
    len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        // SAFETY: the caller passes `len` readable, aligned `stud_slice_bytes`, or NULL.
        let Some(entries) = (unsafe { slice(protocols, len) }) else {
            return stud_result::STUD_NULL_PARAMETER;
        };
        let mut list = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = try_slice!(entry.data, entry.len);
            if name.is_empty() || name.len() > 255 {
                return stud_result::STUD_INVALID_PARAMETER;
            }
            list.push(name.to_vec());
        }
        update(builder, |b| b.alpn_protocols(list));
        stud_result::STUD_OK
    }
}

/// Issues TLS session tickets (true, the default) or not.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_session_tickets(
    builder: *mut stud_config_builder,
    yes: bool,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.session_tickets(yes));
        stud_result::STUD_OK
    }
}

/// Deadline for the whole handshake, in milliseconds from `stud_conn_new` (default 30000).
/// Zero makes the build fail.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_handshake_timeout_ms(
    builder: *mut stud_config_builder,
    ms: u64,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.handshake_timeout(Duration::from_millis(ms)));
        stud_result::STUD_OK
    }
}

/// Deadline for the backend to accept, in milliseconds from the end of the handshake
/// (default 30000). Zero makes the build fail.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_backend_connect_timeout_ms(
    builder: *mut stud_config_builder,
    ms: u64,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.backend_connect_timeout(Duration::from_millis(ms)));
        stud_result::STUD_OK
    }
}

/// Closes an established connection after this many milliseconds with no byte moving either
/// way; 0 (the default) means never.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_idle_timeout_ms(
    builder: *mut stud_config_builder,
    ms: u64,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let t = (ms > 0).then(|| Duration::from_millis(ms));
        update(builder, |b| b.idle_timeout(t));
        stud_result::STUD_OK
    }
}

/// Once one direction has finished (or the connection is closing), how many milliseconds the
/// rest may go without progress before the connection is closed (default 60000). Zero makes the
/// build fail.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_linger_timeout_ms(
    builder: *mut stud_config_builder,
    ms: u64,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.linger_timeout(Duration::from_millis(ms)));
        stud_result::STUD_OK
    }
}

/// Most decrypted client bytes held for a slow backend (512 to 64 MiB; default 16384). Checked
/// by the build. Records are decrypted whole, so up to one record (16 KiB) more may be held.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_to_backend_budget(
    builder: *mut stud_config_builder,
    bytes: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.to_backend_budget(bytes));
        stud_result::STUD_OK
    }
}

/// Most encrypted bytes held for a slow client (512 to 64 MiB; default 65536). Checked by the
/// build.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_to_client_budget(
    builder: *mut stud_config_builder,
    bytes: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.to_client_budget(bytes));
        stud_result::STUD_OK
    }
}

/// Expects every connection to start with a PROXY protocol header (v1 or v2) from a load
/// balancer in front (default false). Its addresses replace the socket's in the client-address
/// header; a connection that starts otherwise closes with `STUD_CLOSE_BAD_PROXY_HEADER`. Turn
/// it on only where every client comes through such a balancer.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_accept_proxy_header(
    builder: *mut stud_config_builder,
    yes: bool,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.accept_proxy_header(yes));
        stud_result::STUD_OK
    }
}

/// Sets how the backend learns the client's address: a `stud_client_address` value. Another
/// number gives `STUD_INVALID_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_client_address(
    builder: *mut stud_config_builder,
    mode: u32,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let mode = match mode {
            m if m == stud_client_address::STUD_CLIENT_ADDRESS_NONE as u32 => {
                ClientAddressMode::None
            }
            m if m == stud_client_address::STUD_CLIENT_ADDRESS_WRITE_IP as u32 => {
                ClientAddressMode::WriteIp
            }
            m if m == stud_client_address::STUD_CLIENT_ADDRESS_PROXY_V1 as u32 => {
                ClientAddressMode::ProxyV1
            }
            m if m == stud_client_address::STUD_CLIENT_ADDRESS_PROXY_V2 as u32 => {
                ClientAddressMode::ProxyV2
            }
            _ => return stud_result::STUD_INVALID_PARAMETER,
        };
        update(builder, |b| b.client_address(mode));
        stud_result::STUD_OK
    }
}

/// Checks the settings, loads the certificate and builds the configuration.
///
/// The builder is freed in every case (success or error) unless `builder` itself is NULL, so
/// never use it again after this call.
///
/// On success `*config_out` receives a new `stud_config` (free it with `stud_config_free`).
/// On error it is left untouched and, if `err_buf` is not NULL, a NUL-terminated description
/// naming the file or value at fault is written there, cut to fit `err_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_build(
    builder: *mut stud_config_builder,
    err_buf: *mut c_char,
    err_len: usize,
    config_out: *mut *const stud_config,
) -> stud_result {
    ffi_boundary! {
        // SAFETY: the caller hands over a builder from `stud_config_builder_new`, once.
        let Some(builder) = (unsafe { box_from_ptr(builder) }) else {
            return stud_result::STUD_NULL_PARAMETER;
        };
        // SAFETY: a NULL error buffer is allowed; otherwise it has `err_len` writable bytes.
        let err_buf = unsafe { crate::ffi::slice_mut(err_buf.cast::<u8>(), err_len) };
        let report = |text: &str| {
            if let Some(buf) = err_buf {
                copy_c_string_truncated(text, buf);
            }
        };
        // SAFETY: the caller passes a valid pointer for the config out-parameter, or NULL.
        let config_out = match unsafe { crate::ffi::out(config_out) } {
            Some(out) => out,
            None => {
                report("config_out is NULL");
                return stud_result::STUD_NULL_PARAMETER;
            }
        };
        match builder.build() {
            Ok(config) => {
                *config_out = arc_into_ptr::<stud_config>(Arc::new(config));
                stud_result::STUD_OK
            }
            Err(e) => {
                report(&e.to_string());
                stud_result::from(&e)
            }
        }
    }
}

/// Drops the caller's reference to a config. Connections made from it keep their own
/// references, so the config may be freed while they live. NULL does nothing.
#[no_mangle]
pub unsafe extern "C" fn stud_config_free(config: *const stud_config) {
    ffi_boundary! {
        // SAFETY: the caller gives up its reference from `stud_config_builder_build`, once.
        unsafe { arc_free(config) };
    }
}

/// How many warnings the build produced (cipher names that OpenSSL knows but stud does not
/// offer, for instance); each is worth logging.
#[no_mangle]
pub unsafe extern "C" fn stud_config_warning_count(
    config: *const stud_config,
    count_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let config = try_ref!(config);
        let count_out = try_out!(count_out);
        *count_out = config.warnings().len();
        stud_result::STUD_OK
    }
}

/// Writes warning number `index` (from 0) into `buf` as a NUL-terminated string and its length
/// (without the NUL) into `*out_n`. `STUD_NOT_FOUND` past the last warning,
/// `STUD_INSUFFICIENT_SIZE` (writing nothing) when it does not fit.
#[no_mangle]
pub unsafe extern "C" fn stud_config_warning(
    config: *const stud_config,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let config = try_ref!(config);
        let buf = try_slice_mut!(buf.cast::<u8>(), len);
        let out_n = try_out!(out_n);
        let Some(text) = config.warnings().get(index) else {
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
