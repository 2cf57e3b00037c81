//! `stud`: the Scalable TLS Unwrapping Daemon. Everything lives in the `stud_cli` library,
//! the choice of memory allocator included (`stud_cli`'s `allocator` module).

fn main() {
    std::process::exit(stud_cli::main());
}
