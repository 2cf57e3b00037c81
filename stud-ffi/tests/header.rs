//! The committed `include/stud.h` must be exactly what the pinned cbindgen generates from the
//! current source, so the header can never drift from the library.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);

    let path = crate_dir.join("include/stud.h");
    if std::env::var_os("STUD_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("include/stud.h is writable");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != generated {
        panic!(
            "stud-ffi/include/stud.h is stale: it differs from what cbindgen generates from the \
             source.\nRegenerate it with:\n\n    STUD_UPDATE_HEADER=1 cargo test -p stud-ffi --test header\n\n\
             and commit the result."
        );
    }
}
