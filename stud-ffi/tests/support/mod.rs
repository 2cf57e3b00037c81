//! Building and running C programs against the libstud that cargo just built.
//!
//! cargo builds the crate's cdylib and staticlib next to the test executables
//! (`target/<profile>/deps/libstud.so`; `cargo build` also copies them one level up, but
//! `cargo test` does not refresh that copy). Each test installs them with `install.sh` into its own
//! scratch prefix, compiles C with the flags `pkg-config --cflags --libs stud` gives for that
//! prefix, and runs the result — plain, under AddressSanitizer + UndefinedBehaviorSanitizer,
//! and under valgrind. A missing gcc, pkg-config or valgrind fails the test with a message.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The directory holding the libstud.so / libstud.a built with this test: the test
/// executable's own directory (`deps/`).
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("the test executable is in a directory");
    assert!(
        deps.join("libstud.so").is_file() && deps.join("libstud.a").is_file(),
        "libstud.so and libstud.a are not in {}; cargo builds them with the tests",
        deps.display()
    );
    deps.to_path_buf()
}

/// A fresh scratch directory under the build directory.
pub fn scratch(name: &str) -> PathBuf {
    let target = build_dir()
        .parent()
        .expect("deps/ has a parent")
        .to_path_buf();
    let dir = target.join("stud-ffi-c-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory can be created");
    dir
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool, failing the test with a clear message if it is not installed.
fn tool(name: &str, args: &[&str]) -> Output {
    match Command::new(name).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "`{name}` is required to test libstud from C but could not be run ({e}); \
             install it (Debian: apt-get install {name}) — it is listed in .ci/apt-packages"
        ),
    }
}

/// libstud installed under a scratch prefix, with the compiler flags pkg-config gives for it.
#[derive(Debug)]
pub struct Installed {
    pub prefix: PathBuf,
    pub cflags: Vec<String>,
    pub libs: Vec<String>,
}

/// Installs the freshly built libstud under `dir/prefix` with `install.sh`, then asks
/// pkg-config how to compile and link against it.
pub fn install(dir: &Path) -> Installed {
    let prefix = dir.join("prefix");
    let out = Command::new("sh")
        .arg(crate_dir().join("install.sh"))
        .arg(&prefix)
        .arg(build_dir())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "install.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = |what: &str| -> Vec<String> {
        let out = match Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", &pc_path)
            .args([what, "stud"])
            .output()
        {
            Ok(out) => out,
            Err(e) => panic!("`pkg-config` is required ({e}); apt-get install pkg-config"),
        };
        assert!(
            out.status.success(),
            "pkg-config {what} stud failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let cflags = pkg("--cflags");
    let libs = pkg("--libs");
    assert!(
        libs.iter().any(|l| l == "-lstud"),
        "stud.pc links -lstud: {libs:?}"
    );
    Installed {
        prefix,
        cflags,
        libs,
    }
}

/// How a C program is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `-O1 -g`, for plain runs and valgrind.
    Plain,
    /// AddressSanitizer + UndefinedBehaviorSanitizer, every finding fatal.
    Sanitized,
}

/// Compiles `sources` into one program against the installed libstud with
/// `-Wall -Wextra -Werror`.
pub fn compile(lib: &Installed, sources: &[PathBuf], out: &Path, flavor: Flavor) {
    let version = tool("gcc", &["--version"]);
    assert!(version.status.success(), "gcc --version failed");
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"]);
    match flavor {
        Flavor::Plain => cmd.arg("-O1"),
        Flavor::Sanitized => cmd.args([
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ]),
    };
    cmd.args(&lib.cflags).args(sources).arg("-o").arg(out);
    cmd.args(&lib.libs).arg("-pthread");
    cmd.arg(format!("-Wl,-rpath,{}", lib.prefix.join("lib").display()));
    let result = cmd.output().expect("gcc runs");
    assert!(
        result.status.success(),
        "compiling {sources:?} ({flavor:?}) failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Compiles `source` against the installed `libstud.a` (no shared library involved), with the
/// private libraries from `pkg-config --static`.
pub fn compile_static(lib: &Installed, sources: &[PathBuf], out: &Path) {
    let pc_path = lib.prefix.join("lib/pkgconfig");
    let static_libs = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", &pc_path)
        .args(["--static", "--libs-only-l", "stud"])
        .output()
        .expect("pkg-config runs");
    assert!(static_libs.status.success(), "pkg-config --static failed");
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"]);
    cmd.args(&lib.cflags).args(sources).arg("-o").arg(out);
    cmd.arg(lib.prefix.join("lib/libstud.a"));
    for flag in String::from_utf8_lossy(&static_libs.stdout).split_whitespace() {
        if flag != "-lstud" {
            cmd.arg(flag);
        }
    }
    let result = cmd.output().expect("gcc runs");
    assert!(
        result.status.success(),
        "static link of {sources:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Environment for sanitized runs: every finding is fatal, leaks included.
pub fn sanitizer_env(cmd: &mut Command) {
    cmd.env(
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86",
    );
    cmd.env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
}

/// A `valgrind` command line that fails the run on any memory error or definite leak.
pub fn valgrind_command(program: &Path) -> Command {
    let probe = tool("valgrind", &["--version"]);
    assert!(probe.status.success(), "valgrind --version failed");
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=97",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--quiet",
    ]);
    cmd.arg(program);
    cmd
}

/// Runs a command to completion with a deadline, killing it if it overstays.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the program starts");
    let start = Instant::now();
    loop {
        match child.try_wait().expect("waiting on the child works") {
            Some(_) => return child.wait_with_output().expect("output is collected"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output is collected");
                panic!(
                    "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A self-signed P-256 certificate for `localhost`: (combined PEM, cert PEM, key PEM, DER).
pub struct TestCert {
    pub combined: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub der: rustls::pki_types::CertificateDer<'static>,
}

pub fn test_cert() -> TestCert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("certificate generation");
    let cert_pem = ck.cert.pem();
    let key_pem = ck.signing_key.serialize_pem();
    TestCert {
        combined: format!("{cert_pem}{key_pem}"),
        cert_pem,
        key_pem,
        der: ck.cert.der().clone(),
    }
}

/// A rustls client configuration trusting `cert`, with ALPN `http/1.1`.
pub fn client_config(cert: &TestCert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.der.clone())
        .expect("the test certificate is a valid root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default versions are supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
