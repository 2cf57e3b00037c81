//! Every bad input at start-up gets one line, `stud: error: …`, and exit status 1 (as hitch and the 2016 stud); `-t`, `-h` and
//! `-V` behave.

use std::net::TcpListener;

use stud_tests::pki::Pki;
use stud_tests::process::run;
use stud_tests::stud_bin;

/// Runs stud and checks: exit 1, stderr is exactly one `stud: error:` line containing `needle`.
fn expect_error(args: &[&str], needle: &str) {
    let out = run(&stud_bin!(), args);
    assert_eq!(out.code, Some(1), "{args:?}: stderr {:?}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("stud: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: stderr {:?}", out.stderr);
    assert!(
        errors[0].contains(needle),
        "{args:?}: expected {needle:?} in {:?}",
        errors[0]
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn unknown_flag() {
    let pki = Pki::new();
    expect_error(
        &["--frobnicate", pki.site_pem.to_str().expect("utf-8")],
        "unknown option '--frobnicate'",
    );
}

#[test]
fn bad_addresses() {
    let pki = Pki::new();
    let pem = pki.site_pem.to_str().expect("utf-8");
    expect_error(&["-b", "127.0.0.1", pem], "invalid address '127.0.0.1'");
    expect_error(
        &["-f", "1.2.3.4,70000", pem],
        "invalid address '1.2.3.4,70000'",
    );
    expect_error(&["--backend=,80", pem], "empty host");
    expect_error(
        &["-f", "no-such-host.invalid,443", pem],
        "no-such-host.invalid",
    );
}

#[test]
fn missing_pem_names_the_path() {
    expect_error(&["/nonexistent/site.pem"], "/nonexistent/site.pem");
}

#[test]
fn unreadable_pem_names_the_path() {
    let pki = Pki::new();
    // A directory cannot be read as a file, even by root.
    let dir = pki.dir.path().to_str().expect("utf-8");
    expect_error(&[dir], dir);
}

#[test]
fn pem_without_key() {
    let pki = Pki::new();
    expect_error(
        &[pki.cert_only.to_str().expect("utf-8")],
        "no private key found",
    );
}

#[test]
fn pem_that_is_not_pem() {
    let pki = Pki::new();
    expect_error(&[pki.garbage.to_str().expect("utf-8")], "garbage.pem");
}

#[test]
fn mismatched_key() {
    let pki = Pki::new();
    expect_error(&[pki.mismatched.to_str().expect("utf-8")], "does not match");
}

#[test]
fn unknown_cipher() {
    let pki = Pki::new();
    expect_error(
        &["-c", "NOT-A-CIPHER", pki.site_pem.to_str().expect("utf-8")],
        "NOT-A-CIPHER",
    );
}

#[test]
fn port_in_use() {
    let pki = Pki::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    expect_error(
        &[
            "-f",
            &format!("127.0.0.1,{port}"),
            pki.site_pem.to_str().expect("utf-8"),
        ],
        "Address already in use",
    );
}

#[test]
fn no_certificate() {
    expect_error(&["-n", "2"], "no certificate");
}

#[test]
fn bad_numbers() {
    let pki = Pki::new();
    let pem = pki.site_pem.to_str().expect("utf-8");
    expect_error(&["-n", "zero", pem], "invalid worker count 'zero'");
    expect_error(&["-B", "-5", pem], "backlog");
    expect_error(&["--ssl-handshake-timeout=0", pem], "at least 1 second");
    expect_error(&["-k", "soon", pem], "keepalive");
    expect_error(&["-n"], "needs a value");
}

#[test]
fn unknown_user() {
    let pki = Pki::new();
    expect_error(
        &[
            "-u",
            "no-such-user-here",
            pki.site_pem.to_str().expect("utf-8"),
        ],
        "no-such-user-here",
    );
}

#[test]
fn test_mode_accepts_a_good_configuration() {
    let pki = Pki::new();
    let out = run(&stud_bin!(), &["-t", pki.site_pem.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("configuration OK"), "{}", out.stdout);
}

#[test]
fn test_mode_rejects_a_bad_configuration() {
    let pki = Pki::new();
    expect_error(
        &["--test", pki.mismatched.to_str().expect("utf-8")],
        "does not match",
    );
}

#[test]
fn test_mode_does_not_bind() {
    // -t checks files, not the network: a taken port is not its business.
    let pki = Pki::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = run(
        &stud_bin!(),
        &[
            "-t",
            "-f",
            &format!("127.0.0.1:{port}"),
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn ssl_flag_warns_and_runs_tls() {
    let pki = Pki::new();
    let out = run(
        &stud_bin!(),
        &["-t", "--ssl", pki.site_pem.to_str().expect("utf-8")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("stud: warning: --ssl: SSLv3 is not supported"),
        "{}",
        out.stderr
    );
}

#[test]
fn help_and_version() {
    let help = run(&stud_bin!(), &["--help"]);
    assert_eq!(help.code, Some(0));
    for flag in [
        "--tls",
        "--ssl",
        "-c",
        "-b",
        "-f",
        "-n",
        "--write-ip",
        "--write-proxy",
        "-B",
        "-k",
        "-r",
        "-u",
        "-g",
        "-q",
        "-s",
        "--syslog-facility",
        "--daemon",
        "-p",
        "-t",
        "-V",
        "--ssl-handshake-timeout",
        "--backend-connect-timeout",
        "--idle-timeout",
        "--reuseport",
        "--self-signed",
    ] {
        assert!(help.stdout.contains(flag), "--help lacks {flag}");
    }
    let version = run(&stud_bin!(), &["-V"]);
    assert_eq!(version.code, Some(0));
    assert!(version.stdout.starts_with("stud "), "{}", version.stdout);
}
