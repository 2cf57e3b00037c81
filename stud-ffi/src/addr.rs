//! Socket addresses at the boundary: C passes `struct sockaddr *` plus its length, exactly as
//! `accept(2)` and `getsockname(2)` hand them out; `AF_INET` and `AF_INET6` are understood.

use std::mem::{self, offset_of, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use libc::{sa_family_t, sockaddr, sockaddr_in, sockaddr_in6, sockaddr_storage, socklen_t};

/// Why an address could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AddrError {
    /// The pointer was NULL.
    Null,
    /// Too short for its family, or a family other than IPv4/IPv6.
    Invalid,
}

/// Reads a socket address from C.
///
/// # Safety
/// Unless NULL, `addr` points at `len` readable bytes.
pub(crate) unsafe fn from_c(
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<SocketAddr, AddrError> {
    if addr.is_null() {
        return Err(AddrError::Null);
    }
    let len = len as usize;
    let family_end = offset_of!(sockaddr, sa_family) + size_of::<sa_family_t>();
    if len < family_end {
        return Err(AddrError::Invalid);
    }
    // SAFETY: the caller's `len` bytes cover the family field (checked just above); the read
    // is unaligned because C may pass any byte buffer.
    let family = unsafe {
        addr.cast::<u8>()
            .add(offset_of!(sockaddr, sa_family))
            .cast::<sa_family_t>()
            .read_unaligned()
    };
    match i32::from(family) {
        libc::AF_INET if len >= size_of::<sockaddr_in>() => {
            // SAFETY: `len` covers a whole `sockaddr_in` (checked by the guard).
            let sin = unsafe { addr.cast::<sockaddr_in>().read_unaligned() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<sockaddr_in6>() => {
            // SAFETY: `len` covers a whole `sockaddr_in6` (checked by the guard).
            let sin6 = unsafe { addr.cast::<sockaddr_in6>().read_unaligned() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => Err(AddrError::Invalid),
    }
}

/// Reads an address argument, mapping failures to result codes.
///
/// # Safety
/// As [`from_c`].
pub(crate) unsafe fn argument(
    addr: *const sockaddr,
    len: socklen_t,
) -> Result<SocketAddr, crate::error::stud_result> {
    use crate::error::stud_result;
    // SAFETY: per this function's contract.
    unsafe { from_c(addr, len) }.map_err(|e| match e {
        AddrError::Null => stud_result::STUD_NULL_PARAMETER,
        AddrError::Invalid => stud_result::STUD_INVALID_PARAMETER,
    })
}

/// Encodes a socket address for C; returns the storage and the length actually used.
pub(crate) fn to_c(addr: SocketAddr) -> (sockaddr_storage, socklen_t) {
    // SAFETY: all-zero bytes are a valid `sockaddr_storage` (plain integers and arrays).
    let mut storage: sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero bytes are a valid `sockaddr_in`.
            let mut sin: sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: `sockaddr_storage` is larger than and suitably aligned for `sockaddr_in`.
            unsafe { (&raw mut storage).cast::<sockaddr_in>().write(sin) };
            size_of::<sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero bytes are a valid `sockaddr_in6`.
            let mut sin6: sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            // SAFETY: `sockaddr_storage` is larger than and suitably aligned for `sockaddr_in6`.
            unsafe { (&raw mut storage).cast::<sockaddr_in6>().write(sin6) };
            size_of::<sockaddr_in6>()
        }
    };
    (storage, len as socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(addr: &str) {
        let addr: SocketAddr = addr.parse().expect("test address parses");
        let (storage, len) = to_c(addr);
        let back = unsafe { from_c((&raw const storage).cast(), len) };
        assert_eq!(back, Ok(addr));
    }

    #[test]
    fn ipv4_and_ipv6_round_trip() {
        round_trip("192.0.2.7:5555");
        round_trip("[2001:db8::1]:443");
        round_trip("[::ffff:192.0.2.1]:1");
    }

    #[test]
    fn short_null_and_unknown_addresses_are_refused() {
        let (storage, len) = to_c("192.0.2.7:5555".parse().expect("parses"));
        let p = (&raw const storage).cast::<sockaddr>();
        assert_eq!(unsafe { from_c(p, len - 1) }, Err(AddrError::Invalid));
        assert_eq!(unsafe { from_c(p, 1) }, Err(AddrError::Invalid));
        assert_eq!(
            unsafe { from_c(std::ptr::null(), len) },
            Err(AddrError::Null)
        );
        let mut unix: sockaddr_storage = unsafe { mem::zeroed() };
        unix.ss_family = libc::AF_UNIX as sa_family_t;
        let p = (&raw const unix).cast::<sockaddr>();
        let all = size_of::<sockaddr_storage>() as socklen_t;
        assert_eq!(unsafe { from_c(p, all) }, Err(AddrError::Invalid));
    }
}
