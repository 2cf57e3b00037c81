//! Spotting a plaintext close_notify from the client during the handshake.
//!
//! Before a version is negotiated rustls treats a close_notify alert as a warning and ignores
//! it, yet a client that sent one can never complete the handshake: the connection would only end
//! at the handshake deadline. This scanner follows the client's record headers while the engine
//! is handshaking and reports a plaintext alert record whose description is close_notify (0),
//! so the engine closes at once. Encrypted records never match (they are longer than 2 bytes).

/// TLS record content type of alerts.
const CONTENT_ALERT: u8 = 21;
/// Alert description close_notify.
const CLOSE_NOTIFY: u8 = 0;

/// Incremental record-header scanner; a few bytes of state, no allocation.
#[derive(Debug, Default, Clone)]
pub(crate) struct AlertScan {
    header: [u8; 5],
    header_len: u8,
    /// Payload bytes of the current record still to skip or read.
    remaining: u16,
    /// The current record is a 2-byte alert: its payload is collected here.
    alert: [u8; 2],
    alert_len: u8,
    in_alert: bool,
}

impl AlertScan {
    /// Follows `data` (the client's next bytes); true once a plaintext close_notify is complete.
    pub(crate) fn saw_close_notify(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.remaining == 0 {
                let want = 5 - usize::from(self.header_len);
                let take = want.min(data.len());
                let start = usize::from(self.header_len);
                self.header[start..start + take].copy_from_slice(&data[..take]);
                self.header_len += take as u8;
                data = &data[take..];
                if self.header_len < 5 {
                    return false;
                }
                self.header_len = 0;
                self.remaining = u16::from_be_bytes([self.header[3], self.header[4]]);
                self.in_alert = self.header[0] == CONTENT_ALERT && self.remaining == 2;
                self.alert_len = 0;
                continue;
            }
            let take = usize::from(self.remaining).min(data.len());
            if self.in_alert {
                for &b in &data[..take] {
                    self.alert[usize::from(self.alert_len)] = b;
                    self.alert_len += 1;
                }
                if self.alert_len == 2 && self.alert[1] == CLOSE_NOTIFY {
                    return true;
                }
            }
            self.remaining -= take as u16;
            data = &data[take..];
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_close_notify_split_anywhere() {
        let stream = [
            0x16, 0x03, 0x01, 0x00, 0x03, 0xaa, 0xbb, 0xcc, // a 3-byte handshake record
            0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00, // close_notify
        ];
        for split in 0..stream.len() {
            let mut scan = AlertScan::default();
            let first = scan.saw_close_notify(&stream[..split]);
            let second = scan.saw_close_notify(&stream[split..]);
            assert!(first || second, "split at {split}");
            assert!(!first || split >= stream.len() - 1 || split == stream.len());
        }
    }

    #[test]
    fn other_alerts_and_records_do_not_match() {
        let mut scan = AlertScan::default();
        // user_canceled warning, a fatal handshake_failure, an encrypted-looking alert.
        assert!(!scan.saw_close_notify(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x5a]));
        assert!(!scan.saw_close_notify(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
        assert!(!scan.saw_close_notify(&[0x15, 0x03, 0x03, 0x00, 0x03, 0x01, 0x00, 0x00]));
        assert!(!scan.saw_close_notify(&[0x17, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00]));
    }
}
