//! The live output hub: one bounded broadcast channel per task, shared by all its attempts.
//!
//! The channel carries batches ([`Batch`]): one publish (a single event, or the lines a
//! runner read together) costs one lock and one broadcast send, however many lines it
//! holds, and a subscriber wakes once per batch, not once per line.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_util::Stream;
use solti_model::OutputEvent;
use solti_runner::OutputTarget;
use tokio::sync::broadcast;

/// Most events carried by one broadcast slot; longer batches are split.
const MAX_BATCH: usize = 128;
/// Most line bytes in one batch (a single longer line still travels alone): with the default
/// 256 slots and the runner's 64 KiB line bound, one task's buffer holds at most about 20 MiB.
const MAX_BATCH_BYTES: usize = 16 * 1024;

/// Events published together, numbered: `first` is the index of `events[0]` among all
/// events this channel has broadcast, so a subscriber that lagged can count the events
/// (not batches) it missed from the gap.
#[derive(Clone, Debug)]
struct Batch {
    first: u64,
    events: Arc<Vec<OutputEvent>>,
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
    /// How many events were broadcast so far (`State::next_index`, readable without the
    /// lock): subscribers skip what is more than `capacity` behind it.
    head: Arc<AtomicU64>,
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
    /// `first` of the most recent batches sent (at most `capacity`, the oldest first), to
    /// count the events in the batches the slowest subscriber has not read.
    recent_firsts: VecDeque<u64>,
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
                recent_firsts: VecDeque::new(),
            }),
            capacity,
            head: Arc::new(AtomicU64::new(0)),
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
        OutputSubscription {
            rx,
            pending: state.current_run.clone(),
            current: None,
            expected: next_index,
            head: Arc::clone(&self.head),
            capacity: self.capacity as u64,
        }
    }

    /// Ends the channel: subscribers receive what is buffered, then `None`.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.sender = None;
        state.recent_firsts.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few fields written together; a poisoned lock still holds valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Broadcasts `events` (already noted as run markers) under the held lock.
    fn send(&self, state: &mut State, events: Vec<OutputEvent>) {
        let Some(sender) = &state.sender else { return };
        if sender.receiver_count() == 0 {
            // Everyone left: free the buffer until someone subscribes again.
            state.sender = None;
            state.recent_firsts.clear();
            return;
        }
        let sender = sender.clone();
        let send_one = |state: &mut State, events: Vec<OutputEvent>| {
            let events = Arc::new(events);
            let first = state.next_index;
            state.next_index += events.len() as u64;
            if state.recent_firsts.len() == self.capacity {
                state.recent_firsts.pop_front();
            }
            state.recent_firsts.push_back(first);
            // `send` never waits; it fails only when there is no receiver, which is fine.
            let _ = sender.send(Batch { first, events });
            self.head.store(state.next_index, Ordering::Release);
        };
        // Split into batches of at most MAX_BATCH events and MAX_BATCH_BYTES of line bytes
        // (at least one event each), so the buffer's `capacity` slots hold a bounded amount
        // of memory whatever the line lengths.
        let mut batch = Vec::with_capacity(events.len().min(MAX_BATCH));
        let mut bytes = 0;
        for event in events {
            let len = match &event {
                OutputEvent::Chunk { line, .. } => line.len(),
                _ => 0,
            };
            if !batch.is_empty() && (batch.len() == MAX_BATCH || bytes + len > MAX_BATCH_BYTES) {
                send_one(state, std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += len;
            batch.push(event);
        }
        if !batch.is_empty() {
            send_one(state, batch);
        }
    }
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

    /// More than half the buffer's worth of events (`capacity / 2`) is still unread by the
    /// slowest subscriber: the runner may pause reading its pipes briefly so a reader that
    /// keeps up loses nothing.
    fn backlogged(&self) -> bool {
        let state = self.lock();
        let Some(sender) = &state.sender else {
            return false;
        };
        // The last `unread` batches sent are the ones the slowest receiver has not taken.
        let unread = sender.len().min(state.recent_firsts.len());
        let Some(first_unread) = state
            .recent_firsts
            .len()
            .checked_sub(unread)
            .and_then(|i| state.recent_firsts.get(i))
        else {
            return false;
        };
        state.next_index - first_unread > (self.capacity / 2) as u64
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
/// oldest of the last `output_capacity` events. The runner is never slowed down by a subscriber. Dropping
/// the subscription frees it at once.
pub struct OutputSubscription {
    rx: Option<broadcast::Receiver<Batch>>,
    /// Delivered before anything from `rx`: the `RunStarted` of the run in progress when
    /// the subscription was made.
    pending: Option<OutputEvent>,
    /// The rest of the batch being handed out.
    current: Option<Current>,
    /// Index of the next event this subscriber expects (to count skipped events).
    expected: u64,
    /// Events broadcast so far ([`OutputChannel::head`]) and how far behind it this
    /// subscriber may fall before it skips ahead.
    head: Arc<AtomicU64>,
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
            head: Arc::new(AtomicU64::new(0)),
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
        if let Some(event) = self.next_buffered() {
            return Some(event);
        }
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(batch) => {
                    // Keep only the last `capacity` events: what is older was lost to this
                    // subscriber, as if the buffer held `capacity` single events.
                    let floor = self
                        .head
                        .load(Ordering::Acquire)
                        .saturating_sub(self.capacity);
                    let end = batch.first + batch.events.len() as u64;
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
                    if skipped > 0 {
                        return Some(OutputEvent::Lagged { skipped });
                    }
                    return self.next_buffered();
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
        self.expected = batch.first + batch.events.len() as u64;
        // The broadcast slot lets go of its copy once every subscriber has read it, so the
        // last (usually the only) subscriber takes the events without cloning them.
        self.current = Some(match Arc::try_unwrap(batch.events) {
            Ok(events) => Current::Owned(events.into_iter()),
            Err(events) => Current::Shared(events, 0),
        });
    }

    /// Drops the next `n` events of the current batch.
    fn skip(&mut self, n: usize) {
        match &mut self.current {
            Some(Current::Owned(events)) if n > 0 => {
                events.nth(n - 1);
            }
            Some(Current::Shared(_, pos)) => *pos += n,
            _ => {}
        }
    }

    /// The next event of the current batch, if any is left.
    fn next_buffered(&mut self) -> Option<OutputEvent> {
        let event = match self.current.as_mut()? {
            Current::Owned(events) => events.next(),
            Current::Shared(events, pos) => {
                let event = events.get(*pos).cloned();
                *pos += 1;
                event
            }
        };
        if event.is_none() {
            self.current = None;
        }
        event
    }

    /// The subscription as a [`Stream`] of events (ends like [`recv`](Self::recv)).
    pub fn into_stream(self) -> impl Stream<Item = OutputEvent> + Send + Unpin + 'static {
        Box::pin(futures_util::stream::unfold(self, |mut sub| async move {
            let event = sub.recv().await?;
            Some((event, sub))
        }))
    }
}

/// The rest of a received batch.
enum Current {
    /// This subscriber was the batch's last reader: the events are moved out.
    Owned(std::vec::IntoIter<OutputEvent>),
    /// Other subscribers share the batch: events are cloned from `pos` on.
    Shared(Arc<Vec<OutputEvent>>, usize),
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
        assert_eq!(ch.lock().recent_firsts.len(), 5);
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
        let ch = OutputChannel::new(1024);
        let mut sub = ch.subscribe();
        let n = MAX_BATCH as u64 * 2 + 1;
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
}
