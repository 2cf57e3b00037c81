//! Filling the configuration model from its sources: a configuration file's entries and the
//! command line's options are recorded as they come ([`Settings`]), then [`Settings::finish`]
//! lays the command line over the file over the defaults and checks the result into one
//! [`Args`].
//!
//! An option given twice on the command line is an error (which one was meant is a guess we
//! decline to make); a key set twice in a file keeps the later value, as hitch does, with a
//! warning naming both lines; the command line replaces a key the file set. Frontends and certificates add up:
//! the file's, then the command line's. A mistake in the file is reported as `FILE:LINE: why`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stud_core::{ClientAddressMode, ClientVerifyMode, TlsVersion};

use crate::args::{
    parse_endpoint, Args, Backend, Cert, ClientMode, Endpoint, Flag, Frontend, PemDir,
    SocketOptions, TlsPolicy,
};
use crate::config_file::{self, Entry, Value};
use crate::keys::{self, Key, Kind, Scope, Support};
use crate::values::{
    check_curves, fold_ciphers, is_off, parse_alpn, parse_backend, parse_bool, parse_ciphersuites,
    parse_client_verify, parse_secs, parse_size, parse_versions, parse_workers,
};

/// The largest configuration file read (a thousand frontends fit in a few hundred KiB).
const MAX_FILE: u64 = 16 << 20;

/// Where a value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    File {
        path: String,
        line: usize,
    },
    /// The option as spelled (`-n`, `--workers`).
    CommandLine(String),
}

impl Origin {
    /// `FILE:LINE: ` for the file; nothing for the command line, whose messages name the option.
    fn prefix(&self) -> String {
        match self {
            Origin::File { path, line } => format!("{path}:{line}: "),
            Origin::CommandLine(_) => String::new(),
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, Origin::File { .. })
    }
}

/// One key's value as written.
#[derive(Debug, Clone)]
struct Raw {
    /// The words of the value (one for most keys).
    words: Vec<String>,
    origin: Origin,
}

impl Raw {
    fn text(&self) -> String {
        self.words.join(" ")
    }

    /// How a message names this setting: `--workers` or `workers`.
    fn name(&self, key: &str) -> String {
        match &self.origin {
            Origin::CommandLine(spelled) => spelled.clone(),
            Origin::File { .. } => key.to_string(),
        }
    }
}

/// A frontend's TLS policy as written: unset fields follow the global setting.
#[derive(Debug, Clone, Default)]
struct PolicySpec {
    versions: Option<Vec<TlsVersion>>,
    /// `ssl = on` in a frontend block (warned about like the global one).
    ssl: bool,
    ciphers: Option<String>,
    ciphersuites: Option<String>,
    prefer_server_ciphers: Option<bool>,
    sni_strict: Option<bool>,
    client_verify: Option<ClientVerifyMode>,
    client_verify_ca: Option<PathBuf>,
}

/// A frontend's policy: what its block sets, else the global setting, else the default.
fn policy(p: &PolicySpec, g: &PolicySpec) -> TlsPolicy {
    TlsPolicy {
        versions: p
            .versions
            .clone()
            .or_else(|| g.versions.clone())
            .unwrap_or_else(|| vec![TlsVersion::Tls12, TlsVersion::Tls13]),
        ciphers: fold_ciphers(
            p.ciphers.as_deref().or(g.ciphers.as_deref()),
            p.ciphersuites.as_deref().or(g.ciphersuites.as_deref()),
        ),
        prefer_server_ciphers: p
            .prefer_server_ciphers
            .or(g.prefer_server_ciphers)
            .unwrap_or(true),
        sni_strict: p.sni_strict.or(g.sni_strict).unwrap_or(false),
        client_verify: p.client_verify.or(g.client_verify).unwrap_or_default(),
        client_verify_ca: p
            .client_verify_ca
            .clone()
            .or_else(|| g.client_verify_ca.clone()),
    }
}

/// A frontend as written.
#[derive(Debug, Clone)]
struct FrontendSpec {
    endpoint: Endpoint,
    certs: Vec<Cert>,
    match_global_certs: bool,
    policy: PolicySpec,
    origin: Origin,
}

/// The sources recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    from_file: BTreeMap<&'static str, Raw>,
    from_cli: BTreeMap<&'static str, Raw>,
    /// The file's frontends, then the command line's.
    frontends: Vec<FrontendSpec>,
    /// Top-level `pem-file`s, in file order.
    file_pems: Vec<Cert>,
    /// PEM arguments, in order.
    cli_pems: Vec<PathBuf>,
    warnings: Vec<String>,
}

/// `[HOST]:PORT`, `HOST,PORT` or either with `+CERT` (a certificate for this frontend only).
fn parse_frontend(text: &str, origin: Origin) -> Result<FrontendSpec, String> {
    let named_at = match &origin {
        Origin::File { path, line } => Some(format!("{path}:{line}")),
        Origin::CommandLine(_) => None,
    };
    let (address, cert) = match text.split_once('+') {
        Some((a, c)) if !c.is_empty() => (a, Some(c)),
        Some(_) => return Err(format!("invalid frontend '{text}': nothing after '+'")),
        None => (text, None),
    };
    Ok(FrontendSpec {
        endpoint: parse_endpoint(address)?,
        certs: cert
            .map(|c| Cert {
                origin: named_at,
                ..Cert::pem(PathBuf::from(c))
            })
            .into_iter()
            .collect(),
        match_global_certs: false,
        policy: PolicySpec::default(),
        origin,
    })
}

impl Settings {
    /// Reads a configuration file and records its entries.
    pub(crate) fn read_file(&mut self, path: &Path) -> Result<(), String> {
        let shown = path.display().to_string();
        let cannot = |e: std::io::Error| {
            format!(
                "cannot read configuration file {shown}: {}",
                crate::listen::describe(&e)
            )
        };
        // Bounded, so `--config=/dev/zero` is an error rather than a process eating memory; a
        // pipe (`--config=<(generate)`) still works.
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE + 1), &mut bytes)
            })
            .map_err(cannot)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(format!(
                "configuration file {shown} is larger than {} MiB: not a configuration file",
                MAX_FILE >> 20
            ));
        }
        self.read_bytes(&bytes, &shown)
    }

    /// Records a configuration file's contents; `shown` names it in messages.
    fn read_bytes(&mut self, bytes: &[u8], shown: &str) -> Result<(), String> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            format!("{shown}:{line}: not UTF-8 text")
        })?;
        let entries =
            config_file::parse(text).map_err(|e| format!("{shown}:{}: {}", e.line, e.message))?;
        for entry in &entries {
            self.apply_entry(entry, shown)
                .map_err(|(line, e)| format!("{shown}:{line}: {e}"))?;
        }
        Ok(())
    }

    /// The key an entry names, checked for where it stands and whether stud supports it.
    fn lookup(&self, entry: &Entry, here: Scope) -> Result<&'static Key, String> {
        let key = keys::by_name(&entry.key).ok_or_else(|| {
            if keys::KEYS.iter().any(|k| k.name == entry.key) {
                format!("'{}' is a command-line option, not a key", entry.key)
            } else {
                format!("unknown key '{}'", entry.key)
            }
        })?;
        let allowed = match here {
            Scope::Global => matches!(key.scope, Scope::Global | Scope::GlobalOrFrontend),
            Scope::Frontend => {
                matches!(key.scope, Scope::Frontend | Scope::GlobalOrFrontend)
                    || key.name == "pem-file"
            }
            Scope::PemBlock => key.scope == Scope::PemBlock || key.name == "ocsp-verify-staple",
            Scope::GlobalOrFrontend | Scope::CommandLine => false,
        };
        if !allowed {
            return Err(match key.scope {
                Scope::Frontend => format!("'{}' belongs in a frontend = {{ … }} block", key.name),
                Scope::PemBlock => format!("'{}' belongs in a pem-file = {{ … }} block", key.name),
                _ if here == Scope::PemBlock => {
                    format!("'{}' cannot be set in a pem-file block", key.name)
                }
                _ => format!("'{}' cannot be set in a frontend block", key.name),
            });
        }
        match (&entry.value, key.kind) {
            (Value::Block(_), _) if !matches!(key.name, "frontend" | "pem-file") => {
                Err(format!("'{}' takes a value, not a block", key.name))
            }
            (Value::Words(w), Kind::Bool | Kind::Text | Kind::Repeated) if w.len() > 1 => {
                Err(format!(
                    "'{}' takes one value, found {} (quote a value that has spaces)",
                    key.name,
                    w.len()
                ))
            }
            _ => Ok(key),
        }
    }

    /// Refuses a refused key set to anything but off; warns for one that differs here.
    fn check_support(&mut self, key: &Key, name: &str, text: &str) -> Result<(), String> {
        match key.support {
            Support::Refused(why) if !is_off(text) => {
                Err(format!("'{name}' is not supported: {why}"))
            }
            Support::Differs(how) if !is_off(text) && key.name != "ssl" => {
                self.warnings.push(format!("{name}: {how}"));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn words(entry: &Entry) -> Vec<String> {
        match &entry.value {
            Value::Words(w) => w.iter().map(|w| w.text.clone()).collect(),
            Value::Block(_) => Vec::new(),
        }
    }

    /// Records one top-level entry; a mistake comes back with its line (inside a block, the
    /// line of the inner entry).
    fn apply_entry(&mut self, entry: &Entry, path: &str) -> Result<(), (usize, String)> {
        let here = |m: String| (entry.line, m);
        let key = self.lookup(entry, Scope::Global).map_err(here)?;
        let origin = Origin::File {
            path: path.to_string(),
            line: entry.line,
        };
        match (key.name, &entry.value) {
            ("frontend", Value::Block(inner)) => {
                let spec = self.frontend_block(inner, origin, entry.line, path)?;
                self.frontends.push(spec);
                return Ok(());
            }
            ("frontend", Value::Words(w)) => {
                let text = w.first().map(|w| w.text.as_str()).unwrap_or_default();
                let spec = parse_frontend(text, origin).map_err(here)?;
                self.frontends.push(spec);
                return Ok(());
            }
            ("pem-file", Value::Block(inner)) => {
                let mut cert = self.pem_block(inner, entry.line, path)?;
                cert.origin = Some(format!("{path}:{}", entry.line));
                self.file_pems.push(cert);
                return Ok(());
            }
            ("pem-file", Value::Words(w)) => {
                if let Some(text) = w.first().map(|w| w.text.as_str()).filter(|t| !t.is_empty()) {
                    self.file_pems.push(Cert {
                        origin: Some(format!("{path}:{}", entry.line)),
                        ..Cert::pem(PathBuf::from(text))
                    });
                }
                return Ok(());
            }
            _ => {}
        }
        let words = Self::words(entry);
        let text = words.join(" ");
        self.check_support(key, key.name, &text).map_err(here)?;
        // An empty string leaves the default (stud.conf writes `chroot = ""`).
        if text.is_empty() {
            return Ok(());
        }
        // hitch keeps the later value, and files that say a key twice exist: so do we, aloud.
        if let Some(Origin::File { line, .. }) = self.from_file.get(key.name).map(|r| &r.origin) {
            self.warnings.push(format!(
                "{path}:{}: '{}' is set again (first on line {line}); the later value is used",
                entry.line, key.name
            ));
        }
        self.from_file.insert(key.name, Raw { words, origin });
        Ok(())
    }

    fn frontend_block(
        &mut self,
        inner: &[Entry],
        origin: Origin,
        line: usize,
        path: &str,
    ) -> Result<FrontendSpec, (usize, String)> {
        let at = |e: &Entry, msg: String| (e.line, msg);
        let mut host: Option<String> = None;
        let mut port: Option<u16> = None;
        let mut spec = FrontendSpec {
            endpoint: Endpoint {
                host: None,
                port: 0,
            },
            certs: Vec::new(),
            match_global_certs: false,
            policy: PolicySpec::default(),
            origin,
        };
        let mut seen: Vec<(&'static str, usize)> = Vec::new();
        for e in inner {
            let key = self.lookup(e, Scope::Frontend).map_err(|m| at(e, m))?;
            if key.name == "pem-file" {
                match &e.value {
                    Value::Block(b) => {
                        let mut cert = self.pem_block(b, e.line, path)?;
                        cert.origin = Some(format!("{path}:{}", e.line));
                        spec.certs.push(cert);
                    }
                    Value::Words(w) => {
                        if let Some(t) = w.first().filter(|t| !t.text.is_empty()) {
                            spec.certs.push(Cert {
                                origin: Some(format!("{path}:{}", e.line)),
                                ..Cert::pem(PathBuf::from(&t.text))
                            });
                        }
                    }
                }
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(name, _)| *name == key.name) {
                self.warnings.push(format!(
                    "{path}:{}: '{}' is set again in this block (first on line {first}); the later value is used",
                    e.line, key.name
                ));
            }
            seen.push((key.name, e.line));
            let text = Self::words(e).join(" ");
            self.check_support(key, key.name, &text)
                .map_err(|m| at(e, m))?;
            if text.is_empty() {
                continue;
            }
            let result: Result<(), String> = (|| {
                match key.name {
                    // `[::1]` as in the one-line form, or `::1`.
                    "host" => {
                        let bare = text.trim_start_matches('[').trim_end_matches(']');
                        host = (bare != "*").then(|| bare.to_string());
                    }
                    "port" => {
                        port = Some(text.parse::<u16>().map_err(|_| {
                            format!("invalid port '{text}': expected a number from 0 to 65535")
                        })?)
                    }
                    "match-global-certs" => spec.match_global_certs = parse_bool(&text)?,
                    "sni-nomatch-abort" => spec.policy.sni_strict = Some(parse_bool(&text)?),
                    "client-verify" => {
                        spec.policy.client_verify = Some(parse_client_verify(&text)?)
                    }
                    "client-verify-ca" => spec.policy.client_verify_ca = Some(PathBuf::from(&text)),
                    "prefer-server-ciphers" => {
                        spec.policy.prefer_server_ciphers = Some(parse_bool(&text)?)
                    }
                    "tls-protos" => spec.policy.versions = Some(parse_versions(&text)?),
                    "tls" => {
                        let on = parse_bool(&text)?;
                        if on {
                            spec.policy.versions = Some(vec![TlsVersion::Tls12, TlsVersion::Tls13]);
                        }
                    }
                    "ssl" => {
                        let on = parse_bool(&text)?;
                        spec.policy.ssl = on;
                    }
                    "ciphers" => spec.policy.ciphers = Some(text.clone()),
                    "ciphersuites" => spec.policy.ciphersuites = Some(parse_ciphersuites(&text)?),
                    _ => {}
                }
                Ok(())
            })();
            result.map_err(|m| at(e, m))?;
        }
        let Some(port) = port else {
            return Err((line, "the frontend block has no port".into()));
        };
        spec.endpoint = Endpoint { host, port };
        Ok(spec)
    }

    fn pem_block(
        &mut self,
        inner: &[Entry],
        line: usize,
        path: &str,
    ) -> Result<Cert, (usize, String)> {
        let mut cert: Option<PathBuf> = None;
        let mut key: Option<PathBuf> = None;
        let mut ocsp: Option<PathBuf> = None;
        for e in inner {
            let k = self.lookup(e, Scope::PemBlock).map_err(|m| (e.line, m))?;
            let text = Self::words(e).join(" ");
            self.check_support(k, k.name, &text)
                .map_err(|m| (e.line, m))?;
            let slot = match k.name {
                "cert" => &mut cert,
                "private-key" => &mut key,
                "ocsp-resp-file" => &mut ocsp,
                _ => continue,
            };
            if slot.is_some() {
                self.warnings.push(format!(
                    "{path}:{}: '{}' is set again in this block; the later value is used",
                    e.line, k.name
                ));
            }
            if !text.is_empty() {
                *slot = Some(PathBuf::from(&text));
            }
        }
        let chain = cert.ok_or((line, "the pem-file block has no cert".to_string()))?;
        Ok(Cert {
            chain,
            key,
            ocsp,
            origin: None,
        })
    }

    /// Records one command-line option.
    pub(crate) fn apply_flag(&mut self, flag: &Flag) -> Result<(), String> {
        let key = flag.key;
        let text = match (&flag.value, key.kind) {
            (None, Kind::Bool) => "on".to_string(),
            (Some(v), Kind::Bool) => {
                parse_bool(v).map_err(|e| format!("option {}: {e}", flag.spelled))?;
                v.clone()
            }
            (Some(v), _) => v.clone(),
            (None, _) => return Err(format!("option {} needs a value", keys::spelling(key))),
        };
        self.check_support(key, &flag.spelled, &text)?;
        let origin = Origin::CommandLine(flag.spelled.clone());
        if key.name == "frontend" {
            let spec = parse_frontend(&text, origin)?;
            self.frontends.push(spec);
            return Ok(());
        }
        if self
            .from_cli
            .get(key.name)
            .is_some_and(|earlier| !earlier.origin.is_file())
        {
            return Err(format!(
                "option {} given more than once",
                keys::spelling(key)
            ));
        }
        self.from_cli.insert(
            key.name,
            Raw {
                words: vec![text],
                origin,
            },
        );
        Ok(())
    }

    /// The PEM arguments (certificates for every frontend without its own).
    pub(crate) fn add_pem_arguments(&mut self, pems: Vec<PathBuf>) {
        self.cli_pems.extend(pems);
    }

    /// The value of `name`: the command line's if given there, else the file's.
    fn raw(&self, name: &str) -> Option<&Raw> {
        self.from_cli.get(name).or_else(|| self.from_file.get(name))
    }

    /// `name` parsed by `parse`, with the file and line in front of a file's mistakes.
    fn get<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.raw(name) {
            None => Ok(None),
            Some(raw) => parse(&raw.text())
                .map(Some)
                .map_err(|e| format!("{}{e}", raw.origin.prefix())),
        }
    }

    fn flag(&self, name: &str) -> Result<bool, String> {
        Ok(self.get(name, parse_bool)?.unwrap_or(false))
    }

    fn secs(&self, name: &'static str, what: &str) -> Result<Option<u64>, String> {
        self.get(name, |s| parse_secs(what, s))
    }

    /// The client-address header and whether a PROXY header is expected in front. The group
    /// `write-ip`, `write-proxy*`, `proxy-proxy` is taken from the command line alone when it
    /// names any of them, so the command line can replace a file's choice.
    fn client_address(
        &self,
        notices: &mut Vec<String>,
    ) -> Result<(ClientAddressMode, bool), String> {
        const GROUP: [&str; 5] = [
            "write-ip",
            "write-proxy",
            "write-proxy-v1",
            "write-proxy-v2",
            "proxy-proxy",
        ];
        let layer = if GROUP.iter().any(|k| self.from_cli.contains_key(k)) {
            &self.from_cli
        } else {
            &self.from_file
        };
        let mut chosen: Vec<(&str, &Raw)> = Vec::new();
        for name in GROUP {
            if let Some(raw) = layer.get(name) {
                let on =
                    parse_bool(&raw.text()).map_err(|e| format!("{}{e}", raw.origin.prefix()))?;
                if on {
                    chosen.push((name, raw));
                }
            }
        }
        if chosen.len() > 1 {
            let names: Vec<String> = chosen.iter().map(|(n, raw)| raw.name(n)).collect();
            let prefix = chosen[chosen.len() - 1].1.origin.prefix();
            return Err(format!(
                "{prefix}{} cannot be used together",
                names.join(" and ")
            ));
        }
        let accept_proxy = self.flag("accept-proxy")?;
        let Some((name, raw)) = chosen.first() else {
            return Ok((ClientAddressMode::None, accept_proxy));
        };
        let explicit = "write-proxy-v1 and write-proxy-v2 name the version explicitly";
        Ok(match *name {
            "write-ip" => (ClientAddressMode::WriteIp, accept_proxy),
            "write-proxy" if raw.origin.is_file() => {
                notices.push(format!(
                    "write-proxy in a configuration file means PROXY v2, as in hitch: sending PROXY v2 headers to the backend ({explicit})"
                ));
                (ClientAddressMode::ProxyV2, accept_proxy)
            }
            "write-proxy" => {
                notices.push(format!(
                    "--write-proxy on the command line means PROXY v1, as in the original stud: sending PROXY v1 lines to the backend ({explicit})"
                ));
                (ClientAddressMode::ProxyV1, accept_proxy)
            }
            "write-proxy-v1" => (ClientAddressMode::ProxyV1, accept_proxy),
            // The original stud passed its balancer's v1 line on; hitch passes on what came (v1
            // or v2) and documented proxy-proxy as write-proxy-v2. The address is re-encoded.
            "proxy-proxy" if raw.origin.is_file() => {
                notices.push(format!(
                    "proxy-proxy in a configuration file, as in hitch: reading a PROXY v1 or v2 header from each client and passing its address on to the backend as PROXY v2 ({explicit}, with accept-proxy)"
                ));
                (ClientAddressMode::ProxyV2, true)
            }
            "proxy-proxy" => {
                notices.push(format!(
                    "--proxy-proxy on the command line, as in the original stud: reading a PROXY v1 or v2 header from each client and passing its address on to the backend as PROXY v1 ({explicit}, with --accept-proxy)"
                ));
                (ClientAddressMode::ProxyV1, true)
            }
            _ => (ClientAddressMode::ProxyV2, accept_proxy),
        })
    }

    /// Lays the sources over the defaults and checks the result.
    pub(crate) fn finish(mut self) -> Result<Args, String> {
        let mut notices = Vec::new();
        let (client_address, accept_proxy) = self.client_address(&mut notices)?;
        let ssl = self.flag("ssl")?;
        let any_ssl = ssl || self.frontends.iter().any(|f| f.policy.ssl);
        let global = PolicySpec {
            versions: self.get("tls-protos", parse_versions)?,
            ssl,
            ciphers: self.get("ciphers", |s| Ok(s.to_string()))?,
            ciphersuites: self.get("ciphersuites", parse_ciphersuites)?,
            prefer_server_ciphers: self.get("prefer-server-ciphers", parse_bool)?,
            sni_strict: self.get("sni-nomatch-abort", parse_bool)?,
            client_verify: self.get("client-verify", parse_client_verify)?,
            client_verify_ca: self.get("client-verify-ca", |s| Ok(PathBuf::from(s)))?,
        };
        let alpn = self.get("alpn-protos", parse_alpn)?.unwrap_or_default();
        let crl = self.get("crl", |s| Ok(PathBuf::from(s)))?;
        let client_verify_depth = self.get("client-verify-depth", |s| {
            s.parse::<usize>()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| {
                    format!("invalid client-verify-depth '{s}': expected a number from 0 to 100")
                })
        })?;
        let proxy_client_cert = self.flag("proxy-client-cert")?;
        // hitch's proxy-tlv and proxy-authority are on unless turned off.
        let proxy_tlv = self.get("proxy-tlv", parse_bool)?.unwrap_or(true);
        let proxy_authority = self.get("proxy-authority", parse_bool)?.unwrap_or(true);
        let ecdh_curve = self.get("ecdh-curve", check_curves)?;
        let backend = self
            .get("backend", parse_backend)?
            .unwrap_or(Backend::Tcp(Endpoint {
                host: Some("127.0.0.1".into()),
                port: 8000,
            }));
        let backend_sources = self
            .get("backend-source", |s| {
                s.split([',', ' '])
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        a.trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<std::net::IpAddr>()
                            .map_err(|_| {
                                format!("invalid backend-source '{a}': expected IP addresses")
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?
            .unwrap_or_default();
        let backend_refresh = self.secs("backend-refresh", "backend refresh interval")?;
        let mut backend_refresh = backend_refresh.filter(|s| *s > 0).map(Duration::from_secs);
        if backend_refresh.is_some() && matches!(backend, Backend::Unix(_)) {
            self.warnings.push(format!(
                "backend-refresh: backend {backend} is a UNIX socket, with no name to resolve; ignored"
            ));
            backend_refresh = None;
        }
        let workers = self.get("workers", parse_workers)?.unwrap_or(1);
        let backlog = self
            .get("backlog", |s| match s.parse::<i32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("invalid backlog '{s}': expected a positive number")),
            })?
            .unwrap_or(100);
        let defaults = crate::args::Defaults::engine();
        let keepalive = self
            .secs("keepalive", "keepalive")?
            .unwrap_or(defaults.keepalive);
        let handshake_timeout = self
            .secs("ssl-handshake-timeout", "handshake timeout")?
            .unwrap_or(defaults.handshake_timeout);
        let backend_connect_timeout = self
            .secs("backend-connect-timeout", "backend connect timeout")?
            .unwrap_or(defaults.backend_connect_timeout);
        for (name, secs) in [
            ("ssl-handshake-timeout", handshake_timeout),
            ("backend-connect-timeout", backend_connect_timeout),
        ] {
            if secs == 0 {
                let (prefix, shown) = self
                    .raw(name)
                    .map_or((String::new(), name.to_string()), |r| {
                        (r.origin.prefix(), r.name(name))
                    });
                return Err(format!(
                    "{prefix}invalid {shown} '0': must be at least 1 second"
                ));
            }
        }
        let idle_timeout = self.secs("idle-timeout", "idle timeout")?.unwrap_or(0);
        let drain_timeout = self
            .secs("drain-timeout", "drain timeout")?
            .unwrap_or(defaults.drain_timeout);
        let max_conns = self.get("max-conns", |s| match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "invalid --max-conns '{s}': expected a number of connections, at least 1"
            )),
        })?;
        let worker_timeout = self
            .get("worker-timeout", |s| {
                match parse_secs("worker timeout", s)? {
                    // Shorter than a busy wake can take on a loaded machine: a healthy worker could
                    // be taken for a stuck one.
                    n @ 1..=2 => Err(format!(
                        "invalid worker timeout '{n}': use 0 (off) or at least 3 seconds"
                    )),
                    n => Ok(n),
                }
            })?
            .unwrap_or(30);
        let path = |s: &str| Ok(PathBuf::from(s));
        let text = |s: &str| Ok(s.to_string());
        let chroot = self.get("chroot", path)?;
        let user = self.get("user", text)?;
        let group = self.get("group", text)?;
        let pidfile = self.get("pidfile", path)?;
        let log_filename = self.get("log-filename", path)?;
        let metrics = self.get("metrics", parse_endpoint)?;
        let log_json = self
            .get("log-format", |s| match s {
                "text" => Ok(false),
                "json" => Ok(true),
                other => Err(format!(
                    "invalid log-format '{other}': expected text or json"
                )),
            })?
            .unwrap_or(false);
        let ticket_secret = self.get("ticket-secret", path)?;
        let syslog_facility = self
            .get("syslog-facility", |s| {
                crate::log::facility_from_name(s)
                    .map(|_| s.to_string())
                    .ok_or_else(|| format!("unknown syslog facility '{s}'"))
            })?
            .unwrap_or_else(|| "daemon".into());
        let log_level = self.get("log-level", |s| match s {
            "0" | "1" | "2" => Ok(s.as_bytes()[0] - b'0'),
            _ => Err(format!("invalid log level '{s}': expected 0, 1 or 2")),
        })?;
        let quiet = match (self.raw("quiet"), self.raw("log-level")) {
            // Whichever the command line gave wins over the file; within one source, quiet.
            (Some(q), Some(l)) if l.origin.is_file() || !q.origin.is_file() => {
                self.flag("quiet")?
            }
            (_, Some(_)) => log_level.is_some_and(|l| l < 2),
            _ => self.flag("quiet")?,
        };
        if log_level == Some(0) {
            self.warnings.push(
                "log-level 0: stud still logs errors (and warnings); it logs nothing else".into(),
            );
        }
        let pem_dir = self.get("pem-dir", |s| Ok(PathBuf::from(s)))?;
        let pem_dir_glob = self.get("pem-dir-glob", text)?;
        if pem_dir.is_none() && pem_dir_glob.is_some() {
            return Err(self.at("pem-dir-glob", "pem-dir-glob needs pem-dir"));
        }
        let pem_dir = pem_dir.map(|dir| PemDir {
            dir,
            glob: pem_dir_glob,
        });
        let ocsp_dir = self.get("ocsp-dir", |s| Ok(PathBuf::from(s)))?;
        let sockets = SocketOptions {
            fastopen: self.flag("tcp-fastopen")?.then_some(256),
            recv_bufsize: self.get("recv-bufsize", |s| parse_size("recv-bufsize", s))?,
            send_bufsize: self.get("send-bufsize", |s| parse_size("send-bufsize", s))?,
        };
        let self_signed = self.flag("self-signed")?;

        // Certificates: the command line's first (the first is the default, as in stud), then
        // the file's with its last `pem-file` first (the default, as in hitch).
        let mut pems: Vec<Cert> = self.cli_pems.iter().map(|p| Cert::pem(p.clone())).collect();
        if let Some(last) = self.file_pems.pop() {
            pems.push(last);
            pems.append(&mut self.file_pems);
        }
        let mut frontends = Vec::new();
        for spec in &self.frontends {
            let p = &spec.policy;
            let g = &global;
            let duplicate = spec.endpoint.port != 0
                && frontends
                    .iter()
                    .any(|f: &Frontend| f.endpoint == spec.endpoint);
            if duplicate {
                return Err(format!(
                    "{}frontend {} given more than once",
                    spec.origin.prefix(),
                    spec.endpoint
                ));
            }
            frontends.push(Frontend {
                endpoint: spec.endpoint.clone(),
                global_certs: spec.certs.is_empty() || spec.match_global_certs,
                certs: spec.certs.clone(),
                tls: policy(p, g),
            });
        }
        if frontends.is_empty() {
            frontends.push(Frontend {
                endpoint: Endpoint {
                    host: None,
                    port: 8443,
                },
                certs: Vec::new(),
                global_certs: true,
                tls: policy(&PolicySpec::default(), &global),
            });
        }
        let client = self.client_mode(&backend, client_address, accept_proxy, &global)?;
        let has_global = !pems.is_empty() || pem_dir.is_some();
        if client.is_some() {
            if self_signed {
                return Err(
                    "--self-signed cannot be combined with --client: clients speak plaintext"
                        .into(),
                );
            }
            if has_global || frontends.iter().any(|f| !f.certs.is_empty()) {
                self.warnings.push(
                    "client mode: the certificates given are not used (clients speak plaintext; a certificate for the backend is backend-cert)".into(),
                );
            }
        } else if self_signed && has_global {
            return Err("--self-signed cannot be combined with a PEM file".into());
        }
        if client.is_none() && !self_signed && !has_global {
            if let Some(bare) = frontends.iter().find(|f| f.certs.is_empty()) {
                return Err(format!(
                    "no certificate for frontend {}: give a PEM file (certificate chain and key), pem-file, pem-dir or --self-signed",
                    bare.endpoint
                ));
            }
        }
        Ok(Args {
            ssl: any_ssl,
            frontends,
            pems,
            pem_dir,
            ocsp_dir,
            backend,
            backend_refresh,
            backend_sources,
            workers,
            client_address,
            accept_proxy,
            alpn,
            crl,
            client_verify_depth,
            proxy_client_cert,
            proxy_tlv,
            proxy_authority,
            ecdh_curve,
            client,
            backlog,
            keepalive: (keepalive > 0).then(|| Duration::from_secs(keepalive)),
            sockets,
            chroot,
            user,
            group,
            quiet,
            log_conns: self.flag("log-conns")?,
            syslog: self.flag("syslog")?,
            syslog_facility,
            log_filename,
            metrics,
            log_json,
            daemon: self.flag("daemon")?,
            pidfile,
            test_only: self.flag("test")?,
            handshake_timeout: Duration::from_secs(handshake_timeout),
            backend_connect_timeout: Duration::from_secs(backend_connect_timeout),
            idle_timeout: (idle_timeout > 0).then(|| Duration::from_secs(idle_timeout)),
            drain_timeout: Duration::from_secs(drain_timeout),
            max_conns,
            worker_timeout: (worker_timeout > 0).then(|| Duration::from_secs(worker_timeout)),
            ticket_secret,
            ticket_secret_bytes: None,
            reuseport: self.flag("reuseport")?,
            self_signed,
            warnings: self.warnings,
            notices,
            sources: crate::args::Sources::default(),
        })
    }

    /// Client mode's settings, with `--client`; the backend-* keys without it are an error, and
    /// so are the settings that need TLS from the clients.
    fn client_mode(
        &self,
        backend: &Backend,
        client_address: ClientAddressMode,
        accept_proxy: bool,
        global: &PolicySpec,
    ) -> Result<Option<ClientMode>, String> {
        const KEYS: [&str; 4] = [
            "backend-ca",
            "backend-insecure",
            "backend-sni",
            "backend-cert",
        ];
        if !self.flag("client")? {
            // An empty or "off" value sets nothing, as for every key.
            let set = |k: &&&str| self.raw(k).is_some_and(|r| !is_off(&r.text()));
            if let Some(name) = KEYS.iter().find(set) {
                return Err(self.at(name, "only has a use in client mode (--client)"));
            }
            return Ok(None);
        }
        if client_address != ClientAddressMode::None || accept_proxy {
            return Err(
                "--client cannot be combined with write-ip, write-proxy, proxy-proxy or accept-proxy: no header goes before the TLS handshake with the backend, and clients send plaintext".into(),
            );
        }
        let verify = global
            .client_verify
            .is_some_and(|m| m != ClientVerifyMode::None)
            || self.frontends.iter().any(|f| {
                f.policy
                    .client_verify
                    .is_some_and(|m| m != ClientVerifyMode::None)
            });
        if verify {
            return Err(
                "--client cannot be combined with client-verify: clients speak plaintext".into(),
            );
        }
        // An empty value is no value.
        let path = |s: &str| Ok((!s.is_empty()).then(|| PathBuf::from(s)));
        let insecure = self.flag("backend-insecure")?;
        let ca = self.get("backend-ca", path)?.flatten();
        if insecure && ca.is_some() {
            return Err(self.at(
                "backend-ca",
                "cannot be combined with backend-insecure (which verifies nothing)",
            ));
        }
        let sni = self.get(
            "backend-sni",
            |s| Ok((!s.is_empty()).then(|| s.to_string())),
        )?;
        let server_name = match sni.flatten() {
            Some(name) => name,
            None => match backend {
                Backend::Tcp(Endpoint {
                    host: Some(host), ..
                }) => host.clone(),
                _ => {
                    return Err(format!(
                        "--client: backend {backend} has no host name to verify; give --backend-sni=NAME"
                    ))
                }
            },
        };
        Ok(Some(ClientMode {
            ca,
            insecure,
            server_name,
            cert: self.get("backend-cert", path)?.flatten(),
        }))
    }

    /// `message` with the origin of `name`'s value in front.
    fn at(&self, name: &str, message: &str) -> String {
        match self.raw(name) {
            Some(raw) => format!("{}{}: {message}", raw.origin.prefix(), raw.name(name)),
            None => message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Command};
    use std::ffi::OsString;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Writes `text` to a fresh file and parses `--config=FILE` followed by `args`.
    fn with_file(text: &str, args: &[&str]) -> Result<Args, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "stud-settings-{}-{}.conf",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).expect("write config");
        let mut raw: Vec<OsString> = vec![format!("--config={}", path.display()).into()];
        raw.extend(args.iter().map(OsString::from));
        let result = parse(raw);
        let _ = std::fs::remove_file(&path);
        match result? {
            Command::Run(a) => Ok(*a),
            other => Err(format!("not a run: {other:?}")),
        }
    }

    /// The error for a file, with the file's name cut off: `LINE: why`.
    fn file_error(text: &str) -> String {
        let err = with_file(text, &["x.pem"]).expect_err(text);
        err.split_once(".conf:")
            .map_or(err.clone(), |(_, rest)| rest.to_string())
    }

    #[test]
    fn client_mode_needs_no_certificate_and_verifies_the_backend_host_by_default() {
        let a = with_file("", &["--client", "-b", "backend.example,443"]).expect("no PEM needed");
        let client = a.client.expect("client mode");
        assert_eq!(client.server_name, "backend.example");
        assert!(!client.insecure && client.ca.is_none() && client.cert.is_none());
        let a = with_file(
            "client = on\nbackend-ca = \"ca.pem\"\nbackend-cert = \"me.pem\"\n",
            &["--backend-sni=inner.example"],
        )
        .expect("from the file");
        let client = a.client.expect("client mode");
        assert_eq!(client.server_name, "inner.example");
        assert_eq!(client.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(client.cert, Some(PathBuf::from("me.pem")));
        let a = with_file(
            "backend-ca = \"\"\nbackend-sni = \"\"\n",
            &["--client", "x.pem"],
        )
        .expect("a PEM is unused, empty values are no values");
        assert_eq!(
            a.client.as_ref().map(|c| c.server_name.as_str()),
            Some("127.0.0.1")
        );
        assert_eq!(a.client.as_ref().and_then(|c| c.ca.clone()), None);
        assert!(
            a.warnings.iter().any(|w| w.contains("not used")),
            "{:?}",
            a.warnings
        );
        let a = with_file("backend-insecure = off\nbackend-ca = \"\"\n", &["x.pem"])
            .expect("off and empty values need no --client");
        assert!(a.client.is_none());
    }

    #[test]
    fn client_mode_refuses_what_needs_tls_from_clients() {
        for (args, needle) in [
            (&["--backend-ca=ca.pem", "x.pem"][..], "--client"),
            (&["--backend-insecure", "x.pem"][..], "--client"),
            (&["--client", "--write-proxy"][..], "write-proxy"),
            (&["--client", "--write-ip"][..], "write-ip"),
            (&["--client", "--accept-proxy"][..], "accept-proxy"),
            (
                &["--client", "--client-verify=required"][..],
                "client-verify",
            ),
            (&["--client", "--self-signed"][..], "--self-signed"),
            (
                &["--client", "--backend-insecure", "--backend-ca=ca.pem"][..],
                "backend-insecure",
            ),
            (
                &["--client", "-b", "/run/backend.sock"][..],
                "--backend-sni",
            ),
        ] {
            let err = with_file("", args).expect_err(needle);
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn hitch_booleans_work_on_the_command_line() {
        let a = with_file("", &["--quiet=on", "--daemon=off", "--syslog", "x.pem"]).expect("ok");
        assert!(a.quiet && !a.daemon && a.syslog);
        let a = with_file("quiet = on\ndaemon = yes\n", &["--quiet=off", "x.pem"]).expect("ok");
        assert!(!a.quiet, "the command line replaces the file");
        assert!(a.daemon, "what the command line leaves alone stays");
        let err = with_file("", &["--quiet=maybe", "x.pem"]).expect_err("bad bool");
        assert!(
            err.contains("--quiet") && err.contains("on or off"),
            "{err}"
        );
    }

    #[test]
    fn the_command_line_overrides_the_file_and_lists_add_up() {
        let text = "workers = 4\nbackend = \"[10.0.0.1]:80\"\nfrontend = \"[127.0.0.1]:443\"\n\
                    pem-file = \"a.pem\"\n";
        let a = with_file(text, &["-n", "2", "-f", "127.0.0.1,444", "b.pem"]).expect("ok");
        assert_eq!(a.workers, 2);
        assert_eq!(a.backend.to_string(), "10.0.0.1,80");
        let fronts: Vec<String> = a.frontends.iter().map(|f| f.endpoint.to_string()).collect();
        assert_eq!(fronts, ["127.0.0.1,443", "127.0.0.1,444"]);
        let names: Vec<String> = a
            .pems
            .iter()
            .map(|c| {
                c.chain
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .map(Option::unwrap_or_default)
            .collect();
        assert_eq!(names, ["b.pem", "a.pem"]);
    }

    #[test]
    fn the_last_pem_file_of_a_file_is_the_default_as_in_hitch() {
        let a = with_file(
            "pem-file = \"a.pem\"\npem-file = \"b.pem\"\npem-file = \"c.pem\"\n",
            &[],
        )
        .expect("ok");
        let names: Vec<_> = a.pems.iter().filter_map(|c| c.chain.file_name()).collect();
        assert_eq!(names, ["c.pem", "a.pem", "b.pem"]);
    }

    #[test]
    fn write_proxy_means_v1_on_the_command_line_and_v2_in_a_file() {
        let a = with_file("", &["--write-proxy", "x.pem"]).expect("ok");
        assert_eq!(a.client_address, ClientAddressMode::ProxyV1);
        assert!(a.notices.iter().any(|n| n.contains("PROXY v1")
            && n.contains("write-proxy-v1")
            && n.contains("write-proxy-v2")));
        let a = with_file("write-proxy = on\n", &["x.pem"]).expect("ok");
        assert_eq!(a.client_address, ClientAddressMode::ProxyV2);
        assert!(a
            .notices
            .iter()
            .any(|n| n.contains("PROXY v2") && n.contains("write-proxy-v1")));
        // The command line replaces the file's choice rather than clashing with it.
        let a = with_file("write-proxy-v2 = on\n", &["--write-ip", "x.pem"]).expect("ok");
        assert_eq!(a.client_address, ClientAddressMode::WriteIp);
        assert!(file_error("write-ip = on\nwrite-proxy-v1 = on\n")
            .contains("write-ip and write-proxy-v1 cannot be used together"));
    }

    #[test]
    fn proxy_proxy_accepts_a_header_and_passes_the_address_on() {
        let a = with_file("", &["--proxy-proxy", "x.pem"]).expect("ok");
        assert!(a.accept_proxy);
        assert_eq!(a.client_address, ClientAddressMode::ProxyV1);
        let a = with_file("proxy-proxy = on\n", &["x.pem"]).expect("ok");
        assert!(a.accept_proxy);
        assert_eq!(a.client_address, ClientAddressMode::ProxyV2);
        let a = with_file("proxy-proxy = off\n", &["x.pem"]).expect("ok");
        assert!(!a.accept_proxy);
        assert_eq!(a.client_address, ClientAddressMode::None);
    }

    #[test]
    fn frontend_blocks_own_their_certificates_and_policy() {
        let text = "\
ciphers = \"ECDHE-RSA-AES128-GCM-SHA256\"
pem-file = \"global.pem\"
frontend = {
    host = \"127.0.0.1\"
    port = \"443\"
    pem-file = \"a.pem\"
    tls-protos = TLSv1.3
    sni-nomatch-abort = on
}
frontend = {
    host = \"*\"
    port = \"8443\"
    pem-file = { cert = \"b.crt\" private-key = \"b.key\" ocsp-resp-file = \"b.ocsp\" }
    match-global-certs = on
    prefer-server-ciphers = off
    ciphersuites = \"TLS_AES_128_GCM_SHA256\"
}
frontend = \"[::1]:9443\"
";
        let a = with_file(text, &[]).expect("ok");
        assert_eq!(a.frontends.len(), 3);
        let (one, two, three) = (&a.frontends[0], &a.frontends[1], &a.frontends[2]);
        assert_eq!(one.endpoint.to_string(), "127.0.0.1,443");
        assert_eq!(one.certs.len(), 1);
        assert!(!one.global_certs);
        assert_eq!(one.tls.versions, [TlsVersion::Tls13]);
        assert!(one.tls.sni_strict && one.tls.prefer_server_ciphers);
        assert_eq!(
            one.tls.ciphers.as_deref(),
            Some("ECDHE-RSA-AES128-GCM-SHA256")
        );
        assert_eq!(two.endpoint.to_string(), "*,8443");
        assert!(two.global_certs);
        assert!(two.certs[0]
            .key
            .as_ref()
            .is_some_and(|k| k.ends_with("b.key")));
        assert!(two.certs[0]
            .ocsp
            .as_ref()
            .is_some_and(|k| k.ends_with("b.ocsp")));
        assert!(!two.tls.prefer_server_ciphers && !two.tls.sni_strict);
        assert_eq!(
            two.tls.ciphers.as_deref(),
            Some("ECDHE-RSA-AES128-GCM-SHA256:-TLSv1.3:TLS_AES_128_GCM_SHA256")
        );
        assert_eq!(three.endpoint.host.as_deref(), Some("::1"));
        let bracketed = with_file(
            "frontend = {\n host = \"[::1]\"\n port = 443\n}\n",
            &["x.pem"],
        )
        .expect("ok");
        assert_eq!(bracketed.frontends[0].endpoint.host.as_deref(), Some("::1"));
        assert!(three.global_certs && three.certs.is_empty());
        assert_eq!(three.tls.versions, [TlsVersion::Tls12, TlsVersion::Tls13]);
    }

    #[test]
    fn a_frontend_may_name_its_own_certificate_on_the_command_line() {
        let a = with_file(
            "",
            &["-f", "[127.0.0.1]:443+site.pem", "-f", "[*]:80", "x.pem"],
        )
        .expect("ok");
        assert!(a.frontends[0].certs[0].chain.ends_with("site.pem"));
        assert!(!a.frontends[0].global_certs);
        assert!(a.frontends[1].global_certs);
        // Without any global certificate a frontend of its own is enough.
        let a = with_file("", &["-f", "[127.0.0.1]:443+site.pem"]).expect("ok");
        assert_eq!(a.frontends.len(), 1);
        let err = with_file("", &["-f", "[127.0.0.1]:443+site.pem", "-f", "[*]:80"]).expect_err("");
        assert!(err.contains("no certificate for frontend *,80"), "{err}");
    }

    #[test]
    fn mistakes_in_a_file_name_their_line() {
        for (text, want) in [
            (
                "workers = 2\nfrobnicate = 1\n",
                "2: unknown key 'frobnicate'",
            ),
            (
                "backend = \"[127.0.0.1]:8000\"\nworkers = many\n",
                "2: invalid worker count 'many'",
            ),
            (
                "daemon = maybe\n",
                "1: invalid value 'maybe': expected on or off",
            ),
            (
                "frontend = {\n  port = 443\n  frobnicate = 1\n}\n",
                "3: unknown key 'frobnicate'",
            ),
            (
                "frontend = {\n  host = \"*\"\n}\n",
                "1: the frontend block has no port",
            ),
            (
                "frontend = \"[*]:443\"\n\nfrontend = {\n port = 443\n}\n",
                "3: frontend *,443 given more than once",
            ),
            ("host = \"*\"\n", "1: 'host' belongs in a frontend"),
            (
                "frontend = {\n port = 1\n workers = 2\n}\n",
                "3: 'workers' cannot be set in a frontend block",
            ),
            (
                "pem-file = {\n private-key = \"k\"\n}\n",
                "1: the pem-file block has no cert",
            ),
            ("workers = 1 2\n", "1: 'workers' takes one value, found 2"),
            (
                "ssl-engine = \"rdrand\"\n",
                "1: 'ssl-engine' is not supported: there is no OpenSSL",
            ),
            (
                "client-verify = sometimes\n",
                "1: invalid client-verify 'sometimes'",
            ),
            (
                "client-verify-depth = deep\n",
                "1: invalid client-verify-depth 'deep'",
            ),
            (
                "tls-protos = TLSv1.1\n",
                "1: tls-protos: TLSv1.1 is not offered",
            ),
            (
                "ciphersuites = \"ECDHE-RSA-AES128-GCM-SHA256\"\n",
                "1: ciphersuites: 'ECDHE-RSA",
            ),
            ("config = \"x\"\n", "1: 'config' is a command-line option"),
            (
                "ecdh-curve = \"X25519:prime265v1\"\n",
                "1: invalid ecdh-curve: unknown group 'prime265v1'",
            ),
            (
                "proxy-tlv = maybe\n",
                "1: invalid value 'maybe': expected on or off",
            ),
            (
                "workers = {\n}\n",
                "1: 'workers' takes a value, not a block",
            ),
        ] {
            let err = file_error(text);
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn keys_that_differ_here_warn_and_their_defaults_stay_silent() {
        let a = with_file(
            "ssl-engine = \"\"\nclient-verify = none\nsession-cache = 0\necdh-curve = \"auto\"\n\
             ocsp-dir = \"/var/lib/hitch/\"\n",
            &["x.pem"],
        )
        .expect("ok");
        assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
        assert!(a.warnings[0].starts_with("ocsp-dir: "), "{:?}", a.warnings);
        let a = with_file(
            "session-cache = 100\necdh-curve = \"X25519:prime256v1\"\n",
            &["x.pem"],
        )
        .expect("ok");
        assert!(a.warnings.iter().any(|w| w.starts_with("session-cache: ")));
        // ecdh-curve is honoured: no warning, the list reaches the model.
        assert!(!a.warnings.iter().any(|w| w.contains("ecdh-curve")));
        assert_eq!(a.ecdh_curve.as_deref(), Some("X25519:prime256v1"));
    }

    #[test]
    fn the_2016_stud_conf_loads() {
        // The keys and forms of the 2016 stud's stud.conf: empty strings leave defaults.
        let text = "\
frontend = \"[*]:8443\"
backend = \"[127.0.0.1]:8000\"
pem-file = \"x.pem\"
ssl = off
tls = on
ciphers = \"\"
ssl-engine = \"\"
prefer-server-ciphers = off
workers = 1
backlog = 100
keepalive = 3600
chroot = \"\"
user = \"\"
group = \"\"
quiet = off
syslog = off
syslog-facility = \"daemon\"
daemon = off
write-ip = off
write-proxy = off
proxy-proxy = off
shared-cache = 0
shared-cache-listen = \"\"
shared-cache-peer = \"\"
shared-cache-if = \"\"
";
        let a = with_file(text, &[]).expect("stud.conf loads");
        assert_eq!(a.frontends[0].endpoint.to_string(), "*,8443");
        assert!(a.user.is_none() && a.chroot.is_none());
        assert!(!a.frontends[0].tls.prefer_server_ciphers);
        assert_eq!(a.client_address, ClientAddressMode::None);
    }

    #[test]
    fn a_key_set_twice_in_a_file_keeps_the_later_value_with_a_warning() {
        let a = with_file("workers = 2\n\nworkers = 3\n", &["x.pem"]).expect("hitch accepts it");
        assert_eq!(a.workers, 3);
        assert!(
            a.warnings.iter().any(|w| w.ends_with(
                ".conf:3: 'workers' is set again (first on line 1); the later value is used"
            )),
            "{:?}",
            a.warnings
        );
        let err = with_file("", &["-n", "2", "--workers=3", "x.pem"]).expect_err("twice");
        assert!(err.contains("given more than once"), "{err}");
    }

    #[test]
    fn backend_refresh_is_seconds_and_zero_is_never() {
        let every = |text: &str, args: &[&str]| with_file(text, args).expect("ok").backend_refresh;
        assert_eq!(every("", &["x.pem"]), None);
        assert_eq!(every("backend-refresh = 0\n", &["x.pem"]), None);
        assert_eq!(
            every("backend-refresh = 30\n", &["x.pem"]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            every("backend-refresh = 30\n", &["-R", "5", "x.pem"]),
            Some(Duration::from_secs(5))
        );
        assert!(file_error("backend-refresh = soon\n").contains("backend refresh interval"));
    }

    #[test]
    fn the_default_config_sets_exactly_the_defaults() {
        let from_file = with_file(&crate::args::default_config(), &["x.pem"]).expect("loads");
        let without = parse(vec!["x.pem".into()]).expect("parses");
        let Command::Run(without) = without else {
            panic!("not a run")
        };
        // Everything but where it came from is the same.
        let shown = |a: &Args| {
            let mut a = a.clone();
            a.sources = crate::args::Sources::default();
            a.notices.clear();
            format!("{a:?}")
        };
        assert_eq!(shown(&from_file), shown(&without));
        assert!(from_file.warnings.is_empty(), "{:?}", from_file.warnings);
    }

    #[test]
    fn the_log_level_maps_onto_quiet() {
        assert!(with_file("log-level = 1\n", &["x.pem"]).expect("ok").quiet);
        assert!(!with_file("log-level = 2\n", &["x.pem"]).expect("ok").quiet);
        assert!(
            !with_file("log-level = 1\n", &["-L", "2", "x.pem"])
                .expect("ok")
                .quiet
        );
        assert!(
            with_file("log-level = 2\n", &["-q", "x.pem"])
                .expect("ok")
                .quiet
        );
        assert!(file_error("log-level = 3\n").contains("invalid log level '3'"));
    }

    /// Thousands of mangled variants of real files (bytes dropped, doubled, replaced, lines
    /// swapped): each gives a model or a one-line error naming the file, never a panic.
    #[test]
    fn mangled_files_give_a_model_or_one_line_never_a_panic() {
        let seeds = [
            &crate::args::default_config(),
            include_str!("../../tests/tests/config/hitch.conf.example"),
            "frontend = {\n host = \"*\"\n port = \"443\"\n pem-file = { cert = \"a\" private-key = \"b\" }\n              tls-protos = TLSv1.2 TLSv1.3\n}\npem-file = \"x.pem\"\nwrite-proxy = on\n",
        ];
        let specials = b"={}\"#\n\\ *:[]+,;\0\xff";
        let mut state: u64 = 0x5eed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for round in 0..5000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next() % 4 {
                if bytes.is_empty() {
                    break;
                }
                let at = next() % bytes.len();
                match next() % 4 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, specials[next() % specials.len()]),
                    2 => bytes[at] = specials[next() % specials.len()],
                    _ => {
                        let copy = bytes[at..]
                            .iter()
                            .take(next() % 40)
                            .copied()
                            .collect::<Vec<_>>();
                        bytes.splice(at..at, copy);
                    }
                }
            }
            let mut settings = Settings::default();
            let result = settings
                .read_bytes(&bytes, "mangled.conf")
                .and_then(|()| settings.finish());
            if let Err(e) = result {
                assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
                assert!(
                    e.starts_with("mangled.conf:") || !e.contains(".conf"),
                    "{e:?}"
                );
            }
        }
    }

    #[test]
    fn an_endless_file_is_refused_not_read_forever() {
        let err = parse(vec!["--config=/dev/zero".into(), "x.pem".into()]).expect_err("zeros");
        assert!(err.contains("larger than 16 MiB"), "{err}");
    }

    #[test]
    fn a_missing_or_binary_file_is_one_clear_error() {
        let err = parse(vec![
            "--config=/nonexistent/hitch.conf".into(),
            "x.pem".into(),
        ])
        .expect_err("missing");
        assert!(
            err.contains("cannot read configuration file /nonexistent/hitch.conf"),
            "{err}"
        );
        assert!(file_error("workers = 1\n\u{0}\n").starts_with("2: "));
    }
}
