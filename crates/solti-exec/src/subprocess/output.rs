//! Reading one output pipe into the attempt's `OutputSink` and tracing.

use std::io;

use solti_model::{OutputStream, TaskId};
use solti_runner::OutputSink;
use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::lines::{Escaped, LineSplitter, Piece};

/// Reads `pipe` to EOF, publishing each line to `sink` and as a DEBUG tracing event.
///
/// Publishing never blocks and never waits for a reader: the output hub keeps a bounded
/// window of recent output, and a reader that falls behind it gets `Lagged`. Lines are
/// published in slices of at most [`OutputSink::batch_hint`] lines (one timestamp per
/// slice, spans of the read buffer: no copy), with a yield after each read so the pump
/// shares its worker fairly. The pipe is read as fast as the child writes it; no reader,
/// stalled or slow, changes when the task finishes.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut pipe: R,
    stream: OutputStream,
    sink: OutputSink,
    max_line_bytes: usize,
    task_id: TaskId,
) {
    let mut splitter = LineSplitter::new(max_line_bytes, sink.batch_hint());
    let mut pieces = Vec::new();
    let mut eof = false;
    while !eof {
        match pipe.read_buf(splitter.input()).await {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(task_id = %task_id, attempt = sink.attempt(), stream = stream.as_str(),
                    error = %e, "reading task output failed");
                eof = true;
            }
        }
        if eof {
            splitter.finish(&mut |piece| pieces.push(piece));
        } else {
            splitter.drain(&mut |piece| pieces.push(piece));
        }
        let published = !pieces.is_empty();
        for piece in pieces.drain(..) {
            if tracing::enabled!(tracing::Level::DEBUG) {
                log_piece(&piece, stream, &sink, &task_id);
            }
            match piece {
                Piece::Lines(lines) => sink.publish_lines(stream, lines),
                Piece::Cut(line) => sink.line(stream, line),
            }
        }
        if published {
            tokio::task::yield_now().await;
        }
    }
}

/// Emits each line of `piece` as a DEBUG event, control characters escaped.
fn log_piece(piece: &Piece, stream: OutputStream, sink: &OutputSink, task_id: &TaskId) {
    let log = |line: &[u8]| {
        tracing::debug!(task_id = %task_id, attempt = sink.attempt(), stream = stream.as_str(),
            line = %Escaped(line), "task output");
    };
    match piece {
        Piece::Lines(lines) => lines.iter().for_each(|line| log(&line)),
        Piece::Cut(line) => log(line),
    }
}
