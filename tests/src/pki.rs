//! Test certificates: a CA and a leaf for `localhost`, `127.0.0.1` and `::1`, written as the PEM
//! files stud reads, plus broken variants for the error tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;

pub use stud_test_support::TempDir;

/// A CA, a leaf it signed, and PEM files (good and broken) in a temp dir.
#[derive(Debug)]
pub struct Pki {
    /// Holds every file below.
    pub dir: TempDir,
    /// The CA certificate, for clients' trust stores.
    pub ca_der: CertificateDer<'static>,
    /// The CA certificate as PEM (for openssl, curl and python).
    pub ca_pem_file: PathBuf,
    /// The CA's private key as PEM (to sign OCSP responses with openssl).
    pub ca_key_file: PathBuf,
    /// The leaf chain followed by its key: what stud takes.
    pub site_pem: PathBuf,
    /// The leaf certificate alone (no key).
    pub cert_only: PathBuf,
    /// The leaf certificate with a key that is not its own.
    pub mismatched: PathBuf,
    /// Not PEM at all.
    pub garbage: PathBuf,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list is valid");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "stud test CA");
    params
}

impl Pki {
    /// Generates everything (ECDSA P-256 keys).
    pub fn new() -> Pki {
        let dir = TempDir::new();
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_key_file = dir.write("ca.key", ca_key.serialize_pem());
        let ca = CertifiedIssuer::self_signed(ca_params(), ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
                .expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .expect("leaf certificate");
        let other_key = KeyPair::generate().expect("other key");

        let site_pem = dir.write(
            "site.pem",
            format!("{}{}", leaf.pem(), leaf_key.serialize_pem()),
        );
        let cert_only = dir.write("cert-only.pem", leaf.pem());
        let mismatched = dir.write(
            "mismatched.pem",
            format!("{}{}", leaf.pem(), other_key.serialize_pem()),
        );
        let garbage = dir.write("garbage.pem", "this is not a certificate\n");
        let ca_pem_file = dir.write("ca.pem", ca.pem());
        Pki {
            ca_der: ca.der().clone(),
            ca_pem_file,
            ca_key_file,
            site_pem,
            cert_only,
            mismatched,
            garbage,
            dir,
        }
    }
}

impl Pki {
    /// Writes to `out` a DER OCSP response signed by the CA for the site certificate (status
    /// "unknown": the responder's index is empty), made by `openssl ocsp`.
    pub fn ocsp_response(&self, out: &Path) {
        let dir = self.dir.path();
        let req = dir.join("req.der");
        let index = self.dir.write("index.txt", "");
        let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        openssl(&[
            "ocsp",
            "-issuer",
            &s(&self.ca_pem_file),
            "-cert",
            &s(&self.cert_only),
            "-no_nonce",
            "-reqout",
            &s(&req),
        ]);
        openssl(&[
            "ocsp",
            "-index",
            &s(&index),
            "-rsigner",
            &s(&self.ca_pem_file),
            "-rkey",
            &s(&self.ca_key_file),
            "-CA",
            &s(&self.ca_pem_file),
            "-reqin",
            &s(&req),
            "-respout",
            &s(out),
            "-ndays",
            "1",
        ]);
    }
}

impl Pki {
    /// Writes to `pem` a certificate for `host` signed by the CA, followed by its key (what stud
    /// takes), made by `openssl`.
    pub fn write_leaf(&self, pem: &Path, host: &str) {
        let dir = self.dir.path();
        let stem = format!("leaf-{host}");
        let (key, csr, crt) = (
            dir.join(format!("{stem}.key")),
            dir.join(format!("{stem}.csr")),
            dir.join(format!("{stem}.crt")),
        );
        let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        let san = format!("subjectAltName=DNS:{host}");
        let subject = format!("/CN={host}");
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
            "-subj",
            &subject,
            "-addext",
            &san,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&self.ca_pem_file),
            "-CAkey",
            &s(&self.ca_key_file),
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &s(&crt),
        ]);
        let chain = std::fs::read_to_string(&crt).expect("read the certificate");
        let key = std::fs::read_to_string(&key).expect("read the key");
        std::fs::write(pem, format!("{chain}{key}")).expect("write the PEM");
    }
}

/// Runs openssl and fails the test with its stderr when it fails.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}
