//! Syscalls per operation, counted by `perf stat` on the kernel's syscall tracepoints over a
//! proxy's processes: started before a fixed amount of work, stopped (SIGINT) after it, so the
//! count divides by exactly the work done. What `harness profile` prints and what the results
//! table reports both come from here.

use std::io;
use std::process::{Child, Stdio};

use crate::proxies::{self, LOAD_CPU};

/// The syscalls counted apart (the rest only in the total).
pub const SYSCALLS: [&str; 30] = [
    "read",
    "write",
    "readv",
    "writev",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "accept4",
    "connect",
    "close",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "timerfd_settime",
    "socket",
    "fcntl",
    "mmap",
    "munmap",
    "accept",
    "bind",
    "getpeername",
    "ioctl",
    "madvise",
    "brk",
];

/// The `-e` argument of `perf stat`: every syscall entry, then each one counted apart.
pub fn events() -> String {
    let mut events = String::from("raw_syscalls:sys_enter");
    for s in SYSCALLS {
        events.push_str(&format!(",syscalls:sys_enter_{s}"));
    }
    events
}

/// Syscall counts: the total and each syscall counted apart (largest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Every syscall.
    pub total: f64,
    /// Per syscall name, largest first, zero counts left out.
    pub by_name: Vec<(String, f64)>,
}

impl Counts {
    /// Each count divided by `ops` (a zero or negative `ops` leaves no counts, not infinities).
    pub fn per(&self, ops: f64) -> Counts {
        if ops.is_nan() || ops <= 0.0 {
            return Counts::default();
        }
        Counts {
            total: self.total / ops,
            by_name: self
                .by_name
                .iter()
                .map(|(n, c)| (n.clone(), c / ops))
                .collect(),
        }
    }

    /// The largest `n` as `name 1.2, name 0.5`.
    pub fn top(&self, n: usize) -> String {
        self.by_name
            .iter()
            .take(n)
            .map(|(name, c)| format!("{name} {c:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses `perf stat -x ,` output (`count,unit,event,…` per line); lines that are not counts
/// (`<not counted>`, comments, blank) are skipped.
pub fn parse_perf_csv(text: &str) -> Counts {
    let mut c = Counts::default();
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(count), Some(_unit), Some(event)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(n) = count.trim().parse::<f64>() else {
            continue;
        };
        match event.trim().strip_prefix("syscalls:sys_enter_") {
            Some(name) if n > 0.0 => c.by_name.push((name.to_string(), n)),
            Some(_) => {}
            None if event.trim() == "raw_syscalls:sys_enter" => c.total += n,
            None => {}
        }
    }
    c.by_name.sort_by(|a, b| b.1.total_cmp(&a.1));
    c
}

/// Whether `perf` is installed.
pub fn available() -> bool {
    std::process::Command::new("perf")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A `perf stat` counting the syscalls of some processes until stopped.
#[derive(Debug)]
pub struct Counter {
    child: Child,
}

impl Counter {
    /// Starts counting the syscalls of `pids` (all their threads). Give it ~300 ms to attach
    /// before the work starts.
    pub fn start(pids: &[u32]) -> io::Result<Counter> {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let child = proxies::command("perf", LOAD_CPU)
            .args(["stat", "-x", ",", "-e", &events(), "-p", &pids.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(Counter { child })
    }

    /// Stops counting and returns the counts.
    pub fn stop(self) -> io::Result<Counts> {
        // SAFETY: kill(2) has no memory preconditions; the pid is our own live child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let out = self.child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let counts = parse_perf_csv(&text);
        if counts.total == 0.0 {
            return Err(io::Error::other(format!(
                "perf stat counted nothing: {text}"
            )));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERF: &str = "\
# started on Sun Nov 29 22:00:00 2026
12000,,raw_syscalls:sys_enter,4000000000,100.00,,
3000,,syscalls:sys_enter_epoll_ctl,4000000000,100.00,,
0,,syscalls:sys_enter_read,4000000000,100.00,,
<not counted>,,syscalls:sys_enter_mmap,0,0.00,,
5000,,syscalls:sys_enter_recvfrom,4000000000,100.00,,

";

    #[test]
    fn perf_csv_gives_the_total_and_each_syscall_largest_first() {
        let c = parse_perf_csv(PERF);
        assert_eq!(c.total, 12000.0);
        assert_eq!(
            c.by_name,
            vec![("recvfrom".into(), 5000.0), ("epoll_ctl".into(), 3000.0)]
        );
    }

    #[test]
    fn counts_divide_by_operations() {
        let c = parse_perf_csv(PERF).per(100.0);
        assert_eq!(c.total, 120.0);
        assert_eq!(c.top(1), "recvfrom 50.0");
        assert_eq!(c.top(5), "recvfrom 50.0, epoll_ctl 30.0");
        assert_eq!(parse_perf_csv(PERF).per(0.0), Counts::default());
        assert_eq!(parse_perf_csv(PERF).per(f64::NAN), Counts::default());
    }

    #[test]
    fn garbage_counts_nothing() {
        assert_eq!(parse_perf_csv("no,commas here\n,,\n"), Counts::default());
    }

    #[test]
    fn every_syscall_is_an_event() {
        let e = events();
        assert!(e.starts_with("raw_syscalls:sys_enter,"));
        assert_eq!(e.matches(",syscalls:sys_enter_").count(), SYSCALLS.len());
    }
}
