//! A scripted in-memory transport for the loop's paused-clock unit tests.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use super::Failure;
use crate::payload::{Payload, Reply};

/// One scripted answer: wait `delay` (paused clock), then answer.
pub(crate) type Step = (Duration, Result<Reply, Failure>);

/// Answers from a script (then `success = true` at once) and records when each Sync
/// started, with its payload.
#[derive(Clone, Default)]
pub(crate) struct FakeClient {
    script: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<Mutex<Vec<(Instant, Payload)>>>,
}

impl FakeClient {
    pub(crate) fn new(script: impl IntoIterator<Item = Step>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into_iter().collect())),
            calls: Arc::default(),
        }
    }

    pub(crate) fn calls(&self) -> Vec<(Instant, Payload)> {
        self.calls.lock().unwrap().clone()
    }

    pub(crate) async fn sync(&self, payload: &Payload) -> Result<Reply, Failure> {
        self.calls
            .lock()
            .unwrap()
            .push((Instant::now(), payload.clone()));
        let step = self.script.lock().unwrap().pop_front();
        let (delay, answer) = step.unwrap_or((Duration::ZERO, Ok(Reply::accepted())));
        tokio::time::sleep(delay).await;
        answer
    }
}
