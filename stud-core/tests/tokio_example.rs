//! The tokio example's terminator, end to end on real sockets: curl and a rustls client get a
//! backend's reply through it. The example file itself is compiled in here (its `serve`), so
//! the test runs exactly the code the example shows.

mod common;

#[path = "../examples/tokio.rs"]
#[expect(dead_code, reason = "the example's `main`, unused here")]
mod example;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use stud_core::{ClientAddressMode, Config};

const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

/// A backend that answers each connection's request with `REPLY`, then closes; what it
/// received comes back on the channel.
fn backend() -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(REPLY);
            let _ = tx.send(got);
        }
    });
    (addr, rx)
}

/// The example's terminator on its own runtime thread, in front of `backend`.
fn terminator(config: Config, backend: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind terminator");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("terminator address");
    let config = Arc::new(config);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            example::serve(listener, backend, config).await;
        });
    });
    addr
}

#[test]
fn curl_gets_the_backends_reply_through_the_example() {
    let (backend, received) = backend();
    let stud = terminator(common::builder().build().expect("config"), backend);
    let out = match Command::new("curl")
        .args(["-k", "-s", "-S", "--max-time", "20"])
        .arg(format!("https://localhost:{}/", stud.port()))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", stud.port()))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: curl is not installed");
            return;
        }
        Err(e) => panic!("running curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hello");
    let request = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend got a request");
    assert!(request.starts_with(b"GET / HTTP/1.1\r\n"), "{request:?}");
}

#[test]
fn a_rustls_client_gets_the_header_the_reply_and_close_notify() {
    let (backend, received) = backend();
    let config = common::builder()
        .client_address(ClientAddressMode::ProxyV1)
        .build()
        .expect("config");
    let stud = terminator(config, backend);
    let (_, _, der) = common::default_cert();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rustls::ClientConnection::new(common::client_config(der), name).expect("client");
    let tcp = TcpStream::connect(stud).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let client_port = tcp.local_addr().expect("client address").port();
    let mut stream = rustls::StreamOwned::new(tls, tcp);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut reply = Vec::new();
    // Ok only if the stream ended with close_notify: a bare FIN is an error here.
    stream.read_to_end(&mut reply).expect("reply ended cleanly");
    assert_eq!(reply, REPLY);
    let request = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend got a request");
    let header = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {}\r\n",
        stud.port()
    );
    assert!(
        request.starts_with(header.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&request)
    );
    assert!(request[header.len()..].starts_with(b"GET / HTTP/1.1\r\n"));
}
