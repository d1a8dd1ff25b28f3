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
/// backlogged reader ([`OutputSink::backlogged`]) the pump also waits for it, up to
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
async fn pace(sink: &OutputSink, reader_stalled: &mut bool) {
    if !sink.backlogged() {
        *reader_stalled = false;
        return;
    }
    if *reader_stalled {
        return;
    }
    let mut waited = Duration::ZERO;
    let mut spins = 0u32;
    while sink.backlogged() {
        if waited >= STALL_LIMIT {
            *reader_stalled = true;
            return;
        }
        if spins < PACE_SPINS {
            spins += 1;
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(PACE_SLEEP).await;
            waited += PACE_SLEEP;
        }
    }
}

/// How long one slice waits for a backlogged reader before it counts as stalled.
const STALL_LIMIT: Duration = Duration::from_millis(200);
const PACE_SLEEP: Duration = Duration::from_millis(1);
/// Yields before a backlogged pump starts sleeping: a reader that keeps up drains half its
/// buffer well within this many yields, much sooner than the timer's 1 ms granularity.
const PACE_SPINS: u32 = 1024;
