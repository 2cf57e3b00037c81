//! What an idle established connection holds in the engine: `engine_idle [N]` opens N
//! connections in memory (`stud_benches::engine`), each after a handshake and one short
//! request and response, drops the clients, and prints the heap bytes each `Conn` keeps plus
//! its own size. The allocator is the system's with a counter of live bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, Ordering};

use stud_benches::engine::Bench;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() -> ExitCode {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let result = (|| {
        let bench = Bench::new()?;
        let mut conns = Vec::with_capacity(count);
        let before = LIVE.load(Ordering::Relaxed);
        for _ in 0..count {
            let mut pair = bench.handshake()?;
            pair.exchange(128)?;
            conns.push(pair.into_conn());
        }
        let heap = (LIVE.load(Ordering::Relaxed) - before) as f64 / count as f64;
        let inline = std::mem::size_of::<stud_core::Conn>();
        println!(
            "idle Conn: {heap:.0} heap bytes + {inline} bytes of its own = {:.2} KiB",
            (heap + inline as f64) / 1024.0
        );
        drop(conns);
        Ok::<(), std::io::Error>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_idle: {e}");
            ExitCode::FAILURE
        }
    }
}
