//! The configuration model ([`Args`]: frontends each owning their certificates and TLS policy)
//! and the command line that fills it: stud's original flags, hitch's, and a few of our own,
//! each a spelling of a key in [`crate::keys`], with one clear error per mistake.
//!
//! Order: the defaults, then the `--config` file ([`crate::settings`] reads it), then the
//! command line, which overrides the file key by key (frontends and certificates add up).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use stud_core::driver::BackendAddr;
use stud_core::{ClientAddressMode, ClientVerifyMode, TlsVersion};

use crate::keys::{self, Key};
use crate::settings::Settings;

/// The configuration model: what the operator asked for, from the defaults, then the
/// configuration file (`--config`), then the command line, before anything is loaded or bound.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// `ssl = on` / `--ssl` was given (mapped onto TLS 1.2 + 1.3 with a warning).
    pub(crate) ssl: bool,
    /// Every frontend, in order (at least one; `*,8443` when none is given), each with its own
    /// certificates and TLS policy.
    pub(crate) frontends: Vec<Frontend>,
    /// Certificates every frontend without its own uses (`pem-file` at the top level of the
    /// file, PEM arguments), the default first.
    pub(crate) pems: Vec<Cert>,
    /// `pem-dir`: every matching file is a certificate, read at start and on SIGHUP.
    pub(crate) pem_dir: Option<PemDir>,
    /// `ocsp-dir`: an OCSP response for a certificate is looked up there by its file name.
    pub(crate) ocsp_dir: Option<PathBuf>,
    pub(crate) backend: Backend,
    /// Local addresses backend connections are made from, in turn (`--backend-source`).
    pub(crate) backend_sources: Vec<std::net::IpAddr>,
    /// `backend-refresh`: how often the backend's name is resolved again (None = never).
    pub(crate) backend_refresh: Option<Duration>,
    pub(crate) workers: usize,
    pub(crate) client_address: ClientAddressMode,
    /// Every connection starts with a load balancer's PROXY header (`--accept-proxy`).
    pub(crate) accept_proxy: bool,
    /// ALPN protocols to agree on, most preferred first (`--alpn-protos`); empty: no ALPN.
    pub(crate) alpn: Vec<Vec<u8>>,
    /// A certificate revocation list for client certificates (`crl`).
    pub(crate) crl: Option<PathBuf>,
    /// The most intermediate CAs a client certificate's chain may have (`client-verify-depth`).
    pub(crate) client_verify_depth: Option<usize>,
    /// Send the client's certificate to the backend in the PROXY v2 header
    /// (`proxy-client-cert`).
    pub(crate) proxy_client_cert: bool,
    /// The SSL TLV in the PROXY v2 header (`proxy-tlv`, on by default).
    pub(crate) proxy_tlv: bool,
    /// The authority (SNI) TLV in the PROXY v2 header (`proxy-authority`, on by default).
    pub(crate) proxy_authority: bool,
    /// The key-exchange groups, OpenSSL's names (`ecdh-curve`); `None`: stud's defaults.
    pub(crate) ecdh_curve: Option<String>,
    /// Client mode (`--client`): plaintext from clients, TLS to the backend.
    pub(crate) client: Option<ClientMode>,
    pub(crate) backlog: i32,
    pub(crate) keepalive: Option<Duration>,
    /// Socket options of the listening sockets (and so of every accepted one).
    pub(crate) sockets: SocketOptions,
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
    /// Things the operator should hear about at start (keys that behave differently here).
    pub(crate) warnings: Vec<String>,
    /// Facts worth one log line at start (which PROXY version `write-proxy` sends).
    pub(crate) notices: Vec<String>,
    /// Where this configuration came from, so SIGHUP can read it again.
    pub(crate) sources: Sources,
}

/// The command line as given and the directory it was given in: enough to read the same
/// configuration again (on SIGHUP) after stud has changed directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    pub(crate) raw: Vec<OsString>,
    /// Relative paths (on the command line and in the file) are relative to this directory.
    pub(crate) base: PathBuf,
}

/// How stud speaks TLS to the backend in client mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientMode {
    /// The CA certificates the backend's certificate must chain to (`backend-ca`); `None`:
    /// the system bundle.
    pub(crate) ca: Option<PathBuf>,
    /// Accept any backend certificate (`backend-insecure`).
    pub(crate) insecure: bool,
    /// The name sent to the backend and verified (`backend-sni`, else the backend's host).
    pub(crate) server_name: String,
    /// A PEM file with the chain and key to present when asked (`backend-cert`).
    pub(crate) cert: Option<PathBuf>,
}

/// One listening address with the certificates and TLS policy it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frontend {
    pub(crate) endpoint: Endpoint,
    /// Certificates for this frontend only (`pem-file` in its block, `-f ADDR+CERT`).
    pub(crate) certs: Vec<Cert>,
    /// Whether the global certificates (and `pem-dir`) are served here too: always when the
    /// frontend has none of its own, else only with `match-global-certs = on`.
    pub(crate) global_certs: bool,
    pub(crate) tls: TlsPolicy,
}

/// What a frontend offers in its handshakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsPolicy {
    /// The protocol versions to offer (TLS 1.2 and 1.3 by default).
    pub(crate) versions: Vec<TlsVersion>,
    /// The cipher list given to the engine: `ciphers`, with `ciphersuites` (TLS 1.3) folded in.
    pub(crate) ciphers: Option<String>,
    /// Choose the suite by our order, not the client's.
    pub(crate) prefer_server_ciphers: bool,
    /// Refuse server names no certificate covers (`sni-nomatch-abort`).
    pub(crate) sni_strict: bool,
    /// Whether clients are asked for a certificate (`client-verify`).
    pub(crate) client_verify: ClientVerifyMode,
    /// The CAs client certificates must chain to (`client-verify-ca`).
    pub(crate) client_verify_ca: Option<PathBuf>,
}

/// One certificate: a PEM file with the chain (and the key, unless `key` names another file),
/// and an OCSP response to staple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cert {
    pub(crate) chain: PathBuf,
    pub(crate) key: Option<PathBuf>,
    pub(crate) ocsp: Option<PathBuf>,
    /// `FILE:LINE` of the configuration file that named it, for messages.
    pub(crate) origin: Option<String>,
}

impl Cert {
    /// A combined PEM file with no separate key or OCSP response.
    pub(crate) fn pem(path: PathBuf) -> Cert {
        Cert {
            chain: path,
            key: None,
            ocsp: None,
            origin: None,
        }
    }
}

/// `pem-dir` and `pem-dir-glob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemDir {
    pub(crate) dir: PathBuf,
    /// Only names matching this shell pattern (`*` and `?`); every file when `None`.
    pub(crate) glob: Option<String>,
}

/// Where plaintext goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    Tcp(Endpoint),
    /// A UNIX-domain stream socket (`--backend=/path/to.sock`).
    Unix(PathBuf),
}

impl Backend {
    /// Every address of a TCP backend, in resolver order (a UNIX socket has no name to resolve).
    pub(crate) fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        match self {
            Backend::Tcp(endpoint) => endpoint.resolve(),
            Backend::Unix(path) => Err(format!(
                "backend {} is a UNIX socket: there is no name to resolve",
                path.display()
            )),
        }
    }

    /// What the driver connects to: every address of a TCP backend, or the UNIX socket.
    pub(crate) fn addresses(&self) -> Result<Vec<BackendAddr>, String> {
        match self {
            Backend::Tcp(endpoint) => Ok(endpoint.resolve()?.into_iter().map(Into::into).collect()),
            Backend::Unix(path) => Ok(vec![BackendAddr::Unix(path.clone())]),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Tcp(e) => e.fmt(f),
            Backend::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Options set on each listening socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    /// TCP Fast Open queue length (`tcp-fastopen`), None = off.
    pub(crate) fastopen: Option<u32>,
    /// SO_RCVBUF in bytes (`recv-bufsize`), None = the kernel's default.
    pub(crate) recv_bufsize: Option<usize>,
    /// SO_SNDBUF in bytes (`send-bufsize`), None = the kernel's default.
    pub(crate) send_bufsize: Option<usize>,
}

/// What `main` should do after parsing.
#[derive(Debug)]
pub(crate) enum Command {
    /// Print the help text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Print a configuration file with every default and exit 0 (`--default-config`).
    DefaultConfig,
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

/// One option from the command line, as written.
#[derive(Debug, Clone)]
pub(crate) struct Flag {
    pub(crate) key: &'static Key,
    /// The spelling used (`-n`, `--workers`), for messages.
    pub(crate) spelled: String,
    /// The value; `None` for a boolean given without `=on|off`.
    pub(crate) value: Option<String>,
}

/// The command line split into options and PEM arguments.
#[derive(Debug, Default)]
struct Scanned {
    flags: Vec<Flag>,
    pems: Vec<PathBuf>,
}

impl Scanned {
    /// Records one option; a valued one without its value (or with an empty one) is an error.
    fn push(
        &mut self,
        key: &'static Key,
        spelled: String,
        value: Option<String>,
    ) -> Result<(), String> {
        let missing = value.as_deref().is_none_or(str::is_empty);
        if key.kind != keys::Kind::Bool && missing {
            return Err(format!("option {} needs a value", keys::spelling(key)));
        }
        self.flags.push(Flag {
            key,
            spelled,
            value,
        });
        Ok(())
    }
}

/// The key a long option names: its whole name, or (as getopt_long allows, and so the original
/// stud and hitch) a prefix of exactly one option's name.
fn long_option(name: &str) -> Result<(&'static Key, String), String> {
    let spelled = format!("--{name}");
    if let Some(key) = keys::by_flag(&spelled) {
        return Ok((key, spelled));
    }
    let mut matches: Vec<(&'static Key, &'static str)> = keys::KEYS
        .iter()
        .flat_map(|k| k.cli.iter().map(move |flag| (k, *flag)))
        .filter(|(_, flag)| !name.is_empty() && flag.starts_with(spelled.as_str()))
        .collect();
    matches.dedup_by_key(|(k, _)| k.name);
    match matches.as_slice() {
        [(key, flag)] => Ok((key, (*flag).to_string())),
        [] => Err(format!("unknown option '{spelled}' (see stud --help)")),
        many => Err(format!(
            "ambiguous option '{spelled}': {}",
            many.iter().map(|(_, f)| *f).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Splits the arguments into options (looked up in the key table) and PEM files.
///
/// `--opt=VALUE`, `--opt VALUE`, `-o VALUE` and `-oVALUE` all work; a boolean takes its value
/// only through `=` (`--quiet`, `--quiet=on`, `--quiet=off`). After `--` everything is a PEM.
fn scan(raw: Vec<OsString>) -> Result<Scanned, String> {
    let mut out = Scanned::default();
    let mut raw = raw.into_iter();
    while let Some(arg) = raw.next() {
        let Some(text) = arg.to_str() else {
            // Not UTF-8: a file name (every option is ASCII).
            out.pems.push(PathBuf::from(arg));
            continue;
        };
        if text == "--" {
            out.pems.extend(raw.by_ref().map(PathBuf::from));
            break;
        }
        if !text.starts_with('-') || text == "-" {
            out.pems.push(PathBuf::from(text));
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            let (key, spelled) = long_option(name)?;
            let value = match (key.kind, inline) {
                (keys::Kind::Bool, value) => value,
                (_, Some(value)) => Some(value),
                (_, None) => raw.next().map(|v| v.to_string_lossy().into_owned()),
            };
            out.push(key, spelled, value)?;
            continue;
        }
        // Short options bundle as getopt's do: `-qs` is `-q -s`, `-qn4` is `-q -n 4`, and a
        // short option's value may follow it (`-n4`) or come next (`-n 4`).
        let mut rest = &text[1..];
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            let spelled = format!("-{c}");
            let key = keys::by_flag(&spelled)
                .ok_or_else(|| format!("unknown option '{spelled}' (see stud --help)"))?;
            if key.kind == keys::Kind::Bool {
                // `-q=off`, as a long option would take it.
                if let Some(value) = rest.strip_prefix('=') {
                    out.push(key, spelled, Some(value.to_string()))?;
                    break;
                }
                out.push(key, spelled, None)?;
                continue;
            }
            let value = if rest.is_empty() {
                raw.next().map(|v| v.to_string_lossy().into_owned())
            } else {
                Some(rest.trim_start_matches('=').to_string())
            };
            out.push(key, spelled, value)?;
            break;
        }
    }
    Ok(out)
}

/// Parses the arguments after the program name: the defaults, then the `--config` file if one
/// is named, then the rest of the command line, which overrides the file.
pub(crate) fn parse(raw: Vec<OsString>) -> Result<Command, String> {
    // In a directory that was removed there is no base: relative paths then fail later, each
    // with its own message, and --help still works.
    let base = std::env::current_dir().unwrap_or_default();
    parse_in(Sources { raw, base })
}

/// Parses the same sources again (on SIGHUP): the configuration file is read anew.
pub(crate) fn parse_again(sources: &Sources) -> Result<Args, String> {
    match parse_in(sources.clone())? {
        Command::Run(args) => Ok(*args),
        Command::Help | Command::Version | Command::DefaultConfig => {
            Err("the command line no longer runs stud".into())
        }
    }
}

fn parse_in(sources: Sources) -> Result<Command, String> {
    let scanned = scan(sources.raw.clone())?;
    let wants = |name: &str| scanned.flags.iter().any(|f| f.key.name == name);
    if wants("help") {
        return Ok(Command::Help);
    }
    if wants("version") {
        return Ok(Command::Version);
    }
    if wants("default-config") {
        return Ok(Command::DefaultConfig);
    }
    let mut settings = Settings::default();
    let mut config_files = scanned.flags.iter().filter(|f| f.key.name == "config");
    if let Some(flag) = config_files.next() {
        if config_files.next().is_some() {
            return Err("option --config given more than once".into());
        }
        let path = sources.base.join(flag.value.as_deref().unwrap_or_default());
        settings.read_file(&path)?;
    }
    for flag in &scanned.flags {
        if flag.key.name != "config" {
            settings.apply_flag(flag)?;
        }
    }
    settings.add_pem_arguments(scanned.pems);
    let mut args = settings.finish()?;
    args.sources = sources;
    Ok(Command::Run(Box::new(args)))
}

/// The defaults of the settings the engine and its driver own, in seconds, read from
/// stud-core (where they are defined once) for the parser, `--help` and `--default-config`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub(crate) keepalive: u64,
    pub(crate) handshake_timeout: u64,
    pub(crate) backend_connect_timeout: u64,
    pub(crate) drain_timeout: u64,
}

impl Defaults {
    pub(crate) fn engine() -> Defaults {
        let options = stud_core::driver::Options::default();
        Defaults {
            keepalive: options.keepalive.map_or(0, |d| d.as_secs()),
            handshake_timeout: stud_core::ConfigBuilder::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(),
            backend_connect_timeout: stud_core::ConfigBuilder::DEFAULT_BACKEND_CONNECT_TIMEOUT
                .as_secs(),
            drain_timeout: options.drain_timeout.as_secs(),
        }
    }
}

/// What `--default-config` prints: a configuration file that sets every default, in the
/// syntax `--config` reads (a unit test checks it gives the same model as no file at all).
pub(crate) fn default_config() -> String {
    let Defaults {
        keepalive,
        handshake_timeout,
        backend_connect_timeout,
        drain_timeout,
    } = Defaults::engine();
    format!(
        r#"# stud configuration: every key at its default (stud --default-config).
# Syntax: hitch.conf(5); docs/migrating.md lists every key.

# Where to listen, one line or block per frontend; a frontend block may name its own
# pem-file, tls-protos, ciphers, ciphersuites, prefer-server-ciphers, sni-nomatch-abort
# and match-global-certs.
frontend = "[*]:8443"
backend = "[127.0.0.1]:8000"
backend-refresh = 0
backlog = 100
keepalive = {keepalive}
tcp-fastopen = off
reuseport = off
ssl-handshake-timeout = {handshake_timeout}
backend-connect-timeout = {backend_connect_timeout}
idle-timeout = 0
drain-timeout = {drain_timeout}

# Certificates: pem-file = "/etc/stud/site.pem" (repeat for several; the last is the
# default), or pem-file = {{ cert = "..." private-key = "..." ocsp-resp-file = "..." }},
# and/or pem-dir = "/etc/stud/cert.d" with pem-dir-glob = "*.pem".

# TLS.
tls-protos = TLSv1.2 TLSv1.3
prefer-server-ciphers = on
sni-nomatch-abort = off
# ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20"
# ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
# alpn-protos = "h2, http/1.1"
# ticket-secret = "/etc/stud/ticket.secret"

# What the backend is told first: at most one of these.
write-ip = off
write-proxy-v1 = off
write-proxy-v2 = off
proxy-proxy = off
accept-proxy = off

# Client mode: plaintext from clients, TLS to the backend (no certificate needed).
client = off
# backend-ca = "/etc/ssl/certs/ca-certificates.crt"
# backend-sni = "backend.example"
# backend-cert = "/etc/stud/client.pem"
backend-insecure = off

# Processes.
workers = 1
worker-timeout = 30
daemon = off
# max-conns = 10000
# user = "_hitch"
# group = "_hitch"
# chroot = "/var/empty"
# pidfile = "/run/stud.pid"

# Logging.
quiet = off
log-conns = off
syslog = off
syslog-facility = "daemon"
# log-filename = "/var/log/stud.log"
"#
    )
}

/// The `--help` text.
pub(crate) fn usage() -> String {
    let Defaults {
        keepalive,
        handshake_timeout,
        backend_connect_timeout,
        drain_timeout,
    } = Defaults::engine();
    format!(
        "\
stud: the Scalable TLS Unwrapping Daemon

Usage: stud [OPTIONS] PEM [PEM ...]
       stud [OPTIONS] --config=FILE [PEM ...]
       stud [OPTIONS] --self-signed
       stud [OPTIONS] --client [--backend-ca=FILE]

PEM is one file holding the certificate chain and its private key. Boolean options take
=on or =off (--quiet=on, --daemon=off); alone they mean on.

Configuration:
      --config=FILE             read FILE first (hitch.conf(5) syntax, a superset of the
                                2016 stud's); options given here override it
  -t, --test                    load and check the configuration, then exit (0: good,
                                1: the error, with FILE:LINE when it is in the file)
      --default-config          print a configuration file with every default and exit

Encryption:
      --tls                     the default versions (see --tls-protos)
      --tls-protos=LIST         the versions to offer: TLSv1.2, TLSv1.3 or both
                                (comma- or space-separated) [default: both]
      --ssl                     accepted for compatibility: SSLv3 is not offered; the
                                --tls-protos versions are used
  -c, --ciphers=SUITES          cipher list in OpenSSL syntax or IANA names; a list that
                                names no TLS 1.3 suite leaves TLS 1.3 at its defaults
      --ciphersuites=LIST       TLS 1.3 suites, colon-separated (then --ciphers governs
                                TLS 1.2 only)
  -O, --prefer-server-ciphers   choose the suite by our order [default: on; hitch: off]
      --sni-nomatch-abort       refuse a handshake whose server name no certificate covers
                                (a client without a server name is still served)
      --alpn-protos=LIST        ALPN protocols to agree on, most preferred first, e.g.
                                h2,http/1.1 [default: none, ALPN is not negotiated]
      --ticket-secret=FILE      session-ticket master secret (at least 32 bytes, e.g.
                                `openssl rand -base64 48`): hosts sharing it resume each
                                other's sessions [default: random at start]
      --pem-dir=DIR             every file in DIR is a certificate too (lexicographic order;
                                a bad file is skipped with a warning; re-read on SIGHUP)
      --pem-dir-glob=GLOB       only the files of --pem-dir matching GLOB, e.g. '*.pem'
      --ocsp-dir=DIR            staple DIR/NAME.ocsp for the certificate in a file NAME
                                (PEM.ocsp beside the PEM is stapled without it)
      --client-verify=MODE      ask clients for a certificate: none, optional or required
                                [default: none]
      --client-verify-ca=FILE   the CA certificates client certificates must chain to
      --client-verify-depth=N   at most N intermediate CAs in a client's chain
      --crl=FILE                a revocation list (PEM or DER) for client certificates
      --proxy-client-cert       send the client's certificate in the PROXY v2 header
                                (DER in sub-TLV 0x28, PEM in TLV 0xE0, as hitch)
  -e, --ssl-engine=NAME         refused: there is no OpenSSL engine here
  -C, --session-cache=N         accepted with a warning: sessions resume by tickets
  -U, --shared-cache-listen=ADDR, -P, --shared-cache-peer=ADDR, -M, --shared-cache-if=IF
                                accepted with a warning: no shared cache, use
                                --ticket-secret on every host
      --self-signed             serve an ephemeral certificate for localhost (testing only)

Client mode (plaintext from clients, TLS to the backend; no PEM needed):
      --client                  encrypt towards the backend instead of decrypting clients
      --backend-ca=FILE         the CA certificates (PEM) the backend's certificate must
                                chain to [default: /etc/ssl/certs/ca-certificates.crt]
      --backend-sni=NAME        the name sent to the backend and checked against its
                                certificate [default: the --backend host]
      --backend-cert=PEM        chain and key (one PEM file) to present when the backend
                                asks for a client certificate
      --backend-insecure        do not verify the backend's certificate (testing only)

Socket:
  -b, --backend=HOST,PORT       backend [default: 127.0.0.1,8000] (also [HOST]:PORT, or
                                /PATH for a UNIX-domain socket)
  -f, --frontend=HOST,PORT      frontend; * means every address; repeat for several
                                [default: *,8443] (also [HOST]:PORT or HOST:PORT, and
                                [HOST]:PORT+CERT for a certificate of this frontend only)
  -B, --backlog=N               listen backlog [default: 100]
  -k, --keepalive=SECS          TCP keepalive idle time, 0 = off [default: {keepalive}]
      --backend-source=ADDR[,ADDR...]
                                connect to the backend from these local addresses in turn
                                (the kernel picks each port): more than one address's ~28,000
                                source ports for one backend address
  -R, --backend-refresh=SECS    resolve the backend's name again every SECS and reload
                                when its addresses changed; 0 = never [default: 0]
      --recv-bufsize=BYTES      SO_RCVBUF of every client socket [default: the kernel's]
      --send-bufsize=BYTES      SO_SNDBUF of every client socket [default: the kernel's]
      --enable-tcp-fastopen     accept TCP Fast Open on the listening sockets [default: off]
      --reuseport               one SO_REUSEPORT listening socket per worker
      --ssl-handshake-timeout=SECS    [default: {handshake_timeout}]
      --backend-connect-timeout=SECS  [default: {backend_connect_timeout}]
      --idle-timeout=SECS       close connections idle this long, 0 = never [default: 0]
      --drain-timeout=SECS      on SIGTERM, how long in-flight connections may finish
                                [default: {drain_timeout}]

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
  -L, --log-level=N             hitch's levels: 0 or 1 = --quiet, 2 = everything [default: 2]
      --log-conns               one line per connection that got past its handshake: client,
                                reason, duration, bytes each way, version, suite, SNI, ALPN,
                                client certificate
  -l, --log-filename=FILE       append log lines to FILE instead of stderr; SIGHUP and
                                SIGUSR1 reopen it (for log rotation)
      --log-format=FORMAT       text, or json: one JSON object per line (the --log-conns
                                lines with SNI, ALPN, version, suite and client CN as fields)
                                [default: text]
  -s, --syslog                  log to syslog instead of stderr
      --syslog-facility=NAME    syslog facility [default: daemon]

Monitoring:
      --metrics=HOST,PORT       serve Prometheus metrics over plain HTTP at
                                http://HOST:PORT/metrics (keep it on loopback or a private
                                network: it is not authenticated)

Special:
      --write-ip                send the client's address to the backend first (family octet
                                + 4 or 16 address octets)
      --write-proxy             send a PROXY protocol v1 line to the backend first (the
                                original stud's meaning; in a --config file, write-proxy
                                means v2, as in hitch)
      --write-proxy-v1          send a PROXY protocol v1 line to the backend first
      --write-proxy-v2          send a binary PROXY protocol v2 header to the backend first,
                                with TLVs for ALPN, SNI, TLS version and cipher
      --accept-proxy            every connection starts with a PROXY v1/v2 header from a load
                                balancer in front; its client address is the one passed on
      --proxy-proxy             --accept-proxy, passing the address on as PROXY v1 (the
                                original stud's meaning; in a --config file, proxy-proxy
                                passes it on as v2, as in hitch)
      --proxy-tlv=off           leave the SSL TLV (version, cipher, client certificate) out
                                of the PROXY v2 header [default: on]
      --proxy-authority=off     leave the authority TLV (the SNI name) out of the PROXY v2
                                header [default: on]
      --daemon                  detach and run in the background
  -p, --pidfile=FILE            write the parent's pid to FILE
  -V, --version                 print the version and exit
  -h, --help                    print this help and exit
"
    )
}

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
        assert_eq!(a.frontends[0].endpoint.to_string(), "*,8443");
        assert_eq!(a.workers, 1);
        assert_eq!(a.backlog, 100);
        assert_eq!(a.keepalive, Some(Duration::from_secs(3600)));
        assert_eq!(a.client_address, ClientAddressMode::None);
        assert_eq!(a.pems, vec![Cert::pem(PathBuf::from("site.pem"))]);
        assert!(a.frontends[0].global_certs);
        assert!(a.frontends[0].tls.prefer_server_ciphers);
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
        assert_eq!(a.frontends[0].endpoint.host.as_deref(), Some("::"));
        assert_eq!(a.workers, 2);
        assert_eq!(a.keepalive, None);
        assert_eq!(a.client_address, ClientAddressMode::ProxyV1);
        assert_eq!(a.idle_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn frontends_may_be_repeated_but_not_duplicated() {
        let a = run(&["-f", "127.0.0.1,443", "--frontend=[::1]:443", "x.pem"]).expect("parses");
        let shown: Vec<String> = a.frontends.iter().map(|f| f.endpoint.to_string()).collect();
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
        assert_eq!(
            run(&["x.pem"]).expect("parses").frontends[0].tls.versions,
            both
        );
        assert_eq!(
            run(&["--tls-protos=TLSv1.3", "x.pem"])
                .expect("parses")
                .frontends[0]
                .tls
                .versions,
            vec![TlsVersion::Tls13]
        );
        assert_eq!(
            run(&["--tls-protos", "TLSv1.2 TLSv1.3", "x.pem"])
                .expect("parses")
                .frontends[0]
                .tls
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
        assert!(!run(&["x.pem"]).expect("parses").frontends[0].tls.sni_strict);
        assert!(
            run(&["--sni-nomatch-abort", "x.pem"])
                .expect("parses")
                .frontends[0]
                .tls
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
    fn the_engines_defaults_come_from_stud_core_to_the_parser_and_the_help() {
        let a = run(&["x.pem"]).expect("parses");
        let options = stud_core::driver::Options::default();
        let builder = stud_core::ConfigBuilder::DEFAULT_HANDSHAKE_TIMEOUT;
        assert_eq!(a.handshake_timeout, builder);
        assert_eq!(
            a.backend_connect_timeout,
            stud_core::ConfigBuilder::DEFAULT_BACKEND_CONNECT_TIMEOUT
        );
        assert_eq!(a.keepalive, options.keepalive);
        assert_eq!(a.drain_timeout, options.drain_timeout);
        let help = usage();
        let shown = format!(
            "--ssl-handshake-timeout=SECS    [default: {}]",
            builder.as_secs()
        );
        assert!(help.contains(&shown), "{shown}");
        let config = default_config();
        let line = format!("\ndrain-timeout = {}\n", options.drain_timeout.as_secs());
        assert!(config.contains(&line), "{line}");
    }

    #[test]
    fn help_lists_every_option() {
        for key in keys::KEYS {
            for flag in key.cli {
                // Short options appear as "-n, --workers"; long ones alone or after ", ".
                let listed = usage().contains(&format!("  {flag}"))
                    || usage().contains(&format!(", {flag}"))
                    || usage().contains(&format!("{flag},"));
                assert!(listed, "--help does not list {flag}");
            }
        }
    }

    #[test]
    fn long_options_may_be_abbreviated_while_unambiguous() {
        let a = run(&["--backl=50", "--max", "10", "x.pem"]).expect("parses");
        assert_eq!(a.backlog, 50);
        assert_eq!(a.max_conns, Some(10));
        let err = run(&["--work=3", "x.pem"]).expect_err("ambiguous");
        assert!(err.contains("--workers, --worker-timeout"), "{err}");
        let err = run(&["--write=on", "x.pem"]).expect_err("ambiguous");
        assert!(err.starts_with("ambiguous option '--write'"), "{err}");
        assert!(
            err.contains("--write-ip") && err.contains("--write-proxy-v2"),
            "{err}"
        );
        let err = run(&["--frobnicate", "x.pem"]).expect_err("unknown");
        assert!(err.contains("unknown option '--frobnicate'"), "{err}");
    }

    #[test]
    fn short_options_bundle_as_getopt_s_do() {
        let a = run(&["-qs", "x.pem"]).expect("parses");
        assert!(a.quiet && a.syslog);
        let a = run(&["-qn4", "x.pem"]).expect("parses");
        assert!(a.quiet);
        assert_eq!(a.workers, 4);
        let a = run(&["-sn", "3", "x.pem"]).expect("parses");
        assert!(a.syslog);
        assert_eq!(a.workers, 3);
        assert!(!run(&["-q=off", "x.pem"]).expect("parses").quiet);
        let err = run(&["-qn"]).expect_err("no value");
        assert!(err.contains("-n/--workers needs a value"), "{err}");
        let err = run(&["-qZ", "x.pem"]).expect_err("unknown");
        assert!(err.contains("unknown option '-Z'"), "{err}");
    }

    #[test]
    fn auto_workers_is_at_least_one() {
        let a = run(&["-n", "auto", "x.pem"]).expect("parses");
        assert!(a.workers >= 1);
    }
}
