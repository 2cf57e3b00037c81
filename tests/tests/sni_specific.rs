//! Several certificates through the real binary: the most specific name wins whatever the order
//! of the PEM files (hitch serves `www.example.test` its exact certificate even when a wildcard
//! comes first), and the first PEM stays the default for a client without SNI.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, StreamOwned};
use stud_tests::hostile::{counting_backend, raw_connect};
use stud_tests::pki::TempDir;
use stud_tests::process::Stud;
use stud_tests::stud_bin;

/// A CA and two leaves (`*.example.test`, `www.example.test`) as stud's PEM files.
struct Certs {
    dir: TempDir,
    ca: CertificateDer<'static>,
    wild: CertificateDer<'static>,
    exact: CertificateDer<'static>,
}

fn certs() -> Certs {
    let dir = TempDir::new();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "stud SNI test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key")).expect("CA");
    let leaf = |file: &str, name: &str| {
        let key = KeyPair::generate().expect("leaf key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("leaf params")
            .signed_by(&key, &ca)
            .expect("leaf");
        dir.write(file, format!("{}{}", cert.pem(), key.serialize_pem()));
        cert.der().clone()
    };
    let wild = leaf("wild.pem", "*.example.test");
    let exact = leaf("exact.pem", "www.example.test");
    Certs {
        ca: ca.der().clone(),
        wild,
        exact,
        dir,
    }
}

/// The certificate stud serves to a client verifying `name`, sent as SNI when `send_sni`.
fn served_to(
    stud: &Stud,
    ca: &CertificateDer<'static>,
    sni: &str,
    send_sni: bool,
) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("anchor");
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = send_sni;
    let name = ServerName::try_from(sni.to_owned()).expect("name");
    let conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = raw_connect(stud.addr).expect("connect");
    tcp.set_read_timeout(Some(stud_tests::TIMEOUT))
        .expect("timeout");
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            panic!("handshake for {sni}: {e}");
        }
    }
    tls.conn.peer_certificates().expect("a certificate")[0].clone()
}

#[test]
fn an_exact_certificate_wins_over_an_earlier_wildcard_and_the_first_is_the_default() {
    let c = certs();
    let (backend, _) = counting_backend();
    let b = backend.to_string();
    let dir = c.dir.path();
    let stud = Stud::start(
        &stud_bin!(),
        &[
            "-f",
            "127.0.0.1,0",
            "-b",
            &b,
            dir.join("wild.pem").to_str().expect("UTF-8"),
            dir.join("exact.pem").to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(served_to(&stud, &c.ca, "www.example.test", true), c.exact);
    assert_eq!(served_to(&stud, &c.ca, "api.example.test", true), c.wild);
    // Without SNI: the first PEM (whose wildcard also covers the name the client checks).
    assert_eq!(served_to(&stud, &c.ca, "www.example.test", false), c.wild);
}
