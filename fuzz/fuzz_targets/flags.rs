//! Arbitrary command lines into stud's flag parser: a message or a configuration, never a panic.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // NUL separates arguments (as in /proc/PID/cmdline); arguments may be any bytes.
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .take(64)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if let Err(message) = stud_cli::check_args(args) {
        assert!(!message.is_empty());
        assert!(!message.contains('\n'), "errors are one line: {message:?}");
    }
});
