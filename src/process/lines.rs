//! Frames a child's stdout into lines with a length cap.
//!
//! tokio-util's `LinesCodec` ends its stream after the first over-long line, and the CLI does
//! write lines of many megabytes (a tool result holding a whole file): here such a line is
//! dropped as it arrives, reported once, and framing goes on with the next line.
//!
//! Each line is copied out of the read buffer into an allocation of its own. A slice of the
//! buffer would be cheaper to make, but it keeps the whole 64 KiB buffer alive for as long as
//! the line is kept, and lines are kept long after they are read (an agent's event log): a
//! finished agent would hold 68 KiB of heap for a few hundred bytes of events.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its `\n` (or `\r\n`).
    Line(Bytes),
    /// A line longer than the cap was dropped; `bytes` is its whole length.
    TooLong { bytes: u64 },
}

#[derive(Debug)]
pub struct LineFramer {
    max_line_bytes: usize,
    /// How far the buffer is known to hold no `\n`, so each byte is searched once.
    searched: usize,
    /// Bytes of an over-long line thrown away so far.
    discarding: Option<u64>,
}

impl LineFramer {
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes,
            searched: 0,
            discarding: None,
        }
    }

    fn line(raw: &[u8]) -> Frame {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        Frame::Line(Bytes::copy_from_slice(raw))
    }
}

/// The read buffer grows to hold the longest line so far; once such a line has passed, the
/// little left in it moves to a buffer of the usual size, so a run that once wrote a line of
/// many megabytes does not hold that much for the rest of its life.
fn give_back_long_line_room(buf: &mut BytesMut) {
    const USUAL: usize = 64 * 1024;
    if buf.capacity() > 16 * USUAL && buf.len() <= USUAL {
        let mut smaller = BytesMut::with_capacity(USUAL);
        smaller.extend_from_slice(buf);
        *buf = smaller;
    }
}

impl Frame {
    /// The bytes of the line it holds (none for a dropped line).
    pub fn line_bytes(&self) -> usize {
        match self {
            Frame::Line(line) => line.len(),
            Frame::TooLong { .. } => 0,
        }
    }
}

impl Decoder for LineFramer {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        let newline = memchr::memchr(b'\n', &buf[self.searched..]).map(|i| self.searched + i);
        match (newline, self.discarding) {
            (Some(end), Some(dropped)) => {
                let _ = buf.split_to(end + 1);
                self.searched = 0;
                self.discarding = None;
                Ok(Some(Frame::TooLong {
                    bytes: dropped + end as u64,
                }))
            }
            (Some(end), None) if end <= self.max_line_bytes => {
                let frame = Self::line(&buf[..end]);
                buf.advance(end + 1);
                self.searched = 0;
                give_back_long_line_room(buf);
                Ok(Some(frame))
            }
            (Some(end), None) => {
                let _ = buf.split_to(end + 1);
                self.searched = 0;
                Ok(Some(Frame::TooLong { bytes: end as u64 }))
            }
            (None, Some(dropped)) => {
                self.discarding = Some(dropped + buf.len() as u64);
                buf.clear();
                self.searched = 0;
                Ok(None)
            }
            (None, None) if buf.len() > self.max_line_bytes => {
                self.discarding = Some(buf.len() as u64);
                buf.clear();
                self.searched = 0;
                Ok(None)
            }
            (None, None) => {
                self.searched = buf.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        // The last line may lack its newline; it is still a line.
        self.searched = 0;
        if let Some(dropped) = self.discarding.take() {
            buf.clear();
            return Ok(Some(Frame::TooLong { bytes: dropped }));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let frame = Self::line(buf);
        buf.clear();
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut framer = LineFramer::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = framer.decode(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        while let Some(frame) = framer.decode_eof(&mut buf).unwrap() {
            out.push(frame);
        }
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
        let mut framer = LineFramer::new(1 << 30);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&vec![b'x'; 4 << 20]);
        buf.extend_from_slice(b"\nnext");
        assert!(
            matches!(framer.decode(&mut buf).unwrap(), Some(Frame::Line(l)) if l.len() == 4 << 20)
        );
        assert_eq!(&buf[..], b"next");
        assert!(buf.capacity() <= 64 * 1024, "{}", buf.capacity());
    }

    #[test]
    fn discarding_keeps_the_buffer_small() {
        let mut framer = LineFramer::new(8);
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'x'; 64]);
            assert_eq!(framer.decode(&mut buf).unwrap(), None);
            assert!(buf.len() <= 64);
        }
    }
}
