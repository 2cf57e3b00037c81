//! Judging the client's first flight before rustls sees it.
//!
//! The ClientHello travels in plaintext records, so the engine can read it whole before handing
//! it on, and refuse with the alert the RFCs name where rustls 0.23 sends another (or none):
//!
//! | what | alert | where it is written |
//! |---|---|---|
//! | a handshake record longer than 2^14 bytes | `record_overflow` | RFC 8446 §5.1 |
//! | a record of another type inside a fragmented ClientHello | `unexpected_message` | RFC 8446 §5.1 |
//! | a ClientHello over 64 KiB (the cap rustls keeps too) | `decode_error` | |
//! | `legacy_version` 0x0300 (SSL 3.0) or older | `protocol_version` | RFC 8446 D.5 |
//! | no protocol version in common (TLS 1.1 and older) | `protocol_version` | RFC 8446 §4.2.1 |
//! | `TLS_FALLBACK_SCSV` with a version below stud's highest | `inappropriate_fallback` | RFC 7507 |
//! | TLS 1.3 with `supported_groups` but no `key_share`, or the reverse | `missing_extension` | RFC 8446 §9.2 |
//! | with `sni_strict`, a server name no certificate covers | `unrecognized_name` | RFC 6066 §3 |
//!
//! Everything else — including a hello that does not parse, or that is not a handshake record
//! at all — is passed on untouched for rustls to judge, so this module can only add refusals
//! that the RFCs require, never accept what rustls would refuse. It allocates only to join a
//! ClientHello split across records; the caller holds the raw bytes until
//! [`HelloReader::judge`] decides (at most [`MAX_HELD`] bytes).

use std::sync::Arc;

use rustls::pki_types::DnsName;

use super::sni::NameIndex;

/// Alert descriptions (RFC 8446 §6).
pub(crate) mod alert {
    pub(crate) const UNEXPECTED_MESSAGE: u8 = 10;
    pub(crate) const RECORD_OVERFLOW: u8 = 22;
    pub(crate) const DECODE_ERROR: u8 = 50;
    pub(crate) const PROTOCOL_VERSION: u8 = 70;
    pub(crate) const INAPPROPRIATE_FALLBACK: u8 = 86;
    pub(crate) const MISSING_EXTENSION: u8 = 109;
    pub(crate) const UNRECOGNIZED_NAME: u8 = 112;

    /// The RFC's name for `description`, for close reasons.
    pub(crate) fn name(description: u8) -> &'static str {
        match description {
            UNEXPECTED_MESSAGE => "unexpected_message",
            RECORD_OVERFLOW => "record_overflow",
            DECODE_ERROR => "decode_error",
            PROTOCOL_VERSION => "protocol_version",
            INAPPROPRIATE_FALLBACK => "inappropriate_fallback",
            MISSING_EXTENSION => "missing_extension",
            UNRECOGNIZED_NAME => "unrecognized_name",
            _ => "alert",
        }
    }
}

/// The largest plaintext record (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 1 << 14;
/// The largest ClientHello stud (and rustls) takes.
const MAX_HELLO: usize = 0xffff;

const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const TLS12: u16 = 0x0303;
const TLS13: u16 = 0x0304;
const FALLBACK_SCSV: u16 = 0x5600;

const EXT_SERVER_NAME: u16 = 0;
const EXT_SUPPORTED_GROUPS: u16 = 10;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_KEY_SHARE: u16 = 51;
const EXT_EARLY_DATA: u16 = 42;

/// What the server accepts, as far as the ClientHello can be judged by it.
#[derive(Clone, Debug, Default)]
pub(crate) struct HelloPolicy {
    pub(crate) tls12: bool,
    pub(crate) tls13: bool,
    /// With `sni_strict`: the names some certificate covers.
    pub(crate) strict_names: Option<Arc<NameIndex>>,
}

/// A refusal: the alert to send in plaintext and why, for the close reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) alert: u8,
    pub(crate) why: &'static str,
}

impl Refusal {
    /// The fatal alert as a plaintext record.
    pub(crate) fn record(self) -> [u8; 7] {
        [21, 0x03, 0x03, 0x00, 0x02, 2, self.alert]
    }
}

/// The verdict on the client's bytes so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The ClientHello is not whole yet: hold the bytes and call again with more.
    Incomplete,
    /// Give every byte to rustls.
    Pass,
    /// Send the alert and close.
    Refuse(Refusal),
}

fn refuse(alert: u8, why: &'static str) -> Verdict {
    Verdict::Refuse(Refusal { alert, why })
}

/// The most bytes held while a ClientHello arrives: the largest hello in records of a few
/// bytes each is far below; beyond, `decode_error`.
const MAX_HELD: usize = 128 * 1024;

/// Follows the client's first records across calls, so each record is looked at once however
/// the hello is cut.
#[derive(Clone, Debug, Default)]
pub(crate) struct HelloReader {
    /// Where the next record header starts in the bytes held.
    pos: usize,
    /// Handshake bytes seen so far, and the first four of them (type and length).
    collected: usize,
    head: [u8; 4],
    /// Empty handshake records seen.
    empty: usize,
    /// Set when the whole hello passed: a TLS 1.3 hello asking to send early data.
    early_data: bool,
    /// Set when the whole hello passed: the DNS name it asks for, as rustls reports it.
    server_name: Option<String>,
}

/// After this many empty handshake records the bytes go to rustls, which refuses a run of
/// them (more than 32) at once.
const MAX_EMPTY: usize = 32;

impl HelloReader {
    /// Judges the client's bytes so far (all of them, from the start of its TLS stream: the
    /// same prefix as on the previous call plus what came since). Each call reads only the
    /// records that are new; the hello is parsed once, when whole.
    pub(crate) fn judge(&mut self, bytes: &[u8], policy: &HelloPolicy) -> Verdict {
        loop {
            let Some(header) = bytes.get(self.pos..self.pos + 5) else {
                return incomplete(bytes);
            };
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if header[0] != CONTENT_HANDSHAKE {
                if self.pos == 0 {
                    // Not a TLS handshake at all (or an alert first): rustls' business.
                    return Verdict::Pass;
                }
                return refuse(
                    alert::UNEXPECTED_MESSAGE,
                    "a record of another type inside a fragmented ClientHello",
                );
            }
            if len > MAX_PLAINTEXT {
                return refuse(
                    alert::RECORD_OVERFLOW,
                    "a plaintext record longer than 2^14 bytes",
                );
            }
            let start = self.pos + 5;
            let Some(fragment) = bytes.get(start..start + len) else {
                return incomplete(bytes);
            };
            self.pos = start + len;
            if len == 0 {
                self.empty += 1;
                if self.empty > MAX_EMPTY {
                    return Verdict::Pass;
                }
            }
            let head_left = 4usize.saturating_sub(self.collected);
            for (k, &b) in fragment.iter().take(head_left).enumerate() {
                self.head[self.collected + k] = b;
            }
            self.collected += len;
            if self.collected < 4 {
                continue;
            }
            if self.head[0] != CLIENT_HELLO {
                return Verdict::Pass;
            }
            let body_len = usize::from(self.head[1]) << 16
                | usize::from(self.head[2]) << 8
                | usize::from(self.head[3]);
            if body_len > MAX_HELLO {
                return refuse(alert::DECODE_ERROR, "a ClientHello over 64 KiB");
            }
            if self.collected < 4 + body_len {
                continue;
            }
            return self.whole(bytes, body_len, policy);
        }
    }

    /// Where the ClientHello's last record ends in the bytes judged: what follows is the
    /// client's next flight (early data, when it asked to send some). Meaningful once
    /// [`judge`](HelloReader::judge) returned [`Verdict::Pass`] for a whole hello.
    pub(crate) fn hello_end(&self) -> usize {
        self.pos
    }

    /// Whether the hello that passed offers TLS 1.3 early data (0-RTT), which stud always
    /// rejects, so records of it will follow that no key decrypts.
    pub(crate) fn offers_early_data(&self) -> bool {
        self.early_data
    }

    /// The server name the hello that passed asks for, as rustls normalises it (a DNS name
    /// in lower case; none for an IP address or no name): what the handshake report names.
    pub(crate) fn take_server_name(&mut self) -> Option<String> {
        self.server_name.take()
    }

    /// Checks the hello once its last byte is in: in place when the first record holds it
    /// all, else joined from its records.
    fn whole(&mut self, bytes: &[u8], body_len: usize, policy: &HelloPolicy) -> Verdict {
        let first_len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        if first_len >= 4 + body_len {
            let (verdict, early, name) = check_hello(&bytes[9..9 + body_len], policy);
            self.early_data = early;
            self.server_name = name;
            return verdict;
        }
        let mut message = Vec::with_capacity(self.collected);
        let mut at = 0;
        while at < self.pos {
            let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
            message.extend_from_slice(&bytes[at + 5..at + 5 + len]);
            at += 5 + len;
        }
        let (verdict, early, name) = check_hello(&message[4..4 + body_len], policy);
        self.early_data = early;
        self.server_name = name;
        verdict
    }
}

fn incomplete(bytes: &[u8]) -> Verdict {
    if bytes.len() > MAX_HELD {
        return refuse(
            alert::DECODE_ERROR,
            "a ClientHello cut into too many records",
        );
    }
    Verdict::Incomplete
}

/// Judges `bytes` from scratch (see [`HelloReader::judge`]).
#[cfg(test)]
fn judge(bytes: &[u8], policy: &HelloPolicy) -> Verdict {
    HelloReader::default().judge(bytes, policy)
}

/// A cursor over big-endian fields; every read fails softly on short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a one- or two-byte length.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// What the checks need from a ClientHello.
#[derive(Default)]
struct Hello<'a> {
    legacy_version: u16,
    fallback_scsv: bool,
    supported_versions: Option<&'a [u8]>,
    supported_groups: bool,
    key_share: bool,
    early_data: bool,
    server_name: Option<&'a [u8]>,
}

fn parse(body: &[u8]) -> Option<Hello<'_>> {
    let mut r = Reader(body);
    let mut hello = Hello {
        legacy_version: r.u16()?,
        ..Hello::default()
    };
    r.take(32)?;
    r.vec8()?;
    let suites = r.vec16()?;
    hello.fallback_scsv = suites
        .chunks_exact(2)
        .any(|s| u16::from_be_bytes([s[0], s[1]]) == FALLBACK_SCSV);
    r.vec8()?;
    if r.0.is_empty() {
        return Some(hello); // no extensions (SSL 3.0 style)
    }
    let mut ext = Reader(r.vec16()?);
    while !ext.0.is_empty() {
        let typ = ext.u16()?;
        let data = ext.vec16()?;
        match typ {
            EXT_SERVER_NAME => hello.server_name = Some(data),
            EXT_SUPPORTED_GROUPS => hello.supported_groups = true,
            EXT_SUPPORTED_VERSIONS => hello.supported_versions = Some(data),
            EXT_KEY_SHARE => hello.key_share = true,
            EXT_EARLY_DATA => hello.early_data = true,
            _ => {}
        }
    }
    Some(hello)
}

/// The host name in a server_name extension's data, if it holds one that is UTF-8.
fn host_name(data: &[u8]) -> Option<&str> {
    let mut list = Reader(Reader(data).vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == 0 {
            return std::str::from_utf8(name).ok();
        }
    }
    None
}

/// The verdict on a whole hello, whether it is TLS 1.3 asking to send early data, and the
/// server name it asks for.
fn check_hello(body: &[u8], policy: &HelloPolicy) -> (Verdict, bool, Option<String>) {
    let Some(hello) = parse(body) else {
        return (Verdict::Pass, false, None); // malformed: rustls names the fault
    };
    let verdict = check_parsed(&hello, policy);
    let early = verdict == Verdict::Pass && hello.early_data && offers_tls13(&hello, policy);
    let name = hello.server_name.and_then(requested_name);
    (verdict, early, name)
}

/// The server name as rustls records it from a server_name extension: the first entry, when
/// it is a host name that is a DNS name (not an IP address), in lower case. rustls stops at
/// an entry of another type, so this does too.
fn requested_name(data: &[u8]) -> Option<String> {
    let mut list = Reader(Reader(data).vec16()?);
    if list.u8()? != 0 {
        return None;
    }
    let name = std::str::from_utf8(list.vec16()?).ok()?;
    match rustls::pki_types::ServerName::try_from(name).ok()? {
        rustls::pki_types::ServerName::DnsName(dns) => Some(dns.as_ref().to_ascii_lowercase()),
        _ => None,
    }
}

fn offers_tls13(hello: &Hello<'_>, policy: &HelloPolicy) -> bool {
    policy.tls13 && versions_offered(hello).1
}

/// (TLS 1.2, TLS 1.3) as the client offers them.
fn versions_offered(hello: &Hello<'_>) -> (bool, bool) {
    match hello.supported_versions {
        Some(data) => {
            let list = Reader(data).vec8().unwrap_or(&[]);
            let has = |v: u16| {
                list.chunks_exact(2)
                    .any(|c| u16::from_be_bytes([c[0], c[1]]) == v)
            };
            (has(TLS12), has(TLS13))
        }
        None => (hello.legacy_version >= TLS12, false),
    }
}

fn check_parsed(hello: &Hello<'_>, policy: &HelloPolicy) -> Verdict {
    if hello.legacy_version <= 0x0300 {
        return refuse(
            alert::PROTOCOL_VERSION,
            "ClientHello legacy_version is SSL 3.0 or older",
        );
    }
    let (offers12, offers13) = versions_offered(hello);
    let tls13 = policy.tls13 && offers13;
    let tls12 = policy.tls12 && offers12;
    if !tls13 && !tls12 {
        return refuse(
            alert::PROTOCOL_VERSION,
            "the client offers no protocol version stud speaks",
        );
    }
    if hello.fallback_scsv && !tls13 && policy.tls13 {
        return refuse(
            alert::INAPPROPRIATE_FALLBACK,
            "TLS_FALLBACK_SCSV with a version below the server's highest",
        );
    }
    if tls13 && hello.supported_groups != hello.key_share {
        return refuse(
            alert::MISSING_EXTENSION,
            "TLS 1.3 ClientHello with supported_groups or key_share but not both",
        );
    }
    if let (Some(names), Some(data)) = (&policy.strict_names, hello.server_name) {
        // Only a DNS name is judged here; anything else (an IP address some clients send) is
        // no server name to rustls, and gets the default certificate as before.
        let dns = host_name(data).filter(|name| DnsName::try_from(*name).is_ok());
        if dns.is_some_and(|name| !names.covers(name)) {
            return refuse(
                alert::UNRECOGNIZED_NAME,
                "no certificate covers the server name",
            );
        }
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS12_ONLY: HelloPolicy = HelloPolicy {
        tls12: true,
        tls13: false,
        strict_names: None,
    };
    const BOTH: HelloPolicy = HelloPolicy {
        tls12: true,
        tls13: true,
        strict_names: None,
    };

    fn ext(typ: u16, data: &[u8]) -> Vec<u8> {
        let mut out = typ.to_be_bytes().to_vec();
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn versions(list: &[u16]) -> Vec<u8> {
        let mut data = vec![(list.len() * 2) as u8];
        for v in list {
            data.extend_from_slice(&v.to_be_bytes());
        }
        ext(EXT_SUPPORTED_VERSIONS, &data)
    }

    fn sni(name: &str) -> Vec<u8> {
        let mut entry = vec![0u8];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&entry);
        ext(EXT_SERVER_NAME, &data)
    }

    /// A ClientHello handshake message.
    fn message(legacy: u16, suites: &[u16], exts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = legacy.to_be_bytes().to_vec();
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        let exts: Vec<u8> = exts.concat();
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![CLIENT_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    fn record(typ: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![typ, 3, 1];
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn modern(extra: &[Vec<u8>]) -> Vec<u8> {
        let mut exts = vec![
            versions(&[TLS13, TLS12]),
            ext(EXT_SUPPORTED_GROUPS, &[0, 2, 0, 29]),
            ext(EXT_KEY_SHARE, &[0, 0]),
        ];
        exts.extend_from_slice(extra);
        message(TLS12, &[0x1301, 0xc02b], &exts)
    }

    fn alert_of(v: Verdict) -> Option<u8> {
        match v {
            Verdict::Refuse(r) => Some(r.alert),
            _ => None,
        }
    }

    #[test]
    fn a_modern_hello_passes_whole_and_waits_when_cut() {
        let bytes = record(CONTENT_HANDSHAKE, &modern(&[]));
        assert_eq!(judge(&bytes, &BOTH), Verdict::Pass);
        for cut in 0..bytes.len() {
            assert_eq!(
                judge(&bytes[..cut], &BOTH),
                Verdict::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_hello_arriving_byte_by_byte_is_judged_once_whole() {
        let msg = modern(&[]);
        let mut bytes = Vec::new();
        for chunk in msg.chunks(2) {
            bytes.extend_from_slice(&record(CONTENT_HANDSHAKE, chunk));
        }
        let mut reader = HelloReader::default();
        for end in 1..bytes.len() {
            assert_eq!(reader.judge(&bytes[..end], &BOTH), Verdict::Incomplete);
        }
        assert_eq!(reader.judge(&bytes, &BOTH), Verdict::Pass);
    }

    #[test]
    fn a_hello_split_across_records_is_joined() {
        let msg = modern(&[]);
        let mut bytes = Vec::new();
        for chunk in msg.chunks(3) {
            bytes.extend_from_slice(&record(CONTENT_HANDSHAKE, chunk));
        }
        assert_eq!(judge(&bytes, &BOTH), Verdict::Pass);
        let legacy = message(0x0300, &[0xc02b], &[]);
        let mut bytes = Vec::new();
        for chunk in legacy.chunks(7) {
            bytes.extend_from_slice(&record(CONTENT_HANDSHAKE, chunk));
        }
        assert_eq!(
            alert_of(judge(&bytes, &BOTH)),
            Some(alert::PROTOCOL_VERSION)
        );
    }

    #[test]
    fn non_handshake_and_malformed_input_is_left_to_rustls() {
        assert_eq!(judge(&record(21, &[1, 0]), &BOTH), Verdict::Pass);
        assert_eq!(judge(b"GET / HTTP/1.1\r\n\r\n", &BOTH), Verdict::Pass);
        assert_eq!(judge(&record(22, &[2, 0, 0, 1, 0]), &BOTH), Verdict::Pass);
        assert_eq!(
            judge(&record(22, &[1, 0, 0, 3, 3, 3, 0]), &BOTH),
            Verdict::Pass
        );
    }

    #[test]
    fn record_and_message_limits() {
        let big = record(22, &vec![0u8; MAX_PLAINTEXT + 1]);
        assert_eq!(
            alert_of(judge(&big[..5], &BOTH)),
            Some(alert::RECORD_OVERFLOW)
        );
        let huge = record(22, &[1, 1, 0, 0]);
        assert_eq!(alert_of(judge(&huge, &BOTH)), Some(alert::DECODE_ERROR));
        let msg = modern(&[]);
        let mut interleaved = record(22, &msg[..10]);
        interleaved.extend_from_slice(&record(20, &[1]));
        assert_eq!(
            alert_of(judge(&interleaved, &BOTH)),
            Some(alert::UNEXPECTED_MESSAGE)
        );
        // A 64 KiB hello in one-byte records holds too much before it is whole.
        let mut tiny = record(22, &[1, 0, 0xff, 0xff]);
        while tiny.len() <= MAX_HELD {
            tiny.extend_from_slice(&record(22, &[3]));
        }
        assert_eq!(
            judge(&tiny, &BOTH),
            refuse(
                alert::DECODE_ERROR,
                "a ClientHello cut into too many records"
            )
        );
        // A run of empty records goes to rustls, which refuses it on sight.
        let empty = record(22, &[]).repeat(MAX_EMPTY + 1);
        assert_eq!(judge(&empty, &BOTH), Verdict::Pass);
    }

    #[test]
    fn versions_are_refused_with_protocol_version() {
        let ssl3_offering_13 = message(0x0300, &[0x1301], &[versions(&[TLS13])]);
        let tls11 = message(0x0302, &[0xc013], &[]);
        for msg in [ssl3_offering_13, tls11] {
            assert_eq!(
                alert_of(judge(&record(22, &msg), &BOTH)),
                Some(alert::PROTOCOL_VERSION)
            );
        }
        let tls13_only = HelloPolicy {
            tls12: false,
            ..BOTH
        };
        let tls12 = message(TLS12, &[0xc02b], &[]);
        assert_eq!(
            alert_of(judge(&record(22, &tls12), &tls13_only)),
            Some(alert::PROTOCOL_VERSION)
        );
        assert_eq!(judge(&record(22, &tls12), &BOTH), Verdict::Pass);
    }

    #[test]
    fn fallback_scsv_is_refused_only_below_the_servers_highest_version() {
        let fallback = message(TLS12, &[0xc02b, FALLBACK_SCSV], &[]);
        assert_eq!(
            alert_of(judge(&record(22, &fallback), &BOTH)),
            Some(alert::INAPPROPRIATE_FALLBACK)
        );
        assert_eq!(judge(&record(22, &fallback), &TLS12_ONLY), Verdict::Pass);
        // A hello offering TLS 1.3 with the SCSV is no fallback.
        let exts = [
            versions(&[TLS13, TLS12]),
            ext(EXT_SUPPORTED_GROUPS, &[0, 2, 0, 29]),
            ext(EXT_KEY_SHARE, &[0, 0]),
        ];
        let modern_scsv = message(TLS12, &[0x1301, FALLBACK_SCSV], &exts);
        assert_eq!(judge(&record(22, &modern_scsv), &BOTH), Verdict::Pass);
    }

    #[test]
    fn tls13_without_key_share_is_missing_extension() {
        let msg = message(
            TLS12,
            &[0x1301],
            &[
                versions(&[TLS13]),
                ext(EXT_SUPPORTED_GROUPS, &[0, 2, 0, 29]),
            ],
        );
        assert_eq!(
            alert_of(judge(&record(22, &msg), &BOTH)),
            Some(alert::MISSING_EXTENSION)
        );
    }

    #[test]
    fn strict_names_refuse_an_uncovered_name_with_unrecognized_name() {
        let policy = HelloPolicy {
            strict_names: Some(Arc::new(NameIndex::for_tests(&["www.example.test"]))),
            ..BOTH
        };
        let known = record(22, &modern(&[sni("WWW.example.test")]));
        let unknown = record(22, &modern(&[sni("other.test")]));
        let none = record(22, &modern(&[]));
        assert_eq!(judge(&known, &policy), Verdict::Pass);
        assert_eq!(judge(&none, &policy), Verdict::Pass);
        assert_eq!(
            alert_of(judge(&unknown, &policy)),
            Some(alert::UNRECOGNIZED_NAME)
        );
        assert_eq!(judge(&unknown, &BOTH), Verdict::Pass);
        let ip = record(22, &modern(&[sni("192.0.2.1")]));
        assert_eq!(
            judge(&ip, &policy),
            Verdict::Pass,
            "an IP address is no name"
        );
    }

    #[test]
    fn the_requested_name_is_reported_the_way_rustls_records_it() {
        for (sent, reported) in [
            (Some("WWW.Example.test"), Some("www.example.test")),
            (Some("192.0.2.1"), None),
            (None, None),
        ] {
            let exts: Vec<Vec<u8>> = sent.map(sni).into_iter().collect();
            let mut reader = HelloReader::default();
            assert_eq!(
                reader.judge(&record(22, &modern(&exts)), &BOTH),
                Verdict::Pass
            );
            assert_eq!(reader.take_server_name().as_deref(), reported, "{sent:?}");
        }
    }
}
