//! Attempt cgroups left behind by an agent that died (SIGKILL, crash, OOM kill): naming,
//! recognising them, and killing what still runs in them.
//!
//! An attempt cgroup is named `solti-<pid>-<start>-<seq>`: the creating agent's pid, its
//! start time (`/proc/<pid>/stat` field 22, clock ticks since boot) and a per-process
//! sequence number. The pair `(pid, start)` identifies one agent process for the lifetime
//! of the host, pid reuse included. A cgroup is stale when no live process in our pid
//! namespace has that pid *and* that start time; only such cgroups are touched, and only
//! names of exactly this shape: everything else under the parent (other agents' attempts,
//! our own, foreign cgroups) is left alone.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::sys::Swept;

/// The name of this process's attempt cgroup number `seq`.
pub(crate) fn attempt_name(seq: u64) -> String {
    let (pid, start) = own_identity();
    format!("{PREFIX}{pid}-{start}-{seq}")
}

/// Kills and removes the stale attempt cgroups directly under `parent`, waiting up to
/// [`SWEEP_WAIT`] (blocking) for their processes to die.
pub(crate) fn sweep(parent: &Path) -> Swept {
    let mut sweep = Swept::default();
    let Ok(entries) = fs::read_dir(parent) else {
        return sweep;
    };
    let mut pending: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(parse_name)
                .is_some_and(|(pid, start)| !owner_alive(pid, start))
        })
        .map(|e| e.path())
        .collect();
    let deadline = Instant::now() + SWEEP_WAIT;
    let mut wait = Duration::from_millis(1);
    loop {
        let mut still = Vec::new();
        for dir in pending {
            kill_tree(&dir);
            if populated(&dir) {
                still.push(dir);
                continue;
            }
            match remove_tree(&dir) {
                Ok(()) => sweep.removed += 1,
                Err(e) if Instant::now() >= deadline => {
                    sweep.left.push((dir, format!("cannot remove it: {e}")));
                }
                Err(_) => still.push(dir),
            }
        }
        pending = still;
        if pending.is_empty() {
            return sweep;
        }
        if Instant::now() >= deadline {
            for dir in pending {
                sweep.left.push((
                    dir,
                    "still populated after SIGKILL (a process in uninterruptible sleep?)"
                        .to_owned(),
                ));
            }
            return sweep;
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(50));
    }
}

/// `(pid, start)` of an attempt cgroup name, if it has exactly our shape.
fn parse_name(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.strip_prefix(PREFIX)?.split('-');
    let (pid, start, seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ![pid, start, seq].iter().all(|p| is_number(p)) {
        return None;
    }
    seq.parse::<u64>().ok()?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the agent process `(pid, start)` still runs. When in doubt (e.g. `/proc`
/// hides other users' processes) it counts as alive: its cgroups are then left alone.
fn owner_alive(pid: u32, start: u64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match parse_stat(&stat) {
            Some((state, started)) => !matches!(state, 'Z' | 'X') && started == start,
            None => true,
        },
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// `(state, starttime)` from a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), starttime is field 22.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

/// This process's `(pid, start time)`; start 0 when `/proc` is unreadable (then our
/// names still differ from any other live agent's by pid).
fn own_identity() -> (u32, u64) {
    static IDENTITY: OnceLock<(u32, u64)> = OnceLock::new();
    *IDENTITY.get_or_init(|| {
        let start = fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
            .map_or(0, |(_, start)| start);
        (std::process::id(), start)
    })
}

/// SIGKILLs everything in `dir` and below: `cgroup.kill`, or a signal loop (kernels before
/// 5.14).
fn kill_tree(dir: &Path) {
    if fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut f| f.write_all(b"1"))
        .is_ok()
    {
        return;
    }
    if let Ok(list) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in list
            .lines()
            .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill has no memory-safety preconditions. The pid is a member of a
            // cgroup whose agent is dead, i.e. an orphaned task process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    for sub in subdirs(dir) {
        kill_tree(&sub);
    }
}

fn populated(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("cgroup.events")) {
        Ok(ev) => ev.lines().any(|l| l.trim() == "populated 1"),
        Err(_) => false,
    }
}

/// Removes `dir` and any cgroups a task created inside it, deepest first. Gone already
/// (another agent swept it concurrently) counts as removed.
fn remove_tree(dir: &Path) -> io::Result<()> {
    for sub in subdirs(dir) {
        remove_tree(&sub)?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

const PREFIX: &str = "solti-";
/// Longest a sweep blocks waiting for killed processes to exit.
const SWEEP_WAIT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_rejected() {
        let name = attempt_name(7);
        let (pid, start) = parse_name(&name).unwrap();
        assert_eq!((pid, start), own_identity());
        assert!(owner_alive(pid, start), "we are alive");
        for foreign in [
            "solti-1-2",
            "solti-1-2-3-4",
            "solti-test",
            "solti--2-3",
            "solti-+1-2-3",
            "solti-1-2-x",
            "other-1-2-3",
            "solti-1-2-99999999999999999999999",
        ] {
            assert_eq!(parse_name(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let mut fields = vec!["0"; 50];
        fields[0] = "S";
        fields[22 - 3] = "424242";
        let stat = format!("123 (a) b (c)) {}", fields.join(" "));
        assert_eq!(parse_stat(&stat), Some(('S', 424_242)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_reused_pid_or_a_zombie_is_not_the_owner() {
        let (pid, start) = own_identity();
        assert!(!owner_alive(pid, start + 1));
        assert!(!owner_alive(u32::MAX, 1));
    }
}
