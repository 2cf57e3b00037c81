//! The PROXY protocol codec and stud's other client-address headers, one direction per file:
//!
//! - [`encode`]: what stud writes to the backend before the client's first byte
//!   (`--write-ip`, PROXY v1, PROXY v2 with the session's TLVs);
//! - [`client_cert`]: the client's whole certificate added to a PROXY v2 header;
//! - [`parse`]: the PROXY v1 or v2 header a load balancer sends stud before the TLS bytes.
//!
//! Encoders write into a caller buffer and allocate nothing; the parser never reads past the
//! header and decides every prefix.

pub(crate) mod client_cert;
pub(crate) mod encode;
pub(crate) mod parse;

pub use encode::{
    encode_client_address, encode_proxy_v2, ClientAddressMode, AF_INET6_LINUX, AF_INET_LINUX,
    MAX_HEADER_LEN,
};
pub(crate) use encode::{encode_proxy_v2_with, ProxyV2Tlvs};
pub use parse::{parse_proxy_header, ProxyHeaderParse, MAX_INCOMING_PROXY_HEADER};

/// The PROXY v2 signature that opens every header.
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
