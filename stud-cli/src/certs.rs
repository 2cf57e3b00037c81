//! From the model to the engine: each frontend's `stud_core::Config`, built from its
//! certificates (its own, the global ones, every file `pem-dir` holds, with the OCSP responses
//! found for them) and its TLS policy. Run at start and again on every SIGHUP, so files are
//! re-read each time.

use std::path::{Path, PathBuf};

use stud_core::{BackendTls, Config};

use crate::args::{Args, Cert, Frontend, PemDir};
use crate::setup;

/// The configuration of every frontend, in `args.frontends` order, with the warnings to show.
pub(crate) fn build(args: &Args) -> Result<(Vec<Config>, Vec<String>), String> {
    let mut warnings = Vec::new();
    let from_dir = match &args.pem_dir {
        Some(dir) => pem_dir_files(dir, &mut warnings)?,
        None => Vec::new(),
    };
    // One ephemeral certificate for every frontend, so all serve the fingerprint printed.
    let self_signed = if args.self_signed {
        let (cert, key, fingerprint) = setup::self_signed()?;
        warnings.push(format!(
            "--self-signed: serving an ephemeral certificate for localhost, SHA-256 fingerprint {fingerprint}"
        ));
        Some((cert, key))
    } else {
        None
    };
    let mut configs = Vec::new();
    for frontend in &args.frontends {
        if args.client.is_some() {
            // Clients speak plaintext: no certificate of theirs to serve.
            let (config, more) = build_one(args, frontend, &[], None)?;
            for w in more {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            configs.push(config);
            continue;
        }
        let mut certs: Vec<Cert> = frontend.certs.clone();
        if frontend.global_certs {
            certs.extend(args.pems.iter().cloned());
            certs.extend(from_dir.iter().cloned());
        }
        if certs.is_empty() && self_signed.is_none() {
            // Only pem-dir can leave a frontend without a certificate here (the model
            // refuses one with no source at all): say why each of its files was left out.
            let dir = args.pem_dir.as_ref().map(|d| d.dir.display().to_string());
            let why = warnings
                .first()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            return Err(format!(
                "no certificate for frontend {}: pem-dir {} holds no usable certificate{why}",
                frontend.endpoint,
                dir.unwrap_or_default()
            ));
        }
        let (config, more) = build_one(args, frontend, &certs, self_signed.as_ref())?;
        for w in more {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        configs.push(config);
    }
    Ok((configs, warnings))
}

/// The certificate chain file of every certificate the model names (global, per frontend and
/// in `pem-dir`), for the metrics of their expiry.
pub(crate) fn chains(args: &Args) -> Vec<PathBuf> {
    let named = args
        .pems
        .iter()
        .chain(args.frontends.iter().flat_map(|f| &f.certs))
        .map(|c| c.chain.clone());
    let listed = args
        .pem_dir
        .as_ref()
        .and_then(|d| pem_dir_listing(d).ok())
        .unwrap_or_default();
    let mut chains: Vec<PathBuf> = Vec::new();
    for chain in named.chain(listed) {
        if !chains.contains(&chain) {
            chains.push(chain);
        }
    }
    chains
}

/// One frontend's configuration.
fn build_one(
    args: &Args,
    frontend: &Frontend,
    certs: &[Cert],
    self_signed: Option<&(String, String)>,
) -> Result<(Config, Vec<String>), String> {
    let mut warnings = Vec::new();
    let tls = &frontend.tls;
    if args.ssl {
        let using: Vec<&str> = tls.versions.iter().map(|v| v.as_str()).collect();
        warnings.push(format!(
            "--ssl: SSLv3 is not supported (it is broken); using {}",
            using.join(" and ")
        ));
    }
    let mut builder = Config::builder()
        .versions(&tls.versions)
        .prefer_server_ciphers(tls.prefer_server_ciphers)
        .sni_strict(tls.sni_strict)
        .client_address(args.client_address)
        .accept_proxy_header(args.accept_proxy)
        .alpn_protocols(args.alpn.clone())
        .handshake_timeout(args.handshake_timeout)
        .backend_connect_timeout(args.backend_connect_timeout)
        .idle_timeout(args.idle_timeout);
    builder = builder
        .client_verify(tls.client_verify)
        .proxy_client_cert(args.proxy_client_cert)
        .proxy_tlv(args.proxy_tlv)
        .proxy_authority(args.proxy_authority);
    if let Some(list) = &args.ecdh_curve {
        builder = builder.ecdh_curves(list.clone());
    }
    if let Some(ca) = &tls.client_verify_ca {
        builder = builder.client_verify_ca_file(ca);
    }
    if let Some(crl) = &args.crl {
        builder = builder.crl_file(crl);
    }
    if let Some(depth) = args.client_verify_depth {
        builder = builder.client_verify_depth(depth);
    }
    if let Some(list) = &tls.ciphers {
        builder = builder.ciphers(list.clone());
    }
    if let Some(path) = &args.ticket_secret {
        builder = builder.ticket_secret_file(path);
    } else if let Some(secret) = &args.ticket_secret_bytes {
        builder = builder.ticket_secret(secret.clone());
    }
    if let Some(client) = &args.client {
        let mut backend = BackendTls::new(client.server_name.clone()).insecure(client.insecure);
        if let Some(ca) = &client.ca {
            backend = backend.ca_file(ca);
        }
        if let Some(cert) = &client.cert {
            backend = backend.client_cert_file(cert);
        }
        builder = builder.client_mode(backend);
    }
    if let (Some((cert, key)), true) = (self_signed, certs.is_empty()) {
        builder = builder.cert_and_key_pem(cert.clone(), key.clone());
    }
    for cert in certs {
        builder = match &cert.key {
            Some(key) => builder.cert_and_key_files(&cert.chain, key),
            None => builder.pem_file(&cert.chain),
        };
        if let Some(ocsp) = ocsp_for(cert, args.ocsp_dir.as_deref()) {
            builder = builder.ocsp_response_file(ocsp);
        }
    }
    let config = builder.build().map_err(|e| blame(certs, e.to_string()))?;
    warnings.extend(config.warnings().iter().cloned());
    Ok((config, warnings))
}

/// `error` with the `FILE:LINE` of the configuration entry naming the certificate at fault in
/// front, when a file named it: each certificate is tried alone to find which.
fn blame(certs: &[Cert], error: String) -> String {
    for cert in certs {
        let Some(origin) = &cert.origin else { continue };
        let alone = match &cert.key {
            Some(key) => Config::builder().cert_and_key_files(&cert.chain, key),
            None => Config::builder().pem_file(&cert.chain),
        };
        let alone = match &cert.ocsp {
            Some(ocsp) => alone.ocsp_response_file(ocsp),
            None => alone,
        };
        if let Err(e) = alone.build() {
            return format!("{origin}: {e}");
        }
    }
    error
}

/// The OCSP response to staple for `cert`: the one its `pem-file` block names, else `PEM.ocsp`
/// beside it, else `OCSP_DIR/NAME.ocsp` for a PEM file called NAME.
pub(crate) fn ocsp_for(cert: &Cert, ocsp_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = &cert.ocsp {
        return Some(path.clone());
    }
    if let Some(beside) = setup::ocsp_beside(&cert.chain) {
        return Some(beside);
    }
    let dir = ocsp_dir?;
    let mut name = cert.chain.file_name()?.to_owned();
    name.push(".ocsp");
    let path = dir.join(name);
    path.is_file().then_some(path)
}

/// Every regular file in the directory whose name matches the glob, in lexicographic order,
/// except OCSP responses (`NAME.ocsp`, stapled for `NAME`, not certificates themselves).
fn pem_dir_listing(pem_dir: &PemDir) -> Result<Vec<PathBuf>, String> {
    let shown = pem_dir.dir.display();
    let entries = std::fs::read_dir(&pem_dir.dir).map_err(|e| {
        format!(
            "cannot read pem-dir {shown}: {}",
            crate::listen::describe(&e)
        )
    })?;
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read pem-dir {shown}: {e}"))?;
        let name = entry.file_name();
        let matches = match (&pem_dir.glob, name.to_str()) {
            (None, Some(name)) => !name.ends_with(".ocsp"),
            (None, None) => true,
            (Some(glob), Some(name)) => glob_match(glob, name) && !name.ends_with(".ocsp"),
            (Some(_), None) => false,
        };
        // Symbolic links are followed: certificate managers link to the current file.
        if matches && entry.path().is_file() {
            names.push(entry.path());
        }
    }
    names.sort();
    Ok(names)
}

/// The files of `pem-dir` that load, each on its own: one that does not (not PEM, no key, key
/// and certificate apart) is left out with a warning, so one bad file never stops the others.
fn pem_dir_files(pem_dir: &PemDir, warnings: &mut Vec<String>) -> Result<Vec<Cert>, String> {
    let names = pem_dir_listing(pem_dir)?;
    let mut certs = Vec::new();
    for path in names {
        match Config::builder().pem_file(&path).build() {
            Ok(_) => certs.push(Cert::pem(path)),
            Err(e) => {
                let shown = path.display().to_string();
                let e = e.to_string();
                // The engine's messages often name the file already.
                let why = e.strip_prefix(&format!("{shown}: ")).unwrap_or(&e);
                warnings.push(format!("pem-dir: skipping {shown}: {why}"));
            }
        }
    }
    Ok(certs)
}

/// Shell-style matching of a whole name: `*` is any run, `?` any one character, the rest is
/// literal (a leading dot is not special, as with hitch's fnmatch without FNM_PERIOD).
pub(crate) fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ni));
                gi += 1;
            }
            Some('?') => {
                gi += 1;
                ni += 1;
            }
            Some(c) if *c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    gi = sg + 1;
                    ni = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_dir_lists_regular_files_in_order_without_ocsp_responses() {
        let dir = std::env::temp_dir().join(format!("stud-pem-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.pem")).expect("mkdir");
        for name in ["b.pem", "a.pem", "a.pem.ocsp", "README"] {
            std::fs::write(dir.join(name), "x").expect("write");
        }
        let names = |glob: Option<&str>| -> Vec<String> {
            let listing = pem_dir_listing(&PemDir {
                dir: dir.clone(),
                glob: glob.map(str::to_string),
            })
            .expect("listing");
            listing
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        };
        assert_eq!(names(None), ["README", "a.pem", "b.pem"]);
        assert_eq!(names(Some("*.pem")), ["a.pem", "b.pem"]);
        let _ = std::fs::remove_dir_all(&dir);
        let gone = pem_dir_listing(&PemDir { dir, glob: None }).expect_err("gone");
        assert!(gone.starts_with("cannot read pem-dir "), "{gone}");
    }

    #[test]
    fn globs_match_whole_names() {
        for (glob, name, want) in [
            ("*.pem", "site.pem", true),
            ("*.pem", "site.pem.bak", false),
            ("*.pem", ".pem", true),
            ("site?.pem", "site1.pem", true),
            ("site?.pem", "site12.pem", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(glob, name), want, "{glob} vs {name}");
        }
    }
}
