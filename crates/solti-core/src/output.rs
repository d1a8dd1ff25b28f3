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
}

// === impl OutputChannel ===

impl OutputChannel {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                sender: None,
                closed: false,
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
        OutputSubscription {
            rx: Some(sender.subscribe()),
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
        let Some(sender) = &state.sender else { return };
        if sender.receiver_count() == 0 {
            // Everyone left: free the buffer until someone subscribes again.
            state.sender = None;
            return;
        }
        // `send` never waits; it fails only when there is no receiver, which is fine.
        let _ = sender.send(event);
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

/// A live view of one task's output, from the moment of subscribing.
///
/// Events arrive in publish order across all attempts: `RunStarted`, chunks, `RunFinished`,
/// then the next attempt. A subscriber that falls more than
/// [`StateConfig::output_capacity`](crate::StateConfig::output_capacity) events behind gets
/// [`OutputEvent::Lagged`] and continues with the oldest event still buffered. The runner is
/// never slowed down by a subscriber. Dropping the subscription frees it at once.
pub struct OutputSubscription {
    rx: Option<broadcast::Receiver<OutputEvent>>,
}

// === impl OutputSubscription ===

impl OutputSubscription {
    /// A subscription that yields nothing (a terminal task).
    pub(crate) fn ended() -> Self {
        Self { rx: None }
    }

    /// The next event, in order; [`OutputEvent::Lagged`] when this subscriber fell behind.
    ///
    /// `None` once the task is terminal and everything published before that was delivered,
    /// or the task was deleted.
    pub async fn recv(&mut self) -> Option<OutputEvent> {
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
        ch.publish(started(0)); // nobody listens: dropped
        let mut sub = ch.subscribe();
        for n in 1..=4 {
            ch.publish(started(n));
        }
        ch.close();
        assert_eq!(sub.recv().await, Some(OutputEvent::Lagged { skipped: 2 }));
        assert_eq!(sub.recv().await, Some(started(3)));
        assert_eq!(sub.recv().await, Some(started(4)));
        assert_eq!(sub.recv().await, None);
        assert_eq!(ch.subscribe().recv().await, None);
    }
}
