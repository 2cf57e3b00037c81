//! Building and running C programs against the libstud that cargo just built.
//!
//! cargo builds the crate's cdylib and staticlib next to the test executables
//! (`target/<profile>/deps/libstud.so`; `cargo build` also copies them one level up, but
//! `cargo test` does not refresh that copy). Each test installs them with `install.sh` into its own
//! scratch prefix, compiles C with the flags `pkg-config --cflags --libs stud` gives for that
//! prefix, and runs the result — plain, under AddressSanitizer + UndefinedBehaviorSanitizer,
//! and under valgrind.
//!
//! gcc is required: without it a test fails with a message. pkg-config and valgrind are
//! optional: without pkg-config the flags are read from the installed `stud.pc` directly (the
//! same fields, the same variable expansion), and without valgrind the valgrind runs are skipped
//! with one line naming it — unless `STUD_TEST_STRICT=1`, which makes a missing tool a failure.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::io::Write as _;
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

/// Whether `name` is an executable on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether an optional tool (pkg-config, valgrind) is on `PATH`. When it is missing this prints
/// one line naming it and returns `false`; with `STUD_TEST_STRICT=1` (set by `.ci/run`, which
/// installs every tool) it fails the test instead. The same contract as `stud_tests::optional_tool`.
pub fn optional_tool(name: &str) -> bool {
    if on_path(name) {
        return true;
    }
    let strict = std::env::var_os("STUD_TEST_STRICT").is_some_and(|v| v == "1");
    assert!(
        !strict,
        "STUD_TEST_STRICT=1 and `{name}` is not on PATH (see .ci/apt-packages)"
    );
    // Written to the stream itself: the test harness captures `eprintln!` of passing tests, and
    // a skip must stay visible.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: `{name}` is not installed (STUD_TEST_STRICT=1 makes this a failure)"
    );
    false
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
    /// Whether pkg-config answers the queries (else `stud.pc` is read directly).
    pub pkg_config: bool,
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
    let have_pkg_config = optional_tool("pkg-config");
    let cflags = pkg_config(&prefix, have_pkg_config, &["--cflags"]);
    let libs = pkg_config(&prefix, have_pkg_config, &["--libs"]);
    assert!(
        libs.iter().any(|l| l == "-lstud"),
        "stud.pc links -lstud: {libs:?}"
    );
    Installed {
        prefix,
        cflags,
        libs,
        pkg_config: have_pkg_config,
    }
}

/// What `pkg-config ARGS stud` says for libstud installed under `prefix`; without pkg-config
/// (`have` false), the same answer read from the installed `stud.pc` by [`read_pc`].
fn pkg_config(prefix: &Path, have: bool, args: &[&str]) -> Vec<String> {
    let pc_path = prefix.join("lib/pkgconfig");
    if !have {
        return read_pc(&pc_path.join("stud.pc"), args);
    }
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", &pc_path)
        .args(args)
        .arg("stud")
        .output()
        .expect("pkg-config runs");
    assert!(
        out.status.success(),
        "pkg-config {args:?} stud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The flags of a `.pc` file for the pkg-config queries these tests make (`--cflags`, `--libs`,
/// `--static --libs-only-l`): `name=value` variables, `${name}` expanded, `Field: value` lines.
fn read_pc(file: &Path, args: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let expand = |value: &str, vars: &[(String, String)]| {
        let mut out = value.to_owned();
        for (name, val) in vars.iter().rev() {
            out = out.replace(&format!("${{{name}}}"), val);
        }
        out
    };
    for line in text.lines() {
        let line = line.trim();
        let field = line.split_once(':');
        let var = line.split_once('=');
        match (field, var) {
            (Some((name, value)), Some((vname, _))) if name.len() < vname.len() => {
                fields.push((name.trim().to_owned(), expand(value.trim(), &vars)));
            }
            (_, Some((name, value))) => {
                let value = expand(value.trim(), &vars);
                vars.push((name.trim().to_owned(), value));
            }
            (Some((name, value)), None) => {
                fields.push((name.trim().to_owned(), expand(value.trim(), &vars)));
            }
            (None, None) => {}
        }
    }
    let field = |name: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
            .collect()
    };
    match args {
        ["--cflags"] => field("Cflags"),
        ["--libs"] => field("Libs"),
        ["--static", "--libs-only-l"] => field("Libs")
            .into_iter()
            .chain(field("Libs.private"))
            .filter(|f| f.starts_with("-l"))
            .collect(),
        _ => panic!("read_pc does not answer {args:?}"),
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
    let static_libs = pkg_config(&lib.prefix, lib.pkg_config, &["--static", "--libs-only-l"]);
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"]);
    cmd.args(&lib.cflags).args(sources).arg("-o").arg(out);
    cmd.arg(lib.prefix.join("lib/libstud.a"));
    for flag in &static_libs {
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

/// A `valgrind` command line that fails the run on any memory error or definite leak; `None`
/// (after one line saying so) when valgrind is not installed.
pub fn valgrind_command(program: &Path) -> Option<Command> {
    if !optional_tool("valgrind") {
        return None;
    }
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
    Some(cmd)
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
    let id = stud_test_support::self_signed(stud_test_support::KeyKind::EcdsaP256, &["localhost"]);
    TestCert {
        combined: id.combined(),
        cert_pem: id.cert_pem,
        key_pem: id.key_pem,
        der: id.der,
    }
}

/// A rustls client configuration trusting `cert`, with ALPN `http/1.1`.
pub fn client_config(cert: &TestCert) -> Arc<rustls::ClientConfig> {
    let trusting = stud_test_support::client_config_trusting(std::slice::from_ref(&cert.der));
    let mut config = (*trusting).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
