//! `stud`: the Scalable TLS Unwrapping Daemon. Everything lives in the `stud_cli` library.

fn main() {
    std::process::exit(stud_cli::main());
}
