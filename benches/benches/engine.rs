//! Criterion benchmarks of the engine alone, in memory: a full TLS 1.3 handshake through
//! `stud_core::Conn`, and relaying 1 MiB each way.
//!
//! `cargo bench -p stud-benches --bench engine`

use std::cell::RefCell;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stud_benches::engine::Bench;

const MIB: usize = 1 << 20;

fn engine(c: &mut Criterion) {
    let bench = match Bench::new() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot set up the engine benchmark: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("engine");
    g.bench_function("full handshake (client + engine)", |b| {
        b.iter(|| bench.handshake().expect("in-memory handshake"))
    });
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("relay 1 MiB backend to client", |b| {
        let mut pair = bench.handshake().expect("in-memory handshake");
        b.iter(|| pair.download(MIB).expect("relay"))
    });
    g.bench_function("relay 1 MiB client to backend (engine part)", |b| {
        // The client's encryption is set-up, not measured; both closures need the pair.
        let pair = RefCell::new(bench.handshake().expect("in-memory handshake"));
        b.iter_batched(
            || {
                pair.borrow_mut()
                    .client_ciphertext(MIB)
                    .expect("client encrypts")
            },
            |cipher| pair.borrow_mut().feed_upload(&cipher).expect("relay"),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
