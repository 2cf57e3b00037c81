//! The panic boundary: no Rust panic may unwind into C (that is undefined behaviour) or abort the
//! host program. Every exported function wraps its body in [`ffi_boundary!`]; a panic becomes
//! `STUD_PANIC` (or a harmless default for functions that return something else).

use std::ffi::c_char;
use std::ptr;

use crate::error::{stud_io_result, stud_result};

/// What a function returns when its body panicked.
pub(crate) trait PanicOrDefault {
    /// The value.
    fn panic_value() -> Self;
}

/// What a function returns when a required pointer argument is NULL.
pub(crate) trait NullParameterOrDefault {
    /// The value.
    fn null_value() -> Self;
}

impl PanicOrDefault for stud_result {
    fn panic_value() -> Self {
        stud_result::STUD_PANIC
    }
}

impl NullParameterOrDefault for stud_result {
    fn null_value() -> Self {
        stud_result::STUD_NULL_PARAMETER
    }
}

impl PanicOrDefault for stud_io_result {
    fn panic_value() -> Self {
        stud_io_result(libc::EIO)
    }
}

impl NullParameterOrDefault for stud_io_result {
    fn null_value() -> Self {
        stud_io_result(libc::EINVAL)
    }
}

impl PanicOrDefault for () {
    fn panic_value() -> Self {}
}

impl NullParameterOrDefault for () {
    fn null_value() -> Self {}
}

impl PanicOrDefault for *const c_char {
    fn panic_value() -> Self {
        ptr::null()
    }
}

impl<T> PanicOrDefault for *mut T {
    fn panic_value() -> Self {
        ptr::null_mut()
    }
}

impl PanicOrDefault for i32 {
    fn panic_value() -> Self {
        -1
    }
}

impl NullParameterOrDefault for i32 {
    fn null_value() -> Self {
        -1
    }
}

/// Runs the body, turning a panic into the function's panic value.
///
/// The body is a closure, so `return` inside it (as the NULL-check macros do) returns from the
/// exported function with that value.
macro_rules! ffi_boundary {
    ($($body:tt)*) => {
        // AssertUnwindSafe: after a panic the handle may hold a half-updated state, but it stays
        // memory-safe Rust; the caller learns of the failure from STUD_PANIC and should free it.
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $crate::panic::PanicOrDefault::panic_value(),
        }
    };
}
pub(crate) use ffi_boundary;

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(yes: bool) -> stud_result {
        ffi_boundary! {
            if yes {
                panic!("deliberate");
            }
            stud_result::STUD_OK
        }
    }

    fn null_checked(p: *mut u32) -> stud_result {
        ffi_boundary! {
            let out = crate::ffi::try_out!(p);
            *out = 7;
            stud_result::STUD_OK
        }
    }

    #[test]
    fn a_panic_becomes_stud_panic() {
        assert_eq!(panics(true), stud_result::STUD_PANIC);
        assert_eq!(panics(false), stud_result::STUD_OK);
    }

    #[test]
    fn a_null_out_parameter_is_reported() {
        assert_eq!(
            null_checked(ptr::null_mut()),
            stud_result::STUD_NULL_PARAMETER
        );
        let mut v = 0;
        assert_eq!(null_checked(&mut v), stud_result::STUD_OK);
        assert_eq!(v, 7);
    }
}
