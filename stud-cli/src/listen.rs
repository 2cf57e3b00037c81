//! Binding the frontend: one listening socket shared by every worker (stud's model), or one
//! `SO_REUSEPORT` socket per worker so the kernel spreads connections evenly, with the buffer
//! sizes asked for (`recv-bufsize`, `send-bufsize`; accepted sockets inherit them) and TCP Fast
//! Open (`tcp-fastopen`).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::args::{Endpoint, SocketOptions};

/// Binds one socket on `addr`. `*` binds `[::]` dual-stack, so IPv4 clients arrive as
/// `::ffff:a.b.c.d` (the engine unmaps them for the client-address headers).
fn bind_one(
    addr: SocketAddr,
    backlog: i32,
    reuseport: bool,
    dual_stack: bool,
    options: &SocketOptions,
) -> io::Result<TcpListener> {
    // socket2 sets CLOEXEC on every socket it creates.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuseport {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(!dual_stack)?;
    }
    // Set before listen(): the window scale a connection uses is fixed by the handshake.
    if let Some(bytes) = options.recv_bufsize {
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(bytes) = options.send_bufsize {
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(&addr.into())?;
    if let Some(queue) = options.fastopen {
        crate::sys::set_tcp_fastopen(&socket, queue)?;
    }
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Binds `count` listeners on the frontend (`count` > 1 only with `reuseport`).
///
/// Hostnames are resolved once here; the first address that binds wins. `*` tries the IPv6
/// wildcard with `IPV6_V6ONLY` off and falls back to `0.0.0.0` where IPv6 is unavailable.
pub(crate) fn bind(
    frontend: &Endpoint,
    backlog: i32,
    count: usize,
    reuseport: bool,
    options: &SocketOptions,
) -> Result<Vec<TcpListener>, String> {
    let candidates = frontend.resolve()?;
    let wildcard = frontend.host.is_none();
    let mut last_error = None;
    for (i, addr) in candidates.iter().enumerate() {
        match bind_one(*addr, backlog, reuseport, wildcard, options) {
            Ok(first) => {
                // With port 0 the kernel picked a port; every other socket must share it.
                let actual = first
                    .local_addr()
                    .map_err(|e| format!("cannot read the address of {addr}: {e}"))?;
                let mut all = vec![first];
                for _ in 1..count {
                    let more = bind_one(actual, backlog, reuseport, wildcard, options)
                        .map_err(|e| format!("cannot listen on {actual}: {e}"))?;
                    all.push(more);
                }
                return Ok(all);
            }
            Err(e) => {
                // Only the IPv6 wildcard's "no IPv6 here" is worth trying the next candidate for
                // when the host is `*`; a port in use is the same on every address.
                let ipv6_missing = matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
                );
                let more = i + 1 < candidates.len();
                last_error = Some(format!("cannot listen on {addr}: {}", describe(&e)));
                if wildcard && !ipv6_missing {
                    break;
                }
                if !more {
                    break;
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| format!("cannot listen on {frontend}: no address")))
}

/// The OS error without Rust's "(os error N)" suffix, which says nothing to an operator.
pub(crate) fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_endpoint;

    #[test]
    fn port_in_use_is_reported() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let ep = parse_endpoint(&format!("127.0.0.1,{port}")).expect("endpoint");
        let err = bind(&ep, 10, 1, false, &SocketOptions::default()).expect_err("port is taken");
        assert!(err.contains("Address already in use"), "{err}");
    }

    #[test]
    fn reuseport_sockets_share_the_chosen_port() {
        let ep = parse_endpoint("127.0.0.1,0").expect("endpoint");
        let all = bind(&ep, 10, 3, true, &SocketOptions::default()).expect("bind");
        let ports: Vec<u16> = all
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0));
    }

    #[test]
    fn wildcard_accepts_ipv4() {
        let ep = parse_endpoint("*,0").expect("endpoint");
        let all = bind(&ep, 10, 1, false, &SocketOptions::default()).expect("bind");
        let port = all[0].local_addr().expect("addr").port();
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("IPv4 client reaches *");
    }

    #[test]
    fn buffer_sizes_reach_the_socket() {
        let ep = parse_endpoint("127.0.0.1,0").expect("endpoint");
        let options = SocketOptions {
            recv_bufsize: Some(200_000),
            send_bufsize: Some(300_000),
            ..SocketOptions::default()
        };
        let all = bind(&ep, 10, 1, false, &options).expect("bind");
        let socket = socket2::SockRef::from(&all[0]);
        // Linux doubles the value asked for (the rest is bookkeeping space).
        let recv = socket.recv_buffer_size().expect("SO_RCVBUF");
        let send = socket.send_buffer_size().expect("SO_SNDBUF");
        assert!(recv >= 200_000, "SO_RCVBUF {recv}");
        assert!(send >= 300_000, "SO_SNDBUF {send}");
        let plain = bind(&ep, 10, 1, false, &SocketOptions::default()).expect("bind");
        let default = socket2::SockRef::from(&plain[0])
            .recv_buffer_size()
            .expect("SO_RCVBUF");
        assert_ne!(recv, default, "the size asked for made no difference");
    }

    #[test]
    fn tcp_fastopen_is_set_on_the_listener_when_asked() {
        let ep = parse_endpoint("127.0.0.1,0").expect("endpoint");
        let options = SocketOptions {
            fastopen: Some(256),
            ..SocketOptions::default()
        };
        let on = bind(&ep, 10, 1, false, &options).expect("bind");
        assert_eq!(crate::sys::tcp_fastopen(&on[0]).expect("TCP_FASTOPEN"), 256);
        let off = bind(&ep, 10, 1, false, &SocketOptions::default()).expect("bind");
        assert_eq!(crate::sys::tcp_fastopen(&off[0]).expect("TCP_FASTOPEN"), 0);
    }
}
