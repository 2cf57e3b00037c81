//! An experimental single-worker stud for the profile: the same driver and engine as `stud -n 1`,
//! with the engine's tunables taken from the environment, so a proposed default can be measured
//! before the engine adopts it. Takes the flags the harness passes to stud:
//! `stud_exp -n 1 -B BACKLOG -f HOST,PORT -b HOST,PORT PEM`.
//!
//! Environment: `STUD_EXP_TO_BACKEND`, `STUD_EXP_TO_CLIENT` (budgets, bytes),
//! `STUD_EXP_SCRATCH` (the driver's read buffer, bytes).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use stud_core::driver::{Options, Server};
use stud_core::Config;

fn addr(text: &str) -> Option<SocketAddr> {
    let (h, p) = text.rsplit_once(',')?;
    format!("{h}:{p}").parse().ok()
}

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(front), Some(back), Some(pem)) = (
        value("-f").and_then(|f| addr(&f)),
        value("-b").and_then(|b| addr(&b)),
        args.last().cloned(),
    ) else {
        eprintln!("usage: stud_exp -f HOST,PORT -b HOST,PORT PEM");
        return ExitCode::from(2);
    };
    let backlog: i32 = value("-B").and_then(|b| b.parse().ok()).unwrap_or(1024);
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let mut b = Config::builder().pem_file(pem);
        if let Some(n) = env("STUD_EXP_TO_BACKEND") {
            b = b.to_backend_budget(n);
        }
        if let Some(n) = env("STUD_EXP_TO_CLIENT") {
            b = b.to_client_budget(n);
        }
        let config = Arc::new(b.build()?);
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(front),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&front.into())?;
        socket.listen(backlog)?;
        let mut options = Options::new([back]);
        if let Some(n) = env("STUD_EXP_SCRATCH") {
            options.scratch_size = n;
        }
        let mut server = Server::new(config, vec![socket.into()], options)?;
        server.run()?;
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stud_exp: {e}");
            ExitCode::FAILURE
        }
    }
}
