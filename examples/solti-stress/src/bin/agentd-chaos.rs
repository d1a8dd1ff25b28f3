//! `agentd-chaos`: the reference HTTP agent (`agentd-http`, same flags, same ready line) with
//! one extra runner, `chaos`, for fault scenarios that the subprocess runner cannot produce.
//!
//! A subprocess spec carrying the label `chaos=panic` is routed to the `chaos` runner, whose
//! attempt future panics after its first poll. Specs without that label go to the ordinary
//! subprocess runner `default`. It shows how an embedding user adds runners with
//! [`agentd_kit::main_with`]; `solti-stress faults` starts it to check that a panicking
//! runner fails the task and leaves the agent serving.
//!
//! ```text
//! cargo build -p solti-stress
//! target/debug/agentd-chaos --listen 127.0.0.1:0 --metrics-listen off
//! ```

#![forbid(unsafe_code)]

use solti_model::{Labels, TaskKind, TaskSpec};
use solti_runner::{BuildContext, Runner, RunnerError};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};

/// The label key selecting the chaos runner, and its one value.
const LABEL: (&str, &str) = ("chaos", "panic");

/// Builds attempts that panic.
#[derive(Debug)]
struct ChaosRunner;

impl Runner for ChaosRunner {
    fn name(&self) -> &str {
        "chaos"
    }

    fn supports(&self, spec: &TaskSpec) -> bool {
        matches!(spec.kind(), TaskKind::Subprocess(_))
    }

    fn build_task(&self, _spec: &TaskSpec, _ctx: &BuildContext) -> Result<TaskRef, RunnerError> {
        Ok(TaskFn::arc(|_ctx: TaskContext| panicking_attempt()))
    }
}

/// One attempt: yields once (so the panic happens inside the running attempt future, not
/// while it is being created), then panics.
async fn panicking_attempt() -> Result<(), TaskError> {
    tokio::task::yield_now().await;
    panic!("chaos runner: this attempt panics on purpose");
}

fn main() -> anyhow::Result<()> {
    agentd_kit::main_with(agentd_kit::TransportKind::Http, |router| {
        router.register_with_labels(ChaosRunner, Labels::new().with(LABEL.0, LABEL.1))?;
        Ok(())
    })
}
