//! Behaviour tests of the subprocess runner against real processes.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers panic on setup failures"
)]

mod agent_death;
mod basics;
mod e2e;
mod hang;
mod harness;
mod isolation;
mod lifetime;
mod output;
mod scripts;
mod task_user;
