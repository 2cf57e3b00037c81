//! `--backend-source`: backend connections leave from each given local address in turn (so one
//! backend address is not limited to one source address's ports), and an address this host
//! does not have stops the start with one line.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::mpsc;
use std::sync::Mutex;

use stud_tests::net::{self, backend, connect};
use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{stud_bin, TIMEOUT};

#[test]
fn backend_connections_leave_from_each_source_address_in_turn() {
    let pki = Pki::new();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let addr = backend(move |conn| {
        if let (Ok(peer), Ok(tx)) = (conn.peer_addr(), tx.lock()) {
            let _ = tx.send(peer.ip());
        }
        net::echo(conn);
    });
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        addr,
        &["--backend-source=127.0.0.2,127.0.0.3"],
    );
    let config = net::client_config(&pki.ca_der);
    let mut seen: Vec<IpAddr> = Vec::new();
    for _ in 0..4 {
        let mut tls = connect(stud.addr, &config).expect("handshake");
        tls.write_all(b"x").expect("write");
        assert_eq!(net::read_exact(&mut tls, 1).expect("echo"), b"x");
        seen.push(rx.recv_timeout(TIMEOUT).expect("the backend saw it"));
    }
    let want: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn a_source_address_this_host_lacks_stops_the_start() {
    let pki = Pki::new();
    let mut stud = Stud::spawn(
        &stud_bin!(),
        &[
            "-f",
            "127.0.0.1,0",
            "-b",
            "127.0.0.1,9",
            "--backend-source=192.0.2.1",
            pki.site_pem.to_str().expect("UTF-8 path"),
        ],
    );
    let status = stud.wait_exit(TIMEOUT).expect("stud exits");
    assert_eq!(status.code(), Some(1), "{}", stud.output());
    // The error names the address, on the one line stud wrote (read to its end).
    let line = stud
        .wait_line(|l| l.contains("192.0.2.1"), TIMEOUT)
        .unwrap_or_else(|| panic!("no line names the address: {}", stud.output()));
    assert!(line.starts_with("stud: error: "), "{line}");
    assert_eq!(stud.output().lines().count(), 1, "{}", stud.output());
}
