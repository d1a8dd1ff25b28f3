//! Publishing a task's live output.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use solti_model::{OutputEvent, OutputStream, TaskId};

use crate::{LineBatch, Lines};

/// Where a task's output events go. Implemented by the supervisor's output hub.
///
/// # Contract
/// `publish` must never block and never fail, and never waits for a reader: when a bounded
/// buffer is full the implementation drops its oldest events (readers that had not taken
/// them yet then see [`OutputEvent::Lagged`]). A runner publishes as fast as its source
/// produces; no reader can slow it down.
pub trait OutputTarget: Send + Sync + 'static {
    /// Delivers one event.
    fn publish(&self, event: OutputEvent);

    /// Delivers several events, in order, as if by one [`publish`](Self::publish) each
    /// (the default does exactly that). Targets override it to pay their per-publish cost
    /// (a lock, a wake-up) once per batch; [`OutputSink::lines`] publishes the lines read
    /// together as one batch. The same contract as `publish`: never blocks, never fails.
    fn publish_batch(&self, events: Vec<OutputEvent>) {
        for event in events {
            self.publish(event);
        }
    }

    /// Delivers lines read together, as one batch (see [`LineBatch`]). The default turns
    /// them into events and calls [`publish_batch`](Self::publish_batch); targets that keep
    /// the batch whole (the supervisor's output hub) avoid a per-line allocation and
    /// reference count. The same contract as `publish`: never blocks, never fails.
    fn publish_lines(&self, batch: LineBatch) {
        self.publish_batch(batch.into_events().collect());
    }

    /// How many lines a runner should publish at most per batch: larger batches cost fewer
    /// locks and wake-ups per line, smaller ones reach readers sooner. A hint; any size is
    /// accepted. The default is 1024.
    fn batch_hint(&self) -> usize {
        1024
    }
}

/// Discards output.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DiscardOutput;

impl OutputTarget for DiscardOutput {
    fn publish(&self, _event: OutputEvent) {}

    fn publish_lines(&self, _batch: LineBatch) {}
}

/// A task's output publisher, handed to a runner at build time: hands out the
/// [`OutputSink`] of each attempt ([`AttemptFn`](crate::AttemptFn) does it for you).
#[derive(Clone)]
pub struct OutputPublisher {
    task_id: TaskId,
    target: Arc<dyn OutputTarget>,
}

impl OutputPublisher {
    /// A publisher for `task_id` writing to `target`.
    pub fn new(task_id: TaskId, target: Arc<dyn OutputTarget>) -> Self {
        Self { task_id, target }
    }

    /// A publisher that discards everything (for tests and headless use).
    #[must_use]
    pub fn discard(task_id: TaskId) -> Self {
        Self::new(task_id, Arc::new(DiscardOutput))
    }

    /// The task this publisher belongs to.
    #[must_use]
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    /// Publishes a non-line event (run markers) as is.
    pub fn publish(&self, event: OutputEvent) {
        self.target.publish(event);
    }

    /// The sink of attempt `attempt`; its sequence numbers start at 0 per stream.
    #[must_use]
    pub fn sink(&self, attempt: u32) -> OutputSink {
        OutputSink {
            attempt,
            stdout_seq: Arc::new(AtomicU64::new(0)),
            stderr_seq: Arc::new(AtomicU64::new(0)),
            target: Arc::clone(&self.target),
        }
    }
}

impl fmt::Debug for OutputPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputPublisher")
            .field("task_id", &self.task_id)
            .finish_non_exhaustive()
    }
}

/// Line output of one attempt. Cheap to clone (clones share sequence counters).
///
/// Publishing never blocks the caller.
#[derive(Clone)]
pub struct OutputSink {
    attempt: u32,
    stdout_seq: Arc<AtomicU64>,
    stderr_seq: Arc<AtomicU64>,
    target: Arc<dyn OutputTarget>,
}

impl OutputSink {
    /// The attempt this sink belongs to.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many lines to publish at most per batch; see [`OutputTarget::batch_hint`].
    #[must_use]
    pub fn batch_hint(&self) -> usize {
        self.target.batch_hint().max(1)
    }

    /// Publishes one stdout line (without its line ending).
    pub fn stdout_line(&self, line: Bytes) {
        self.line(OutputStream::Stdout, line);
    }

    /// Publishes one stderr line (without its line ending).
    pub fn stderr_line(&self, line: Bytes) {
        self.line(OutputStream::Stderr, line);
    }

    /// Publishes one line on `stream`.
    pub fn line(&self, stream: OutputStream, line: Bytes) {
        self.lines(stream, [line]);
    }

    /// Publishes `lines` (spans of one buffer) on `stream`, in order, stamped with one
    /// timestamp, as one [`OutputTarget::publish_lines`]: the cheapest way to publish what
    /// one read of a pipe or socket returned.
    pub fn publish_lines(&self, stream: OutputStream, lines: Lines) {
        if lines.is_empty() {
            return;
        }
        let counter = match stream {
            OutputStream::Stdout => &self.stdout_seq,
            OutputStream::Stderr => &self.stderr_seq,
        };
        let first_seq = counter.fetch_add(lines.len() as u64, Ordering::Relaxed);
        self.target.publish_lines(LineBatch::new(
            self.attempt,
            stream,
            first_seq,
            now_ms(),
            lines,
        ));
    }

    /// Publishes several lines on `stream`, in order, stamped with one timestamp, as one
    /// [`OutputTarget::publish_batch`] (for lines that were read together: reading the clock,
    /// taking the target's lock and waking its readers once per line costs more than the
    /// rest of publishing a short line).
    pub fn lines(&self, stream: OutputStream, lines: impl IntoIterator<Item = Bytes>) {
        let counter = match stream {
            OutputStream::Stdout => &self.stdout_seq,
            OutputStream::Stderr => &self.stderr_seq,
        };
        let ts = now_ms();
        let attempt = self.attempt;
        let events: Vec<OutputEvent> = lines
            .into_iter()
            .map(|line| OutputEvent::Chunk {
                attempt,
                stream,
                seq: counter.fetch_add(1, Ordering::Relaxed),
                ts,
                line,
            })
            .collect();
        match events.len() {
            0 => {}
            1 => events
                .into_iter()
                .for_each(|event| self.target.publish(event)),
            _ => self.target.publish_batch(events),
        }
    }
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSink")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// The current time as Unix milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
