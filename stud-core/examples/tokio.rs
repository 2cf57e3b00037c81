//! A complete TLS terminator on tokio: a task per client drives a `stud_core::Conn` with
//! readiness-based I/O (`ready`, `try_read`, `try_write`); TLS on LISTEN, plaintext to BACKEND.
//!
//! ```text
//! cargo run --example tokio -- 127.0.0.1:8443 127.0.0.1:8000 site.pem
//! curl -k https://127.0.0.1:8443/
//! ```

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use stud_core::{Action, Config, Conn, Event, Instant};
use tokio::io::{Interest, Ready};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend), Some(pem)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: tokio LISTEN BACKEND PEM".into());
    };
    let config = Arc::new(Config::builder().pem_file(pem).build()?);
    let listener = TcpListener::bind(listen.parse::<SocketAddr>()?).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    serve(listener, backend.parse()?, config).await;
    Ok(())
}

/// Accepts clients for ever, each in its own task relaying to `backend`.
pub(crate) async fn serve(listener: TcpListener, backend: SocketAddr, config: Arc<Config>) {
    // The engine's clock: microseconds since this base, the same for every connection.
    let base = StdInstant::now();
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: pause rather than spin.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let Ok(local) = client.local_addr() else {
            continue;
        };
        match Conn::new(config.clone(), now(base), peer, local) {
            Ok(conn) => drop(tokio::spawn(relay(conn, client, backend, base))),
            Err(e) => eprintln!("{peer}: {e}"),
        }
    }
}

fn now(base: StdInstant) -> Instant {
    Instant::from_std(base, StdInstant::now())
}

/// Runs one connection to its close by the contract on `Conn`: drain events and actions, write,
/// then wait for the readiness `interest()` asks for or the deadline `poll_timeout()` names.
async fn relay(mut conn: Conn, client: TcpStream, backend_addr: SocketAddr, base: StdInstant) {
    let peer = conn.peer_addr();
    let mut backend: Option<TcpStream> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(event) = conn.poll_event() {
            if let Event::HandshakeComplete(info) = event {
                eprintln!("{peer}: {} sni={:?}", info.cipher_suite, info.sni);
            }
        }
        while let Some(action) = conn.poll_action() {
            match action {
                Action::ConnectBackend => {
                    // Bounded by the engine's own connect deadline.
                    let connect = TcpStream::connect(backend_addr);
                    let outcome = match conn.poll_timeout().and_then(|d| d.to_std(base)) {
                        Some(d) => tokio::time::timeout_at(d.into(), connect).await,
                        None => Ok(connect.await),
                    };
                    match outcome {
                        Ok(Ok(stream)) => {
                            let _ = stream.set_nodelay(true);
                            backend = Some(stream);
                            conn.handle_backend_connected(now(base));
                        }
                        Ok(Err(_)) => conn.handle_backend_connect_failed(now(base)),
                        Err(_elapsed) => conn.handle_timeout(now(base)),
                    }
                }
                Action::ShutdownBackendWrite => shut_write(backend.as_ref()),
                Action::ShutdownClientWrite => shut_write(Some(&client)),
                Action::Close(reason) => {
                    eprintln!("{peer}: closed: {reason}");
                    return; // dropping both streams closes them
                }
                _ => {} // actions of settings this terminator does not use
            }
        }
        // Bytes out, straight into the sockets; a write can make a shutdown due: drain again.
        let t = now(base);
        let mut wrote = false;
        match conn.write_client(t, &mut TryWrite(&client)) {
            Ok(n) => wrote |= n > 0,
            Err(_) => conn.handle_client_reset(t),
        }
        if let Some(b) = &backend {
            match conn.write_backend(t, &mut TryWrite(b)) {
                Ok(n) => wrote |= n > 0,
                Err(_) => conn.handle_backend_reset(t),
            }
        }
        if wrote {
            continue;
        }
        // Wait for what the engine wants, or its next deadline.
        let want = conn.interest();
        let deadline = conn.poll_timeout().and_then(|d| d.to_std(base));
        tokio::select! {
            ready = ready(Some(&client), want.client_read, want.client_write) => match ready {
                Ok(_) => read_into(&mut conn, &client, &mut buf, base, true),
                Err(_) => conn.handle_client_reset(now(base)),
            },
            ready = ready(backend.as_ref(), want.backend_read, want.backend_write) => match ready {
                Ok(_) => {
                    if let Some(b) = &backend {
                        read_into(&mut conn, b, &mut buf, base, false);
                    }
                }
                Err(_) => conn.handle_backend_reset(now(base)),
            },
            () = or_never(deadline.map(|d| tokio::time::sleep_until(d.into()))) => {
                conn.handle_timeout(now(base));
            }
        }
    }
}

/// Reads at most what the engine is sure to take, and hands it over (or the end of stream).
fn read_into(conn: &mut Conn, from: &TcpStream, buf: &mut [u8], base: StdInstant, client: bool) {
    let cap = if client {
        conn.client_read_capacity()
    } else {
        conn.backend_read_capacity()
    };
    if cap == 0 {
        return;
    }
    let t = now(base);
    let want = cap.min(buf.len());
    match (from.try_read(&mut buf[..want]), client) {
        (Ok(0), true) => conn.handle_client_eof(t),
        (Ok(0), false) => conn.handle_backend_eof(t),
        // The read buffer is ours again: the engine may decrypt in it.
        (Ok(n), true) => drop(conn.handle_client_data_mut(t, &mut buf[..n])),
        (Ok(n), false) => drop(conn.handle_backend_data_mut(t, &mut buf[..n])),
        (Err(e), _) if e.kind() == io::ErrorKind::WouldBlock => {}
        (Err(_), true) => conn.handle_client_reset(t),
        (Err(_), false) => conn.handle_backend_reset(t),
    }
}

/// Waits for the readiness asked for; never completes when nothing is asked.
async fn ready(stream: Option<&TcpStream>, read: bool, write: bool) -> io::Result<Ready> {
    match (stream, read, write) {
        (Some(s), true, true) => s.ready(Interest::READABLE | Interest::WRITABLE).await,
        (Some(s), true, false) => s.ready(Interest::READABLE).await,
        (Some(s), false, true) => s.ready(Interest::WRITABLE).await,
        _ => std::future::pending().await,
    }
}

/// Awaits `f`, or never completes when there is none (no deadline: nothing to wait for).
async fn or_never<F: Future>(f: Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// `shutdown(SHUT_WR)`: our side is done sending; the peer may still talk.
fn shut_write(stream: Option<&TcpStream>) {
    if let Some(s) = stream {
        let _ = socket2::SockRef::from(s).shutdown(Shutdown::Write);
    }
}

/// A nonblocking socket as `io::Write` for `Conn::write_*`: `WouldBlock` when it is full.
struct TryWrite<'a>(&'a TcpStream);

impl io::Write for TryWrite<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.try_write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
