//! Arbitrary PEM text and cipher lists into the configuration builder: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stud_core::Config;

fuzz_target!(|data: &[u8]| {
    // Split the input: cipher list before the first NUL, PEM after it.
    let (ciphers, pem) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let ciphers = String::from_utf8_lossy(ciphers).into_owned();
    let mut builder = Config::builder().pem(pem.to_vec());
    if !ciphers.is_empty() {
        builder = builder.ciphers(ciphers);
    }
    if let Err(e) = builder.build() {
        // Every error renders a message.
        assert!(!e.to_string().is_empty());
    }
});
