//! `stud --daemon` the way operators run it: relative paths from the directory it was started
//! in, a chroot, an unprivileged user, certificates rotated on disk and SIGHUP, SIGTERM at the
//! end with the pidfile removed.

use std::time::Duration;
use stud_tests::daemon::{echoes, served_with, Daemon};
use stud_tests::net::{self, echo_backend};
use stud_tests::pki::{Pki, TempDir};

use stud_tests::process::{alive, effective_uid, send_signal, Stud};
use stud_tests::procfs::children;
use stud_tests::{stud_bin, TIMEOUT};

/// The arguments, owned.
fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(ToString::to_string).collect()
}

/// Whether this test may use -u/-g/-r (it prints why not, once, when it may not).
fn root() -> bool {
    if effective_uid() != 0 {
        stud_tests::skipped("not root, so -u/-g/-r cannot be exercised");
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
    let b = echo_backend().to_string();
    let (daemon, addr) =
        Daemon::start_on_free_port(&stud_bin!(), dir.path(), "stud.pid".as_ref(), |f| {
            owned(&[
                "-p",
                "stud.pid",
                "-f",
                f,
                "-b",
                &b,
                "--ticket-secret",
                "tickets.key",
                "-l",
                "stud.log",
                "site.pem",
            ])
        });
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
    let log = std::fs::read_to_string(dir.path().join("stud.log")).expect("the log file");
    for line in ["listening on", "reloaded the configuration", "stopped"] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
}

#[test]
fn a_daemon_chrooted_to_a_relative_directory_starts_and_serves() {
    if !root() {
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new();
    let jail = dir.path().join("jail");
    std::fs::create_dir(&jail).expect("jail");
    let b = echo_backend().to_string();
    let (daemon, addr) =
        Daemon::start_on_free_port(&stud_bin!(), dir.path(), "stud.pid".as_ref(), |f| {
            owned(&[
                "-r",
                "jail",
                "-p",
                "stud.pid",
                "-f",
                f,
                "-b",
                &b,
                pki.site_pem.to_str().expect("utf-8"),
            ])
        });
    echoes(
        &mut served_with(addr, &net::client_config(&pki.ca_der)),
        b"jailed",
    );
    for worker in children(daemon.pid) {
        let root = std::fs::read_link(format!("/proc/{worker}/root")).expect("root link");
        assert_eq!(root, jail.canonicalize().expect("jail"), "worker {worker}");
    }
    assert!(daemon.stop(), "the pidfile outlived the daemon");
}

/// A field of /proc/PID/status, its first value.
fn status_field(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Writes `contents` to `path` readable by root alone, the way a key is rotated: a new file
/// renamed over the old one.
fn write_root_only(path: &std::path::Path, contents: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .expect("create key file");
    std::io::Write::write_all(&mut file, contents).expect("write key file");
    std::fs::rename(&tmp, path).expect("rename key file");
}

#[test]
fn an_unprivileged_chrooted_daemon_reloads_a_root_only_key_and_removes_its_pidfile() {
    if !root() {
        return;
    }
    let old = Pki::new();
    let new = Pki::new();
    let dir = TempDir::new();
    let jail = TempDir::new();
    let pem = dir.path().join("site.pem");
    write_root_only(&pem, &std::fs::read(&old.site_pem).expect("old pem"));
    let b = echo_backend().to_string();
    let (daemon, addr) =
        Daemon::start_on_free_port(&stud_bin!(), dir.path(), "relative.pid".as_ref(), |f| {
            owned(&[
                "-u",
                "nobody",
                "-g",
                "nogroup",
                "-r",
                jail.path().to_str().expect("utf-8"),
                "-p",
                "relative.pid",
                "-f",
                f,
                "-b",
                &b,
                "site.pem",
            ])
        });
    echoes(
        &mut served_with(addr, &net::client_config(&old.ca_der)),
        b"old",
    );

    // The supervisor keeps root and the real root directory; its workers have neither.
    assert_eq!(
        status_field(daemon.pid, "Uid:"),
        "0",
        "the supervisor's uid"
    );
    let root_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/root")).expect("root link");
    assert_eq!(root_of(daemon.pid), std::path::PathBuf::from("/"));
    let workers = children(daemon.pid);
    assert!(!workers.is_empty(), "no worker");
    for pid in workers {
        assert_eq!(status_field(pid, "Uid:"), "65534", "uid of worker {pid}");
        assert_eq!(status_field(pid, "Gid:"), "65534", "gid of worker {pid}");
        assert_eq!(root_of(pid), jail.path().canonicalize().expect("jail"));
    }

    write_root_only(&pem, &std::fs::read(&new.site_pem).expect("new pem"));
    daemon.signal(libc::SIGHUP);
    echoes(
        &mut served_with(addr, &net::client_config(&new.ca_der)),
        b"new",
    );
    assert!(daemon.stop(), "the pidfile outlived the daemon");
}

#[test]
fn a_worker_that_cannot_drop_privileges_exits_instead_of_serving_as_root() {
    if !root() {
        return;
    }
    let pki = Pki::new();
    let jail = TempDir::new();
    let jail_path = jail.path().to_str().expect("utf-8").to_string();
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        echo_backend(),
        &["-u", "nobody", "-r", &jail_path],
    );
    let worker = stud.worker_pids(1)[0];
    // Once the first worker is in its chroot, the chroot vanishes under the running daemon;
    // the next worker cannot enter it.
    stud_tests::procfs::wait_for(TIMEOUT, || {
        (status_field(worker, "Uid:") == "65534").then_some(())
    })
    .expect("the first worker never dropped privileges");
    drop(jail);
    assert!(
        send_signal(worker, libc::SIGKILL),
        "worker {worker} is gone already; stderr:\n{}",
        stud.output()
    );
    stud.wait_lines(
        |lines| {
            let refusals = lines
                .iter()
                .filter(|l| l.contains("cannot drop privileges") && l.contains(&jail_path))
                .count();
            (refusals >= 2).then_some(())
        },
        TIMEOUT,
    )
    .unwrap_or_else(|| panic!("no refusal to serve; stderr:\n{}", stud.output()));
    // Nobody serves: the handshake finds no worker to answer it.
    let tcp = std::net::TcpStream::connect(stud.addr).expect("the backlog still takes it");
    tcp.set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(
        rustls::ClientConnection::new(
            net::client_config(&pki.ca_der),
            "localhost".try_into().expect("name"),
        )
        .expect("client"),
        tcp,
    );
    assert!(
        tls.conn.complete_io(&mut tls.sock).is_err(),
        "a worker served without dropping privileges"
    );
    assert!(alive(stud.pid()), "the supervisor gave up");
}

#[test]
fn unprivileged_workers_still_die_with_their_parent() {
    if !root() {
        return;
    }
    let pki = Pki::new();
    let jail = TempDir::new();
    let mut stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        echo_backend(),
        &[
            "-n",
            "2",
            "-u",
            "nobody",
            "-r",
            jail.path().to_str().expect("utf-8"),
        ],
    );
    let workers = stud.worker_pids(2);
    // Both have dropped privileges (a change of credentials clears the parent-death signal,
    // so it must be asked for after it).
    stud_tests::procfs::wait_for(TIMEOUT, || {
        workers
            .iter()
            .all(|w| status_field(*w, "Uid:") == "65534")
            .then_some(())
    })
    .expect("the workers never dropped privileges");
    stud.signal(libc::SIGKILL);
    let _ = stud.wait_exit(TIMEOUT);
    let gone =
        stud_tests::procfs::wait_for(TIMEOUT, || workers.iter().all(|w| !alive(*w)).then_some(()));
    assert!(gone.is_some(), "workers {workers:?} outlived their parent");
}

#[test]
fn a_daemon_that_cannot_write_its_pidfile_fails_naming_it_and_leaves_nothing_running() {
    let pki = Pki::new();
    let dir = TempDir::new();
    // A port taken between choosing it and binding would fail the start for another reason:
    // then another port.
    let (out, port) = (0..4)
        .map(|_| {
            let port = net::free_port();
            let f = format!("127.0.0.1,{port}");
            let out = stud_tests::process::run_in(
                &stud_bin!(),
                Some(dir.path()),
                &[
                    "--daemon",
                    "-p",
                    "no-such-dir/stud.pid",
                    "-f",
                    &f,
                    pki.site_pem.to_str().expect("utf-8"),
                ],
            );
            (out, port)
        })
        .find(|(out, _)| !out.stderr.contains("Address already in use"))
        .expect("a free port in four tries");
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let expected = format!(
        "stud: error: cannot write pidfile {}:",
        dir.path().join("no-such-dir/stud.pid").display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    // The daemon is gone and its port with it.
    let free = stud_tests::procfs::wait_for(TIMEOUT, || {
        std::net::TcpListener::bind(("127.0.0.1", port)).ok()
    });
    assert!(free.is_some(), "the failed daemon still holds its port");
}

#[test]
fn a_unix_backend_the_chroot_cannot_see_is_warned_about_at_start() {
    if !root() {
        return;
    }
    let pki = Pki::new();
    let jail = TempDir::new();
    let outside = TempDir::new();
    let socket = outside.path().join("backend.sock");
    let b = format!("--backend={}", socket.display());
    let r = jail.path().display().to_string();
    let out = stud_tests::process::run_in(
        &stud_bin!(),
        None,
        &["-t", "-r", &r, &b, pki.site_pem.to_str().expect("utf-8")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("looked up by the workers inside the chroot"),
        "{}",
        out.stderr
    );
    // Seen from inside the chroot (the socket's directory bound there), no warning.
    let inside = jail
        .path()
        .join(socket.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(inside.parent().expect("a directory")).expect("mkdir");
    std::fs::write(&inside, b"").expect("stand-in");
    let out = stud_tests::process::run_in(
        &stud_bin!(),
        None,
        &["-t", "-r", &r, &b, pki.site_pem.to_str().expect("utf-8")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("inside the chroot"), "{}", out.stderr);
}
