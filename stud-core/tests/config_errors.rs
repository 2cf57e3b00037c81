//! Configuration: every bad input is an error that says what and where.

use std::path::PathBuf;
use stud_core::{Config, ConfigError, TlsVersion};

mod common;
use common::*;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn err(b: stud_core::ConfigBuilder) -> ConfigError {
    b.build().expect_err("config must be rejected")
}

#[test]
fn a_missing_file_names_the_path() {
    let e = err(Config::builder().pem_file("/nonexistent/site.pem"));
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/site.pem"), "{e}");
}

#[test]
fn pem_without_a_key_is_rejected() {
    let (c, _, _) = default_cert();
    let e = err(Config::builder().pem(c.clone()));
    assert!(matches!(e, ConfigError::NoPrivateKey { .. }), "{e}");
}

#[test]
fn pem_without_a_certificate_is_rejected() {
    let (_, k, _) = default_cert();
    let e = err(Config::builder().pem(k.clone()));
    assert!(matches!(e, ConfigError::NoCertificate { .. }), "{e}");
}

#[test]
fn a_mismatched_key_is_rejected_naming_the_file() {
    let path = data("mismatched.pem");
    let e = err(Config::builder().pem_file(&path));
    assert!(matches!(e, ConfigError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("mismatched.pem"), "{e}");
}

#[test]
fn malformed_pem_is_rejected() {
    let e = err(Config::builder()
        .pem("-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"));
    assert!(matches!(e, ConfigError::Pem { .. }), "{e}");
    let e = err(Config::builder().pem("-----BEGIN CERTIFICATE-----\nAAAA\n"));
    assert!(matches!(e, ConfigError::Pem { .. }), "{e}");
}

#[test]
fn garbage_der_inside_valid_pem_is_rejected() {
    let (_, k, _) = default_cert();
    let pem = format!("-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n{k}");
    let e = err(Config::builder().pem(pem));
    assert!(
        matches!(
            e,
            ConfigError::BadCertificate { .. } | ConfigError::KeyMismatch { .. }
        ),
        "{e}"
    );
}

#[test]
fn two_keys_are_ambiguous() {
    let (c, k, _) = default_cert();
    let e = err(Config::builder().pem(format!("{c}{k}{k}")));
    assert!(matches!(e, ConfigError::MultiplePrivateKeys { .. }), "{e}");
}

#[test]
fn an_unknown_cipher_is_named() {
    let e = err(builder().ciphers("ECDHE-RSA-AES128-GCM-SHA256:NOT-A-CIPHER"));
    assert!(e.to_string().contains("NOT-A-CIPHER"), "{e}");
}

#[test]
fn a_list_selecting_nothing_usable_is_an_error() {
    let e = err(builder()
        .versions(&[TlsVersion::Tls12])
        .ciphers("AES128-SHA:DES-CBC3-SHA"));
    assert!(matches!(e, ConfigError::NoUsableCipher { .. }), "{e}");
}

#[test]
fn a_list_with_only_rsa_suites_and_an_ecdsa_key_still_serves_tls13() {
    // Legacy configurations list TLS 1.2 suites only; TLS 1.3 keeps its defaults.
    let c = builder()
        .ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        .build()
        .expect("config");
    let mut p = Pair::new(c);
    p.handshake();
}

#[test]
fn legacy_cipher_names_warn() {
    let c = builder()
        .ciphers("ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-GCM-SHA256")
        .build()
        .expect("config");
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].contains("ECDHE-RSA-AES256-SHA"));
}

#[test]
fn no_versions_is_an_error() {
    assert!(matches!(
        err(builder().versions(&[])),
        ConfigError::NoProtocolVersion
    ));
}

#[test]
fn no_certificate_is_an_error() {
    assert!(matches!(err(Config::builder()), ConfigError::NoIdentity));
}

#[test]
fn out_of_range_budgets_and_zero_timeouts_are_errors() {
    assert!(matches!(
        err(builder().to_client_budget(10)),
        ConfigError::Invalid { .. }
    ));
    assert!(matches!(
        err(builder().to_backend_budget(0)),
        ConfigError::Invalid { .. }
    ));
    assert!(matches!(
        err(builder().handshake_timeout(std::time::Duration::ZERO)),
        ConfigError::Invalid { .. }
    ));
    assert!(matches!(
        err(builder().idle_timeout(Some(std::time::Duration::ZERO))),
        ConfigError::Invalid { .. }
    ));
}

#[test]
fn pkcs1_rsa_key_in_a_combined_file_works() {
    let c = Config::builder()
        .pem_file(data("stud_rsa_pkcs1.pem"))
        .build();
    assert!(c.is_ok(), "{:?}", c.err());
}

#[test]
fn sec1_ec_key_with_a_dh_parameters_block_works() {
    let c = Config::builder()
        .pem_file(data("stud_ec_sec1_dhparam.pem"))
        .build();
    assert!(c.is_ok(), "{:?}", c.err());
}

#[test]
fn separate_certificate_and_key_files_work() {
    let c = Config::builder()
        .cert_and_key_files(data("ec.crt"), data("ec_sec1.key"))
        .build();
    assert!(c.is_ok(), "{:?}", c.err());
    let e = err(Config::builder().cert_and_key_files(data("rsa.crt"), data("ec_sec1.key")));
    assert!(matches!(e, ConfigError::KeyMismatch { .. }), "{e}");
}

#[test]
fn alpn_names_must_be_one_to_255_bytes() {
    for bad in [Vec::new(), vec![b'x'; 256]] {
        let len = bad.len();
        let e = err(builder().alpn_protocols(vec![b"h2".to_vec(), bad]));
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    what: "ALPN protocol",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("got {len} bytes")), "{e}");
    }
    builder()
        .alpn_protocols(vec![b"h2".to_vec(), vec![b'x'; 255]])
        .build()
        .expect("255 bytes is the limit, not past it");
}
