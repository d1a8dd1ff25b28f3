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
    fs, io,
    path::{Path, PathBuf},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{cgroup, poll};
use crate::sys::Swept;

/// A fresh attempt cgroup name of this process: `solti-<pid>-<start>-<seq>`.
pub(crate) fn next_attempt_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let (pid, start) = own_identity();
    format!(
        "{PREFIX}{pid}-{start}-{}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Kills and removes the stale attempt cgroups directly under `parent`, waiting up to
/// [`SWEEP_WAIT`] (blocking) for their processes to die.
pub(crate) fn sweep(parent: &Path) -> Swept {
    let mut sweep = Swept::default();
    // Each stale cgroup with the last reason it could not be removed (`None`: populated).
    let mut pending: Vec<(PathBuf, Option<io::Error>)> = cgroup::children(parent)
        .into_iter()
        .filter(|dir| {
            dir.file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_name)
                .is_some_and(|(pid, start)| !owner_alive(pid, start))
        })
        .map(|dir| (dir, None))
        .collect();
    poll::blocking(SWEEP_WAIT, || {
        pending.retain_mut(|(dir, why)| {
            cgroup::kill(dir);
            if cgroup::populated(dir) {
                *why = None;
                return true;
            }
            match cgroup::remove(dir) {
                Ok(()) => {
                    sweep.removed += 1;
                    false
                }
                Err(e) => {
                    *why = Some(e);
                    true
                }
            }
        });
        pending.is_empty()
    });
    sweep.left = pending
        .into_iter()
        .map(|(dir, why)| {
            let why = why.map_or_else(
                || "still populated after SIGKILL (a process in uninterruptible sleep?)".to_owned(),
                |e| format!("cannot remove it: {e}"),
            );
            (dir, why)
        })
        .collect();
    sweep
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

const PREFIX: &str = "solti-";
/// Longest a sweep blocks waiting for killed processes to exit.
const SWEEP_WAIT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_rejected() {
        let name = next_attempt_name();
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
