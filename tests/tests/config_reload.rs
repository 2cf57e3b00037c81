//! What SIGHUP reads again, as hitch does: the configuration file and every file it names, a
//! `pem-dir` included (where every file is a certificate and a bad one is skipped with a
//! warning, never stopping stud). What only a restart can change is kept, with a warning. And
//! `backend-refresh`, which takes the reload's path when the backend's name moves.

use std::path::Path;
use std::time::{Duration, Instant};

use stud_tests::daemon::{echoes, served_with, Daemon};
use stud_tests::net::{self, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::{require_tool, stud_bin, TIMEOUT};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
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
    assert!(net::served_subject(stud.addr, "localhost").contains("CN=localhost"));
    // Before the reload, other.test gets the default (the first file).
    assert!(net::served_subject(stud.addr, "other.test").contains("CN=localhost"));

    pki.write_leaf(&certs.join("40-other.pem"), "other.test");
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload: {}", stud.output()));
    let deadline = Instant::now() + TIMEOUT;
    while !net::served_subject(stud.addr, "other.test").contains("CN=other.test") {
        assert!(
            Instant::now() < deadline,
            "the new file was never served after SIGHUP: {}",
            stud.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(net::served_subject(stud.addr, "localhost").contains("CN=localhost"));
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

#[test]
fn sighup_reads_the_configuration_file_again() {
    require_tool("openssl");
    let pki = Pki::new();
    let work = TempDir::new();
    let other = work.path().join("other.pem");
    pki.write_leaf(&other, "other.test");
    let backend = echo_backend().port();
    let config = |pem: &Path, workers: u32| {
        format!(
            "frontend = {{\n  host = \"127.0.0.1\"\n  port = \"0\"\n}}\n\
             backend = \"[127.0.0.1]:{backend}\"\nworkers = {workers}\npem-file = \"{}\"\n",
            s(pem)
        )
    };
    let conf = work.write("hitch.conf", config(&pki.site_pem, 1));
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf)]);
    assert!(net::served_subject(stud.addr, "other.test").contains("CN=localhost"));

    // The operator edits the file: another certificate, and a worker count only a restart
    // can apply.
    work.write(
        "hitch.conf",
        config(&other, 2) + "backend-source = 127.0.0.1\nlog-format = json\n",
    );
    stud.signal(libc::SIGHUP);
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload: {}", stud.output()));
    assert!(
        stud.output().lines().any(|l| l
            .contains("reload: workers, log-format, backend-source changed")
            && l.contains("until a restart")),
        "{}",
        stud.output()
    );
    let deadline = Instant::now() + TIMEOUT;
    while !net::served_subject(stud.addr, "other.test").contains("CN=other.test") {
        assert!(
            Instant::now() < deadline,
            "the edited file was never served after SIGHUP: {}",
            stud.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A file that no longer loads leaves the running configuration serving.
    work.write("hitch.conf", "workers = many\n");
    stud.signal(libc::SIGHUP);
    stud.wait_line(
        |l| l.contains("hitch.conf:1: invalid worker count 'many'"),
        TIMEOUT,
    )
    .unwrap_or_else(|| panic!("the bad file was not reported: {}", stud.output()));
    assert!(net::served_subject(stud.addr, "other.test").contains("CN=other.test"));
}

/// Writes `contents` to `path` readable by root alone, as private keys are kept.
fn write_root_only(path: &Path, contents: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create key file");
    std::io::Write::write_all(&mut file, contents).expect("write key file");
}

#[test]
fn a_chrooted_unprivileged_daemon_reloads_its_edited_relative_configuration() {
    if stud_tests::process::effective_uid() != 0 {
        eprintln!("skipped: not root, so user, group and chroot cannot be exercised");
        return;
    }
    let old = Pki::new();
    let new = Pki::new();
    let dir = TempDir::new();
    std::fs::create_dir(dir.path().join("jail")).expect("jail");
    write_root_only(
        &dir.path().join("old.pem"),
        &std::fs::read(&old.site_pem).expect("old pem"),
    );
    write_root_only(
        &dir.path().join("new.pem"),
        &std::fs::read(&new.site_pem).expect("new pem"),
    );
    let port = net::free_port();
    let backend = echo_backend().port();
    // Every path relative, as in a file kept beside its certificates.
    let config = |pem: &str| {
        format!(
            "frontend = \"[127.0.0.1]:{port}\"\nbackend = \"[127.0.0.1]:{backend}\"\n\
             pem-file = \"{pem}\"\npidfile = \"stud.pid\"\nchroot = \"jail\"\n\
             user = \"nobody\"\ngroup = \"nogroup\"\n"
        )
    };
    dir.write("hitch.conf", config("old.pem"));
    let daemon = Daemon::start(
        &stud_bin!(),
        dir.path(),
        &["--config", "hitch.conf"],
        "stud.pid".as_ref(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    echoes(
        &mut served_with(addr, &net::client_config(&old.ca_der)),
        b"old",
    );

    // At 3 a.m. the operator points the file at the new key and reloads: the daemon, in `/`
    // since it detached, reads the same file and the root-only key it names.
    dir.write("hitch.conf", config("new.pem"));
    daemon.signal(libc::SIGHUP);
    echoes(
        &mut served_with(addr, &net::client_config(&new.ca_der)),
        b"new",
    );
    assert!(daemon.stop(), "the pidfile outlived the daemon");
}

/// A backend that answers each connection's first byte with `tag`.
fn tagged_backend(bind: &str, tag: u8) -> std::net::SocketAddr {
    stud_tests::net::backend_on(bind, move |mut conn| {
        let mut byte = [0u8; 1];
        if std::io::Read::read_exact(&mut conn, &mut byte).is_ok() {
            let _ = std::io::Write::write_all(&mut conn, &[tag]);
        }
    })
}

/// Which backend a new connection through `stud` reaches.
fn reached(addr: std::net::SocketAddr, pki: &Pki) -> Option<u8> {
    let mut tls = stud_tests::net::connect(addr, &net::client_config(&pki.ca_der)).ok()?;
    std::io::Write::write_all(&mut tls, b"?").ok()?;
    net::read_exact(&mut tls, 1).ok().map(|got| got[0])
}

#[test]
fn backend_refresh_follows_the_backend_to_its_new_address() {
    if stud_tests::process::effective_uid() != 0 || !stud_tests::optional_tool("unshare") {
        return;
    }
    let pki = Pki::new();
    let old = tagged_backend("127.0.0.7:0", b'A');
    let new = tagged_backend(&format!("127.0.0.8:{}", old.port()), b'B');
    // The name resolves through a hosts file of the test's own, bound over /etc/hosts in a
    // mount namespace for stud alone.
    let dir = TempDir::new();
    let hosts = dir.write("hosts", "127.0.0.1 localhost\n127.0.0.7 backend.test\n");
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} -f 127.0.0.1,0 -b backend.test,{} --backend-refresh=1 {}",
        s(&hosts),
        s(&stud_bin!()),
        old.port(),
        s(&pki.site_pem)
    );
    let stud = Stud::start(Path::new("/usr/bin/unshare"), &["-m", "sh", "-c", &script]);
    assert_eq!(reached(stud.addr, &pki), Some(b'A'), "{}", stud.output());

    // The record changes (written in place: the bind mount follows the file, not its name).
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.8 backend.test\n").expect("hosts");
    stud.wait_line(|l| l.contains("now resolves to 127.0.0.8"), TIMEOUT)
        .unwrap_or_else(|| panic!("the change was not seen: {}", stud.output()));
    // The same path as SIGHUP: a new generation of workers, the old one draining.
    stud.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT)
        .unwrap_or_else(|| panic!("no reload: {}", stud.output()));
    let deadline = Instant::now() + TIMEOUT;
    while reached(stud.addr, &pki) != Some(b'B') {
        assert!(
            Instant::now() < deadline,
            "new connections never reached the new address: {}",
            stud.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(new.port(), old.port());
}
