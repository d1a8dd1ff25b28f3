//! Fallback for platforms without a subprocess backend: registration works (so an agent
//! can still route other kinds), every attempt fails with [`ExecError::Unsupported`].

use std::{path::Path, process::ExitStatus};

use super::CommandLine;
use crate::{ExecError, SubprocessBackendConfig};

/// Nothing can be enforced here.
#[derive(Debug)]
pub(crate) struct Isolation {
    unenforced: Vec<String>,
}

impl Isolation {
    pub(crate) fn probe(_config: &SubprocessBackendConfig) -> Result<Self, ExecError> {
        Ok(Self {
            unenforced: vec![
                "subprocess execution and isolation (this platform is not Linux)".to_owned(),
            ],
        })
    }

    pub(crate) fn unenforced(&self) -> &[String] {
        &self.unenforced
    }

    pub(crate) fn notes(&self) -> &[String] {
        &[]
    }

    pub(crate) fn task_home(&self) -> Option<&str> {
        None
    }

    pub(crate) fn cgroup_parent(&self) -> Option<&Path> {
        None
    }

    pub(crate) fn sweep_stale(&self) -> super::Swept {
        super::Swept::default()
    }
}

/// Never constructed on this platform.
#[derive(Debug)]
pub(crate) enum Running {}

impl Running {
    pub(crate) fn pid(&self) -> i32 {
        match *self {}
    }
    pub(crate) fn take_output(&mut self) -> Option<(tokio::io::Empty, tokio::io::Empty)> {
        match *self {}
    }
    pub(crate) async fn exited(&self) {
        match *self {}
    }
    pub(crate) fn terminate(&self) {
        match *self {}
    }
    pub(crate) fn kill(&self) {
        match *self {}
    }
    pub(crate) fn reap(&mut self) -> Option<ExitStatus> {
        match *self {}
    }
    pub(crate) async fn cleanup(self) {
        match self {}
    }
}

pub(crate) async fn start(
    _iso: &Isolation,
    _cmd: &CommandLine,
    _timeout: std::time::Duration,
) -> Result<Running, ExecError> {
    Err(ExecError::Unsupported)
}
