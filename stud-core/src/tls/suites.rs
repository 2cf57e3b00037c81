//! Cipher lists in OpenSSL's syntax, mapped onto the suites rustls offers.
//!
//! stud took `-c` as an OpenSSL cipher string, so existing configurations name suites such as
//! `ECDHE-RSA-AES128-GCM-SHA256` and use the grammar `A:B`, `!X`, `-X`, `+X`, `A+B` and keywords
//! such as `HIGH` or `ECDHE`. IANA names (`TLS_AES_128_GCM_SHA256`,
//! `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`) are accepted too.
//!
//! Rules:
//! - Every name maps to the suites rustls supports; a real OpenSSL name of a suite rustls does
//!   not implement (CBC, RC4, static RSA, DHE, …) selects nothing and is reported as a warning.
//! - A name that is neither a suite, a keyword, nor made of OpenSSL's cipher-name words is an
//!   error: a typo must not silently change what a server offers.
//! - As with OpenSSL's `-cipher`, a list that names no TLS 1.3 suite leaves the TLS 1.3 suites at
//!   their defaults; naming any TLS 1.3 suite makes the list govern TLS 1.3 as well.
//! - The result keeps the list's order (server preference when enabled).

use rustls::crypto::aws_lc_rs::cipher_suite as cs;
use rustls::SupportedCipherSuite;

use crate::ConfigError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Any,
    Rsa,
    Ecdsa,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bulk {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20,
}

struct Entry {
    openssl: &'static str,
    iana: &'static str,
    suite: SupportedCipherSuite,
    tls13: bool,
    auth: Auth,
    bulk: Bulk,
}

const fn entry(
    openssl: &'static str,
    iana: &'static str,
    suite: SupportedCipherSuite,
    tls13: bool,
    auth: Auth,
    bulk: Bulk,
) -> Entry {
    Entry {
        openssl,
        iana,
        suite,
        tls13,
        auth,
        bulk,
    }
}

/// Every suite stud can offer, in the default preference order. TLS 1.3 puts AES-128-GCM
/// first (as Mozilla's recommended configurations do): it is the suite every TLS 1.3 peer must
/// implement, no weaker in practice, and its SHA-256 key schedule costs a full handshake about
/// 11 % fewer instructions than AES-256-GCM's SHA-384 for a client that offers both, as
/// OpenSSL's do (docs/PERFORMANCE.md, "TLS 1.3 suite order"). TLS 1.2 keeps OpenSSL's order.
static TABLE: &[Entry] = &[
    entry(
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        cs::TLS13_AES_128_GCM_SHA256,
        true,
        Auth::Any,
        Bulk::Aes128Gcm,
    ),
    entry(
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        cs::TLS13_AES_256_GCM_SHA384,
        true,
        Auth::Any,
        Bulk::Aes256Gcm,
    ),
    entry(
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        true,
        Auth::Any,
        Bulk::Chacha20,
    ),
    entry(
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        false,
        Auth::Ecdsa,
        Bulk::Aes256Gcm,
    ),
    entry(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        false,
        Auth::Ecdsa,
        Bulk::Aes128Gcm,
    ),
    entry(
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        false,
        Auth::Ecdsa,
        Bulk::Chacha20,
    ),
    entry(
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        false,
        Auth::Rsa,
        Bulk::Aes256Gcm,
    ),
    entry(
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        false,
        Auth::Rsa,
        Bulk::Aes128Gcm,
    ),
    entry(
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        false,
        Auth::Rsa,
        Bulk::Chacha20,
    ),
];

/// The words OpenSSL builds cipher names from. A token made only of these (joined by `-`) is a
/// real cipher name, even when rustls does not implement it.
const OPENSSL_WORDS: &[&str] = &[
    "ECDHE",
    "ECDH",
    "DHE",
    "DH",
    "EDH",
    "ADH",
    "AECDH",
    "EXP",
    "EXP1024",
    "RSA",
    "ECDSA",
    "DSS",
    "PSK",
    "SRP",
    "KRB5",
    "AES",
    "AES128",
    "AES256",
    "GCM",
    "CCM",
    "CCM8",
    "CBC",
    "CBC3",
    "DES",
    "DES40",
    "3DES",
    "RC2",
    "RC4",
    "IDEA",
    "SEED",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA128",
    "ARIA256",
    "CHACHA20",
    "POLY1305",
    "NULL",
    "MD5",
    "SHA",
    "SHA256",
    "SHA384",
    "GOST94",
    "GOST89",
    "GOST2001",
    "GOST2012",
    "RC2",
    "40",
    "56",
    "128",
    "256",
    "512",
    "1024",
    "IMIT",
    "MGM",
    "KUZNYECHIK",
    "MAGMA",
    "OMAC",
    "CNT",
];

/// OpenSSL keywords that select nothing stud can offer (legacy, anonymous or NULL classes).
const EMPTY_KEYWORDS: &[&str] = &[
    "eNULL",
    "NULL",
    "aNULL",
    "ADH",
    "AECDH",
    "COMPLEMENTOFALL",
    "COMPLEMENTOFDEFAULT",
    "LOW",
    "MEDIUM",
    "EXP",
    "EXPORT",
    "EXPORT40",
    "EXPORT56",
    "RC4",
    "DES",
    "3DES",
    "MD5",
    "SHA1",
    "SHA",
    "kRSA",
    "RSA",
    "DH",
    "kDHE",
    "kEDH",
    "DHE",
    "EDH",
    "aDSS",
    "DSS",
    "PSK",
    "kPSK",
    "SRP",
    "kSRP",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "SEED",
    "IDEA",
    "RC2",
    "ARIA",
    "CCM",
    "CCM8",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
    "TLSv1.1",
    "aGOST",
    "GOST",
    "kGOST",
    "kECDHEPSK",
    "kDHEPSK",
    "kRSAPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "aPSK",
    "aSRP",
    "kECDH",
    "ECDH",
    "aECDH",
];

/// The suites a keyword selects, or `None` if `word` is no keyword.
fn keyword(word: &str) -> Option<Vec<usize>> {
    let pick = |f: &dyn Fn(&Entry) -> bool| {
        Some(
            TABLE
                .iter()
                .enumerate()
                .filter(|(_, e)| f(e))
                .map(|(i, _)| i)
                .collect(),
        )
    };
    match word {
        "ALL" | "DEFAULT" | "HIGH" | "FIPS" | "AEAD" | "kECDHE" | "kEECDH" | "ECDHE" | "EECDH" => {
            pick(&|_| true)
        }
        "TLSv1.2" => pick(&|e| !e.tls13),
        "TLSv1.3" => pick(&|e| e.tls13),
        "aRSA" => pick(&|e| e.auth == Auth::Rsa),
        "aECDSA" | "ECDSA" => pick(&|e| e.auth == Auth::Ecdsa),
        "AESGCM" | "AES" => pick(&|e| e.bulk != Bulk::Chacha20),
        "AES128" => pick(&|e| e.bulk == Bulk::Aes128Gcm),
        "AES256" => pick(&|e| e.bulk == Bulk::Aes256Gcm),
        "CHACHA20" => pick(&|e| e.bulk == Bulk::Chacha20),
        "SHA256" => pick(&|e| e.bulk != Bulk::Aes256Gcm),
        "SHA384" => pick(&|e| e.bulk == Bulk::Aes256Gcm),
        w if EMPTY_KEYWORDS.contains(&w) => Some(Vec::new()),
        _ => None,
    }
}

/// What one `+`-free word selects.
enum Selection {
    Suites(Vec<usize>),
    /// A genuine OpenSSL cipher name that rustls does not implement.
    Unsupported,
}

fn select_word(word: &str) -> Result<Selection, ConfigError> {
    if let Some(i) = TABLE
        .iter()
        .position(|e| e.openssl.eq_ignore_ascii_case(word) || e.iana.eq_ignore_ascii_case(word))
    {
        return Ok(Selection::Suites(vec![i]));
    }
    if let Some(set) = keyword(word) {
        return Ok(Selection::Suites(set));
    }
    let looks_like_openssl =
        word.contains('-') && word.split('-').all(|part| OPENSSL_WORDS.contains(&part));
    let looks_like_iana = (word.starts_with("TLS_") || word.starts_with("SSL_"))
        && word.contains("_WITH_")
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if looks_like_openssl || looks_like_iana {
        return Ok(Selection::Unsupported);
    }
    Err(ConfigError::UnknownCipher {
        name: word.to_owned(),
    })
}

/// The outcome of parsing a cipher list.
pub(crate) struct CipherChoice {
    pub(crate) suites: Vec<SupportedCipherSuite>,
    /// Names that exist in OpenSSL but that stud cannot offer; worth a warning.
    pub(crate) unsupported: Vec<String>,
}

/// Parses `list` (OpenSSL syntax) into rustls suites, preserving order.
pub(crate) fn parse(list: &str) -> Result<CipherChoice, ConfigError> {
    let mut chosen: Vec<usize> = Vec::new();
    let mut banned: Vec<usize> = Vec::new();
    let mut unsupported = Vec::new();
    let tokens = list
        .split(|c: char| c == ':' || c == ',' || c.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    for token in tokens {
        if token.starts_with('@') {
            // @STRENGTH, @SECLEVEL=n: ordering and policy knobs with no meaning here.
            continue;
        }
        let (op, body) = match token.as_bytes()[0] {
            b'!' | b'-' | b'+' => (token.as_bytes()[0], &token[1..]),
            _ => (b' ', token),
        };
        // `A+B` selects the intersection of A and B.
        let mut set: Option<Vec<usize>> = None;
        for word in body.split('+').filter(|w| !w.is_empty()) {
            let picked = match select_word(word)? {
                Selection::Suites(s) => s,
                Selection::Unsupported => {
                    unsupported.push(word.to_owned());
                    Vec::new()
                }
            };
            set = Some(match set {
                None => picked,
                Some(prev) => prev.into_iter().filter(|i| picked.contains(i)).collect(),
            });
        }
        let set = set.unwrap_or_default();
        match op {
            b'!' => {
                banned.extend(&set);
                chosen.retain(|i| !set.contains(i));
            }
            b'-' => chosen.retain(|i| !set.contains(i)),
            b'+' => {
                // Move already-chosen members to the end, in table order.
                let moved: Vec<usize> =
                    chosen.iter().copied().filter(|i| set.contains(i)).collect();
                chosen.retain(|i| !set.contains(i));
                chosen.extend(moved);
            }
            _ => {
                for i in set {
                    if !chosen.contains(&i) && !banned.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    let names_tls13 =
        chosen.iter().any(|&i| TABLE[i].tls13) || banned.iter().any(|&i| TABLE[i].tls13);
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    if !names_tls13 {
        suites.extend(TABLE.iter().filter(|e| e.tls13).map(|e| e.suite));
    }
    suites.extend(chosen.iter().map(|&i| TABLE[i].suite));
    Ok(CipherChoice {
        suites,
        unsupported,
    })
}

/// All suites stud offers by default, most preferred first.
pub(crate) fn default_suites() -> Vec<SupportedCipherSuite> {
    TABLE.iter().map(|e| e.suite).collect()
}

/// The OpenSSL-style name of a suite (for logs; IANA name for TLS 1.3 as OpenSSL does too).
pub(crate) fn openssl_name(suite: SupportedCipherSuite) -> &'static str {
    TABLE
        .iter()
        .find(|e| e.suite.suite() == suite.suite())
        .map(|e| e.openssl)
        .unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<&'static str> {
        parse(list)
            .expect("list parses")
            .suites
            .into_iter()
            .map(openssl_name)
            .collect()
    }

    #[test]
    fn openssl_names_keep_their_order_and_tls13_defaults_stay() {
        let got = names("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256");
        assert_eq!(
            got,
            [
                "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256",
                "ECDHE-RSA-CHACHA20-POLY1305",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
    }

    #[test]
    fn iana_names_are_accepted_and_a_tls13_name_governs_tls13() {
        let got = names("TLS_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
        assert_eq!(
            got,
            ["TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]
        );
    }

    #[test]
    fn bang_bans_and_intersection_works() {
        let got = names("HIGH:!aECDSA:!CHACHA20:!TLSv1.3");
        assert_eq!(
            got,
            ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        let got = names("ECDHE+AESGCM+aRSA");
        assert_eq!(
            &got[3..],
            ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
    }

    #[test]
    fn legacy_openssl_names_select_nothing_but_are_reported() {
        let choice = parse("ECDHE-RSA-AES256-SHA:AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256")
            .expect("legacy names are not errors");
        assert_eq!(choice.unsupported, ["ECDHE-RSA-AES256-SHA", "AES128-SHA"]);
        assert_eq!(choice.suites.len(), 4);
    }

    #[test]
    fn a_typo_is_an_error_naming_the_token() {
        let err = parse("ECDHE-RSA-AES128-GCM-SHA255")
            .err()
            .expect("typo rejected");
        assert!(
            err.to_string().contains("ECDHE-RSA-AES128-GCM-SHA255"),
            "{err}"
        );
        assert!(parse("HIGH:bogus").is_err());
    }

    #[test]
    fn strength_directives_are_ignored() {
        assert_eq!(names("@STRENGTH:TLSv1.3:@SECLEVEL=2").len(), 3);
    }
}
