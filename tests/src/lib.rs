//! End-to-end test helpers: certificates, the `stud` process under test, TCP backends and TLS
//! clients. Everything runs on loopback with ports chosen by the kernel, and every wait is
//! bounded by a timeout.

pub mod activation;
pub mod daemon;
pub mod haproxy;
pub mod hostile;
pub mod net;
pub mod pki;
pub mod process;
pub mod procfs;

use std::io::Write as _;
use std::time::Duration;

/// The longest any single wait in these tests may take before it counts as a failure.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The `stud` binary under test: `$STUD_BIN` if set, else the copy this package builds.
///
/// A macro so that `env!("CARGO_BIN_EXE_…")` expands inside the integration test, where Cargo
/// defines it.
#[macro_export]
macro_rules! stud_bin {
    () => {
        std::env::var_os("STUD_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_stud-under-test")))
    };
}

/// Whether `name` is an executable on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Fails the test with a clear message when a program every supported machine has (openssl,
/// curl, python3) is missing.
pub fn require_tool(name: &str) {
    assert!(
        on_path(name),
        "this test needs `{name}` on PATH (see .ci/apt-packages); install it and rerun"
    );
}

/// Whether an optional peer (haproxy, gnutls-cli, go, java, testssl, ...) is on `PATH`.
///
/// When it is missing the test should return at once: this prints one line naming the tool and
/// returns `false`. With `STUD_TEST_STRICT=1` (set by `.ci/run`, which installs every peer) a
/// missing tool fails the test instead, so CI never skips silently.
#[must_use]
pub fn optional_tool(name: &str) -> bool {
    optional(&format!("`{name}`"), on_path(name))
}

/// Like [`optional_tool`] for anything else a test can do without: `what` names it (a Python
/// package, say), `present` says whether this machine has it.
#[must_use]
pub fn optional(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let strict = std::env::var_os("STUD_TEST_STRICT").is_some_and(|v| v == "1");
    assert!(
        !strict,
        "STUD_TEST_STRICT=1 and {what} is not installed (see .ci/apt-packages)"
    );
    skipped(&format!(
        "{what} is not installed (STUD_TEST_STRICT=1 makes this a failure)"
    ));
    false
}

/// Prints `skipped: WHY` where the person running the tests sees it, for a test about to return
/// without checking anything (not root, no IPv6, a missing tool).
pub fn skipped(why: &str) {
    // Written to the stream itself: the test harness captures `eprintln!` of passing tests, and
    // a skip must stay visible.
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}
