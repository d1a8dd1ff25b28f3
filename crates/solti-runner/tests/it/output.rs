use std::sync::{Arc, Mutex};

use bytes::Bytes;
use solti_model::{OutputEvent, OutputStream, TaskId};
use solti_runner::{OutputPublisher, OutputTarget};

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
    publisher.set_attempt(1);
    let sink = publisher.sink();
    sink.stdout_line(Bytes::from_static(b"a"));
    sink.stderr_line(Bytes::from_static(b"b"));
    let clone = sink.clone();
    clone.stdout_line(Bytes::from_static(b"c"));
    drop(sink);
    publisher.set_attempt(2);
    let second = publisher.sink();
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
