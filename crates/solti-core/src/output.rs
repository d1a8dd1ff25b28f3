//! The live output hub: one bounded broadcast channel per task, shared by all its attempts.

use std::{
    fmt,
    sync::{Mutex, MutexGuard, PoisonError},
};

use futures_util::Stream;
use solti_model::OutputEvent;
use solti_runner::OutputTarget;
use tokio::sync::broadcast;

/// The output channel of one task. Implements [`OutputTarget`] for the runner's publisher.
///
/// The broadcast buffer is allocated when the first subscriber arrives, not at submit: a
/// broadcast channel only delivers events sent after a receiver subscribed, so events
/// published while nobody listens are dropped either way, and tasks nobody watches (the vast
/// majority) do not pay for a 256-slot buffer.
pub(crate) struct OutputChannel {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    sender: Option<broadcast::Sender<OutputEvent>>,
    /// Set once the task is terminal (or deleted): new subscribers get an ended stream and
    /// existing ones drain what is buffered, then end.
    closed: bool,
    /// The `RunStarted` of the attempt in progress, if any. A subscriber that joins mid-run
    /// receives it first, so every stream starts with the run it is in.
    current_run: Option<OutputEvent>,
}

// === impl OutputChannel ===

impl OutputChannel {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                sender: None,
                closed: false,
                current_run: None,
            }),
            capacity,
        }
    }

    /// A new subscription; it ends at once when the channel is already closed.
    pub(crate) fn subscribe(&self) -> OutputSubscription {
        let mut state = self.lock();
        if state.closed {
            return OutputSubscription::ended();
        }
        let sender = state
            .sender
            .get_or_insert_with(|| broadcast::channel(self.capacity).0);
        let rx = Some(sender.subscribe());
        OutputSubscription {
            rx,
            pending: state.current_run.clone(),
        }
    }

    /// Ends the channel: subscribers receive what is buffered, then `None`.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.sender = None;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two fields written together; a poisoned lock still holds valid data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OutputTarget for OutputChannel {
    fn publish(&self, event: OutputEvent) {
        let mut state = self.lock();
        match &event {
            OutputEvent::RunStarted { .. } => state.current_run = Some(event.clone()),
            OutputEvent::RunFinished { .. } => state.current_run = None,
            _ => {}
        }
        let Some(sender) = &state.sender else { return };
        if sender.receiver_count() == 0 {
            // Everyone left: free the buffer until someone subscribes again.
            state.sender = None;
            return;
        }
        // `send` never waits; it fails only when there is no receiver, which is fine.
        let _ = sender.send(event);
    }

    /// More than half the buffer is still unread by the slowest subscriber: the runner may
    /// pause reading its pipes briefly so a reader that keeps up loses nothing.
    fn backlogged(&self) -> bool {
        self.lock()
            .sender
            .as_ref()
            .is_some_and(|s| s.len() > self.capacity / 2)
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
/// [`OutputEvent::Lagged`] and continues with the oldest event still buffered. The runner is
/// never slowed down by a subscriber. Dropping the subscription frees it at once.
pub struct OutputSubscription {
    rx: Option<broadcast::Receiver<OutputEvent>>,
    /// Delivered before anything from `rx`: the `RunStarted` of the run in progress when
    /// the subscription was made.
    pending: Option<OutputEvent>,
}

// === impl OutputSubscription ===

impl OutputSubscription {
    /// A subscription that yields nothing (a terminal task).
    pub(crate) fn ended() -> Self {
        Self {
            rx: None,
            pending: None,
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
        let rx = self.rx.as_mut()?;
        match rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                Some(OutputEvent::Lagged { skipped })
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.rx = None;
                None
            }
        }
    }

    /// The subscription as a [`Stream`] of events (ends like [`recv`](Self::recv)).
    pub fn into_stream(self) -> impl Stream<Item = OutputEvent> + Send + Unpin + 'static {
        Box::pin(futures_util::stream::unfold(self, |mut sub| async move {
            let event = sub.recv().await?;
            Some((event, sub))
        }))
    }
}

impl fmt::Debug for OutputSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSubscription")
            .field("ended", &self.rx.is_none())
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
}
