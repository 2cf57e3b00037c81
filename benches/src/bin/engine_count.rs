//! Runs one engine operation N times in memory, for callgrind to count (`harness callgrind`
//! drives it): `engine_count MODE [N]`, MODE one of `handshake`, `handshake-openssl`,
//! `handshake-openssl-client-order`, `resumed`, `resumed-openssl`,
//! `resumed-openssl-client-order`, `handshake-tls12`,
//! `resumed-tls12`, `download`, `upload` (the client profiles are `stud_benches::engine::Bench`'s).

use std::process::ExitCode;

use stud_benches::engine::Bench;

fn main() -> ExitCode {
    let what = std::env::args().nth(1).unwrap_or_default();
    let repeats: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let result = (|| {
        // Seed the random generator outside the counted functions: its first use runs a
        // jitter-entropy collection whose length varies from run to run.
        let mut seed = [0u8; 32];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut seed)
            .map_err(|_| std::io::Error::other("no random generator"))?;
        let bench = Bench::new()?;
        match what.as_str() {
                "handshake" => {
                    for _ in 0..repeats {
                        bench.handshake()?;
                    }
                }
                "resumed" => {
                    // One full handshake outside the count of interest, then resumed ones.
                    let bench = Bench::resuming()?;
                    bench.handshake()?;
                    let mut resumed = 0;
                    for _ in 0..repeats {
                        resumed += usize::from(Bench::resumed(&bench.handshake()?));
                    }
                    eprintln!("resumed: {resumed} of {repeats}");
                }
                "resumed-openssl" | "resumed-openssl-client-order" => {
                    // An OpenSSL-like client that keeps the newest ticket: one full handshake
                    // outside the count of interest, then resumed ones.
                    let bench = match what.as_str() {
                        "resumed-openssl" => Bench::openssl_like_resuming()?,
                        _ => Bench::openssl_like_resuming()?.following_client_order()?,
                    };
                    bench.handshake()?;
                    let after_full = bench.tickets_received();
                    let mut resumed = 0;
                    let mut suite = None;
                    for _ in 0..repeats {
                        let pair = bench.handshake()?;
                        resumed += usize::from(Bench::resumed(&pair));
                        suite = Bench::suite_of(&pair);
                    }
                    eprintln!(
                        "resumed: {resumed} of {repeats}; suite: {}; tickets: {after_full} after the full handshake, {} after {repeats} more",
                        suite.unwrap_or("none"),
                        bench.tickets_received() - after_full
                    );
                }
                "handshake-openssl" | "handshake-openssl-client-order" => {
                    // The client offers what OpenSSL 3 does; the suite stud picks is printed.
                    let bench = match what.as_str() {
                        "handshake-openssl" => Bench::openssl_like()?,
                        _ => Bench::openssl_like_client_order()?,
                    };
                    let mut suite = None;
                    for _ in 0..repeats {
                        suite = Bench::suite_of(&bench.handshake()?);
                    }
                    eprintln!("suite: {}", suite.unwrap_or("none"));
                }
                "handshake-tls12" => {
                    let bench = Bench::tls12(false)?;
                    for _ in 0..repeats {
                        bench.handshake()?;
                    }
                }
                "resumed-tls12" => {
                    let bench = Bench::tls12(true)?;
                    bench.handshake()?;
                    let mut resumed = 0;
                    for _ in 0..repeats {
                        resumed += usize::from(Bench::resumed(&bench.handshake()?));
                    }
                    eprintln!("resumed: {resumed} of {repeats}");
                }
                "download" => {
                    let mut pair = bench.handshake()?;
                    for _ in 0..repeats {
                        pair.download(1 << 20)?;
                    }
                }
                "upload" => {
                    let mut pair = bench.handshake()?;
                    for _ in 0..repeats {
                        let cipher = pair.client_ciphertext(1 << 20)?;
                        pair.feed_upload(&cipher)?;
                    }
                }
                _ => return Err(std::io::Error::other(
                    "usage: engine_count handshake|handshake-openssl|handshake-openssl-client-order|resumed|resumed-openssl|resumed-openssl-client-order|handshake-tls12|resumed-tls12|download|upload [N]",
                )),
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
