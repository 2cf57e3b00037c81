//! What the kernel says about the `stud` processes: CPU time, resident memory, open descriptors
//! and children, read from `/proc/<pid>/{stat,status,fd}` and `/proc/<pid>/task/*/children`.
//!
//! These are the numbers the hostile-world tests hold stud to: a worker under attack must not
//! spin (CPU), grow (RSS) or leak (descriptors), and the parent must not either.

use std::fmt;
use std::time::{Duration, Instant};

/// One process at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The process id.
    pub pid: i32,
    /// User plus system CPU time, in clock ticks (`utime + stime` of `/proc/<pid>/stat`).
    pub cpu_ticks: u64,
    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub rss_kib: u64,
    /// Open file descriptors (entries of `/proc/<pid>/fd`).
    pub fds: usize,
    /// The state letter (`R`, `S`, `Z`, …).
    pub state: char,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {} state {} cpu {} ticks rss {} KiB fds {}",
            self.pid, self.state, self.cpu_ticks, self.rss_kib, self.fds
        )
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of [`Sample::cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer name and touches no memory.
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The fields of `/proc/<pid>/stat` after the parenthesised command name (which may itself hold
/// spaces and parentheses): index 0 is the state, 1 the parent pid, 11 utime, 12 stime.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Reads one process; `None` once it is gone.
pub fn sample(pid: i32) -> Option<Sample> {
    let fields = stat_fields(pid)?;
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // A zombie has no VmRSS line: it holds no memory.
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    Some(Sample {
        pid,
        cpu_ticks: utime + stime,
        rss_kib,
        fds,
        state,
    })
}

/// The children of `pid`, zombies included (`/proc/<pid>/task/*/children`).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The parent and its children at one moment.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The supervisor.
    pub parent: Sample,
    /// Its children (the workers), by pid.
    pub children: Vec<Sample>,
}

impl Tree {
    /// Reads the parent `pid` and every child it has now.
    pub fn read(pid: i32) -> Option<Tree> {
        let parent = sample(pid)?;
        let children = children(pid).into_iter().filter_map(sample).collect();
        Some(Tree { parent, children })
    }

    /// Children that are zombies (dead, not yet reaped).
    pub fn zombies(&self) -> Vec<i32> {
        self.children
            .iter()
            .filter(|c| c.state == 'Z')
            .map(|c| c.pid)
            .collect()
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parent [{}]", self.parent)?;
        for c in &self.children {
            write!(f, "; worker [{c}]")?;
        }
        Ok(())
    }
}

/// The share of one core `pid` used over `window` (1.0 = a whole core), measured from the
/// change in `utime + stime`.
pub fn cpu_share(pid: i32, window: Duration) -> Option<f64> {
    let before = sample(pid)?.cpu_ticks;
    let start = Instant::now();
    std::thread::sleep(window);
    let after = sample(pid)?.cpu_ticks;
    let secs = start.elapsed().as_secs_f64();
    Some(after.saturating_sub(before) as f64 / ticks_per_second() as f64 / secs)
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints a line the test harness shows for failing tests (and with `--nocapture`): the numbers
/// a reader wants when a bound is missed or tuned.
pub fn report(test: &str, what: &str) {
    println!("[{test}] {what}");
}
