//! The scrape endpoint, served from the supervisor's own loop without ever blocking it.
//!
//! The listener and every scrape connection are nonblocking. The supervisor waits on
//! [`Endpoint::interest`] beside its signal pipe and calls [`Endpoint::service`] after each wake.
//! A scrape sends its request (at most 8 KiB, which must end within 5 seconds of its accept),
//! gets the whole answer rendered at once, and is written to as fast as it reads; it is closed
//! once answered, at its deadline, or, when more than [`MAX_SCRAPES`] are open, to make room
//! (the oldest goes). A slow or hostile client thus costs the supervisor a few microseconds per
//! wake, never a wait.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd as _, RawFd};
use std::time::{Duration, Instant};

use super::View;

/// How long a scraper may take, from its accept to the last byte of the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request accepted (a request line and headers).
const MAX_REQUEST: usize = 8192;
/// The most scrapes served at once.
const MAX_SCRAPES: usize = 16;
/// How long the listener is left alone after accept fails for want of descriptors (it stays
/// readable meanwhile, so polling it would spin).
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// The listening socket and the scrapes in progress.
#[derive(Debug)]
pub(crate) struct Endpoint {
    listener: TcpListener,
    scrapes: Vec<Scrape>,
    /// Accepting failed for want of descriptors: the listener is not watched until then.
    paused_until: Option<Instant>,
}

#[derive(Debug)]
struct Scrape {
    stream: TcpStream,
    request: Vec<u8>,
    /// The answer and how much of it was written, once the request is in.
    response: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

impl Endpoint {
    /// Serves on `listener` (made nonblocking).
    pub(crate) fn new(listener: TcpListener) -> io::Result<Endpoint> {
        listener.set_nonblocking(true)?;
        Ok(Endpoint {
            listener,
            scrapes: Vec::new(),
            paused_until: None,
        })
    }

    /// Where scrapes are taken.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The descriptors to wait on, each with whether it waits to be written to.
    pub(crate) fn interest(&self) -> Vec<(RawFd, bool)> {
        let listener = self
            .paused_until
            .is_none()
            .then(|| (self.listener.as_raw_fd(), false));
        listener
            .into_iter()
            .chain(
                self.scrapes
                    .iter()
                    .map(|s| (s.stream.as_raw_fd(), s.response.is_some())),
            )
            .collect()
    }

    /// When the oldest scrape in progress times out, or a pause of the listener ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.scrapes
            .iter()
            .map(|s| s.deadline)
            .chain(self.paused_until)
            .min()
    }

    /// Accepts, reads, answers and closes what is ready now; never waits.
    pub(crate) fn service(&mut self, view: &View, now: Instant) {
        if self.paused_until.is_some_and(|t| t > now) {
            return self.progress(view, now);
        }
        self.paused_until = None;
        for _ in 0..MAX_SCRAPES {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    if self.scrapes.len() >= MAX_SCRAPES {
                        self.scrapes.remove(0);
                    }
                    self.scrapes.push(Scrape {
                        stream,
                        request: Vec::new(),
                        response: None,
                        deadline: now + SCRAPE_TIMEOUT,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Out of descriptors (or memory): leave the listener alone for a moment
                // rather than wake on it again at once.
                Err(e) if is_exhaustion(&e) => {
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    break;
                }
                // The client already left, or a signal: the next wake tries again.
                Err(_) => break,
            }
        }
        self.progress(view, now);
    }

    /// Moves every scrape on, dropping those that are over or past their deadline.
    fn progress(&mut self, view: &View, now: Instant) {
        let unix_now = unix_now();
        self.scrapes
            .retain_mut(|scrape| scrape.deadline > now && scrape.progress(view, unix_now));
    }
}

impl Scrape {
    /// Moves this scrape on as far as it goes without waiting; `false` once it is over.
    fn progress(&mut self, view: &View, unix_now: i64) -> bool {
        if self.response.is_none() {
            let mut buf = [0u8; 1024];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.request.extend_from_slice(&buf[..n]);
                        if self.request.len() >= MAX_REQUEST || complete(&self.request) {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            self.response = Some((answer(&self.request, view, unix_now).into_bytes(), 0));
        }
        let Some((response, written)) = &mut self.response else {
            return false;
        };
        while *written < response.len() {
            match self.stream.write(&response[*written..]) {
                Ok(0) => return false,
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// Whether accept failed because the process or the system has no descriptor or memory left.
fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether the request's headers have ended.
fn complete(request: &[u8]) -> bool {
    request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n")
}

/// The HTTP response to `request`.
fn answer(request: &[u8], view: &View, unix_now: i64) -> String {
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next(), words.next());
    let path = path.map(|p| p.split('?').next().unwrap_or(p));
    let (status, kind, body) = match (method, path) {
        (Some("GET"), Some("/metrics" | "/")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            view.render(unix_now),
        ),
        (Some("GET" | "HEAD"), Some(_)) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "stud serves its metrics at /metrics\n".to_string(),
        ),
        _ => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "expected GET /metrics\n".to_string(),
        ),
    };
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::super::tests::layout;
    use super::super::Board;
    use super::*;

    #[test]
    fn http_answers() {
        let view = View {
            board: Board::new(layout(), 1).expect("board"),
            certificates: Vec::new().into(),
            workers: 1,
        };
        let ok = answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &view, 0);
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        assert!(ok.contains("version=0.0.4"), "{ok}");
        let body = ok.split("\r\n\r\n").nth(1).expect("a body");
        assert!(ok.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(answer(b"GET /nope HTTP/1.1\r\n\r\n", &view, 0).starts_with("HTTP/1.0 404"));
        assert!(answer(b"\x16\x03\x01garbage", &view, 0).starts_with("HTTP/1.0 400"));
        assert!(answer(b"", &view, 0).starts_with("HTTP/1.0 400"));
    }

    #[test]
    fn a_silent_scraper_never_blocks_and_is_dropped_at_its_deadline() {
        let view = View {
            board: Board::new(layout(), 1).expect("board"),
            certificates: Vec::new().into(),
            workers: 1,
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut endpoint = Endpoint::new(listener).expect("endpoint");
        let addr = endpoint.local_addr().expect("address");
        let _silent = TcpStream::connect(addr).expect("connect");
        let mut good = TcpStream::connect(addr).expect("connect");
        good.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("request");
        let start = Instant::now();
        // Both are accepted and the good one answered; the silent one waits without a stall.
        let mut answer = Vec::new();
        good.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        for _ in 0..100 {
            endpoint.service(&view, Instant::now());
            let mut buf = [0u8; 4096];
            match good.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        assert!(start.elapsed() < Duration::from_secs(4));
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
        assert!(text.contains("stud_connections_open 0"), "{text}");
        assert_eq!(
            endpoint.scrapes.len(),
            1,
            "the silent scraper is still waiting"
        );
        endpoint.service(
            &view,
            Instant::now() + SCRAPE_TIMEOUT + Duration::from_secs(1),
        );
        assert!(endpoint.scrapes.is_empty(), "its deadline closed it");
    }
}
