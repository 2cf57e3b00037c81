//! The reference driver (placeholder until it lands).
