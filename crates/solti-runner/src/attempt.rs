//! One attempt as a runner's task sees it ([`Attempt`]), how it ended ([`AttemptEnd`]), and
//! the two ends of handing them over: [`AttemptFn`] (runner side) and [`start_attempt`]
//! (supervisor side).
//!
//! taskvisor calls `Task::spawn(TaskContext)` once per attempt and knows no attempt
//! numbers and no exit codes. The supervisor counts attempts; it starts each one with
//! [`start_attempt`], which hands the number to the task for the duration of that one
//! `spawn` call and returns the attempt's [`AttemptEnd`], exit code included. A task built
//! with [`AttemptFn`] receives the number in its [`Attempt`] and returns its exit code in
//! its `AttemptEnd`; any other `TaskRef` (an embedded `TaskFn`) still runs, with no exit
//! code beyond its error's.

use std::{
    cell::RefCell,
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use taskvisor::{BoxTaskFuture, Task, TaskContext, TaskError, TaskRef};

use crate::{OutputPublisher, OutputSink};

/// One attempt of a runner-built task: its number, its cancellation and its output.
#[derive(Clone, Debug)]
pub struct Attempt {
    number: u32,
    ctx: TaskContext,
    output: OutputSink,
}

impl Attempt {
    /// An attempt numbered `number` (1-based), cancelled through `ctx`, publishing to
    /// `output` (normally [`OutputPublisher::sink`] of the same number). [`AttemptFn`]
    /// builds it; construct one directly to drive a runner's code in tests.
    #[must_use]
    pub fn new(number: u32, ctx: TaskContext, output: OutputSink) -> Self {
        Self {
            number,
            ctx,
            output,
        }
    }

    /// The attempt number: 1 for the first attempt of a task, counting on across
    /// restarts (and agent restarts, for restored tasks).
    #[must_use]
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Cancellation of this attempt: cancelled on timeout, cancel, delete, replace and
    /// shutdown.
    #[must_use]
    pub fn context(&self) -> &TaskContext {
        &self.ctx
    }

    /// Where this attempt's output goes (lines carry this attempt's number).
    #[must_use]
    pub fn output(&self) -> &OutputSink {
        &self.output
    }
}

/// How an attempt ended: its result for taskvisor's restart policy, and the exit code to
/// record (a process's, also when it does not fail the attempt).
#[derive(Debug)]
#[must_use]
pub struct AttemptEnd {
    result: Result<(), TaskError>,
    exit_code: Option<i32>,
}

impl AttemptEnd {
    /// An end with `result`; the exit code is the error's, if it has one.
    pub fn new(result: Result<(), TaskError>) -> Self {
        let exit_code = result.as_ref().err().and_then(TaskError::exit_code);
        Self { result, exit_code }
    }

    /// A successful end without an exit code.
    pub fn success() -> Self {
        Self::new(Ok(()))
    }

    /// Records `code` as the attempt's exit code (whatever the result).
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = Some(code);
        self
    }

    /// The result.
    pub fn result(&self) -> &Result<(), TaskError> {
        &self.result
    }

    /// The exit code, if any.
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// The result, for taskvisor.
    ///
    /// # Errors
    /// The attempt's error.
    pub fn into_result(self) -> Result<(), TaskError> {
        self.result
    }
}

impl From<Result<(), TaskError>> for AttemptEnd {
    fn from(result: Result<(), TaskError>) -> Self {
        Self::new(result)
    }
}

/// A runner's per-attempt function as a taskvisor task: `f` gets each [`Attempt`] and
/// returns its [`AttemptEnd`]. Build it in [`Runner::build_task`](crate::Runner::build_task)
/// with the context's publisher.
///
/// Started through [`start_attempt`] (as the supervisor does), attempts carry the
/// supervisor's numbers and their exit code reaches it. Spawned directly by taskvisor, the
/// task numbers its attempts itself from 1 and exit codes go no further than the result.
pub struct AttemptFn<F> {
    f: F,
    output: OutputPublisher,
    spawned: AtomicU32,
}

impl<F, Fut> AttemptFn<F>
where
    F: Fn(Attempt) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AttemptEnd> + Send + 'static,
{
    /// A task running `f` once per attempt, with sinks from `output`.
    pub fn arc(output: &OutputPublisher, f: F) -> Arc<Self> {
        Arc::new(Self {
            f,
            output: output.clone(),
            spawned: AtomicU32::new(0),
        })
    }
}

impl<F, Fut> Task for AttemptFn<F>
where
    F: Fn(Attempt) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AttemptEnd> + Send + 'static,
{
    fn spawn(&self, ctx: TaskContext) -> BoxTaskFuture {
        let handed = STARTING.with(RefCell::take);
        let count = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
        let (number, report) = match handed {
            Some(Starting { number, report }) => (number, Some(report)),
            None => (count, None),
        };
        let fut = (self.f)(Attempt::new(number, ctx, self.output.sink(number)));
        Box::pin(async move {
            let end = fut.await;
            if let (Some(report), Some(code)) = (report, end.exit_code()) {
                let _ = report.set(code);
            }
            end.into_result()
        })
    }
}

impl<F> fmt::Debug for AttemptFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptFn")
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// The future of one attempt started with [`start_attempt`].
pub type AttemptFuture = Pin<Box<dyn Future<Output = AttemptEnd> + Send + 'static>>;

/// Starts attempt `number` of `task` (supervisor side): calls `task.spawn(ctx)`, handing an
/// [`AttemptFn`] the number, and returns the attempt's future, which ends with the exit code
/// the task reported (or its error's).
pub fn start_attempt(task: &TaskRef, number: u32, ctx: TaskContext) -> AttemptFuture {
    let report = Arc::new(OnceLock::new());
    let fut = {
        let _scope = Scope::enter(Starting {
            number,
            report: Arc::clone(&report),
        });
        task.spawn(ctx)
    };
    Box::pin(async move {
        let end = AttemptEnd::new(fut.await);
        match report.get() {
            Some(&code) => end.with_exit_code(code),
            None => end,
        }
    })
}

/// What [`start_attempt`] hands the task it spawns.
struct Starting {
    number: u32,
    report: Arc<OnceLock<i32>>,
}

thread_local! {
    /// Set only for the duration of one `spawn` call made by [`start_attempt`].
    static STARTING: RefCell<Option<Starting>> = const { RefCell::new(None) };
}

/// Sets [`STARTING`] and clears it again on drop (also when `spawn` unwinds).
struct Scope;

impl Scope {
    fn enter(starting: Starting) -> Self {
        STARTING.with(|s| *s.borrow_mut() = Some(starting));
        Self
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        STARTING.with(|s| s.borrow_mut().take());
    }
}
