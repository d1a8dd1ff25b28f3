//! Reading one output pipe into the attempt's `OutputSink` and tracing.

use std::{io, time::Duration};

use solti_model::{OutputStream, TaskId};
use solti_runner::OutputSink;
use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::lines::{Escaped, LineSplitter, Piece};

/// Reads `pipe` to EOF, publishing each line to `sink` and as a DEBUG tracing event.
///
/// Publishing never blocks, so a live subscriber keeps up only if it gets to run: lines
/// are published in slices of [`OutputSink::batch_hint`] lines (one timestamp per slice,
/// one slot of the supervisor's output hub, spans of the read buffer: no copy) with a
/// yield after each. While this task yields, the pipe fills and the child blocks in `write`,
/// which is the backpressure a fast producer should feel. When the output target reports a
/// backlogged reader ([`OutputSink::backlogged`]) the pump also waits for it (woken by the
/// hub when the reader takes a batch, [`OutputSink::readers_caught_up`]), up to
/// [`STALL_LIMIT`] per slice; a reader that makes no progress for that long is treated as
/// stalled and no longer waited for (it lags instead) until the backlog clears.
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
    let mut reader_stalled = false;
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
        for piece in pieces.drain(..) {
            if tracing::enabled!(tracing::Level::DEBUG) {
                log_piece(&piece, stream, &sink, &task_id);
            }
            match piece {
                Piece::Lines(lines) => sink.publish_lines(stream, lines),
                Piece::Cut(line) => sink.line(stream, line),
            }
            tokio::task::yield_now().await;
            pace(&sink, &mut reader_stalled).await;
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

/// Waits while a live reader is backlogged, unless it stalled.
///
/// A reader that keeps up on another core usually takes its next batch within a few
/// microseconds, so the pump first yields a bounded number of times; then it sleeps until
/// the hub wakes it because the reader took a batch ([`OutputSink::readers_caught_up`]). For
/// a target without that wake-up (its wait resolves at once) it sleeps in 1 ms steps.
async fn pace(sink: &OutputSink, reader_stalled: &mut bool) {
    if !sink.backlogged() {
        *reader_stalled = false;
        return;
    }
    if *reader_stalled {
        return;
    }
    for _ in 0..PACE_SPINS {
        tokio::task::yield_now().await;
        if !sink.backlogged() {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + STALL_LIMIT;
    while sink.backlogged() {
        if tokio::time::Instant::now() >= deadline
            || tokio::time::timeout_at(deadline, sink.readers_caught_up())
                .await
                .is_err()
        {
            *reader_stalled = true;
            return;
        }
        if sink.backlogged() {
            tokio::time::sleep(PACE_SLEEP).await;
        }
    }
}

/// How long one slice waits for a backlogged reader before it counts as stalled.
const STALL_LIMIT: Duration = Duration::from_millis(200);
/// Yields before a backlogged pump sleeps.
const PACE_SPINS: u32 = 256;
/// Sleep steps while backlogged for a target without a wake-up.
const PACE_SLEEP: Duration = Duration::from_millis(1);
