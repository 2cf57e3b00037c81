//! `pem-dir`: every file of a directory is a certificate, a bad file is skipped with a warning
//! and never stops stud, and SIGHUP reads the directory again.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stud_tests::net::{echo_backend, s_client};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::{require_tool, stud_bin, TIMEOUT};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Writes `DIR/NAME` holding a certificate for `host`, signed by the test CA, and its key.
fn leaf_for(pki: &Pki, dir: &Path, name: &str, host: &str) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
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
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        &subject,
        "-addext",
        &san,
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&pki.ca_pem_file),
        "-CAkey",
        s(&pki.ca_key_file),
        "-CAcreateserial",
        "-days",
        "2",
        "-copy_extensions",
        "copy",
        "-out",
        s(&crt),
    ]);
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(&crt).expect("crt"),
        std::fs::read_to_string(&key).expect("key")
    );
    for tmp in [key, csr, crt] {
        let _ = std::fs::remove_file(tmp);
    }
    std::fs::write(dir.join(name), pem).expect("write pem");
}

/// The subject of the certificate stud serves for `sni`.
fn served_subject(stud: &Stud, sni: &str) -> String {
    let out = s_client(stud.addr, &["-servername", sni]);
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no certificate for {sni}: {out}"))
        .replace(' ', "")
}

#[test]
fn a_pem_dir_serves_its_good_files_skips_a_bad_one_and_is_read_again_on_sighup() {
    require_tool("openssl");
    let pki = Pki::new();
    let work = TempDir::new();
    let certs = work.path().join("cert.d");
    std::fs::create_dir(&certs).expect("mkdir");
    std::fs::copy(&pki.site_pem, certs.join("10-localhost.pem")).expect("copy");
    std::fs::write(certs.join("20-broken.pem"), "not a certificate\n").expect("write");
    std::fs::copy(&pki.mismatched, certs.join("30-mismatched.pem")).expect("copy");
    std::fs::write(certs.join("README"), "ignored: does not match the glob\n").expect("write");
    let conf = work.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"[127.0.0.1]:{}\"\n\
             pem-dir = \"{}\"\npem-dir-glob = \"*.pem\"\n",
            echo_backend().port(),
            s(&certs)
        ),
    );
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    let out = stud.output();
    for bad in ["20-broken.pem", "30-mismatched.pem"] {
        assert!(
            out.lines()
                .any(|l| l.contains("warning: pem-dir: skipping") && l.contains(bad)),
            "no warning for {bad}: {out}"
        );
    }
    assert!(!out.contains("README"), "{out}");
    assert!(served_subject(&stud, "localhost").contains("CN=localhost"));
    // Before the reload, other.test gets the default (the first file).
    assert!(served_subject(&stud, "other.test").contains("CN=localhost"));

    leaf_for(&pki, &certs, "40-other.pem", "other.test");
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload: {}", stud.output()));
    let deadline = Instant::now() + TIMEOUT;
    while !served_subject(&stud, "other.test").contains("CN=other.test") {
        assert!(
            Instant::now() < deadline,
            "the new file was never served after SIGHUP: {}",
            stud.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served_subject(&stud, "localhost").contains("CN=localhost"));
}

#[test]
fn a_pem_dir_with_no_usable_file_is_a_clear_error() {
    let dir = TempDir::new();
    dir.write("broken.pem", "not a certificate\n");
    let out = stud_tests::process::run(
        &stud_bin!(),
        &["-t", "--pem-dir", s(dir.path()), "-f", "127.0.0.1,0"],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("stud: error: "))
        .unwrap_or_else(|| panic!("no error line: {}", out.stderr));
    assert!(
        error.contains("no certificate for frontend 127.0.0.1,0")
            && error.contains("holds no usable certificate (pem-dir: skipping")
            && error.contains("broken.pem"),
        "{error}"
    );
}
