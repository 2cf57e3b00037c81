//! What the kernel says about a proxy's processes: the process tree, CPU time and memory.
//!
//! CPU time is `utime + stime` from `/proc/<pid>/stat` (all threads of a process), summed over
//! the proxy's whole process tree, so workers a supervisor forks count too.

use std::collections::HashMap;
use std::fs;

/// CPU time and memory of a set of processes at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User plus system CPU seconds.
    pub cpu_secs: f64,
    /// Sum of VmRSS, in KiB.
    pub rss_kib: u64,
    /// Sum of proportional set sizes (smaps_rollup `Pss`), in KiB.
    pub pss_kib: u64,
    /// How many processes were counted.
    pub processes: usize,
}

/// The fields of `/proc/<pid>/stat` the harness uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Parent process id.
    pub ppid: u32,
    /// User-mode CPU time in clock ticks.
    pub utime: u64,
    /// Kernel-mode CPU time in clock ticks.
    pub stime: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name may hold spaces and parentheses, so
/// the fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    // After the name: state(3) ppid(4) pgrp(5) … utime(14) stime(15); index 0 here is field 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// Reads the value in kB of `key` from a `status` or `smaps_rollup` text (`Key:   1234 kB`).
pub fn parse_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Every live process's stat, by pid.
fn all_stats() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            out.insert(pid, stat);
        }
    }
    out
}

/// `root` and all its live descendants.
pub fn tree(root: u32) -> Vec<u32> {
    descendants(root, &all_stats())
}

fn descendants(root: u32, stats: &HashMap<u32, Stat>) -> Vec<u32> {
    let mut out = Vec::new();
    if !stats.contains_key(&root) {
        return out;
    }
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        out.push(pid);
        stack.extend(
            stats
                .iter()
                .filter(|(_, s)| s.ppid == pid)
                .map(|(child, _)| *child),
        );
    }
    out.sort_unstable();
    out
}

/// CPU and memory of `root`'s whole process tree now.
pub fn usage(root: u32) -> Usage {
    let stats = all_stats();
    let tick = clock_ticks_per_sec();
    let mut u = Usage::default();
    for pid in descendants(root, &stats) {
        let s = stats[&pid];
        u.cpu_secs += (s.utime + s.stime) as f64 / tick;
        u.processes += 1;
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            u.rss_kib += parse_kb(&status, "VmRSS").unwrap_or(0);
        }
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            u.pss_kib += parse_kb(&rollup, "Pss").unwrap_or(0);
        }
    }
    u
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line =
            "4242 (we ird) (name) S 17 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 1 0 \
                    100 1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                utime: 123,
                stime: 45
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn kb_values_are_found_by_key() {
        let status = "Name:\tstud\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_kb(status, "VmRSS"), Some(5120));
        assert_eq!(parse_kb(status, "Vm"), None);
        assert_eq!(parse_kb("Rss: 10 kB\nPss: 7 kB\n", "Pss"), Some(7));
    }

    #[test]
    fn this_process_is_its_own_tree_with_cpu_time() {
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        let u = usage(me);
        assert!(u.processes >= 1);
        assert!(u.rss_kib > 0);
        assert!(alive(me));
    }
}
