//! An embedder's own rustls `ServerConfig` (its certificate resolver, ALPN) terminates
//! connections through `Conn`, while stud's own settings (the client-address header, deadlines)
//! still apply, and stud's TLS settings beside it are refused rather than ignored.

mod client_pki;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cert_for, client_config, KeyKind, Pair};
use stud_core::rustls;
use stud_core::rustls::pki_types::pem::PemObject;
use stud_core::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use stud_core::rustls::server::danger::ClientCertVerifier;
use stud_core::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use stud_core::rustls::sign::CertifiedKey;
use stud_core::{ClientAddressMode, CloseReason, Config, ConfigError, Event, TlsVersion};

/// Serves one certificate for the names it knows, and remembers every name it was asked for.
#[derive(Debug)]
struct KnownNames {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    asked: Mutex<Vec<Option<String>>>,
}

impl ResolvesServerCert for KnownNames {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_owned);
        self.asked.lock().expect("not poisoned").push(name.clone());
        name.filter(|n| self.names.contains(n))
            .map(|_| Arc::clone(&self.key))
    }
}

/// An embedder's configuration: a resolver of its own for `names`, ALPN `h2`.
fn embedders_config(
    names: &[&str],
) -> (
    Arc<rustls::ServerConfig>,
    Arc<KnownNames>,
    CertificateDer<'static>,
) {
    embedders_config_verifying(names, None)
}

/// Like [`embedders_config`], asking clients for a certificate with `verifier` if given.
fn embedders_config_verifying(
    names: &[&str],
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> (
    Arc<rustls::ServerConfig>,
    Arc<KnownNames>,
    CertificateDer<'static>,
) {
    let (cert_pem, key_pem, der) = cert_for(KeyKind::EcdsaP256, names);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM");
    let signer = provider
        .key_provider
        .load_private_key(key)
        .expect("usable key");
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert PEM")];
    let resolver = Arc::new(KnownNames {
        key: Arc::new(CertifiedKey::new(chain, signer)),
        names: names.iter().map(|n| n.to_string()).collect(),
        asked: Mutex::new(Vec::new()),
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_cert_resolver(resolver.clone());
    tls.alpn_protocols = vec![b"h2".to_vec()];
    (Arc::new(tls), resolver, der)
}

fn client_with_alpn(trust: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut client = (*client_config(trust)).clone();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(client)
}

#[test]
fn an_embedders_resolver_and_alpn_terminate_through_conn_with_studs_header() {
    let (tls, resolver, der) = embedders_config(&["app.example"]);
    let config = Config::builder()
        .rustls_server_config(tls)
        .client_address(ClientAddressMode::ProxyV1)
        .build()
        .expect("config");
    let mut p = Pair::with_client(config, client_with_alpn(&der), "app.example");
    p.handshake();
    let Some(Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no handshake event: {:?}", p.events);
    };
    assert_eq!(info.sni.as_deref(), Some("app.example"));
    assert_eq!(
        info.alpn.as_deref(),
        Some(&b"h2"[..]),
        "the embedder's ALPN"
    );
    assert_eq!(info.version, TlsVersion::Tls13);
    assert_eq!(info.client_verify, None, "no client certificate was sent");
    assert_eq!(
        *resolver.asked.lock().expect("not poisoned"),
        [Some("app.example".to_string())],
        "the embedder's resolver chose the certificate"
    );

    p.client_send(b"GET / HTTP/1.1\r\n\r\n");
    p.run();
    let line = "PROXY TCP4 192.0.2.7 127.0.0.9 40001 8443\r\n";
    let mut expected = line.as_bytes().to_vec();
    expected.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        p.backend.received, expected,
        "stud's header, then the bytes"
    );

    p.backend.to_send = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
    p.run();
    assert_eq!(p.client_side.received, b"HTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(p.closed, None);
}

#[test]
fn a_name_the_embedders_resolver_refuses_fails_the_handshake() {
    let (tls, resolver, _) = embedders_config(&["app.example"]);
    let config = Config::builder()
        .rustls_server_config(tls)
        .build()
        .expect("config");
    let client = common::client_config_accepting_any();
    let mut p = Pair::with_client(config, client, "other.example");
    let mut hello = Vec::new();
    p.client.write_tls(&mut hello).expect("ClientHello");
    assert_eq!(p.conn.handle_client_data(p.now, &hello), hello.len());
    let mut alert = [0u8; 512];
    let n = p.conn.poll_client_transmit(p.now, &mut alert);
    assert_eq!(
        alert.get(..1),
        Some(&[21u8][..]),
        "an alert record ({n} bytes)"
    );
    let mut actions = Vec::new();
    while let Some(action) = p.conn.poll_action() {
        actions.push(action);
    }
    assert!(
        matches!(
            actions.as_slice(),
            [stud_core::Action::Close(CloseReason::HandshakeFailed(_))]
        ),
        "no backend before a handshake, and a reason: {actions:?}"
    );
    assert_eq!(
        *resolver.asked.lock().expect("not poisoned"),
        [Some("other.example".to_string())]
    );
}

#[test]
fn studs_deadlines_apply_to_an_embedders_configuration() {
    let (tls, _, der) = embedders_config(&["app.example"]);
    let config = Config::builder()
        .rustls_server_config(tls)
        .handshake_timeout(Duration::from_secs(3))
        .build()
        .expect("config");
    let mut p = Pair::with_client(config, client_with_alpn(&der), "app.example");
    let start = p.now;
    assert_eq!(p.conn.poll_timeout(), Some(start + Duration::from_secs(3)));
    p.advance(Duration::from_secs(3));
    p.conn.handle_timeout(p.now);
    assert_eq!(
        p.conn.poll_action(),
        Some(stud_core::Action::Close(CloseReason::HandshakeTimeout))
    );
}

#[test]
fn each_of_studs_tls_settings_beside_it_is_refused_by_name() {
    let (tls, _, _) = embedders_config(&["app.example"]);
    let (cert, key, _) = common::default_cert();
    let pem = format!("{cert}{key}");
    type Set = Box<dyn Fn(stud_core::ConfigBuilder) -> stud_core::ConfigBuilder>;
    let settings: Vec<(&str, Set)> = vec![
        ("pem", Box::new(move |b| b.pem(pem.clone()))),
        ("pem_file", Box::new(|b| b.pem_file("/nonexistent.pem"))),
        (
            "cert_and_key_files",
            Box::new(|b| b.cert_and_key_files("/c.pem", "/k.pem")),
        ),
        (
            "cert_and_key_pem",
            Box::new(|b| b.cert_and_key_pem("c", "k")),
        ),
        ("ocsp_response", Box::new(|b| b.ocsp_response(vec![0x30]))),
        (
            "ocsp_response_file",
            Box::new(|b| b.ocsp_response_file("/r.der")),
        ),
        (
            "versions",
            Box::new(|b| b.versions(&[TlsVersion::Tls12, TlsVersion::Tls13])),
        ),
        ("ciphers", Box::new(|b| b.ciphers("DEFAULT"))),
        ("sni_strict", Box::new(|b| b.sni_strict(false))),
        (
            "prefer_server_ciphers",
            Box::new(|b| b.prefer_server_ciphers(true)),
        ),
        (
            "alpn_protocols",
            Box::new(|b| b.alpn_protocols(vec![b"h2".to_vec()])),
        ),
        ("session_tickets", Box::new(|b| b.session_tickets(true))),
        ("ticket_secret", Box::new(|b| b.ticket_secret(vec![7; 48]))),
        (
            "ticket_secret_file",
            Box::new(|b| b.ticket_secret_file("/t")),
        ),
        (
            "client_verify",
            Box::new(|b| b.client_verify(stud_core::ClientVerifyMode::None)),
        ),
        (
            "client_verify_ca_file",
            Box::new(|b| b.client_verify_ca_file("/ca.pem")),
        ),
        (
            "client_verify_ca_pem",
            Box::new(|b| b.client_verify_ca_pem("ca")),
        ),
        ("crl_file", Box::new(|b| b.crl_file("/crl.pem"))),
        ("crl", Box::new(|b| b.crl("crl"))),
        ("ecdh_curves", Box::new(|b| b.ecdh_curves("X25519"))),
        (
            "client_verify_depth",
            Box::new(|b| b.client_verify_depth(2)),
        ),
    ];
    for (name, set) in &settings {
        // Before or after the embedder's configuration, even at its default value.
        for builder in [
            set(Config::builder()).rustls_server_config(tls.clone()),
            set(Config::builder().rustls_server_config(tls.clone())),
        ] {
            match builder.build() {
                Err(ConfigError::ConflictsWithRustlsConfig { setting }) => {
                    assert_eq!(setting, *name)
                }
                other => panic!("{name}: expected a conflict, got {other:?}"),
            }
        }
    }
    // stud's own settings are fine beside it.
    Config::builder()
        .rustls_server_config(tls)
        .client_address(ClientAddressMode::ProxyV2)
        .proxy_client_cert(true)
        .proxy_tlv(false)
        .proxy_authority(false)
        .accept_proxy_header(true)
        .to_backend_budget(4096)
        .idle_timeout(Some(Duration::from_secs(9)))
        .build()
        .expect("stud's settings combine with it");
}

#[test]
fn an_embedders_configuration_accepting_early_data_is_refused() {
    let (tls, _, _) = embedders_config(&["app.example"]);
    let mut tls = (*tls).clone();
    tls.max_early_data_size = 16 * 1024;
    let err = Config::builder()
        .rustls_server_config(Arc::new(tls))
        .build()
        .expect_err("0-RTT is refused");
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                what: "rustls server config",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_builders_checks_of_limits_still_apply() {
    let (tls, _, _) = embedders_config(&["app.example"]);
    let err = Config::builder()
        .rustls_server_config(tls)
        .to_client_budget(1)
        .build()
        .expect_err("a budget below the minimum");
    assert!(matches!(
        err,
        ConfigError::Invalid {
            what: "to-client budget",
            ..
        }
    ));
}

#[test]
fn a_client_certificate_the_embedders_verifier_accepted_is_reported_verified() {
    let pki = client_pki::Pki::new();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("client CA");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .expect("verifier");
    let (tls, _, der) = embedders_config_verifying(&["localhost"], Some(verifier));
    let config = Arc::new(
        Config::builder()
            .rustls_server_config(tls)
            .build()
            .expect("config"),
    );
    assert_eq!(config.client_verify(), stud_core::ClientVerifyMode::None);

    let with_cert = client_pki::client_presenting(&der, Some(&pki.good), true);
    let mut p = Pair::with_client(config.clone(), with_cert, "localhost");
    p.handshake();
    let Some(Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no handshake event");
    };
    assert_eq!(info.client_verify, Some(stud_core::ClientVerify::Verified));
    assert_eq!(
        info.peer_certificates.first().map(Vec::as_slice),
        Some(pki.good.leaf())
    );

    let without = client_pki::client_presenting(&der, None, true);
    let mut p = Pair::with_client(config, without, "localhost");
    p.handshake();
    let Some(Event::HandshakeComplete(info)) = p.events.first() else {
        panic!("no handshake event");
    };
    assert_eq!(info.client_verify, None);
    assert!(info.peer_certificates.is_empty());
}
