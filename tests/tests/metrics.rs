//! `--metrics`: a real scrape (curl, and the Prometheus text-format parser of the
//! `prometheus_client` Python package) shows counters that match the traffic the test made.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::Pki;
use stud_tests::process::{send_signal, Stud};
use stud_tests::{require_tool, stud_bin, TIMEOUT};

/// Starts stud with `--metrics` on a free loopback port; returns it and the metrics address.
fn start(pki: &Pki, extra: &[&str]) -> (Stud, SocketAddr) {
    start_with_metrics_on(pki, "--metrics=127.0.0.1,0", extra)
}

/// As [`start`], with the metrics served where `metrics` (the whole flag) says.
fn start_with_metrics_on(pki: &Pki, metrics: &str, extra: &[&str]) -> (Stud, SocketAddr) {
    let mut args = vec![metrics];
    args.extend_from_slice(extra);
    let stud = Stud::serve(&stud_bin!(), &pki.site_pem, echo_backend(), &args);
    let line = stud
        .wait_line(|l| l.contains("serving metrics on http://"), TIMEOUT)
        .unwrap_or_else(|| panic!("no metrics line:\n{}", stud.output()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (stud, addr)
}

/// The exposition text, fetched with curl.
fn scrape(addr: SocketAddr) -> String {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers and a body");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// Every sample, as `name{label="value",...}` (labels sorted) → value, read by the Prometheus
/// Python client's parser; `None` (after a line saying so) when that package is missing and
/// STUD_TEST_STRICT is not set.
fn parsed(text: &str) -> Option<HashMap<String, f64>> {
    const PARSER: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, s.value) if labels else "%s %r" % (s.name, s.value))
"#;
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .expect("python3 runs");
    if !stud_tests::optional("the `prometheus_client` Python package", probe.success()) {
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed the parser");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// The value of one series in the raw text (the series exactly as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

/// Scrapes until `series` reaches `want` (a connection's close is counted a moment after the
/// client sees it end).
fn scrape_until(addr: SocketAddr, series: &str, want: f64) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = scrape(addr);
        if value(&text, series) >= want || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_scrape_counts_the_traffic_the_test_made() {
    let pki = Pki::new();
    let (stud, metrics) = start(&pki, &["-n", "2"]);
    let config = net::client_config(&pki.ca_der);
    for i in 0..3 {
        let mut tls = connect(stud.addr, &config).expect("handshake");
        let payload = vec![b'x'; 100 * (i + 1)];
        tls.write_all(&payload).expect("write");
        assert_eq!(
            net::read_exact(&mut tls, payload.len()).expect("echo"),
            payload
        );
        net::half_close(&mut tls).expect("close_notify");
        let _ = net::read_to_end(&mut tls);
    }
    // One client that never speaks TLS.
    let mut junk = TcpStream::connect(stud.addr).expect("connect");
    junk.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let _ = junk.read_to_end(&mut Vec::new());

    scrape_until(
        metrics,
        "stud_connections_closed_total{reason=\"handshake_failed\"}",
        1.0,
    );
    let text = scrape_until(
        metrics,
        "stud_connections_closed_total{reason=\"completed\"}",
        3.0,
    );
    assert_eq!(value(&text, "stud_connections_accepted_total"), 4.0);
    assert_eq!(value(&text, "stud_connections_open"), 0.0);
    assert_eq!(
        value(&text, "stud_connections_closed_total{reason=\"completed\"}"),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "stud_connections_closed_total{reason=\"handshake_failed\"}"
        ),
        1.0
    );
    assert_eq!(value(&text, "stud_handshake_duration_seconds_count"), 3.0);
    // 100 + 200 + 300 bytes each way through the backend.
    assert_eq!(
        value(&text, "stud_bytes_total{direction=\"to_backend\"}"),
        600.0
    );
    assert_eq!(
        value(&text, "stud_bytes_total{direction=\"from_backend\"}"),
        600.0
    );
    assert_eq!(value(&text, "stud_workers"), 2.0);
    let pem = pki.site_pem.display().to_string();
    let expiry = value(
        &text,
        &format!("stud_certificate_expiry_seconds{{file=\"{pem}\"}}"),
    );
    assert!(expiry > 86_400.0, "{expiry}");

    if let Some(samples) = parsed(&text) {
        let handshakes: f64 = samples
            .iter()
            .filter(|(k, _)| k.starts_with("stud_handshakes_total{"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(handshakes, 3.0, "{samples:?}");
        assert_eq!(
            samples.get("stud_handshake_duration_seconds_bucket{le=\"+Inf\"}"),
            Some(&3.0)
        );
        assert_eq!(
            samples.get("stud_connections_closed_total{reason=\"completed\"}"),
            Some(&3.0)
        );
    }
}

#[test]
fn a_killed_worker_keeps_its_counts_and_its_connections_count_as_lost() {
    let pki = Pki::new();
    let (stud, metrics) = start(&pki, &[]);
    let config = net::client_config(&pki.ca_der);
    let mut held = connect(stud.addr, &config).expect("handshake");
    held.write_all(b"hold").expect("write");
    assert_eq!(net::read_exact(&mut held, 4).expect("echo"), b"hold");
    let text = scrape(metrics);
    assert_eq!(value(&text, "stud_connections_open"), 1.0);

    let worker = stud.worker_pids(1)[0];
    assert!(send_signal(worker, libc::SIGKILL));
    let text = scrape_until(metrics, "stud_worker_restarts_total", 1.0);
    assert_eq!(value(&text, "stud_worker_restarts_total"), 1.0);
    assert_eq!(value(&text, "stud_connections_accepted_total"), 1.0);
    assert_eq!(value(&text, "stud_connections_open"), 0.0);
    assert_eq!(
        value(
            &text,
            "stud_connections_closed_total{reason=\"worker_died\"}"
        ),
        1.0
    );
    // The replacement serves and counts on.
    let mut tls = connect(stud.addr, &config).expect("handshake after the restart");
    tls.write_all(b"again").expect("write");
    assert_eq!(net::read_exact(&mut tls, 5).expect("echo"), b"again");
    let text = scrape(metrics);
    assert_eq!(value(&text, "stud_connections_accepted_total"), 2.0);
}

#[test]
fn a_silent_scraper_delays_neither_other_scrapes_nor_reloads() {
    let pki = Pki::new();
    let (stud, metrics) = start(&pki, &[]);
    let _silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(metrics).expect("connect"))
        .collect();
    let started = Instant::now();
    let text = scrape(metrics);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(value(&text, "stud_reloads_total{result=\"ok\"}"), 0.0);
    assert!(send_signal(stud.pid(), libc::SIGHUP));
    let text = scrape_until(metrics, "stud_reloads_total{result=\"ok\"}", 1.0);
    assert_eq!(value(&text, "stud_reloads_total{result=\"ok\"}"), 1.0);
    // Anything but GET /metrics is refused politely.
    let mut other = TcpStream::connect(metrics).expect("connect");
    other
        .write_all(b"POST /metrics HTTP/1.0\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    let _ = other.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
}

#[test]
fn running_out_of_descriptors_shows_as_accept_pauses() {
    if !stud_tests::optional_tool("prlimit") {
        return;
    }
    const LIMIT: usize = 48;
    let pki = Pki::new();
    let bin = stud_bin!();
    let backend = echo_backend().to_string();
    let limit = format!("--nofile={LIMIT}:{LIMIT}");
    // prlimit execs stud, so the limit is the whole tree's.
    let stud = Stud::start(
        std::path::Path::new("prlimit"),
        &[
            &limit,
            "--",
            bin.to_str().expect("UTF-8 path"),
            "-B",
            "256",
            "--metrics=127.0.0.1,0",
            "-f",
            "127.0.0.1,0",
            "-b",
            &backend,
            pki.site_pem.to_str().expect("UTF-8 path"),
        ],
    );
    let line = stud
        .wait_line(|l| l.contains("serving metrics on http://"), TIMEOUT)
        .expect("metrics line");
    let metrics: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("metrics address");
    let _held: Vec<TcpStream> = (0..LIMIT + 20)
        .map(|_| TcpStream::connect(stud.addr).expect("the kernel queues the connection"))
        .collect();
    stud.wait_line(|l| l.contains("accept failed"), TIMEOUT)
        .unwrap_or_else(|| panic!("the worker never ran out:\n{}", stud.output()));
    let text = scrape_until(metrics, "stud_accept_pauses_total", 1.0);
    assert!(value(&text, "stud_accept_pauses_total") >= 1.0, "{text}");
}

#[test]
fn metrics_are_served_over_ipv6_too() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        stud_tests::skipped("no IPv6 loopback");
        return;
    }
    let pki = Pki::new();
    let (stud, metrics) = start_with_metrics_on(&pki, "--metrics=[::1],0", &[]);
    assert!(metrics.is_ipv6(), "{metrics}");
    let config = net::client_config(&pki.ca_der);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    tls.write_all(b"v6").expect("write");
    assert_eq!(net::read_exact(&mut tls, 2).expect("echo"), b"v6");
    let text = scrape(metrics);
    assert_eq!(value(&text, "stud_connections_accepted_total"), 1.0);
}
