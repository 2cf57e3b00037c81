//! Client certificates through the daemon, as the sidecar deployment runs it:
//! `--client-verify=required --client-verify-ca=… --crl=… --write-proxy-v2`. A client with a good
//! certificate is served and the backend reads who it is from the PROXY v2 header; one without
//! is refused before any backend connection; a certificate revoked in the CRL file is refused
//! after SIGHUP, without a restart.

use std::io::{Read as _, Write as _};
use std::time::Duration;

#[path = "../../stud-core/tests/client_pki/mod.rs"]
mod client_pki;

use stud_tests::net::{self, capture_backend_until};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::{stud_bin, TIMEOUT};

/// The PROXY v2 header ends at 16 bytes plus the length in bytes 14–15.
fn header_complete(got: &[u8]) -> bool {
    got.len() >= 16 && got.len() >= 16 + usize::from(u16::from_be_bytes([got[14], got[15]]))
}

/// `(type, value)` of each TLV in `bytes`.
fn tlvs(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
        let Some(value) = bytes.get(3..3 + len) else {
            break;
        };
        out.push((bytes[0], value.to_vec()));
        bytes = &bytes[3 + len..];
    }
    out
}

/// Sends a byte through a handshake made with `config` and reads it back: whether stud served.
fn served(addr: std::net::SocketAddr, config: &std::sync::Arc<rustls::ClientConfig>) -> bool {
    let Ok(mut tls) = net::connect(addr, config) else {
        return false;
    };
    // In TLS 1.3 the server's verdict on the certificate comes after the client's Finished.
    if tls.write_all(b"x").is_err() {
        return false;
    }
    let mut one = [0u8; 1];
    matches!(tls.read(&mut one), Ok(1))
}

#[test]
fn required_client_certificates_are_checked_named_to_the_backend_and_revoked_on_sighup() {
    let pki = Pki::new();
    let clients = client_pki::Pki::new();
    let dir = TempDir::new();
    let ca = dir.write("clients-ca.pem", &clients.ca_pem);
    let crl = dir.write("clients.crl", clients.crl(&[]));
    let (backend, headers) = capture_backend_until(header_complete);
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        backend,
        &[
            "--client-verify=required",
            &format!("--client-verify-ca={}", ca.display()),
            &format!("--crl={}", crl.display()),
            "--write-proxy-v2",
        ],
    );
    let good = client_pki::client_presenting(&pki.ca_der, Some(&clients.good), true);
    assert!(served(stud.addr, &good), "{}", stud.output());
    let header = headers
        .recv_timeout(TIMEOUT)
        .expect("the backend got a header");
    // After the 16-byte preamble and the 12 bytes of IPv4 addresses and ports come the TLVs.
    let ssl = tlvs(&header[28..])
        .into_iter()
        .find(|(t, _)| *t == 0x20)
        .map(|(_, v)| v)
        .expect("a PP2_TYPE_SSL TLV");
    // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, and verify = 0 (the certificate verified).
    assert_eq!(ssl[0] & 0x03, 0x03, "client bits {:#04x}", ssl[0]);
    assert_eq!(&ssl[1..5], &[0, 0, 0, 0], "verify field");
    let subs = tlvs(&ssl[5..]);
    assert!(
        subs.contains(&(0x22, b"client-good".to_vec())),
        "no PP2_SUBTYPE_SSL_CN naming the client: {subs:?}"
    );

    // No certificate: refused, and the backend never hears of it.
    let anonymous = client_pki::client_presenting(&pki.ca_der, None, true);
    assert!(!served(stud.addr, &anonymous));
    assert!(headers.recv_timeout(Duration::from_millis(300)).is_err());

    // The CRL file now revokes the good client; SIGHUP re-reads it, no restart.
    std::fs::write(&crl, clients.crl(&[clients.good.serial])).expect("rewrite the CRL");
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload: {}", stud.output()));
    // The old workers drain; a new connection meets the new generation.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while served(stud.addr, &good) {
        assert!(
            std::time::Instant::now() < deadline,
            "a revoked certificate is still served: {}",
            stud.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let revoked = stud
        .wait_line(|l| l.to_ascii_lowercase().contains("revoked"), TIMEOUT)
        .unwrap_or_else(|| panic!("the refusal names no revocation: {}", stud.output()));
    assert!(revoked.contains("handshake"), "{revoked}");
}
