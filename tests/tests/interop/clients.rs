//! One runner per TLS stack. Each sends the fixture's request at both versions, hands back what
//! it received to `Fixture::check_reply`, and checks in its own way that the connection ended
//! with close_notify rather than a bare FIN.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use stud_tests::process::send_signal;
use stud_tests::{optional_tool, require_tool};

use super::{Fixture, Version, VERSIONS};

/// A client run may take this long (Go's first build of crypto/tls takes the longest).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` to completion with `stdin` from a file (or nothing), killing it after `timeout`.
fn run(cmd: &mut Command, stdin: Option<&Path>, timeout: Duration) -> Output {
    let input = match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).expect("open request file")),
        None => Stdio::null(),
    };
    let mut child = cmd
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pipes: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    })
    .collect();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            send_signal(child.id() as i32, libc::SIGKILL);
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut outputs = pipes.into_iter().map(|t| t.join().unwrap_or_default());
    Output {
        status,
        stdout: outputs.next().unwrap_or_default(),
        stderr: outputs.next().unwrap_or_default(),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(stack: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{stack} failed ({}): {}",
        out.status,
        stderr(out)
    );
}

/// OpenSSL's `s_client`: `-ign_eof` keeps it reading after its input ends; OpenSSL 3 reports an
/// end of stream without close_notify as "unexpected eof while reading".
pub(crate) fn openssl(f: &Fixture) {
    require_tool("openssl");
    for version in VERSIONS {
        let stack = format!("openssl s_client {version:?}");
        let flag = match version {
            Version::Tls12 => "-tls1_2",
            Version::Tls13 => "-tls1_3",
        };
        let out = run(
            Command::new("openssl").args([
                "s_client",
                flag,
                "-quiet",
                "-ign_eof",
                "-connect",
                &format!("127.0.0.1:{}", f.port()),
                "-servername",
                "localhost",
                "-CAfile",
                f.ca(),
                "-verify_return_error",
            ]),
            Some(&f.framed),
            CLIENT_TIMEOUT,
        );
        let err = stderr(&out);
        assert!(
            !err.contains("unexpected eof"),
            "{stack}: no close_notify: {err}"
        );
        succeeded(&stack, &out);
        f.check_reply(&stack, &out.stdout);
    }
}

/// curl over HTTP/1.1 (a Content-Length reply, so the body's end is known; curl still fails on
/// a TLS error at the end).
pub(crate) fn curl(f: &Fixture) {
    require_tool("curl");
    let port = f.port();
    for version in VERSIONS {
        let stack = format!("curl {version:?}");
        let (min, max) = match version {
            Version::Tls12 => ("--tlsv1.2", "1.2"),
            Version::Tls13 => ("--tlsv1.3", "1.3"),
        };
        let out = run(
            Command::new("curl").args([
                "--silent",
                "--show-error",
                "--fail",
                min,
                "--tls-max",
                max,
                "--cacert",
                f.ca(),
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                "-H",
                "Expect:",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", f.raw.display()),
                &format!("https://localhost:{port}/"),
            ]),
            None,
            CLIENT_TIMEOUT,
        );
        succeeded(&stack, &out);
        f.check_reply(&stack, &out.stdout);
    }
}

const PYTHON_CLIENT: &str = r#"
import socket, ssl, sys
ca, port, version, request = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = v
ctx.maximum_version = v
data = open(request, "rb").read()
out = bytearray()
with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
    # suppress_ragged_eofs=False: an end of stream without close_notify raises SSLEOFError.
    with ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as s:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        print(s.version(), file=sys.stderr)
sys.stdout.buffer.write(out)
"#;

/// Python's `ssl` module (OpenSSL underneath, a different client on top).
pub(crate) fn python(f: &Fixture) {
    require_tool("python3");
    for version in VERSIONS {
        let stack = format!("python ssl {version:?}");
        let v = match version {
            Version::Tls12 => "1.2",
            Version::Tls13 => "1.3",
        };
        let out = run(
            Command::new("python3").args([
                "-c",
                PYTHON_CLIENT,
                f.ca(),
                &f.port().to_string(),
                v,
                f.framed.to_str().expect("UTF-8 path"),
            ]),
            None,
            CLIENT_TIMEOUT,
        );
        succeeded(&stack, &out);
        let expected = format!("TLSv{v}");
        assert!(
            stderr(&out).contains(&expected),
            "{stack}: {}",
            stderr(&out)
        );
        f.check_reply(&stack, &out.stdout);
    }
}

/// GnuTLS's `gnutls-cli`: it prints "Peer has closed the GnuTLS connection" on close_notify and
/// "non-properly terminated" on a bare end of stream.
pub(crate) fn gnutls(f: &Fixture) {
    if !optional_tool("gnutls-cli") {
        return;
    }
    for version in VERSIONS {
        let stack = format!("gnutls-cli {version:?}");
        let priority = match version {
            Version::Tls12 => "NORMAL:-VERS-ALL:+VERS-TLS1.2",
            Version::Tls13 => "NORMAL:-VERS-ALL:+VERS-TLS1.3",
        };
        // Status messages go to a log file, leaving stdout to the data.
        let log = f.dir.path().join(format!("gnutls-{version:?}.log"));
        let out = run(
            Command::new("gnutls-cli").args([
                &format!("--logfile={}", log.display()),
                "--x509cafile",
                f.ca(),
                "--priority",
                priority,
                "--sni-hostname",
                "localhost",
                "--verify-hostname",
                "localhost",
                "-p",
                &f.port().to_string(),
                "127.0.0.1",
            ]),
            Some(&f.framed),
            CLIENT_TIMEOUT,
        );
        let err = format!(
            "{}{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            stderr(&out)
        );
        assert!(
            !err.contains("non-properly terminated"),
            "{stack}: no close_notify: {err}"
        );
        assert!(
            err.contains("Peer has closed the GnuTLS connection"),
            "{stack}: {err}"
        );
        succeeded(&stack, &out);
        f.check_reply(&stack, &out.stdout);
    }
}

/// A directory for build caches that outlives one test run.
fn cache_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("create cache dir");
    dir
}

/// Go's `crypto/tls`, compiled from `client.go`.
pub(crate) fn go(f: &Fixture) {
    if !optional_tool("go") {
        return;
    }
    let src = f.dir.write("client.go", include_str!("client.go"));
    let bin = f.dir.path().join("go-client");
    let cache = cache_dir("go");
    let out = run(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(&src)
            .env("GOCACHE", cache.join("build"))
            .env("GOPATH", cache.join("path"))
            .env("GO111MODULE", "off")
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", ""),
        None,
        CLIENT_TIMEOUT,
    );
    succeeded("go build", &out);
    for version in VERSIONS {
        let stack = format!("go crypto/tls {version:?}");
        let v = match version {
            Version::Tls12 => "1.2",
            Version::Tls13 => "1.3",
        };
        let out = run(
            Command::new(&bin).args([
                &format!("127.0.0.1:{}", f.port()),
                f.ca(),
                v,
                f.framed.to_str().expect("UTF-8 path"),
            ]),
            None,
            CLIENT_TIMEOUT,
        );
        succeeded(&stack, &out);
        assert!(
            stderr(&out).contains("close_notify before EOF"),
            "{stack}: {}",
            stderr(&out)
        );
        f.check_reply(&stack, &out.stdout);
    }
}

/// Java's JSSE, run from `Client.java` by the source launcher.
pub(crate) fn java(f: &Fixture) {
    if !optional_tool("java") {
        return;
    }
    let src = f.dir.write("Client.java", include_str!("Client.java"));
    for version in VERSIONS {
        let stack = format!("java jsse {version:?}");
        let v = match version {
            Version::Tls12 => "TLSv1.2",
            Version::Tls13 => "TLSv1.3",
        };
        let out = run(
            Command::new("java").arg("-Xshare:auto").arg(&src).args([
                &f.port().to_string(),
                f.ca(),
                v,
                f.framed.to_str().expect("UTF-8 path"),
            ]),
            None,
            CLIENT_TIMEOUT,
        );
        succeeded(&stack, &out);
        assert!(stderr(&out).contains(v), "{stack}: {}", stderr(&out));
        f.check_reply(&stack, &out.stdout);
    }
}
