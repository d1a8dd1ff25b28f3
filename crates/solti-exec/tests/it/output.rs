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

/// Counts published lines; nobody ever reads them.
#[derive(Default)]
struct Unread(std::sync::atomic::AtomicU64);

impl solti_runner::OutputTarget for Unread {
    fn publish(&self, event: solti_model::OutputEvent) {
        if matches!(event, solti_model::OutputEvent::Chunk { .. }) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn publish_lines(&self, batch: solti_runner::LineBatch) {
        self.0
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The runner publishes every line whether or not anyone reads: there is no pacing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_published_without_a_reader() {
    let target = std::sync::Arc::new(Unread::default());
    let mut router = solti_runner::RunnerRouter::new();
    solti_exec::register_subprocess_runner_with_backend(&mut router, "default", fast()).unwrap();
    let publisher =
        solti_runner::OutputPublisher::new(solti_model::TaskId::generate(), target.clone());
    let ctx = router.context(publisher);
    let (task, _) = router
        .build(&spec(cmd("seq", &["1", "200000"])), &ctx)
        .unwrap();
    task.spawn(taskvisor::TaskContext::detached())
        .await
        .unwrap();
    assert_eq!(target.0.load(std::sync::atomic::Ordering::Relaxed), 200_000);
}
