//! OCSP stapling: the configured response reaches clients that ask, per certificate, and bad
//! responses are refused when the configuration is built.

mod common;
use common::*;
use stud_core::ConfigError;

/// A minimal successful `OCSPResponse`: SEQUENCE { ENUMERATED 0, [0] { … } } with a dummy body.
/// stud checks only the envelope; clients verify the rest.
fn response(tag: u8) -> Vec<u8> {
    let body = [0x0a, 0x01, 0x00, 0xa0, 0x03, 0x04, 0x01, tag];
    let mut der = vec![0x30, body.len() as u8];
    der.extend_from_slice(&body);
    der
}

fn stapled(config: impl Into<std::sync::Arc<stud_core::Config>>, sni: &str) -> Vec<Vec<u8>> {
    let (client, seen) = client_config_recording_ocsp();
    let mut p = Pair::with_client(config, client, sni);
    p.handshake();
    let seen = seen.lock().expect("lock").clone();
    seen
}

#[test]
fn the_response_is_stapled_for_its_certificate() {
    let der = response(1);
    let config = builder()
        .ocsp_response(der.clone())
        .build()
        .expect("config");
    assert_eq!(stapled(config, "localhost"), vec![der]);
    // Without a response nothing is stapled.
    let plain = builder().build().expect("config");
    assert_eq!(stapled(plain, "localhost"), vec![Vec::<u8>::new()]);
}

#[test]
fn each_certificate_staples_its_own_response() {
    let (a_cert, a_key, _) = cert_for(KeyKind::EcdsaP256, &["a.example"]);
    let (b_cert, b_key, _) = cert_for(KeyKind::EcdsaP256, &["b.example"]);
    let config = std::sync::Arc::new(
        stud_core::Config::builder()
            .cert_and_key_pem(a_cert, a_key)
            .ocsp_response(response(0xa))
            .cert_and_key_pem(b_cert, b_key)
            .ocsp_response(response(0xb))
            .build()
            .expect("config"),
    );
    assert_eq!(stapled(config.clone(), "a.example"), vec![response(0xa)]);
    assert_eq!(stapled(config, "b.example"), vec![response(0xb)]);
}

#[test]
fn bad_responses_are_refused_at_build() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"-----BEGIN OCSP RESPONSE-----".to_vec(),
            "not a DER OCSP response",
        ),
        (vec![0x30, 0x03, 0x0a, 0x01, 0x06], "status 6"),
        (
            [response(1), vec![0]].concat(),
            "1 bytes follow the response",
        ),
        (vec![0x30, 0x05, 0x0a, 0x01], "not a DER OCSP response"),
        (Vec::new(), "not a DER OCSP response"),
        // Successful but empty: nothing a client could verify.
        (
            vec![0x30, 0x03, 0x0a, 0x01, 0x00],
            "must hold its responseBytes",
        ),
        // A download cut inside responseBytes.
        (response(1)[..9].to_vec(), "not a DER OCSP response"),
    ];
    for (der, needle) in cases {
        let e = builder()
            .ocsp_response(der.clone())
            .build()
            .expect_err("refused");
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    what: "OCSP response",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(needle), "{der:?}: {e}");
    }
    let (c, k, _) = default_cert();
    let e = stud_core::Config::builder()
        .ocsp_response(response(1))
        .pem(format!("{c}{k}"))
        .build()
        .expect_err("no certificate yet");
    assert!(e.to_string().contains("before any certificate"), "{e}");
    let e = builder()
        .ocsp_response_file("/nonexistent/site.ocsp")
        .build()
        .expect_err("missing file");
    assert!(e.to_string().contains("/nonexistent/site.ocsp"), "{e}");
}
