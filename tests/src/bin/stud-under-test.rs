//! The `stud` program, built inside the tests package so its tests always run a fresh build.

fn main() {
    std::process::exit(stud_cli::main());
}
