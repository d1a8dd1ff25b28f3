//! Task status, run history and queries.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{ModelError, Slot, TaskId, TaskSpec, policy::norm};

/// Default page size of a [`TaskQuery`].
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page size of a [`TaskQuery`].
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum TaskPhase {
    /// Accepted, waiting to start (admission, queue or backoff before the first attempt).
    Pending,
    /// An attempt is running, or the task is between attempts.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with a failure that will not be retried.
    Failed,
    /// The last attempt hit its timeout and no retry follows.
    Timeout,
    /// Stopped from outside: cancel, delete, replace, refused admission, shutdown.
    Canceled,
    /// Failure retries (`max_retries`) are spent.
    Exhausted,
}

impl TaskPhase {
    /// Every phase, in wire order.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Timeout,
        Self::Canceled,
        Self::Exhausted,
    ];

    /// Whether the task can no longer change phase.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// Whether the task still holds (or waits for) its slot.
    #[must_use]
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    /// The lowercase short name (`pending`, `running`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Canceled => "canceled",
            Self::Exhausted => "exhausted",
        }
    }
}

impl FromStr for TaskPhase {
    type Err = ModelError;
    /// Accepts the short names and the protobuf enum names (`TASK_STATUS_RUNNING`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = norm(s);
        let n = n.strip_prefix("taskstatus").unwrap_or(&n);
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == n)
            .ok_or_else(|| {
                ModelError::unknown(
                    "task phase",
                    s,
                    "pending, running, succeeded, failed, timeout, canceled, exhausted",
                )
            })
    }
}

impl fmt::Display for TaskPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity and bookkeeping of a stored task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The task id.
    pub id: TaskId,
    /// Starts at 1 and grows by one with every change.
    pub resource_version: u64,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

impl ObjectMeta {
    /// Metadata for a task created at `now` (version 1).
    #[must_use]
    pub fn new(id: TaskId, now: i64) -> Self {
        Self {
            id,
            resource_version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The current state of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskStatus {
    /// Phase.
    pub phase: TaskPhase,
    /// Number of the current or last attempt (1-based; 0 before the first).
    pub attempt: u32,
    /// Exit code of the last finished attempt, when the process exited by itself.
    pub exit_code: Option<i32>,
    /// Why the task failed or was cancelled.
    pub error: Option<String>,
}

impl TaskStatus {
    /// A fresh status in `phase`.
    #[must_use]
    pub const fn new(phase: TaskPhase) -> Self {
        Self {
            phase,
            attempt: 0,
            exit_code: None,
            error: None,
        }
    }
}

/// A stored task: metadata, the spec it was submitted with, and its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Task {
    /// Identity and versions.
    pub metadata: ObjectMeta,
    /// The submitted spec.
    pub spec: TaskSpec,
    /// The current status.
    pub status: TaskStatus,
}

impl Task {
    /// Assembles a task.
    #[must_use]
    pub const fn new(metadata: ObjectMeta, spec: TaskSpec, status: TaskStatus) -> Self {
        Self {
            metadata,
            spec,
            status,
        }
    }
}

/// One attempt of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskRun {
    /// Attempt number, 1-based.
    pub attempt: u32,
    /// `Running` while it runs, then how it ended.
    pub phase: TaskPhase,
    /// Start, Unix ms.
    pub started_at: i64,
    /// End, Unix ms.
    pub finished_at: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Exit code when the process exited by itself.
    pub exit_code: Option<i32>,
}

impl TaskRun {
    /// A run that started at `started_at`.
    #[must_use]
    pub const fn started(attempt: u32, started_at: i64) -> Self {
        Self {
            attempt,
            phase: TaskPhase::Running,
            started_at,
            finished_at: None,
            error: None,
            exit_code: None,
        }
    }
}

/// A filter and page over tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskQuery {
    /// Only tasks of this slot.
    pub slot: Option<Slot>,
    /// Only tasks in this phase.
    pub phase: Option<TaskPhase>,
    /// Page size: 1..=1000 (0 means the default, 100).
    pub limit: u32,
    /// Matches to skip.
    pub offset: u32,
    /// Stop copying tasks into the page once their specs add up to more than this many
    /// bytes (the store's own estimate); the page then holds fewer items than the limit
    /// allows, while `total` still counts every match. `None`: no budget.
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl TaskQuery {
    /// All tasks, first page of 100.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slot: None,
            phase: None,
            limit: DEFAULT_PAGE_LIMIT,
            offset: 0,
            max_bytes: None,
        }
    }

    /// Sets the byte budget of the page (see [`max_bytes`](Self::max_bytes)).
    #[must_use]
    pub const fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// How many items a complete page of `total` matches holds (after the offset, up to the
    /// limit): a page with fewer stopped at its byte budget.
    #[must_use]
    pub fn expected_items(&self, total: u64) -> u64 {
        total
            .saturating_sub(u64::from(self.offset))
            .min(u64::from(self.effective_limit()))
    }
    /// Filters by slot.
    #[must_use]
    pub fn with_slot(mut self, slot: Slot) -> Self {
        self.slot = Some(slot);
        self
    }
    /// Filters by phase.
    #[must_use]
    pub const fn with_phase(mut self, phase: TaskPhase) -> Self {
        self.phase = Some(phase);
        self
    }
    /// Sets the page size.
    ///
    /// # Errors
    /// `limit` above 1000. Zero selects the default of 100.
    pub fn with_limit(mut self, limit: u32) -> Result<Self, ModelError> {
        if limit > MAX_PAGE_LIMIT {
            return Err(ModelError::invalid(
                "limit",
                format!("must be at most {MAX_PAGE_LIMIT}, got {limit}"),
            ));
        }
        self.limit = if limit == 0 {
            DEFAULT_PAGE_LIMIT
        } else {
            limit
        };
        Ok(self)
    }
    /// Sets the number of matches to skip.
    #[must_use]
    pub const fn with_offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }
    /// The effective page size (0 and out-of-range values clamp to the rules).
    #[must_use]
    pub const fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_PAGE_LIMIT,
            l if l > MAX_PAGE_LIMIT => MAX_PAGE_LIMIT,
            l => l,
        }
    }
    /// Whether `task` passes the filters.
    #[must_use]
    pub fn matches(&self, task: &Task) -> bool {
        self.slot.as_ref().is_none_or(|s| s == task.spec.slot())
            && self.phase.is_none_or(|p| p == task.status.phase)
    }
}

impl Default for TaskQuery {
    fn default() -> Self {
        Self::new()
    }
}

/// One page of results; `total` counts every match, not just this page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TaskPage<T> {
    /// The page.
    pub items: Vec<T>,
    /// All matches.
    pub total: u64,
}

impl<T> TaskPage<T> {
    /// Assembles a page.
    #[must_use]
    pub const fn new(items: Vec<T>, total: u64) -> Self {
        Self { items, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_names() {
        for p in TaskPhase::ALL {
            assert_eq!(p.as_str().parse::<TaskPhase>().unwrap(), p);
        }
        assert_eq!(
            "TASK_STATUS_RUNNING".parse::<TaskPhase>().unwrap(),
            TaskPhase::Running
        );
        assert!("done".parse::<TaskPhase>().is_err());
        assert!(TaskPhase::Exhausted.is_terminal());
        assert!(TaskPhase::Pending.is_active());
    }

    #[test]
    fn query_limits() {
        assert_eq!(TaskQuery::new().with_limit(0).unwrap().limit, 100);
        assert!(
            TaskQuery::new()
                .with_limit(1001)
                .unwrap_err()
                .to_string()
                .starts_with("limit:")
        );
    }
}
