//! `--config`: real configuration files as hitch and the 2016 stud users have them, checked with
//! `stud -t` (beside `hitch --test` when hitch is installed) and run with real clients.

use std::path::{Path, PathBuf};
use std::process::Command;

use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{effective_uid, run, Stud};
use stud_tests::{optional_tool, stud_bin};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The example hitch ships: the installed copy when the hitch package is there, else ours.
fn hitch_example() -> PathBuf {
    let installed = Path::new("/usr/share/doc/hitch/examples/hitch.conf.example");
    if installed.is_file() {
        return installed.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/hitch.conf.example")
}

/// `stud ARGS`: exit 1 and exactly one `stud: error:` line, which starts with `prefix` and
/// contains `needle`. Returns that line.
fn expect_error(args: &[&str], prefix: &str, needle: &str) -> String {
    let line = stud_tests::process::one_error(&stud_bin!(), args);
    assert!(
        line.starts_with(prefix),
        "{args:?}: expected {prefix:?} first in {line:?}"
    );
    assert!(
        line.contains(needle),
        "{args:?}: expected {needle:?} in {line:?}"
    );
    line
}

/// `hitch --test --config=FILE`'s exit code, when hitch is installed.
fn hitch_test(config: &Path) -> Option<i32> {
    if !optional_tool("hitch") {
        return None;
    }
    let out = Command::new("hitch")
        .arg("--test")
        .arg(format!("--config={}", s(config)))
        .output()
        .expect("run hitch");
    out.status.code()
}

#[test]
fn hitch_example_loads_unchanged_and_like_hitch_wants_a_certificate() {
    let example = hitch_example();
    let config = format!("--config={}", s(&example));
    // Every key is understood; what is missing is a certificate for the frontend, which is
    // what hitch says too (exit 1) once its user exists.
    expect_error(
        &["-t", &config],
        "no certificate for frontend *,443",
        "pem-file",
    );
    if let Some(code) = hitch_test(&example) {
        assert_eq!(code, 1, "hitch --test on its example");
    }
    // With a certificate on the command line, the file is a working configuration. The
    // example names user "hitch" (Debian's package creates "_hitch"): the command line's user
    // replaces it, as the unit file's --user does.
    if effective_uid() != 0 {
        eprintln!("skipped the rest: changing user needs root");
        return;
    }
    let pki = Pki::new();
    let out = run(
        &stud_bin!(),
        &["-t", &config, "-u", "root", "-g", "root", s(&pki.site_pem)],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("configuration OK"), "{}", out.stdout);
    expect_error(
        &["-t", &config, s(&pki.site_pem)],
        "unknown user 'hitch'",
        "hitch",
    );
}

#[test]
fn the_hitch_service_command_line_serves() {
    // hitch.service: hitch --user _hitch --group _hitch --config /etc/hitch/hitch.conf --quiet
    if effective_uid() != 0 {
        eprintln!("skipped: changing user needs root");
        return;
    }
    let user = if run(Path::new("/usr/bin/id"), &["_hitch"]).code == Some(0) {
        "_hitch"
    } else {
        "nobody"
    };
    let group = if user == "_hitch" {
        "_hitch"
    } else {
        "nogroup"
    };
    let pki = Pki::new();
    let dir = TempDir::new();
    let port = net::free_port();
    let backend = echo_backend();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = {{\n    host = \"127.0.0.1\"\n    port = \"{port}\"\n}}\n\
             backend = \"[{}]:{}\"\nworkers = 2\npem-file = \"{}\"\n",
            backend.ip(),
            backend.port(),
            s(&pki.site_pem)
        ),
    );
    let stud = Stud::spawn(
        &stud_bin!(),
        &[
            "--user",
            user,
            "--group",
            group,
            "--config",
            s(&conf),
            "--quiet",
        ],
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = net::client_config(&pki.ca_der);
    let deadline = std::time::Instant::now() + stud_tests::TIMEOUT;
    let mut tls = loop {
        match connect(addr, &config) {
            Ok(tls) => break tls,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("stud never served {addr}: {e}; stderr:\n{}", stud.output())
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    std::io::Write::write_all(&mut tls, b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
    // --quiet: nothing but warnings and errors on stderr.
    assert!(!stud.output().contains("listening on"), "{}", stud.output());
}

/// A configuration file naming every key stud honours or accepts, as an operator would write it.
fn every_key(pki: &Pki, dir: &TempDir, port: u16) -> String {
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("pem-dir");
    std::fs::copy(&pki.site_pem, certs.join("a.pem")).expect("copy");
    let ocsp = dir.path().join("site.ocsp");
    pki.ocsp_response(&ocsp);
    let split_key = dir.write("site.key", {
        let pem = std::fs::read_to_string(&pki.site_pem).expect("read");
        pem[pem.find("-----BEGIN PRIVATE KEY").expect("key")..].to_string()
    });
    let secret = dir.write(
        "ticket.secret",
        "0123456789abcdef0123456789abcdef0123456789\n",
    );
    format!(
        r#"# every key stud knows, as a hitch or stud user would write it
frontend = {{
    host = "127.0.0.1"
    port = "{port}"
    pem-file = {{
        cert = "{cert_only}"
        private-key = "{split_key}"
        ocsp-resp-file = "{ocsp}"
        ocsp-verify-staple = off
    }}
    match-global-certs = on
    sni-nomatch-abort = off
    tls-protos = TLSv1.2 TLSv1.3
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"
    ciphersuites = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
    prefer-server-ciphers = on
    client-verify = none
    client-verify-ca = ""
    tls = on
    ssl = off
}}
backend = "[127.0.0.1]:8000"
backend-refresh = 0
backlog = 200
keepalive = 600
tcp-fastopen = on
recv-bufsize = 65536
send-bufsize = 65536
reuseport = off
ssl-handshake-timeout = 10
backend-connect-timeout = 5
idle-timeout = 0
drain-timeout = 5
pem-file = "{site}"
pem-dir = "{certs}"
pem-dir-glob = "*.pem"
ocsp-dir = "{dir}"
ocsp-verify-staple = off
ocsp-connect-tmo = 4
ocsp-resp-tmo = 10
ocsp-refresh-interval = 1800
tls-protos = TLSv1.2 TLSv1.3
tls = on
ssl = off
ciphers = "EECDH+AESGCM:EDH+AESGCM"
ciphersuites = "TLS_AES_256_GCM_SHA384"
prefer-server-ciphers = off
sni-nomatch-abort = off
alpn-protos = "h2, http/1.1"
ecdh-curve = "X25519:prime256v1:secp384r1"
session-cache = 0
shared-cache = 0
shared-cache-listen = ""
shared-cache-peer = ""
shared-cache-if = ""
ticket-secret = "{secret}"
ssl-engine = ""
client-verify = none
client-verify-ca = ""
proxy-client-cert = off
client-verify-depth = 3
metrics = "[127.0.0.1]:0"
log-format = text
backend-source = 127.0.0.1
write-ip = off
write-proxy = off
write-proxy-v1 = off
write-proxy-v2 = on
proxy-proxy = off
accept-proxy = off
proxy-tlv = on
proxy-authority = on
client = off
backend-ca = ""
backend-insecure = off
backend-sni = ""
backend-cert = ""
workers = 2
worker-timeout = 30
max-conns = 1000
chroot = ""
user = ""
group = ""
daemon = off
pidfile = "{dir}/stud.pid"
quiet = off
log-level = 2
log-filename = ""
log-conns = on
syslog = off
syslog-facility = "daemon"
ring-slots = 0
ring-data-len = 0
"#,
        cert_only = s(&pki.cert_only),
        split_key = s(&split_key),
        ocsp = s(&ocsp),
        site = s(&pki.site_pem),
        certs = s(&certs),
        dir = s(dir.path()),
        secret = s(&secret),
    )
}

#[test]
fn a_file_with_every_key_loads_and_warns_where_stud_differs() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let text = every_key(&pki, &dir, net::free_port());
    // Every key the migration guide lists for files is in it (crl wants a revocation list signed
    // by the CA, which the unit tests of the engine cover).
    let guide = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/migrating.md"));
    for row in guide.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let key = cells[0].trim_start_matches("| `").trim_end_matches('`');
        if cells.get(2) == Some(&"command line") || key == "crl" {
            continue;
        }
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} ="))),
            "the every-key file lacks {key}"
        );
    }
    let conf = dir.write("every.conf", text);
    let out = run(&stud_bin!(), &["-t", &format!("--config={}", s(&conf))]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("configuration OK"), "{}", out.stdout);
    for differs in ["ocsp-dir: ", "ocsp-connect-tmo: "] {
        assert!(
            out.stderr.contains(&format!("stud: warning: {differs}")),
            "no warning for {differs}: {}",
            out.stderr
        );
    }
    // Keys at their defaults stay silent.
    assert!(!out.stderr.contains("session-cache"), "{}", out.stderr);
}

#[test]
fn a_file_with_every_key_serves() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let port = net::free_port();
    let text = every_key(&pki, &dir, port).replace(
        "backend = \"[127.0.0.1]:8000\"",
        &format!("backend = \"[127.0.0.1]:{}\"", echo_backend().port()),
    );
    let text = text.replace("write-proxy-v2 = on", "write-proxy-v2 = off");
    let conf = dir.write("every.conf", text);
    let stud = Stud::start(&stud_bin!(), &[&format!("--config={}", s(&conf))]);
    assert_eq!(stud.addr.port(), port);
    let mut tls = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    std::io::Write::write_all(&mut tls, b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
}

/// Each bad file: stud -t exits 1 naming FILE:LINE and why; hitch --test exits 1 too.
#[test]
fn bad_files_name_the_line_and_hitch_refuses_them_too() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let site = s(&pki.site_pem);
    let head = format!("backend = \"[127.0.0.1]:8000\"\npem-file = \"{site}\"\n");
    for (name, body, line, needle) in [
        ("syntax", "frontend = {\n  host = \"127.0.0.1\"\n  port\n}\n", 5, "expected '=' after 'port'"),
        ("unknown", "workers = 1\nfrobnicate = 1\n", 4, "unknown key 'frobnicate'"),
        ("value", "workers = \"many\"\n", 3, "invalid worker count 'many'"),
        ("address", "frontend = \"[127.0.0.1:8443\"\n", 3, "invalid address"),
        (
            "duplicate",
            "frontend = \"[127.0.0.1]:8443\"\n\nfrontend = {\n host = \"127.0.0.1\"\n port = \"8443\"\n}\n",
            5,
            "frontend 127.0.0.1,8443 given more than once",
        ),
        ("missing-pem", "pem-file = \"/nonexistent/site.pem\"\n", 3, "/nonexistent/site.pem"),
        ("engine", "ssl-engine = \"rdrand\"\n", 3, "no OpenSSL"),
    ] {
        let conf = dir.write(&format!("{name}.conf"), format!("{head}{body}"));
        let prefix = format!("{}:{line}: ", s(&conf));
        expect_error(&["-t", &format!("--config={}", s(&conf))], &prefix, needle);
        // The same file without -t does not start either.
        expect_error(&[&format!("--config={}", s(&conf))], &prefix, needle);
        // Whether hitch can load an engine depends on the machine's OpenSSL.
        if name != "engine" {
            if let Some(code) = hitch_test(&conf) {
                assert_eq!(code, 1, "hitch --test accepted {name}");
            }
        }
    }
    let good = dir.write(
        "good.conf",
        format!("{head}frontend = \"[127.0.0.1]:8443\"\nworkers = 2\nworkers = 3\n"),
    );
    let out = run(&stud_bin!(), &["-t", &format!("--config={}", s(&good))]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // A key said twice: hitch keeps the later value, and so does stud, saying so.
    assert!(
        out.stderr
            .contains("good.conf:5: 'workers' is set again (first on line 4)"),
        "{}",
        out.stderr
    );
    if let Some(code) = hitch_test(&good) {
        assert_eq!(code, 0, "hitch --test refused the good file");
    }
}

#[test]
fn the_command_line_overrides_the_file() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let dead = net::dead_address();
    let conf = dir.write(
        "stud.conf",
        format!(
            "frontend = \"[127.0.0.1]:0\"\nbackend = \"[127.0.0.1]:{}\"\npem-file = \"{}\"\n",
            dead.addr.port(),
            s(&pki.site_pem)
        ),
    );
    let b = echo_backend().to_string();
    let stud = Stud::start(&stud_bin!(), &["--config", s(&conf), "-b", &b]);
    let mut tls = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    std::io::Write::write_all(&mut tls, b"ping").expect("write");
    assert_eq!(
        net::read_exact(&mut tls, 4).expect("echo from the -b backend"),
        b"ping"
    );
}

#[test]
fn a_missing_config_file_is_one_line() {
    expect_error(
        &["--config=/nonexistent/hitch.conf"],
        "cannot read configuration file /nonexistent/hitch.conf",
        "No such file",
    );
}

#[test]
fn a_check_by_an_unprivileged_user_accepts_a_file_that_names_a_user_like_hitch_does() {
    // CI checks configuration files without root; the file names the user stud will become.
    if effective_uid() != 0 || !Path::new("/bin/su").exists() {
        eprintln!("skipped: becoming another user needs root and su");
        return;
    }
    let pki = Pki::new();
    let dir = TempDir::new();
    let conf = dir.write(
        "hitch.conf",
        format!(
            "frontend = \"[127.0.0.1]:8443\"\npem-file = \"{}\"\nuser = \"nobody\"\n",
            s(&pki.site_pem)
        ),
    );
    let as_nobody = |program: &str| {
        Command::new("/bin/su")
            .args(["nobody", "-s", "/bin/sh", "-c"])
            .arg(format!("{program} --test --config={}", s(&conf)))
            .output()
            .expect("su")
    };
    let stud = as_nobody(s(&stud_bin!()));
    assert_eq!(
        stud.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stud.stderr)
    );
    if stud_tests::optional_tool("hitch") {
        assert_eq!(
            as_nobody("hitch").status.code(),
            Some(0),
            "hitch --test as nobody"
        );
    }
    // Running it, rather than checking it, still needs root.
    let run_it = Command::new("/bin/su")
        .args(["nobody", "-s", "/bin/sh", "-c"])
        .arg(format!("{} --config={}", s(&stud_bin!()), s(&conf)))
        .output()
        .expect("su");
    assert_eq!(run_it.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&run_it.stderr).contains("need stud to start as root"),
        "{}",
        String::from_utf8_lossy(&run_it.stderr)
    );
    // A user that does not exist is still refused, naming it.
    let unknown = dir.write(
        "unknown.conf",
        format!(
            "pem-file = \"{}\"\nuser = \"no-such-user-here\"\n",
            s(&pki.site_pem)
        ),
    );
    expect_error(
        &["-t", &format!("--config={}", s(&unknown))],
        "unknown user 'no-such-user-here'",
        "no-such-user-here",
    );
}
