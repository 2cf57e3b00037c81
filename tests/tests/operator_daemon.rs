//! `stud --daemon` the way operators run it: relative paths from the directory it was started
//! in, a chroot, an unprivileged user, certificates rotated on disk and SIGHUP, SIGTERM at the
//! end with the pidfile removed.

use stud_tests::daemon::{echoes, served_with, Daemon};
use stud_tests::net::{self, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::effective_uid;
use stud_tests::stud_bin;

/// Whether this test may use -u/-g/-r (it prints why not, once, when it may not).
fn root() -> bool {
    if effective_uid() != 0 {
        eprintln!("skipped: not root, so -u/-g/-r cannot be exercised");
        return false;
    }
    true
}

#[test]
fn a_daemon_resolves_relative_paths_against_its_start_directory_on_start_and_on_reload() {
    let old = Pki::new();
    let new = Pki::new();
    let dir = TempDir::new();
    let pem = dir.write("site.pem", std::fs::read(&old.site_pem).expect("old pem"));
    dir.write(
        "tickets.key",
        "0123456789abcdef0123456789abcdef0123456789abcdef\n",
    );
    let port = net::free_port();
    let f = format!("127.0.0.1,{port}");
    let b = echo_backend().to_string();
    let daemon = Daemon::start(
        &stud_bin!(),
        dir.path(),
        &[
            "-p",
            "stud.pid",
            "-f",
            &f,
            "-b",
            &b,
            "--ticket-secret",
            "tickets.key",
            "site.pem",
        ],
        "stud.pid".as_ref(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    echoes(
        &mut served_with(addr, &net::client_config(&old.ca_der)),
        b"old",
    );

    // Rotation: the file the operator named, in the directory the operator was in.
    std::fs::write(&pem, std::fs::read(&new.site_pem).expect("new pem")).expect("rotate");
    daemon.signal(libc::SIGHUP);
    echoes(
        &mut served_with(addr, &net::client_config(&new.ca_der)),
        b"new",
    );
    assert!(daemon.stop(), "the pidfile outlived the daemon");
}

#[test]
fn a_chrooted_daemon_starts_and_serves() {
    if !root() {
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new();
    let jail = TempDir::new();
    let port = net::free_port();
    let f = format!("127.0.0.1,{port}");
    let b = echo_backend().to_string();
    let daemon = Daemon::start(
        &stud_bin!(),
        dir.path(),
        &[
            "-r",
            jail.path().to_str().expect("utf-8"),
            "-p",
            "stud.pid",
            "-f",
            &f,
            "-b",
            &b,
            pki.site_pem.to_str().expect("utf-8"),
        ],
        "stud.pid".as_ref(),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    echoes(
        &mut served_with(addr, &net::client_config(&pki.ca_der)),
        b"jailed",
    );
    daemon.stop();
}
