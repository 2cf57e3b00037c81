//! Dropping the 0-RTT data stud rejects before rustls sees it.
//!
//! stud never accepts early data, so after a TLS 1.3 ClientHello that offers some, the records
//! of it that follow can never be decrypted: RFC 8446 §4.2.10 has the server skip them (up to
//! its max_early_data_size, 16,384 bytes in practice) and complete a 1-RTT handshake. rustls
//! skips them too, but charges a skipped record to its budget again on every
//! `process_new_packets` call until a later record arrives, so with the engine's several calls
//! per handshake a client sending over 5,461 bytes of early data was refused with bad_record_mac.
//!
//! The engine drops those records itself instead, by their plaintext record headers: every
//! application-data record (the outer type of all TLS 1.3 encrypted records) from the end of
//! the ClientHello until stud has handed out its first flight. Nothing the client sends in that
//! window can be its Finished, which needs the server's flight first. A change_cipher_spec
//! record (sent right after the hello by clients in middlebox-compatibility mode) goes on to
//! rustls, as does any other record, which ends the skipping; so does early data past the
//! budget (rustls then judges it). Each record costs its length less the 17 bytes of AEAD tag and
//! content type that every TLS 1.3 record carries (at least 1), against a budget of 16,384.
//! After the flight, late early data goes to rustls, which skips it as before.

/// The most early data skipped, in plaintext-sized bytes: rustls' bound when early data is off.
pub(crate) const MAX_EARLY_DATA: usize = 16_384;

const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_APPLICATION_DATA: u8 = 23;
/// AEAD tag (16) and inner content type (1): the least a TLS 1.3 record adds to its data.
const RECORD_OVERHEAD: usize = 17;

/// Follows the client's records after its ClientHello and drops early data.
#[derive(Clone, Debug)]
pub(crate) struct EarlyDataSkip {
    /// Still dropping (false: every byte passes).
    active: bool,
    /// Stop at the next record boundary: the server's flight has gone out.
    stopping: bool,
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current record still to come, and whether they are dropped.
    left: usize,
    dropping: bool,
    budget: usize,
}

impl Default for EarlyDataSkip {
    fn default() -> Self {
        EarlyDataSkip {
            active: true,
            stopping: false,
            header: [0; 5],
            header_len: 0,
            left: 0,
            dropping: false,
            budget: MAX_EARLY_DATA,
        }
    }
}

impl EarlyDataSkip {
    /// Whether records are still being followed (false: drop the skipper).
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// The server's first flight has gone out: from the next record on, everything passes.
    pub(crate) fn finish(&mut self) {
        self.stopping = true;
    }

    /// Calls `pass` with each piece of `data` rustls must see, in order; early data records are
    /// left out. A record header split across calls is held until whole.
    pub(crate) fn filter(&mut self, mut data: &[u8], pass: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            if !self.active {
                pass(data);
                return;
            }
            if self.left > 0 {
                let n = self.left.min(data.len());
                if !self.dropping {
                    pass(&data[..n]);
                }
                self.left -= n;
                data = &data[n..];
                continue;
            }
            if self.stopping && self.header_len == 0 {
                // A record begun before the flight went out was sent before the client saw
                // it: it is judged as early data still; the next one is not.
                self.active = false;
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len < 5 {
                return;
            }
            self.header_len = 0;
            let header = self.header;
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            let cost = len.saturating_sub(RECORD_OVERHEAD).max(1);
            match header[0] {
                CONTENT_APPLICATION_DATA if cost <= self.budget => {
                    self.budget -= cost;
                    self.dropping = true;
                    self.left = len;
                }
                CONTENT_CHANGE_CIPHER_SPEC => {
                    pass(&header);
                    self.dropping = false;
                    self.left = len;
                }
                _ => {
                    // Something else, or more early data than the budget: rustls' to judge.
                    self.active = false;
                    pass(&header);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(typ: u8, len: usize) -> Vec<u8> {
        let mut out = vec![typ, 3, 3];
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend(std::iter::repeat_n(typ, len));
        out
    }

    /// What passes when `stream` is fed in pieces of `step` bytes, with `finish` called once
    /// `finish_at` bytes have been fed.
    fn passed(stream: &[u8], step: usize, finish_at: usize) -> Vec<u8> {
        let mut skip = EarlyDataSkip::default();
        let mut out = Vec::new();
        let mut fed = 0;
        for chunk in stream.chunks(step) {
            if fed >= finish_at {
                skip.finish();
            }
            skip.filter(chunk, &mut |p| out.extend_from_slice(p));
            fed += chunk.len();
        }
        out
    }

    #[test]
    fn early_data_is_dropped_and_change_cipher_spec_passes_however_cut() {
        let ccs = record(20, 1);
        let stream = [ccs.clone(), record(23, 4096 + 17), record(23, 12_288 + 17)].concat();
        for step in [1, 2, 5, 7, 100, stream.len()] {
            assert_eq!(passed(&stream, step, usize::MAX), ccs, "step {step}");
        }
    }

    #[test]
    fn after_the_flight_everything_passes_from_the_next_record() {
        let early = record(23, 100);
        let finished = record(23, 53);
        let stream = [early.clone(), finished.clone()].concat();
        // finish() while inside the early record: that record is still dropped.
        for step in [1, 3, 50] {
            assert_eq!(passed(&stream, step, 1), finished, "step {step}");
        }
    }

    #[test]
    fn early_data_past_the_budget_and_other_records_go_to_rustls() {
        let within = record(23, MAX_EARLY_DATA + 17);
        let over = record(23, 18);
        let stream = [within.clone(), over.clone(), record(23, 10)].concat();
        assert_eq!(
            passed(&stream, 4096, usize::MAX),
            stream[within.len()..].to_vec()
        );
        let alert = record(21, 2);
        let stream = [record(23, 50), alert.clone(), record(23, 50)].concat();
        assert_eq!(
            passed(&stream, 9, usize::MAX),
            stream[55..].to_vec(),
            "an alert ends the skipping"
        );
    }
}
