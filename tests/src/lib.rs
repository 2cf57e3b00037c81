//! End-to-end test helpers: certificates, the `stud` process under test, TCP backends and TLS
//! clients. Everything runs on loopback with ports chosen by the kernel, and every wait is
//! bounded by a timeout.

pub mod hostile;
pub mod net;
pub mod pki;
pub mod process;
pub mod procfs;

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

/// Fails the test with a clear message when an external program it needs is missing.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{name}` on PATH (see .ci/apt-packages); install it and rerun"
    );
}
