//! Reading `/proc`: resident memory, children, liveness.

use std::fs;

/// `VmRSS` of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    parse_vmrss(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `VmRSS:` value (KiB) of a `/proc/<pid>/status` text.
pub(crate) fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `(state, ppid)` of a `/proc/<pid>/stat` text (the command name may hold spaces and parens).
pub(crate) fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// A process and its command line (arguments joined by spaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) cmdline: String,
}

/// Direct children of `parent` that are not zombies.
pub(crate) fn children_of(parent: u32) -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(state, ppid)| ppid == parent && state != 'Z')
        })
        .map(|pid| Proc {
            pid,
            cmdline: cmdline(pid).unwrap_or_default(),
        })
        .collect()
}

/// Command line of `pid`, arguments joined by spaces.
pub(crate) fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    Some(parts.join(" "))
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn is_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|(state, _)| state != 'Z')
}

/// The directory of cgroup `rel` (a `0::/path` line's path) under the cgroup2 mount, when
/// it exists.
pub(crate) fn cgroup2_dir(rel: &str) -> Option<std::path::PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2")
                .then(|| std::path::Path::new(mount).join(rel.trim_start_matches('/')))
        })
        .find(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrss() {
        assert_eq!(
            parse_vmrss("Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t   12345 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_vmrss("Name:\tx\n"), None);
    }

    #[test]
    fn stat_with_awkward_name() {
        assert_eq!(parse_stat("42 (a) b (c)) S 7 42 42 0 -1"), Some(('S', 7)));
        assert_eq!(parse_stat("42 (sleep) Z 1 42"), Some(('Z', 1)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_has_rss() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(rss_kib(me).is_some_and(|k| k > 0));
    }
}
