//! The backend the proxies forward to: one thread, an epoll loop over nonblocking sockets.
//!
//! Each connection starts with one command line, then behaves as it says:
//! - `R <n>` — respond with `n` bytes, then shut the write side (a request/response, or bulk
//!   download of `n` bytes);
//! - `S <n>` — sink `n` bytes, then answer `OK\n` and shut the write side (bulk upload);
//! - `E` — echo every byte back (latency over a kept-alive connection);
//! - `I` — answer `K\n`, then hold the connection idle until the peer closes.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

/// Bytes a download writes per call: large writes keep the backend's cost per byte small.
const CHUNK: usize = 256 * 1024;
/// The longest command line accepted.
const MAX_LINE: usize = 64;
/// Poller key of the listener; connections use keys from 1 up.
const LISTENER: usize = 0;

/// What a connection does after its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send this many more bytes, then shut the write side.
    Respond(u64),
    /// Take this many more bytes, then acknowledge.
    Sink(u64),
    /// Echo bytes back.
    Echo,
    /// Idle after the acknowledgement.
    Idle,
}

/// Parses a command line (without its newline).
pub fn parse_command(line: &[u8]) -> Option<Mode> {
    let line = std::str::from_utf8(line).ok()?.trim();
    let mut words = line.split_ascii_whitespace();
    let mode = match (words.next()?, words.next()) {
        ("R", Some(n)) => Mode::Respond(n.parse().ok()?),
        ("S", Some(n)) => Mode::Sink(n.parse().ok()?),
        ("E", None) => Mode::Echo,
        ("I", None) => Mode::Idle,
        _ => return None,
    };
    words.next().is_none().then_some(mode)
}

struct Peer {
    stream: TcpStream,
    line: Vec<u8>,
    mode: Option<Mode>,
    /// Bytes owed to the peer (echo, acknowledgements).
    out: Vec<u8>,
    /// Shut the write side once `out` and any download are sent.
    finish: bool,
    /// Whether the poller watches writability now.
    writable: bool,
}

/// Binds `addr` with a deep accept queue (a burst of handshakes must not overflow it).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Runs the backend on `listener` forever (until the process exits).
pub fn run(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    // SAFETY: the listener lives until this function returns and is never deregistered
    // early; the poller is dropped first (declared later… it is dropped at return together).
    unsafe { poller.add_with_mode(&listener, Event::readable(LISTENER), PollMode::Level)? };
    let mut peers: HashMap<usize, Peer> = HashMap::new();
    let mut next_key = 1usize;
    let mut events = Events::new();
    let mut scratch = vec![0u8; CHUNK];
    let pattern = vec![b'x'; CHUNK];
    loop {
        events.clear();
        poller.wait(&mut events, Some(Duration::from_secs(1)))?;
        for ev in events.iter() {
            if ev.key == LISTENER {
                accept_all(&listener, &poller, &mut peers, &mut next_key)?;
                continue;
            }
            let Some(peer) = peers.get_mut(&ev.key) else {
                continue;
            };
            let done = serve(peer, ev.readable, &mut scratch, &pattern);
            if done {
                if let Some(peer) = peers.remove(&ev.key) {
                    let _ = poller.delete(&peer.stream);
                }
            } else {
                let want_write =
                    !peer.out.is_empty() || matches!(peer.mode, Some(Mode::Respond(_)));
                if want_write != peer.writable {
                    peer.writable = want_write;
                    let interest = if want_write {
                        Event::all(ev.key)
                    } else {
                        Event::readable(ev.key)
                    };
                    poller.modify_with_mode(&peer.stream, interest, PollMode::Level)?;
                }
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    poller: &Poller,
    peers: &mut HashMap<usize, Peer>,
    next_key: &mut usize,
) -> io::Result<()> {
    for _ in 0..256 {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                let key = *next_key;
                *next_key += 1;
                // SAFETY: the stream is deleted from the poller before it is dropped (on
                // removal from `peers`), or the process exits holding both.
                unsafe { poller.add_with_mode(&stream, Event::readable(key), PollMode::Level)? };
                peers.insert(
                    key,
                    Peer {
                        stream,
                        line: Vec::new(),
                        mode: None,
                        out: Vec::new(),
                        finish: false,
                        writable: false,
                    },
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // Out of descriptors or a connection aborted in the queue: try again on the next wake.
            Err(_) => break,
        }
    }
    Ok(())
}

/// Does what one wake allows; returns true when the connection is over.
fn serve(peer: &mut Peer, readable: bool, scratch: &mut [u8], pattern: &[u8]) -> bool {
    if readable {
        match (&peer.stream).read(scratch) {
            Ok(0) => return true,
            Ok(n) => {
                if on_bytes(peer, &scratch[..n]).is_err() {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return true,
        }
    }
    // Write what is owed.
    while !peer.out.is_empty() {
        match (&peer.stream).write(&peer.out) {
            Ok(n) => {
                peer.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    if let Some(Mode::Respond(left)) = peer.mode {
        let mut left = left;
        while left > 0 {
            let n = left.min(pattern.len() as u64) as usize;
            match (&peer.stream).write(&pattern[..n]) {
                Ok(w) => left -= w as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        if left == 0 {
            peer.mode = Some(Mode::Idle);
            peer.finish = true;
        } else {
            peer.mode = Some(Mode::Respond(left));
        }
    }
    if peer.finish && peer.out.is_empty() {
        peer.finish = false;
        // The reply is complete; the peer's close ends the connection.
        let _ = peer.stream.shutdown(std::net::Shutdown::Write);
    }
    false
}

/// Handles bytes read: the command line first, then per mode.
fn on_bytes(peer: &mut Peer, mut data: &[u8]) -> Result<(), ()> {
    if peer.mode.is_none() {
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            peer.line.extend_from_slice(data);
            return if peer.line.len() > MAX_LINE {
                Err(())
            } else {
                Ok(())
            };
        };
        peer.line.extend_from_slice(&data[..nl]);
        data = &data[nl + 1..];
        let mode = parse_command(&peer.line).ok_or(())?;
        peer.line = Vec::new();
        if mode == Mode::Idle {
            peer.out.extend_from_slice(b"K\n");
        }
        peer.mode = Some(mode);
    }
    match peer.mode {
        Some(Mode::Sink(left)) => {
            let left = left.saturating_sub(data.len() as u64);
            if left == 0 {
                peer.out.extend_from_slice(b"OK\n");
                peer.finish = true;
                peer.mode = Some(Mode::Idle);
            } else {
                peer.mode = Some(Mode::Sink(left));
            }
        }
        Some(Mode::Echo) => peer.out.extend_from_slice(data),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_strictly() {
        assert_eq!(parse_command(b"R 128"), Some(Mode::Respond(128)));
        assert_eq!(parse_command(b"S 9"), Some(Mode::Sink(9)));
        assert_eq!(parse_command(b"E\r"), Some(Mode::Echo));
        assert_eq!(parse_command(b"I"), Some(Mode::Idle));
        assert_eq!(parse_command(b"R"), None);
        assert_eq!(parse_command(b"R x"), None);
        assert_eq!(parse_command(b"S"), None);
        assert_eq!(parse_command(b"Q"), None);
        assert_eq!(parse_command(b"\xff"), None);
    }

    #[test]
    fn serves_each_mode_over_loopback() {
        let listener = bind("127.0.0.1:0".parse().expect("literal")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || run(listener));
        let timeout = Some(Duration::from_secs(10));
        let connect = || {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(timeout).expect("timeout");
            s
        };

        let mut s = connect();
        s.write_all(b"R 300000\n").expect("write");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        assert_eq!(got.len(), 300_000);

        let mut s = connect();
        s.write_all(b"S 11\nhello").expect("write");
        s.write_all(b" world").expect("write");
        let mut got = String::new();
        s.read_to_string(&mut got).expect("read");
        assert_eq!(got, "OK\n");

        let mut s = connect();
        s.write_all(b"E\nping").expect("write");
        let mut got = [0u8; 4];
        s.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"ping");

        let mut s = connect();
        s.write_all(b"I\n").expect("write");
        let mut got = [0u8; 2];
        s.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"K\n");
    }
}
