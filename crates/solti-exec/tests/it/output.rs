//! Output lines: long lines, binary data, volume, CRLF.

use solti_exec::CUT_MARKER;
use solti_model::OutputStream;

use crate::harness::*;

#[tokio::test]
async fn a_1_mib_line_is_cut_and_marked_and_the_next_line_survives() {
    let (r, b) = run(&spec(sh(
        "head -c 1048576 /dev/zero | tr '\\0' a; echo; echo after",
    )))
    .await;
    r.unwrap();
    let lines = b.out.lines(OutputStream::Stdout);
    assert_eq!(
        lines.len(),
        2,
        "{:?}",
        lines.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    assert_eq!(lines[0].len(), 64 * 1024 + CUT_MARKER.len());
    assert!(lines[0].ends_with(CUT_MARKER));
    assert!(lines[0][..64 * 1024].iter().all(|&b| b == b'a'));
    assert_eq!(&lines[1][..], b"after");
}

#[tokio::test]
async fn binary_output_and_crlf_survive() {
    let (r, b) = run(&spec(sh(
        "printf 'a\\000\\377\\376b\\r\\nnext\\rmid\\n'; printf tail",
    )))
    .await;
    r.unwrap();
    let lines = b.out.lines(OutputStream::Stdout);
    assert_eq!(
        lines,
        vec![&b"a\x00\xff\xfeb"[..], &b"next\rmid"[..], &b"tail"[..]]
    );
}

#[tokio::test]
async fn one_hundred_thousand_lines_arrive_in_order() {
    let (r, b) = run(&spec(sh("seq 1 100000"))).await;
    r.unwrap();
    let lines = b.out.stdout();
    assert_eq!(lines.len(), 100_000);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, &(i + 1).to_string());
    }
}

#[tokio::test]
async fn stdout_and_stderr_are_separate_streams() {
    let (r, b) = run(&spec(sh("echo out; echo err >&2; echo out2"))).await;
    r.unwrap();
    assert_eq!(b.out.stdout(), vec!["out", "out2"]);
    assert_eq!(b.out.stderr(), vec!["err"]);
}

#[tokio::test]
async fn stdin_is_empty() {
    let (r, b) = run(&spec(sh("cat; echo done"))).await;
    r.unwrap();
    assert_eq!(b.out.stdout(), vec!["done"]);
}

/// A bounded broadcast hub like the supervisor's, reporting a backlog when a reader is more
/// than half its buffer behind.
struct Hub {
    tx: tokio::sync::broadcast::Sender<solti_model::OutputEvent>,
}

impl solti_runner::OutputTarget for Hub {
    fn publish(&self, event: solti_model::OutputEvent) {
        let _ = self.tx.send(event);
    }
    fn backlogged(&self) -> bool {
        self.tx.len() > 128
    }
}

fn hub_task(
    lines: u64,
) -> (
    taskvisor::TaskRef,
    tokio::sync::broadcast::Receiver<solti_model::OutputEvent>,
) {
    let (tx, rx) = tokio::sync::broadcast::channel(256);
    let mut router = solti_runner::RunnerRouter::new();
    solti_exec::register_subprocess_runner_with_backend(&mut router, "default", fast()).unwrap();
    let publisher = solti_runner::OutputPublisher::new(
        solti_model::TaskId::generate(),
        std::sync::Arc::new(Hub { tx }),
    );
    publisher.set_attempt(1);
    let ctx = router.context(publisher);
    let (task, _) = router
        .build(&spec(cmd("seq", &["1", &lines.to_string()])), &ctx)
        .unwrap();
    (task, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_of_a_bounded_hub_loses_nothing() {
    let (task, mut rx) = hub_task(100_000);
    let reader = tokio::spawn(async move {
        let mut next = 1u64;
        loop {
            match rx.recv().await {
                Ok(solti_model::OutputEvent::Chunk { line, .. }) => {
                    assert_eq!(std::str::from_utf8(&line).unwrap(), next.to_string());
                    next += 1;
                    if next.is_multiple_of(64) {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    panic!("lagged by {n} at line {next}")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return next - 1,
            }
        }
    });
    task.spawn(taskvisor::TaskContext::detached())
        .await
        .unwrap();
    drop(task);
    assert_eq!(reader.await.unwrap(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_stall_the_task() {
    let (task, rx) = hub_task(200_000);
    let started = std::time::Instant::now();
    task.spawn(taskvisor::TaskContext::detached())
        .await
        .unwrap();
    assert!(
        // Waiting on the stalled reader for every slice would take minutes; 30 s leaves room
        // for slow (emulated) machines.
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    drop(rx);
}
