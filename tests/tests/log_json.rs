//! `--log-format=json`: every line is one JSON object a standard parser reads, and a
//! `--log-conns` line carries the connection's TLS details as fields.

use std::io::Write as _;
use std::process::{Command, Stdio};

use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::Pki;
use stud_tests::process::Stud;
use stud_tests::{require_tool, stud_bin, TIMEOUT};

/// The lines, as Python's `json` module reads them back: `key=value` per member, one line per
/// object; panics if any line is not a JSON object.
fn parse(lines: &[String]) -> Vec<String> {
    require_tool("python3");
    let script = r#"
import json, sys
for line in sys.stdin:
    obj = json.loads(line)
    assert isinstance(obj, dict), line
    print(" ".join("%s=%s" % (k, json.dumps(v)) for k, v in obj.items()))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.join("\n").as_bytes())
        .expect("feed python");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "not JSON lines: {}\n{lines:#?}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn json_lines_parse_and_carry_the_connections_details() {
    let pki = Pki::new();
    let stud = Stud::serve(
        &stud_bin!(),
        &pki.site_pem,
        echo_backend(),
        &["--log-conns", "--log-format=json", "--alpn-protos=http/1.1"],
    );
    let mut config = (*net::client_config(&pki.ca_der)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = std::sync::Arc::new(config);
    let mut tls = connect(stud.addr, &config).expect("handshake");
    let client = tls.sock.local_addr().expect("client address");
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
    net::half_close(&mut tls).expect("close_notify");
    let _ = net::read_to_end(&mut tls);
    stud.wait_line(|l| l.contains("connection_closed"), TIMEOUT)
        .unwrap_or_else(|| panic!("no connection line:\n{}", stud.output()));
    let lines: Vec<String> = stud
        .output()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_string)
        .collect();
    let parsed = parse(&lines);
    assert!(
        parsed
            .iter()
            .any(|l| l.contains("level=\"info\"") && l.contains("message=\"listening on ")),
        "{parsed:#?}"
    );
    let conn = parsed
        .iter()
        .find(|l| l.contains("event=\"connection_closed\""))
        .expect("the connection's object");
    for want in [
        format!("client=\"{client}\""),
        "reason=\"completed\"".to_string(),
        "bytes_to_backend=4".to_string(),
        "bytes_from_backend=4".to_string(),
        "sni=\"localhost\"".to_string(),
        "alpn=\"http/1.1\"".to_string(),
        "resumed=false".to_string(),
        "client_cert_subject=null".to_string(),
    ] {
        assert!(conn.contains(&want), "{want} missing from {conn}");
    }
    assert!(conn.contains("tls_version=\"TLSv1."), "{conn}");
    assert!(conn.contains("time=\"20"), "{conn}");
}
