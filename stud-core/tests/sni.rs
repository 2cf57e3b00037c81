//! Several certificates: the client's server name chooses, the first is the default.

mod common;
use common::*;
use stud_core::Config;

fn served(
    config: &std::sync::Arc<Config>,
    anchors: &[rustls::pki_types::CertificateDer<'static>],
    sni: &str,
) -> Vec<u8> {
    let mut p = Pair::with_client(config.clone(), client_config_trusting(anchors), sni);
    p.handshake();
    p.client.peer_certificates().expect("server certificate")[0].to_vec()
}

#[test]
fn sni_chooses_the_certificate_covering_the_name_and_falls_back_to_the_first() {
    let (c1, k1, d1) = cert_for(KeyKind::EcdsaP256, &["localhost"]);
    let (c2, k2, d2) = cert_for(KeyKind::Rsa2048, &["api.example.test"]);
    let (c3, k3, d3) = cert_for(KeyKind::EcdsaP384, &["*.wild.test"]);
    let config = std::sync::Arc::new(
        Config::builder()
            .pem(format!("{c1}{k1}"))
            .pem(format!("{c2}{k2}"))
            .pem(format!("{c3}{k3}"))
            .build()
            .expect("config"),
    );
    let all = [d1.clone(), d2.clone(), d3.clone()];
    assert_eq!(served(&config, &all, "api.example.test"), d2.to_vec());
    assert_eq!(served(&config, &all, "a.wild.test"), d3.to_vec());
    assert_eq!(served(&config, &all, "localhost"), d1.to_vec());
    // A name nobody covers gets the default (the first configured).
    let mut p = Pair::with_client(
        config.clone(),
        client_config_accepting_any(),
        "unknown.test",
    );
    p.handshake();
    assert_eq!(
        p.client.peer_certificates().expect("cert")[0].to_vec(),
        d1.to_vec()
    );
}

#[test]
fn rsa_and_ecdsa_certificates_for_one_name_serve_a_tls12_rsa_only_client() {
    let (c1, k1, d1) = cert_for(KeyKind::EcdsaP256, &["localhost"]);
    let (c2, k2, d2) = cert_for(KeyKind::Rsa2048, &["localhost"]);
    let config = std::sync::Arc::new(
        Config::builder()
            .pem(format!("{c1}{k1}"))
            .pem(format!("{c2}{k2}"))
            .build()
            .expect("config"),
    );
    let anchors = [d1.clone(), d2.clone()];
    // A modern client gets the first (ECDSA) certificate.
    assert_eq!(served(&config, &anchors, "localhost"), d1.to_vec());
    // A TLS 1.2 client offering only ECDHE-RSA suites gets the RSA one.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites =
        vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(d2.clone()).expect("anchor");
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut p = Pair::with_client(config, std::sync::Arc::new(client), "localhost");
    p.handshake();
    assert_eq!(
        p.client.peer_certificates().expect("cert")[0].to_vec(),
        d2.to_vec()
    );
}

#[test]
fn strict_sni_refuses_names_no_certificate_covers_but_serves_clients_without_one() {
    for certs in [1, 2] {
        let (c1, k1, d1) = cert_for(KeyKind::EcdsaP256, &["localhost"]);
        let (c2, k2, _) = cert_for(KeyKind::EcdsaP256, &["api.example.test"]);
        let mut builder = Config::builder().pem(format!("{c1}{k1}"));
        if certs == 2 {
            builder = builder.pem(format!("{c2}{k2}"));
        }
        let config = std::sync::Arc::new(builder.sni_strict(true).build().expect("config"));
        // A covered name is served as usual.
        assert_eq!(
            served(&config, std::slice::from_ref(&d1), "localhost"),
            d1.to_vec()
        );
        // A name no certificate covers fails the handshake: an alert, then a close with a reason.
        let mut p = Pair::with_client(
            config.clone(),
            client_config_accepting_any(),
            "unknown.test",
        );
        let mut hello = Vec::new();
        p.client.write_tls(&mut hello).expect("ClientHello");
        assert_eq!(p.conn.handle_client_data(p.now, &hello), hello.len());
        let mut out = vec![0u8; 4096];
        let n = p.conn.poll_client_transmit(p.now, &mut out);
        // RFC 6066 §3: a fatal unrecognized_name (112), in a plaintext alert record.
        assert_eq!(
            &out[..n],
            &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112],
            "a fatal unrecognized_name alert"
        );
        let mut closed = None;
        while let Some(action) = p.conn.poll_action() {
            if let stud_core::Action::Close(reason) = action {
                closed = Some(reason);
            }
        }
        assert!(
            matches!(closed, Some(stud_core::CloseReason::HandshakeFailed(_))),
            "{certs} certificate(s): closed with {closed:?}"
        );
        // No server name at all (an IP address is never sent as SNI): the default certificate.
        let mut p = Pair::with_client(config.clone(), client_config_accepting_any(), "127.0.0.1");
        p.handshake();
        assert_eq!(
            p.client.peer_certificates().expect("cert")[0].to_vec(),
            d1.to_vec()
        );
    }
}

#[test]
fn an_exact_name_wins_over_an_earlier_wildcard_and_the_first_stays_the_default() {
    let (c1, k1, d1) = cert_for(KeyKind::EcdsaP256, &["*.example.test"]);
    let (c2, k2, d2) = cert_for(KeyKind::EcdsaP256, &["www.example.test"]);
    let config = std::sync::Arc::new(
        Config::builder()
            .pem(format!("{c1}{k1}"))
            .pem(format!("{c2}{k2}"))
            .build()
            .expect("config"),
    );
    let all = [d1.clone(), d2.clone()];
    assert_eq!(served(&config, &all, "www.example.test"), d2.to_vec());
    assert_eq!(served(&config, &all, "WWW.Example.Test"), d2.to_vec());
    assert_eq!(served(&config, &all, "api.example.test"), d1.to_vec());
    // No server name: the first certificate configured.
    let mut p = Pair::with_client(config.clone(), client_config_accepting_any(), "127.0.0.1");
    p.handshake();
    assert_eq!(
        p.client.peer_certificates().expect("cert")[0].to_vec(),
        d1.to_vec()
    );
}

#[test]
fn an_exact_name_the_client_cannot_verify_yields_to_a_wildcard_it_can() {
    // An RSA exact match and an ECDSA wildcard; a TLS 1.2 client offering ECDHE-ECDSA suites only
    // gets the wildcard.
    let (c1, k1, d1) = cert_for(KeyKind::EcdsaP256, &["*.example.test"]);
    let (c2, k2, d2) = cert_for(KeyKind::Rsa2048, &["www.example.test"]);
    let config = std::sync::Arc::new(
        Config::builder()
            .pem(format!("{c2}{k2}"))
            .pem(format!("{c1}{k1}"))
            .build()
            .expect("config"),
    );
    let all = [d1.clone(), d2.clone()];
    assert_eq!(served(&config, &all, "www.example.test"), d2.to_vec());
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites =
        vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(d1.clone()).expect("anchor");
    let client = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut p = Pair::with_client(config, std::sync::Arc::new(client), "www.example.test");
    p.handshake();
    assert_eq!(
        p.client.peer_certificates().expect("cert")[0].to_vec(),
        d1.to_vec()
    );
}
