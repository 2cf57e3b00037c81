//! The TLS posture as an outside scanner sees it: `testssl.sh` against stud, its JSON findings
//! parsed and held to: TLS 1.2 and 1.3 only, only forward-secret AEAD suites, no compression, no
//! client-initiated renegotiation, no known vulnerability. A finding stud chooses on purpose, or
//! one about the throwaway test certificate rather than stud, is allow-listed with its reason.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stud_tests::hostile::{counting_backend, served};
use stud_tests::net;
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{alive, send_signal};
use stud_tests::procfs::report;
use stud_tests::{optional_tool, require_tool, start_stud};

/// One testssl run must fit in this (it takes about a minute on an idle 2-core machine).
const SCAN_TIMEOUT: Duration = Duration::from_secs(150);

/// Findings above INFO that are accepted, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "engine_problem",
        "the scanner's own OpenSSL has no GOST engine; says nothing about stud",
    ),
    (
        "cert_validityPeriod",
        "the test certificate is made by rcgen with a validity of centuries; operators bring their own",
    ),
    (
        "cert_revocation",
        "the test certificate names no CRL or OCSP responder; operators bring their own",
    ),
    (
        "fallback_SCSV",
        "rustls implements no TLS_FALLBACK_SCSV because it has no older protocol to fall back to",
    ),
];

/// Findings the scanner gets wrong by a race of its own, allowed only with exactly this text.
/// testssl checks ticket resumption with `openssl s_client -sess_out </dev/null`: at stdin's
/// end s_client sends close_notify and exits right after its Finished, and a TLS 1.3 server's
/// tickets follow that Finished, so whether any arrives in time is a race (measured here: 24 and
/// 25 runs in 60 without one, the same before and after this change of stud). Ticket resumption
/// itself is checked by `tickets.rs` and the interop tests.
const RACY: &[(&str, &str)] = &[(
    "sessionresumption_ticket",
    "check failed because of connect problem",
)];

/// Whether finding `id` with `text` is one of [`RACY`].
fn racy(id: &str, text: &str) -> bool {
    RACY.iter().any(|(racy, said)| *racy == id && text == *said)
}

/// One finding: severity and text.
type Findings = BTreeMap<String, (String, String)>;

/// testssl's JSON file as `id -> (severity, finding)`, read through python3's json module.
fn parse(json: &std::path::Path) -> Findings {
    let script = "import json,sys\n\
                  for x in json.load(open(sys.argv[1])):\n\
                  \x20   print(x['id'], x['severity'], ' '.join(x['finding'].split()), sep='\\t')";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(json)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "cannot parse {}: {}",
        json.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut cols = l.splitn(3, '\t');
            Some((
                cols.next()?.to_string(),
                (cols.next()?.to_string(), cols.next()?.to_string()),
            ))
        })
        .collect()
}

fn finding<'a>(f: &'a Findings, id: &str) -> &'a str {
    f.get(id)
        .map(|(_, text)| text.as_str())
        .unwrap_or_else(|| panic!("testssl reported nothing for {id}: {f:#?}"))
}

/// Runs testssl against `localhost:port` and returns its findings; `round` names its files.
fn scan(pki: &Pki, port: u16, dir: &TempDir, round: &str) -> Findings {
    let json = dir.path().join(format!("testssl-{round}.json"));
    let log = dir.path().join(format!("testssl-{round}.log"));
    let target = format!("localhost:{port}");
    let started = Instant::now();
    let mut child = Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--nodns",
            "none",
            "--ip",
            "127.0.0.1",
            "--connect-timeout",
            "10",
            "--openssl-timeout",
            "10",
            "--add-ca",
            pki.ca_pem_file.to_str().expect("UTF-8 path"),
            "--jsonfile",
            json.to_str().expect("UTF-8 path"),
            // Protocols, cipher categories, forward secrecy, server defaults, vulnerabilities,
            // and every cipher per protocol.
            "-p",
            "-s",
            "-f",
            "-S",
            "-U",
            "-E",
            &target,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(&log).expect("create testssl log"),
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("start testssl");
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if started.elapsed() > SCAN_TIMEOUT {
            send_signal(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
            panic!(
                "testssl did not finish within {SCAN_TIMEOUT:?}; its output:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    parse(&json)
}

/// Findings in which testssl reports a problem with the scan itself rather than with stud.
fn scanner_trouble(f: &Findings) -> Vec<String> {
    f.iter()
        .filter(|(id, (severity, text))| {
            matches!(severity.as_str(), "WARN" | "FATAL")
                && !ALLOWED.iter().any(|(allowed, _)| allowed == id)
                && !racy(id, text)
        })
        .map(|(id, (severity, text))| format!("{id} {severity}: {text}"))
        .collect()
}

#[test]
fn testssl_finds_only_modern_forward_secret_aead_and_no_vulnerability() {
    if !optional_tool("testssl") {
        return;
    }
    require_tool("python3");
    let pki = Pki::new();
    let (backend, _) = counting_backend();
    let stud = start_stud!(&pki, backend, &["-n", "1"]);
    let worker = stud.worker_pids(1)[0];
    let dir = TempDir::new();
    let started = Instant::now();
    let mut f = scan(&pki, stud.addr.port(), &dir, "first");
    // testssl's own trouble (a WARN or FATAL about the scan, e.g. a timed-out openssl call on a
    // busy machine) is not a finding about stud: scan once more if there is time.
    let trouble = scanner_trouble(&f);
    if !trouble.is_empty() && started.elapsed() < Duration::from_secs(75) {
        report(
            "posture",
            &format!("scanner trouble, scanning again: {trouble:?}"),
        );
        f = scan(&pki, stud.addr.port(), &dir, "second");
    }
    report(
        "posture",
        &format!("{} findings in {:?}", f.len(), started.elapsed()),
    );

    // Protocols.
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(
            finding(&f, old).contains("not offered"),
            "{old}: {}",
            finding(&f, old)
        );
    }
    for current in ["TLS1_2", "TLS1_3"] {
        assert!(
            finding(&f, current).starts_with("offered"),
            "{current}: {}",
            finding(&f, current)
        );
    }
    // Cipher categories that must be empty, and forward secrecy.
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert!(finding(&f, weak).contains("not offered"), "{weak} offered");
    }
    assert_eq!(finding(&f, "PFS"), "offered");
    // Every suite, one by one: ECDHE key exchange and an AEAD, on both versions.
    let suites: Vec<&String> = f.keys().filter(|id| id.starts_with("cipher-tls")).collect();
    assert!(
        suites.iter().any(|id| id.starts_with("cipher-tls1_2_"))
            && suites.iter().any(|id| id.starts_with("cipher-tls1_3_")),
        "suites seen: {suites:?}"
    );
    for id in &suites {
        let text = finding(&f, id);
        assert!(
            text.contains(" ECDH ") && (text.contains("GCM") || text.contains("POLY1305")),
            "{id} is not an ECDHE AEAD suite: {text}"
        );
        assert!(
            id.starts_with("cipher-tls1_2_") || id.starts_with("cipher-tls1_3_"),
            "{id}: a suite of an old protocol"
        );
    }
    // No compression (CRIME) and no client-initiated renegotiation.
    assert_eq!(
        f.get("CRIME_TLS").map(|s| s.0.as_str()),
        Some("OK"),
        "{f:#?}"
    );
    assert_eq!(
        f.get("secure_client_renego").map(|s| s.0.as_str()),
        Some("OK"),
        "{f:#?}"
    );
    // Each vulnerability check ran and passed.
    for vuln in [
        "heartbleed",
        "CCS",
        "ROBOT",
        "POODLE_SSL",
        "SWEET32",
        "FREAK",
        "DROWN",
        "LOGJAM",
        "BEAST",
        "LUCKY13",
        "RC4",
    ] {
        assert_eq!(
            f.get(vuln).map(|s| s.0.as_str()),
            Some("OK"),
            "{vuln}: {:?}",
            f.get(vuln)
        );
    }
    // Nothing else above INFO, unless allow-listed with a reason.
    let flagged: Vec<String> = f
        .iter()
        .filter(|(_, (severity, _))| !matches!(severity.as_str(), "OK" | "INFO" | "DEBUG"))
        .filter(|(id, _)| !ALLOWED.iter().any(|(allowed, _)| allowed == id))
        .filter(|(id, (_, text))| !racy(id, text))
        .map(|(id, (severity, text))| format!("{id} {severity}: {text}"))
        .collect();
    assert!(flagged.is_empty(), "testssl flags: {flagged:#?}");
    for (id, reason) in ALLOWED {
        if let Some((severity, text)) = f.get(*id) {
            report(
                "posture",
                &format!("allowed {id} {severity} ({text}): {reason}"),
            );
        }
    }

    // The scan's hundreds of odd handshakes cost no worker.
    assert!(alive(worker));
    assert_eq!(stud.worker_pids(1), vec![worker]);
    served(stud.addr, &net::client_config(&pki.ca_der)).expect("served after the scan");
}
