//! A client-certificate world made in the test: a CA, an intermediate, and client certificates
//! that are good, expired, issued by another CA, revoked, or issued through the intermediate;
//! CRLs from the CA; and rustls clients presenting each.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part of it

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A client identity: its chain (leaf first) and key.
#[derive(Clone, Debug)]
pub struct ClientId {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
    pub serial: u64,
    /// The leaf and the key as PEM, for command-line clients.
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClientId {
    pub fn leaf(&self) -> &[u8] {
        self.chain[0].as_ref()
    }
}

/// One CA with its issued client certificates.
pub struct Pki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    ca: Issuer<'static, KeyPair>,
    /// Issued by the CA, valid now, CN "client-good".
    pub good: ClientId,
    /// Issued by the CA, validity over in 2020.
    pub expired: ClientId,
    /// Issued by the CA; the CA's CRL from [`Pki::crl_revoking_one`] lists it.
    pub revoked: ClientId,
    /// Issued by another CA that the server does not trust.
    pub wrong_ca: ClientId,
    /// Issued by an intermediate the CA issued (chain: leaf, intermediate).
    pub via_intermediate: ClientId,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, cn);
    params
}

fn client(
    cn: &str,
    serial: u64,
    issuer: &Issuer<'_, KeyPair>,
    expired: bool,
) -> (CertificateDer<'static>, Vec<u8>, String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("client key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let cert = params.signed_by(&key, issuer).expect("client certificate");
    (
        cert.der().clone(),
        key.serialize_der(),
        cert.pem(),
        key.serialize_pem(),
    )
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let params = ca_params("stud test client CA");
        let ca_cert = params.self_signed(&ca_key).expect("CA certificate");
        let ca = Issuer::new(params, ca_key);

        let other_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let other_params = ca_params("some other CA");
        let other = Issuer::new(other_params, other_key);

        let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let inter_params = ca_params("stud test intermediate");
        let inter_cert = inter_params
            .signed_by(&inter_key, &ca)
            .expect("intermediate certificate");
        let inter = Issuer::new(inter_params, inter_key);

        let id = |(cert, key, cert_pem, key_pem), serial| ClientId {
            chain: vec![cert],
            key_der: key,
            serial,
            cert_pem,
            key_pem,
        };
        let good = id(client("client-good", 101, &ca, false), 101);
        let expired = id(client("client-expired", 102, &ca, true), 102);
        let revoked = id(client("client-revoked", 103, &ca, false), 103);
        let wrong_ca = id(client("client-wrong-ca", 104, &other, false), 104);
        let mut via_intermediate = id(client("client-deep", 105, &inter, false), 105);
        via_intermediate.chain.push(inter_cert.der().clone());
        Pki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            ca,
            good,
            expired,
            revoked,
            wrong_ca,
            via_intermediate,
        }
    }

    /// A CRL from the CA listing `serials` as revoked, DER.
    pub fn crl(&self, serials: &[u64]) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from(s),
                    revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.ca).expect("CRL").der().to_vec()
    }

    /// The CA's CRL revoking [`Pki::revoked`], PEM.
    pub fn crl_revoking_one_pem(&self) -> String {
        let der = self.crl(&[self.revoked.serial]);
        let crl = rustls::pki_types::CertificateRevocationListDer::from(der);
        let mut pem = String::from("-----BEGIN X509 CRL-----\n");
        let b64 = base64(crl.as_ref());
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END X509 CRL-----\n");
        pem
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];

fn versions(tls13_only: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if tls13_only {
        &TLS13
    } else {
        &TLS12
    }
}

/// A client trusting `server` that presents `id` (or nothing), speaking TLS 1.3 (or 1.2).
pub fn client_presenting(
    server: &CertificateDer<'static>,
    id: Option<&ClientId>,
    tls13: bool,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.clone()).expect("server trust anchor");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(tls13))
        .expect("versions")
        .with_root_certificates(roots);
    let config = match id {
        Some(id) => builder
            .with_client_auth_cert(
                id.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone())),
            )
            .expect("client certificate and key"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}
