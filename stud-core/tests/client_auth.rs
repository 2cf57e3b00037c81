//! Client certificates: who is served, who is refused with which alert, and what the embedder
//! and the backend learn about the client.

mod client_pki;
mod common;

use std::sync::Arc;

use client_pki::{client_presenting, ClientId, Pki};
use common::*;
use rustls::AlertDescription;
use stud_core::{
    Action, ClientAddressMode, ClientVerify, ClientVerifyMode, CloseReason, Config, Conn, Event,
    HandshakeInfo, Instant,
};

fn pki() -> &'static Pki {
    static CELL: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    CELL.get_or_init(Pki::new)
}

fn verifying(mode: ClientVerifyMode) -> stud_core::ConfigBuilder {
    builder()
        .client_verify(mode)
        .client_verify_ca_pem(pki().ca_pem.clone())
}

/// What one connection came to.
#[derive(Debug, Default)]
struct Outcome {
    /// The client's TLS error (an alert from stud shows as `AlertReceived`).
    client_error: Option<rustls::Error>,
    close: Option<CloseReason>,
    info: Option<HandshakeInfo>,
    backend_asked: bool,
}

impl Outcome {
    fn alert(&self) -> Option<AlertDescription> {
        match &self.client_error {
            Some(rustls::Error::AlertReceived(a)) => Some(*a),
            _ => None,
        }
    }
}

/// Runs one client against a `Conn` until it closes or nothing moves (bounded).
fn connect(config: impl Into<Arc<Config>>, client: Arc<rustls::ClientConfig>) -> Outcome {
    let now = Instant::from_micros(1_000_000);
    let mut conn = Conn::new(
        config.into(),
        now,
        PEER.parse().expect("peer"),
        LOCAL.parse().expect("local"),
    )
    .expect("conn");
    let name = "localhost".try_into().expect("server name");
    let mut client = rustls::ClientConnection::new(client, name).expect("client");
    let mut out = Outcome::default();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..100 {
        let mut progress = false;
        if out.client_error.is_none() {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).expect("write to a Vec");
            }
            if !wire.is_empty() {
                progress = true;
                assert_eq!(conn.handle_client_data(now, &wire), wire.len());
            }
        }
        while let Some(Event::HandshakeComplete(info)) = conn.poll_event() {
            out.info = Some(info);
        }
        while let Some(action) = conn.poll_action() {
            progress = true;
            match action {
                Action::ConnectBackend => {
                    out.backend_asked = true;
                    conn.handle_backend_connected(now);
                }
                Action::Close(reason) => out.close = Some(reason),
                _ => {}
            }
        }
        let n = conn.poll_client_transmit(now, &mut buf);
        if n > 0 && out.client_error.is_none() {
            progress = true;
            let mut rd = &buf[..n];
            while !rd.is_empty() && out.client_error.is_none() {
                client.read_tls(&mut rd).expect("read from a slice");
                if let Err(e) = client.process_new_packets() {
                    out.client_error = Some(e);
                }
            }
        }
        while let Some(action) = conn.poll_action() {
            if let Action::Close(reason) = action {
                out.close = Some(reason);
            }
        }
        if out.close.is_some() || !progress {
            break;
        }
    }
    out
}

fn refused(out: &Outcome, alert: AlertDescription) {
    assert_eq!(out.alert(), Some(alert), "{out:?}");
    let reason = out.close.as_ref().expect("the connection closed");
    assert_eq!(reason.as_str(), "handshake_failed", "{reason}");
    assert!(!out.backend_asked, "no backend for a refused client");
    assert!(
        out.info.is_none(),
        "no handshake event for a refused client"
    );
}

fn served(out: &Outcome) -> &HandshakeInfo {
    assert!(out.client_error.is_none(), "{out:?}");
    assert!(out.close.is_none(), "{out:?}");
    assert!(out.backend_asked, "a served client gets its backend");
    out.info.as_ref().expect("handshake event")
}

fn server_der() -> rustls::pki_types::CertificateDer<'static> {
    default_cert().2.clone()
}

fn presenting(id: Option<&ClientId>) -> Arc<rustls::ClientConfig> {
    client_presenting(&server_der(), id, true)
}

fn build(b: stud_core::ConfigBuilder) -> Config {
    b.build().expect("config")
}

#[test]
fn required_serves_a_good_certificate_and_reports_its_chain_leaf_first() {
    let out = connect(
        build(verifying(ClientVerifyMode::Required)),
        presenting(Some(&pki().via_intermediate)),
    );
    let info = served(&out);
    let want: Vec<Vec<u8>> = pki()
        .via_intermediate
        .chain
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    assert_eq!(want.len(), 2);
    assert_eq!(info.peer_certificates, want);
    assert_eq!(info.client_verify, Some(ClientVerify::Verified));
    assert_eq!(info.client_common_name(), Some("client-deep"));
}

#[test]
fn required_refuses_a_client_without_certificate_with_certificate_required() {
    let config = build(verifying(ClientVerifyMode::Required));
    refused(
        &connect(config, presenting(None)),
        AlertDescription::CertificateRequired,
    );
    // TLS 1.2 has no such alert in its RFC, but rustls sends the same one.
    let config = build(verifying(ClientVerifyMode::Required));
    refused(
        &connect(config, client_presenting(&server_der(), None, false)),
        AlertDescription::CertificateRequired,
    );
}

#[test]
fn required_refuses_a_certificate_from_another_ca_with_unknown_ca() {
    let out = connect(
        build(verifying(ClientVerifyMode::Required)),
        presenting(Some(&pki().wrong_ca)),
    );
    refused(&out, AlertDescription::UnknownCA);
}

#[test]
fn required_refuses_an_expired_certificate_with_certificate_expired() {
    let out = connect(
        build(verifying(ClientVerifyMode::Required)),
        presenting(Some(&pki().expired)),
    );
    refused(&out, AlertDescription::CertificateExpired);
}

#[test]
fn a_revoked_certificate_is_refused_with_certificate_revoked_and_others_still_served() {
    let config = || build(verifying(ClientVerifyMode::Required).crl(pki().crl_revoking_one_pem()));
    let out = connect(config(), presenting(Some(&pki().revoked)));
    refused(&out, AlertDescription::CertificateRevoked);
    // The same CRL, as DER: the good certificate is not on it.
    let der = build(verifying(ClientVerifyMode::Required).crl(pki().crl(&[pki().revoked.serial])));
    served(&connect(der, presenting(Some(&pki().good))));
    // In TLS 1.2 as well.
    let out = connect(
        config(),
        client_presenting(&server_der(), Some(&pki().revoked), false),
    );
    refused(&out, AlertDescription::CertificateRevoked);
}

#[test]
fn optional_serves_a_client_without_certificate_and_says_so() {
    let out = connect(
        build(verifying(ClientVerifyMode::Optional)),
        presenting(None),
    );
    let info = served(&out);
    assert!(info.peer_certificates.is_empty());
    assert_eq!(info.client_verify, Some(ClientVerify::NoCertificate));
    assert_eq!(info.client_common_name(), None);
}

#[test]
fn optional_refuses_a_certificate_that_does_not_verify() {
    let config = || build(verifying(ClientVerifyMode::Optional));
    refused(
        &connect(config(), presenting(Some(&pki().wrong_ca))),
        AlertDescription::UnknownCA,
    );
    refused(
        &connect(config(), presenting(Some(&pki().expired))),
        AlertDescription::CertificateExpired,
    );
    let info = served(&connect(config(), presenting(Some(&pki().good))))
        .client_verify
        .expect("asked");
    assert_eq!(info, ClientVerify::Verified);
}

#[test]
fn without_verification_no_certificate_is_asked_for_or_reported() {
    let out = connect(build(builder()), presenting(Some(&pki().good)));
    let info = served(&out);
    assert!(
        info.peer_certificates.is_empty(),
        "the client was not asked"
    );
    assert_eq!(info.client_verify, None);
}

#[test]
fn the_depth_limit_counts_intermediates() {
    let deep = Some(&pki().via_intermediate);
    let out = connect(
        build(verifying(ClientVerifyMode::Required).client_verify_depth(0)),
        presenting(deep),
    );
    refused(&out, AlertDescription::CertificateUnknown);
    let out = connect(
        build(verifying(ClientVerifyMode::Required).client_verify_depth(1)),
        presenting(deep),
    );
    served(&out);
    // Depth 0 still serves a certificate the anchor issued itself.
    let out = connect(
        build(verifying(ClientVerifyMode::Required).client_verify_depth(0)),
        presenting(Some(&pki().good)),
    );
    served(&out);
}

/// The TLVs of a PROXY v2 header at the start of `bytes`: (type, value) in order, and the
/// header's length. Panics on anything malformed.
fn tlvs(bytes: &[u8]) -> (Vec<(u8, Vec<u8>)>, usize) {
    assert_eq!(&bytes[..12], b"\r\n\r\n\0\r\nQUIT\n");
    let len = 16 + u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
    let addresses = match bytes[13] {
        0x11 => 12,
        0x21 => 36,
        _ => 0,
    };
    let mut out = Vec::new();
    let mut at = 16 + addresses;
    while at < len {
        let kind = bytes[at];
        let l = u16::from_be_bytes([bytes[at + 1], bytes[at + 2]]) as usize;
        out.push((kind, bytes[at + 3..at + 3 + l].to_vec()));
        at += 3 + l;
    }
    assert_eq!(at, len, "TLVs fill the header exactly");
    (out, len)
}

/// The SSL TLV's client byte, verify field and sub-TLVs.
fn ssl(tlvs: &[(u8, Vec<u8>)]) -> (u8, u32, Vec<(u8, Vec<u8>)>) {
    let value = &tlvs.iter().find(|(k, _)| *k == 0x20).expect("SSL TLV").1;
    let verify = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    let mut subs = Vec::new();
    let mut at = 5;
    while at < value.len() {
        let l = u16::from_be_bytes([value[at + 1], value[at + 2]]) as usize;
        subs.push((value[at], value[at + 3..at + 3 + l].to_vec()));
        at += 3 + l;
    }
    assert_eq!(at, value.len(), "sub-TLVs fill the SSL TLV exactly");
    (value[0], verify, subs)
}

fn sub(subs: &[(u8, Vec<u8>)], kind: u8) -> Option<&[u8]> {
    subs.iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.as_slice())
}

fn proxy_v2_pair(b: stud_core::ConfigBuilder, id: Option<&ClientId>) -> Pair {
    let config = b
        .client_address(ClientAddressMode::ProxyV2)
        .build()
        .expect("config");
    let mut p = Pair::with_client(config, presenting(id), "localhost");
    p.handshake();
    p.client_send(b"DATA");
    p.run();
    p
}

#[test]
fn proxy_v2_names_a_verified_client_by_its_bits_verify_field_and_cn() {
    let p = proxy_v2_pair(verifying(ClientVerifyMode::Required), Some(&pki().good));
    let (tlvs, len) = tlvs(&p.backend.received);
    assert_eq!(&p.backend.received[len..], b"DATA");
    let kinds: Vec<u8> = tlvs.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [0x02, 0x20],
        "authority, SSL; no certificate unless asked"
    );
    let (client, verify, subs) = ssl(&tlvs);
    assert_eq!(client, 0x01 | 0x02 | 0x04, "SSL, CERT_CONN, CERT_SESS");
    assert_eq!(verify, 0);
    let sub_kinds: Vec<u8> = subs.iter().map(|(k, _)| *k).collect();
    assert_eq!(sub_kinds, [0x21, 0x22, 0x23], "version, CN, cipher");
    assert_eq!(sub(&subs, 0x22), Some(&b"client-good"[..]));
}

#[test]
fn proxy_v2_carries_the_whole_certificate_as_der_and_pem_when_asked() {
    let p = proxy_v2_pair(
        verifying(ClientVerifyMode::Required).proxy_client_cert(true),
        Some(&pki().good),
    );
    let (tlvs, len) = tlvs(&p.backend.received);
    let leaf = pki().good.leaf().len();
    assert!(
        len > 16 + 2 * leaf,
        "the header holds the certificate twice: {len}"
    );
    assert_eq!(&p.backend.received[len..], b"DATA");
    let kinds: Vec<u8> = tlvs.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [0x02, 0x20, 0xE0], "authority, SSL, then the PEM");
    let (client, verify, subs) = ssl(&tlvs);
    assert_eq!((client, verify), (0x07, 0));
    let sub_kinds: Vec<u8> = subs.iter().map(|(k, _)| *k).collect();
    assert_eq!(sub_kinds, [0x21, 0x22, 0x23, 0x28]);
    assert_eq!(sub(&subs, 0x28), Some(pki().good.leaf()));
    let pem = &tlvs[2].1;
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.ends_with(b"\n-----END CERTIFICATE-----\n"));
    use rustls::pki_types::pem::PemObject;
    let parsed = rustls::pki_types::CertificateDer::from_pem_slice(pem).expect("PEM parses");
    assert_eq!(parsed.as_ref(), pki().good.leaf());
}

#[test]
fn proxy_v2_for_an_optional_client_without_certificate_has_no_cert_bits_and_verify_nonzero() {
    let p = proxy_v2_pair(
        verifying(ClientVerifyMode::Optional).proxy_client_cert(true),
        None,
    );
    let (tlvs, _) = tlvs(&p.backend.received);
    assert!(
        tlvs.iter().all(|(k, _)| *k != 0xE0),
        "no certificate to send"
    );
    let (client, verify, subs) = ssl(&tlvs);
    assert_eq!(client, 0x01);
    assert_ne!(verify, 0, "asked for and not presented is not verified");
    assert_eq!(sub(&subs, 0x22), None);
    assert_eq!(sub(&subs, 0x28), None);
}

/// Connects twice with one client config (which keeps its tickets); returns both events.
fn twice(first: &Arc<Config>, second: &Arc<Config>, id: &ClientId) -> (Pair, Pair) {
    let client = presenting(Some(id));
    let mut a = Pair::with_client(first.clone(), client.clone(), "localhost");
    a.handshake();
    a.client_send(b"x");
    a.run();
    let mut b = Pair::with_client(second.clone(), client, "localhost");
    b.run();
    (a, b)
}

fn info_of(p: &Pair) -> &HandshakeInfo {
    match p.events.first() {
        Some(Event::HandshakeComplete(info)) => info,
        other => panic!("no handshake event: {other:?}"),
    }
}

#[test]
fn a_resumed_session_reports_its_certificate_as_cert_sess_only() {
    let config = Arc::new(build(
        verifying(ClientVerifyMode::Required).client_address(ClientAddressMode::ProxyV2),
    ));
    let (a, mut b) = twice(&config, &config, &pki().good);
    assert!(!info_of(&a).resumed);
    let info = info_of(&b).clone();
    assert!(info.resumed, "the second connection resumes");
    assert_eq!(info.peer_certificates, vec![pki().good.leaf().to_vec()]);
    assert_eq!(info.client_verify, Some(ClientVerify::Verified));
    b.client_send(b"y");
    b.run();
    let (tlvs, _) = tlvs(&b.backend.received);
    let (client, verify, subs) = ssl(&tlvs);
    assert_eq!(client, 0x01 | 0x04, "CERT_SESS without CERT_CONN");
    assert_eq!(verify, 0);
    assert_eq!(sub(&subs, 0x22), Some(&b"client-good"[..]));
}

#[test]
fn a_session_does_not_resume_under_another_client_policy() {
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let optional = Arc::new(build(
        verifying(ClientVerifyMode::Optional).ticket_secret(secret.clone()),
    ));
    let required = Arc::new(build(
        verifying(ClientVerifyMode::Required).ticket_secret(secret.clone()),
    ));
    let (_, b) = twice(&optional, &required, &pki().good);
    assert!(
        !info_of(&b).resumed,
        "a ticket from another policy is not taken"
    );
    // Same secret, same policy: resumes (so the check above is about the policy).
    let again = Arc::new(build(
        verifying(ClientVerifyMode::Optional).ticket_secret(secret),
    ));
    let (_, b) = twice(&optional, &again, &pki().good);
    assert!(info_of(&b).resumed);
}

#[test]
fn a_crl_file_is_read_at_build_so_a_rebuild_revokes_and_old_tickets_stop_resuming() {
    let dir = std::env::temp_dir().join(format!("stud-crl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let crl = dir.join("clients.crl");
    std::fs::write(&crl, pki().crl(&[])).expect("write CRL");
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let build_now = || {
        Arc::new(build(
            verifying(ClientVerifyMode::Required)
                .crl_file(&crl)
                .ticket_secret(secret.clone()),
        ))
    };
    let before = build_now();
    let client = presenting(Some(&pki().revoked));
    let mut a = Pair::with_client(before, client.clone(), "localhost");
    a.handshake();
    a.client_send(b"x");
    a.run();
    assert!(a.closed.is_none(), "not revoked yet: served");

    std::fs::write(&crl, pki().crl(&[pki().revoked.serial])).expect("rewrite CRL");
    // The client offers its ticket from before; the rebuilt policy does not take it.
    let out = connect(build_now(), client);
    refused(&out, AlertDescription::CertificateRevoked);
    let _ = std::fs::remove_dir_all(&dir);
}

fn build_error(b: stud_core::ConfigBuilder) -> String {
    match b.build() {
        Ok(_) => panic!("the configuration should not build"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn configuration_mistakes_are_one_line_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("stud-client-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let missing = dir.join("missing-ca.pem");
    let err = build_error(
        builder()
            .client_verify(ClientVerifyMode::Required)
            .client_verify_ca_file(&missing),
    );
    assert!(
        err.starts_with(&format!("cannot read {}", missing.display())),
        "{err}"
    );

    let empty = dir.join("empty-ca.pem");
    std::fs::write(&empty, "# no certificates here\n").expect("write");
    let err = build_error(
        builder()
            .client_verify(ClientVerifyMode::Optional)
            .client_verify_ca_file(&empty),
    );
    assert_eq!(
        err,
        format!(
            "{}: no certificate found (expected a -----BEGIN CERTIFICATE----- block)",
            empty.display()
        )
    );

    let bad_crl = dir.join("bad.crl");
    std::fs::write(&bad_crl, b"\x30\x03\x02\x01\x05").expect("write");
    let err = build_error(verifying(ClientVerifyMode::Required).crl_file(&bad_crl));
    assert!(
        err.starts_with(&format!(
            "invalid CRL: {}: not a valid CRL",
            bad_crl.display()
        )),
        "{err}"
    );
    let missing_crl = dir.join("missing.crl");
    let err = build_error(verifying(ClientVerifyMode::Required).crl_file(&missing_crl));
    assert!(
        err.starts_with(&format!("cannot read {}", missing_crl.display())),
        "{err}"
    );

    let err = build_error(builder().client_verify(ClientVerifyMode::Required));
    assert!(
        err.contains("client-verify = required needs the CA certificates"),
        "{err}"
    );
    assert!(!err.contains('\n'));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settings_that_do_nothing_are_warned_about() {
    let config = build(
        builder()
            .client_verify_ca_pem(pki().ca_pem.clone())
            .crl(pki().crl(&[]))
            .proxy_client_cert(true),
    );
    let warnings = config.warnings().join("\n");
    assert!(warnings.contains("client CA certificates are given but client verification is off"));
    assert!(warnings.contains("CRLs are given but client verification is off"));
    assert!(warnings.contains("proxy-client-cert does nothing without the PROXY v2 header"));
    assert_eq!(config.client_verify(), ClientVerifyMode::None);
}
