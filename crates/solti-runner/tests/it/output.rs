use std::sync::{Arc, Mutex};

use bytes::Bytes;
use solti_model::{OutputEvent, OutputStream, TaskId};
use solti_runner::{LineBatch, Lines, OutputPublisher, OutputTarget};

#[derive(Default)]
struct Collect(Mutex<Vec<OutputEvent>>);

impl OutputTarget for Collect {
    fn publish(&self, event: OutputEvent) {
        self.0.lock().unwrap().push(event);
    }
}

#[test]
fn sinks_number_lines_per_stream_and_attempt() {
    let target = Arc::new(Collect::default());
    let publisher = OutputPublisher::new(TaskId::generate(), target.clone());
    let sink = publisher.sink(1);
    sink.stdout_line(Bytes::from_static(b"a"));
    sink.stderr_line(Bytes::from_static(b"b"));
    let clone = sink.clone();
    clone.stdout_line(Bytes::from_static(b"c"));
    drop(sink);
    let second = publisher.sink(2);
    second.stdout_line(Bytes::from_static(b"d"));

    let got: Vec<_> = target
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            OutputEvent::Chunk {
                attempt,
                stream,
                seq,
                line,
                ..
            } => (*attempt, *stream, *seq, line.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, OutputStream::Stdout, 0, Bytes::from_static(b"a")),
            (1, OutputStream::Stderr, 0, Bytes::from_static(b"b")),
            (1, OutputStream::Stdout, 1, Bytes::from_static(b"c")),
            (2, OutputStream::Stdout, 0, Bytes::from_static(b"d")),
        ]
    );
}

#[test]
fn lines_refuse_spans_outside_their_buffer() {
    let mut lines = Lines::new(Bytes::from_static(b"abc\ndef\n"));
    assert!(lines.push(0..3));
    assert!(lines.push(4..7));
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 5..4;
    assert!(!lines.push(inverted), "inverted");
    assert!(!lines.push(4..9), "past the end");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines.line_bytes(), 6);
    assert_eq!(lines.get(1), Some(Bytes::from_static(b"def")));
    assert_eq!(lines.get(2), None);
    let head = lines.split_to(1);
    assert_eq!(head.slices().collect::<Vec<_>>(), [&b"abc"[..]]);
    assert_eq!(lines.slices().collect::<Vec<_>>(), [&b"def"[..]]);
    assert_eq!((head.line_bytes(), lines.line_bytes()), (3, 3));
    assert_eq!(format!("{head:?}"), "Lines { lines: 1, line_bytes: 3 }");
}

#[test]
fn published_lines_are_numbered_like_single_lines() {
    let target = Arc::new(Collect::default());
    let publisher = OutputPublisher::new(TaskId::generate(), target.clone());
    let sink = publisher.sink(3);
    sink.stdout_line(Bytes::from_static(b"first"));
    let mut lines = Lines::new(Bytes::from_static(b"x\ny\r\nz"));
    lines.push(0..1);
    lines.push(2..3);
    lines.push(5..6);
    // The default `publish_lines` hands the target one event per line.
    sink.publish_lines(OutputStream::Stdout, lines);
    sink.publish_lines(OutputStream::Stdout, Lines::default());

    let got: Vec<_> = target
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            OutputEvent::Chunk {
                attempt, seq, line, ..
            } => (*attempt, *seq, line.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (3, 0, Bytes::from_static(b"first")),
            (3, 1, Bytes::from_static(b"x")),
            (3, 2, Bytes::from_static(b"y")),
            (3, 3, Bytes::from_static(b"z")),
        ]
    );
}

#[test]
fn line_batches_split_and_keep_their_numbering() {
    let mut lines = Lines::new(Bytes::from_static(b"a\nb\nc\n"));
    for i in 0..3 {
        lines.push(i * 2..i * 2 + 1);
    }
    let mut batch = LineBatch::new(1, OutputStream::Stderr, 10, 99, lines);
    let head = batch.split_to(2);
    assert_eq!((head.first_seq(), head.len()), (10, 2));
    assert_eq!((batch.first_seq(), batch.len()), (12, 1));
    assert_eq!(
        batch.event(0),
        Some(OutputEvent::Chunk {
            attempt: 1,
            stream: OutputStream::Stderr,
            seq: 12,
            ts: 99,
            line: Bytes::from_static(b"c"),
        })
    );
    let seqs: Vec<u64> = head
        .into_events()
        .map(|e| match e {
            OutputEvent::Chunk { seq, .. } => seq,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(seqs, [10, 11]);
}
