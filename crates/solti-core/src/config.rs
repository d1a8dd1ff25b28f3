//! Bounds of the in-memory state: [`StateConfig`].

use std::time::Duration;

/// Bounds of the supervisor's in-memory state and output buffers.
///
/// Every field has a setter; see each field for its default. `max_tasks` also sizes the
/// taskvisor limits the supervisor is built with (see [`crate::docs::limits`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StateConfig {
    /// How long a finished run is kept. Default: 1 h.
    pub run_ttl: Duration,
    /// How long a terminal task is kept after its runs are gone. Default: 1 h.
    pub task_ttl: Duration,
    /// How often the sweep runs. Default: 5 min.
    pub sweep_interval: Duration,
    /// Runs kept per task; the oldest finished runs are dropped first. Default: 256.
    pub max_runs_per_task: usize,
    /// Output kept per task, in bytes: each retained line is charged its bytes plus 16, and
    /// each retained publish (a run marker, a batch of lines read together) 128 more, so the
    /// charge bounds the memory held also for empty lines and restart loops. The newest
    /// events are kept; readers can start from the last N lines, a timestamp or an offset,
    /// and one that falls behind the window gets `Lagged`. A finished task's window stays
    /// readable until the task is deleted or swept. 0 = live only: nothing is kept for later
    /// readers (live readers share a 256 KiB buffer while they read). Default: 1 MiB.
    pub output_retention_bytes: usize,
    /// Output kept for all tasks together, in the same bytes. When exceeded, the windows of
    /// the tasks that became terminal first are trimmed first; when only running tasks are
    /// left, the task that is publishing gives up its own oldest events. Default: 256 MiB.
    pub output_retention_total_bytes: usize,
    /// Tasks kept in state (active and terminal, embedded ones and the internal sweep
    /// included). When full, the oldest terminal task is evicted; when every task is active,
    /// submissions fail with [`CoreError::Capacity`](crate::CoreError::Capacity).
    /// Default: 100 000.
    pub max_tasks: usize,
    /// Bytes of task specs kept in state (script bodies, arguments, environment: the parts
    /// a client controls). When a new task would exceed it, the oldest terminal tasks are
    /// evicted; when only active tasks remain, submissions fail with
    /// [`CoreError::Capacity`](crate::CoreError::Capacity). Default: 256 MiB.
    pub max_spec_bytes: usize,
}

impl StateConfig {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how long finished runs are kept.
    ///
    /// # Default
    /// 1 hour.
    #[must_use]
    pub fn with_run_ttl(mut self, ttl: Duration) -> Self {
        self.run_ttl = ttl;
        self
    }

    /// Sets how long a terminal task is kept after its runs are gone.
    ///
    /// # Default
    /// 1 hour.
    #[must_use]
    pub fn with_task_ttl(mut self, ttl: Duration) -> Self {
        self.task_ttl = ttl;
        self
    }

    /// Sets the sweep period (clamped to at least 1 ms).
    ///
    /// # Default
    /// 5 minutes.
    #[must_use]
    pub fn with_sweep_interval(mut self, every: Duration) -> Self {
        self.sweep_interval = every;
        self
    }

    /// Sets how many runs are kept per task (at least 1).
    ///
    /// # Default
    /// 256.
    #[must_use]
    pub fn with_max_runs_per_task(mut self, max: usize) -> Self {
        self.max_runs_per_task = max;
        self
    }

    /// Sets the output kept per task, in charged bytes (see
    /// [`output_retention_bytes`](Self::output_retention_bytes)); 0 = live only.
    ///
    /// # Default
    /// 1 MiB.
    #[must_use]
    pub fn with_output_retention_bytes(mut self, bytes: usize) -> Self {
        self.output_retention_bytes = bytes;
        self
    }

    /// Sets the output kept for all tasks together, in charged bytes (see
    /// [`output_retention_total_bytes`](Self::output_retention_total_bytes)).
    ///
    /// # Default
    /// 256 MiB.
    #[must_use]
    pub fn with_output_retention_total_bytes(mut self, bytes: usize) -> Self {
        self.output_retention_total_bytes = bytes;
        self
    }

    /// Sets how many tasks state keeps (at least 1).
    ///
    /// # Default
    /// 100 000.
    #[must_use]
    pub fn with_max_tasks(mut self, max: usize) -> Self {
        self.max_tasks = max;
        self
    }

    /// Sets how many bytes of task specs state keeps (at least 1 MiB).
    ///
    /// # Default
    /// 256 MiB.
    #[must_use]
    pub fn with_max_spec_bytes(mut self, max: usize) -> Self {
        self.max_spec_bytes = max;
        self
    }

    /// The config with every bound raised to its minimum legal value.
    pub(crate) fn normalized(mut self) -> Self {
        self.sweep_interval = self.sweep_interval.max(Duration::from_millis(1));
        self.max_runs_per_task = self.max_runs_per_task.max(1);
        self.max_tasks = self.max_tasks.clamp(1, MAX_TASKS);
        self.max_spec_bytes = self.max_spec_bytes.max(1 << 20);
        self
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            run_ttl: Duration::from_secs(3600),
            task_ttl: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(300),
            max_runs_per_task: 256,
            output_retention_bytes: 1 << 20,
            output_retention_total_bytes: 256 << 20,
            max_tasks: 100_000,
            max_spec_bytes: 256 << 20,
        }
    }
}

/// Keeps every derived taskvisor capacity below tokio's semaphore limit.
const MAX_TASKS: usize = 1 << 24;
