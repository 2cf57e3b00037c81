//! stud's performance harness: stud side by side with hitch and haproxy on one pinned core,
//! and micro-benchmarks of the engine.
//!
//! - [`backend`]: the small epoll backend the proxies forward to.
//! - [`client`] and [`load`]: the rustls load generator and its scenarios; [`openssl`]: the
//!   OpenSSL client profile (Python's `ssl` in a helper process).
//! - [`proxies`]: starting, pinning and stopping stud, hitch and haproxy.
//! - [`procfs`]: CPU and memory of a process tree from `/proc`.
//! - [`stats`] and [`report`]: medians, ratios, the Markdown table and the SVG chart;
//!   [`targets`]: the table of targets, each met or missed.
//! - [`syscount`]: syscalls per operation from `perf stat`.
//! - [`engine`]: a `stud_core::Conn` in memory, for criterion and callgrind.
//! - [`fleet`]: tens of thousands of concurrent connections (`harness many`).
//!
//! The long runs are behind the `harness` binary (`cargo run --release -p stud-benches --bin
//! harness -- all`), never behind `cargo test`.

pub mod backend;
pub mod client;
pub mod engine;
pub mod fleet;
pub mod helpers;
pub mod load;
pub mod openloop;
pub mod openssl;
pub mod procfs;
pub mod profile;
pub mod proxies;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod syscount;
pub mod targets;
