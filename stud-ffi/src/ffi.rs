//! Ownership at the C boundary, in one place.
//!
//! Every C handle is an opaque, zero-sized Rust struct (`stud_conn`, `stud_config`, …) that
//! stands for a Rust value behind a pointer. [`Handle`] ties the two together and says how C
//! holds it: [`BoxHandle`] (one owner; `_free` drops the box) or [`ArcHandle`] (shared,
//! ref-counted; `_free` drops one reference). The functions and macros below are the only places
//! that cast handle pointers, so the API functions read as plain Rust with a NULL check per
//! argument.
//!
//! The macros `return` from the enclosing closure of the panic boundary (see `panic.rs`) with
//! [`NullParameterOrDefault`](crate::panic::NullParameterOrDefault) when a pointer is NULL.

use std::ffi::{c_char, CStr};
use std::sync::Arc;

/// Links an opaque C handle type to the Rust value it stands for.
pub(crate) trait Handle {
    /// The Rust value behind the pointer.
    type Rust;
}

/// A handle given to C as `Box::into_raw`: exactly one owner, freed once.
pub(crate) trait BoxHandle: Handle {}

/// A handle given to C as `Arc::into_raw`: shared, freed once per reference.
pub(crate) trait ArcHandle: Handle {}

/// Says which Rust value an opaque C type (a zero-sized `pub struct stud_x { _private: [u8; 0] }`,
/// written out so that cbindgen sees it) stands for, and how C owns it.
macro_rules! impl_handle {
    ($name:ident => $rust:ty, $kind:ident) => {
        impl $crate::ffi::Handle for $name {
            type Rust = $rust;
        }
        impl $crate::ffi::$kind for $name {}
    };
}
pub(crate) use impl_handle;

/// Moves `value` into a new box and gives C the pointer.
pub(crate) fn box_into_ptr<H: BoxHandle>(value: H::Rust) -> *mut H {
    Box::into_raw(Box::new(value)).cast::<H>()
}

/// Takes ownership back from C. NULL gives `None`.
///
/// # Safety
/// `ptr` is NULL or came from [`box_into_ptr`] for the same `H` and was not freed since.
pub(crate) unsafe fn box_from_ptr<H: BoxHandle>(ptr: *mut H) -> Option<Box<H::Rust>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: per this function's contract the pointer is a live `Box<H::Rust>`.
    Some(unsafe { Box::from_raw(ptr.cast::<H::Rust>()) })
}

/// Borrows a boxed handle mutably. NULL gives `None`.
///
/// # Safety
/// `ptr` is NULL or a live pointer from [`box_into_ptr`] for `H`, not used by anyone else for
/// the returned lifetime.
pub(crate) unsafe fn box_mut<'a, H: BoxHandle>(ptr: *mut H) -> Option<&'a mut H::Rust> {
    // SAFETY: per this function's contract, the pointer is NULL or a live, unaliased box.
    unsafe { ptr.cast::<H::Rust>().as_mut() }
}

/// Borrows any handle (boxed or shared) immutably. NULL gives `None`.
///
/// # Safety
/// `ptr` is NULL or a live pointer from [`box_into_ptr`] or [`arc_into_ptr`] for `H`, not
/// mutated by anyone for the returned lifetime.
pub(crate) unsafe fn handle_ref<'a, H: Handle>(ptr: *const H) -> Option<&'a H::Rust> {
    // SAFETY: both `Box::into_raw` and `Arc::into_raw` point at the value itself.
    unsafe { ptr.cast::<H::Rust>().as_ref() }
}

/// Gives C one reference to a shared value.
pub(crate) fn arc_into_ptr<H: ArcHandle>(value: Arc<H::Rust>) -> *const H {
    Arc::into_raw(value).cast::<H>()
}

/// A new reference to a shared value C holds; C keeps its own. NULL gives `None`.
///
/// # Safety
/// `ptr` is NULL or a live pointer from [`arc_into_ptr`] for `H`.
pub(crate) unsafe fn arc_clone<H: ArcHandle>(ptr: *const H) -> Option<Arc<H::Rust>> {
    if ptr.is_null() {
        return None;
    }
    let ptr = ptr.cast::<H::Rust>();
    // SAFETY: the pointer came from `Arc::into_raw` and C still holds that reference, so the
    // count is at least one while we add ours.
    unsafe { Arc::increment_strong_count(ptr) };
    // SAFETY: the reference added just above is the one this `Arc` now owns.
    Some(unsafe { Arc::from_raw(ptr) })
}

/// Drops the reference C holds. NULL does nothing.
///
/// # Safety
/// `ptr` is NULL or a live pointer from [`arc_into_ptr`] for `H`, whose reference C gives up.
pub(crate) unsafe fn arc_free<H: ArcHandle>(ptr: *const H) {
    if !ptr.is_null() {
        // SAFETY: per this function's contract, this is C's reference, given back once.
        drop(unsafe { Arc::from_raw(ptr.cast::<H::Rust>()) });
    }
}

/// A slice from C (of bytes, or of pointers and lengths): `None` when `ptr` is NULL with a
/// nonzero length; NULL with length 0 is the empty slice.
///
/// # Safety
/// Unless NULL, `ptr` points at `len` readable, initialised `T`s, suitably aligned, that stay
/// unchanged for the lifetime.
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    if ptr.is_null() {
        return (len == 0).then_some(&[]);
    }
    // SAFETY: per this function's contract.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A writable byte slice from C, as [`slice`].
///
/// # Safety
/// Unless NULL, `ptr` points at `len` writable bytes nobody else touches for the lifetime.
pub(crate) unsafe fn slice_mut<'a>(ptr: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    if ptr.is_null() {
        return (len == 0).then_some(&mut []);
    }
    // SAFETY: per this function's contract.
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A NUL-terminated C string. NULL gives `None`.
///
/// # Safety
/// Unless NULL, `ptr` points at a NUL-terminated string that stays unchanged for the lifetime.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Option<&'a CStr> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: per this function's contract.
    Some(unsafe { CStr::from_ptr(ptr) })
}

/// An out-parameter. NULL gives `None`.
///
/// # Safety
/// Unless NULL, `ptr` is valid and aligned for writing a `T`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T) -> Option<&'a mut T> {
    // SAFETY: per this function's contract. `T` is always a plain C type here (integers,
    // pointers, repr(C) structs of those) whose old value needs no drop.
    unsafe { ptr.as_mut() }
}

/// `try_ref!(p)`: borrows the handle `p`, or returns "NULL parameter".
macro_rules! try_ref {
    ($ptr:expr) => {
        // SAFETY: the C caller passes a live handle of this type, not being mutated by another
        // thread, as every function's documentation requires.
        match unsafe { $crate::ffi::handle_ref($ptr) } {
            Some(v) => v,
            None => return $crate::panic::NullParameterOrDefault::null_value(),
        }
    };
}
pub(crate) use try_ref;

/// `try_mut!(p)`: borrows the boxed handle `p` mutably, or returns "NULL parameter".
macro_rules! try_mut {
    ($ptr:expr) => {
        // SAFETY: the C caller passes a live handle of this type and uses it from one thread at
        // a time, as every function's documentation requires.
        match unsafe { $crate::ffi::box_mut($ptr) } {
            Some(v) => v,
            None => return $crate::panic::NullParameterOrDefault::null_value(),
        }
    };
}
pub(crate) use try_mut;

/// `try_out!(p)`: an out-parameter, or returns "NULL parameter".
macro_rules! try_out {
    ($ptr:expr) => {
        // SAFETY: the C caller passes a valid, aligned pointer for the out-parameter's type.
        match unsafe { $crate::ffi::out($ptr) } {
            Some(v) => v,
            None => return $crate::panic::NullParameterOrDefault::null_value(),
        }
    };
}
pub(crate) use try_out;

/// `try_slice!(p, len)`: input bytes, or returns "NULL parameter" (NULL is fine with len 0).
macro_rules! try_slice {
    ($ptr:expr, $len:expr) => {
        // SAFETY: the C caller passes `len` readable bytes, unchanged during the call.
        match unsafe { $crate::ffi::slice($ptr, $len) } {
            Some(v) => v,
            None => return $crate::panic::NullParameterOrDefault::null_value(),
        }
    };
}
pub(crate) use try_slice;

/// `try_slice_mut!(p, len)`: an output buffer, or returns "NULL parameter".
macro_rules! try_slice_mut {
    ($ptr:expr, $len:expr) => {
        // SAFETY: the C caller passes `len` writable bytes, untouched by others during the call.
        match unsafe { $crate::ffi::slice_mut($ptr, $len) } {
            Some(v) => v,
            None => return $crate::panic::NullParameterOrDefault::null_value(),
        }
    };
}
pub(crate) use try_slice_mut;

/// `try_c_str!(p)`: a NUL-terminated string, or returns "NULL parameter".
macro_rules! try_c_str {
    ($ptr:expr) => {
        // SAFETY: the C caller passes a NUL-terminated string, unchanged during the call.
        match unsafe { $crate::ffi::c_str($ptr) } {
            Some(v) => v,
            None => return $crate::panic::NullParameterOrDefault::null_value(),
        }
    };
}
pub(crate) use try_c_str;
