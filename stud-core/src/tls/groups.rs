//! Key-exchange group lists in OpenSSL's syntax (hitch's `ecdh-curve`, OpenSSL's `-groups`:
//! `X25519:prime256v1:secp384r1`), mapped onto the groups the aws-lc-rs provider has.
//!
//! Rules, as for cipher lists (`suites.rs`):
//! - The list keeps its order: the server prefers its first group the client also offers.
//! - A name OpenSSL knows for a group rustls does not implement (X448, P-521, the finite-field
//!   groups) selects nothing and is reported as a warning.
//! - A name that is neither is an error: a typo must not silently change the key exchange.
//! - `auto` (OpenSSL's default) or an empty list keeps stud's defaults.

use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::SupportedKxGroup;

use crate::ConfigError;

/// The groups a list selects, in order, and the names it gave that select nothing here.
pub(crate) struct GroupChoice {
    /// `None`: the defaults.
    pub(crate) groups: Option<Vec<&'static dyn SupportedKxGroup>>,
    pub(crate) unsupported: Vec<String>,
}

/// The group an OpenSSL name stands for, `Ok(None)` for a real group stud does not offer.
fn group(name: &str) -> Result<Option<&'static dyn SupportedKxGroup>, ()> {
    Ok(Some(match name.to_ascii_lowercase().as_str() {
        "x25519" => kx_group::X25519,
        "prime256v1" | "secp256r1" | "p-256" => kx_group::SECP256R1,
        "secp384r1" | "p-384" => kx_group::SECP384R1,
        "x25519mlkem768" => kx_group::X25519MLKEM768,
        "secp256r1mlkem768" => kx_group::SECP256R1MLKEM768,
        "mlkem768" => kx_group::MLKEM768,
        "mlkem1024" => kx_group::MLKEM1024,
        "x448"
        | "secp521r1"
        | "p-521"
        | "ffdhe2048"
        | "ffdhe3072"
        | "ffdhe4096"
        | "ffdhe6144"
        | "ffdhe8192"
        | "brainpoolp256r1"
        | "brainpoolp384r1"
        | "brainpoolp512r1"
        | "brainpoolp256r1tls13"
        | "brainpoolp384r1tls13"
        | "brainpoolp512r1tls13" => return Ok(None),
        _ => return Err(()),
    }))
}

/// Parses `list` (names joined by `:`, also `,` or spaces).
pub(crate) fn parse(list: &str) -> Result<GroupChoice, ConfigError> {
    let names: Vec<&str> = list
        .split(|c: char| c == ':' || c == ',' || c.is_ascii_whitespace())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.iter().all(|n| n.eq_ignore_ascii_case("auto")) {
        return Ok(GroupChoice {
            groups: None,
            unsupported: Vec::new(),
        });
    }
    let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    let mut unsupported = Vec::new();
    for name in names {
        match group(name) {
            Ok(Some(g)) => {
                if !groups.iter().any(|known| known.name() == g.name()) {
                    groups.push(g);
                }
            }
            Ok(None) => unsupported.push(name.to_owned()),
            Err(()) => {
                return Err(ConfigError::Invalid {
                    what: "ecdh-curve",
                    detail: format!("unknown group '{name}' in '{list}'"),
                })
            }
        }
    }
    if groups.is_empty() {
        return Err(ConfigError::Invalid {
            what: "ecdh-curve",
            detail: format!(
                "'{list}' names no group stud offers (X25519, prime256v1, secp384r1, X25519MLKEM768)"
            ),
        });
    }
    Ok(GroupChoice {
        groups: Some(groups),
        unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Option<Vec<String>> {
        parse(list)
            .expect(list)
            .groups
            .map(|g| g.iter().map(|g| format!("{:?}", g.name())).collect())
    }

    #[test]
    fn openssl_names_map_in_order() {
        assert_eq!(
            names("X25519:prime256v1:secp384r1"),
            Some(vec![
                "X25519".into(),
                "secp256r1".into(),
                "secp384r1".into()
            ])
        );
        assert_eq!(
            names("P-384, x25519 X25519"),
            Some(vec!["secp384r1".into(), "X25519".into()])
        );
        assert_eq!(names("auto"), None);
        assert_eq!(names(""), None);
    }

    #[test]
    fn unsupported_groups_warn_and_unknown_ones_fail() {
        let choice = parse("X448:X25519:ffdhe2048").expect("parses");
        assert_eq!(choice.unsupported, ["X448", "ffdhe2048"]);
        assert_eq!(choice.groups.map(|g| g.len()), Some(1));
        assert!(parse("X25519:prime265v1").is_err());
        assert!(parse("X448:secp521r1").is_err(), "nothing left to offer");
    }
}
