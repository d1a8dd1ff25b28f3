//! Splitting a byte stream into output lines.
//!
//! Rules (also in the crate docs): LF ends a line; a CR right before the LF is dropped;
//! bytes are kept as they are (invalid UTF-8 included); a line longer than the bound is
//! cut to its first `max` bytes followed by [`CUT_MARKER`], and the rest of it, up to and
//! including the next LF, is skipped. A final line without LF is delivered at end of input.

use std::fmt;

use bytes::{Buf as _, Bytes, BytesMut};
use memchr::{memchr, memrchr};
use solti_runner::Lines;

/// Appended to a line that was cut at the bound.
pub const CUT_MARKER: &[u8] = b" [solti: line cut]";

/// What the splitter emits, in order.
#[derive(Debug)]
pub(crate) enum Piece {
    /// Up to the splitter's slice size of complete lines, as spans of one frozen part of
    /// the read buffer (no copy, no per-line reference count).
    Lines(Lines),
    /// A line cut at the bound, with [`CUT_MARKER`] appended (its own allocation).
    Cut(Bytes),
}

/// Incremental line splitter with a per-line byte bound.
///
/// Complete lines are handed out as spans of the input buffer: the bytes holding up to
/// `slice` lines are split off (`BytesMut::split_to`) and frozen, so publishing a line
/// neither copies it nor touches a reference count.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max: usize,
    slice: usize,
    buf: BytesMut,
    /// Bytes of `buf` already known to hold no LF.
    scanned: usize,
    /// Inside the skipped tail of a cut line.
    skipping: bool,
    /// Scratch: LF positions of the bytes being split.
    lfs: Vec<usize>,
}

impl LineSplitter {
    /// A splitter cutting lines longer than `max` bytes (`max >= 1`) and emitting at most
    /// `slice` lines per [`Piece::Lines`] (`slice >= 1`).
    pub(crate) fn new(max: usize, slice: usize) -> Self {
        Self {
            max: max.max(1),
            slice: slice.max(1),
            buf: BytesMut::new(),
            scanned: 0,
            skipping: false,
            lfs: Vec::new(),
        }
    }

    /// The input buffer: append bytes to it (e.g. with `read_buf`), then call [`Self::drain`].
    /// Keeps at least `READ_RESERVE` bytes of spare capacity.
    pub(crate) fn input(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 4 {
            self.buf.reserve(READ_RESERVE);
        }
        &mut self.buf
    }

    /// Feeds `data` and emits every complete line.
    #[cfg(test)]
    pub(crate) fn push(&mut self, data: &[u8], emit: &mut impl FnMut(Piece)) {
        self.input().extend_from_slice(data);
        self.drain(emit);
    }

    /// Emits every complete line in the buffer; keeps the partial tail (bounded).
    pub(crate) fn drain(&mut self, emit: &mut impl FnMut(Piece)) {
        if self.skipping {
            let Some(i) = memchr(b'\n', &self.buf) else {
                self.buf.clear();
                return;
            };
            self.buf.advance(i + 1);
            self.skipping = false;
            self.scanned = 0;
        }
        // Everything up to the last LF is complete lines.
        let Some(j) = memrchr(b'\n', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            self.check_partial(emit);
            return;
        };
        let limit = self.scanned + j + 1;
        // LFs are found a window of about one piece at a time (so the scratch list stays
        // small), and each window's lines are split off before the next is searched.
        // Offsets are in the coordinates of `buf` before the walk; `base` is how much of
        // it was split off already, `start` where the next line starts, `scan` how far
        // LFs were searched.
        let mut lfs = std::mem::take(&mut self.lfs);
        let mut base = 0;
        let mut start = 0;
        let mut scan = 0;
        let mut spans = Vec::new();
        while scan < limit {
            lfs.clear();
            let window = scan;
            scan += find_lfs(&self.buf[scan - base..limit - base], self.slice, &mut lfs);
            for (n, &rel) in lfs.iter().enumerate() {
                let lf = window + rel;
                let mut end = lf;
                if end > start && self.buf[end - 1 - base] == b'\r' {
                    end -= 1;
                }
                if end - start > self.max {
                    // Lines before this one go out first, then the cut line on its own.
                    self.emit_lines(start - base, &mut spans, emit);
                    let mut head = self.buf.split_to(lf + 1 - start);
                    head.truncate(self.max);
                    emit(Piece::Cut(with_marker(head)));
                    base = lf + 1;
                } else {
                    if spans.capacity() == 0 {
                        spans.reserve_exact(self.slice.min(lfs.len() - n));
                    }
                    spans.push((offset(start - base), offset(end - base)));
                    if spans.len() == self.slice {
                        self.emit_lines(lf + 1 - base, &mut spans, emit);
                        base = lf + 1;
                    }
                }
                start = lf + 1;
            }
        }
        self.emit_lines(start - base, &mut spans, emit);
        self.lfs = lfs;
        // The rest is a partial line.
        self.scanned = self.buf.len();
        self.check_partial(emit);
    }

    /// Splits the first `len` bytes off the buffer as one piece holding `spans` (offsets
    /// into those bytes); leaves `spans` empty without capacity.
    fn emit_lines(
        &mut self,
        len: usize,
        spans: &mut Vec<(u32, u32)>,
        emit: &mut impl FnMut(Piece),
    ) {
        if spans.is_empty() {
            return;
        }
        let spans = std::mem::take(spans);
        let count = spans.len();
        match Lines::from_spans(self.buf.split_to(len).freeze(), spans) {
            Some(lines) => emit(Piece::Lines(lines)),
            // Unreachable: every span ends within the `len` bytes split off.
            None => tracing::error!(lines = count, "output lines lost: span outside its buffer"),
        }
    }

    /// Cuts the partial line (no LF yet) once it is over the bound.
    fn check_partial(&mut self, emit: &mut impl FnMut(Piece)) {
        // A line is over the bound once it has more than `max` bytes that cannot be a
        // trailing CR (the CR could still turn out to precede an LF).
        let len = self.buf.len();
        if len > self.max + 1 || (len == self.max + 1 && self.buf[len - 1] != b'\r') {
            let head = self.buf.split_to(self.max);
            emit(Piece::Cut(with_marker(head)));
            self.buf.clear();
            self.scanned = 0;
            self.skipping = true;
        }
    }

    /// End of input: emits the final line if it had no LF.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(Piece)) {
        self.drain(emit);
        if !self.skipping && !self.buf.is_empty() {
            let rest = self.buf.split();
            if rest.len() > self.max {
                let mut head = rest;
                head.truncate(self.max);
                emit(Piece::Cut(with_marker(head)));
            } else {
                emit(Piece::Lines(Lines::single(rest.freeze())));
            }
        }
        self.buf.clear();
        self.scanned = 0;
        self.skipping = false;
    }
}

/// Displays output bytes for logs: valid UTF-8 as is with control characters escaped
/// (`\n`, `\t`, `\u{1b}`, …), invalid bytes as `\xNN`. Nothing is allocated up front, so a
/// disabled tracing level costs nothing.
pub(crate) struct Escaped<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    f.write_char(c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Appends the positions of the LFs in `bytes` to `out`, in order, stopping once at least
/// `max` were found; returns how many bytes were searched (all of `bytes`, or up to the end
/// of the eight-byte word holding the `max`-th LF: every LF in those bytes is in `out`).
///
/// Output lines are short, so LFs are dense: testing eight bytes at a time and walking the
/// matches of each word beats restarting a SIMD search after every match (`memchr_iter`).
fn find_lfs(bytes: &[u8], max: usize, out: &mut Vec<usize>) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const LF: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let found = out.len();
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w) ^ LF;
        // High bit set exactly in the bytes of `x` that are zero (the LFs); no carry
        // crosses a byte, so there are no false matches.
        let mut zeros = !(((x & LOW7) + LOW7) | x | LOW7);
        while zeros != 0 {
            out.push(at + (zeros.trailing_zeros() / 8) as usize);
            zeros &= zeros - 1;
        }
        at += 8;
        if out.len() - found >= max {
            return at;
        }
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b'\n' {
            out.push(at + i);
        }
    }
    bytes.len()
}

/// A span offset; pieces are far below 4 GiB (a read adds at most `READ_RESERVE` bytes to
/// a partial line of at most the line bound).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn with_marker(mut head: BytesMut) -> Bytes {
    head.extend_from_slice(CUT_MARKER);
    head.freeze()
}

/// Spare capacity kept for each read.
const READ_RESERVE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        split_sliced(max, 3, chunks).into_iter().flatten().collect()
    }

    /// The lines of each piece.
    fn split_sliced(max: usize, slice: usize, chunks: &[&[u8]]) -> Vec<Vec<Vec<u8>>> {
        let mut s = LineSplitter::new(max, slice);
        let mut out = Vec::new();
        let mut collect = |p: Piece| {
            out.push(match p {
                Piece::Lines(lines) => lines.iter().map(|l| l.to_vec()).collect(),
                Piece::Cut(line) => vec![line.to_vec()],
            });
        };
        for c in chunks {
            s.push(c, &mut collect);
        }
        s.finish(&mut collect);
        out
    }

    fn cut(prefix: &[u8]) -> Vec<u8> {
        [prefix, CUT_MARKER].concat()
    }

    #[test]
    fn lf_crlf_and_final_partial_line() {
        assert_eq!(
            split(100, &[b"a\nb\r\nc"]),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            split(100, &[b"a\r", b"\nb\r"]),
            vec![b"a".to_vec(), b"b\r".to_vec()]
        );
        assert_eq!(split(100, &[b"\n\n"]), vec![Vec::new(), Vec::new()]);
        assert_eq!(split(100, &[b"x\ry\n"]), vec![b"x\ry".to_vec()]);
        assert!(split(100, &[b""]).is_empty());
    }

    #[test]
    fn invalid_utf8_is_kept() {
        assert_eq!(
            split(100, &[b"\xff\xfe\x00ok\n"]),
            vec![b"\xff\xfe\x00ok".to_vec()]
        );
    }

    #[test]
    fn long_lines_are_cut_marked_and_skipped() {
        assert_eq!(
            split(4, &[b"abcdefgh\nxy\n"]),
            vec![cut(b"abcd"), b"xy".to_vec()]
        );
        // Spread over reads: the tail is skipped up to the LF.
        assert_eq!(
            split(4, &[b"abc", b"defg", b"hij", b"k\nxy"]),
            vec![cut(b"abcd"), b"xy".to_vec()]
        );
        // Exactly at the bound, with CRLF split over two reads: not cut.
        assert_eq!(split(4, &[b"abcd\r", b"\n"]), vec![b"abcd".to_vec()]);
        assert_eq!(split(4, &[b"abcd"]), vec![b"abcd".to_vec()]);
        assert_eq!(split(4, &[b"abcde"]), vec![cut(b"abcd")]);
        assert_eq!(split(4, &[b"abcd\r"]), vec![cut(b"abcd")]);
    }

    #[test]
    fn pieces_hold_at_most_a_slice_and_cut_lines_travel_alone() {
        let v = |l: &[&[u8]]| l.iter().map(|x| x.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            split_sliced(4, 2, &[b"a\nb\nc\nd\ne\n"]),
            vec![v(&[b"a", b"b"]), v(&[b"c", b"d"]), v(&[b"e"])]
        );
        assert_eq!(
            split_sliced(4, 8, &[b"a\nb\nlonger-than-4\r\nc\nd"]),
            vec![v(&[b"a", b"b"]), vec![cut(b"long")], v(&[b"c"]), v(&[b"d"])]
        );
    }

    #[test]
    fn lf_scratch_is_not_kept_at_a_read_size() {
        let mut s = LineSplitter::new(1024, 128);
        let mut lines = 0;
        s.push(&vec![b'\n'; 64 * 1024], &mut |p| {
            if let Piece::Lines(l) = p {
                lines += l.len();
            }
        });
        assert_eq!(lines, 64 * 1024);
        assert!(
            s.lfs.capacity() <= 1024,
            "kept {} offsets",
            s.lfs.capacity()
        );
    }

    proptest! {
        /// Searching in windows of at most `max` LFs finds them all.
        #[test]
        fn windowed_lf_search_finds_every_lf(data in proptest::collection::vec(prop_oneof![
            Just(b'\n'), any::<u8>()], 0..200), max in 1usize..20) {
            let mut got = Vec::new();
            let mut at = 0;
            while at < data.len() {
                let mut window = Vec::new();
                let searched = find_lfs(&data[at..], max, &mut window);
                prop_assert!(searched > 0);
                got.extend(window.into_iter().map(|i| at + i));
                at += searched;
            }
            let want: Vec<usize> = data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
            prop_assert_eq!(got, want);
        }

        /// The word-at-a-time LF search agrees with a byte loop.
        #[test]
        fn lf_search_matches_a_byte_loop(data in proptest::collection::vec(prop_oneof![
            Just(b'\n'), Just(0x8a_u8), Just(0x0b_u8), Just(0x09_u8), any::<u8>()], 0..200)) {
            let mut got = Vec::new();
            assert_eq!(find_lfs(&data, usize::MAX, &mut got), data.len());
            let want: Vec<usize> = data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn escaped_for_logs() {
        assert_eq!(
            Escaped(b"a\tb\x1b[0m\xffz").to_string(),
            "a\\tb\\u{1b}[0m\\xffz"
        );
        assert_eq!(Escaped("héllo".as_bytes()).to_string(), "héllo");
    }

    proptest! {
        /// Splitting then joining with LF gives the input minus CRs before LF, for any
        /// chunking, as long as no line reaches the bound.
        #[test]
        fn split_join_roundtrip(data in proptest::collection::vec(prop_oneof![
            Just(b'\n'), Just(b'\r'), any::<u8>()], 0..400), cuts in proptest::collection::vec(0usize..400, 0..6)) {
            let max = 1000;
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            bounds.push(0);
            bounds.push(data.len());
            bounds.sort_unstable();
            let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            let lines = split(max, &chunks);
            let mut joined = lines.join(&b'\n');
            if data.last() == Some(&b'\n') {
                joined.push(b'\n');
            }
            let mut expected = Vec::new();
            for (i, &b) in data.iter().enumerate() {
                if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
                    continue;
                }
                expected.push(b);
            }
            prop_assert_eq!(joined, expected);
        }

        /// Every emitted line respects the bound (plus the marker).
        #[test]
        fn lines_are_bounded(data in proptest::collection::vec(any::<u8>(), 0..600), max in 1usize..64) {
            for line in split(max, &[&data]) {
                prop_assert!(line.len() <= max + CUT_MARKER.len());
            }
        }
    }
}
