//! Result codes with stable numbers, and their messages.

use std::ffi::{c_char, c_int};

use stud_core::ConfigError;

use crate::ffi::{try_out, try_slice_mut};
use crate::panic::ffi_boundary;

/// The outcome of a fallible call. `STUD_OK` is 0; every error has a number in the 7000s.
///
/// These numbers are part of the ABI: a code never changes its number or meaning, and numbers
/// are never reused. New codes may be added, so treat an unknown nonzero code as a generic
/// error. `stud_result_message` renders any code as text.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum stud_result {
    /// Success.
    STUD_OK = 0,
    /// A required pointer argument was NULL.
    STUD_NULL_PARAMETER = 7001,
    /// stud hit an internal bug (a Rust panic was caught). The handle involved should be freed.
    STUD_PANIC = 7002,
    /// An argument had an invalid value (unknown enum number, bad address, non-UTF-8 path, …).
    STUD_INVALID_PARAMETER = 7003,
    /// The caller's buffer is too small for the whole answer; nothing was written.
    STUD_INSUFFICIENT_SIZE = 7004,
    /// What was asked for does not exist (yet): no handshake info before the handshake, no
    /// close message before the close, no warning at that index.
    STUD_NOT_FOUND = 7005,
    /// The handle is in use or was used up (for example a server already running).
    STUD_ALREADY_USED = 7006,
    /// An operating-system call failed (binding a socket, the event loop).
    STUD_IO = 7007,
    /// The TLS library could not create a session for a new connection.
    STUD_TLS_SESSION = 7008,
    /// Configuration: a certificate or key file could not be read.
    STUD_CONFIG_READ = 7100,
    /// Configuration: a PEM block is malformed.
    STUD_CONFIG_PEM = 7101,
    /// Configuration: no certificate was found in the PEM.
    STUD_CONFIG_NO_CERTIFICATE = 7102,
    /// Configuration: no private key was found in the PEM.
    STUD_CONFIG_NO_PRIVATE_KEY = 7103,
    /// Configuration: more than one private key was found.
    STUD_CONFIG_MULTIPLE_PRIVATE_KEYS = 7104,
    /// Configuration: the private key is of an unusable type.
    STUD_CONFIG_UNSUPPORTED_KEY = 7105,
    /// Configuration: the private key does not match the certificate.
    STUD_CONFIG_KEY_MISMATCH = 7106,
    /// Configuration: the certificate could not be parsed.
    STUD_CONFIG_BAD_CERTIFICATE = 7107,
    /// Configuration: the cipher list names an unknown suite.
    STUD_CONFIG_UNKNOWN_CIPHER = 7108,
    /// Configuration: the cipher list leaves no suite usable with the enabled versions.
    STUD_CONFIG_NO_USABLE_CIPHER = 7109,
    /// Configuration: no protocol version is enabled.
    STUD_CONFIG_NO_PROTOCOL_VERSION = 7110,
    /// Configuration: no certificate was configured.
    STUD_CONFIG_NO_IDENTITY = 7111,
    /// Configuration: a numeric option is out of range (a zero timeout, a budget too large, …).
    STUD_CONFIG_INVALID = 7112,
    /// Configuration: the TLS library refused the configuration.
    STUD_CONFIG_TLS = 7113,
    /// Configuration: another problem; the message says which.
    STUD_CONFIG_OTHER = 7199,
}

impl stud_result {
    /// Every code, for lookups by number.
    const ALL: [stud_result; 24] = [
        stud_result::STUD_OK,
        stud_result::STUD_NULL_PARAMETER,
        stud_result::STUD_PANIC,
        stud_result::STUD_INVALID_PARAMETER,
        stud_result::STUD_INSUFFICIENT_SIZE,
        stud_result::STUD_NOT_FOUND,
        stud_result::STUD_ALREADY_USED,
        stud_result::STUD_IO,
        stud_result::STUD_TLS_SESSION,
        stud_result::STUD_CONFIG_READ,
        stud_result::STUD_CONFIG_PEM,
        stud_result::STUD_CONFIG_NO_CERTIFICATE,
        stud_result::STUD_CONFIG_NO_PRIVATE_KEY,
        stud_result::STUD_CONFIG_MULTIPLE_PRIVATE_KEYS,
        stud_result::STUD_CONFIG_UNSUPPORTED_KEY,
        stud_result::STUD_CONFIG_KEY_MISMATCH,
        stud_result::STUD_CONFIG_BAD_CERTIFICATE,
        stud_result::STUD_CONFIG_UNKNOWN_CIPHER,
        stud_result::STUD_CONFIG_NO_USABLE_CIPHER,
        stud_result::STUD_CONFIG_NO_PROTOCOL_VERSION,
        stud_result::STUD_CONFIG_NO_IDENTITY,
        stud_result::STUD_CONFIG_INVALID,
        stud_result::STUD_CONFIG_TLS,
        stud_result::STUD_CONFIG_OTHER,
    ];

    /// The code with this number, if there is one.
    pub(crate) fn from_u32(n: u32) -> Option<stud_result> {
        Self::ALL.into_iter().find(|r| *r as u32 == n)
    }

    /// A one-line description.
    pub(crate) fn message(self) -> &'static str {
        match self {
            stud_result::STUD_OK => "success",
            stud_result::STUD_NULL_PARAMETER => "a required pointer argument was NULL",
            stud_result::STUD_PANIC => "internal error in libstud (a panic was caught)",
            stud_result::STUD_INVALID_PARAMETER => "an argument has an invalid value",
            stud_result::STUD_INSUFFICIENT_SIZE => "the buffer is too small",
            stud_result::STUD_NOT_FOUND => "not available (yet)",
            stud_result::STUD_ALREADY_USED => "the handle is in use or already used",
            stud_result::STUD_IO => "an operating-system call failed",
            stud_result::STUD_TLS_SESSION => "cannot create a TLS session",
            stud_result::STUD_CONFIG_READ => "cannot read a certificate or key file",
            stud_result::STUD_CONFIG_PEM => "malformed PEM data",
            stud_result::STUD_CONFIG_NO_CERTIFICATE => "no certificate found",
            stud_result::STUD_CONFIG_NO_PRIVATE_KEY => "no private key found",
            stud_result::STUD_CONFIG_MULTIPLE_PRIVATE_KEYS => "more than one private key",
            stud_result::STUD_CONFIG_UNSUPPORTED_KEY => "unusable private key",
            stud_result::STUD_CONFIG_KEY_MISMATCH => {
                "the private key does not match the certificate"
            }
            stud_result::STUD_CONFIG_BAD_CERTIFICATE => "bad certificate",
            stud_result::STUD_CONFIG_UNKNOWN_CIPHER => "unknown cipher suite in the cipher list",
            stud_result::STUD_CONFIG_NO_USABLE_CIPHER => "the cipher list selects no usable suite",
            stud_result::STUD_CONFIG_NO_PROTOCOL_VERSION => "no TLS protocol version enabled",
            stud_result::STUD_CONFIG_NO_IDENTITY => "no certificate configured",
            stud_result::STUD_CONFIG_INVALID => "a configuration value is out of range",
            stud_result::STUD_CONFIG_TLS => "the TLS library rejected the configuration",
            stud_result::STUD_CONFIG_OTHER => "invalid configuration",
        }
    }
}

impl From<&ConfigError> for stud_result {
    fn from(e: &ConfigError) -> Self {
        match e {
            ConfigError::Read { .. } => stud_result::STUD_CONFIG_READ,
            ConfigError::Pem { .. } => stud_result::STUD_CONFIG_PEM,
            ConfigError::NoCertificate { .. } => stud_result::STUD_CONFIG_NO_CERTIFICATE,
            ConfigError::NoPrivateKey { .. } => stud_result::STUD_CONFIG_NO_PRIVATE_KEY,
            ConfigError::MultiplePrivateKeys { .. } => {
                stud_result::STUD_CONFIG_MULTIPLE_PRIVATE_KEYS
            }
            ConfigError::UnsupportedKey { .. } => stud_result::STUD_CONFIG_UNSUPPORTED_KEY,
            ConfigError::KeyMismatch { .. } => stud_result::STUD_CONFIG_KEY_MISMATCH,
            ConfigError::BadCertificate { .. } => stud_result::STUD_CONFIG_BAD_CERTIFICATE,
            ConfigError::UnknownCipher { .. } => stud_result::STUD_CONFIG_UNKNOWN_CIPHER,
            ConfigError::NoUsableCipher { .. } => stud_result::STUD_CONFIG_NO_USABLE_CIPHER,
            ConfigError::NoProtocolVersion => stud_result::STUD_CONFIG_NO_PROTOCOL_VERSION,
            ConfigError::NoIdentity => stud_result::STUD_CONFIG_NO_IDENTITY,
            ConfigError::Invalid { .. } => stud_result::STUD_CONFIG_INVALID,
            ConfigError::Tls(_) => stud_result::STUD_CONFIG_TLS,
            // The engine may grow new kinds of configuration error.
            _ => stud_result::STUD_CONFIG_OTHER,
        }
    }
}

/// The outcome of a call that does I/O through a callback: 0 for success, otherwise an `errno`
/// value (`EAGAIN` when the callback would block, the callback's own error otherwise, `EINVAL`
/// for a NULL argument, `EIO` for an internal error).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct stud_io_result(pub c_int);

/// Copies `text` and a terminating NUL into `buf` if all of it fits; returns the text length
/// (without the NUL), or `None` if it does not fit.
pub(crate) fn copy_c_string(text: &[u8], buf: &mut [u8]) -> Option<usize> {
    let dst = buf.get_mut(..=text.len())?;
    dst[..text.len()].copy_from_slice(text);
    dst[text.len()] = 0;
    Some(text.len())
}

/// Copies as much of `text` as fits into `buf`, always NUL-terminated (unless `buf` is empty),
/// cutting at a UTF-8 character boundary. Returns the length written without the NUL.
pub(crate) fn copy_c_string_truncated(text: &str, buf: &mut [u8]) -> usize {
    let Some(room) = buf.len().checked_sub(1) else {
        return 0;
    };
    let mut n = text.len().min(room);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    buf[n] = 0;
    n
}

/// Writes the description of `result` into `buf` as a NUL-terminated string.
///
/// `buf` has room for `len` bytes; 128 is always enough. On success `*out_n` is the length of
/// the text without the NUL. An unknown code gets a generic description, so this works with
/// codes from newer versions of libstud.
///
/// Returns `STUD_INSUFFICIENT_SIZE` (writing nothing) when the text and its NUL do not fit.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn stud_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> stud_result {
    ffi_boundary! {
        let buf = try_slice_mut!(buf.cast::<u8>(), len);
        let out_n = try_out!(out_n);
        let text = match stud_result::from_u32(result) {
            Some(r) => r.message(),
            None => "unknown stud_result code",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable() {
        // These numbers are ABI: this test is the tripwire against renumbering.
        assert_eq!(stud_result::STUD_OK as u32, 0);
        assert_eq!(stud_result::STUD_NULL_PARAMETER as u32, 7001);
        assert_eq!(stud_result::STUD_PANIC as u32, 7002);
        assert_eq!(stud_result::STUD_TLS_SESSION as u32, 7008);
        assert_eq!(stud_result::STUD_CONFIG_READ as u32, 7100);
        assert_eq!(stud_result::STUD_CONFIG_TLS as u32, 7113);
        assert_eq!(stud_result::STUD_CONFIG_OTHER as u32, 7199);
    }

    #[test]
    fn every_code_round_trips_and_fits_128_bytes() {
        for r in stud_result::ALL {
            assert_eq!(stud_result::from_u32(r as u32), Some(r));
            assert!(r.message().len() < 128);
        }
        assert_eq!(stud_result::from_u32(6999), None);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut buf = [0xffu8; 4];
        assert_eq!(copy_c_string_truncated("aé…", &mut buf), 3);
        assert_eq!(&buf, b"a\xc3\xa9\0");
        let mut buf = [0xffu8; 3];
        assert_eq!(copy_c_string_truncated("aé", &mut buf), 1);
        assert_eq!(&buf[..2], b"a\0");
        assert_eq!(copy_c_string_truncated("x", &mut []), 0);
    }

    #[test]
    fn messages_are_all_or_nothing() {
        let mut buf = [0 as c_char; 8];
        let mut n = 99;
        let r = unsafe { stud_result_message(0, buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, stud_result::STUD_OK);
        assert_eq!(n, 7);
        let r = unsafe { stud_result_message(7001, buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, stud_result::STUD_INSUFFICIENT_SIZE);
        assert_eq!(n, 7);
    }
}
