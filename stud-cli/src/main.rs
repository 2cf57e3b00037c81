//! `stud`: the Scalable TLS Unwrapping Daemon. Everything lives in the `stud_cli` library.

/// jemalloc reuses rustls' per-record buffers while they are still in cache; see
/// docs/PERFORMANCE.md ("Allocator") for the measurements behind the choice.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(stud_cli::main());
}
