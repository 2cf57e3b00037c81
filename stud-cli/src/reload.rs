//! What SIGHUP reads again: the configuration file and the command line, as hitch does, and
//! through them every certificate, `pem-dir`, OCSP response and TLS setting. What only a restart
//! can change (the listening sockets, the backend, the processes and their privileges, logging)
//! keeps its running value, with one warning naming each change left for the restart.

use crate::args::{self, Args};
use crate::setup;

/// The configuration to run after a SIGHUP, given the one running since start, with the
/// warnings to log. An error leaves the running configuration in place.
pub(crate) fn reread(running: &Args) -> Result<(Args, Vec<String>), String> {
    let mut fresh = args::parse_again(&running.sources)?;
    setup::absolute_paths(&mut fresh)?;
    let mut notes = fresh.warnings.clone();
    let mut needs_restart = Vec::new();
    macro_rules! kept {
        ($($field:ident),* $(,)?) => {
            $(
                if fresh.$field != running.$field {
                    needs_restart.push(stringify!($field).replace('_', "-"));
                }
            )*
        };
    }
    kept!(
        backend,
        workers,
        backlog,
        keepalive,
        sockets,
        reuseport,
        chroot,
        user,
        group,
        daemon,
        pidfile,
        quiet,
        syslog,
        syslog_facility,
        log_filename,
        log_conns,
        drain_timeout,
        max_conns,
        worker_timeout,
        ticket_secret,
        metrics,
    );
    // Fields whose key is spelled otherwise.
    for (changed, key) in [
        (fresh.log_json != running.log_json, "log-format"),
        (
            fresh.backend_sources != running.backend_sources,
            "backend-source",
        ),
    ] {
        if changed {
            needs_restart.push(key.to_string());
        }
    }
    // Each listening socket keeps serving, with the certificates and TLS policy the file now
    // gives its address; an added or removed frontend waits for a restart.
    let mut next = running.clone();
    for frontend in &mut next.frontends {
        if let Some(now) = fresh
            .frontends
            .iter()
            .find(|f| f.endpoint == frontend.endpoint)
        {
            *frontend = now.clone();
        }
    }
    let same_set = fresh.frontends.len() == running.frontends.len()
        && fresh
            .frontends
            .iter()
            .all(|f| running.frontends.iter().any(|r| r.endpoint == f.endpoint));
    if !same_set {
        needs_restart.push("frontend".into());
    }
    // Client mode's backend settings are TLS settings; turning it on or off is not.
    if fresh.client.is_some() != running.client.is_some() {
        needs_restart.push("client".into());
    }
    if !needs_restart.is_empty() {
        notes.push(format!(
            "reload: {} changed; the running value{} stay until a restart",
            needs_restart.join(", "),
            if needs_restart.len() == 1 { "" } else { "s" }
        ));
    }
    // Everything that goes into the TLS configuration takes effect now.
    next.ssl = fresh.ssl;
    next.pems = fresh.pems;
    next.pem_dir = fresh.pem_dir;
    next.ocsp_dir = fresh.ocsp_dir;
    next.alpn = fresh.alpn;
    next.crl = fresh.crl;
    next.client_verify_depth = fresh.client_verify_depth;
    next.proxy_client_cert = fresh.proxy_client_cert;
    next.proxy_tlv = fresh.proxy_tlv;
    next.proxy_authority = fresh.proxy_authority;
    next.ecdh_curve = fresh.ecdh_curve;
    next.client_address = fresh.client_address;
    next.accept_proxy = fresh.accept_proxy;
    next.handshake_timeout = fresh.handshake_timeout;
    next.backend_connect_timeout = fresh.backend_connect_timeout;
    next.idle_timeout = fresh.idle_timeout;
    if fresh.client.is_some() == running.client.is_some() {
        next.client = fresh.client;
    }
    Ok((next, notes))
}
