//! The one list of configuration keys: each key's name in a configuration file, its spellings on
//! the command line, where it may appear, what kind of value it takes, and whether stud honours
//! it, honours it with a warning, or refuses it (and why).
//!
//! The command line, the file reader, `--help`, the man page and docs/migrating.md all describe
//! this table; unit tests check the migration guide against it row by row.

/// Where a key may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The top level of a file, or the command line.
    Global,
    /// The top level (a default for every frontend) or inside a `frontend = { … }` block.
    GlobalOrFrontend,
    /// Inside a `frontend = { … }` block only.
    Frontend,
    /// Inside a `pem-file = { … }` block only.
    PemBlock,
    /// The command line only.
    CommandLine,
}

/// The value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `on|off` (also yes/no, true/false, y/n, t/f, 1/0). On the command line `--key` alone is
    /// on and `--key=off` is off.
    Bool,
    /// One value.
    Text,
    /// One value, or several words (`tls-protos = TLSv1.2 TLSv1.3`).
    Words,
    /// May be given several times: each adds one (`frontend`, `pem-file`).
    Repeated,
}

/// What stud does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Honoured as documented.
    Yes,
    /// Accepted; stud behaves differently, and says so with a warning when it is set.
    Differs(&'static str),
    /// Refused with this reason (a value meaning "off" or empty is still accepted).
    Refused(&'static str),
}

/// One key of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// The name in a configuration file (and the long option, unless `cli` says otherwise).
    pub(crate) name: &'static str,
    /// Command-line spellings, short first; empty when the key exists only in files.
    pub(crate) cli: &'static [&'static str],
    pub(crate) scope: Scope,
    pub(crate) kind: Kind,
    pub(crate) support: Support,
}

const fn key(
    name: &'static str,
    cli: &'static [&'static str],
    scope: Scope,
    kind: Kind,
    support: Support,
) -> Key {
    Key {
        name,
        cli,
        scope,
        kind,
        support,
    }
}

use Kind::{Bool, Repeated, Text, Words};
use Scope::{CommandLine, Frontend, Global, GlobalOrFrontend, PemBlock};
use Support::{Differs, Refused, Yes};

const NO_OCSP_FETCH: &str =
    "stud does not fetch OCSP responses; it staples the files it is given, re-read on SIGHUP";
const TICKETS: &str = "there is no shared session cache: sessions resume by tickets on every \
     process, and on every host given the same --ticket-secret";

/// Every key stud knows, in the order `--help` and the migration guide list them.
pub(crate) const KEYS: &[Key] = &[
    // Where to listen, where to connect.
    key("frontend", &["-f", "--frontend"], Global, Repeated, Yes),
    key("host", &[], Frontend, Text, Yes),
    key("port", &[], Frontend, Text, Yes),
    key("match-global-certs", &[], Frontend, Bool, Yes),
    key("backend", &["-b", "--backend"], Global, Text, Yes),
    key(
        "backend-refresh",
        &["-R", "--backend-refresh"],
        Global,
        Text,
        Yes,
    ),
    key("backlog", &["-B", "--backlog"], Global, Text, Yes),
    key("keepalive", &["-k", "--keepalive"], Global, Text, Yes),
    key(
        "tcp-fastopen",
        &["--enable-tcp-fastopen"],
        Global,
        Bool,
        Yes,
    ),
    key("recv-bufsize", &["--recv-bufsize"], Global, Text, Yes),
    key("send-bufsize", &["--send-bufsize"], Global, Text, Yes),
    key("reuseport", &["--reuseport"], Global, Bool, Yes),
    key(
        "ssl-handshake-timeout",
        &["--ssl-handshake-timeout"],
        Global,
        Text,
        Yes,
    ),
    key(
        "backend-connect-timeout",
        &["--backend-connect-timeout"],
        Global,
        Text,
        Yes,
    ),
    key("idle-timeout", &["--idle-timeout"], Global, Text, Yes),
    key("drain-timeout", &["--drain-timeout"], Global, Text, Yes),
    // Certificates.
    key("pem-file", &[], GlobalOrFrontend, Repeated, Yes),
    key("cert", &[], PemBlock, Text, Yes),
    key("private-key", &[], PemBlock, Text, Yes),
    key("ocsp-resp-file", &[], PemBlock, Text, Yes),
    key("pem-dir", &["--pem-dir"], Global, Text, Yes),
    key("pem-dir-glob", &["--pem-dir-glob"], Global, Text, Yes),
    key(
        "ocsp-dir",
        &["--ocsp-dir"],
        Global,
        Text,
        Differs(NO_OCSP_FETCH),
    ),
    key(
        "ocsp-verify-staple",
        &[],
        Global,
        Bool,
        Differs(NO_OCSP_FETCH),
    ),
    key(
        "ocsp-connect-tmo",
        &[],
        Global,
        Text,
        Differs(NO_OCSP_FETCH),
    ),
    key("ocsp-resp-tmo", &[], Global, Text, Differs(NO_OCSP_FETCH)),
    key(
        "ocsp-refresh-interval",
        &[],
        Global,
        Text,
        Differs(NO_OCSP_FETCH),
    ),
    key("self-signed", &["--self-signed"], CommandLine, Bool, Yes),
    // TLS policy.
    key(
        "tls-protos",
        &["--tls-protos"],
        GlobalOrFrontend,
        Words,
        Yes,
    ),
    key(
        "tls",
        &["--tls"],
        GlobalOrFrontend,
        Bool,
        Differs("means TLS 1.2 and 1.3: TLS 1.0 and 1.1 are not offered"),
    ),
    key(
        "ssl",
        &["--ssl"],
        GlobalOrFrontend,
        Bool,
        Differs("SSLv3, TLS 1.0 and 1.1 are not offered; the --tls-protos versions are used"),
    ),
    key("ciphers", &["-c", "--ciphers"], GlobalOrFrontend, Text, Yes),
    key(
        "ciphersuites",
        &["--ciphersuites"],
        GlobalOrFrontend,
        Text,
        Yes,
    ),
    key(
        "prefer-server-ciphers",
        &["-O", "--prefer-server-ciphers"],
        GlobalOrFrontend,
        Bool,
        Yes,
    ),
    key(
        "sni-nomatch-abort",
        &["--sni-nomatch-abort"],
        GlobalOrFrontend,
        Bool,
        Yes,
    ),
    key("alpn-protos", &["--alpn-protos"], Global, Text, Yes),
    key("ecdh-curve", &[], Global, Text, Yes),
    key(
        "session-cache",
        &["-C", "--session-cache"],
        Global,
        Text,
        Differs(TICKETS),
    ),
    key("shared-cache", &[], Global, Text, Differs(TICKETS)),
    key(
        "shared-cache-listen",
        &["-U", "--shared-cache-listen"],
        Global,
        Text,
        Differs(TICKETS),
    ),
    key(
        "shared-cache-peer",
        &["-P", "--shared-cache-peer"],
        Global,
        Text,
        Differs(TICKETS),
    ),
    key(
        "shared-cache-if",
        &["-M", "--shared-cache-if"],
        Global,
        Text,
        Differs(TICKETS),
    ),
    key("ticket-secret", &["--ticket-secret"], Global, Text, Yes),
    key(
        "ssl-engine",
        &["-e", "--ssl-engine"],
        Global,
        Text,
        Refused("there is no OpenSSL here, so no OpenSSL engine to load"),
    ),
    key(
        "client-verify",
        &["--client-verify"],
        GlobalOrFrontend,
        Text,
        Yes,
    ),
    key(
        "client-verify-ca",
        &["--client-verify-ca"],
        GlobalOrFrontend,
        Text,
        Yes,
    ),
    key(
        "client-verify-depth",
        &["--client-verify-depth"],
        Global,
        Text,
        Yes,
    ),
    key("crl", &["--crl"], Global, Text, Yes),
    key(
        "proxy-client-cert",
        &["--proxy-client-cert"],
        Global,
        Bool,
        Yes,
    ),
    // What the backend is told.
    key("write-ip", &["--write-ip"], Global, Bool, Yes),
    key("write-proxy", &["--write-proxy"], Global, Bool, Yes),
    key("write-proxy-v1", &["--write-proxy-v1"], Global, Bool, Yes),
    key("write-proxy-v2", &["--write-proxy-v2"], Global, Bool, Yes),
    key("proxy-proxy", &["--proxy-proxy"], Global, Bool, Yes),
    key("accept-proxy", &["--accept-proxy"], Global, Bool, Yes),
    key("proxy-tlv", &["--proxy-tlv"], Global, Bool, Yes),
    key("proxy-authority", &["--proxy-authority"], Global, Bool, Yes),
    // Client mode: plaintext from clients, TLS to the backend.
    key("client", &["--client"], Global, Bool, Yes),
    key("backend-ca", &["--backend-ca"], Global, Text, Yes),
    key(
        "backend-insecure",
        &["--backend-insecure"],
        Global,
        Bool,
        Yes,
    ),
    key("backend-sni", &["--backend-sni"], Global, Text, Yes),
    key("backend-cert", &["--backend-cert"], Global, Text, Yes),
    // Processes and privileges.
    key("workers", &["-n", "--workers"], Global, Text, Yes),
    key("worker-timeout", &["--worker-timeout"], Global, Text, Yes),
    key("max-conns", &["--max-conns"], Global, Text, Yes),
    key("chroot", &["-r", "--chroot"], Global, Text, Yes),
    key("user", &["-u", "--user"], Global, Text, Yes),
    key("group", &["-g", "--group"], Global, Text, Yes),
    key("daemon", &["--daemon"], Global, Bool, Yes),
    key("pidfile", &["-p", "--pidfile"], Global, Text, Yes),
    // Logging.
    key("quiet", &["-q", "--quiet"], Global, Bool, Yes),
    key("log-level", &["-L", "--log-level"], Global, Text, Yes),
    key("log-filename", &["-l", "--log-filename"], Global, Text, Yes),
    key("log-conns", &["--log-conns"], Global, Bool, Yes),
    key("syslog", &["-s", "--syslog"], Global, Bool, Yes),
    key("syslog-facility", &["--syslog-facility"], Global, Text, Yes),
    key("metrics", &["--metrics"], Global, Text, Yes),
    key("log-format", &["--log-format"], Global, Text, Yes),
    key("backend-source", &["--backend-source"], Global, Words, Yes),
    key(
        "ring-slots",
        &[],
        Global,
        Text,
        Differs("there is no ring buffer: each direction has a 64 KiB budget"),
    ),
    key(
        "ring-data-len",
        &[],
        Global,
        Text,
        Differs("there is no ring buffer: each direction has a 64 KiB budget"),
    ),
    // The command line alone.
    key("config", &["--config"], CommandLine, Text, Yes),
    key(
        "default-config",
        &["--default-config"],
        CommandLine,
        Bool,
        Yes,
    ),
    key("test", &["-t", "--test"], CommandLine, Bool, Yes),
    key("help", &["-h", "--help"], CommandLine, Bool, Yes),
    key("version", &["-V", "--version"], CommandLine, Bool, Yes),
];

/// The key a configuration file calls `name`.
pub(crate) fn by_name(name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|k| k.name == name && k.scope != Scope::CommandLine)
}

/// The key a command-line option spells `flag` (`-n`, `--workers`).
pub(crate) fn by_flag(flag: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.cli.contains(&flag))
}

/// `-n/--workers` as errors name it, or the file name when the key has no option.
pub(crate) fn spelling(key: &Key) -> String {
    if key.cli.is_empty() {
        key.name.to_string()
    } else {
        key.cli.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags_are_unique() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                !KEYS[..i].iter().any(|o| o.name == k.name),
                "{} twice",
                k.name
            );
            for flag in k.cli {
                assert!(flag.starts_with('-'), "{flag}");
                assert_eq!(by_flag(flag).map(|o| o.name), Some(k.name), "{flag}");
            }
        }
    }

    /// The backticked words of a table cell.
    fn ticked(cell: &str) -> Vec<&str> {
        cell.split('`').skip(1).step_by(2).collect()
    }

    #[test]
    fn the_migration_guide_lists_every_key_and_only_keys() {
        let guide = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/migrating.md"));
        let mut rows = Vec::new();
        for line in guide.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let name = ticked(cells[0]).first().copied().unwrap_or_default();
            let key = KEYS
                .iter()
                .find(|k| k.name == name)
                .unwrap_or_else(|| panic!("docs/migrating.md lists '{name}', which is no key"));
            assert_eq!(
                ticked(cells.get(1).copied().unwrap_or_default()),
                key.cli,
                "docs/migrating.md: the command-line spellings of '{name}'"
            );
            assert!(
                !rows.contains(&name),
                "docs/migrating.md lists '{name}' twice"
            );
            rows.push(name);
        }
        for key in KEYS {
            assert!(
                rows.contains(&key.name),
                "docs/migrating.md does not list '{}'",
                key.name
            );
        }
    }

    #[test]
    fn the_man_page_documents_every_option() {
        let man = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/stud.1"));
        for key in KEYS {
            for flag in key.cli {
                // roff writes a literal '-' as '\-'.
                let written = flag.replace('-', "\\-");
                assert!(
                    man.contains(&written),
                    "docs/stud.1 does not document {flag}"
                );
            }
        }
    }

    #[test]
    fn every_hitch_key_is_in_the_table() {
        // hitch 1.8's hitch.conf(5) and lexer, and the 2016 stud's stud.conf.
        for name in [
            "alpn-protos",
            "backend",
            "backlog",
            "chroot",
            "ciphers",
            "ciphersuites",
            "client-verify",
            "client-verify-ca",
            "daemon",
            "frontend",
            "group",
            "keepalive",
            "backend-refresh",
            "ocsp-dir",
            "ocsp-connect-tmo",
            "ocsp-resp-tmo",
            "ocsp-refresh-interval",
            "ocsp-verify-staple",
            "pem-file",
            "private-key",
            "pem-dir",
            "pem-dir-glob",
            "prefer-server-ciphers",
            "proxy-proxy",
            "log-level",
            "quiet",
            "tls-protos",
            "ecdh-curve",
            "sni-nomatch-abort",
            "ssl-engine",
            "syslog",
            "syslog-facility",
            "user",
            "workers",
            "write-ip",
            "write-proxy-v1",
            "write-proxy-v2",
            "proxy-tlv",
            "proxy-client-cert",
            "tcp-fastopen",
            "ssl",
            "tls",
            "write-proxy",
            "proxy-authority",
            "backend-connect-timeout",
            "ssl-handshake-timeout",
            "recv-bufsize",
            "send-bufsize",
            "log-filename",
            "ring-slots",
            "ring-data-len",
            "pidfile",
            "host",
            "port",
            "match-global-certs",
            "cert",
            "ocsp-resp-file",
            "session-cache",
            "shared-cache",
            "shared-cache-listen",
            "shared-cache-peer",
            "shared-cache-if",
        ] {
            assert!(by_name(name).is_some(), "{name} missing");
        }
    }
}
