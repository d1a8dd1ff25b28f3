//! The attempt handover between the supervisor ([`start_attempt`]) and a runner's task
//! ([`AttemptFn`]).

use std::sync::{Arc, Mutex};

use solti_model::{OutputEvent, TaskId};
use solti_runner::{Attempt, AttemptEnd, AttemptFn, OutputPublisher, OutputTarget, start_attempt};
use taskvisor::{TaskContext, TaskError, TaskFn, TaskRef};

#[derive(Default)]
struct Collect(Mutex<Vec<OutputEvent>>);

impl OutputTarget for Collect {
    fn publish(&self, event: OutputEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// Prints its attempt number, and exits with code `10 + number` without failing.
fn numbered(output: &OutputPublisher) -> TaskRef {
    AttemptFn::arc(output, |attempt: Attempt| async move {
        let n = attempt.number();
        attempt.output().stdout_line(n.to_string().into());
        AttemptEnd::success().with_exit_code(10 + i32::try_from(n).unwrap())
    })
}

#[tokio::test]
async fn the_supervisor_numbers_attempts_and_gets_their_exit_codes() {
    let target = Arc::new(Collect::default());
    let output = OutputPublisher::new(TaskId::generate(), target.clone());
    let task = numbered(&output);
    for number in [4, 5] {
        let end = start_attempt(&task, number, TaskContext::detached()).await;
        assert!(end.result().is_ok());
        assert_eq!(end.exit_code(), Some(10 + i32::try_from(number).unwrap()));
    }
    let attempts: Vec<u32> = target
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            OutputEvent::Chunk { attempt, .. } => *attempt,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(attempts, [4, 5]);
}

#[tokio::test]
async fn spawned_directly_a_task_numbers_its_own_attempts() {
    let output = OutputPublisher::discard(TaskId::generate());
    let task = numbered(&output);
    // As taskvisor without a Solti supervisor would: the exit code stays inside.
    for _ in 0..2 {
        task.spawn(TaskContext::detached()).await.unwrap();
    }
    // A supervised start after that still uses the supervisor's number.
    let end = start_attempt(&task, 9, TaskContext::detached()).await;
    assert_eq!(end.exit_code(), Some(19));
}

#[tokio::test]
async fn a_plain_task_ends_with_its_errors_exit_code() {
    let task: TaskRef = TaskFn::arc(|_ctx: TaskContext| async {
        Err::<(), _>(TaskError::fail("boom").with_exit_code(3))
    });
    let end = start_attempt(&task, 1, TaskContext::detached()).await;
    assert_eq!(end.exit_code(), Some(3));
    assert!(end.into_result().is_err());
    let end = AttemptEnd::from(Err(TaskError::Canceled)).with_exit_code(143);
    assert_eq!(end.exit_code(), Some(143));
}
