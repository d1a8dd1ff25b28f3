//! Spawning with a program or `cwd` on a hung mount blocks neither the runtime nor other
//! spawns, and is bounded by `spawn_timeout`.
//!
//! The hung mount is a FUSE file system whose server never answers: every lookup under it
//! blocks in the kernel, exactly like a path on a dead NFS server, until the test aborts
//! the connection (the lookups then fail with ENOTCONN). Mounting needs root and
//! `/dev/fuse`; elsewhere the test prints SKIPPED.
#![expect(unsafe_code, reason = "mount/umount2 FFI calls")]

use std::{
    ffi::CString,
    os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use solti_model::TaskEnv;
use taskvisor::TaskContext;

use crate::harness::*;

/// A FUSE mount nobody serves. Dropping it aborts the connection and unmounts it.
struct HungMount {
    dir: tempfile::TempDir,
    fuse: Option<std::fs::File>,
}

impl HungMount {
    fn new() -> Option<Self> {
        let fuse = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("SKIPPED hung-mount test: cannot open /dev/fuse: {e}");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ))
        .unwrap();
        // SAFETY: all strings are NUL-terminated and outlive the call.
        let r = unsafe {
            libc::mount(
                c"solti-hung".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            eprintln!(
                "SKIPPED hung-mount test: cannot mount FUSE: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(Self {
            dir,
            fuse: Some(fuse),
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Aborts the connection: blocked lookups fail with ENOTCONN. Closing our device
    /// descriptor is not enough: a cloned child blocked before `execve` holds a copy.
    fn abort(&mut self) {
        if self.fuse.is_none() {
            return;
        }
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path. MNT_FORCE aborts the FUSE connection (its
        // umount_begin), MNT_DETACH then unmounts lazily.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_FORCE | libc::MNT_DETACH) };
        self.fuse = None;
    }
}

impl Drop for HungMount {
    fn drop(&mut self) {
        self.abort();
    }
}

/// On a single-threaded runtime, two spawns stuck on the hung mount (one looking its
/// program up in `PATH`, one entering its `cwd`) leave the runtime free to run another
/// task to the end; once the mount fails they fail with the file system's error.
#[tokio::test(flavor = "current_thread")]
async fn hung_program_lookup_and_cwd_do_not_block_the_runtime() {
    let Some(mut mount) = HungMount::new() else {
        return;
    };
    let long = fast().spawn_timeout(Duration::from_secs(600));

    let mut in_cwd = sh("echo never");
    in_cwd.cwd = Some(mount.path().join("work"));
    let in_cwd = build_with(&spec(in_cwd), long.clone(), TaskEnv::new());
    let mut on_path = cmd("solti-hung-program", &[]);
    on_path.env = TaskEnv::new().with(
        "PATH",
        format!("{}:/usr/bin:/bin", mount.path().join("bin").display()),
    );
    let on_path = build_with(&spec(on_path), long, TaskEnv::new());
    let cwd_attempt = tokio::spawn(in_cwd.task.spawn(TaskContext::detached()));
    let path_attempt = tokio::spawn(on_path.task.spawn(TaskContext::detached()));
    // Let both reach the mount (they block there until it is aborted, so no timing).
    tokio::task::yield_now().await;

    // The only runtime thread is free: an ordinary task runs to the end meanwhile.
    let (r, b) = run(&spec(cmd("echo", &["still serving"]))).await;
    r.unwrap();
    assert_eq!(b.out.stdout(), ["still serving"]);
    assert!(!cwd_attempt.is_finished() && !path_attempt.is_finished());

    mount.abort();
    let e = cwd_attempt.await.unwrap().unwrap_err();
    assert!(
        e.to_string()
            .contains("(chdir): Transport endpoint is not connected"),
        "{e}"
    );
    let e = path_attempt.await.unwrap().unwrap_err();
    assert!(
        e.to_string()
            .contains("command \"solti-hung-program\" not found in PATH"),
        "{e}"
    );
    assert!(in_cwd.out.stdout().is_empty());
}

/// A spawn stuck on a hung mount fails after `spawn_timeout`, retryably.
#[tokio::test(flavor = "current_thread")]
async fn hung_spawn_fails_retryably_after_spawn_timeout() {
    let Some(mount) = HungMount::new() else {
        return;
    };
    let mut s = sh("echo never");
    s.cwd = Some(PathBuf::from(mount.path()).join("work"));
    let b = build_with(
        &spec(s),
        fast().spawn_timeout(Duration::from_millis(200)),
        TaskEnv::new(),
    );
    let e = b.task.spawn(TaskContext::detached()).await.unwrap_err();
    assert!(!e.is_fatal(), "{e:?}");
    assert!(
        e.to_string().contains(
            "starting \"sh\" took longer than 200ms (is the program or cwd on a hung mount?)"
        ),
        "{e}"
    );
    drop(mount);
    assert!(b.out.stdout().is_empty());
}
