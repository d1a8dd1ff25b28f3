//! The live output hub: one bounded broadcast channel per task, shared by all its attempts.
//!
//! The channel carries batches ([`Batch`]): one publish (a single event, or the lines a
//! runner read together) costs one lock and one broadcast send, however many lines it
//! holds, and a subscriber wakes once per batch, not once per line.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use futures_util::Stream;
use solti_model::OutputEvent;
use solti_runner::{LineBatch, OutputTarget};
use tokio::sync::{Notify, broadcast};

/// Most events carried by one broadcast slot; longer batches are split. A channel uses half
/// its capacity when that is less ([`OutputChannel::max_batch`]), so that one batch never
/// fills a slow reader's whole window.
const MAX_BATCH: usize = 1024;
/// Most line bytes in one batch (a single longer line still travels alone): with the default
/// 256 slots and the runner's 64 KiB line bound, one task's buffer holds at most about 20 MiB.
const MAX_BATCH_BYTES: usize = 16 * 1024;

/// Events published together, numbered: `first` is the index of `events[0]` among all
/// events this channel has broadcast, so a subscriber that lagged can count the events
/// (not batches) it missed from the gap.
#[derive(Clone, Debug)]
struct Batch {
    first: u64,
    payload: Arc<Payload>,
}

/// What one broadcast slot carries.
#[derive(Debug)]
enum Payload {
    /// Events as published (run markers, lines published one by one).
    Events(Vec<OutputEvent>),
    /// Lines read together, kept as spans of their read buffer: a subscriber builds each
    /// line's event when it takes it, so publishing costs nothing per line.
    Lines(LineBatch),
}

impl Payload {
    /// Events in this payload.
    fn len(&self) -> usize {
        match self {
            Self::Events(events) => events.len(),
            Self::Lines(batch) => batch.len(),
        }
    }

    /// Event `i`.
    fn event(&self, i: usize) -> Option<OutputEvent> {
        match self {
            Self::Events(events) => events.get(i).cloned(),
            Self::Lines(batch) => batch.event(i),
        }
    }
}

/// The output channel of one task. Implements [`OutputTarget`] for the runner's publisher.
///
/// The broadcast buffer is allocated when the first subscriber arrives, not at submit: a
/// broadcast channel only delivers events sent after a receiver subscribed, so events
/// published while nobody listens are dropped either way, and tasks nobody watches (the vast
/// majority) do not pay for a 256-slot buffer.
///
/// `capacity` counts events, as before batching: a subscriber more than `capacity` events
/// behind the newest one skips to the last `capacity` events ([`OutputEvent::Lagged`]), and
/// [`backlogged`](OutputTarget::backlogged) counts unread events. The broadcast buffer has
/// `capacity` slots, each one publish (an event, or up to [`MAX_BATCH`] lines and
/// [`MAX_BATCH_BYTES`] of line bytes a runner
/// read together), so it never holds fewer than the last `capacity` events; the subscriber
/// enforces the event bound itself when it receives a batch (see
/// [`OutputSubscription::recv`]).
pub(crate) struct OutputChannel {
    state: Mutex<State>,
    capacity: usize,
    /// Most events per broadcast slot: half the capacity, at most [`MAX_BATCH`].
    max_batch: usize,
    /// Shared with the subscriptions.
    shared: Arc<Shared>,
}

/// What an [`OutputChannel`] and its subscriptions share without the lock.
#[derive(Debug, Default)]
struct Shared {
    /// How many events were broadcast so far (`State::next_index`): subscribers skip what
    /// is more than `capacity` behind it.
    head: AtomicU64,
    /// Runners waiting in [`OutputTarget::readers_caught_up`].
    waiters: AtomicUsize,
    /// Signalled when a subscriber takes a batch or leaves while a runner waits.
    progressed: Notify,
}

impl Shared {
    /// A reader moved on (or left): wake runners waiting for it, if any.
    ///
    /// The reader's progress store before this load, and a waiting runner's `waiters`
    /// increment before its progress load, are all `SeqCst`: with weaker orderings both
    /// sides could read the old value (store buffering) and the wake-up would be lost.
    fn reader_progressed(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.progressed.notify_waiters();
        }
    }
}

/// Counts a waiting runner while alive (also when its wait is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::SeqCst);
        Self(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct State {
    sender: Option<broadcast::Sender<Batch>>,
    /// Set once the task is terminal (or deleted): new subscribers get an ended stream and
    /// existing ones drain what is buffered, then end.
    closed: bool,
    /// The `RunStarted` of the attempt in progress, if any. A subscriber that joins mid-run
    /// receives it first, so every stream starts with the run it is in.
    current_run: Option<OutputEvent>,
    /// Index the next broadcast event gets.
    next_index: u64,
    /// How far each live subscriber has read (the index of the next event it expects),
    /// shared with its [`OutputSubscription`]; entries whose subscription is gone are
    /// pruned when the backlog is checked.
    readers: Vec<Arc<AtomicU64>>,
}

// === impl OutputChannel ===

impl OutputChannel {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                sender: None,
                closed: false,
                current_run: None,
                next_index: 0,
                readers: Vec::new(),
            }),
            capacity,
            max_batch: (capacity / 2).clamp(1, MAX_BATCH),
            shared: Arc::default(),
        }
    }

    /// A new subscription; it ends at once when the channel is already closed.
    pub(crate) fn subscribe(&self) -> OutputSubscription {
        let mut state = self.lock();
        if state.closed {
            return OutputSubscription::ended();
        }
        let next_index = state.next_index;
        let sender = state
            .sender
            .get_or_insert_with(|| broadcast::channel(self.capacity).0);
        let rx = Some(sender.subscribe());
        let progress = Arc::new(AtomicU64::new(next_index));
        // Forget subscriptions that are gone (a silent task never checks its backlog).
        state
            .readers
            .retain(|progress| Arc::strong_count(progress) > 1);
        state.readers.push(Arc::clone(&progress));
        OutputSubscription {
            rx,
            progress,
            pending: state.current_run.clone(),
            current: None,
            expected: next_index,
            shared: Arc::clone(&self.shared),
            capacity: self.capacity as u64,
        }
    }

    /// Ends the channel: subscribers receive what is buffered, then `None`.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.sender = None;
        state.readers.clear();
        drop(state);
        self.shared.progressed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few fields written together; a poisoned lock still holds valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Broadcasts one payload under the held lock (callers bound its size). Returns
    /// `false` when nobody listens (the payload is dropped).
    fn send_one(&self, state: &mut State, payload: Payload) -> bool {
        let Some(sender) = &state.sender else {
            return false;
        };
        if sender.receiver_count() == 0 {
            // Everyone left: free the buffer until someone subscribes again.
            state.sender = None;
            state.readers.clear();
            return false;
        }
        let first = state.next_index;
        state.next_index += payload.len() as u64;
        // `send` never waits; it fails only when there is no receiver, which is fine.
        let _ = sender.send(Batch {
            first,
            payload: Arc::new(payload),
        });
        self.shared.head.store(state.next_index, Ordering::Release);
        true
    }

    /// Broadcasts `events` (already noted as run markers) under the held lock, split into
    /// batches of at most [`MAX_BATCH`] events and [`MAX_BATCH_BYTES`] of line bytes (at
    /// least one event each), so the buffer's `capacity` slots hold a bounded amount of
    /// memory whatever the line lengths.
    fn send(&self, state: &mut State, events: Vec<OutputEvent>) {
        if state.sender.is_none() {
            return;
        }
        if events.len() <= self.max_batch && chunk_bytes(&events) <= MAX_BATCH_BYTES {
            self.send_one(state, Payload::Events(events));
            return;
        }
        let mut batch = Vec::with_capacity(events.len().min(self.max_batch));
        let mut bytes = 0;
        for event in events {
            let len = chunk_bytes(std::slice::from_ref(&event));
            if !batch.is_empty() && (batch.len() == self.max_batch || bytes + len > MAX_BATCH_BYTES)
            {
                if !self.send_one(state, Payload::Events(std::mem::take(&mut batch))) {
                    return;
                }
                bytes = 0;
            }
            bytes += len;
            batch.push(event);
        }
        if !batch.is_empty() {
            self.send_one(state, Payload::Events(batch));
        }
    }

    /// Broadcasts `lines` under the held lock, split by the same bounds as [`Self::send`].
    fn send_lines(&self, state: &mut State, mut lines: LineBatch) {
        while !lines.is_empty() && state.sender.is_some() {
            let head = lines.split_to(lines_that_fit(&lines, self.max_batch));
            if !self.send_one(state, Payload::Lines(head)) {
                return;
            }
        }
    }
}

/// Line bytes of the chunks among `events`.
fn chunk_bytes(events: &[OutputEvent]) -> usize {
    events
        .iter()
        .map(|event| match event {
            OutputEvent::Chunk { line, .. } => line.len(),
            _ => 0,
        })
        .sum()
}

/// How many leading lines of `batch` make one broadcast slot: at most `max_batch` lines
/// and [`MAX_BATCH_BYTES`] of line bytes, and at least one line.
fn lines_that_fit(batch: &LineBatch, max_batch: usize) -> usize {
    let lines = batch.lines();
    if lines.len() <= max_batch && lines.line_bytes() <= MAX_BATCH_BYTES {
        return lines.len();
    }
    let mut bytes = 0;
    for i in 0..lines.len().min(max_batch) {
        bytes += lines.line_len(i).unwrap_or(0);
        if bytes > MAX_BATCH_BYTES {
            return i.max(1);
        }
    }
    lines.len().min(max_batch)
}

/// Remembers the run in progress for late subscribers.
fn note_run(state: &mut State, event: &OutputEvent) {
    match event {
        OutputEvent::RunStarted { .. } => state.current_run = Some(event.clone()),
        OutputEvent::RunFinished { .. } => state.current_run = None,
        _ => {}
    }
}

impl OutputTarget for OutputChannel {
    fn publish(&self, event: OutputEvent) {
        let mut state = self.lock();
        note_run(&mut state, &event);
        self.send(&mut state, vec![event]);
    }

    fn publish_batch(&self, events: Vec<OutputEvent>) {
        if events.is_empty() {
            return;
        }
        let mut state = self.lock();
        for event in &events {
            note_run(&mut state, event);
        }
        self.send(&mut state, events);
    }

    fn publish_lines(&self, batch: LineBatch) {
        if batch.is_empty() {
            return;
        }
        let mut state = self.lock();
        self.send_lines(&mut state, batch);
    }

    /// A quarter of the capacity (at most [`MAX_BATCH`]): a runner publishing stdout and
    /// stderr in batches of this size, each pausing while more than half the capacity is
    /// unread, keeps a reader that keeps up within its buffer.
    fn batch_hint(&self) -> usize {
        (self.capacity / 4).clamp(1, MAX_BATCH)
    }

    /// Waits for a subscriber to take a batch (or leave) until none is backlogged: no
    /// polling, the subscriber wakes the runner.
    fn readers_caught_up(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _waiting = Waiting::new(&self.shared.waiters);
            loop {
                // Registered before the check, so progress made in between is not missed.
                let progressed = self.shared.progressed.notified();
                let mut progressed = std::pin::pin!(progressed);
                progressed.as_mut().enable();
                if !self.backlogged() {
                    return;
                }
                progressed.await;
            }
        })
    }

    /// More than half the buffer's worth of events (`capacity / 2`) is still unread by the
    /// slowest subscriber: the runner may pause reading its pipes briefly so a reader that
    /// keeps up loses nothing.
    fn backlogged(&self) -> bool {
        let mut state = self.lock();
        if state.sender.is_none() {
            return false;
        }
        // Each subscriber stores how far it has read when it takes a batch: reading that is
        // one atomic load per subscriber, where asking the broadcast channel for its length
        // takes a lock on the slots the subscriber is reading.
        state
            .readers
            .retain(|progress| Arc::strong_count(progress) > 1);
        let Some(slowest) = state
            .readers
            .iter()
            .map(|progress| progress.load(Ordering::SeqCst))
            .min()
        else {
            return false;
        };
        state.next_index.saturating_sub(slowest) > (self.capacity / 2) as u64
    }
}

impl fmt::Debug for OutputChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("OutputChannel")
            .field("capacity", &self.capacity)
            .field(
                "subscribers",
                &state
                    .sender
                    .as_ref()
                    .map_or(0, broadcast::Sender::receiver_count),
            )
            .field("closed", &state.closed)
            .finish()
    }
}

/// A live view of one task's output, from the moment of subscribing. A subscription made
/// while an attempt runs starts with that attempt's `RunStarted`; lines printed before the
/// subscription are not replayed (the agent keeps no output history).
///
/// Events arrive in publish order across all attempts: `RunStarted`, chunks, `RunFinished`,
/// then the next attempt. A subscriber that falls more than
/// [`StateConfig::output_capacity`](crate::StateConfig::output_capacity) events behind gets
/// [`OutputEvent::Lagged`] with the number of events it missed, and continues with the
/// oldest of the last `output_capacity` events. Publishing never waits for a subscriber; a
/// runner that chooses to pace itself ([`OutputTarget::backlogged`]) waits for a slow one at
/// most briefly (the subprocess runner: 200 ms without progress, then it lags). Dropping the
/// subscription frees it at once.
pub struct OutputSubscription {
    rx: Option<broadcast::Receiver<Batch>>,
    /// Delivered before anything from `rx`: the `RunStarted` of the run in progress when
    /// the subscription was made.
    pending: Option<OutputEvent>,
    /// The rest of the batch being handed out.
    current: Option<Current>,
    /// Index of the next event this subscriber expects (to count skipped events).
    expected: u64,
    /// `expected` as the channel sees it, to tell how far behind the slowest reader is.
    progress: Arc<AtomicU64>,
    /// Events broadcast so far ([`Shared::head`]), the wake-up of runners waiting for this
    /// subscriber, and how far behind the head it may fall before it skips ahead.
    shared: Arc<Shared>,
    capacity: u64,
}

// === impl OutputSubscription ===

impl OutputSubscription {
    /// A subscription that yields nothing (a terminal task).
    pub(crate) fn ended() -> Self {
        Self {
            rx: None,
            pending: None,
            current: None,
            expected: 0,
            progress: Arc::new(AtomicU64::new(0)),
            shared: Arc::default(),
            capacity: 0,
        }
    }

    /// The next event, in order; [`OutputEvent::Lagged`] when this subscriber fell behind.
    ///
    /// `None` once the task is terminal and everything published before that was delivered,
    /// or the task was deleted.
    pub async fn recv(&mut self) -> Option<OutputEvent> {
        if let Some(event) = self.pending.take() {
            return Some(event);
        }
        loop {
            if let Some(event) = self.next_buffered() {
                return Some(event);
            }
            if let Some(lagged) = self.receive().await? {
                return Some(lagged);
            }
        }
    }

    /// The next part of the output, in order: a single event, or the rest of a batch of
    /// lines a runner read together ([`OutputBatch::Lines`]), which a reader can walk
    /// without building an event per line. The same stream as [`recv`](Self::recv), in
    /// larger steps; the two may be mixed.
    ///
    /// `None` when [`recv`](Self::recv) would return `None`.
    pub async fn recv_batch(&mut self) -> Option<OutputBatch> {
        if let Some(event) = self.pending.take() {
            return Some(OutputBatch::Event(event));
        }
        loop {
            if let Some(batch) = self.take_buffered() {
                return Some(batch);
            }
            if let Some(lagged) = self.receive().await? {
                return Some(OutputBatch::Event(lagged));
            }
        }
    }

    /// Waits for the next broadcast batch and makes it current. `None`: the stream ended;
    /// `Some(Some(lagged))`: this subscriber missed events, reported before the batch.
    async fn receive(&mut self) -> Option<Option<OutputEvent>> {
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(batch) => {
                    // Keep only the last `capacity` events: what is older was lost to this
                    // subscriber, as if the buffer held `capacity` single events.
                    let floor = self
                        .shared
                        .head
                        .load(Ordering::Acquire)
                        .saturating_sub(self.capacity);
                    let end = batch.first + batch.payload.len() as u64;
                    if end <= floor {
                        continue;
                    }
                    // A gap in the event indices is what this subscriber missed (skipped
                    // here, or the broadcast buffer overflowed). Counting from the indices
                    // keeps `skipped` in events, not batches, and survives a `recv`
                    // cancelled between a lag and the next batch.
                    let from = batch.first.max(floor);
                    let skipped = from.saturating_sub(self.expected);
                    let skip_in_batch = usize::try_from(from - batch.first).unwrap_or(usize::MAX);
                    self.start(batch);
                    self.skip(skip_in_batch);
                    return Some((skipped > 0).then_some(OutputEvent::Lagged { skipped }));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    self.rx = None;
                    return None;
                }
            }
        }
    }

    /// Makes `batch` the one handed out next.
    fn start(&mut self, batch: Batch) {
        self.expected = batch.first + batch.payload.len() as u64;
        self.progress.store(self.expected, Ordering::SeqCst);
        self.shared.reader_progressed();
        // The broadcast slot lets go of its copy once every subscriber has read it, so the
        // last (usually the only) subscriber takes the batch without cloning it.
        self.current = Some(match Arc::try_unwrap(batch.payload) {
            Ok(Payload::Events(events)) => Current::Events(events.into_iter()),
            Ok(Payload::Lines(lines)) => Current::Lines(lines, 0),
            Err(payload) => Current::Shared(payload, 0),
        });
    }

    /// Drops the next `n` events of the current batch.
    fn skip(&mut self, n: usize) {
        match &mut self.current {
            Some(Current::Events(events)) if n > 0 => {
                events.nth(n - 1);
            }
            Some(Current::Lines(_, pos) | Current::Shared(_, pos)) => *pos += n,
            _ => {}
        }
    }

    /// The next event of the current batch, if any is left.
    fn next_buffered(&mut self) -> Option<OutputEvent> {
        let event = match self.current.as_mut()? {
            Current::Events(events) => events.next(),
            Current::Lines(lines, pos) => {
                let event = lines.event(*pos);
                *pos += 1;
                event
            }
            Current::Shared(payload, pos) => {
                let event = payload.event(*pos);
                *pos += 1;
                event
            }
        };
        if event.is_none() {
            self.current = None;
        }
        event
    }

    /// The rest of the current batch if it holds lines, else its next event.
    fn take_buffered(&mut self) -> Option<OutputBatch> {
        let (mut lines, pos) = match self.current.take()? {
            Current::Lines(lines, pos) => (lines, pos),
            Current::Shared(payload, pos) => match &*payload {
                Payload::Lines(lines) => (lines.clone(), pos),
                Payload::Events(_) => {
                    self.current = Some(Current::Shared(payload, pos));
                    return self.next_buffered().map(OutputBatch::Event);
                }
            },
            events @ Current::Events(_) => {
                self.current = Some(events);
                return self.next_buffered().map(OutputBatch::Event);
            }
        };
        if pos > 0 {
            drop(lines.split_to(pos));
        }
        (!lines.is_empty()).then_some(OutputBatch::Lines(lines))
    }

    /// The subscription as a [`Stream`] of [`OutputBatch`]es (ends like
    /// [`recv_batch`](Self::recv_batch)).
    pub fn into_batch_stream(self) -> impl Stream<Item = OutputBatch> + Send + Unpin + 'static {
        Box::pin(futures_util::stream::unfold(self, |mut sub| async move {
            let batch = sub.recv_batch().await?;
            Some((batch, sub))
        }))
    }

    /// The subscription as a [`Stream`] of events (ends like [`recv`](Self::recv)).
    pub fn into_stream(self) -> impl Stream<Item = OutputEvent> + Send + Unpin + 'static {
        Box::pin(futures_util::stream::unfold(self, |mut sub| async move {
            let event = sub.recv().await?;
            Some((event, sub))
        }))
    }
}

impl Drop for OutputSubscription {
    fn drop(&mut self) {
        // A runner may be waiting for this reader: it no longer counts once pruned.
        self.progress.store(u64::MAX, Ordering::SeqCst);
        self.shared.reader_progressed();
    }
}

/// A part of a task's output, as [`OutputSubscription::recv_batch`] hands it out.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OutputBatch {
    /// One event: a run marker, [`OutputEvent::Lagged`], or a line published on its own.
    Event(OutputEvent),
    /// Lines read together from one stream of one attempt; line `i` is the event
    /// [`LineBatch::event(i)`](LineBatch::event).
    Lines(LineBatch),
}

impl OutputBatch {
    /// The events this part stands for, in order.
    pub fn into_events(self) -> impl Iterator<Item = OutputEvent> {
        let (event, lines) = match self {
            Self::Event(event) => (Some(event), None),
            Self::Lines(lines) => (None, Some(lines)),
        };
        event
            .into_iter()
            .chain(lines.into_iter().flat_map(LineBatch::into_events))
    }
}

/// The rest of a received batch.
enum Current {
    /// This subscriber was the batch's last reader: the events are moved out.
    Events(std::vec::IntoIter<OutputEvent>),
    /// This subscriber was the last reader of a batch of lines; events are built from
    /// `pos` on.
    Lines(LineBatch, usize),
    /// Other subscribers share the batch, or it holds lines: events are cloned or built
    /// from `pos` on.
    Shared(Arc<Payload>, usize),
}

impl fmt::Debug for OutputSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSubscription")
            .field("ended", &(self.rx.is_none() && self.current.is_none()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(attempt: u32) -> OutputEvent {
        OutputEvent::RunStarted {
            attempt,
            started_at: 0,
        }
    }

    #[tokio::test]
    async fn lagged_then_drained_then_closed() {
        let ch = OutputChannel::new(2);
        ch.publish(started(0)); // nobody listens: only remembered as the current run
        let mut sub = ch.subscribe();
        for n in 1..=4 {
            ch.publish(started(n));
        }
        ch.close();
        assert_eq!(sub.recv().await, Some(started(0)));
        assert_eq!(sub.recv().await, Some(OutputEvent::Lagged { skipped: 2 }));
        assert_eq!(sub.recv().await, Some(started(3)));
        assert_eq!(sub.recv().await, Some(started(4)));
        assert_eq!(sub.recv().await, None);
        assert_eq!(ch.subscribe().recv().await, None);
    }

    #[tokio::test]
    async fn late_subscriber_starts_with_the_current_run() {
        let ch = OutputChannel::new(4);
        ch.publish(started(1));
        let mut sub = ch.subscribe();
        let finished = OutputEvent::RunFinished {
            attempt: 1,
            exit_code: Some(0),
            finished_at: 1,
        };
        ch.publish(finished.clone());
        assert_eq!(sub.recv().await, Some(started(1)));
        assert_eq!(sub.recv().await, Some(finished));
        // Between runs nothing is pending.
        let mut between = ch.subscribe();
        ch.publish(started(2));
        assert_eq!(between.recv().await, Some(started(2)));
    }

    #[test]
    fn backlog_is_reported_past_half_the_buffer() {
        let ch = OutputChannel::new(4);
        let _sub = ch.subscribe();
        assert!(!ch.backlogged());
        for n in 1..=3 {
            ch.publish(started(n));
        }
        assert!(ch.backlogged());
    }

    fn chunk(seq: u64) -> OutputEvent {
        OutputEvent::Chunk {
            attempt: 1,
            stream: solti_model::OutputStream::Stdout,
            seq,
            ts: 0,
            line: seq.to_string().into_bytes().into(),
        }
    }

    #[tokio::test]
    async fn batches_are_split_by_line_bytes() {
        let ch = OutputChannel::new(64);
        let mut sub = ch.subscribe();
        let big = |seq| OutputEvent::Chunk {
            attempt: 1,
            stream: solti_model::OutputStream::Stdout,
            seq,
            ts: 0,
            line: vec![b'x'; 8 * 1024].into(),
        };
        ch.publish_batch((0..10).map(big).collect());
        // 8 KiB lines, at most 16 KiB per batch: five broadcast slots.
        assert_eq!(ch.lock().next_index, 10);
        for seq in 0..10 {
            assert_eq!(sub.recv().await, Some(big(seq)));
        }
    }

    #[tokio::test]
    async fn batches_arrive_one_event_at_a_time_and_lag_counts_events() {
        let ch = OutputChannel::new(8);
        let mut sub = ch.subscribe();
        ch.publish(started(1));
        ch.publish_batch((0..3).map(chunk).collect());
        ch.publish_batch((3..8).map(chunk).collect());
        ch.publish_batch((8..10).map(chunk).collect());
        ch.close();
        // 11 events in 4 slots, capacity 8 events: the marker and two lines are lost.
        assert_eq!(sub.recv().await, Some(OutputEvent::Lagged { skipped: 3 }));
        for seq in 2..10 {
            assert_eq!(sub.recv().await, Some(chunk(seq)));
        }
        assert_eq!(sub.recv().await, None);
    }

    #[tokio::test]
    async fn long_batches_are_split_and_markers_are_remembered() {
        let ch = OutputChannel::new(8192);
        let mut sub = ch.subscribe();
        let n = 1024 * 2 + 1;
        let mut events = vec![started(1)];
        events.extend((0..n).map(chunk));
        ch.publish_batch(events);
        // A late subscriber still starts with the run in progress.
        let mut late = ch.subscribe();
        assert_eq!(late.recv().await, Some(started(1)));
        assert_eq!(sub.recv().await, Some(started(1)));
        for seq in 0..n {
            assert_eq!(sub.recv().await, Some(chunk(seq)));
        }
        ch.close();
        assert_eq!(sub.recv().await, None);
        assert_eq!(late.recv().await, None);
    }

    #[tokio::test]
    async fn lag_is_counted_in_events_when_slots_overflow_too() {
        let ch = OutputChannel::new(2);
        let mut sub = ch.subscribe();
        for n in 0..4 {
            ch.publish_batch((n * 3..n * 3 + 3).map(chunk).collect());
        }
        // 4 slots of 3 into 2 slots, capacity 2 events: 10 of 12 lines lost.
        assert_eq!(sub.recv().await, Some(OutputEvent::Lagged { skipped: 10 }));
        assert_eq!(sub.recv().await, Some(chunk(10)));
        assert_eq!(sub.recv().await, Some(chunk(11)));
        ch.publish(started(2));
        assert_eq!(sub.recv().await, Some(started(2)));
    }

    #[tokio::test]
    async fn backlog_counts_unread_events_not_batches() {
        let ch = OutputChannel::new(8);
        let mut sub = ch.subscribe();
        ch.publish_batch((0..4).map(chunk).collect());
        assert!(!ch.backlogged(), "4 of 8 unread is not more than half");
        ch.publish_batch((4..6).map(chunk).collect());
        assert!(ch.backlogged(), "6 unread events in 2 slots");
        assert_eq!(sub.recv().await, Some(chunk(0)));
        assert!(!ch.backlogged(), "the first batch was taken");
    }

    fn line_batch(first_seq: u64, text: &str) -> LineBatch {
        let mut lines = solti_runner::Lines::new(text.as_bytes().to_vec().into());
        let mut start = 0;
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                assert!(lines.push(start..i));
                start = i + 1;
            }
        }
        LineBatch::new(1, solti_model::OutputStream::Stdout, first_seq, 0, lines)
    }

    fn line(seq: u64, text: &str) -> OutputEvent {
        OutputEvent::Chunk {
            attempt: 1,
            stream: solti_model::OutputStream::Stdout,
            seq,
            ts: 0,
            line: text.as_bytes().to_vec().into(),
        }
    }

    fn texts(batch: &LineBatch) -> Vec<&[u8]> {
        batch.lines().slices().collect()
    }

    #[tokio::test]
    async fn line_batches_arrive_whole_or_one_line_at_a_time() {
        let ch = OutputChannel::new(64);
        let mut whole = ch.subscribe();
        let mut single = ch.subscribe();
        ch.publish(started(1));
        ch.publish_lines(line_batch(0, "a\nbb\nccc\n"));
        ch.close();

        assert!(matches!(whole.recv_batch().await, Some(OutputBatch::Event(e)) if e == started(1)));
        let Some(OutputBatch::Lines(batch)) = whole.recv_batch().await else {
            panic!("expected lines");
        };
        assert_eq!(texts(&batch), [&b"a"[..], b"bb", b"ccc"]);
        assert_eq!(batch.event(2), Some(line(2, "ccc")));
        assert!(whole.recv_batch().await.is_none());

        // The same stream through `recv`, mixed with `recv_batch` for the rest.
        assert_eq!(single.recv().await, Some(started(1)));
        assert_eq!(single.recv().await, Some(line(0, "a")));
        let Some(OutputBatch::Lines(rest)) = single.recv_batch().await else {
            panic!("expected the rest of the lines");
        };
        assert_eq!(
            (rest.first_seq(), texts(&rest)),
            (1, vec![&b"bb"[..], b"ccc"])
        );
        assert_eq!(single.recv().await, None);
    }

    #[tokio::test]
    async fn line_batches_are_split_to_half_the_capacity_and_lag_in_lines() {
        let ch = OutputChannel::new(4);
        let mut sub = ch.subscribe();
        ch.publish_lines(line_batch(0, "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n"));
        ch.close();
        // Slots of 2 lines; the last 4 lines are kept.
        assert_eq!(ch.max_batch, 2);
        assert_eq!(sub.recv().await, Some(OutputEvent::Lagged { skipped: 6 }));
        let rest: Vec<_> =
            std::iter::from_fn(|| futures_util::FutureExt::now_or_never(sub.recv()).flatten())
                .collect();
        assert_eq!(
            rest,
            vec![line(6, "6"), line(7, "7"), line(8, "8"), line(9, "9")]
        );
    }

    #[tokio::test]
    async fn lines_are_paced_by_the_slowest_reader() {
        let ch = OutputChannel::new(8);
        assert_eq!(ch.batch_hint(), 2);
        let mut fast = ch.subscribe();
        let slow = ch.subscribe();
        ch.publish_lines(line_batch(0, "a\nb\nc\nd\ne\n"));
        assert!(fast.recv_batch().await.is_some());
        assert!(ch.backlogged(), "the slow reader has 5 of 8 unread");
        drop(slow);
        assert!(!ch.backlogged(), "a dropped reader does not count");
    }

    #[tokio::test]
    async fn a_waiting_runner_is_woken_by_reader_progress_and_departure() {
        use futures_util::FutureExt as _;
        let ch = OutputChannel::new(4);
        let mut sub = ch.subscribe();
        ch.publish_lines(line_batch(0, "a\nb\nc\n"));
        assert!(ch.backlogged());
        let mut wait = ch.readers_caught_up();
        assert!((&mut wait).now_or_never().is_none(), "backlogged: waits");
        assert!(sub.recv_batch().await.is_some());
        assert!(
            (&mut wait).now_or_never().is_some(),
            "woken once the batch is taken"
        );

        ch.publish_lines(line_batch(3, "d\ne\nf\n"));
        let mut wait = ch.readers_caught_up();
        assert!((&mut wait).now_or_never().is_none());
        drop(sub);
        assert!(
            wait.now_or_never().is_some(),
            "woken when the reader leaves"
        );
        assert_eq!(ch.shared.waiters.load(Ordering::Acquire), 0);
    }

    #[test]
    fn departed_subscribers_are_not_kept_while_the_task_is_silent() {
        let ch = OutputChannel::new(4);
        let _stay = ch.subscribe();
        for _ in 0..1000 {
            drop(ch.subscribe());
        }
        assert!(ch.lock().readers.len() <= 2, "{}", ch.lock().readers.len());
    }
}
