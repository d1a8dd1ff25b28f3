//! Capability dropping: the parent prepares a bit mask, the child installs it with raw
//! `prctl`/`capset` calls (the `caps` crate allocates, so it is used only in the parent).

use std::ffi::c_int;

use caps::{CapSet, Capability};

use crate::ExecError;

/// Capability sets for the child: everything not in `keep` is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CapPlan {
    keep: u64,
    last_cap: u32,
}

impl CapPlan {
    /// Parses the keep-list (`CAP_NET_RAW` or `net_raw`).
    pub(crate) fn new(keep: &[String]) -> Result<Self, ExecError> {
        let mut mask = 0u64;
        for name in keep {
            let upper = name.trim().to_ascii_uppercase();
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let cap: Capability = full.parse().map_err(|_| {
                ExecError::invalid("keep_capabilities", format!("unknown capability {name:?}"))
            })?;
            mask |= 1u64 << cap.index();
        }
        Ok(Self {
            keep: mask,
            last_cap: last_cap(),
        })
    }

    /// Why this plan cannot be enforced by this agent, if it cannot.
    pub(crate) fn unenforceable() -> Option<String> {
        match caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP) {
            Ok(true) => None,
            Ok(false) => {
                Some("the agent lacks CAP_SETPCAP, needed to drop the bounding set".to_owned())
            }
            Err(e) => Some(format!("cannot read the agent's capabilities: {e}")),
        }
    }

    /// Whether any capability is kept.
    pub(crate) fn keeps_any(&self) -> bool {
        self.keep != 0
    }

    /// First half, while the child still holds the agent's privileges: clears the ambient
    /// set and drops every bounding capability not kept.
    ///
    /// # Safety
    /// Called only from the vfork child in `spawn::setup_and_exec`: it performs raw
    /// `prctl` syscalls with integer arguments only (no allocation, no locks).
    pub(crate) unsafe fn drop_bounding_in_child(&self) -> Result<(), c_int> {
        // SAFETY: plain prctl invocations with integer arguments.
        unsafe {
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ) != 0
            {
                let e = *libc::__errno_location();
                // Kernels before 4.3 have no ambient set: nothing to clear.
                if e != libc::EINVAL {
                    return Err(e);
                }
            }
            for cap in 0..=self.last_cap.min(63) {
                if self.keep & (1u64 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                {
                    return Err(*libc::__errno_location());
                }
            }
        }
        Ok(())
    }

    /// Second half, after any user switch: sets the inheritable, permitted and effective
    /// sets to the kept ones (within what the child still holds). With `raise_ambient`
    /// (the child switched to a non-root task user, whose `execve` would otherwise drop
    /// every capability) the kept ones are also raised in the ambient set.
    ///
    /// # Safety
    /// As [`drop_bounding_in_child`](Self::drop_bounding_in_child): raw
    /// `prctl`/`capget`/`capset` syscalls on stack values only.
    pub(crate) unsafe fn restrict_in_child(&self, raise_ambient: bool) -> Result<(), c_int> {
        // SAFETY: plain prctl/syscall invocations with integer arguments or pointers to
        // locals, valid for the duration of each call.
        unsafe {
            let mut header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let mut data = [CapData::default(); 2];
            if libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) != 0 {
                return Err(*libc::__errno_location());
            }
            let mut held = 0u64;
            for (i, d) in data.iter_mut().enumerate() {
                let keep = (self.keep >> (32 * i)) as u32;
                d.permitted &= keep;
                d.effective = d.permitted;
                d.inheritable = d.permitted;
                held |= u64::from(d.permitted) << (32 * i);
            }
            if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) != 0 {
                return Err(*libc::__errno_location());
            }
            if raise_ambient {
                for cap in 0..=self.last_cap.min(63) {
                    if held & (1u64 << cap) != 0
                        && libc::prctl(
                            libc::PR_CAP_AMBIENT,
                            libc::PR_CAP_AMBIENT_RAISE,
                            cap as libc::c_ulong,
                            0,
                            0,
                        ) != 0
                    {
                        return Err(*libc::__errno_location());
                    }
                }
            }
        }
        Ok(())
    }
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Highest capability number of the running kernel.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_in_both_spellings() {
        let p = CapPlan::new(&["CAP_NET_BIND_SERVICE".to_owned(), "net_raw".to_owned()]).unwrap();
        assert_eq!(p.keep, (1 << 10) | (1 << 13));
        let e = CapPlan::new(&["CAP_FLY".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("keep_capabilities: unknown capability \"CAP_FLY\""),
            "{e}"
        );
    }
}
