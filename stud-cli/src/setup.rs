//! What the parent does once, before any worker exists: make the paths absolute, make the
//! session-ticket secret (and a self-signed certificate), resolve the backend, look up the user and group, detach and write
//! the pidfile; and the privilege drop each worker applies to itself right after fork.
//!
//! The parent keeps its privileges and its root directory for its whole life (as hitch's manager
//! does): it alone reads the configuration, on start and on every SIGHUP, so it must still reach
//! a root-only key and paths outside the chroot, and remove the pidfile at exit. Only workers,
//! which hold the configuration in memory already, chroot and become `-u`/`-g`.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use stud_core::driver::BackendAddr;

use sha2::{Digest, Sha256};

use crate::args::Args;
use crate::listen::describe;
use crate::sys;

/// Makes every path the configuration names absolute, against the directory stud was started
/// in (`args.sources.base`): `--daemon` changes directory to `/` and a reload reads the files
/// again from there, so a relative path would name another file (or none) by then.
pub(crate) fn absolute_paths(args: &mut Args) -> Result<(), String> {
    let base = args.sources.base.clone();
    let absolute = |path: &mut PathBuf| -> Result<(), String> {
        *path = std::path::absolute(base.join(&*path))
            .map_err(|e| format!("cannot make {} absolute: {}", path.display(), describe(&e)))?;
        Ok(())
    };
    // Each frontend's certificates and the CAs its clients' certificates must chain to.
    let frontend_paths = args.frontends.iter_mut().flat_map(|f| {
        f.certs
            .iter_mut()
            .flat_map(|c| {
                std::iter::once(&mut c.chain)
                    .chain(c.key.as_mut())
                    .chain(c.ocsp.as_mut())
            })
            .chain(f.tls.client_verify_ca.as_mut())
    });
    let global_certs = args.pems.iter_mut().flat_map(|c| {
        std::iter::once(&mut c.chain)
            .chain(c.key.as_mut())
            .chain(c.ocsp.as_mut())
    });
    for path in global_certs
        .chain(frontend_paths)
        .chain(args.crl.as_mut())
        .chain(args.pem_dir.as_mut().map(|d| &mut d.dir))
        .chain(args.ocsp_dir.as_mut())
        .chain(args.pidfile.as_mut())
        .chain(args.ticket_secret.as_mut())
        .chain(args.chroot.as_mut())
        .chain(args.log_filename.as_mut())
        .chain(
            args.client
                .iter_mut()
                .flat_map(|c| c.ca.iter_mut().chain(c.cert.as_mut())),
        )
    {
        absolute(path)?;
    }
    Ok(())
}

/// When the first certificate of each PEM file expires, for the metrics. A file whose
/// certificate cannot be read here (it loaded, so this is rare) is left out.
pub(crate) fn certificate_expiry(pems: &[PathBuf]) -> Vec<crate::metrics::Expiry> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    pems.iter()
        .filter_map(|pem| {
            let leaf = CertificateDer::pem_file_iter(pem).ok()?.next()?.ok()?;
            Some(crate::metrics::Expiry {
                file: pem.display().to_string(),
                not_after: stud_core::certificate_not_after(&leaf)?,
            })
        })
        .collect()
}

/// `PEM.ocsp` if that file exists: the OCSP response to staple for the certificate in `PEM`.
pub(crate) fn ocsp_beside(pem: &Path) -> Option<PathBuf> {
    let mut name = pem.as_os_str().to_owned();
    name.push(".ocsp");
    let path = PathBuf::from(name);
    path.exists().then_some(path)
}

/// A fresh ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1`: (chain PEM, key PEM,
/// SHA-256 fingerprint as `AB:CD:…`).
pub(crate) fn self_signed() -> Result<(String, String, String), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
    let digest = Sha256::digest(certified.cert.der());
    let fingerprint = digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok((
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        fingerprint,
    ))
}

/// Every backend address, resolved at start and on each reload; the driver uses them in turn.
pub(crate) fn backends(args: &Args) -> Result<Vec<BackendAddr>, String> {
    args.backend.addresses()
}

/// A warning when the backend is a UNIX socket that chrooted workers will not find: they
/// connect after `chroot`, so its path is looked up inside the chroot directory.
pub(crate) fn backend_outside_chroot(args: &Args) -> Option<String> {
    let (Some(dir), crate::args::Backend::Unix(path)) = (&args.chroot, &args.backend) else {
        return None;
    };
    let inside = dir.join(path.strip_prefix("/").unwrap_or(path));
    (!inside.exists()).then(|| {
        format!(
            "the backend socket {} is looked up by the workers inside the chroot, and {} does not exist: bind-mount the socket's directory there, or name the socket as the chroot sees it",
            path.display(),
            inside.display()
        )
    })
}

/// Who a worker becomes right after fork.
#[derive(Debug, Default, Clone)]
pub(crate) struct Privileges {
    chroot: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
}

fn user_id(name: &str) -> Result<sys::User, String> {
    match sys::lookup_user(name) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(format!("unknown user '{name}'")),
        Err(e) => Err(format!("cannot look up user '{name}': {}", describe(&e))),
    }
}

fn group_id(name: &str) -> Result<u32, String> {
    match sys::lookup_group(name) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => name
            .parse::<u32>()
            .map_err(|_| format!("unknown group '{name}'")),
        Err(e) => Err(format!("cannot look up group '{name}': {}", describe(&e))),
    }
}

/// Looks up `-u`/`-g` and checks `-r` while the system databases are still reachable.
pub(crate) fn resolve_privileges(args: &Args) -> Result<Privileges, String> {
    if let Some(dir) = &args.chroot {
        if !dir.is_dir() {
            return Err(format!(
                "chroot directory {} is not a directory",
                dir.display()
            ));
        }
    }
    let user = args.user.as_deref().map(user_id).transpose()?;
    let gid = match (&args.group, user) {
        (Some(g), _) => Some(group_id(g)?),
        (None, Some(u)) => Some(u.gid),
        (None, None) => None,
    };
    let wants_change = user.is_some() || gid.is_some() || args.chroot.is_some();
    // `-t` checks that the names exist; only running needs root (so does hitch's --test).
    if wants_change && sys::effective_uid() != 0 && !args.test_only {
        return Err("-u, -g and -r need stud to start as root".into());
    }
    Ok(Privileges {
        chroot: args.chroot.clone(),
        uid: user.map(|u| u.uid),
        gid,
    })
}

/// chroot, then the group, then the user: after the user nothing else would be permitted. Called
/// in a worker before it serves anything; a worker for which this fails must exit.
pub(crate) fn drop_privileges(p: &Privileges) -> Result<(), String> {
    if let Some(dir) = &p.chroot {
        std::os::unix::fs::chroot(dir)
            .and_then(|()| std::env::set_current_dir("/"))
            .map_err(|e| format!("cannot chroot to {}: {}", dir.display(), describe(&e)))?;
    }
    if let Some(gid) = p.gid {
        sys::set_group(gid).map_err(|e| format!("cannot set group {gid}: {}", describe(&e)))?;
    }
    if let Some(uid) = p.uid {
        sys::set_user(uid).map_err(|e| format!("cannot set user {uid}: {}", describe(&e)))?;
    }
    Ok(())
}

/// The foreground half of `--daemon`: the process the operator started waits for the daemon to
/// say it is ready, so start-up errors still reach the terminal and the exit status.
#[derive(Debug)]
pub(crate) struct Detached {
    ready: OwnedFd,
    /// `/dev/null`, opened before anything could change the root directory.
    null: std::fs::File,
}

impl Detached {
    /// Points stdio at `/dev/null` and tells the waiting foreground process that start-up
    /// succeeded; it then exits 0.
    pub(crate) fn ready(self) -> Result<(), String> {
        sys::stdio_to(&self.null)
            .map_err(|e| format!("cannot redirect stdio to {DEV_NULL}: {}", describe(&e)))?;
        let mut file = std::fs::File::from(self.ready);
        let _ = std::io::Write::write_all(&mut file, b"1");
        Ok(())
    }
}

/// Where a daemon's stdio goes.
const DEV_NULL: &str = "/dev/null";

/// Forks into the background. Returns in the daemon only; the foreground process exits with 0
/// once the daemon reports ready, or 1 if the daemon dies first.
pub(crate) fn daemonize() -> Result<Detached, String> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEV_NULL)
        .map_err(|e| format!("cannot open {DEV_NULL}: {}", describe(&e)))?;
    let (rx, tx) = sys::pipe().map_err(|e| format!("cannot create a pipe: {}", describe(&e)))?;
    match sys::fork().map_err(|e| format!("cannot fork: {}", describe(&e)))? {
        sys::Forked::Parent(_) => {
            drop(tx);
            let _ = sys::restore_default_signals();
            let mut file = std::fs::File::from(rx);
            let mut byte = [0u8; 1];
            loop {
                // The pipe is nonblocking; wait for the byte or for the daemon's end to close.
                let _ = sys::wait_readable(&file, None);
                match file.read(&mut byte) {
                    Ok(1) => std::process::exit(0),
                    Ok(_) => std::process::exit(1),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => std::process::exit(1),
                }
            }
        }
        sys::Forked::Child => {
            drop(rx);
            sys::new_session().map_err(|e| format!("setsid failed: {}", describe(&e)))?;
            std::env::set_current_dir("/").map_err(|e| format!("cannot chdir to /: {e}"))?;
            Ok(Detached { ready: tx, null })
        }
    }
}

/// The pidfile, removed when dropped.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes our pid to `path` (made absolute by [`absolute_paths`] before `--daemon` changed
    /// directory).
    pub(crate) fn create(path: &Path) -> Result<PidFile, String> {
        let path = path.to_path_buf();
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pidfile {}: {}", path.display(), describe(&e)))?;
        Ok(PidFile { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // After chroot or a privilege drop the file may be out of reach; nothing to do then.
        let _ = std::fs::remove_file(&self.path);
    }
}
