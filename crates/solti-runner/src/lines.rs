//! Lines read together, carried as spans of one shared buffer.

use std::{fmt, ops::Range};

use bytes::Bytes;
use solti_model::{OutputEvent, OutputStream};

/// Several lines that live in one buffer: each line is a span of it.
///
/// A runner that reads its source in blocks builds one `Lines` per block: the block, frozen
/// into [`Bytes`], and the span of each line in it (without its line ending). Publishing
/// them with [`OutputSink::publish_lines`](crate::OutputSink::publish_lines) costs no
/// allocation and no reference-count update per line; a reader slices each line out of the
/// buffer when it takes it ([`get`](Self::get)), and the line still shares the buffer.
///
/// ```
/// use bytes::Bytes;
/// use solti_runner::Lines;
///
/// let block = Bytes::from_static(b"one\ntwo\r\n");
/// let mut lines = Lines::with_capacity(block, 2);
/// assert!(lines.push(0..3));
/// assert!(lines.push(4..7));
/// assert!(!lines.push(7..20), "outside the buffer: refused");
/// assert_eq!(lines.get(1).as_deref(), Some(&b"two"[..]));
/// assert_eq!(lines.line_bytes(), 6);
/// ```
#[derive(Clone, Default)]
pub struct Lines {
    buf: Bytes,
    /// `(start, end)` of each line in `buf`; `start <= end <= buf.len()`.
    spans: Vec<(u32, u32)>,
    /// Sum of the span lengths.
    bytes: usize,
}

impl Lines {
    /// No lines yet, over `buf`.
    #[must_use]
    pub fn new(buf: Bytes) -> Self {
        Self::with_capacity(buf, 0)
    }

    /// No lines yet, over `buf`, with room for `lines` spans.
    #[must_use]
    pub fn with_capacity(buf: Bytes, lines: usize) -> Self {
        Self {
            buf,
            spans: Vec::with_capacity(lines),
            bytes: 0,
        }
    }

    /// Lines given as `(start, end)` byte offsets into `buf`, in order; `None` when a span
    /// is inverted or reaches outside the buffer. The cheapest way to build many lines at
    /// once (one check per span, no per-line call).
    #[must_use]
    pub fn from_spans(buf: Bytes, spans: Vec<(u32, u32)>) -> Option<Self> {
        let len = buf.len();
        let mut bytes = 0;
        for &(start, end) in &spans {
            if start > end || end as usize > len {
                return None;
            }
            bytes += (end - start) as usize;
        }
        Some(Self { buf, spans, bytes })
    }

    /// One line: all of `line`.
    #[must_use]
    pub fn single(line: Bytes) -> Self {
        let mut lines = Self::with_capacity(line, 1);
        let len = lines.buf.len();
        lines.push(0..len);
        lines
    }

    /// Appends the line `buf[range]`. Returns `false` and appends nothing when the range is
    /// not inside the buffer (or reaches past 4 GiB).
    pub fn push(&mut self, range: Range<usize>) -> bool {
        let (Ok(start), Ok(end)) = (u32::try_from(range.start), u32::try_from(range.end)) else {
            return false;
        };
        if start > end || range.end > self.buf.len() {
            return false;
        }
        self.spans.push((start, end));
        self.bytes += range.end - range.start;
        true
    }

    /// How many lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no lines.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Line `i` (sharing the buffer), if there is one.
    #[must_use]
    pub fn get(&self, i: usize) -> Option<Bytes> {
        let &(start, end) = self.spans.get(i)?;
        Some(self.buf.slice(start as usize..end as usize))
    }

    /// The length of line `i` in bytes, if there is one.
    #[must_use]
    pub fn line_len(&self, i: usize) -> Option<usize> {
        self.spans
            .get(i)
            .map(|&(start, end)| (end - start) as usize)
    }

    /// The bytes of all lines together (line endings and bytes between spans not counted).
    #[must_use]
    pub fn line_bytes(&self) -> usize {
        self.bytes
    }

    /// The lines, in order, each sharing the buffer.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Bytes> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| self.buf.slice(start as usize..end as usize))
    }

    /// The lines, in order, borrowed: no reference count is touched (the cheapest way to
    /// read them, e.g. to encode them).
    pub fn slices(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| &self.buf[start as usize..end as usize])
    }

    /// Splits off the first `n` lines (all of them when `n >= len`); `self` keeps the rest.
    /// Both halves share the buffer.
    #[must_use]
    pub fn split_to(&mut self, n: usize) -> Self {
        let n = n.min(self.spans.len());
        let rest = self.spans.split_off(n);
        let head = std::mem::replace(&mut self.spans, rest);
        let head_bytes = if self.spans.is_empty() {
            self.bytes
        } else {
            head.iter().map(|&(s, e)| (e - s) as usize).sum()
        };
        self.bytes -= head_bytes;
        Self {
            buf: self.buf.clone(),
            spans: head,
            bytes: head_bytes,
        }
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Output is task data: counts only.
        f.debug_struct("Lines")
            .field("lines", &self.spans.len())
            .field("line_bytes", &self.bytes)
            .finish()
    }
}

/// Lines published together on one stream of one attempt: what
/// [`OutputTarget::publish_lines`](crate::OutputTarget::publish_lines) receives.
///
/// Line `i` is the event `Chunk { attempt, stream, seq: first_seq + i, ts, line }`;
/// [`event`](Self::event) and [`into_events`](Self::into_events) build those events.
#[derive(Clone, Debug)]
pub struct LineBatch {
    attempt: u32,
    stream: OutputStream,
    first_seq: u64,
    ts: i64,
    lines: Lines,
}

impl LineBatch {
    /// A batch of `lines` of `stream` in `attempt`, numbered from `first_seq`, all stamped
    /// `ts` (Unix milliseconds).
    #[must_use]
    pub fn new(attempt: u32, stream: OutputStream, first_seq: u64, ts: i64, lines: Lines) -> Self {
        Self {
            attempt,
            stream,
            first_seq,
            ts,
            lines,
        }
    }

    /// The attempt the lines belong to.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The stream the lines were read from.
    #[must_use]
    pub fn stream(&self) -> OutputStream {
        self.stream
    }

    /// The sequence number of the first line.
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// When the lines were read (Unix milliseconds).
    #[must_use]
    pub fn ts(&self) -> i64 {
        self.ts
    }

    /// The lines.
    #[must_use]
    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    /// How many lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are no lines.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Line `i` as its output event.
    #[must_use]
    pub fn event(&self, i: usize) -> Option<OutputEvent> {
        let line = self.lines.get(i)?;
        Some(OutputEvent::Chunk {
            attempt: self.attempt,
            stream: self.stream,
            seq: self.first_seq + i as u64,
            ts: self.ts,
            line,
        })
    }

    /// Splits off the first `n` lines (all of them when `n >= len`); `self` keeps the rest,
    /// numbered on from there.
    #[must_use]
    pub fn split_to(&mut self, n: usize) -> Self {
        let head = self.lines.split_to(n);
        let first_seq = self.first_seq;
        self.first_seq += head.len() as u64;
        Self {
            lines: head,
            first_seq,
            ..*self
        }
    }

    /// The lines as output events, in order.
    pub fn into_events(self) -> impl Iterator<Item = OutputEvent> {
        (0..self.len()).filter_map(move |i| self.event(i))
    }
}
