//! The OpenSSL client profile: a real OpenSSL 3 client (Python's `ssl` module, its defaults)
//! in a helper process pinned to the load CPU, driven by lines over its stdin and stdout.
//!
//! The script (`openssl_client.py`, compiled into the harness and written to the run's
//! directory) makes connections in threads, closed-loop or at a fixed open-loop rate. The
//! harness writes `mark` at the start and the end of a measurement window and reads the
//! counters the script prints (`COUNT <done> <resumed> <errors>`), reading the proxy's CPU at
//! the same moments, so a window means the same as one of [`crate::load`]'s. The first
//! connection's version and suite arrive as `INFO <version> <suite>`; `stop` ends the script,
//! which answers `END <done> <resumed> <errors> <first error>`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::Helper;
use crate::load::{Sample, Window, SMALL_RESPONSE};
use crate::proxies::{self, LOAD_CPU};

/// The client script.
pub const SCRIPT: &str = include_str!("openssl_client.py");

/// How long the script may take to answer a line.
const ANSWER: Duration = Duration::from_secs(30);

/// Counters the script reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Connections completed.
    pub done: u64,
    /// Of which resumed a session.
    pub resumed: u64,
    /// Connections that failed.
    pub errors: u64,
}

fn counts(words: &mut std::str::SplitN<'_, char>) -> Option<Counts> {
    Some(Counts {
        done: words.next()?.parse().ok()?,
        resumed: words.next()?.parse().ok()?,
        errors: words.next()?.parse().ok()?,
    })
}

/// Parses `COUNT <done> <resumed> <errors>`.
pub fn parse_count(line: &str) -> Option<Counts> {
    let mut w = line.trim_end().splitn(4, ' ');
    if w.next()? != "COUNT" {
        return None;
    }
    let c = counts(&mut w)?;
    w.next().is_none().then_some(c)
}

/// Parses `END <done> <resumed> <errors> [first error]`; the error is `None` when empty.
pub fn parse_end(line: &str) -> Option<(Counts, Option<String>)> {
    let mut w = line.trim_end().splitn(5, ' ');
    if w.next()? != "END" {
        return None;
    }
    let c = counts(&mut w)?;
    let first = w.next().map(str::trim).filter(|e| !e.is_empty());
    Some((c, first.map(str::to_string)))
}

/// Parses `INFO <version> <suite>` into `"<version> <suite>"`.
pub fn parse_info(line: &str) -> Option<String> {
    let rest = line.trim_end().strip_prefix("INFO ")?;
    (!rest.trim().is_empty()).then(|| rest.trim().to_string())
}

/// Whether `python3` with its `ssl` module is there; the reason when it is not.
pub fn check() -> Result<String, String> {
    let out = Command::new("python3")
        .args(["-c", "import ssl; print(ssl.OPENSSL_VERSION)"])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python3 has no ssl module: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes the script into `dir`; returns its path.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    let path = dir.join("openssl_client.py");
    std::fs::write(&path, SCRIPT)?;
    Ok(path)
}

/// A running client script.
struct Client {
    helper: Helper,
    info: Option<String>,
}

impl Client {
    fn start(
        script: &Path,
        addr: SocketAddr,
        resume: bool,
        threads: usize,
        rate: Option<f64>,
    ) -> io::Result<Client> {
        let mut cmd = proxies::command("python3", LOAD_CPU);
        cmd.arg(script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(if resume { "1" } else { "0" })
            .arg(threads.to_string())
            .arg(format!("{}", rate.unwrap_or(0.0)))
            .arg(SMALL_RESPONSE.to_string());
        Ok(Client {
            helper: Helper::spawn(cmd, "openssl client")?,
            info: None,
        })
    }

    /// The next line that is not `INFO` (which is kept).
    fn answer(&mut self) -> io::Result<String> {
        loop {
            let line = self.helper.line(ANSWER)?;
            match parse_info(&line) {
                Some(info) => {
                    self.info.get_or_insert(info);
                }
                None => return Ok(line),
            }
        }
    }

    fn mark(&mut self) -> io::Result<Counts> {
        self.helper.send("mark")?;
        let line = self.answer()?;
        parse_count(&line).ok_or_else(|| io::Error::other(format!("openssl client said '{line}'")))
    }

    fn stop(mut self) -> io::Result<(Counts, Option<String>, Option<String>)> {
        self.helper.send("stop")?;
        let line = self.answer()?;
        let (c, first) = parse_end(&line)
            .ok_or_else(|| io::Error::other(format!("openssl client said '{line}'")))?;
        let info = self.info.take();
        self.helper.stop();
        Ok((c, first, info))
    }
}

/// Handshakes through `addr` by the OpenSSL client, `threads` at a time, as fast as they go or
/// at `rate` per second; measured over `window` after `warmup`. Returns the window and what the
/// first connection agreed (`"TLSv1.3 TLS_AES_256_GCM_SHA384"`).
#[allow(clippy::too_many_arguments)]
pub fn handshakes(
    script: &Path,
    addr: SocketAddr,
    resume: bool,
    threads: usize,
    rate: Option<f64>,
    warmup: Duration,
    window: Duration,
    cpu: &dyn Fn() -> f64,
) -> io::Result<(Window, Option<String>)> {
    let mut client = Client::start(script, addr, resume, threads, rate)?;
    std::thread::sleep(warmup);
    let sample = |c: &mut Client| -> io::Result<Sample> {
        let n = c.mark()?;
        Ok(Sample {
            done: n.done,
            resumed: n.resumed,
            cpu: cpu(),
            at: Instant::now(),
        })
    };
    let a = sample(&mut client)?;
    std::thread::sleep(window);
    let b = sample(&mut client)?;
    let (end, first, info) = client.stop()?;
    Ok((Window::between(&a, &b, end.errors, first), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_parsed_and_garbage_is_refused() {
        assert_eq!(
            parse_count("COUNT 10 7 1\n"),
            Some(Counts {
                done: 10,
                resumed: 7,
                errors: 1
            })
        );
        assert_eq!(parse_count("COUNT 10 7"), None);
        assert_eq!(parse_count("COUNT 10 7 1 2"), None);
        assert_eq!(parse_count("COUNT a 7 1"), None);
        assert_eq!(parse_count("END 1 2 3"), None);
        assert_eq!(parse_count(""), None);
    }

    #[test]
    fn the_end_line_carries_the_first_error() {
        assert_eq!(
            parse_end("END 5 4 2 ConnectionRefusedError: [Errno 111] Connection refused"),
            Some((
                Counts {
                    done: 5,
                    resumed: 4,
                    errors: 2
                },
                Some("ConnectionRefusedError: [Errno 111] Connection refused".into())
            ))
        );
        assert_eq!(parse_end("END 5 4 0 \n").map(|e| e.1), Some(None));
        assert_eq!(parse_end("END 5 4 0").map(|e| e.0.done), Some(5));
        assert_eq!(parse_end("END 5 4"), None);
        assert_eq!(parse_end("COUNT 5 4 0"), None);
    }

    #[test]
    fn info_names_version_and_suite() {
        assert_eq!(
            parse_info("INFO TLSv1.3 TLS_AES_256_GCM_SHA384\n").as_deref(),
            Some("TLSv1.3 TLS_AES_256_GCM_SHA384")
        );
        assert_eq!(parse_info("INFO "), None);
        assert_eq!(parse_info("COUNT 1 1 1"), None);
    }

    #[test]
    fn the_script_speaks_the_protocol_parsed_here() {
        for word in [
            "COUNT %d %d %d",
            "END %d %d %d %s",
            "INFO ",
            "\"mark\"",
            "\"stop\"",
        ] {
            assert!(SCRIPT.contains(word), "{word}");
        }
    }
}
