//! TLS conformance where rustls 0.23 alone sends another alert or none: the bad bytes go to the
//! real binary over TCP, and the answer on the wire must be exactly one well-formed plaintext
//! fatal alert with the description the RFC names, then an orderly close, with the reason in
//! stud's log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use stud_tests::hostile::{
    client_hello_message as hello, counting_backend, probe, record, records, Ending,
};
use stud_tests::net;
use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{require_tool, start_stud, TIMEOUT};

const UNEXPECTED_MESSAGE: u8 = 10;
const RECORD_OVERFLOW: u8 = 22;
const DECODE_ERROR: u8 = 50;
const PROTOCOL_VERSION: u8 = 70;
const INAPPROPRIATE_FALLBACK: u8 = 86;
const MISSING_EXTENSION: u8 = 109;
const UNRECOGNIZED_NAME: u8 = 112;

/// One extension: type, then its data with a two-byte length.
fn ext(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut out = typ.to_be_bytes().to_vec();
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// supported_versions listing `versions`.
fn supported_versions(versions: &[u16]) -> Vec<u8> {
    let mut data = vec![(versions.len() * 2) as u8];
    for v in versions {
        data.extend_from_slice(&v.to_be_bytes());
    }
    ext(43, &data)
}

/// signature_algorithms (ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256) and supported_groups
/// (x25519, secp256r1): what any modern hello carries.
fn common_extensions() -> Vec<u8> {
    let mut out = ext(13, &[0, 4, 0x04, 0x03, 0x08, 0x04]);
    out.extend_from_slice(&ext(10, &[0, 4, 0, 29, 0, 23]));
    out
}

/// Sends `payload` and asserts the answer is exactly one fatal alert `description`, then a
/// clean close (FIN, not a reset) well before the handshake timeout, logged with `reason`.
fn assert_refused(stud: &Stud, payload: &[u8], description: u8, reason: &str) {
    let seen = probe(stud.addr, payload, TIMEOUT);
    assert_eq!(
        records(&seen.reply),
        [(21u8, &[2u8, description][..])],
        "expected one fatal alert {description}; got {:02x?}",
        seen.reply
    );
    assert_eq!(
        seen.reply.len(),
        7,
        "only the alert record: {:02x?}",
        seen.reply
    );
    assert_eq!(seen.ending, Ending::Eof, "a clean close after the alert");
    assert!(seen.after < Duration::from_secs(5), "refused on sight");
    let line = stud.wait_line(|l| l.contains(reason), TIMEOUT);
    assert!(
        line.is_some(),
        "no close reason {reason:?} in:\n{}",
        stud.output()
    );
}

fn start() -> (Pki, Stud) {
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_stud!(&pki, backend, &[]);
    (pki, stud)
}

#[test]
fn a_legacy_version_of_ssl3_offering_tls13_is_refused_with_protocol_version() {
    let (_pki, stud) = start();
    let mut exts = supported_versions(&[0x0304]);
    exts.extend_from_slice(&common_extensions());
    exts.extend_from_slice(&ext(51, &[0, 0]));
    let msg = hello(0x0300, &[0x1301], &exts);
    assert_refused(
        &stud,
        &record(22, 0x0301, &msg),
        PROTOCOL_VERSION,
        "refused with protocol_version: ClientHello legacy_version is SSL 3.0 or older",
    );
}

#[test]
fn a_tls11_hello_without_signature_algorithms_is_refused_with_protocol_version() {
    let (_pki, stud) = start();
    let msg = hello(0x0302, &[0xc013, 0x002f], &ext(10, &[0, 2, 0, 23]));
    assert_refused(
        &stud,
        &record(22, 0x0301, &msg),
        PROTOCOL_VERSION,
        "refused with protocol_version: the client offers no protocol version",
    );
}

#[test]
fn fallback_scsv_below_tls13_is_refused_with_inappropriate_fallback() {
    let (_pki, stud) = start();
    let msg = hello(0x0303, &[0xc02b, 0x5600], &common_extensions());
    assert_refused(
        &stud,
        &record(22, 0x0301, &msg),
        INAPPROPRIATE_FALLBACK,
        "refused with inappropriate_fallback",
    );
    // With TLS 1.2 as stud's highest version the same hello is no fallback: it is served.
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let tls12 = start_stud!(&pki, backend, &["--tls-protos", "TLSv1.2"]);
    let seen = probe(
        tls12.addr,
        &record(22, 0x0301, &msg),
        Duration::from_secs(2),
    );
    assert_eq!(
        records(&seen.reply).first().map(|r| r.0),
        Some(22),
        "a ServerHello, not an alert: {:02x?}",
        seen.reply
    );
}

#[test]
fn openssl_fallback_scsv_gets_inappropriate_fallback() {
    require_tool("openssl");
    let (pki, stud) = start();
    let out = net::s_client(
        stud.addr,
        &[
            "-tls1_2",
            "-fallback_scsv",
            "-CAfile",
            pki.ca_pem_file.to_str().expect("UTF-8 path"),
        ],
    );
    // The alert from the server, not OpenSSL's own check of the downgrade sentinel in the
    // ServerHello's random ("ssl_choose_client_version:inappropriate fallback").
    assert!(
        out.contains("alert inappropriate fallback") && out.contains("SSL alert number 86"),
        "openssl did not receive the alert:\n{out}"
    );
}

#[test]
fn a_plaintext_record_over_2_14_bytes_is_refused_with_record_overflow() {
    let (_pki, stud) = start();
    // A TLS 1.3 hello padded (extension 21) to one byte past the limit, in one record.
    let mut exts = supported_versions(&[0x0304, 0x0303]);
    exts.extend_from_slice(&common_extensions());
    exts.extend_from_slice(&ext(51, &[0, 0]));
    let base = hello(0x0303, &[0x1301], &exts).len() + 4;
    exts.extend_from_slice(&ext(21, &vec![0; (1 << 14) + 1 - base]));
    let msg = hello(0x0303, &[0x1301], &exts);
    assert_eq!(msg.len(), (1 << 14) + 1);
    assert_refused(
        &stud,
        &record(22, 0x0301, &msg),
        RECORD_OVERFLOW,
        "refused with record_overflow",
    );
}

#[test]
fn a_client_hello_over_64_kib_is_refused_with_decode_error() {
    let (_pki, stud) = start();
    // The header announces 70,000 bytes; the first record carries its start.
    let mut first = vec![1, 0x01, 0x11, 0x70, 0x03, 0x03];
    first.extend_from_slice(&[0x5a; 1000]);
    assert_refused(
        &stud,
        &record(22, 0x0301, &first),
        DECODE_ERROR,
        "refused with decode_error: a ClientHello over 64 KiB",
    );
}

#[test]
fn a_record_inside_a_fragmented_hello_is_refused_with_unexpected_message() {
    let (_pki, stud) = start();
    let mut exts = supported_versions(&[0x0304, 0x0303]);
    exts.extend_from_slice(&common_extensions());
    exts.extend_from_slice(&ext(51, &[0, 0]));
    let msg = hello(0x0303, &[0x1301], &exts);
    let mut bytes = record(22, 0x0301, &msg[..20]);
    bytes.extend_from_slice(&record(20, 0x0303, &[1]));
    bytes.extend_from_slice(&record(22, 0x0301, &msg[20..]));
    assert_refused(
        &stud,
        &bytes,
        UNEXPECTED_MESSAGE,
        "refused with unexpected_message",
    );
}

#[test]
fn a_tls13_hello_without_key_share_is_refused_with_missing_extension() {
    let (_pki, stud) = start();
    let mut exts = supported_versions(&[0x0304]);
    exts.extend_from_slice(&common_extensions());
    let msg = hello(0x0303, &[0x1301], &exts);
    assert_refused(
        &stud,
        &record(22, 0x0301, &msg),
        MISSING_EXTENSION,
        "refused with missing_extension",
    );
}

/// A real rustls ClientHello naming `sni`.
fn rustls_hello(config: &Arc<rustls::ClientConfig>, sni: &str) -> Vec<u8> {
    let name = ServerName::try_from(sni.to_owned()).expect("valid name");
    let mut conn = ClientConnection::new(config.clone(), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("to a Vec");
    }
    out
}

#[test]
fn sni_nomatch_abort_answers_an_unknown_name_with_unrecognized_name() {
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_stud!(&pki, backend, &["--sni-nomatch-abort"]);
    let config = net::client_config(&pki.ca_der);
    assert_refused(
        &stud,
        &rustls_hello(&config, "nobody.example"),
        UNRECOGNIZED_NAME,
        "refused with unrecognized_name",
    );
    // The covered name is served.
    net::connect(stud.addr, &config).expect("localhost is served");
    let addr: SocketAddr = stud.addr;
    let seen = probe(
        addr,
        &rustls_hello(&config, "LOCALHOST."),
        Duration::from_secs(2),
    );
    assert_eq!(
        records(&seen.reply).first().map(|r| r.0),
        Some(22),
        "a covered name in other case with a trailing dot is served: {:02x?}",
        seen.reply
    );
}

/// A client config for `localhost` trusting the test CA, holding a ticket that allows 16 KiB of
/// early data for stud's certificate.
fn client_with_early_data_ticket(pki: &Pki) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = std::fs::read(&pki.site_pem).expect("site.pem");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(&pem).expect("key");
    stud_test_support::client_with_early_data_ticket(chain, key, &pki.ca_der)
}

#[test]
fn sixteen_kib_of_undecryptable_early_data_is_skipped_and_the_handshake_completes() {
    use std::io::{Read, Write};
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_stud!(&pki, backend, &[]);
    let config = client_with_early_data_ticket(&pki);
    let name = ServerName::try_from("localhost").expect("name");
    let mut conn = ClientConnection::new(config, name).expect("client");
    assert!(conn.early_data().is_some(), "the hello offers early data");
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight).expect("to a Vec");
    }
    // Four application-data records of garbage: 16,384 bytes of early data once the 17 bytes
    // of tag and content type each TLS 1.3 record carries are left out.
    for i in 0..4u8 {
        flight.extend_from_slice(&record(23, 0x0303, &[0xa0 + i; 4096 + 17]));
    }
    let mut tcp = stud_tests::hostile::raw_connect(stud.addr).expect("connect");
    tcp.write_all(&flight).expect("hello and early data");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("the 1-RTT handshake completes");
    }
    assert!(!tls.conn.is_early_data_accepted());
    tls.write_all(b"ping").expect("write");
    let mut echo = [0u8; 4];
    tls.read_exact(&mut echo).expect("echo");
    assert_eq!(&echo, b"ping");
}

/// A known gap, pinned so a rustls upgrade that closes it shows: after the server's flight, a
/// plaintext handshake record (an unencrypted Finished) must get `unexpected_message`; the alert
/// must be encrypted, so only rustls can send it, and rustls 0.23 tries to decrypt the record and
/// answers `bad_record_mac`.
#[test]
fn an_unencrypted_finished_gets_bad_record_mac_from_rustls() {
    use std::io::{Read, Write};
    let (pki, stud) = start();
    let config = net::client_config_speaking(&pki.ca_der, &[&rustls::version::TLS13]);
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(config, name).expect("client");
    let mut tcp = stud_tests::hostile::raw_connect(stud.addr).expect("connect");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).expect("to a Vec");
    }
    tcp.write_all(&hello).expect("hello");
    // Read the server's flight until the client has its Finished ready (and does not send it).
    let mut buf = [0u8; 16 * 1024];
    while !client.wants_write() {
        let n = tcp.read(&mut buf).expect("server flight");
        assert!(n > 0, "stud closed during its flight");
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            client.read_tls(&mut rest).expect("read_tls");
            client.process_new_packets().expect("a valid server flight");
        }
    }
    let mut fake = vec![20, 0, 0, 32];
    fake.extend_from_slice(&[0x77; 32]);
    tcp.write_all(&record(22, 0x0303, &fake))
        .expect("a plaintext Finished");
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    let mut rest = &answer[..];
    let mut outcome = Ok(());
    while !rest.is_empty() && outcome.is_ok() {
        if client.read_tls(&mut rest).is_err() {
            break;
        }
        outcome = client.process_new_packets().map(|_| ());
    }
    assert_eq!(
        outcome,
        Err(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadRecordMac
        )),
        "the answer to an unencrypted Finished changed: update docs/RELIABILITY.md"
    );
}
