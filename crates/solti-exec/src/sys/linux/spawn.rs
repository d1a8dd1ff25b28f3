//! Starting a child the way `posix_spawn` does (`clone(CLONE_VM | CLONE_VFORK)` + `execve`),
//! with our isolation steps between the two.
//!
//! Why not `std::process::Command::pre_exec`: any `pre_exec` hook makes std fall back from
//! `posix_spawn` to `fork()`, whose cost grows with the parent's memory (page tables are
//! copied), to tens of spawns per second for a 1 GiB agent. A `CLONE_VM | CLONE_VFORK`
//! child shares the parent's memory until `execve`, so its cost does not depend on the
//! agent's size, and the isolation steps (death signal, process group, cgroup, rlimits,
//! capabilities, `no_new_privs`) are a handful of syscalls on values prepared before the
//! clone. Call [`clone_and_exec`] only from the spawner threads (`super::spawner`): the
//! death signal is tied to the thread that clones.
//!
//! Parent-side calls go through `nix`. The child runs between `clone` and `execve` in the
//! parent's memory, where it must not allocate or take locks, so it makes its syscalls
//! through `libc` directly on values prepared by the parent; `clone` itself is `libc`'s
//! too, as `nix::sched::clone` boxes its callback and sizes the stack for us.

use std::{
    ffi::{CStr, CString, c_int, c_void},
    fs, io,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd},
    ptr,
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    sys::signal::{SigSet, SigmaskHow, pthread_sigmask},
};

use super::{caps::CapPlan, child};

/// Everything the child needs, prepared (allocated) before the clone.
#[derive(Debug)]
pub(crate) struct ExecPlan {
    /// `argv`, starting with the program name as given.
    pub(crate) argv: Vec<CString>,
    /// `KEY=VALUE` environment.
    pub(crate) envp: Vec<CString>,
    /// Working directory, if any.
    pub(crate) cwd: Option<CString>,
    /// `(resource, soft = hard)` pairs.
    pub(crate) rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    /// Capability sets to install, if any.
    pub(crate) caps: Option<CapPlan>,
    /// Whether to set `PR_SET_NO_NEW_PRIVS`.
    pub(crate) no_new_privs: bool,
    /// `(uid, gid)` to switch to (supplementary groups cleared), if any.
    pub(crate) run_as: Option<(libc::uid_t, libc::gid_t)>,
}

/// A started child: pid plus the parent ends of its output pipes.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: libc::pid_t,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// Why the child did not reach `execve` successfully.
#[derive(Debug)]
pub(crate) struct SpawnFailure {
    pub(crate) stage: &'static str,
    pub(crate) error: io::Error,
}

/// Starts `program` (a resolved path) with `plan` as a new process-group leader;
/// `cgroup_procs` (an open `cgroup.procs`) puts it into that cgroup before `execve`.
pub(crate) fn clone_and_exec(
    program: &CStr,
    plan: &ExecPlan,
    cgroup_procs: Option<BorrowedFd<'_>>,
) -> Result<Started, SpawnFailure> {
    let fail = |stage| move |error| SpawnFailure { stage, error };
    let stdin = open_dev_null().map_err(fail("open /dev/null"))?;
    let (out_r, out_w) = pipe().map_err(fail("pipe"))?;
    let (err_r, err_w) = pipe().map_err(fail("pipe"))?;

    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain([ptr::null()])
        .collect();
    let rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)> = plan
        .rlimits
        .iter()
        .map(|&(res, v)| {
            (
                res,
                libc::rlimit {
                    rlim_cur: v,
                    rlim_max: v,
                },
            )
        })
        .collect();
    let mut args = ChildArgs {
        program: program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: plan.cwd.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
        stdio: [stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        cgroup_procs: cgroup_procs.map_or(-1, |fd| fd.as_raw_fd()),
        rlimits: rlimits.as_ptr(),
        rlimits_len: rlimits.len(),
        caps: plan.caps,
        no_new_privs: plan.no_new_privs,
        run_as: plan.run_as,
        parent_pid: libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX),
        sig_max: libc::SIGRTMAX(),
        failed_stage: None,
        failed_errno: 0,
    };

    // The child runs on its own stack inside our address space until it execs.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK_BYTES);
    // SAFETY: the offset stays within the allocation (one past the end is allowed); the
    // result is aligned down to 16 bytes as the x86-64/aarch64 ABIs require.
    let stack_top = unsafe { stack.as_mut_ptr().add(CHILD_STACK_BYTES) };
    let stack_top = ((stack_top as usize) & !15) as *mut c_void;

    // Blocking every signal keeps our handlers from running in the child while it shares
    // our memory (glibc's posix_spawn does the same).
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(|e| fail("sigmask")(e.into()))?;
    // SAFETY: `child_main` only uses `args` and the raw values it points to, which live in
    // this frame until clone returns; with CLONE_VFORK this thread is suspended until the
    // child has called execve or _exit, so nothing here is touched concurrently. The stack
    // is a live allocation of CHILD_STACK_BYTES that outlives the child's use of it.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack_top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            ptr::addr_of_mut!(args).cast::<c_void>(),
        )
    };
    let clone_error = io::Error::last_os_error();
    // Restoring a mask read just before cannot fail.
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    drop(stack);
    if pid < 0 {
        return Err(SpawnFailure {
            stage: "clone",
            error: clone_error,
        });
    }
    if let Some(stage) = args.failed_stage {
        // The child wrote the failure and called _exit; collect it so no zombie remains.
        child::reap_blocking(pid);
        return Err(SpawnFailure {
            stage,
            error: io::Error::from_raw_os_error(args.failed_errno),
        });
    }
    drop((stdin, out_w, err_w));
    Ok(Started {
        pid,
        stdout: out_r,
        stderr: err_r,
    })
}

/// Values read by the child. Raw pointers only: the child must not allocate or lock.
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [RawFd; 3],
    cgroup_procs: RawFd,
    rlimits: *const (libc::__rlimit_resource_t, libc::rlimit),
    rlimits_len: usize,
    caps: Option<CapPlan>,
    no_new_privs: bool,
    run_as: Option<(libc::uid_t, libc::gid_t)>,
    /// The agent's pid, to detect that it died before `PR_SET_PDEATHSIG` was armed.
    parent_pid: libc::pid_t,
    sig_max: c_int,
    /// Set by the child on failure: the step that failed (a plain store, no allocation).
    failed_stage: Option<&'static str>,
    failed_errno: c_int,
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to clone; the parent is suspended
    // (CLONE_VFORK) until we exec or exit, so this is the only access.
    let args = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: we are the freshly cloned child described in `setup_and_exec`'s contract.
    let (stage, errno) = unsafe { setup_and_exec(args) };
    args.failed_stage = Some(stage);
    args.failed_errno = errno;
    // SAFETY: _exit is async-signal-safe and does not run atexit handlers or flush stdio
    // buffers that belong to the parent.
    unsafe { libc::_exit(127) }
}

/// Applies every step and calls `execve`; returns only on failure, with the failed step
/// and its errno.
///
/// # Safety
/// Must run only in a child created by `clone(CLONE_VM | CLONE_VFORK)` from
/// [`clone_and_exec`]:
/// it shares the parent's memory, so it must not allocate, take locks, unwind or touch
/// thread-locals other than `errno`. Everything here is a direct syscall wrapper on
/// values prepared by the parent (all async-signal-safe per signal-safety(7)), and `args`
/// must point to valid, NUL-terminated strings and arrays.
unsafe fn setup_and_exec(args: &ChildArgs) -> (&'static str, c_int) {
    // SAFETY: each call is an async-signal-safe libc wrapper given pointers that the parent
    // keeps alive for the duration of the vfork (see the function contract).
    unsafe {
        // Die with the agent. The signal fires when the *thread* that cloned us exits, so
        // clones run only on the never-ending spawner threads (see `spawner`). If the agent
        // died before this point we were already reparented and the signal will never come:
        // getppid tells, and then nobody is left to manage us.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return ("PR_SET_PDEATHSIG", errno());
        }
        if libc::getppid() != args.parent_pid {
            libc::_exit(127);
        }
        // Handlers installed by the agent must not run here, and Rust's ignored SIGPIPE
        // must not leak into the program (shell pipelines rely on dying from SIGPIPE).
        let mut sa: libc::sigaction = std::mem::zeroed();
        for sig in 1..=args.sig_max {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            if libc::sigaction(sig, ptr::null(), &raw mut sa) != 0 {
                continue;
            }
            if sig == libc::SIGPIPE
                || (sa.sa_sigaction != libc::SIG_IGN && sa.sa_sigaction != libc::SIG_DFL)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &raw const dfl, ptr::null_mut());
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return ("setpgid", errno());
        }
        // Joined while still privileged: with a task user, the cgroup is not writable by
        // the child once it has switched.
        if args.cgroup_procs >= 0 && libc::write(args.cgroup_procs, b"0".as_ptr().cast(), 1) != 1 {
            return ("joining the cgroup", errno());
        }
        for (i, &fd) in args.stdio.iter().enumerate() {
            // The fds are >= 3 (see `pipe`), so dup2 never aliases and clears CLOEXEC.
            if libc::dup2(fd, i as c_int) < 0 {
                return ("dup2", errno());
            }
        }
        // Raising a limit needs CAP_SYS_RESOURCE, so before any user switch.
        for i in 0..args.rlimits_len {
            let (res, lim) = &*args.rlimits.add(i);
            if libc::setrlimit(*res, lim) != 0 {
                return ("setrlimit", errno());
            }
        }
        // The bounding set can only be reduced with CAP_SETPCAP, which a task user loses.
        if let Some(caps) = &args.caps
            && let Err(e) = caps.drop_bounding_in_child()
        {
            return ("dropping capabilities", e);
        }
        if let Some((uid, gid)) = args.run_as {
            let keep_caps = args.caps.is_some_and(|c| c.keeps_any());
            if keep_caps && libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
                return ("PR_SET_KEEPCAPS", errno());
            }
            // Raw syscalls, not the libc wrappers: glibc's setuid/setgid/setgroups apply
            // the change to every thread of a multi-threaded process (by signalling them),
            // and this child shares the agent's memory, so glibc would take the agent's
            // threads for its own. The raw calls change this child only.
            if libc::syscall(libc::SYS_setgroups, NO_GROUPS, ptr::null::<libc::gid_t>()) != 0 {
                return ("setgroups (task user)", errno());
            }
            if libc::syscall(
                libc::SYS_setresgid,
                libc::c_long::from(gid),
                libc::c_long::from(gid),
                libc::c_long::from(gid),
            ) != 0
            {
                return ("setgid (task user)", errno());
            }
            if libc::syscall(
                libc::SYS_setresuid,
                libc::c_long::from(uid),
                libc::c_long::from(uid),
                libc::c_long::from(uid),
            ) != 0
            {
                return ("setuid (task user)", errno());
            }
            // A credential change clears the death signal: arm it again, and check again
            // that the agent did not die in between.
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return ("PR_SET_PDEATHSIG", errno());
            }
            if libc::getppid() != args.parent_pid {
                libc::_exit(127);
            }
        }
        // Entered as the task user, so its permissions apply.
        if !args.cwd.is_null() && libc::chdir(args.cwd) != 0 {
            return ("chdir", errno());
        }
        if let Some(caps) = &args.caps
            && let Err(e) = caps.restrict_in_child(args.run_as.is_some_and(|(uid, _)| uid != 0))
        {
            return ("dropping capabilities", e);
        }
        if args.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return ("no_new_privs", errno());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const empty, ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
        ("execve", errno())
    }
}

/// The calling thread's errno (a read of a thread-local int: safe in the child).
fn errno() -> c_int {
    Errno::last_raw()
}

/// A CLOEXEC pipe whose ends are both >= 3, so the child's dup2 onto 0..=2 is safe even
/// when the agent runs with closed stdio.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn open_dev_null() -> io::Result<OwnedFd> {
    // std opens with O_CLOEXEC.
    above_stdio(fs::File::open("/dev/null")?.into())
}

/// `fd`, or a CLOEXEC duplicate of it numbered 3 or more when it is 0, 1 or 2.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // std duplicates with F_DUPFD_CLOEXEC from 3 up; checked rather than assumed.
    let dup = fd.try_clone()?;
    if dup.as_raw_fd() > 2 {
        Ok(dup)
    } else {
        Err(io::Error::other("a duplicated descriptor landed on 0..=2"))
    }
}

/// The group count given to `setgroups`: clear them all.
const NO_GROUPS: libc::c_long = 0;
/// Stack for the cloned child: it only runs `setup_and_exec`'s syscalls.
const CHILD_STACK_BYTES: usize = 64 * 1024;
