//! The `stud` daemon: stud's command line over the `stud-core` engine and its reference driver.
//!
//! The parent process fills the configuration model from the flags and the `--config` file
//! ([`args`], [`settings`]), builds each frontend's TLS configuration ([`certs`]), binds the
//! frontends and forks the workers ([`supervisor`]), keeping its privileges so it can reload; each worker drops
//! privileges (`-r`/`-u`/`-g`) right after fork and runs one driver event loop ([`worker`]). All
//! libc calls live in [`sys`].
//!
//! Exit status: 0 on a clean stop (or `-t` success, `--help`, `--version`); 1 for any start-up
//! error (bad flag or configuration file, unreadable certificate, port in use, …), reported on
//! one line as `stud: error: …`, as hitch and the 2016 stud do; 1 too if the supervisor itself
//! fails at run time.

// The one door for `unsafe` is `sys`, which allows it; anywhere else it does not compile.
#![deny(unsafe_code)]

mod allocator;
mod args;
mod balance;
mod certs;
mod config_file;
mod keys;
mod listen;
mod log;
mod metrics;
mod notify;
mod refresh;
mod reload;
mod settings;
mod setup;
mod signals;
mod sink;
mod supervisor;
mod sys;
mod trim;
mod values;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use stud_core::driver::Options;
use stud_core::CloseReason;

use crate::args::{Args, Command};

/// Runs `stud` with the process's arguments and returns its exit status.
pub fn main() -> i32 {
    // First of all, before even the flags are read (a thousand PEM names take a while to parse):
    // from here on a signal is held for the supervisor, never fatal.
    let signals = match signals::Signals::install() {
        Ok(signals) => signals,
        Err(e) => return fail(&format!("cannot set up signal handling: {e}")),
    };
    let raw = std::env::args_os().skip(1).collect();
    match args::parse(raw) {
        Err(e) => fail(&e),
        Ok(Command::Help) => {
            print!("{}", args::usage());
            0
        }
        Ok(Command::DefaultConfig) => {
            print!("{}", args::default_config());
            0
        }
        Ok(Command::Version) => {
            println!("stud {}", env!("CARGO_PKG_VERSION"));
            println!(
                "rustls {} with aws-lc-rs {} (aws-lc-sys {})",
                env!("STUD_RUSTLS_VERSION"),
                env!("STUD_AWS_LC_RS_VERSION"),
                env!("STUD_AWS_LC_SYS_VERSION")
            );
            println!("allocator: {}", allocator::DESCRIPTION);
            0
        }
        Ok(Command::Run(args)) => match run(*args, signals) {
            Ok(code) => code,
            Err(e) => fail(&e),
        },
    }
}

/// Parses a command line (without the program name) as `stud` would, without acting on it:
/// `Ok` for a runnable configuration, `--help` or `--version`, `Err` with the one-line message
/// otherwise. Name resolution is not attempted. For the fuzz target and embedders that validate
/// configurations.
pub fn check_args(raw: Vec<std::ffi::OsString>) -> Result<(), String> {
    args::parse(raw).map(|_| ()).map_err(|e| one_line(&e))
}

/// `message` with control characters escaped, so text from the command line (or a file name)
/// can neither break the one-line error format nor forge log lines.
fn one_line(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Reports a start-up error the way every one is reported, and gives the exit status for it.
fn fail(message: &str) -> i32 {
    eprintln!("stud: error: {}", one_line(message));
    1
}

/// What `run` says when SIGTERM or SIGINT came before the workers started.
const STOPPED_IN_START_UP: &str = "stopped by SIGTERM or SIGINT during start-up";

fn run(mut args: Args, mut signals: signals::Signals) -> Result<i32, String> {
    sys::ignore_sigpipe().map_err(|e| format!("cannot ignore SIGPIPE: {e}"))?;
    setup::absolute_paths(&mut args)?;
    if args.ticket_secret_bytes.is_none() && args.ticket_secret.is_none() {
        // One random secret for the life of this stud, so a reload keeps resuming sessions.
        args.ticket_secret_bytes = Some(
            stud_core::random_ticket_secret()
                .ok_or("no randomness for the session-ticket secret")?,
        );
    }
    let (configs, mut warnings) = certs::build(&args)?;
    warnings.splice(0..0, args.warnings.iter().cloned());
    warnings.extend(setup::backend_outside_chroot(&args));
    log::set_json(args.log_json);
    let log_warnings = log::init(
        args.quiet,
        args.log_filename.as_deref(),
        args.syslog.then_some(args.syslog_facility.as_str()),
    )?;
    for warning in warnings.iter().chain(&log_warnings) {
        // On the terminal as a start-up message, and in the log when the log is elsewhere.
        eprintln!("stud: warning: {}", one_line(warning));
        if args.syslog || args.log_filename.is_some() {
            log::warning(warning);
        }
    }
    for notice in &args.notices {
        log::info(notice);
    }
    if signals.stop_requested() {
        log::info(STOPPED_IN_START_UP);
        return Ok(0);
    }
    let backends = setup::backends(&args)?;
    // What every worker would find wrong (a socket path too long to connect to), said once.
    Options::new(backends.iter().cloned())
        .with_source_addrs(args.backend_sources.clone())
        .validate()
        .map_err(|e| format!("backend {}: {e}", args.backend))?;
    let privileges = setup::resolve_privileges(&args)?;
    check_distinct_frontends(&args.frontends)?;
    if args.test_only {
        println!("stud: configuration OK");
        return Ok(0);
    }
    // The service manager's channel and sockets, taken before anything forks.
    let announcer = notify::Announcer::from_env()?;
    let mut inherited = notify::listen_fds()?;
    let sockets = if args.reuseport { args.workers } else { 1 };
    // One group per frontend: one shared socket, or (--reuseport) one per worker; a socket the
    // service manager passed for the frontend's address replaces binding it.
    let listeners = args
        .frontends
        .iter()
        .map(
            |f| match notify::take_inherited(&mut inherited, &f.endpoint)? {
                Some(socket) => Ok(vec![socket]),
                None => listen::bind(
                    &f.endpoint,
                    args.backlog,
                    sockets,
                    args.reuseport,
                    &args.sockets,
                ),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    notify::no_inherited_left(&inherited)?;
    let endpoint = args
        .metrics
        .as_ref()
        .map(|m| {
            listen::bind(m, args.backlog, 1, false, &args::SocketOptions::default())
                .and_then(|mut l| l.pop().ok_or_else(|| format!("cannot listen on {m}")))
                .and_then(|l| {
                    metrics::Endpoint::new(l)
                        .map_err(|e| format!("cannot serve metrics on {m}: {e}"))
                })
        })
        .transpose()?;
    let board = metrics::Board::new(
        metrics::Layout::new(CloseReason::NAMES, &stud_core::cipher_suite_names()),
        args.workers * supervisor::BLOCKS_PER_WORKER,
    )
    .map_err(|e| format!("cannot map the metrics board: {e}"))?;
    let local = listeners
        .iter()
        .zip(&args.frontends)
        .map(|(group, f)| {
            group
                .first()
                .and_then(|l| l.local_addr().ok())
                .map_or_else(|| f.endpoint.to_string(), |a| a.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ");
    if signals.stop_requested() {
        log::info(STOPPED_IN_START_UP);
        return Ok(0);
    }
    let detached = if args.daemon {
        Some(setup::daemonize()?)
    } else {
        None
    };
    // Dropped (and removed) when `run` returns in the parent; workers never return here.
    let _pidfile = args
        .pidfile
        .as_deref()
        .map(setup::PidFile::create)
        .transpose()?;
    let options = Options::new(backends.iter().cloned())
        .with_source_addrs(args.backend_sources.clone())
        .with_keepalive(args.keepalive)
        .with_drain_timeout(args.drain_timeout)
        .with_max_connections(args.max_conns)
        // Signs of life four times per watchdog period, at most once a second; once a second
        // without the watchdog, for the worker's housekeeping (giving memory back after a spike).
        .with_heartbeat(Some(
            args.worker_timeout.map_or(Duration::from_secs(1), |t| {
                (t / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
            }),
        ));
    let log_conns = args.log_conns;
    let setup = worker::WorkerSetup {
        configs: configs.into_iter().map(Arc::new).collect(),
        options: options.clone(),
        log_conns,
        expiry: setup::certificate_expiry(&certs::chains(&args)).into(),
    };
    // SIGHUP reads the configuration file and the flags again, and every file they name. The
    // session-ticket secret stays the one made at start, so sessions resume across reloads.
    let running = args.clone();
    // The addresses the backend's name gave last, kept when a later lookup fails.
    let last_backends = std::cell::RefCell::new(options.backends.clone());
    let reload: supervisor::Reload = Box::new(move || {
        let (next, notes) = reload::reread(&running)?;
        let (configs, warnings) = certs::build(&next)?;
        // The backend's name is resolved again (and by backend-refresh when it changes); a
        // resolver that fails now must not stop a renewed certificate from loading.
        let mut options = options.clone();
        match setup::backends(&next) {
            Ok(backends) => *last_backends.borrow_mut() = backends,
            Err(e) => log::warning(&format!(
                "{e}; keeping the backend addresses in use, {}",
                last_backends
                    .borrow()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        }
        options.backends = last_backends.borrow().clone();
        for warning in notes.iter().chain(&warnings) {
            log::warning(warning);
        }
        Ok(worker::WorkerSetup {
            configs: configs.into_iter().map(Arc::new).collect(),
            options: options.clone(),
            log_conns,
            expiry: setup::certificate_expiry(&certs::chains(&next)).into(),
        })
    });
    let watchdog = args
        .worker_timeout
        .map(|t| supervisor::Watchdog::new(args.workers * supervisor::BLOCKS_PER_WORKER, t))
        .transpose()
        .map_err(|e| format!("cannot set up the worker watchdog: {e}"))?;
    // Workers sharing one listening socket even out their loads (see `balance`); with one
    // socket each (`--reuseport`) the kernel spreads them.
    let shared = listeners.iter().all(|group| group.len() == 1);
    let loads = (shared && args.workers > 1)
        .then(|| balance::Loads::new(args.workers * supervisor::BLOCKS_PER_WORKER))
        .transpose()
        .map_err(|e| format!("cannot map the workers' load board: {e}"))?;
    let collector =
        log::Collector::new().map_err(|e| format!("cannot make the workers' log pipe: {e}"))?;
    let mut supervisor = supervisor::Supervisor::new(
        args.workers,
        listeners,
        setup,
        reload,
        watchdog,
        privileges,
        supervisor::Inputs {
            signals,
            log: collector,
            announcer,
            board,
            endpoint,
            loads,
        },
    );
    if let Some(every) = args.backend_refresh {
        let watch =
            refresh::BackendWatch::new(args.backend.clone(), args.backend.resolve()?, |b| {
                b.resolve()
            });
        supervisor.refresh_backend(every, watch);
    }
    let backend_list = backends
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    log::info(&format!(
        "listening on {local}, backend {backend_list}, {} worker{}",
        args.workers,
        if args.workers == 1 { "" } else { "s" }
    ));
    if let Some(addr) = supervisor.metrics_addr() {
        log::info(&format!("serving metrics on http://{addr}/metrics"));
    }
    let every_cert = args
        .pems
        .iter()
        .chain(args.frontends.iter().flat_map(|f| &f.certs));
    for cert in every_cert {
        if let Some(ocsp) = certs::ocsp_for(cert, args.ocsp_dir.as_deref()) {
            log::info(&format!(
                "stapling the OCSP response in {} for {} (re-read on SIGHUP)",
                ocsp.display(),
                cert.chain.display()
            ));
        }
    }
    if let Some(detached) = detached {
        detached.ready()?;
    }
    Ok(supervisor.run())
}

/// Two spellings of one address (`127.1` and `127.0.0.1`) would both bind with `--reuseport`,
/// serving one port twice; refused once names are resolved, before anything is bound (so `-t`
/// says so too). Port 0 asks for a free port each time and never collides. Overlaps between a
/// wildcard and a specific address are left to the kernel's bind rules.
fn check_distinct_frontends(frontends: &[args::Frontend]) -> Result<(), String> {
    let mut seen: Vec<(std::net::SocketAddr, &args::Endpoint)> = Vec::new();
    for f in frontends
        .iter()
        .map(|f| &f.endpoint)
        .filter(|f| f.port != 0)
    {
        let Some(addr) = f.resolve()?.first().copied() else {
            continue;
        };
        if let Some((_, earlier)) = seen.iter().find(|(a, _)| *a == addr) {
            return Err(format!(
                "frontends {earlier} and {f} are the same address, {addr}"
            ));
        }
        seen.push((addr, f));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_with_control_characters_stay_on_one_line() {
        let err = check_args(vec!["--bogus\nstud: forged line".into()]).expect_err("unknown flag");
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("\\n"), "{err}");
    }
}
