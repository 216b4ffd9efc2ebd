//! Reads a child's stdout as lines, with a length cap, in batches.
//!
//! tokio-util's `LinesCodec` ends its stream after the first over-long line, and the CLI does
//! write lines of many megabytes (a tool result holding a whole file): here such a line is
//! dropped as it arrives, reported once, and framing goes on with the next line.
//!
//! The lines that are ready together come as one batch, copied out of the read buffer into one
//! allocation of exactly their size, which they share. A slice of the read buffer would keep
//! the whole 64 KiB buffer alive for as long as the line is kept, and lines are kept long after
//! they are read (an agent's event log): a finished agent would hold 68 KiB of heap for a few
//! hundred bytes of events. A copy per line would cost a malloc per line, a quarter of the
//! proxy's time on a stream of 100,000 short lines.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What is read at a time, and the read buffer's usual size.
const READ_BYTES: usize = 64 * 1024;
/// Less room than this left in the read buffer, and it is given room again before a read.
const MIN_ROOM: usize = 4 * 1024;
/// The most lines, and about the most bytes, one batch gathers.
const BATCH_LINES: usize = 1024;
const BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its `\n` (or `\r\n`).
    Line(Bytes),
    /// A line longer than the cap was dropped; `bytes` is its whole length.
    TooLong { bytes: u64 },
}

/// The lines of a reader, a batch at a time.
#[derive(Debug)]
pub struct LineReader<R> {
    source: R,
    framer: Framer,
    at_end: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(source: R, max_line_bytes: usize) -> Self {
        Self {
            source,
            framer: Framer::new(max_line_bytes),
            at_end: false,
        }
    }

    /// The lines that are ready, reading until there is at least one; None at the end. A line
    /// cut short by the end of the input is still a line. Cancel-safe: nothing read is lost
    /// when the future is dropped.
    pub async fn next_batch(&mut self) -> Option<io::Result<Vec<Frame>>> {
        loop {
            let batch = self.framer.take_ready();
            if !batch.is_empty() {
                return Some(Ok(batch));
            }
            if self.at_end {
                return None;
            }
            self.framer.make_room();
            match self.source.read_buf(&mut self.framer.buf).await {
                Ok(0) => {
                    self.at_end = true;
                    if let Some(last) = self.framer.finish() {
                        return Some(Ok(vec![last]));
                    }
                }
                Ok(_) => {
                    if let Err(err) = self.read_what_is_there() {
                        return Some(Err(err));
                    }
                }
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// Reads on, without waiting, into the room left in the read buffer: a flood then costs
    /// one batch per buffer rather than one per read, and the buffer does not grow for it.
    fn read_what_is_there(&mut self) -> io::Result<()> {
        while self.framer.room() >= MIN_ROOM {
            match self.source.read_buf(&mut self.framer.buf).now_or_never() {
                Some(Ok(0)) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
            }
        }
        Ok(())
    }
}

/// Finds the lines in what has been read.
#[derive(Debug)]
struct Framer {
    buf: BytesMut,
    max_line_bytes: usize,
    /// How far `buf` is known to hold no `\n`, so each byte is searched once.
    searched: usize,
    /// Bytes of an over-long line thrown away so far.
    discarding: Option<u64>,
}

/// A frame found in the buffer, before its line is copied out.
enum Found {
    /// A line at this offset of the buffer, this long (its `\r` left out).
    Line {
        at: usize,
        len: usize,
    },
    TooLong {
        bytes: u64,
    },
}

impl Framer {
    fn new(max_line_bytes: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(READ_BYTES),
            max_line_bytes,
            searched: 0,
            discarding: None,
        }
    }

    fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Room to read into: back to the usual size (the bytes already read move to the front of
    /// the same allocation), or more when a line being read fills it.
    fn make_room(&mut self) {
        if self.room() < MIN_ROOM {
            let len = self.buf.len();
            self.buf
                .reserve(READ_BYTES.saturating_sub(len).max(MIN_ROOM));
        }
    }

    /// The frames complete in the buffer, up to a batch's worth, their lines copied into one
    /// allocation; the buffer keeps the rest.
    fn take_ready(&mut self) -> Vec<Frame> {
        let mut found = Vec::new();
        let (mut at, mut bytes) = (0, 0);
        while found.len() < BATCH_LINES && bytes < BATCH_BYTES {
            let (frame, consumed) = self.step(at);
            at += consumed;
            match frame {
                Some(frame) => {
                    if let Found::Line { len, .. } = frame {
                        bytes += len;
                    }
                    found.push(frame);
                }
                None => break,
            }
        }
        let frames = self.copy_out(&found);
        self.buf.advance(at);
        self.give_back_long_line_room();
        frames
    }

    /// The next frame in the buffer from `at` on, and how much of the buffer it took; None
    /// when no frame is complete yet (the bytes of a line being dropped are taken all the same).
    fn step(&mut self, at: usize) -> (Option<Found>, usize) {
        let window = &self.buf[at..];
        let newline = memchr::memchr(b'\n', &window[self.searched..]).map(|i| self.searched + i);
        let found = match (newline, self.discarding) {
            (Some(end), Some(dropped)) => {
                self.discarding = None;
                (
                    Some(Found::TooLong {
                        bytes: dropped + end as u64,
                    }),
                    end + 1,
                )
            }
            (Some(end), None) if end <= self.max_line_bytes => {
                let len = if window[..end].ends_with(b"\r") {
                    end - 1
                } else {
                    end
                };
                (Some(Found::Line { at, len }), end + 1)
            }
            (Some(end), None) => (Some(Found::TooLong { bytes: end as u64 }), end + 1),
            (None, Some(dropped)) => {
                self.discarding = Some(dropped + window.len() as u64);
                (None, window.len())
            }
            (None, None) if window.len() > self.max_line_bytes => {
                self.discarding = Some(window.len() as u64);
                (None, window.len())
            }
            (None, None) => {
                self.searched = window.len();
                return (None, 0);
            }
        };
        self.searched = 0;
        found
    }

    fn copy_out(&self, found: &[Found]) -> Vec<Frame> {
        let total = found
            .iter()
            .map(|f| match f {
                Found::Line { len, .. } => *len,
                Found::TooLong { .. } => 0,
            })
            .sum();
        let mut owned = BytesMut::with_capacity(total);
        for frame in found {
            if let Found::Line { at, len } = frame {
                owned.extend_from_slice(&self.buf[*at..at + len]);
            }
        }
        let mut owned = owned.freeze();
        found
            .iter()
            .map(|frame| match frame {
                Found::Line { len, .. } => Frame::Line(owned.split_to(*len)),
                Found::TooLong { bytes } => Frame::TooLong { bytes: *bytes },
            })
            .collect()
    }

    /// The end of the input: the last line, cut short, or the line being dropped.
    fn finish(&mut self) -> Option<Frame> {
        self.searched = 0;
        if let Some(dropped) = self.discarding.take() {
            self.buf.clear();
            return Some(Frame::TooLong { bytes: dropped });
        }
        if self.buf.is_empty() {
            return None;
        }
        let len = self.buf.len() - usize::from(self.buf.ends_with(b"\r"));
        let frame = Frame::Line(Bytes::copy_from_slice(&self.buf[..len]));
        self.buf.clear();
        Some(frame)
    }

    /// The buffer grows to hold the longest line so far; once such a line has passed, the
    /// little left in it moves to a buffer of the usual size, so a run that once wrote a line
    /// of many megabytes does not hold that much for the rest of its life.
    fn give_back_long_line_room(&mut self) {
        if self.buf.capacity() > 16 * READ_BYTES && self.buf.len() <= READ_BYTES {
            let mut smaller = BytesMut::with_capacity(READ_BYTES);
            smaller.extend_from_slice(&self.buf);
            self.buf = smaller;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.buf.extend_from_slice(chunk);
            out.extend(framer.take_ready());
        }
        out.extend(framer.finish());
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        assert_eq!(
            frames(100, &[b"ab", b"c\nd", b"e\n"]),
            vec![line("abc"), line("de")]
        );
    }

    #[test]
    fn crlf_and_a_last_line_without_newline() {
        assert_eq!(frames(100, &[b"a\r\nb"]), vec![line("a"), line("b")]);
    }

    #[test]
    fn empty_lines_are_lines() {
        assert_eq!(frames(100, &[b"\n\n"]), vec![line(""), line("")]);
    }

    #[test]
    fn an_overlong_line_is_dropped_and_framing_goes_on() {
        let got = frames(4, &[b"ok\n12345", b"6789", b"0\nnext\n"]);
        assert_eq!(
            got,
            vec![line("ok"), Frame::TooLong { bytes: 10 }, line("next")]
        );
    }

    #[test]
    fn an_overlong_line_in_one_read_is_dropped() {
        let got = frames(4, &[b"123456\nab\n"]);
        assert_eq!(got, vec![Frame::TooLong { bytes: 6 }, line("ab")]);
    }

    #[test]
    fn an_overlong_last_line_without_newline_is_reported() {
        assert_eq!(frames(4, &[b"1234567"]), vec![Frame::TooLong { bytes: 7 }]);
    }

    #[test]
    fn a_line_of_exactly_the_cap_passes() {
        assert_eq!(frames(4, &[b"1234\n"]), vec![line("1234")]);
    }

    #[test]
    fn the_room_a_long_line_took_is_given_back() {
        let mut framer = Framer::new(1 << 30);
        framer.buf.extend_from_slice(&vec![b'x'; 4 << 20]);
        framer.buf.extend_from_slice(b"\nnext");
        let batch = framer.take_ready();
        assert!(matches!(&batch[..], [Frame::Line(l)] if l.len() == 4 << 20));
        assert_eq!(&framer.buf[..], b"next");
        assert!(
            framer.buf.capacity() <= READ_BYTES,
            "{}",
            framer.buf.capacity()
        );
    }

    #[test]
    fn a_batch_shares_one_allocation_of_its_size_and_the_read_buffer_stays_free() {
        let mut framer = Framer::new(100);
        framer.buf.extend_from_slice(b"ab\ncde\npartial");
        let before = framer.buf.as_ptr();
        let batch = framer.take_ready();
        assert_eq!(batch, vec![line("ab"), line("cde")]);
        let (Frame::Line(a), Frame::Line(b)) = (&batch[0], &batch[1]) else {
            unreachable!()
        };
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(2), "one allocation");
        assert!(
            !(before..before.wrapping_add(READ_BYTES)).contains(&a.as_ptr()),
            "not in the read buffer"
        );
        assert_eq!(&framer.buf[..], b"partial");
    }

    #[test]
    fn a_batch_stops_at_its_bounds_and_the_next_takes_the_rest() {
        let mut framer = Framer::new(1 << 20);
        for _ in 0..BATCH_LINES + 5 {
            framer.buf.extend_from_slice(b"x\n");
        }
        assert_eq!(framer.take_ready().len(), BATCH_LINES);
        assert_eq!(framer.take_ready().len(), 5);
    }

    #[test]
    fn reading_keeps_the_buffer_at_its_usual_size() {
        let mut framer = Framer::new(1 << 20);
        for _ in 0..100 {
            framer.make_room();
            let room = framer.room();
            // A read: lines and the start of the next one.
            framer.buf.extend_from_slice(&vec![b'x'; room - 10]);
            framer.buf.extend_from_slice(b"\npartial");
            assert_eq!(framer.take_ready().len(), 1);
            assert!(
                framer.buf.capacity() <= READ_BYTES,
                "{}",
                framer.buf.capacity()
            );
        }
    }

    #[test]
    fn discarding_keeps_the_buffer_small() {
        let mut framer = Framer::new(8);
        for _ in 0..1000 {
            framer.buf.extend_from_slice(&[b'x'; 64]);
            assert!(framer.take_ready().is_empty());
            assert!(framer.buf.len() <= 64);
        }
    }

    #[tokio::test]
    async fn a_reader_gives_batches_until_the_end() {
        let input: &[u8] = b"one\ntwo\nthree";
        let mut reader = LineReader::new(input, 100);
        let mut all = Vec::new();
        while let Some(batch) = reader.next_batch().await {
            all.extend(batch.unwrap());
        }
        assert_eq!(all, vec![line("one"), line("two"), line("three")]);
    }
}
