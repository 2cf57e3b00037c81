//! Gives the shared library its soname, so programs linked with `-lstud` record `libstud.so.0`
//! and keep working across compatible releases (the major version is the ABI version).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libstud.so.0");
    }
}
