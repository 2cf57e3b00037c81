//! Logging as operators meet it: a log reader that stops reading (a wedged journald, a full
//! `| logger`) must cost no worker and no connection; `-l FILE` is appended to, every line
//! carries an ISO 8601 UTC timestamp, and SIGUSR1 or SIGHUP let logrotate move the file away.

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stud_tests::daemon::{echoes, served_with};
use stud_tests::hostile::{served, Load};
use stud_tests::net::{self, echo_backend};
use stud_tests::pki::{Pki, TempDir};
use stud_tests::process::{self, alive, Stud};
use stud_tests::procfs::{children, wait_for};
use stud_tests::{stud_bin, TIMEOUT};

#[test]
fn a_log_reader_that_stops_reading_costs_no_worker_and_no_connection() {
    let pki = Pki::new();
    let b = echo_backend().to_string();
    let (reader, writer) = process::pipe();
    // The smallest pipe the kernel gives: a few lines fill it, as a stalled reader's would be.
    process::set_pipe_size(&writer, 4096);
    let (stud, addr) = process::spawn_on_free_port(|f| {
        Stud::spawn_with_stderr(
            &stud_bin!(),
            &[
                "-n",
                "1",
                "--log-conns",
                "--worker-timeout=3",
                "-f",
                f,
                "-b",
                &b,
                pki.site_pem.to_str().expect("utf-8"),
            ],
            Stdio::from(writer.try_clone().expect("dup the pipe")),
        )
    });
    // Only stud holds the write end now.
    drop(writer);
    let config = net::client_config(&pki.ca_der);
    let mut held = served_with(addr, &config);
    echoes(&mut held, b"before");
    let workers = wait_for(TIMEOUT, || {
        let c = children(stud.pid());
        (c.len() == 1).then_some(c)
    })
    .expect("one worker");

    // Short connections, one log line each, for twice the watchdog's timeout; nobody reads.
    let load = Load::start(&[addr], &config, 2);
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
        echoes(&mut held, b"during");
    }
    let (ok, failed) = load.finish();
    eprintln!("{ok} connections served, {failed} failed, with nobody reading the log");
    assert!(ok >= 100, "too few connections to fill the log: {ok}");
    assert_eq!(failed, 0, "connections failed while the log was not read");
    echoes(&mut held, b"after");
    assert_eq!(children(stud.pid()), workers, "the worker was replaced");

    // The reader wakes up: the lines that could not be written are counted, in one line.
    let lines = Arc::new(std::sync::Mutex::new(String::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        let mut reader = std::fs::File::from(reader);
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if let Ok(mut text) = sink.lock() {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let text = loop {
        // Each connection makes a line, which brings the count out once there is room.
        let _ = served(addr, &config);
        let text = lines.lock().map(|t| t.clone()).unwrap_or_default();
        if text.contains("log lines were lost: standard error") {
            break text;
        }
        assert!(Instant::now() < deadline, "no count of lost lines:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let notice = text
        .lines()
        .find(|l| l.contains("were lost"))
        .expect("the notice");
    eprintln!("once read again: {notice}");
    assert!(notice.contains("warning: "), "{notice}");
    assert!(alive(stud.pid()));
}

/// Whether `line` starts `YYYY-MM-DDTHH:MM:SS.mmmZ stud[PID]: `.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19)
        && b.get(19) == Some(&b'.')
        && digits(20..23)
        && line.get(23..30) == Some("Z stud[")
        && line[30..]
            .split_once("]: ")
            .is_some_and(|(pid, _)| pid.parse::<u32>().is_ok())
}

/// Today's date in UTC as `YYYY-MM-DD`, by `date -u`.
fn utc_date() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits for a line containing `needle` in `path`, and returns the file's text.
fn wait_in_file(path: &Path, needle: &str) -> String {
    wait_for(TIMEOUT, || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.contains(needle))
    })
    .unwrap_or_else(|| {
        panic!(
            "no {needle:?} in {}:\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        )
    })
}

#[test]
fn log_filename_gets_timestamped_lines_and_is_reopened_on_usr1_and_hup() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let log = dir.path().join("stud.log");
    std::fs::write(&log, "an earlier line that must be kept\n").expect("existing log");
    let b = echo_backend().to_string();
    let date_before = utc_date();
    let (stud, addr) = process::spawn_on_free_port(|f| {
        Stud::spawn(
            &stud_bin!(),
            &[
                "--log-conns",
                "-l",
                log.to_str().expect("utf-8"),
                "-f",
                f,
                "-b",
                &b,
                pki.site_pem.to_str().expect("utf-8"),
            ],
        )
    });
    let config = net::client_config(&pki.ca_der);
    echoes(&mut served_with(addr, &config), b"one");
    let text = wait_in_file(&log, "closed: ");
    let date_after = utc_date();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("an earlier line that must be kept"));
    for line in lines {
        assert!(stamped(line), "not an ISO 8601 UTC stamped line: {line:?}");
        assert!(
            line.starts_with(&date_before) || line.starts_with(&date_after),
            "not today's UTC date: {line:?}"
        );
    }
    assert!(text.contains("listening on 127.0.0.1:"), "{text}");
    // The connection's line is the worker's, carried by the supervisor.
    let closed = text.lines().find(|l| l.contains("closed: ")).expect("line");
    assert!(
        !closed.contains(&format!("stud[{}]", stud.pid())),
        "a worker's line under the supervisor's pid: {closed}"
    );
    assert!(
        !stud.output().contains("listening on"),
        "log lines on stderr too:\n{}",
        stud.output()
    );

    // logrotate: move the file away, signal, and the next lines start a fresh file.
    for (signal, rotated) in [(libc::SIGUSR1, "stud.log.1"), (libc::SIGHUP, "stud.log.2")] {
        let rotated = dir.path().join(rotated);
        std::fs::rename(&log, &rotated).expect("rotate");
        stud.signal(signal);
        wait_for(TIMEOUT, || log.exists().then_some(())).unwrap_or_else(|| {
            panic!(
                "no fresh log file after signal {signal}; stderr:\n{}",
                stud.output()
            )
        });
        echoes(&mut served_with(addr, &config), b"two");
        let fresh = wait_in_file(&log, "closed: ");
        assert!(fresh.lines().all(stamped), "{fresh}");
        let old = std::fs::read_to_string(&rotated).expect("rotated file");
        assert!(
            old.matches("closed: ").count() >= 1,
            "the rotated file lost its lines:\n{old}"
        );
    }
    assert!(alive(stud.pid()));
}

#[test]
fn a_log_file_that_cannot_be_opened_stops_the_start_naming_it() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-dir").join("stud.log");
    let out = process::run(
        &stud_bin!(),
        &[
            "-l",
            missing.to_str().expect("utf-8"),
            "-f",
            "127.0.0.1,0",
            pki.site_pem.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let expected = format!("stud: error: cannot open log file {}:", missing.display());
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
}

#[test]
fn a_log_file_that_cannot_be_reopened_keeps_the_old_one_and_says_so() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("log directory");
    let log = logs.join("stud.log");
    let b = echo_backend().to_string();
    let (stud, addr) = process::spawn_on_free_port(|f| {
        Stud::spawn(
            &stud_bin!(),
            &[
                "--log-conns",
                "-l",
                log.to_str().expect("utf-8"),
                "-f",
                f,
                "-b",
                &b,
                pki.site_pem.to_str().expect("utf-8"),
            ],
        )
    });
    wait_in_file(&log, "listening on");
    // The whole directory goes away: the file cannot be made again where it was.
    let moved = dir.path().join("logs.old");
    std::fs::rename(&logs, &moved).expect("move the directory");
    stud.signal(libc::SIGUSR1);
    let old = moved.join("stud.log");
    let text = wait_in_file(&old, "cannot reopen log file");
    assert!(text.contains(&log.display().to_string()), "{text}");
    // And it keeps logging there.
    echoes(
        &mut served_with(addr, &net::client_config(&pki.ca_der)),
        b"hi",
    );
    wait_in_file(&old, "closed: ");
    assert!(alive(stud.pid()));
}
