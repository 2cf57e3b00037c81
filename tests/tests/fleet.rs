//! The fleet of docs/deployment.md: haproxy in TCP mode, with `send-proxy-v2` and health checks,
//! in front of two stud instances (`--accept-proxy --write-proxy-v2`, one shared
//! `--ticket-secret` file), and a backend that records the PROXY v2 header stud writes.
//!
//! Each instance gets a backend of its own here, tagged "a" or "b", only so the test knows which
//! instance served a connection; in the documented layout both point at the same backend.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, HandshakeKind};
use stud_tests::haproxy::Haproxy;
use stud_tests::net::{self, connect, echo};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::Stud;
use stud_tests::{optional_tool, stud_bin, TIMEOUT};

/// What a backend read from the PROXY v2 header of one connection.
#[derive(Debug)]
struct Seen {
    /// Which instance's backend ("a" or "b").
    instance: &'static str,
    /// The client the header names.
    client: SocketAddr,
    /// The address the client connected to, as the header names it.
    destination: SocketAddr,
    /// The SNI the client sent (the authority TLV, type 0x02).
    sni: Option<String>,
}

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Reads one PROXY v2 header (PROXY command, TCP over IPv4 or IPv6) by the specification.
fn read_proxy_v2(conn: &mut TcpStream, instance: &'static str) -> Result<Seen, String> {
    let mut fixed = [0u8; 16];
    conn.read_exact(&mut fixed)
        .map_err(|e| format!("reading the header: {e}"))?;
    if &fixed[..12] != SIGNATURE || fixed[12] != 0x21 {
        return Err(format!("not a PROXY v2 PROXY command: {fixed:02x?}"));
    }
    let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let mut rest = vec![0u8; len];
    conn.read_exact(&mut rest)
        .map_err(|e| format!("reading {len} header bytes: {e}"))?;
    let (client, destination, mut tlvs) = match fixed[13] {
        0x11 if len >= 12 => {
            let ip = |at: usize| {
                IpAddr::from(Ipv4Addr::new(
                    rest[at],
                    rest[at + 1],
                    rest[at + 2],
                    rest[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
                &rest[12..],
            )
        }
        0x21 if len >= 36 => {
            let ip = |at: usize| {
                let octets: [u8; 16] = rest[at..at + 16].try_into().expect("16 octets");
                IpAddr::from(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
                &rest[36..],
            )
        }
        family => return Err(format!("family {family:#04x} with {len} bytes")),
    };
    let mut sni = None;
    while tlvs.len() >= 3 {
        let kind = tlvs[0];
        let n = usize::from(u16::from_be_bytes([tlvs[1], tlvs[2]]));
        let value = tlvs
            .get(3..3 + n)
            .ok_or_else(|| format!("TLV {kind:#04x} overruns the header"))?;
        if kind == 0x02 {
            sni = Some(String::from_utf8_lossy(value).into_owned());
        }
        tlvs = &tlvs[3 + n..];
    }
    Ok(Seen {
        instance,
        client,
        destination,
        sni,
    })
}

/// A backend that reports each connection's PROXY v2 header, then echoes.
fn recording_backend(instance: &'static str, tx: Sender<Result<Seen, String>>) -> SocketAddr {
    let tx = Mutex::new(tx);
    net::backend(move |mut conn| {
        let seen = read_proxy_v2(&mut conn, instance);
        let ok = seen.is_ok();
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(seen);
        }
        if ok {
            echo(conn);
        }
    })
}

/// haproxy in front of two stud instances sharing one ticket secret.
struct Fleet {
    pki: Pki,
    /// Instances "a" and "b"; `None` once killed.
    studs: [Option<Stud>; 2],
    haproxy: Haproxy,
    seen: Mutex<Receiver<Result<Seen, String>>>,
    /// The ticket secret file both instances read.
    secret: PathBuf,
    _dir: TempDir,
}

/// The balancer section of docs/deployment.md, with test addresses and quicker checks.
fn haproxy_config(bind: SocketAddr, admin: &Path, a: SocketAddr, b: SocketAddr) -> String {
    format!(
        "global\n  maxconn 200\n  stats socket {admin} mode 600 level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  \
         retries 3\n  option redispatch\n\
         listen tls\n  bind {bind}\n  balance roundrobin\n  \
         default-server send-proxy-v2 check inter 100ms fall 1 rise 1\n  \
         server a {a}\n  server b {b}\n",
        admin = admin.display()
    )
}

impl Fleet {
    fn start() -> Fleet {
        let pki = Pki::new();
        let dir = TempDir::new();
        let secret = dir.write(
            "tickets.key",
            "b25lIHNlY3JldCBmb3IgdGhlIHdob2xlIGZsZWV0LCBhdCBsZWFzdCAzMiBieXRlcw==\n",
        );
        let secret_path = secret.clone();
        let secret = secret.to_str().expect("UTF-8 path");
        let (tx, rx) = mpsc::channel();
        let flags = [
            "--accept-proxy",
            "--write-proxy-v2",
            "--ticket-secret",
            secret,
        ];
        let a = Stud::serve(
            &stud_bin!(),
            &pki.site_pem,
            recording_backend("a", tx.clone()),
            &flags,
        );
        let b = Stud::serve(
            &stud_bin!(),
            &pki.site_pem,
            recording_backend("b", tx),
            &flags,
        );
        let (a_addr, b_addr) = (a.addr, b.addr);
        let haproxy = Haproxy::start_in(|bind, dir| {
            haproxy_config(bind, &Haproxy::admin_socket(dir), a_addr, b_addr)
        });
        haproxy.wait_status("tls", "a", "UP");
        haproxy.wait_status("tls", "b", "UP");
        Fleet {
            pki,
            studs: [Some(a), Some(b)],
            haproxy,
            seen: Mutex::new(rx),
            secret: secret_path,
            _dir: dir,
        }
    }

    fn stud(&self, index: usize) -> &Stud {
        self.studs[index].as_ref().expect("the instance runs")
    }

    /// One client connection through the balancer: handshake, echo, and what the backend saw.
    fn connect(&self, config: &Arc<ClientConfig>) -> io::Result<(SocketAddr, HandshakeKind, Seen)> {
        let mut tls = connect(self.haproxy.addr, config)?;
        let client = tls.sock.local_addr()?;
        tls.write_all(b"ping")?;
        let echoed = net::read_exact(&mut tls, 4)?;
        if echoed != b"ping" {
            return Err(io::Error::other(format!("echo returned {echoed:?}")));
        }
        let kind = tls.conn.handshake_kind().expect("the handshake is done");
        let seen = self
            .seen
            .lock()
            .map_err(|_| io::Error::other("receiver lock poisoned"))?
            .recv_timeout(TIMEOUT)
            .map_err(|e| io::Error::other(format!("no backend saw the connection: {e}")))?
            .map_err(io::Error::other)?;
        Ok((client, kind, seen))
    }
}

#[test]
fn the_backend_sees_each_real_client_and_its_sni_through_balancer_and_stud() {
    if !optional_tool("haproxy") {
        return;
    }
    let fleet = Fleet::start();
    let mut instances = Vec::new();
    for i in 0..6 {
        let config = net::client_config(&fleet.pki.ca_der);
        let (client, _, seen) = fleet
            .connect(&config)
            .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", fleet.haproxy.log()));
        assert_eq!(seen.client, client, "connection {i}: {seen:?}");
        assert_eq!(
            seen.destination, fleet.haproxy.addr,
            "connection {i}: {seen:?}"
        );
        assert_eq!(
            seen.sni.as_deref(),
            Some("localhost"),
            "connection {i}: {seen:?}"
        );
        instances.push(seen.instance);
    }
    assert!(
        instances.contains(&"a") && instances.contains(&"b"),
        "the balancer used both instances: {instances:?}"
    );
    // haproxy's checks connect and close: a failed handshake each, with its reason, no backend.
    let a = fleet.stud(0);
    assert!(
        a.output().contains("failed: client_closed_in_handshake"),
        "{}",
        a.output()
    );
}

#[test]
fn a_session_made_on_one_instance_resumes_on_the_other() {
    if !optional_tool("haproxy") {
        return;
    }
    let fleet = Fleet::start();
    // One client configuration: one session cache, as a browser has.
    let config = net::client_config(&fleet.pki.ca_der);
    let (_, kind, first) = fleet.connect(&config).expect("first connection");
    assert_eq!(kind, HandshakeKind::Full);
    // Round robin sends a later connection to the other instance; until then every ticket the
    // client holds was issued by the first.
    assert_eq!(
        kind_on_the_other_instance(&fleet, &config, first.instance),
        HandshakeKind::Resumed,
        "the other instance did not resume a session made on instance {}",
        first.instance
    );
}

/// Connects with `config` until an instance other than `first` serves; returns how that
/// handshake went.
fn kind_on_the_other_instance(
    fleet: &Fleet,
    config: &Arc<ClientConfig>,
    first: &str,
) -> HandshakeKind {
    for _ in 0..8 {
        let (_, kind, seen) = fleet.connect(config).expect("connection");
        if seen.instance != first {
            return kind;
        }
    }
    panic!("the balancer never sent a connection to the instance other than {first}");
}

#[test]
fn a_new_ticket_secret_on_every_instance_costs_one_full_handshake_then_resumes_across() {
    if !optional_tool("haproxy") {
        return;
    }
    let fleet = Fleet::start();
    let config = net::client_config(&fleet.pki.ca_der);
    let (_, kind, first) = fleet.connect(&config).expect("first connection");
    assert_eq!(kind, HandshakeKind::Full);
    assert_eq!(
        kind_on_the_other_instance(&fleet, &config, first.instance),
        HandshakeKind::Resumed
    );

    // A secret too short to use: the reload fails and the instance keeps the secret it has.
    std::fs::write(&fleet.secret, "too short\n").expect("write a short secret");
    let a = fleet.stud(0);
    a.signal(libc::SIGHUP);
    a.wait_line(|l| l.contains("reload failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no failed reload logged:\n{}", a.output()));
    assert_eq!(
        kind_on_the_other_instance(&fleet, &config, "b"),
        HandshakeKind::Resumed,
        "instance a lost its secret in a failed reload"
    );

    // The new secret goes to every host first, then each instance reloads.
    std::fs::write(
        &fleet.secret,
        "YSBuZXcgc2VjcmV0IGZvciB0aGUgZmxlZXQsIGFmdGVyIHRoZSByb3RhdGlvbg==\n",
    )
    .expect("write the new secret");
    for index in 0..2 {
        let stud = fleet.stud(index);
        stud.signal(libc::SIGHUP);
        // The old worker has stopped accepting once it has drained (nothing is held open).
        stud.wait_line(|l| l.contains("finished draining"), TIMEOUT)
            .unwrap_or_else(|| panic!("instance {index} did not reload:\n{}", stud.output()));
    }

    // Tickets sealed under the old secret no longer open: one full handshake, not a failure.
    let (_, kind, first) = fleet
        .connect(&config)
        .expect("first connection after the rotation");
    assert_eq!(kind, HandshakeKind::Full, "an old ticket still opened");
    assert_eq!(
        kind_on_the_other_instance(&fleet, &config, first.instance),
        HandshakeKind::Resumed,
        "a ticket under the new secret does not resume across instances"
    );
}

#[test]
fn killing_one_instance_loses_no_connection_once_the_balancer_marks_it_down() {
    if !optional_tool("haproxy") {
        return;
    }
    let mut fleet = Fleet::start();
    drop(fleet.studs[0].take());
    fleet.haproxy.wait_status("tls", "a", "DOWN");
    for i in 0..20 {
        let config = net::client_config(&fleet.pki.ca_der);
        let (client, _, seen) = fleet
            .connect(&config)
            .unwrap_or_else(|e| panic!("connection {i} after the kill: {e}"));
        assert_eq!(seen.instance, "b", "connection {i}: {seen:?}");
        assert_eq!(seen.client, client);
    }
}

#[test]
fn sighup_on_one_instance_loses_no_connection_while_the_other_serves() {
    if !optional_tool("haproxy") {
        return;
    }
    let fleet = Fleet::start();
    let config = net::client_config(&fleet.pki.ca_der);
    // A connection open on instance "a" across its reload.
    let mut held = None;
    for _ in 0..4 {
        let mut tls = connect(fleet.haproxy.addr, &config).expect("handshake");
        tls.write_all(b"held").expect("write");
        assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"held");
        let seen = fleet
            .seen
            .lock()
            .expect("receiver lock")
            .recv_timeout(TIMEOUT)
            .expect("the backend saw it")
            .expect("a PROXY v2 header");
        if seen.instance == "a" {
            held = Some(tls);
            break;
        }
    }
    let mut held = held.expect("round robin gave instance a a connection");

    let stop = AtomicBool::new(false);
    let made = AtomicUsize::new(0);
    let outcomes = std::thread::scope(|scope| {
        let clients = scope.spawn(|| {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let fresh = net::client_config(&fleet.pki.ca_der);
                outcomes.push(fleet.connect(&fresh).map(|(_, _, seen)| seen.instance));
                made.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
            outcomes
        });
        // Some connections before the reload, then SIGHUP, then as many again while the new
        // worker starts and the old one drains (counted, so a slow machine makes no difference).
        let wait_for = |count: usize| {
            let deadline = Instant::now() + TIMEOUT;
            while made.load(Ordering::SeqCst) < count && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_for(5);
        let a = fleet.stud(0);
        a.signal(libc::SIGHUP);
        let reloaded = a.wait_line(|l| l.contains("reloaded the configuration"), TIMEOUT);
        wait_for(made.load(Ordering::SeqCst) + 10);
        stop.store(true, Ordering::SeqCst);
        let outcomes = clients.join().expect("the client thread ran");
        assert!(reloaded.is_some(), "no reload:\n{}", a.output());
        outcomes
    });
    let failures: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "connections lost during the reload: {failures:?}"
    );
    assert!(outcomes.len() >= 15, "only {} connections", outcomes.len());

    // The connection held across the reload still works, and the reloaded instance serves again.
    held.write_all(b"more").expect("write after the reload");
    assert_eq!(net::read_exact(&mut held, 4).expect("echo"), b"more");
    let mut after = Vec::new();
    for _ in 0..4 {
        let (_, _, seen) = fleet.connect(&config).expect("connection after the reload");
        after.push(seen.instance);
    }
    assert!(
        after.contains(&"a"),
        "instance a serves after its reload: {after:?}"
    );
}
