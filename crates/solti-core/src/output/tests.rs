use futures_util::FutureExt as _;
use solti_model::OutputStream;
use solti_runner::NoOpMetrics;

use super::*;

fn hub(per_task: usize, total: usize) -> OutputHub {
    OutputHub::new(
        Retention { per_task, total },
        Arc::new(NoOpMetrics::default()),
    )
}

fn started(attempt: u32) -> OutputEvent {
    OutputEvent::RunStarted {
        attempt,
        started_at: 0,
    }
}

fn finished(attempt: u32) -> OutputEvent {
    OutputEvent::RunFinished {
        attempt,
        exit_code: Some(0),
        finished_at: 1,
    }
}

fn line(seq: u64, text: &str) -> OutputEvent {
    OutputEvent::Chunk {
        attempt: 1,
        stream: OutputStream::Stdout,
        seq,
        ts: 0,
        line: text.as_bytes().to_vec().into(),
    }
}

/// Lines `first..first + n`, each its number, as one batch.
fn numbered(first: u64, n: u64) -> LineBatch {
    let mut text = String::new();
    for i in first..first + n {
        text.push_str(&format!("{i}\n"));
    }
    let mut lines = Lines::new(text.clone().into_bytes().into());
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            assert!(lines.push(start..i));
            start = i + 1;
        }
    }
    LineBatch::new(1, OutputStream::Stdout, first, 0, lines)
}

/// Everything the subscription has now, without waiting; `None` marks the end.
fn drain(sub: &mut OutputSubscription) -> (Vec<(u64, OutputEvent)>, bool) {
    let mut out = Vec::new();
    loop {
        match sub.recv().now_or_never() {
            Some(Some(event)) => out.push((sub.offset().unwrap(), event)),
            Some(None) => return (out, true),
            None => return (out, false),
        }
    }
}

#[test]
fn finished_output_is_readable_in_full_with_offsets() {
    let hub = hub(1 << 20, 1 << 30);
    let id = TaskId::generate();
    let ch = hub.create(&id);
    ch.publish(started(1));
    ch.publish_lines(numbered(0, 3));
    ch.publish(finished(1));
    ch.close();
    let mut sub = ch.subscribe(OutputQuery::new(OutputStart::All)).unwrap();
    let (events, ended) = drain(&mut sub);
    assert!(ended);
    let offsets: Vec<u64> = events.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    assert_eq!(events[0].1, started(1));
    assert_eq!(events[2].1, line(1, "1"));
    assert_eq!(events[4].1, finished(1));
    // Live on a finished task: nothing.
    let (live, ended) = drain(&mut ch.subscribe(OutputQuery::live()).unwrap());
    assert!(live.is_empty() && ended);
}

#[test]
fn tail_since_and_after_start_where_asked() {
    let hub = hub(1 << 20, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    ch.publish(started(1)); // 0
    ch.publish_lines(numbered(0, 10)); // 1..=10
    ch.publish(finished(1)); // 11
    ch.close();
    let offsets = |q| -> Vec<u64> {
        drain(&mut ch.subscribe(q).unwrap())
            .0
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    };
    assert_eq!(offsets(OutputQuery::new(OutputStart::Tail(2))), [9, 10, 11]);
    assert_eq!(
        offsets(OutputQuery::new(OutputStart::Tail(0))),
        Vec::<u64>::new()
    );
    assert_eq!(offsets(OutputQuery::new(OutputStart::Tail(100))).len(), 12);
    assert_eq!(
        offsets(OutputQuery::new(OutputStart::After(8))),
        [9, 10, 11]
    );
    assert_eq!(
        offsets(OutputQuery::new(OutputStart::After(11))),
        Vec::<u64>::new()
    );
    assert_eq!(offsets(OutputQuery::new(OutputStart::Since(1))), [11]);
    let err = ch
        .subscribe(OutputQuery::new(OutputStart::After(12)))
        .unwrap_err();
    assert!(matches!(err, CoreError::Invalid(_)), "{err:?}");
}

#[test]
fn no_follow_ends_at_what_was_retained() {
    let hub = hub(1 << 20, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    ch.publish(started(1));
    let mut snapshot = ch
        .subscribe(OutputQuery::new(OutputStart::All).follow(false))
        .unwrap();
    let mut follow = ch.subscribe(OutputQuery::new(OutputStart::All)).unwrap();
    ch.publish_lines(numbered(0, 2));
    let (events, ended) = drain(&mut snapshot);
    assert_eq!((events.len(), ended), (1, true));
    let (events, ended) = drain(&mut follow);
    assert_eq!((events.len(), ended), (3, false));
}

/// The charge of one line of `len` bytes published alone.
const fn single(len: usize) -> usize {
    ITEM_OVERHEAD + len + EVENT_OVERHEAD
}

#[test]
fn a_reader_behind_the_window_gets_the_exact_count_then_the_oldest_retained() {
    // 10 one-digit lines published one by one: the bound keeps the last 3.
    let hub = hub(3 * single(1) + 10, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    let mut sub = ch.subscribe(OutputQuery::live()).unwrap();
    for i in 0..10 {
        ch.publish_lines(numbered(i, 1));
    }
    let (events, ended) = drain(&mut sub);
    assert!(!ended);
    assert_eq!(events[0], (6, OutputEvent::Lagged { skipped: 7 }));
    let rest: Vec<u64> = events[1..].iter().map(|(o, _)| *o).collect();
    assert_eq!(rest, [7, 8, 9]);
    assert_eq!(ch.lock().bytes, 3 * single(1));
}

#[test]
fn a_batch_is_trimmed_line_by_line() {
    let hub = hub(ITEM_OVERHEAD + 5 * (1 + EVENT_OVERHEAD), 1 << 30);
    let ch = hub.create(&TaskId::generate());
    ch.publish_lines(numbered(0, 10));
    let window = ch.lock();
    assert_eq!((window.start(), window.next), (5, 10));
    assert_eq!(window.bytes, ITEM_OVERHEAD + 5 * (1 + EVENT_OVERHEAD));
}

#[test]
fn the_global_budget_trims_the_oldest_terminal_windows_first() {
    let per = ITEM_OVERHEAD + numbered(0, 10).lines().line_bytes() + 10 * EVENT_OVERHEAD;
    let hub = hub(1 << 20, 3 * per);
    let ids: Vec<TaskId> = (0..4).map(|_| TaskId::generate()).collect();
    let chans: Vec<_> = ids.iter().map(|id| hub.create(id)).collect();
    for ch in &chans[..3] {
        ch.publish_lines(numbered(0, 10));
        ch.close();
    }
    assert_eq!(hub.retained_bytes(), 3 * per);
    // The fourth task's output pushes the first finished window out.
    chans[3].publish_lines(numbered(0, 10));
    assert_eq!(hub.retained_bytes(), 3 * per);
    assert_eq!(chans[0].lock().bytes, 0);
    assert_eq!(chans[1].lock().bytes, per);
    let (events, _) = drain(
        &mut chans[0]
            .subscribe(OutputQuery::new(OutputStart::After(0)))
            .unwrap(),
    );
    assert_eq!(events, [(9, OutputEvent::Lagged { skipped: 9 })]);
    // Freeing a task gives its bytes back and ends its readers.
    let mut reader = chans[1]
        .subscribe(OutputQuery::new(OutputStart::All))
        .unwrap();
    hub.free(&ids[1]);
    assert_eq!(hub.retained_bytes(), 2 * per);
    assert_eq!(drain(&mut reader), (vec![], true));
    assert_eq!(hub.len(), 3);
}

#[test]
fn live_only_keeps_nothing_without_readers() {
    let hub = hub(0, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    ch.publish_lines(numbered(0, 10));
    assert_eq!(hub.retained_bytes(), 0);
    let mut sub = ch.subscribe(OutputQuery::live()).unwrap();
    ch.publish_lines(numbered(10, 2));
    let (events, _) = drain(&mut sub);
    assert_eq!(events.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [10, 11]);
    drop(sub);
    assert_eq!(hub.retained_bytes(), 0);
}

#[test]
fn a_live_subscriber_joining_mid_run_gets_the_run_started_first() {
    let hub = hub(1 << 20, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    ch.publish(started(1));
    ch.publish_lines(numbered(0, 5));
    let mut sub = ch.subscribe(OutputQuery::live()).unwrap();
    ch.publish(finished(1));
    ch.close();
    let (events, ended) = drain(&mut sub);
    assert!(ended);
    assert_eq!(events, [(0, started(1)), (6, finished(1))]);
}

#[tokio::test]
async fn a_waiting_reader_is_woken_by_a_publish_and_by_close() {
    let hub = hub(1 << 20, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    let mut sub = ch.subscribe(OutputQuery::live()).unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(batch) = sub.recv_batch().await {
            got.extend(batch.into_events_with_offsets().map(|(o, _)| o));
        }
        got
    });
    tokio::task::yield_now().await;
    ch.publish_lines(numbered(0, 3));
    tokio::task::yield_now().await;
    ch.publish(finished(1));
    ch.close();
    assert_eq!(reader.await.unwrap(), [0, 1, 2, 3]);
}

#[test]
fn markers_are_charged_what_they_hold() {
    // A task restarting in a loop without output: 1000 markers stay within the bound.
    let bound = 64 * ITEM_OVERHEAD;
    let hub = hub(bound, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    for attempt in 0..500 {
        ch.publish(started(attempt));
        ch.publish(finished(attempt));
    }
    let window = ch.lock();
    assert_eq!(window.entries.len(), 64);
    assert_eq!(window.bytes, bound);
}

#[test]
fn finished_windows_are_compacted() {
    let hub = hub(1 << 20, 1 << 30);
    let ch = hub.create(&TaskId::generate());
    let mut batch = numbered(0, 100);
    let tail = batch.split_to(99);
    drop(tail);
    ch.publish_lines(batch);
    ch.close();
    let window = ch.lock();
    let Item::Lines(kept) = &window.entries[0].item else {
        panic!("lines expected");
    };
    assert_eq!(kept.lines().get(0).as_deref(), Some(&b"99"[..]));
    assert_eq!(kept.first_seq(), 99);
}

#[test]
fn freed_channels_do_not_stay_in_the_terminal_queue() {
    let hub = hub(1 << 20, 1 << 30);
    let ids: Vec<TaskId> = (0..1000).map(|_| TaskId::generate()).collect();
    for id in &ids {
        let ch = hub.create(id);
        ch.publish(started(1));
        ch.close();
    }
    assert_eq!(lock(&hub.shared.terminal).len(), 1000);
    for id in &ids {
        hub.free(id);
    }
    assert!(lock(&hub.shared.terminal).len() <= 1, "pruned");
    assert_eq!(hub.retained_bytes(), 0);
}
