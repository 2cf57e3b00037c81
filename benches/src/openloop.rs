//! Open-loop latency: requests at a fixed rate, whatever the answers do, from one thread with
//! an epoll loop over nonblocking connections (cheap enough per request that the load
//! generator's own queueing stays out of the figures). Latency is measured from each request's
//! scheduled time, so a stall counts for every request queued behind it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use rustls::ClientConnection;

use crate::client;
use crate::load::ECHO_SIZE;

struct Conn {
    sock: TcpStream,
    tls: Option<ClientConnection>,
    /// Scheduled times of requests not answered yet.
    waiting: VecDeque<Instant>,
    /// Answer bytes received past the last whole answer.
    partial: usize,
}

impl Conn {
    fn send(&mut self, req: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            Some(tls) => {
                tls.writer().write_all(req)?;
                while tls.wants_write() {
                    match tls.write_tls(&mut self.sock) {
                        Ok(_) => {}
                        // A 64-byte request only blocks on a stalled proxy: wait for room.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_micros(50))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            None => {
                let mut rest = req;
                while !rest.is_empty() {
                    match self.sock.write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_micros(50))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads what is there; returns the number of answer bytes.
    fn receive(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        loop {
            match &mut self.tls {
                Some(tls) => {
                    match tls.read_tls(&mut self.sock) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                        Err(e) => return Err(e),
                    }
                    tls.process_new_packets().map_err(io::Error::other)?;
                    loop {
                        match tls.reader().read(buf) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
                None => match self.sock.read(buf) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                    Err(e) => return Err(e),
                },
            }
        }
    }
}

/// Latencies in nanoseconds of `rate` requests per second over `conns` connections (TLS
/// through a proxy, or plain to the backend) for `duration`, and the count of failures.
pub fn latency(
    addr: SocketAddr,
    tls: bool,
    conns: usize,
    rate: f64,
    duration: Duration,
) -> io::Result<(Vec<u64>, u64)> {
    let cfg = client::config(false).map_err(io::Error::other)?;
    let mut all = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (mut sock, mut tls_conn) = if tls {
            let (t, _) = client::connect(&cfg, addr)?;
            (t.sock, Some(t.conn))
        } else {
            (client::connect_plain(addr)?, None)
        };
        // Ask for echo and check it works once (this also reads the session tickets).
        let req = [b'q'; ECHO_SIZE];
        let mut resp = [0u8; ECHO_SIZE];
        match &mut tls_conn {
            Some(t) => {
                let mut s = rustls::Stream::new(t, &mut sock);
                s.write_all(b"E\n")?;
                s.write_all(&req)?;
                s.read_exact(&mut resp)?;
            }
            None => {
                sock.write_all(b"E\n")?;
                sock.write_all(&req)?;
                sock.read_exact(&mut resp)?;
            }
        }
        sock.set_nonblocking(true)?;
        all.push(Conn {
            sock,
            tls: tls_conn,
            waiting: VecDeque::new(),
            partial: 0,
        });
    }
    let poller = Poller::new()?;
    for (i, c) in all.iter().enumerate() {
        // SAFETY: every socket is deleted from the poller below before `all` drops.
        unsafe { poller.add_with_mode(&c.sock, Event::readable(i), PollMode::Level)? };
    }
    let result = run(&poller, &mut all, rate, duration);
    for c in &all {
        let _ = poller.delete(&c.sock);
    }
    result
}

fn run(
    poller: &Poller,
    all: &mut [Conn],
    rate: f64,
    duration: Duration,
) -> io::Result<(Vec<u64>, u64)> {
    let req = [b'q'; ECHO_SIZE];
    let mut buf = vec![0u8; 64 * 1024];
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    // Answers still missing this long after the last send are failures.
    let drain_end = end + Duration::from_secs(5);
    let mut next = start;
    let mut sent = 0usize;
    let mut samples = Vec::with_capacity((rate * duration.as_secs_f64()) as usize + 16);
    let mut errors = 0u64;
    let mut events = Events::new();
    loop {
        let now = Instant::now();
        while next <= now && next < end {
            let c = &mut all[sent % all.len()];
            if c.send(&req).is_ok() {
                c.waiting.push_back(next);
            } else {
                errors += 1;
            }
            sent += 1;
            next = start + interval.mul_f64(sent as f64);
        }
        let outstanding: usize = all.iter().map(|c| c.waiting.len()).sum();
        if now >= end && outstanding == 0 {
            break;
        }
        if now >= drain_end {
            errors += outstanding as u64;
            break;
        }
        let timeout = if next < end {
            next.saturating_duration_since(now)
        } else {
            Duration::from_millis(10)
        };
        events.clear();
        poller.wait(&mut events, Some(timeout))?;
        let done = Instant::now();
        for ev in events.iter() {
            let c = &mut all[ev.key];
            match c.receive(&mut buf) {
                Ok(n) => {
                    c.partial += n;
                    while c.partial >= ECHO_SIZE {
                        c.partial -= ECHO_SIZE;
                        if let Some(t) = c.waiting.pop_front() {
                            samples.push(done.saturating_duration_since(t).as_nanos() as u64);
                        }
                    }
                }
                Err(_) => {
                    errors += c.waiting.len() as u64 + 1;
                    c.waiting.clear();
                    let _ = poller.delete(&c.sock);
                }
            }
        }
    }
    Ok((samples, errors))
}
