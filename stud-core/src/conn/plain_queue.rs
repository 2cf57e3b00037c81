//! The bytes waiting for the plaintext side (the backend; the client in client mode): the
//! client-address header, sent once and first, then the decrypted bytes.
//!
//! Contract:
//! - [`PlainQueue::set_header`] before any write; the header goes out before any plaintext,
//!   in the same `write_vectored` call as the first plaintext (one segment for the backend).
//! - [`PlainQueue::push_record`] moves each decrypted record in as the TLS layer hands it
//!   over (it is [`PlainQueue::reserve`] then [`PlainQueue::push`]). Growth rule: a full record means a bulk
//!   transfer, for which one allocation of the usual batch size (capped by the budget) is made
//!   rather than a doubling series; shorter ones grow the usual way from their size. A sent
//!   prefix is dropped rather than grown past, so what is kept is the unsent bytes only, at
//!   most the budget plus one record.
//! - [`PlainQueue::write_to`] writes into a nonblocking `io::Write` with bounded work (at most
//!   [`MAX_WRITES_PER_CALL`] writes), stopping at `WouldBlock`.
//! - Memory exists only while bytes wait: an empty queue holds no allocation.
//!
//! The budget itself (when to stop reading) is the connection's: it reads [`PlainQueue::pending`].

use std::io;

/// How many flush loops one `write_*` call may run: bounded work per call.
pub(super) const MAX_WRITES_PER_CALL: usize = 16;

/// The first allocation for decrypted bytes waiting for the backend (capped by the budget).
const PLAIN_BATCH: usize = 64 * 1024;

/// The client-address header and the decrypted bytes not yet taken by the plaintext side.
#[derive(Debug, Default)]
pub(super) struct PlainQueue {
    /// The client-address header while it is being sent; `None` before connect and after sending.
    header: Option<Box<[u8]>>,
    header_sent: usize,
    /// Decrypted bytes, moved out of rustls record by record so that one write sends all of
    /// them (rustls keeps one allocation per record). `plain[sent..]` is unsent. Allocated only
    /// while it holds bytes.
    plain: Vec<u8>,
    sent: usize,
}

impl PlainQueue {
    /// Queues the client-address header, to go out before any plaintext.
    pub(super) fn set_header(&mut self, header: Box<[u8]>) {
        self.header = Some(header);
        self.header_sent = 0;
    }

    /// Whether the header is (still) to be sent.
    pub(super) fn has_header(&self) -> bool {
        self.header.is_some()
    }

    /// Decrypted bytes not yet sent (the header not counted).
    pub(super) fn pending(&self) -> usize {
        self.plain.len() - self.sent
    }

    /// Every byte not yet sent, the header's included.
    pub(super) fn buffered(&self) -> usize {
        let header = self
            .header
            .as_ref()
            .map_or(0, |h| h.len() - self.header_sent);
        self.pending() + header
    }

    /// Heap bytes held (the header's and the plaintext's allocations).
    pub(super) fn heap_bytes(&self) -> usize {
        self.header.as_ref().map_or(0, |h| h.len()) + self.plain.capacity()
    }

    /// Whether anything waits to be written.
    pub(super) fn wants_write(&self) -> bool {
        self.header.is_some() || self.pending() > 0
    }

    /// Makes room for `incoming` decrypted bytes by the growth rule (see the module's doc);
    /// `budget` is the direction's budget.
    pub(super) fn reserve(&mut self, incoming: usize, budget: usize) {
        if self.sent > 0 && self.plain.len() + incoming > self.plain.capacity() {
            // Drop the sent prefix rather than grow past the allocation: what is kept is then
            // the unsent bytes only, at most the budget plus one record.
            self.plain.drain(..self.sent);
            self.sent = 0;
        }
        let need = self.plain.len() + incoming;
        if need > self.plain.capacity() {
            // A full record means a bulk transfer: one allocation of the usual batch size rather
            // than a doubling series. Short ones (interactive traffic) grow the usual way, from
            // just their size.
            if incoming >= crate::MAX_RECORD_PLAINTEXT {
                let batch = need.max(budget.clamp(1, PLAIN_BATCH));
                self.plain.reserve_exact(batch - self.plain.len());
            } else {
                self.plain.reserve(incoming);
            }
        }
    }

    /// Appends decrypted bytes.
    pub(super) fn push(&mut self, chunk: &[u8]) {
        self.plain.extend_from_slice(chunk);
    }

    /// Appends one decrypted record, reserving by the growth rule first.
    pub(super) fn push_record(&mut self, record: &[u8], budget: usize) {
        self.reserve(record.len(), budget);
        self.push(record);
    }

    /// Writes the header (first) and the plaintext into `w`, at most [`MAX_WRITES_PER_CALL`]
    /// times, stopping at `WouldBlock` or a write of 0. Returns the bytes written and the
    /// error that stopped it, if any other than `WouldBlock`.
    pub(super) fn write_to(&mut self, w: &mut dyn io::Write) -> (usize, io::Result<()>) {
        let mut total = 0;
        let mut result = Ok(());
        for _ in 0..MAX_WRITES_PER_CALL {
            let plain = &self.plain[self.sent..];
            let written = if let Some(header) = &self.header {
                // Header and the first plaintext in one write: one segment for the backend.
                let bufs = [
                    io::IoSlice::new(&header[self.header_sent..]),
                    io::IoSlice::new(plain),
                ];
                w.write_vectored(&bufs).map(|n| {
                    let from_header = n.min(header.len() - self.header_sent);
                    (from_header, n - from_header)
                })
            } else {
                if plain.is_empty() {
                    break;
                }
                w.write(plain).map(|n| (0, n))
            };
            match written {
                Ok((0, 0)) => break,
                Ok((from_header, from_plain)) => {
                    self.header_sent += from_header;
                    if self
                        .header
                        .as_ref()
                        .is_some_and(|h| self.header_sent == h.len())
                    {
                        self.header = None;
                    }
                    self.sent += from_plain;
                    if self.sent == self.plain.len() {
                        // Empty: give the memory back (an idle connection holds no buffer).
                        self.plain = Vec::new();
                        self.sent = 0;
                    }
                    total += from_header + from_plain;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        (total, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer taking at most `room` bytes per call, recording each call's slices.
    struct Trickle {
        room: usize,
        calls: Vec<Vec<u8>>,
    }

    impl io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.calls.push(buf[..n].to_vec());
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.write(&joined)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_header_goes_first_in_one_write_with_the_plaintext_then_memory_is_given_back() {
        let mut q = PlainQueue::default();
        q.set_header(b"HDR".to_vec().into_boxed_slice());
        q.reserve(5, 1024);
        q.push(b"hello");
        assert_eq!(q.buffered(), 8);
        let mut w = Trickle {
            room: 100,
            calls: Vec::new(),
        };
        let (n, result) = q.write_to(&mut w);
        assert!(result.is_ok());
        assert_eq!(n, 8);
        assert_eq!(w.calls, vec![b"HDRhello".to_vec()]);
        assert!(!q.wants_write() && !q.has_header());
        assert_eq!(q.plain.capacity(), 0, "an empty queue holds no allocation");
    }

    #[test]
    fn a_partial_write_keeps_the_rest_in_order_and_would_block_is_not_an_error() {
        let mut q = PlainQueue::default();
        q.set_header(b"HDR".to_vec().into_boxed_slice());
        q.push(b"hello");
        let mut w = Trickle {
            room: 2,
            calls: Vec::new(),
        };
        let (n, result) = q.write_to(&mut w);
        assert!(result.is_ok());
        assert_eq!((n, q.buffered(), q.has_header()), (2, 6, true));
        w.room = 100;
        let (n, _) = q.write_to(&mut w);
        assert_eq!(n, 6);
        assert_eq!(w.calls.concat(), b"HDRhello".to_vec());
    }

    #[test]
    fn a_full_record_reserves_one_batch_and_a_sent_prefix_is_dropped_not_grown_past() {
        let mut q = PlainQueue::default();
        let record = vec![7u8; crate::MAX_RECORD_PLAINTEXT];
        q.reserve(record.len(), 1 << 20);
        q.push(&record);
        assert_eq!(
            q.plain.capacity(),
            PLAIN_BATCH,
            "one batch, not a doubling series"
        );
        let mut w = Trickle {
            room: 10,
            calls: Vec::new(),
        };
        let _ = q.write_to(&mut w);
        let capacity = q.plain.capacity();
        let more = PLAIN_BATCH - record.len() + 1;
        q.reserve(more, 1 << 20);
        assert_eq!(
            q.plain.capacity(),
            capacity,
            "the sent prefix made the room"
        );
        assert_eq!(q.pending(), record.len() - 10);
    }
}
