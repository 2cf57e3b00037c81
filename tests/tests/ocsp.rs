//! OCSP stapling: a DER response beside the PEM (`site.pem.ocsp`) is stapled, as OpenSSL's
//! client sees it, at start or after SIGHUP; a file that is no successful OCSP response stops
//! the start with its name.

use std::path::Path;

use stud_tests::pki::Pki;
use stud_tests::process::{run, Stud};
use stud_tests::{require_tool, stud_bin, TIMEOUT};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_response_beside_the_pem_is_stapled_for_openssl() {
    require_tool("openssl");
    let pki = Pki::new();
    let ocsp = Path::new(&format!("{}.ocsp", s(&pki.site_pem))).to_path_buf();
    pki.ocsp_response(&ocsp);
    let backend = stud_tests::net::echo_backend();
    let stud = Stud::serve(&stud_bin!(), &pki.site_pem, backend, &[]);
    let line = stud.wait_line(|l| l.contains("stapling the OCSP response"), TIMEOUT);
    assert!(
        line.is_some_and(|l| l.contains(s(&ocsp))),
        "{}",
        stud.output()
    );

    let text = stud_tests::net::s_client(
        stud.addr,
        &[
            "-servername",
            "localhost",
            "-status",
            "-CAfile",
            s(&pki.ca_pem_file),
        ],
    );
    assert!(
        text.contains("OCSP Response Status: successful"),
        "no staple in: {text}"
    );
    assert!(text.contains("Cert Status: unknown"), "{text}");
}

#[test]
fn without_a_response_nothing_is_stapled() {
    require_tool("openssl");
    let pki = Pki::new();
    let backend = stud_tests::net::echo_backend();
    let stud = Stud::serve(&stud_bin!(), &pki.site_pem, backend, &[]);
    let text = stud_tests::net::s_client(stud.addr, &["-servername", "localhost", "-status"]);
    assert!(text.contains("OCSP response: no response sent"), "{text}");
}

#[test]
fn a_bad_response_file_stops_the_start_and_names_the_file() {
    let pki = Pki::new();
    let ocsp = format!("{}.ocsp", s(&pki.site_pem));
    std::fs::write(&ocsp, "-----BEGIN OCSP RESPONSE-----\n").expect("write");
    let out = run(&stud_bin!(), &["-t", s(&pki.site_pem)]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("OCSP response"), "{}", out.stderr);
    assert!(out.stderr.contains(&ocsp), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_response_written_later_is_stapled_after_sighup() {
    require_tool("openssl");
    let pki = Pki::new();
    let backend = stud_tests::net::echo_backend();
    let stud = Stud::serve(&stud_bin!(), &pki.site_pem, backend, &[]);
    let status = || stud_tests::net::s_client(stud.addr, &["-servername", "localhost", "-status"]);
    assert!(status().contains("OCSP response: no response sent"));
    // The operator's cron job fetches a response, then signals stud.
    let ocsp = Path::new(&format!("{}.ocsp", s(&pki.site_pem))).to_path_buf();
    pki.ocsp_response(&ocsp);
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload: {}", stud.output()));
    // New workers staple it (retry while they start and the old ones stop accepting).
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !status().contains("OCSP Response Status: successful") {
        assert!(
            std::time::Instant::now() < deadline,
            "the response was never stapled after SIGHUP: {}",
            stud.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
