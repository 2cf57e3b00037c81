//! Client certificates from C: the verification settings of a `stud_config_builder`, and what a
//! `stud_conn` learned about its client's certificate.
//!
//! Settings follow the builder's rules (copied inputs, files read by
//! `stud_config_builder_build`, whose error message names the file at fault). The certificate
//! chain of a connection is borrowed: its bytes stay valid until the connection is freed.

use std::ffi::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use stud_core::{ClientVerify, ClientVerifyMode};

use crate::config::{stud_config_builder, stud_slice_bytes, update};
use crate::conn::stud_conn;
use crate::error::stud_result;
use crate::ffi::{try_c_str, try_mut, try_out, try_ref, try_slice};
use crate::panic::ffi_boundary;

/// Whether clients are asked for a certificate (`stud_config_builder_set_client_verify`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_client_verify_mode {
    /// Ask for none (default).
    STUD_CLIENT_VERIFY_NONE = 0,
    /// Ask for one; serve a client that sends none, refuse one whose certificate does not
    /// verify.
    STUD_CLIENT_VERIFY_OPTIONAL = 1,
    /// Refuse a client without a certificate that verifies.
    STUD_CLIENT_VERIFY_REQUIRED = 2,
}

/// What became of the client's certificate (`stud_conn_client_verify`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_client_verify_result {
    /// The configuration asks for no client certificate.
    STUD_CLIENT_VERIFY_NOT_REQUESTED = 0,
    /// A certificate was asked for and the client sent none (optional verification).
    STUD_CLIENT_VERIFY_NO_CERTIFICATE = 1,
    /// The client's certificate verified (for a resumed session: when the session was made).
    STUD_CLIENT_VERIFY_VERIFIED = 2,
}

fn path_of(c: &std::ffi::CStr) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(c.to_bytes()))
}

/// Sets whether clients are asked for a certificate: a `stud_client_verify_mode` value
/// (default `STUD_CLIENT_VERIFY_NONE`). Another number gives `STUD_INVALID_PARAMETER`.
/// `OPTIONAL` and `REQUIRED` need CA certificates (`stud_config_builder_add_client_ca_*`), or
/// the build fails with `STUD_CONFIG_INVALID`.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_client_verify(
    builder: *mut stud_config_builder,
    mode: u32,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let mode = match mode {
            m if m == stud_client_verify_mode::STUD_CLIENT_VERIFY_NONE as u32 => {
                ClientVerifyMode::None
            }
            m if m == stud_client_verify_mode::STUD_CLIENT_VERIFY_OPTIONAL as u32 => {
                ClientVerifyMode::Optional
            }
            m if m == stud_client_verify_mode::STUD_CLIENT_VERIFY_REQUIRED as u32 => {
                ClientVerifyMode::Required
            }
            _ => return stud_result::STUD_INVALID_PARAMETER,
        };
        update(builder, |b| b.client_verify(mode));
        stud_result::STUD_OK
    }
}

/// Adds the CA certificates of a PEM buffer (copied) as trust anchors for client
/// certificates. Checked by the build: no certificate in it gives
/// `STUD_CONFIG_NO_CERTIFICATE`, a malformed one `STUD_CONFIG_PEM` or
/// `STUD_CONFIG_BAD_CERTIFICATE`.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_client_ca_pem(
    builder: *mut stud_config_builder,
    pem: *const u8,
    pem_len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let pem = try_slice!(pem, pem_len);
        update(builder, |b| b.client_verify_ca_pem(pem));
        stud_result::STUD_OK
    }
}

/// Adds the CA certificates of a PEM file as trust anchors for client certificates; read by
/// the build (`STUD_CONFIG_READ` when it cannot be). `path` is copied.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_client_ca_file(
    builder: *mut stud_config_builder,
    path: *const c_char,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let path = path_of(try_c_str!(path));
        update(builder, |b| b.client_verify_ca_file(path));
        stud_result::STUD_OK
    }
}

/// Adds a certificate revocation list file (PEM `X509 CRL` blocks, or DER), read by the build
/// (`STUD_CONFIG_READ`, or `STUD_CONFIG_INVALID` for a CRL that does not parse). Every build
/// reads it again, so building a new configuration picks up a new CRL. A revoked client is
/// refused with the `certificate_revoked` alert. `path` is copied.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_crl_file(
    builder: *mut stud_config_builder,
    path: *const c_char,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let path = path_of(try_c_str!(path));
        update(builder, |b| b.crl_file(path));
        stud_result::STUD_OK
    }
}

/// Adds a certificate revocation list from a buffer (PEM or DER, copied); checked by the build.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_add_crl(
    builder: *mut stud_config_builder,
    crl: *const u8,
    crl_len: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        let crl = try_slice!(crl, crl_len);
        update(builder, |b| b.crl(crl));
        stud_result::STUD_OK
    }
}

/// The most intermediate CA certificates a client may send between its certificate and a
/// trust anchor (OpenSSL's verify depth: 0 accepts only certificates an anchor issued itself).
/// Default: no limit beyond the verifier's own.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_client_verify_depth(
    builder: *mut stud_config_builder,
    max_intermediates: usize,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.client_verify_depth(max_intermediates));
        stud_result::STUD_OK
    }
}

/// With `STUD_CLIENT_ADDRESS_PROXY_V2`, also sends the client's certificate to the backend
/// (default false): DER in the SSL TLV's sub-TLV 0x28 and PEM in the custom TLV 0xE0.
#[no_mangle]
pub unsafe extern "C" fn stud_config_builder_set_proxy_client_cert(
    builder: *mut stud_config_builder,
    yes: bool,
) -> stud_result {
    ffi_boundary! {
        let builder = try_mut!(builder);
        update(builder, |b| b.proxy_client_cert(yes));
        stud_result::STUD_OK
    }
}

/// Writes what became of the client's certificate into `*result_out`, a
/// `stud_client_verify_result` value. `STUD_NOT_FOUND` before the handshake completed.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_client_verify(
    conn: *const stud_conn,
    result_out: *mut u32,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let result_out = try_out!(result_out);
        let Some(info) = &state.handshake else {
            return stud_result::STUD_NOT_FOUND;
        };
        *result_out = match info.client_verify {
            None => stud_client_verify_result::STUD_CLIENT_VERIFY_NOT_REQUESTED,
            Some(ClientVerify::NoCertificate) => {
                stud_client_verify_result::STUD_CLIENT_VERIFY_NO_CERTIFICATE
            }
            Some(ClientVerify::Verified) => stud_client_verify_result::STUD_CLIENT_VERIFY_VERIFIED,
        } as u32;
        stud_result::STUD_OK
    }
}

/// Writes how many certificates the client sent into `*count_out` (0 when none was asked for
/// or sent). `STUD_NOT_FOUND` before the handshake completed.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_peer_certificate_count(
    conn: *const stud_conn,
    count_out: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let count_out = try_out!(count_out);
        let Some(info) = &state.handshake else {
            return stud_result::STUD_NOT_FOUND;
        };
        *count_out = info.peer_certificates.len();
        stud_result::STUD_OK
    }
}

/// Points `*der_out` at certificate number `index` of the client's chain (0 is the client's
/// own certificate, then the intermediates it sent), DER-encoded. The bytes are borrowed: they
/// stay valid and unchanged until the connection is freed. `STUD_NOT_FOUND` before the
/// handshake completed or past the last certificate.
#[no_mangle]
pub unsafe extern "C" fn stud_conn_peer_certificate(
    conn: *const stud_conn,
    index: usize,
    der_out: *mut stud_slice_bytes,
) -> stud_result {
    ffi_boundary! {
        let state = try_ref!(conn);
        let der_out = try_out!(der_out);
        let Some(cert) = state
            .handshake
            .as_ref()
            .and_then(|info| info.peer_certificates.get(index))
        else {
            return stud_result::STUD_NOT_FOUND;
        };
        *der_out = stud_slice_bytes {
            data: cert.as_ptr(),
            len: cert.len(),
        };
        stud_result::STUD_OK
    }
}
