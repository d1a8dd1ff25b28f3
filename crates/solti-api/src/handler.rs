//! The transport-agnostic operations both transports call.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::{Stream, StreamExt as _};
use solti_core::{OutputBatch, OutputQuery};
use solti_model::{OutputEvent, Task, TaskId, TaskPage, TaskQuery, TaskRun, TaskSpec};
use solti_runner::LineBatch;

use crate::ApiError;

/// The task operations behind the API, in domain types.
///
/// Both transports decode and validate requests, call one of these methods and encode the
/// result; a handler never sees wire types. [`SupervisorApiAdapter`](crate::SupervisorApiAdapter)
/// implements it over `solti_core::SupervisorApi`; tests and custom agents may implement it
/// with anything else.
///
/// # Contract
/// - Futures must be `Send` and must not block the runtime.
/// - "Unknown" is not an error: `get`, `runs`, `cancel` and `stream_logs` return `Ok(None)`
///   and each transport maps that (HTTP 404, gRPC an empty answer or `NOT_FOUND` for cancel
///   and logs).
/// - A dropped future (the client went away) must leave no state behind.
pub trait ApiHandler: Send + Sync + 'static {
    /// Submits `spec` under its own admission policy; returns the new task's id.
    fn submit(&self, spec: TaskSpec) -> impl Future<Output = Result<TaskId, ApiError>> + Send;

    /// Submits `spec`, replacing whatever runs on its slot. The transports have already set
    /// the admission policy to `Replace`.
    fn apply(&self, spec: TaskSpec) -> impl Future<Output = Result<TaskId, ApiError>> + Send;

    /// The task, or `None` when the id is unknown.
    fn get(&self, id: TaskId) -> impl Future<Output = Result<Option<Task>, ApiError>> + Send;

    /// One page of tasks matching `query` (oldest first); `total` counts every match.
    fn list(
        &self,
        query: TaskQuery,
    ) -> impl Future<Output = Result<TaskPage<Task>, ApiError>> + Send;

    /// The runs of a task, oldest first, or `None` when the id is unknown.
    fn runs(
        &self,
        id: TaskId,
    ) -> impl Future<Output = Result<Option<Vec<TaskRun>>, ApiError>> + Send;

    /// Stops (if active) and forgets a task; `true` when it existed. Idempotent.
    fn delete(&self, id: TaskId) -> impl Future<Output = Result<bool, ApiError>> + Send;

    /// Stops a task (its whole process tree) and keeps it with its history and output: it
    /// ends `Canceled` with `reason` (which names who cancelled it) as its error. Returns
    /// the task once terminal (or still stopping after a bounded wait), unchanged when it was
    /// already terminal, or `None` when the id is unknown. Idempotent.
    fn cancel(
        &self,
        id: TaskId,
        reason: &str,
    ) -> impl Future<Output = Result<Option<Task>, ApiError>> + Send;

    /// The output of a task from where `query` says (live, the last N retained lines,
    /// everything retained, since a time, after an offset), or `None` when the id is
    /// unknown. The stream ends when the task is terminal and its output drained (without
    /// follow: after the retained events); dropping it unsubscribes. An `After` offset the
    /// task never reached is an [`ApiError::InvalidRequest`] naming `after_offset`.
    fn stream_logs(
        &self,
        id: TaskId,
        query: OutputQuery,
    ) -> impl Future<Output = Result<Option<LogStream>, ApiError>> + Send;
}

/// A task's output: `RunStarted`, `Chunk`s, `RunFinished` per attempt, and `Lagged` when
/// this reader fell behind, each with its per-task offset.
///
/// A [`Stream`] of events. Built from a stream of [`OutputBatch`]es
/// ([`batched`](Self::batched)), it keeps the lines a runner read together in one piece for
/// transports that encode them together (the SSE response writes each batch as one body
/// frame); as a `Stream` it hands them out one event at a time.
pub struct LogStream {
    inner: Pin<Box<dyn Stream<Item = OutputBatch> + Send + 'static>>,
    /// The rest of a batch of lines being handed out one event at a time: the offset of
    /// the batch's first line, the batch, the position in it.
    lines: Option<(u64, LineBatch, usize)>,
}

impl LogStream {
    /// Wraps any stream of output events; they are numbered 0, 1, 2, … as offsets.
    pub fn new(stream: impl Stream<Item = OutputEvent> + Send + 'static) -> Self {
        let mut offset = 0u64;
        Self::batched(stream.map(move |event| {
            let batch = OutputBatch::Event { offset, event };
            offset += 1;
            batch
        }))
    }

    /// Wraps a stream of output batches, e.g.
    /// [`OutputSubscription::into_batch_stream`](solti_core::OutputSubscription::into_batch_stream).
    pub fn batched(stream: impl Stream<Item = OutputBatch> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
            lines: None,
        }
    }

    /// The next part of the output: the rest of a batch of lines, or one event. For
    /// transports that encode lines read together in one go (the SSE response does); the
    /// same stream as polling events one at a time, and the two may be mixed.
    pub fn poll_next_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutputBatch>> {
        if let Some((offset, mut lines, pos)) = self.lines.take() {
            if pos > 0 {
                drop(lines.split_to(pos));
            }
            if !lines.is_empty() {
                return Poll::Ready(Some(OutputBatch::Lines {
                    offset: offset + pos as u64,
                    lines,
                }));
            }
        }
        self.inner.as_mut().poll_next(cx)
    }

    /// The next event with its offset.
    pub fn poll_next_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, OutputEvent)>> {
        loop {
            if let Some((offset, lines, pos)) = &mut self.lines {
                if let Some(event) = lines.event(*pos) {
                    let at = *offset + *pos as u64;
                    *pos += 1;
                    return Poll::Ready(Some((at, event)));
                }
                self.lines = None;
            }
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(OutputBatch::Event { offset, event })) => {
                    return Poll::Ready(Some((offset, event)));
                }
                Poll::Ready(Some(OutputBatch::Lines { offset, lines })) => {
                    self.lines = Some((offset, lines, 0));
                }
                // Kinds this version does not know carry nothing it can hand out.
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Stream for LogStream {
    type Item = OutputEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_next_event(cx)
            .map(|next| next.map(|(_, event)| event))
    }
}

impl fmt::Debug for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStream").finish_non_exhaustive()
    }
}
