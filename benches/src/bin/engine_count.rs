//! Runs one engine operation `COUNT_REPEATS` times in memory, for callgrind to count
//! (`harness callgrind` drives it): `engine_count handshake|download|upload`.

use std::process::ExitCode;

use stud_benches::engine::{Bench, COUNT_REPEATS};

fn main() -> ExitCode {
    let what = std::env::args().nth(1).unwrap_or_default();
    let result = (|| {
        let bench = Bench::new()?;
        match what.as_str() {
            "handshake" => {
                for _ in 0..COUNT_REPEATS {
                    bench.handshake()?;
                }
            }
            "download" => {
                let mut pair = bench.handshake()?;
                for _ in 0..COUNT_REPEATS {
                    pair.download(1 << 20)?;
                }
            }
            "upload" => {
                let mut pair = bench.handshake()?;
                for _ in 0..COUNT_REPEATS {
                    let cipher = pair.client_ciphertext(1 << 20)?;
                    pair.feed_upload(&cipher)?;
                }
            }
            _ => {
                return Err(std::io::Error::other(
                    "usage: engine_count handshake|download|upload",
                ))
            }
        }
        Ok::<(), std::io::Error>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_count: {e}");
            ExitCode::FAILURE
        }
    }
}
