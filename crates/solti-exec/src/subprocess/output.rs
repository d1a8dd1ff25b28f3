//! Reading one output pipe into the attempt's `OutputSink` and tracing.

use std::{io, time::Duration};

use solti_model::{OutputStream, TaskId};
use solti_runner::OutputSink;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio_util::sync::CancellationToken;

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
/// stalled and no longer waited for (it lags instead) until the backlog clears. Once
/// `unpace` is cancelled (the attempt's drain time after the process tree died is up)
/// nobody is waited for: what is left in the pipe is published at once, so the end of the
/// output is never cut off for every subscriber because one was slow.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut pipe: R,
    stream: OutputStream,
    sink: OutputSink,
    max_line_bytes: usize,
    task_id: TaskId,
    unpace: CancellationToken,
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
            pace(&sink, &mut reader_stalled, &unpace).await;
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
async fn pace(sink: &OutputSink, reader_stalled: &mut bool, unpace: &CancellationToken) {
    if unpace.is_cancelled() {
        return;
    }
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
        let caught_up = tokio::select! {
            caught_up = tokio::time::timeout_at(deadline, sink.readers_caught_up()) => caught_up.is_ok(),
            // The process is gone: publish the rest without waiting.
            () = unpace.cancelled() => return,
        };
        if !caught_up {
            *reader_stalled = true;
            return;
        }
        if !sink.backlogged() {
            return;
        }
        // Still behind although the wait resolved: a target without a wake-up.
        if tokio::time::Instant::now() >= deadline {
            *reader_stalled = true;
            return;
        }
        tokio::time::sleep(PACE_SLEEP).await;
    }
}

/// How long one slice waits for a backlogged reader before it counts as stalled.
const STALL_LIMIT: Duration = Duration::from_millis(200);
/// Yields before a backlogged pump sleeps.
const PACE_SPINS: u32 = 256;
/// Sleep steps while backlogged for a target without a wake-up.
const PACE_SLEEP: Duration = Duration::from_millis(1);

#[cfg(test)]
mod tests {
    use std::{future::Future, pin::Pin, sync::Arc};

    use solti_model::OutputEvent;
    use solti_runner::{OutputPublisher, OutputTarget};

    use super::*;

    /// A reader that is always behind and never catches up.
    struct Stuck;

    impl OutputTarget for Stuck {
        fn publish(&self, _event: OutputEvent) {}
        fn backlogged(&self) -> bool {
            true
        }
        fn readers_caught_up(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_stops_once_the_process_is_gone() {
        let sink = OutputPublisher::new(TaskId::generate(), Arc::new(Stuck)).sink();
        let unpace = CancellationToken::new();
        let mut stalled = false;
        // While the process runs, a reader that makes no progress is waited for, bounded.
        let started = tokio::time::Instant::now();
        pace(&sink, &mut stalled, &unpace).await;
        assert!(stalled);
        assert_eq!(started.elapsed(), STALL_LIMIT);
        // Once the tree is dead, not at all.
        stalled = false;
        unpace.cancel();
        let started = tokio::time::Instant::now();
        pace(&sink, &mut stalled, &unpace).await;
        assert!(!stalled);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
