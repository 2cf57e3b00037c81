//! SNI cost against the number of certificates: the CPU of a full in-memory handshake with one
//! certificate and with many, for a name the last certificate covers and for a name none covers
//! (the default; the attacker's choice). Rounds alternate between the configurations so that
//! the machine's load falls on both alike; the median round is reported.
//!
//! `engine_sni [CERTIFICATES] [HANDSHAKES PER ROUND] [ROUNDS]` (defaults 10000 200 9).

use std::process::ExitCode;
use std::time::Instant;

use stud_benches::engine::Bench;
use stud_benches::stats::median;

fn per_handshake_us(bench: &Bench, sni: &str, n: usize) -> std::io::Result<f64> {
    let start = Instant::now();
    for _ in 0..n {
        bench.handshake_for(sni)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn main() -> ExitCode {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (certs, n, rounds) = (arg(1, 10_000).max(2), arg(2, 200), arg(3, 9));
    let result = (|| {
        let one = Bench::with_certificates(1)?;
        let many = Bench::with_certificates(certs)?;
        let last = format!("host{}.example.test", certs - 1);
        let cases = [
            ("1 certificate, unknown name", &one, "unknown.example.test"),
            (
                "N certificates, unknown name",
                &many,
                "unknown.example.test",
            ),
            ("N certificates, the first one's name", &many, "localhost"),
            ("N certificates, the last one's name", &many, last.as_str()),
        ];
        let mut samples = vec![Vec::new(); cases.len()];
        for _ in 0..rounds {
            for (i, (_, bench, sni)) in cases.iter().enumerate() {
                samples[i].push(per_handshake_us(bench, sni, n)?);
            }
        }
        println!(
            "{certs} certificates, {rounds} rounds of {n} handshakes, median µs per handshake:"
        );
        let base = median(&samples[0]).unwrap_or(f64::NAN);
        for ((what, _, _), s) in cases.iter().zip(&samples) {
            let m = median(s).unwrap_or(f64::NAN);
            println!(
                "  {what:40} {m:9.1} µs  ({:+.1} %)",
                (m / base - 1.0) * 100.0
            );
        }
        Ok::<(), std::io::Error>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_sni: {e}");
            ExitCode::FAILURE
        }
    }
}
