//! The value of each kind of key, from text to what the model holds, with one clear error per
//! mistake: booleans, seconds, sizes, worker counts, protocol and cipher lists, ALPN names,
//! curve names and backend addresses. Where a value came from is the caller's to add.

use std::path::PathBuf;

use stud_core::{ClientVerifyMode, TlsVersion};

use crate::args::{parse_endpoint, Backend};

/// `on`/`off` and their synonyms (hitch's lexer takes the same words, the 2016 stud `1` too).
pub(crate) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "yes" | "y" | "true" | "t" | "1" => Ok(true),
        "off" | "no" | "n" | "false" | "f" | "0" => Ok(false),
        _ => Err(format!("invalid value '{text}': expected on or off")),
    }
}

/// Whether a value asks for nothing: the default of a refused or differing key, which may
/// stay in a file unchanged.
pub(crate) fn is_off(text: &str) -> bool {
    text.is_empty()
        || matches!(
            text.to_ascii_lowercase().as_str(),
            "off" | "no" | "n" | "false" | "f" | "0" | "none" | "auto"
        )
}

pub(crate) fn parse_secs(what: &str, text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|s| *s <= 365 * 24 * 3600)
        .ok_or_else(|| format!("invalid {what} '{text}': expected a number of seconds"))
}

pub(crate) fn parse_workers(text: &str) -> Result<usize, String> {
    if text == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid worker count '{text}': expected 1 to 1024 or 'auto'"
        )),
    }
}

/// `TLSv1.2,TLSv1.3` (or space-separated, as hitch writes it) → the versions to offer.
pub(crate) fn parse_versions(s: &str) -> Result<Vec<TlsVersion>, String> {
    let mut versions = Vec::new();
    for name in s.split([',', ' ']).filter(|n| !n.is_empty()) {
        let v = match name {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            "SSLv3" | "TLSv1" | "TLSv1.0" | "TLSv1.1" => {
                return Err(format!(
                    "tls-protos: {name} is not offered (broken or deprecated); use TLSv1.2 and/or TLSv1.3"
                ))
            }
            other => {
                return Err(format!(
                    "tls-protos: unknown protocol '{other}' (expected TLSv1.2 and/or TLSv1.3)"
                ))
            }
        };
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    if versions.is_empty() {
        return Err("tls-protos: no protocol named".into());
    }
    Ok(versions)
}

/// `h2,http/1.1` → the ALPN protocol names, in order. Each is 1 to 255 bytes (RFC 7301). Spaces
/// around names are dropped (hitch's example writes `"h2, http/1.1"`).
pub(crate) fn parse_alpn(s: &str) -> Result<Vec<Vec<u8>>, String> {
    s.split(',')
        .map(|name| {
            let name = name.trim();
            if name.is_empty() || name.len() > 255 {
                Err(format!(
                    "invalid ALPN protocol list '{s}': each name must be 1 to 255 bytes"
                ))
            } else {
                Ok(name.as_bytes().to_vec())
            }
        })
        .collect()
}

/// `none`, `optional` or `required` (hitch's `client-verify`; hitch also reads `require`).
pub(crate) fn parse_client_verify(text: &str) -> Result<ClientVerifyMode, String> {
    match text.to_ascii_lowercase().as_str() {
        "none" => Ok(ClientVerifyMode::None),
        "optional" => Ok(ClientVerifyMode::Optional),
        "required" | "require" => Ok(ClientVerifyMode::Required),
        _ => Err(format!(
            "invalid client-verify '{text}': expected none, optional or required"
        )),
    }
}

/// A TLS 1.3 suite list (`TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256`).
pub(crate) fn parse_ciphersuites(s: &str) -> Result<String, String> {
    let names: Vec<&str> = s.split(':').filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("ciphersuites: no suite named".into());
    }
    for name in &names {
        if !name.starts_with("TLS_") || name.contains("_WITH_") {
            return Err(format!(
                "ciphersuites: '{name}' is not a TLS 1.3 suite (TLS 1.2 suites go in ciphers)"
            ));
        }
    }
    Ok(names.join(":"))
}

/// The cipher list for the engine: `ciphers` governs TLS 1.2, `ciphersuites` TLS 1.3.
pub(crate) fn fold_ciphers(ciphers: Option<&str>, ciphersuites: Option<&str>) -> Option<String> {
    match (ciphers, ciphersuites) {
        (c, None) => c.map(str::to_string),
        // The engine's list governs TLS 1.3 once it names a TLS 1.3 suite: drop whatever
        // `ciphers` picked for 1.3, then add the 1.3 list in its order.
        (c, Some(suites)) => Some(format!("{}:-TLSv1.3:{suites}", c.unwrap_or("TLSv1.2"))),
    }
}

/// An `ecdh-curve` list, checked by the engine that will use it (so the file's line can be
/// named); the engine warns about groups it does not offer when it builds.
pub(crate) fn check_curves(text: &str) -> Result<String, String> {
    stud_core::ConfigBuilder::check_ecdh_curves(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

pub(crate) fn parse_size(what: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=(1 << 30)).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid {what} '{text}': expected a number of bytes from 1 to 1073741824"
        )),
    }
}

pub(crate) fn parse_backend(text: &str) -> Result<Backend, String> {
    if text.starts_with('/') {
        return Ok(Backend::Unix(PathBuf::from(text)));
    }
    let backend = parse_endpoint(text)?;
    if backend.host.is_none() {
        return Err(format!(
            "invalid backend address '{backend}': '*' is only meaningful for -f"
        ));
    }
    if backend.port == 0 {
        return Err(format!(
            "invalid backend address '{backend}': port 0 cannot be connected to"
        ));
    }
    Ok(Backend::Tcp(backend))
}
