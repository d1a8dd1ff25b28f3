//! The output hub: per task, a bounded window of recent output events that readers walk
//! with cursors.
//!
//! Every event a task publishes (run markers, lines) gets a per-task **offset**: 0, 1, 2, …,
//! one per event, never reused. The window keeps the newest events, bounded by
//! [`StateConfig::output_retention_bytes`](crate::StateConfig::output_retention_bytes) per
//! task and by [`StateConfig::output_retention_total_bytes`](crate::StateConfig::output_retention_total_bytes)
//! for all tasks together (the windows of the tasks that became terminal first are trimmed
//! first). A reader is a cursor: the offset of the next event it wants. Publishing appends
//! to the window, trims its front when over the bound and wakes waiting readers; it never
//! waits for anyone. A reader whose cursor fell below the window's first offset gets
//! [`OutputEvent::Lagged`] with the exact number of events it missed and goes on from the
//! oldest retained event.
//!
//! Lines stay spans of the runner's read buffer ([`LineBatch`]): publishing costs no copy
//! and no per-line allocation, and readers share the batches. When a task ends, its retained
//! lines are copied once into buffers of exactly their size, so a finished task never keeps
//! a larger read buffer alive.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
};

use bytes::{BufMut as _, BytesMut};
use futures_util::Stream;
use solti_model::{ModelError, OutputEvent, TaskId};
use solti_runner::{LineBatch, Lines, MetricsBackend, OutputTarget};

use crate::CoreError;

/// What one retained line costs beyond its bytes (its span and line ending), so that empty
/// lines are bounded too.
pub(crate) const EVENT_OVERHEAD: usize = 16;
/// What one retained publish (a run marker, a line published alone, a batch of lines) costs
/// beyond its lines: its slot in the window and its headers, so that the charge stays an
/// upper bound of the memory held, also for a task that restarts in a loop or prints one
/// line per read.
pub(crate) const ITEM_OVERHEAD: usize = 128;
const _: () = assert!(size_of::<Entry>() + 16 <= ITEM_OVERHEAD);
/// The live buffer of a task while someone reads it, when retention is 0 (live only).
const LIVE_ONLY_BYTES: usize = 256 * 1024;
/// Most window entries a reader takes under one lock.
const TAKE_ENTRIES: usize = 64;
/// Lines per publish the hub asks runners for.
const BATCH_HINT: usize = 1024;

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputStart {
    /// From the moment of subscribing (a subscription made while an attempt runs first gets
    /// that attempt's `RunStarted`).
    #[default]
    Live,
    /// The last `n` retained lines (chunks), with the run markers between them.
    Tail(u64),
    /// Everything retained.
    All,
    /// Retained events with a timestamp at or after this one (Unix milliseconds).
    Since(i64),
    /// The events after this offset (resume: the offset of the last event received).
    After(u64),
}

/// A subscription request: where to start and whether to follow the live output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputQuery {
    /// Where the subscription starts.
    pub start: OutputStart,
    /// `true`: keep following until the task is terminal and its output drained. `false`:
    /// end after the events retained at the moment of subscribing.
    pub follow: bool,
}

impl OutputQuery {
    /// Follow the output from now on.
    #[must_use]
    pub const fn live() -> Self {
        Self::new(OutputStart::Live)
    }

    /// Follow the output from `start` on.
    #[must_use]
    pub const fn new(start: OutputStart) -> Self {
        Self {
            start,
            follow: true,
        }
    }

    /// Sets whether to follow the live output after what is retained.
    #[must_use]
    pub const fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }
}

impl Default for OutputQuery {
    fn default() -> Self {
        Self::live()
    }
}

impl From<OutputStart> for OutputQuery {
    fn from(start: OutputStart) -> Self {
        Self::new(start)
    }
}

/// Bounds of the retained output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retention {
    /// Charged bytes per task; 0 = live only.
    pub(crate) per_task: usize,
    /// Charged bytes for all tasks together.
    pub(crate) total: usize,
}

/// Why events left a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trim {
    /// The task's own bound.
    TaskBytes,
    /// The global budget.
    GlobalBytes,
}

impl Trim {
    fn label(self) -> &'static str {
        match self {
            Self::TaskBytes => "task_bytes",
            Self::GlobalBytes => "global_bytes",
        }
    }
}

/// The output windows of every task the store knows, and the global byte budget.
pub(crate) struct OutputHub {
    shared: Arc<HubShared>,
    /// Channels by task, from submit until the task is deleted, swept or evicted.
    channels: Mutex<HashMap<TaskId, Arc<OutputChannel>>>,
}

/// What the channels share with the hub.
struct HubShared {
    retention: Retention,
    /// Charged bytes of every window together.
    total: AtomicUsize,
    /// Channels of terminal tasks, in the order they became terminal: the global budget
    /// trims the front first.
    terminal: Mutex<VecDeque<Weak<OutputChannel>>>,
    metrics: Arc<dyn MetricsBackend>,
    /// Ids for reader wake-up slots.
    next_reader: AtomicU64,
    /// Channels freed since the terminal queue was last pruned.
    freed_since_prune: AtomicUsize,
}

impl HubShared {
    fn add(&self, bytes: usize) {
        if bytes > 0 {
            let total = self.total.fetch_add(bytes, Ordering::AcqRel) + bytes;
            self.metrics.output_retained_bytes(total as u64);
        }
    }

    fn sub(&self, bytes: usize) {
        if bytes > 0 {
            let total = self.total.fetch_sub(bytes, Ordering::AcqRel) - bytes;
            self.metrics.output_retained_bytes(total as u64);
        }
    }

    fn trimmed(&self, why: Trim, events: u64) {
        if events > 0 {
            self.metrics.output_trimmed(why.label(), events);
        }
    }

    /// Queues a channel that became terminal for the global budget, dropping entries of
    /// channels that are gone (deleted or swept): a `Weak` keeps its allocation alive, and
    /// thousands of those pin heap pages.
    fn push_terminal(&self, channel: &Arc<OutputChannel>) {
        let mut terminal = lock(&self.terminal);
        while terminal.front().is_some_and(|w| w.strong_count() == 0) {
            terminal.pop_front();
        }
        if terminal.len() >= terminal.capacity() && terminal.len() >= 64 {
            // About to grow: prune first (amortised O(1) per push).
            terminal.retain(|w| w.strong_count() > 0);
            if terminal.len() < terminal.capacity() / 4 {
                let keep = terminal.len() * 2;
                terminal.shrink_to(keep);
            }
        }
        terminal.push_back(Arc::downgrade(channel));
    }

    /// A channel was freed: once about half the terminal queue is dead, prune it (so the
    /// allocations of freed channels are not kept alive by the queue).
    fn note_freed(&self) {
        let freed = self.freed_since_prune.fetch_add(1, Ordering::AcqRel) + 1;
        let mut terminal = lock(&self.terminal);
        if freed * 2 >= terminal.len() {
            terminal.retain(|w| w.strong_count() > 0);
            if terminal.capacity() > 64 && terminal.len() < terminal.capacity() / 4 {
                let keep = terminal.len() * 2;
                terminal.shrink_to(keep);
            }
            self.freed_since_prune.store(0, Ordering::Release);
        }
    }

    /// Brings the total under the budget: trims the windows of the oldest terminal tasks,
    /// then, when only live windows are left, the front of `own` (the window that grew).
    fn enforce_budget(&self, own: &OutputChannel) {
        let budget = self.retention.total;
        if self.total.load(Ordering::Acquire) <= budget {
            return;
        }
        let mut terminal = lock(&self.terminal);
        while self.total.load(Ordering::Acquire) > budget {
            let Some(front) = terminal.front() else {
                break;
            };
            let Some(channel) = front.upgrade() else {
                terminal.pop_front();
                continue;
            };
            let over = self.total.load(Ordering::Acquire).saturating_sub(budget);
            let mut window = channel.lock();
            let keep = window.bytes.saturating_sub(over);
            let (freed, events) = window.trim_to(keep);
            let empty = window.entries.is_empty();
            drop(window);
            self.sub(freed);
            self.trimmed(Trim::GlobalBytes, events);
            if empty {
                terminal.pop_front();
            }
        }
        drop(terminal);
        let over = self.total.load(Ordering::Acquire).saturating_sub(budget);
        if over > 0 {
            let mut window = own.lock();
            let keep = window.bytes.saturating_sub(over);
            let (freed, events) = window.trim_to(keep);
            drop(window);
            self.sub(freed);
            self.trimmed(Trim::GlobalBytes, events);
        }
    }
}

impl OutputHub {
    pub(crate) fn new(retention: Retention, metrics: Arc<dyn MetricsBackend>) -> Self {
        metrics.output_retained_bytes(0);
        Self {
            shared: Arc::new(HubShared {
                retention,
                total: AtomicUsize::new(0),
                terminal: Mutex::new(VecDeque::new()),
                metrics,
                next_reader: AtomicU64::new(0),
                freed_since_prune: AtomicUsize::new(0),
            }),
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A new channel for `id`, registered until [`free`](Self::free).
    pub(crate) fn create(&self, id: &TaskId) -> Arc<OutputChannel> {
        self.create_at(id, 0)
    }

    /// As [`create`](Self::create), with offsets starting at `base` instead of 0: a task
    /// started again after an agent restart gets offsets above every one the previous
    /// process could have handed out, so an offset is never reused.
    pub(crate) fn create_at(&self, id: &TaskId, base: u64) -> Arc<OutputChannel> {
        let channel = Arc::new(OutputChannel {
            window: Mutex::new(Window {
                next: base,
                base,
                ..Window::default()
            }),
            hub: Arc::clone(&self.shared),
        });
        lock(&self.channels).insert(id.clone(), Arc::clone(&channel));
        channel
    }

    /// The channel of `id`, if registered.
    pub(crate) fn get(&self, id: &TaskId) -> Option<Arc<OutputChannel>> {
        lock(&self.channels).get(id).cloned()
    }

    /// Forgets `id` (deleted, swept or evicted): its window is freed and its readers end.
    pub(crate) fn free(&self, id: &TaskId) {
        let channel = {
            let mut channels = lock(&self.channels);
            let channel = channels.remove(id);
            if channels.capacity() > 64 && channels.len() < channels.capacity() / 4 {
                let keep = channels.len() * 2;
                channels.shrink_to(keep);
            }
            channel
        };
        if let Some(channel) = channel {
            channel.free();
            drop(channel);
            self.shared.note_freed();
        }
    }

    /// Charged bytes retained by every window together.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.shared.total.load(Ordering::Acquire)
    }

    /// How many channels are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.channels).len()
    }
}

impl fmt::Debug for OutputHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputHub")
            .field("retained_bytes", &self.retained_bytes())
            .finish_non_exhaustive()
    }
}

/// One retained publish: a single event or lines read together.
#[derive(Clone, Debug)]
enum Item {
    Event(OutputEvent),
    Lines(LineBatch),
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Self::Event(_) => 1,
            Self::Lines(lines) => lines.len(),
        }
    }

    fn charge(&self) -> usize {
        match self {
            Self::Event(event) => event_charge(event),
            Self::Lines(lines) => {
                ITEM_OVERHEAD + lines.lines().line_bytes() + lines.len() * EVENT_OVERHEAD
            }
        }
    }

    /// Lines (chunks) among the events.
    fn chunks(&self) -> usize {
        match self {
            Self::Event(OutputEvent::Chunk { .. }) => 1,
            Self::Event(_) => 0,
            Self::Lines(lines) => lines.len(),
        }
    }

    /// The timestamp of the item's events (a batch shares one).
    fn ts(&self) -> i64 {
        match self {
            Self::Event(OutputEvent::Chunk { ts, .. }) => *ts,
            Self::Event(OutputEvent::RunStarted { started_at, .. }) => *started_at,
            Self::Event(OutputEvent::RunFinished { finished_at, .. }) => *finished_at,
            Self::Event(_) => i64::MIN,
            Self::Lines(lines) => lines.ts(),
        }
    }
}

fn event_charge(event: &OutputEvent) -> usize {
    match event {
        OutputEvent::Chunk { line, .. } => ITEM_OVERHEAD + line.len() + EVENT_OVERHEAD,
        _ => ITEM_OVERHEAD,
    }
}

/// A retained item and the offset of its first event.
#[derive(Clone, Debug)]
struct Entry {
    first: u64,
    item: Item,
}

impl Entry {
    fn end(&self) -> u64 {
        self.first + self.item.len() as u64
    }
}

#[derive(Default)]
struct Window {
    entries: VecDeque<Entry>,
    /// The offset the next published event gets.
    next: u64,
    /// The first offset of this channel (above 0 for a task started again after an agent
    /// restart); an `After` below it resumes here.
    base: u64,
    /// Charged bytes of `entries`.
    bytes: usize,
    /// The task is terminal: nothing more is published; readers end at `next`.
    closed: bool,
    /// The task is gone: readers end at once.
    freed: bool,
    /// Live subscriptions (the window is kept for them when retention is 0).
    readers: usize,
    /// The `RunStarted` of the attempt in progress and its offset: a live subscriber that
    /// joins mid-run receives it first.
    current_run: Option<(u64, OutputEvent)>,
    /// Readers waiting for events, by reader id.
    wakers: Vec<(u64, Waker)>,
}

impl Window {
    /// The offset of the oldest retained event.
    fn start(&self) -> u64 {
        self.entries.front().map_or(self.next, |e| e.first)
    }

    /// Drops events from the front until at most `keep` bytes are charged. Returns the bytes
    /// freed and the events dropped.
    fn trim_to(&mut self, keep: usize) -> (usize, u64) {
        let (mut freed, mut events) = (0, 0u64);
        while self.bytes > keep {
            let Some(front) = self.entries.front_mut() else {
                break;
            };
            let over = self.bytes - keep;
            let charge = front.item.charge();
            if charge <= over || front.item.len() == 1 {
                self.bytes -= charge;
                freed += charge;
                events += front.item.len() as u64;
                self.entries.pop_front();
                continue;
            }
            // Drop just enough leading lines of a batch.
            let Item::Lines(lines) = &mut front.item else {
                break;
            };
            let mut drop_bytes = 0;
            let mut n = 0;
            while drop_bytes < over && n < lines.len() {
                drop_bytes += lines.lines().line_len(n).unwrap_or(0) + EVENT_OVERHEAD;
                n += 1;
            }
            if n == lines.len() {
                // Every line must go: drop the whole entry (its overhead too).
                self.bytes -= charge;
                freed += charge;
                events += n as u64;
                self.entries.pop_front();
                continue;
            }
            drop(lines.split_to(n));
            front.first += n as u64;
            self.bytes -= drop_bytes;
            freed += drop_bytes;
            events += n as u64;
        }
        if self.entries.is_empty() && self.entries.capacity() > 16 {
            self.entries = VecDeque::new();
        }
        (freed, events)
    }

    /// The bound of this window: the retention, or the live buffer while someone reads a
    /// live-only task.
    fn bound(&self, retention: Retention) -> usize {
        match retention.per_task {
            0 if self.readers > 0 && !self.closed => LIVE_ONLY_BYTES,
            0 => 0,
            bytes => bytes,
        }
    }

    /// The offset of the first of the last `n` retained chunks (the window start when fewer
    /// are retained).
    fn tail_start(&self, n: u64) -> u64 {
        if n == 0 {
            return self.next;
        }
        let mut left = n;
        for entry in self.entries.iter().rev() {
            let chunks = entry.item.chunks() as u64;
            if chunks >= left {
                return match &entry.item {
                    Item::Lines(lines) => entry.first + (lines.len() as u64 - left),
                    Item::Event(_) => entry.first,
                };
            }
            left -= chunks;
        }
        self.start()
    }

    /// The offset of the first retained event at or after `ts`.
    fn since_start(&self, ts: i64) -> u64 {
        self.entries
            .iter()
            .find(|e| e.item.ts() >= ts)
            .map_or(self.next, |e| e.first)
    }

    /// Copies retained lines into buffers of exactly their size (the read buffers they
    /// share may be much larger).
    fn compact(&mut self) {
        for entry in &mut self.entries {
            if let Item::Lines(batch) = &mut entry.item {
                *batch = compacted(batch);
            }
        }
        self.entries.shrink_to_fit();
    }

    fn take_wakers(&mut self) -> Vec<(u64, Waker)> {
        if self.wakers.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut self.wakers)
        }
    }
}

/// `batch` with its lines copied into one buffer of exactly their size.
fn compacted(batch: &LineBatch) -> LineBatch {
    let src = batch.lines();
    let mut buf = BytesMut::with_capacity(src.line_bytes());
    let mut spans = Vec::with_capacity(src.len());
    for line in src.slices() {
        let start = buf.len();
        buf.put_slice(line);
        spans.push((offset32(start), offset32(buf.len())));
    }
    let lines = Lines::from_spans(buf.freeze(), spans).unwrap_or_default();
    LineBatch::new(
        batch.attempt(),
        batch.stream(),
        batch.first_seq(),
        batch.ts(),
        lines,
    )
}

fn offset32(n: usize) -> u32 {
    // A batch holds at most a few read buffers' worth of bytes, far below 4 GiB.
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn wake(wakers: Vec<(u64, Waker)>) {
    for (_, waker) in wakers {
        waker.wake();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few field updates that cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The output channel of one task: its window and its readers. Implements
/// [`OutputTarget`] for the runner's publisher.
pub(crate) struct OutputChannel {
    window: Mutex<Window>,
    hub: Arc<HubShared>,
}

impl OutputChannel {
    fn lock(&self) -> MutexGuard<'_, Window> {
        lock(&self.window)
    }

    /// A subscription of this channel.
    ///
    /// # Errors
    /// [`CoreError::Invalid`] naming `after_offset` when `After` names an offset that was
    /// never published.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        query: OutputQuery,
    ) -> Result<OutputSubscription, CoreError> {
        let mut window = self.lock();
        if window.freed {
            return Ok(OutputSubscription::ended());
        }
        let mut prefix = None;
        let next = match query.start {
            OutputStart::Live => {
                if let Some((offset, event)) = &window.current_run {
                    prefix = Some(OutputBatch::Event {
                        offset: *offset,
                        event: event.clone(),
                    });
                }
                window.next
            }
            OutputStart::Tail(n) => window.tail_start(n),
            OutputStart::All => window.start(),
            OutputStart::Since(ts) => window.since_start(ts),
            OutputStart::After(offset) => {
                if offset >= window.next {
                    return Err(CoreError::Invalid(ModelError::invalid(
                        "after_offset",
                        format!(
                            "{offset} is beyond the newest event of this task (the newest offset is {})",
                            window
                                .next
                                .checked_sub(1)
                                .map_or_else(|| "none yet".to_owned(), |n| n.to_string())
                        ),
                    )));
                }
                // An offset from before an agent restart: the previous process's events are
                // gone (output is never stored), resume with the first event of this one.
                (offset + 1).max(window.base)
            }
        };
        if query.start == OutputStart::Live && window.closed {
            // A live view of a finished task has nothing to show.
            return Ok(OutputSubscription::ended());
        }
        let until = (!query.follow).then_some(window.next);
        window.readers += 1;
        drop(window);
        let mut pending = VecDeque::new();
        pending.extend(prefix);
        Ok(OutputSubscription {
            channel: Some(Arc::clone(self)),
            id: self.hub.next_reader.fetch_add(1, Ordering::Relaxed),
            next,
            until,
            pending,
            current: None,
            last_offset: None,
        })
    }

    /// Appends one item (under the window lock), trims to the bound, wakes readers.
    fn push(&self, item: Item, run: Option<&OutputEvent>) {
        let mut window = self.lock();
        if window.closed {
            return;
        }
        let first = window.next;
        let len = item.len() as u64;
        window.next += len;
        match run {
            Some(event @ OutputEvent::RunStarted { .. }) => {
                window.current_run = Some((first, event.clone()));
            }
            Some(OutputEvent::RunFinished { .. }) => window.current_run = None,
            _ => {}
        }
        let bound = window.bound(self.hub.retention);
        let charge = item.charge();
        let (mut added, mut trimmed, mut events) = (0, 0, 0);
        if bound > 0 {
            window.entries.push_back(Entry { first, item });
            window.bytes += charge;
            added = charge;
            (trimmed, events) = window.trim_to(bound);
        }
        let wakers = window.take_wakers();
        drop(window);
        if added > trimmed {
            self.hub.add(added - trimmed);
        } else {
            self.hub.sub(trimmed - added);
        }
        self.hub.trimmed(Trim::TaskBytes, events);
        self.hub.enforce_budget(self);
        wake(wakers);
    }

    /// The task is terminal: readers drain what is retained, then end. The retained lines
    /// are compacted and the window joins the terminal queue of the global budget.
    pub(crate) fn close(self: &Arc<Self>) {
        let mut window = self.lock();
        if window.closed {
            return;
        }
        window.closed = true;
        window.current_run = None;
        let mut freed = 0;
        if window.bound(self.hub.retention) == 0 && window.readers == 0 {
            freed = window.bytes;
            window.entries = VecDeque::new();
            window.bytes = 0;
        } else {
            window.compact();
        }
        let wakers = window.take_wakers();
        drop(window);
        self.hub.sub(freed);
        self.hub.push_terminal(self);
        self.hub.enforce_budget(self);
        // Woken last: a reader that sees the end sees the budget enforced.
        wake(wakers);
    }

    /// The task is gone: free the window; readers end at once.
    fn free(&self) {
        let mut window = self.lock();
        window.closed = true;
        window.freed = true;
        window.current_run = None;
        let freed = window.bytes;
        window.entries = VecDeque::new();
        window.bytes = 0;
        let wakers = window.take_wakers();
        drop(window);
        self.hub.sub(freed);
        wake(wakers);
    }
}

impl OutputTarget for OutputChannel {
    fn publish(&self, event: OutputEvent) {
        let marker = matches!(
            event,
            OutputEvent::RunStarted { .. } | OutputEvent::RunFinished { .. }
        )
        .then(|| event.clone());
        self.push(Item::Event(event), marker.as_ref());
    }

    fn publish_batch(&self, events: Vec<OutputEvent>) {
        for event in events {
            self.publish(event);
        }
    }

    fn publish_lines(&self, batch: LineBatch) {
        if !batch.is_empty() {
            self.push(Item::Lines(batch), None);
        }
    }

    fn batch_hint(&self) -> usize {
        BATCH_HINT
    }
}

impl fmt::Debug for OutputChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = self.lock();
        f.debug_struct("OutputChannel")
            .field("start", &window.start())
            .field("next", &window.next)
            .field("bytes", &window.bytes)
            .field("readers", &window.readers)
            .field("closed", &window.closed)
            .finish()
    }
}

/// A cursor into one task's output window.
///
/// Events arrive in publish order across all attempts: `RunStarted`, chunks, `RunFinished`,
/// then the next attempt. Each has an offset ([`offset`](Self::offset) after
/// [`recv`](Self::recv), or [`OutputBatch::offset`]). Publishing never waits for a
/// subscription: one that falls behind the window gets [`OutputEvent::Lagged`] with the
/// exact number of events it missed and continues with the oldest retained event. The
/// subscription ends once the task is terminal and everything retained was delivered (or,
/// without follow, once the events retained when it was made were delivered), or when the
/// task is deleted. Dropping it frees it at once.
///
/// Also a [`Stream`] of events (as [`recv`](Self::recv)).
pub struct OutputSubscription {
    channel: Option<Arc<OutputChannel>>,
    /// This reader's wake-up slot in the window.
    id: u64,
    /// The offset of the next event to take from the window.
    next: u64,
    /// Without follow: the end offset.
    until: Option<u64>,
    /// Taken from the window, not handed out yet.
    pending: VecDeque<OutputBatch>,
    /// A batch of lines being handed out one event at a time, and the position in it.
    current: Option<(u64, LineBatch, usize)>,
    /// The offset of the last event handed out.
    last_offset: Option<u64>,
}

// === impl OutputSubscription ===

impl OutputSubscription {
    /// A subscription that yields nothing.
    pub(crate) fn ended() -> Self {
        Self {
            channel: None,
            id: 0,
            next: 0,
            until: None,
            pending: VecDeque::new(),
            current: None,
            last_offset: None,
        }
    }

    /// The next event, in order; [`OutputEvent::Lagged`] when this subscriber fell behind.
    /// `None` once the stream ended.
    pub async fn recv(&mut self) -> Option<OutputEvent> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next part of the output, in order: a single event, or the rest of a batch of
    /// lines a runner read together ([`OutputBatch::Lines`]), which a reader can walk
    /// without building an event per line. The same stream as [`recv`](Self::recv), in
    /// larger steps; the two may be mixed. `None` when `recv` would return `None`.
    pub async fn recv_batch(&mut self) -> Option<OutputBatch> {
        std::future::poll_fn(|cx| self.poll_recv_batch(cx)).await
    }

    /// The offset of the last event handed out (for `Lagged`: the offset of the last event
    /// it stands for), to resume from with [`OutputStart::After`].
    #[must_use]
    pub fn offset(&self) -> Option<u64> {
        self.last_offset
    }

    /// Polls for the next event (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutputEvent>> {
        loop {
            if let Some((offset, lines, pos)) = &mut self.current {
                if let Some(event) = lines.event(*pos) {
                    self.last_offset = Some(*offset + *pos as u64);
                    *pos += 1;
                    return Poll::Ready(Some(event));
                }
                self.current = None;
            }
            match self.poll_recv_batch(cx) {
                Poll::Ready(Some(OutputBatch::Lines { offset, lines })) => {
                    self.current = Some((offset, lines, 0));
                }
                Poll::Ready(Some(OutputBatch::Event { offset, event })) => {
                    self.last_offset = Some(offset);
                    return Poll::Ready(Some(event));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Polls for the next batch (see [`recv_batch`](Self::recv_batch)).
    pub fn poll_recv_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<OutputBatch>> {
        if let Some((offset, mut lines, pos)) = self.current.take() {
            if pos > 0 {
                drop(lines.split_to(pos));
            }
            if !lines.is_empty() {
                let offset = offset + pos as u64;
                self.last_offset = Some(offset + lines.len() as u64 - 1);
                return Poll::Ready(Some(OutputBatch::Lines { offset, lines }));
            }
        }
        if self.pending.is_empty() && !self.fill(cx) {
            return if self.channel.is_some() {
                Poll::Pending
            } else {
                Poll::Ready(None)
            };
        }
        let Some(batch) = self.pending.pop_front() else {
            return Poll::Ready(None);
        };
        self.last_offset = Some(batch.offset() + batch.len() as u64 - 1);
        Poll::Ready(Some(batch))
    }

    /// Takes what the window has for this cursor into `pending`. `false` with the channel
    /// still set: nothing yet, the waker is registered; `false` without it: the end.
    fn fill(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(channel) = &self.channel else {
            return false;
        };
        let mut window = channel.lock();
        let end = self
            .until
            .map_or(window.next, |until| until.min(window.next));
        if window.freed || self.next >= end && (window.closed || self.until.is_some()) {
            drop(window);
            self.leave();
            return false;
        }
        // Without follow, nothing past `end` counts as missed.
        let start = window.start().min(end);
        let mut lagged = 0;
        if self.next < start {
            lagged = start - self.next;
            self.pending.push_back(OutputBatch::Event {
                offset: start - 1,
                event: OutputEvent::Lagged { skipped: lagged },
            });
            self.next = start;
        }
        let from = window.entries.partition_point(|e| e.end() <= self.next);
        for entry in window.entries.range(from..).take(TAKE_ENTRIES) {
            if entry.first >= end {
                break;
            }
            let skip = usize::try_from(self.next - entry.first).unwrap_or(usize::MAX);
            let batch = match &entry.item {
                Item::Event(event) => OutputBatch::Event {
                    offset: entry.first,
                    event: event.clone(),
                },
                Item::Lines(lines) => {
                    let mut lines = lines.clone();
                    if skip > 0 {
                        drop(lines.split_to(skip));
                    }
                    let keep = usize::try_from(end - self.next).unwrap_or(usize::MAX);
                    if lines.len() > keep {
                        lines = lines.split_to(keep);
                    }
                    OutputBatch::Lines {
                        offset: self.next,
                        lines,
                    }
                }
            };
            self.next += batch.len() as u64;
            self.pending.push_back(batch);
        }
        if self.pending.is_empty() {
            if let Some(slot) = window.wakers.iter_mut().find(|(id, _)| *id == self.id) {
                if !slot.1.will_wake(cx.waker()) {
                    slot.1 = cx.waker().clone();
                }
            } else {
                window.wakers.push((self.id, cx.waker().clone()));
            }
            return false;
        }
        drop(window);
        if lagged > 0 {
            channel.hub.metrics.output_lagged(lagged);
        }
        true
    }

    /// Ends the subscription: the window no longer counts it as a reader.
    fn leave(&mut self) {
        let Some(channel) = self.channel.take() else {
            return;
        };
        let mut window = channel.lock();
        window.readers = window.readers.saturating_sub(1);
        window.wakers.retain(|(id, _)| *id != self.id);
        let mut freed = 0;
        if window.readers == 0 && window.bound(channel.hub.retention) == 0 {
            // Live only and nobody reads: nothing is kept.
            freed = window.bytes;
            window.entries = VecDeque::new();
            window.bytes = 0;
        }
        drop(window);
        channel.hub.sub(freed);
    }

    /// The subscription as a [`Stream`] of [`OutputBatch`]es (ends like
    /// [`recv_batch`](Self::recv_batch)).
    pub fn into_batch_stream(mut self) -> impl Stream<Item = OutputBatch> + Send + Unpin + 'static {
        futures_util::stream::poll_fn(move |cx| self.poll_recv_batch(cx))
    }

    /// The subscription as a [`Stream`] of events (ends like [`recv`](Self::recv)); the
    /// subscription itself is one too.
    pub fn into_stream(self) -> impl Stream<Item = OutputEvent> + Send + Unpin + 'static {
        self
    }
}

impl Stream for OutputSubscription {
    type Item = OutputEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutputEvent>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Drop for OutputSubscription {
    fn drop(&mut self) {
        self.leave();
    }
}

impl fmt::Debug for OutputSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSubscription")
            .field("next", &self.next)
            .field(
                "ended",
                &(self.channel.is_none() && self.pending.is_empty()),
            )
            .finish()
    }
}

/// A part of a task's output, as [`OutputSubscription::recv_batch`] hands it out, with the
/// offset of its first event.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum OutputBatch {
    /// One event: a run marker, [`OutputEvent::Lagged`] (its offset is that of the last
    /// event it stands for), or a line published on its own.
    Event {
        /// The event's offset.
        offset: u64,
        /// The event.
        event: OutputEvent,
    },
    /// Lines read together from one stream of one attempt; line `i` is the event
    /// [`LineBatch::event(i)`](LineBatch::event) at offset `offset + i`.
    Lines {
        /// The offset of the first line.
        offset: u64,
        /// The lines.
        lines: LineBatch,
    },
}

impl OutputBatch {
    /// The offset of the first event.
    #[must_use]
    pub fn offset(&self) -> u64 {
        match self {
            Self::Event { offset, .. } | Self::Lines { offset, .. } => *offset,
        }
    }

    /// How many events this part stands for (at least 1).
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Event { .. } => 1,
            Self::Lines { lines, .. } => lines.len(),
        }
    }

    /// Always `false`: a part holds at least one event.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events this part stands for, in order.
    pub fn into_events(self) -> impl Iterator<Item = OutputEvent> {
        self.into_events_with_offsets().map(|(_, event)| event)
    }

    /// The events this part stands for, in order, with their offsets.
    pub fn into_events_with_offsets(self) -> impl Iterator<Item = (u64, OutputEvent)> {
        let (event, lines) = match self {
            Self::Event { offset, event } => (Some((offset, event)), None),
            Self::Lines { offset, lines } => (None, Some((offset, lines))),
        };
        event
            .into_iter()
            .chain(lines.into_iter().flat_map(|(offset, lines)| {
                (0..lines.len()).filter_map(move |i| Some((offset + i as u64, lines.event(i)?)))
            }))
    }
}

#[cfg(test)]
mod tests;
