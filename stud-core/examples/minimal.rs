//! A stud listener in ten lines: TLS on :8443, plaintext to 127.0.0.1:8000.
//!
//! ```text
//! cargo run --example minimal -- site.pem
//! ```
//! `site.pem` holds the certificate chain and the private key, as stud has always taken them.

use std::sync::Arc;
use stud_core::driver::{BackendAddr, Options, Server};
use stud_core::Config;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pem = std::env::args().nth(1).unwrap_or_else(|| "site.pem".into());
    let config = Arc::new(Config::builder().pem_file(pem).build()?);
    let options = Options::new(["127.0.0.1:8000".parse::<BackendAddr>()?]);
    let mut server = Server::bind(config, "0.0.0.0:8443".parse()?, options)?;
    eprintln!("listening on {:?}", server.local_addrs());
    server.run()?;
    Ok(())
}
