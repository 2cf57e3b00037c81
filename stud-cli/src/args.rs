//! The command line: stud's original flags, the ones stud and hitch added later, and a few of
//! our own, parsed into [`Args`] with one clear error per mistake.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use stud_core::{ClientAddressMode, TlsVersion};

/// What the operator asked for, before anything is loaded or bound.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// `--ssl` was given (mapped onto TLS 1.2 + 1.3 with a warning).
    pub(crate) ssl: bool,
    /// The protocol versions to offer (`--tls-protos`; TLS 1.2 and 1.3 by default).
    pub(crate) versions: Vec<TlsVersion>,
    pub(crate) ciphers: Option<String>,
    pub(crate) backend: Endpoint,
    /// Every `-f`, in order (at least one; `*,8443` when none is given).
    pub(crate) frontends: Vec<Endpoint>,
    pub(crate) workers: usize,
    pub(crate) client_address: ClientAddressMode,
    /// Every connection starts with a load balancer's PROXY header (`--accept-proxy`).
    pub(crate) accept_proxy: bool,
    /// Refuse server names no certificate covers (`--sni-nomatch-abort`).
    pub(crate) sni_strict: bool,
    /// ALPN protocols to agree on, most preferred first (`--alpn-protos`); empty: no ALPN.
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) backlog: i32,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) chroot: Option<PathBuf>,
    pub(crate) user: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) quiet: bool,
    /// One log line per finished connection (`--log-conns`).
    pub(crate) log_conns: bool,
    pub(crate) syslog: bool,
    pub(crate) syslog_facility: String,
    /// Log lines are appended to this file (`-l`), reopened on SIGHUP and SIGUSR1.
    pub(crate) log_filename: Option<PathBuf>,
    /// Where to serve Prometheus metrics (`--metrics`).
    pub(crate) metrics: Option<Endpoint>,
    /// Log lines as JSON objects (`--log-format=json`).
    pub(crate) log_json: bool,
    pub(crate) daemon: bool,
    pub(crate) pidfile: Option<PathBuf>,
    pub(crate) test_only: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) backend_connect_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// How long in-flight connections may finish after SIGTERM.
    pub(crate) drain_timeout: Duration,
    /// Each worker stops accepting while it holds this many connections (`--max-conns`).
    pub(crate) max_conns: Option<usize>,
    /// The parent kills and replaces a worker whose loop is silent this long (None = never).
    pub(crate) worker_timeout: Option<Duration>,
    /// Session-ticket master secret shared by every host that should resume each other's sessions.
    pub(crate) ticket_secret: Option<PathBuf>,
    /// A secret made at start when no file is given (not a flag).
    pub(crate) ticket_secret_bytes: Option<Vec<u8>>,
    pub(crate) reuseport: bool,
    pub(crate) self_signed: bool,
    pub(crate) pems: Vec<PathBuf>,
}

/// What `main` should do after parsing.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print the help text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Run (or, with `-t`, check) the configuration.
    Run(Box<Args>),
}

/// A `HOST,PORT` as written: `*` for every address, or a literal address or hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `None` for `*`.
    pub(crate) host: Option<String>,
    pub(crate) port: u16,
}

impl Endpoint {
    /// Every address the host stands for, in resolver order. `*` gives `[::]` then `0.0.0.0`.
    pub(crate) fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        let Some(host) = &self.host else {
            return Ok(vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), self.port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.port),
            ]);
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = (host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve host '{host}': {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("host '{host}' has no address"));
        }
        Ok(addrs)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            None => write!(f, "*,{}", self.port),
            Some(h) => write!(f, "{h},{}", self.port),
        }
    }
}

/// Parses `HOST,PORT`, `[HOST]:PORT` or `HOST:PORT` (`HOST` may be `*`).
pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("invalid address '{text}': {why} (expected HOST,PORT)");
    let (host, port) = if let Some((h, p)) = text.rsplit_once(',') {
        (h, p)
    } else if let Some(rest) = text.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| bad("missing ']:' after an IPv6 address"))?;
        (h, p)
    } else {
        match text.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, p),
            Some(_) => return Err(bad("write an IPv6 address as [ADDR]:PORT or ADDR,PORT")),
            None => return Err(bad("no port")),
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    if host.contains(char::is_whitespace) {
        return Err(bad("spaces in host"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
    Ok(Endpoint {
        host: (host != "*").then(|| host.to_string()),
        port,
    })
}

fn parse_secs(what: &str, text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|s| *s <= 365 * 24 * 3600)
        .ok_or_else(|| format!("invalid {what} '{text}': expected a number of seconds"))
}

fn parse_workers(text: &str) -> Result<usize, String> {
    if text == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid worker count '{text}': expected 1 to 1024 or 'auto'"
        )),
    }
}

/// pico-args takes one name or a short/long pair.
fn keys_of(keys: &'static [&'static str]) -> pico_args::Keys {
    match keys {
        [short, long] => [*short, *long].into(),
        [one, ..] => (*one).into(),
        [] => "".into(),
    }
}

/// The value of an option given at most once, through `parse`. A repeated option is an error:
/// which of two values was meant is a guess we decline to make.
fn last<T>(
    args: &mut pico_args::Arguments,
    keys: &'static [&'static str],
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let mut values = every(args, keys, parse)?;
    if values.len() > 1 {
        return Err(format!("option {} given more than once", keys.join("/")));
    }
    Ok(values.pop())
}

/// Every value of an option that may be repeated, in order, through `parse`.
fn every<T>(
    args: &mut pico_args::Arguments,
    keys: &'static [&'static str],
    parse: fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let name = keys.join("/");
    let values: Vec<String> = args.values_from_str(keys_of(keys)).map_err(|e| match e {
        pico_args::Error::OptionWithoutAValue(_) => format!("option {name} needs a value"),
        other => format!("option {name}: {other}"),
    })?;
    values.iter().map(|v| parse(v)).collect()
}

fn count(args: &mut pico_args::Arguments, keys: &'static [&'static str]) -> bool {
    let mut seen = false;
    while args.contains(keys_of(keys)) {
        seen = true;
    }
    seen
}

/// `TLSv1.2,TLSv1.3` (or space-separated, as hitch writes it) → the versions to offer.
fn parse_versions(s: &str) -> Result<Vec<TlsVersion>, String> {
    let mut versions = Vec::new();
    for name in s.split([',', ' ']).filter(|n| !n.is_empty()) {
        let v = match name {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            "SSLv3" | "TLSv1" | "TLSv1.0" | "TLSv1.1" => {
                return Err(format!(
                    "--tls-protos: {name} is not offered (broken or deprecated); use TLSv1.2 and/or TLSv1.3"
                ))
            }
            other => {
                return Err(format!(
                    "--tls-protos: unknown protocol '{other}' (expected TLSv1.2 and/or TLSv1.3)"
                ))
            }
        };
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    if versions.is_empty() {
        return Err("--tls-protos: no protocol named".into());
    }
    Ok(versions)
}

/// `h2,http/1.1` → the ALPN protocol names, in order. Each is 1 to 255 bytes (RFC 7301).
fn parse_alpn(s: &str) -> Result<Vec<Vec<u8>>, String> {
    s.split(',')
        .map(|name| {
            if name.is_empty() || name.len() > 255 {
                Err(format!(
                    "invalid ALPN protocol list '{s}': each name must be 1 to 255 bytes"
                ))
            } else {
                Ok(name.as_bytes().to_vec())
            }
        })
        .collect()
}

/// Parses the arguments after the program name.
pub(crate) fn parse(raw: Vec<OsString>) -> Result<Command, String> {
    let mut args = pico_args::Arguments::from_vec(raw);
    if count(&mut args, &["-h", "--help"]) {
        return Ok(Command::Help);
    }
    if count(&mut args, &["-V", "--version"]) {
        return Ok(Command::Version);
    }
    let tls = count(&mut args, &["--tls"]);
    let ssl = count(&mut args, &["--ssl"]);
    let versions = last(&mut args, &["--tls-protos"], parse_versions)?
        .unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    let write_ip = count(&mut args, &["--write-ip"]);
    // Both spellings are consumed (`|`, not `||`), so neither is left over as unknown.
    let write_proxy =
        count(&mut args, &["--write-proxy"]) | count(&mut args, &["--write-proxy-v1"]);
    let write_proxy_v2 = count(&mut args, &["--write-proxy-v2"]);
    let accept_proxy = count(&mut args, &["--accept-proxy"]);
    let sni_strict = count(&mut args, &["--sni-nomatch-abort"]);
    let chosen: Vec<&str> = [
        (write_ip, "--write-ip"),
        (write_proxy, "--write-proxy"),
        (write_proxy_v2, "--write-proxy-v2"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    if chosen.len() > 1 {
        return Err(format!("{} cannot be used together", chosen.join(" and ")));
    }
    let client_address = if write_ip {
        ClientAddressMode::WriteIp
    } else if write_proxy {
        ClientAddressMode::ProxyV1
    } else if write_proxy_v2 {
        ClientAddressMode::ProxyV2
    } else {
        ClientAddressMode::None
    };
    let ciphers = last(&mut args, &["-c", "--ciphers"], |s| Ok(s.to_string()))?;
    let alpn = last(&mut args, &["--alpn-protos"], parse_alpn)?.unwrap_or_default();
    let backend = last(&mut args, &["-b", "--backend"], parse_endpoint)?.unwrap_or(Endpoint {
        host: Some("127.0.0.1".into()),
        port: 8000,
    });
    if backend.host.is_none() {
        return Err(format!(
            "invalid backend address '{backend}': '*' is only meaningful for -f"
        ));
    }
    if backend.port == 0 {
        return Err(format!(
            "invalid backend address '{backend}': port 0 cannot be connected to"
        ));
    }
    let mut frontends = every(&mut args, &["-f", "--frontend"], parse_endpoint)?;
    if frontends.is_empty() {
        frontends.push(Endpoint {
            host: None,
            port: 8443,
        });
    }
    for (i, f) in frontends.iter().enumerate() {
        // Port 0 asks for any free port, so `-f 127.0.0.1,0` twice means two ports.
        if f.port != 0 && frontends[..i].contains(f) {
            return Err(format!("frontend {f} given more than once"));
        }
    }
    let workers = last(&mut args, &["-n", "--workers"], parse_workers)?.unwrap_or(1);
    let backlog = last(&mut args, &["-B", "--backlog"], |s| {
        match s.parse::<i32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("invalid backlog '{s}': expected a positive number")),
        }
    })?
    .unwrap_or(100);
    let keepalive = last(&mut args, &["-k", "--keepalive"], |s| {
        parse_secs("keepalive", s)
    })?
    .unwrap_or(3600);
    let handshake_timeout = last(&mut args, &["--ssl-handshake-timeout"], |s| {
        parse_secs("handshake timeout", s)
    })?
    .unwrap_or(30);
    let backend_connect_timeout = last(&mut args, &["--backend-connect-timeout"], |s| {
        parse_secs("backend connect timeout", s)
    })?
    .unwrap_or(30);
    let idle_timeout = last(&mut args, &["--idle-timeout"], |s| {
        parse_secs("idle timeout", s)
    })?
    .unwrap_or(0);
    let max_conns = last(&mut args, &["--max-conns"], |s| match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid --max-conns '{s}': expected a number of connections, at least 1"
        )),
    })?;
    let worker_timeout = last(&mut args, &["--worker-timeout"], |s| {
        match parse_secs("worker timeout", s)? {
            // Shorter than a busy wake can take on a loaded machine: a healthy worker could be
            // taken for a stuck one.
            n @ 1..=2 => Err(format!(
                "invalid worker timeout '{n}': use 0 (off) or at least 3 seconds"
            )),
            n => Ok(n),
        }
    })?
    .unwrap_or(30);
    let drain_timeout = last(&mut args, &["--drain-timeout"], |s| {
        parse_secs("drain timeout", s)
    })?
    .unwrap_or(30);
    for (name, secs) in [
        ("--ssl-handshake-timeout", handshake_timeout),
        ("--backend-connect-timeout", backend_connect_timeout),
    ] {
        if secs == 0 {
            return Err(format!("invalid {name} '0': must be at least 1 second"));
        }
    }
    let path = |s: &str| Ok(PathBuf::from(s));
    let text = |s: &str| Ok(s.to_string());
    let chroot = last(&mut args, &["-r", "--chroot"], path)?;
    let user = last(&mut args, &["-u", "--user"], text)?;
    let group = last(&mut args, &["-g", "--group"], text)?;
    let pidfile = last(&mut args, &["-p", "--pidfile"], path)?;
    let ticket_secret = last(&mut args, &["--ticket-secret"], path)?;
    let syslog_facility = last(&mut args, &["--syslog-facility"], |s| {
        crate::log::facility_from_name(s)
            .map(|_| s.to_string())
            .ok_or_else(|| format!("unknown syslog facility '{s}'"))
    })?
    .unwrap_or_else(|| "daemon".into());
    let log_filename = last(&mut args, &["-l", "--log-filename"], path)?;
    let metrics = last(&mut args, &["--metrics"], parse_endpoint)?;
    let log_json = last(&mut args, &["--log-format"], |s| match s {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(format!(
            "invalid --log-format '{other}': expected text or json"
        )),
    })?
    .unwrap_or(false);
    let quiet = count(&mut args, &["-q", "--quiet"]);
    let log_conns = count(&mut args, &["--log-conns"]);
    let syslog = count(&mut args, &["-s", "--syslog"]);
    let daemon = count(&mut args, &["--daemon"]);
    let test_only = count(&mut args, &["-t", "--test"]);
    let reuseport = count(&mut args, &["--reuseport"]);
    let self_signed = count(&mut args, &["--self-signed"]);
    let _ = tls; // TLS 1.2 + 1.3 is the default; --tls only restates it.

    let mut pems = Vec::new();
    let mut after_dashes = false;
    for free in args.finish() {
        let s = free.to_string_lossy();
        if !after_dashes && s == "--" {
            after_dashes = true;
        } else if !after_dashes && s.starts_with('-') && s.len() > 1 {
            let flag = s.split('=').next().unwrap_or(&s);
            return Err(format!("unknown option '{flag}' (see stud --help)"));
        } else {
            pems.push(PathBuf::from(free));
        }
    }
    if self_signed && !pems.is_empty() {
        return Err("--self-signed cannot be combined with a PEM file".into());
    }
    if !self_signed && pems.is_empty() {
        return Err(
            "no certificate: give a PEM file (certificate chain and key) or --self-signed".into(),
        );
    }
    Ok(Command::Run(Box::new(Args {
        ssl,
        versions,
        ciphers,
        backend,
        frontends,
        workers,
        client_address,
        accept_proxy,
        sni_strict,
        alpn,
        backlog,
        keepalive: (keepalive > 0).then(|| Duration::from_secs(keepalive)),
        chroot,
        user,
        group,
        quiet,
        log_conns,
        syslog,
        syslog_facility,
        log_filename,
        metrics,
        log_json,
        daemon,
        pidfile,
        test_only,
        handshake_timeout: Duration::from_secs(handshake_timeout),
        backend_connect_timeout: Duration::from_secs(backend_connect_timeout),
        idle_timeout: (idle_timeout > 0).then(|| Duration::from_secs(idle_timeout)),
        drain_timeout: Duration::from_secs(drain_timeout),
        max_conns,
        worker_timeout: (worker_timeout > 0).then(|| Duration::from_secs(worker_timeout)),
        ticket_secret,
        ticket_secret_bytes: None,
        reuseport,
        self_signed,
        pems,
    })))
}

/// The `--help` text.
pub(crate) const USAGE: &str = "\
stud: the Scalable TLS Unwrapping Daemon

Usage: stud [OPTIONS] PEM [PEM ...]
       stud [OPTIONS] --self-signed

PEM is one file holding the certificate chain and its private key.

Encryption:
      --tls                     the default versions (see --tls-protos)
      --tls-protos=LIST         the versions to offer: TLSv1.2, TLSv1.3 or both
                                (comma- or space-separated) [default: both]
      --ssl                     accepted for compatibility: SSLv3 is not offered; the
                                --tls-protos versions are used
  -c, --ciphers=SUITES          cipher list in OpenSSL syntax or IANA names; a list that
                                names no TLS 1.3 suite leaves TLS 1.3 at its defaults
      --sni-nomatch-abort       refuse a handshake whose server name no certificate covers
                                (a client without a server name is still served)
      --alpn-protos=LIST        ALPN protocols to agree on, most preferred first, e.g.
                                h2,http/1.1 [default: none, ALPN is not negotiated]
      --ticket-secret=FILE      session-ticket master secret (at least 32 bytes, e.g.
                                `openssl rand -base64 48`): hosts sharing it resume each
                                other's sessions [default: random at start]
      --self-signed             serve an ephemeral certificate for localhost (testing only)

Socket:
  -b, --backend=HOST,PORT       backend [default: 127.0.0.1,8000]
  -f, --frontend=HOST,PORT      frontend; * means every address; repeat for several
                                [default: *,8443]
                                (also [HOST]:PORT or HOST:PORT)
  -B, --backlog=N               listen backlog [default: 100]
  -k, --keepalive=SECS          TCP keepalive idle time, 0 = off [default: 3600]
      --reuseport               one SO_REUSEPORT listening socket per worker
      --ssl-handshake-timeout=SECS    [default: 30]
      --backend-connect-timeout=SECS  [default: 30]
      --idle-timeout=SECS       close connections idle this long, 0 = never [default: 0]
      --drain-timeout=SECS      on SIGTERM, how long in-flight connections may finish
                                [default: 30]

Performance:
  -n, --workers=CORES           worker processes, or 'auto' for one per CPU [default: 1]
      --worker-timeout=SECS     replace a worker whose event loop shows no sign of life this
                                long (stopped, stuck); at least 3, 0 = never [default: 30]
      --max-conns=N             each worker stops accepting while it holds N connections;
                                more wait in the listen backlog [default: no limit but
                                the open-file limit]

Security:
  -r, --chroot=DIR              chroot to DIR after loading certificates and binding
  -u, --user=USER               run as USER after binding
  -g, --group=GROUP             run as GROUP after binding [default: USER's group]

Logging:
  -q, --quiet                   log only warnings and errors
      --log-conns               one line per connection that got past its handshake: client,
                                reason, duration, bytes each way, version, suite, SNI, ALPN,
                                client certificate
  -s, --syslog                  log to syslog instead of stderr
      --syslog-facility=NAME    syslog facility [default: daemon]
  -l, --log-filename=FILE       append log lines to FILE instead of stderr; SIGHUP and
                                SIGUSR1 reopen it (for log rotation)
      --log-format=FORMAT       text, or json: one JSON object per line (the --log-conns
                                lines with SNI, ALPN, version, suite and client CN as fields)
                                [default: text]

Monitoring:
      --metrics=HOST,PORT       serve Prometheus metrics over plain HTTP at
                                http://HOST:PORT/metrics (keep it on loopback or a private
                                network: it is not authenticated)

Special:
      --write-ip                send the client's address to the backend first (family octet
                                + 4 or 16 address octets)
      --write-proxy             send a PROXY protocol v1 line to the backend first
                                (also --write-proxy-v1)
      --write-proxy-v2          send a binary PROXY protocol v2 header to the backend first,
                                with TLVs for ALPN, SNI, TLS version and cipher
      --accept-proxy            every connection starts with a PROXY v1/v2 header from a load
                                balancer in front; its client address is the one passed on
      --daemon                  detach and run in the background
  -p, --pidfile=FILE            write the parent's pid to FILE
  -t, --test                    load and check the configuration, then exit
  -V, --version                 print the version and exit
  -h, --help                    print this help and exit
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Args, String> {
        match parse(args.iter().map(OsString::from).collect())? {
            Command::Run(a) => Ok(*a),
            other => Err(format!("not a run: {other:?}")),
        }
    }

    #[test]
    fn defaults_match_stud() {
        let a = run(&["site.pem"]).expect("parses");
        assert_eq!(a.backend.to_string(), "127.0.0.1,8000");
        assert_eq!(a.frontends.len(), 1);
        assert_eq!(a.frontends[0].to_string(), "*,8443");
        assert_eq!(a.workers, 1);
        assert_eq!(a.backlog, 100);
        assert_eq!(a.keepalive, Some(Duration::from_secs(3600)));
        assert_eq!(a.client_address, ClientAddressMode::None);
        assert_eq!(a.pems, vec![PathBuf::from("site.pem")]);
    }

    #[test]
    fn endpoint_forms() {
        let ep = |s| parse_endpoint(s).expect(s);
        assert_eq!(ep("127.0.0.1,80").to_string(), "127.0.0.1,80");
        assert_eq!(ep("*,443").host, None);
        assert_eq!(ep("[::1]:8000").host.as_deref(), Some("::1"));
        assert_eq!(ep("::1,8000").host.as_deref(), Some("::1"));
        assert_eq!(ep("[::1],8000").host.as_deref(), Some("::1"));
        assert_eq!(ep("localhost:8000").port, 8000);
        for bad in [
            "127.0.0.1",
            "127.0.0.1,",
            ",80",
            "1.2.3.4,99999",
            "::1:80",
            "[::1]80",
            "a b,1",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn long_and_short_forms() {
        let a = run(&[
            "--backend=10.0.0.1,81",
            "-f",
            "[::]:443",
            "-n",
            "2",
            "-k",
            "0",
            "--write-proxy",
            "--idle-timeout=5",
            "x.pem",
        ])
        .expect("parses");
        assert_eq!(a.backend.to_string(), "10.0.0.1,81");
        assert_eq!(a.frontends[0].host.as_deref(), Some("::"));
        assert_eq!(a.workers, 2);
        assert_eq!(a.keepalive, None);
        assert_eq!(a.client_address, ClientAddressMode::ProxyV1);
        assert_eq!(a.idle_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn frontends_may_be_repeated_but_not_duplicated() {
        let a = run(&["-f", "127.0.0.1,443", "--frontend=[::1]:443", "x.pem"]).expect("parses");
        let shown: Vec<String> = a.frontends.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1,443", "::1,443"]);
        let err = run(&["-f", "127.0.0.1,443", "-f", "127.0.0.1,443", "x.pem"]).expect_err("twice");
        assert!(err.contains("given more than once"), "{err}");
        let any = run(&["-f", "127.0.0.1,0", "-f", "127.0.0.1,0", "x.pem"]).expect("port 0 twice");
        assert_eq!(any.frontends.len(), 2);
    }

    #[test]
    fn the_worker_watchdog_is_on_by_default_and_zero_turns_it_off() {
        let secs = |args: &[&str]| run(args).expect("parses").worker_timeout;
        assert_eq!(secs(&["x.pem"]), Some(Duration::from_secs(30)));
        assert_eq!(
            secs(&["--worker-timeout=5", "x.pem"]),
            Some(Duration::from_secs(5))
        );
        assert_eq!(secs(&["--worker-timeout=0", "x.pem"]), None);
        assert!(run(&["--worker-timeout=soon", "x.pem"]).is_err());
        let err = run(&["--worker-timeout=2", "x.pem"]).expect_err("too short");
        assert!(err.contains("at least 3 seconds"), "{err}");
    }

    #[test]
    fn max_conns_is_a_positive_count() {
        assert_eq!(run(&["x.pem"]).expect("parses").max_conns, None);
        assert_eq!(
            run(&["--max-conns=500", "x.pem"])
                .expect("parses")
                .max_conns,
            Some(500)
        );
        for bad in ["--max-conns=0", "--max-conns=-1", "--max-conns=lots"] {
            let err = run(&[bad, "x.pem"]).expect_err(bad);
            assert!(err.contains("invalid --max-conns"), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_protos_pick_the_versions() {
        let both = vec![TlsVersion::Tls12, TlsVersion::Tls13];
        assert_eq!(run(&["x.pem"]).expect("parses").versions, both);
        assert_eq!(
            run(&["--tls-protos=TLSv1.3", "x.pem"])
                .expect("parses")
                .versions,
            vec![TlsVersion::Tls13]
        );
        assert_eq!(
            run(&["--tls-protos", "TLSv1.2 TLSv1.3", "x.pem"])
                .expect("parses")
                .versions,
            both
        );
        for (bad, needle) in [
            ("--tls-protos=TLSv1.1", "not offered"),
            ("--tls-protos=SSLv3,TLSv1.3", "not offered"),
            ("--tls-protos=tls13", "unknown protocol 'tls13'"),
            ("--tls-protos=,", "no protocol named"),
        ] {
            let err = run(&[bad, "x.pem"]).expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn alpn_protocols_are_a_comma_separated_list() {
        let a = run(&["--alpn-protos=h2,http/1.1", "x.pem"]).expect("parses");
        assert_eq!(a.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(run(&["x.pem"]).expect("parses").alpn.is_empty());
        let err = run(&["--alpn-protos=", "x.pem"]).expect_err("empty");
        assert!(err.contains("needs a value"), "{err}");
        for bad in [
            "--alpn-protos=h2,,http/1.1",
            "--alpn-protos=,",
            "--alpn-protos=h2,",
        ] {
            let err = run(&[bad, "x.pem"]).expect_err(bad);
            assert!(err.contains("invalid ALPN protocol list"), "{bad}: {err}");
        }
        let long = format!("--alpn-protos={}", "x".repeat(256));
        assert!(run(&[&long, "x.pem"]).is_err());
    }

    #[test]
    fn each_client_address_flag_picks_its_mode() {
        for (flag, mode) in [
            ("--write-ip", ClientAddressMode::WriteIp),
            ("--write-proxy", ClientAddressMode::ProxyV1),
            ("--write-proxy-v1", ClientAddressMode::ProxyV1),
            ("--write-proxy-v2", ClientAddressMode::ProxyV2),
        ] {
            let a = run(&[flag, "x.pem"]).expect("parses");
            assert_eq!(a.client_address, mode, "{flag}");
        }
        assert_eq!(
            run(&["x.pem"]).expect("parses").client_address,
            ClientAddressMode::None
        );
        assert!(!run(&["x.pem"]).expect("parses").accept_proxy);
        assert!(!run(&["x.pem"]).expect("parses").sni_strict);
        assert!(
            run(&["--sni-nomatch-abort", "x.pem"])
                .expect("parses")
                .sni_strict
        );
        assert!(
            run(&["--accept-proxy", "x.pem"])
                .expect("parses")
                .accept_proxy
        );
    }

    #[test]
    fn mistakes_are_reported() {
        for (args, needle) in [
            (&["--bogus", "x.pem"][..], "unknown option '--bogus'"),
            (&["-b", "nope", "x.pem"][..], "invalid address 'nope'"),
            (&["-n", "0", "x.pem"][..], "invalid worker count"),
            (&["-n"][..], "needs a value"),
            (&["-n", "2", "--workers=3", "x.pem"][..], "more than once"),
            (&[][..], "no certificate"),
            (&["--write-ip", "--write-proxy", "x.pem"][..], "together"),
            (
                &["--write-proxy", "--write-proxy-v2", "x.pem"][..],
                "--write-proxy and --write-proxy-v2 cannot be used together",
            ),
            (&["-b", "*,80", "x.pem"][..], "only meaningful"),
            (
                &["--syslog-facility=nope", "x.pem"][..],
                "unknown syslog facility",
            ),
            (&["--self-signed", "x.pem"][..], "cannot be combined"),
        ] {
            let err = run(args).expect_err(needle);
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn auto_workers_is_at_least_one() {
        let a = run(&["-n", "auto", "x.pem"]).expect("parses");
        assert!(a.workers >= 1);
    }
}
