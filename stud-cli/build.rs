//! Gives `stud --version` the versions of the libraries it names. Cargo tells a package its own
//! version (`CARGO_PKG_VERSION`) but not its dependencies', so they are read from the lock file
//! the build resolved with: the package's own `Cargo.lock` when built from a published crate,
//! else the workspace's. A version that cannot be found is reported as "unknown".

use std::path::PathBuf;

/// (crate in Cargo.lock, environment variable the daemon reads with `env!`).
const NAMED: [(&str, &str); 4] = [
    ("rustls", "STUD_RUSTLS_VERSION"),
    ("aws-lc-rs", "STUD_AWS_LC_RS_VERSION"),
    ("aws-lc-sys", "STUD_AWS_LC_SYS_VERSION"),
    ("tikv-jemallocator", "STUD_JEMALLOCATOR_VERSION"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let lock = [manifest.join("Cargo.lock"), manifest.join("../Cargo.lock")]
        .into_iter()
        .find(|p| p.is_file());
    let text = match &lock {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read_to_string(path).unwrap_or_default()
        }
        None => String::new(),
    };
    for (name, var) in NAMED {
        let version = locked_version(&text, name).unwrap_or_else(|| "unknown".to_owned());
        println!("cargo:rustc-env={var}={version}");
    }
    // jemalloc's own version is the build metadata of tikv-jemalloc-sys: "0.6.1+5.3.0-1-g…".
    let jemalloc = locked_version(&text, "tikv-jemalloc-sys")
        .and_then(|v| v.split_once('+').map(|(_, upstream)| upstream.to_owned()))
        .map(|upstream| upstream.split('-').next().unwrap_or_default().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=STUD_JEMALLOC_VERSION={jemalloc}");
}

/// The version of package `name` in a Cargo.lock (the first, should there be several).
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let want = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == want {
            let version = lines.next()?.trim();
            let quoted = version.strip_prefix("version = ")?;
            return Some(quoted.trim_matches('"').to_owned());
        }
    }
    None
}
