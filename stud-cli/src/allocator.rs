//! The daemon's memory allocator, chosen at build time (feature `jemalloc`), and its name for
//! `stud --version`.

/// jemalloc reuses rustls' per-record buffers while they are still in cache; see
/// docs/PERFORMANCE.md ("Allocator") for the measurements behind the choice. Declared in the
/// library rather than in `main.rs`, so every binary built from it (`stud`, and the tests' copy)
/// runs on the allocator `--version` names.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The allocator this build runs on, with its version (from the build script).
#[cfg(feature = "jemalloc")]
pub(crate) const DESCRIPTION: &str = concat!(
    "jemalloc ",
    env!("STUD_JEMALLOC_VERSION"),
    " (tikv-jemallocator ",
    env!("STUD_JEMALLOCATOR_VERSION"),
    ")"
);

/// The allocator this build runs on.
#[cfg(not(feature = "jemalloc"))]
pub(crate) const DESCRIPTION: &str = "system (the C library's malloc)";
