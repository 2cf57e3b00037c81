//! What a distribution ships: `stud --version`, `make install` into a staging directory, the
//! systemd service (checked by systemd-analyze, and its rights tried on a real stud), and the
//! license and publishing metadata of each published crate.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use stud_tests::activation::socket_activated;
use stud_tests::net::{self, connect, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{effective_uid, run, Stud};
use stud_tests::{optional_tool, stud_bin};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// The version of `name` in the workspace's Cargo.lock.
fn locked(name: &str) -> String {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock");
    let want = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == want {
            let version = lines.next().expect("a version line follows the name");
            return version
                .trim_start_matches("version = ")
                .trim_matches('"')
                .to_owned();
        }
    }
    panic!("{name} is not in Cargo.lock");
}

#[test]
fn version_names_stud_rustls_aws_lc_rs_and_the_allocator_it_runs_on() {
    let bin = stud_bin!();
    let out = run(&bin, &["--version"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], format!("stud {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(
        lines[1],
        format!(
            "rustls {} with aws-lc-rs {} (aws-lc-sys {})",
            locked("rustls"),
            locked("aws-lc-rs"),
            locked("aws-lc-sys")
        )
    );
    // The allocator named is the one linked: jemalloc's symbols carry the prefix `_rjem_`.
    let binary = std::fs::read(&bin).expect("read the stud binary");
    let links_jemalloc = binary.windows(12).any(|w| w == b"_rjem_malloc");
    let allocator = lines[2]
        .strip_prefix("allocator: ")
        .unwrap_or_else(|| panic!("no allocator line: {}", out.stdout));
    if links_jemalloc {
        let upstream = locked("tikv-jemalloc-sys");
        let jemalloc = upstream
            .split_once('+')
            .and_then(|(_, v)| v.split('-').next())
            .expect("tikv-jemalloc-sys names jemalloc's version after '+'");
        assert_eq!(
            allocator,
            format!(
                "jemalloc {jemalloc} (tikv-jemallocator {})",
                locked("tikv-jemallocator")
            )
        );
    } else {
        assert_eq!(allocator, "system (the C library's malloc)");
    }
}

/// A build directory as `make` leaves one (`stud`, `libstud.so`, `libstud.a`), made of what
/// this test run built: the stud under test and the libstud beside the test executables.
fn staged_build() -> TempDir {
    let build = TempDir::new();
    std::fs::copy(stud_bin!(), build.path().join("stud")).expect("copy stud");
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("the test executable is in deps/");
    for lib in ["libstud.so", "libstud.a"] {
        std::fs::copy(deps.join(lib), build.path().join(lib))
            .unwrap_or_else(|e| panic!("{lib} beside the tests (stud-ffi builds it): {e}"));
    }
    build
}

/// Runs `make TARGET VAR=VALUE…` in the workspace root; panics with its output on failure.
fn make(target: &str, vars: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(root()).arg(target);
    for (name, value) in vars {
        cmd.arg(format!("{name}={}", value.display()));
    }
    let out = cmd.output().expect("run make");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "make {target} failed:\n{text}");
    text
}

/// Every file and symbolic link under `dir`, as paths relative to it.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir");
                found.insert(rel.display().to_string());
            }
        }
    }
    found
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn make_install_puts_every_file_where_a_distribution_expects_it() {
    if !optional_tool("make") {
        return;
    }
    let build = staged_build();
    let stage = TempDir::new();
    let dest = stage.path();
    let usr = Path::new("/usr");
    make(
        "install",
        &[
            ("PREFIX", usr),
            ("DESTDIR", dest),
            ("BUILD_DIR", build.path()),
        ],
    );
    let version = env!("CARGO_PKG_VERSION");
    let want: BTreeSet<String> = [
        "etc/default/stud",
        "usr/sbin/stud",
        "usr/share/man/man8/stud.8",
        "usr/include/stud.h",
        "usr/lib/libstud.a",
        "usr/lib/libstud.so",
        "usr/lib/libstud.so.0",
        &format!("usr/lib/libstud.so.{version}"),
        "usr/lib/pkgconfig/stud.pc",
        "usr/lib/systemd/system/stud.service",
        "usr/lib/systemd/system/stud.socket",
        "usr/lib/sysusers.d/stud.conf",
        "usr/share/doc/stud/LICENSE",
        "usr/share/doc/stud/README.md",
        "usr/share/doc/stud/deployment.md",
        "usr/share/doc/stud/differences.md",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(tree(dest), want);

    // The daemon runs from where it was installed.
    let stud = dest.join("usr/sbin/stud");
    assert_eq!(mode(&stud), 0o755);
    let out = run(&stud, &["--version"]);
    assert!(out.stdout.starts_with("stud "), "{}", out.stdout);

    // The shared library under its soname, with the development link beside it.
    let lib = dest.join("usr/lib");
    let link = |name: &str| std::fs::read_link(lib.join(name)).expect("a symbolic link");
    assert_eq!(link("libstud.so"), Path::new("libstud.so.0"));
    assert_eq!(
        link("libstud.so.0"),
        PathBuf::from(format!("libstud.so.{version}"))
    );

    // Section 8, like hitch's page.
    let man = std::fs::read_to_string(dest.join("usr/share/man/man8/stud.8")).expect("man page");
    let th = man
        .lines()
        .find(|l| l.starts_with(".TH"))
        .expect(".TH line");
    assert!(th.starts_with(".TH STUD 8 "), "{th}");

    // Paths name the final locations, never the staging directory.
    let unit =
        std::fs::read_to_string(dest.join("usr/lib/systemd/system/stud.service")).expect("unit");
    assert!(
        unit.contains("\nExecStart=/usr/sbin/stud $STUD_OPTIONS\n"),
        "{unit}"
    );
    assert!(
        unit.contains("\nEnvironmentFile=/etc/default/stud\n"),
        "{unit}"
    );
    let pc = std::fs::read_to_string(lib.join("pkgconfig/stud.pc")).expect("stud.pc");
    assert!(
        pc.contains("prefix=/usr\n") && pc.contains("libdir=/usr/lib\n"),
        "{pc}"
    );
    let staging = dest.display().to_string();
    for file in &want {
        if let Ok(text) = std::fs::read_to_string(dest.join(file)) {
            assert!(
                !text.contains(&staging),
                "{file} names the staging directory"
            );
        }
    }

    // The operator's options file survives a second install; uninstall leaves only it.
    let options = dest.join("etc/default/stud");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&options)
        .and_then(|mut f| f.write_all(b"# edited\n"))
        .expect("edit the options file");
    let again = make(
        "install",
        &[
            ("PREFIX", usr),
            ("DESTDIR", dest),
            ("BUILD_DIR", build.path()),
        ],
    );
    assert!(again.contains("keeping "), "{again}");
    let kept = std::fs::read_to_string(&options).expect("options file");
    assert!(kept.ends_with("# edited\n"), "{kept}");
    make("uninstall", &[("PREFIX", usr), ("DESTDIR", dest)]);
    assert_eq!(
        tree(dest),
        BTreeSet::from(["etc/default/stud".to_owned()]),
        "uninstall removes everything but the options file"
    );
}

#[test]
fn make_install_without_a_build_says_to_run_make_first() {
    if !optional_tool("make") {
        return;
    }
    let empty = TempDir::new();
    let stage = TempDir::new();
    let out = Command::new("make")
        .arg("-C")
        .arg(root())
        .arg("install")
        .arg(format!("BUILD_DIR={}", empty.path().display()))
        .arg(format!("DESTDIR={}", stage.path().display()))
        .output()
        .expect("run make");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run make first"), "{err}");
    assert!(tree(stage.path()).is_empty(), "nothing was installed");
}

#[test]
fn the_installed_service_and_socket_pass_systemd_analyze_verify() {
    if !optional_tool("make") || !optional_tool("systemd-analyze") {
        return;
    }
    // Installed under a scratch prefix, so the unit's ExecStart names a stud that exists.
    let build = staged_build();
    let prefix = TempDir::new();
    let etc = prefix.path().join("etc");
    make(
        "install",
        &[
            ("PREFIX", prefix.path()),
            ("SYSCONFDIR", &etc),
            ("BUILD_DIR", build.path()),
        ],
    );
    let units = prefix.path().join("lib/systemd/system");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("stud.service"))
        .arg(units.join("stud.socket"))
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify complained:\n{text}"
    );

    // systemd's own rating of the sandbox: 0 is fully confined, 10 not at all (Debian's hitch
    // unit rates 8.5). docs/deployment.md quotes this bound.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(units.join("stud.service"))
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for stud.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");
}

/// Every system call in a systemd syscall-filter set, its nested `@groups` expanded.
fn syscall_set(name: &str) -> BTreeSet<String> {
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", "--no-pager", name])
        .output()
        .expect("run systemd-analyze syscall-filter");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut calls = BTreeSet::new();
    for word in text.lines().skip(1).map(str::trim) {
        if word.is_empty() || word.starts_with('#') {
            continue;
        }
        if word.starts_with('@') {
            calls.extend(syscall_set(word));
        } else {
            calls.insert(word.to_owned());
        }
    }
    assert!(!calls.is_empty(), "systemd-analyze knows no {name}");
    calls
}

/// The system calls `SystemCallFilter=` lines allow: allowed sets, less every set on a line
/// that starts with `~`.
fn allowed_syscalls(unit: &str) -> BTreeSet<String> {
    let mut allowed = BTreeSet::new();
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .collect();
    for line in lines.iter().filter(|l| !l.starts_with('~')) {
        for set in line.split_whitespace() {
            allowed.extend(syscall_set(set));
        }
    }
    for line in lines.iter().filter_map(|l| l.strip_prefix('~')) {
        for set in line.split_whitespace() {
            allowed = &allowed - &syscall_set(set);
        }
    }
    allowed
}

#[test]
fn every_system_call_stud_makes_passes_the_services_filter() {
    if !optional_tool("strace") || !optional_tool("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(root().join("contrib/stud.service")).expect("unit");
    let allowed = allowed_syscalls(&unit);

    // stud under strace through a start with two workers, handshakes, a reload and a stop.
    let pki = Pki::new();
    let dir = TempDir::new();
    let trace = dir.path().join("trace");
    let bin = stud_bin!();
    let backend = echo_backend().to_string();
    let mut stud = Stud::start(
        Path::new("strace"),
        &[
            "-f",
            "-qq",
            "-o",
            trace.to_str().expect("UTF-8 path"),
            bin.to_str().expect("UTF-8 path"),
            "-n",
            "2",
            "-f",
            "127.0.0.1,0",
            "-b",
            &backend,
            pki.site_pem.to_str().expect("UTF-8 path"),
        ],
    );
    let config = net::client_config(&pki.ca_der);
    let ping = |stud: &Stud| {
        let mut tls = connect(stud.addr, &config).expect("handshake");
        tls.write_all(b"ping").expect("write");
        assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
    };
    ping(&stud);
    // The test started strace; stud is its child, and names its pid in its log lines.
    let stud_pid = stud
        .wait_line(|l| l.contains("listening on "), stud_tests::TIMEOUT)
        .and_then(|l| {
            let start = l.find("stud[")? + "stud[".len();
            l[start..].split(']').next()?.parse::<i32>().ok()
        })
        .unwrap_or_else(|| panic!("no pid in stud's log:\n{}", stud.output()));
    assert!(stud_tests::process::send_signal(stud_pid, libc::SIGHUP));
    stud.wait_line(
        |l| l.contains("reloaded the configuration"),
        stud_tests::TIMEOUT,
    )
    .unwrap_or_else(|| panic!("no reload:\n{}", stud.output()));
    ping(&stud);
    assert!(stud_tests::process::send_signal(stud_pid, libc::SIGTERM));
    assert!(
        stud.wait_exit(stud_tests::TIMEOUT).is_some(),
        "stud did not stop:\n{}",
        stud.output()
    );

    let log = std::fs::read_to_string(&trace).expect("strace's output");
    let used: BTreeSet<String> = log
        .lines()
        .filter_map(|l| {
            let call = l.split_whitespace().nth(1)?;
            let (name, _) = call.split_once('(')?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect();
    assert!(
        used.contains("accept4"),
        "the trace saw no accept: {used:?}"
    );
    let denied: Vec<&String> = used.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(
        denied.is_empty(),
        "stud.service's SystemCallFilter denies {denied:?}, which stud calls"
    );
}

/// The values of `key=` lines in a unit file.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

/// A port below 1024 on 127.0.0.1 that is free now (the test runs as root).
fn free_low_port() -> u16 {
    (600..1000)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024")
}

#[test]
fn stud_serves_a_low_port_with_only_the_rights_stud_service_gives_it() {
    if effective_uid() != 0 {
        stud_tests::skipped("not root, so a user with only the service's rights cannot be made");
        return;
    }
    if !optional_tool("setpriv") {
        return;
    }
    // The rights come from the unit itself: change it, and this test tries the new ones.
    let unit = std::fs::read_to_string(root().join("contrib/stud.service")).expect("unit");
    let caps = |key: &str| -> String {
        unit_values(&unit, key)
            .iter()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ambient = caps("AmbientCapabilities");
    let bounding = caps("CapabilityBoundingSet");
    assert_eq!(unit_values(&unit, "NoNewPrivileges"), ["yes"]);
    assert!(
        !unit_values(&unit, "User").contains(&"root".to_owned()),
        "the service never runs as root"
    );

    let pki = Pki::new();
    let port = free_low_port();
    let frontend = format!("127.0.0.1,{port}");
    let backend = echo_backend().to_string();
    let bin = stud_bin!();
    let stud = Stud::start(
        Path::new("setpriv"),
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &format!("--inh-caps=-all,{ambient}"),
            &format!("--ambient-caps=-all,{ambient}"),
            &format!("--bounding-set=-all,{bounding}"),
            "--no-new-privs",
            "--",
            bin.to_str().expect("UTF-8 path"),
            "-f",
            &frontend,
            "-b",
            &backend,
            pki.site_pem.to_str().expect("UTF-8 path"),
        ],
    );
    assert_eq!(stud.addr, SocketAddr::from(([127, 0, 0, 1], port)));
    let mut tls = connect(stud.addr, &net::client_config(&pki.ca_der)).expect("handshake");
    tls.write_all(b"ping").expect("write");
    assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
}

#[test]
fn published_crates_carry_the_license_and_publishing_metadata() {
    let license = std::fs::read(root().join("LICENSE")).expect("LICENSE at the root");
    assert!(String::from_utf8_lossy(&license).starts_with("BSD 2-Clause License"));
    for krate in ["stud-core", "stud-cli", "stud-ffi"] {
        let dir = root().join(krate);
        assert_eq!(
            std::fs::read(dir.join("LICENSE")).ok().as_ref(),
            Some(&license),
            "{krate}/LICENSE is the root LICENSE"
        );
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let package = manifest.split("\n[").next().expect("the [package] table");
        for field in [
            "description",
            "readme",
            "keywords",
            "categories",
            "documentation",
        ] {
            assert!(
                package
                    .lines()
                    .any(|l| l.starts_with(&format!("{field} ="))),
                "{krate} has no {field}"
            );
        }
        assert!(package.contains("license.workspace = true"), "{krate}");
        assert!(dir.join("README.md").is_file(), "{krate}/README.md");
    }
}

/// The value of the first `key=` line of a unit or options file.
fn first_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= line"))
        .to_owned()
}

#[test]
fn the_socket_stud_socket_describes_is_taken_by_the_frontend_stud_default_names() {
    let contrib = root().join("contrib");
    let socket_unit = std::fs::read_to_string(contrib.join("stud.socket")).expect("stud.socket");
    let options = std::fs::read_to_string(contrib.join("stud.default")).expect("stud.default");
    // A bare port: systemd binds the IPv6 wildcard, and with BindIPv6Only=both one socket takes
    // IPv4 too.
    let port: u16 = first_value(&socket_unit, "ListenStream")
        .parse()
        .expect("ListenStream= is a bare port");
    assert_eq!(first_value(&socket_unit, "BindIPv6Only"), "both");
    let flags = first_value(&options, "STUD_OPTIONS");
    assert!(
        flags.contains(&format!("-f *,{port} ")),
        "STUD_OPTIONS names the socket's frontend: {flags}"
    );

    // The same socket on a free port, passed as systemd passes it.
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
        .expect("an IPv6 socket");
    socket.set_only_v6(false).expect("dual-stack");
    let any: SocketAddr = "[::]:0".parse().expect("address");
    if socket.bind(&any.into()).is_err() {
        stud_tests::skipped("no IPv6 on this machine");
        return;
    }
    socket.listen(128).expect("listen");
    let listener: TcpListener = socket.into();
    let free = listener.local_addr().expect("address").port();
    let pki = Pki::new();
    let args: Vec<String> = [
        "-f",
        &format!("*,{free}"),
        "-b",
        &echo_backend().to_string(),
        pki.site_pem.to_str().expect("UTF-8 path"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let stud = Stud::start_command(socket_activated(&stud_bin!(), &listener, &args));
    drop(listener);
    let config = net::client_config(&pki.ca_der);
    for addr in [
        SocketAddr::from(([127, 0, 0, 1], free)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free)),
    ] {
        let mut tls =
            connect(addr, &config).unwrap_or_else(|e| panic!("{addr}: {e}\n{}", stud.output()));
        tls.write_all(b"ping").expect("write");
        assert_eq!(net::read_exact(&mut tls, 4).expect("echo"), b"ping");
    }
}
