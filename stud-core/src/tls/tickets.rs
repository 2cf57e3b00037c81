//! Session-ticket keys that every stud process agrees on, with no shared memory and no IPC.
//!
//! rustls' stock ticketer makes random keys per process and rotates them independently, so a
//! ticket issued by one worker (or one host) would not resume on another after the first
//! rotation. Here the key for each time epoch is derived deterministically from one master
//! secret: `key(e) = HKDF-SHA256(salt = "stud session tickets v1", ikm = master, info = e)`.
//! Workers forked from one parent share the master (made before fork); hosts share it through a
//! key file. Tickets are sealed with AES-256-GCM under the epoch's key and carry the epoch, so a
//! ticket from the current or the previous two epochs opens (and one epoch ahead, for clocks that
//! differ slightly between hosts).
//!
//! Ticket layout: `epoch (u32, big-endian) ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag (16)`.
//!
//! This module reads the wall clock (the epoch must mean the same thing on every host); the
//! connection engine itself still reads none.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};

/// How long one key issues tickets.
const EPOCH_SECS: u64 = 6 * 3600;
/// How long a client may keep a ticket (two epochs: older keys are still accepted).
const LIFETIME_SECS: u32 = 12 * 3600;
const HEADER_LEN: usize = 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// TLS 1.3 tickets sent after each handshake, full or resumed. Clients keep one session per
/// server (OpenSSL's clients keep the newest ticket; browsers and rustls use each ticket once
/// and need a fresh one after every resumption), so one ticket keeps every kind of client
/// resuming; rustls' default of two costs a second ticket (a key derivation, a seal and a
/// record) that no such client uses.
pub(crate) const TLS13_TICKETS_PER_HANDSHAKE: usize = 1;

/// The smallest master secret accepted.
pub(crate) const MIN_SECRET_LEN: usize = 32;

/// Seals and opens session tickets under epoch keys derived from one master secret.
pub(crate) struct EpochTicketer {
    master: Vec<u8>,
    clock: fn() -> u64,
    /// The most recently derived keys, newest first: derivation and key setup are done once per
    /// epoch, not per ticket.
    cache: Mutex<Vec<(u32, LessSafeKey)>>,
}

impl std::fmt::Debug for EpochTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochTicketer").finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl EpochTicketer {
    /// A ticketer over `master` (at least [`MIN_SECRET_LEN`] bytes, checked by the caller).
    pub(crate) fn new(master: Vec<u8>) -> Self {
        Self::with_clock(master, unix_now)
    }

    fn with_clock(master: Vec<u8>, clock: fn() -> u64) -> Self {
        EpochTicketer {
            master,
            clock,
            cache: Mutex::new(Vec::with_capacity(4)),
        }
    }

    /// A fresh random master secret.
    pub(crate) fn random_secret() -> Option<Vec<u8>> {
        let mut secret = vec![0u8; MIN_SECRET_LEN];
        aws_lc_rs::rand::fill(&mut secret).ok()?;
        Some(secret)
    }

    fn epoch(&self) -> u32 {
        u32::try_from((self.clock)() / EPOCH_SECS).unwrap_or(u32::MAX)
    }

    fn derive(&self, epoch: u32) -> Option<LessSafeKey> {
        let mut key = [0u8; 32];
        Salt::new(HKDF_SHA256, b"stud session tickets v1")
            .extract(&self.master)
            .expand(&[&epoch.to_be_bytes()], HKDF_SHA256)
            .ok()?
            .fill(&mut key)
            .ok()?;
        let unbound = UnboundKey::new(&AES_256_GCM, &key).ok()?;
        Some(LessSafeKey::new(unbound))
    }

    /// Runs `f` with the key of `epoch`, deriving and caching it on first use.
    fn with_key<T>(&self, epoch: u32, f: impl FnOnce(&LessSafeKey) -> Option<T>) -> Option<T> {
        // A poisoned lock only means another thread panicked mid-update; the cache is still a
        // list of valid keys, so keep using it.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = cache.iter().find(|(e, _)| *e == epoch) {
            return f(key);
        }
        let key = self.derive(epoch)?;
        let result = f(&key);
        cache.insert(0, (epoch, key));
        cache.truncate(4);
        result
    }
}

impl rustls::server::ProducesTickets for EpochTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let epoch = self.epoch();
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        // One buffer, sealed in place: header, then the ciphertext, then the tag.
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let (header, body) = out.split_at_mut(HEADER_LEN);
        let tag = self.with_key(epoch, |key| {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*header),
                body,
            )
            .ok()
        })?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < HEADER_LEN + TAG_LEN {
            return None;
        }
        let epoch = u32::from_be_bytes(ticket[..4].try_into().ok()?);
        let now = self.epoch();
        if epoch > now.saturating_add(1) || epoch < now.saturating_sub(2) {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = ticket[4..HEADER_LEN].try_into().ok()?;
        let mut body = ticket[HEADER_LEN..].to_vec();
        let plain_len = self.with_key(epoch, |key| {
            key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&ticket[..HEADER_LEN]),
                &mut body,
            )
            .ok()
            .map(|p| p.len())
        })?;
        body.truncate(plain_len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> fn() -> u64 {
        // fn pointers cannot capture; map a few fixed offsets.
        match secs {
            0 => || T0,
            1 => || T0 + EPOCH_SECS,
            2 => || T0 + 2 * EPOCH_SECS,
            3 => || T0 + 3 * EPOCH_SECS,
            _ => || T0 - EPOCH_SECS,
        }
    }

    fn ticketer(secret: &[u8], epoch_offset: u64) -> EpochTicketer {
        EpochTicketer::with_clock(secret.to_vec(), at(epoch_offset))
    }

    #[test]
    fn another_process_with_the_same_secret_opens_the_ticket() {
        let a = ticketer(&[7; 32], 0);
        let b = ticketer(&[7; 32], 0);
        let t = a.encrypt(b"session state").expect("sealed");
        assert_eq!(b.decrypt(&t).as_deref(), Some(&b"session state"[..]));
    }

    #[test]
    fn a_different_secret_cannot_open_it() {
        let t = ticketer(&[7; 32], 0).encrypt(b"s").expect("sealed");
        assert_eq!(ticketer(&[8; 32], 0).decrypt(&t), None);
    }

    #[test]
    fn tickets_open_for_two_epochs_then_expire() {
        let t = ticketer(&[1; 32], 0).encrypt(b"s").expect("sealed");
        assert!(ticketer(&[1; 32], 1).decrypt(&t).is_some());
        assert!(ticketer(&[1; 32], 2).decrypt(&t).is_some());
        assert!(ticketer(&[1; 32], 3).decrypt(&t).is_none());
        // A host whose clock is one epoch behind still opens it.
        assert!(ticketer(&[1; 32], 9).decrypt(&t).is_some());
    }

    #[test]
    fn tampered_or_short_tickets_are_refused() {
        let k = ticketer(&[3; 32], 0);
        let mut t = k.encrypt(b"state").expect("sealed");
        let last = t.len() - 1;
        t[last] ^= 1;
        assert_eq!(k.decrypt(&t), None);
        assert_eq!(k.decrypt(&[0; 10]), None);
        assert_eq!(k.decrypt(&[]), None);
    }
}
