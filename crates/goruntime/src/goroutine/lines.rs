//! Reading a text dump line by line with a cap on the line length, so a hostile
//! input (one 10 GB line) costs no more memory than a normal one.

use std::io::{self, BufRead};

/// How often, in bytes, the progress callback is called.
const PROGRESS_EVERY_BYTES: u64 = 1 << 20;

/// Lines of a [`BufRead`], each at most `max_line_bytes` long.
pub(crate) struct LineReader<'p, R> {
    inner: R,
    line: Vec<u8>,
    max_line_bytes: usize,
    /// Bytes consumed so far.
    pub(crate) bytes_read: u64,
    /// 1-based number of the line last returned.
    pub(crate) line_number: u64,
    /// Whether the line last returned ended with `\n` (false only at EOF).
    pub(crate) ended_with_newline: bool,
    /// Lines that were longer than the cap.
    pub(crate) overlong_lines: u64,
    progress: &'p mut dyn FnMut(u64),
    next_progress: u64,
}

impl<'p, R: BufRead> LineReader<'p, R> {
    /// Wraps `inner`; `progress` is called with the bytes read so far about every MiB.
    pub(crate) fn new(inner: R, max_line_bytes: usize, progress: &'p mut dyn FnMut(u64)) -> Self {
        LineReader {
            inner,
            line: Vec::with_capacity(256),
            max_line_bytes: max_line_bytes.max(16),
            bytes_read: 0,
            line_number: 0,
            ended_with_newline: true,
            overlong_lines: 0,
            progress,
            next_progress: PROGRESS_EVERY_BYTES,
        }
    }

    /// The next line without its `\n` (and `\r`), or `None` at the end.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        self.line.clear();
        let mut got_any = false;
        let mut overlong = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if available.is_empty() {
                if !got_any {
                    return Ok(None);
                }
                self.ended_with_newline = false;
                break;
            }
            got_any = true;
            let (chunk_len, consumed, found_newline) = match memchr::memchr(b'\n', available) {
                Some(at) => (at, at + 1, true),
                None => (available.len(), available.len(), false),
            };
            let room = self.max_line_bytes - self.line.len();
            if chunk_len > room {
                overlong = true;
            }
            self.line
                .extend_from_slice(&available[..chunk_len.min(room)]);
            self.inner.consume(consumed);
            self.bytes_read += consumed as u64;
            if found_newline {
                self.ended_with_newline = true;
                break;
            }
        }
        if overlong {
            self.overlong_lines += 1;
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        self.line_number += 1;
        if self.bytes_read >= self.next_progress {
            (self.progress)(self.bytes_read);
            self.next_progress = self.bytes_read + PROGRESS_EVERY_BYTES;
        }
        Ok(Some(&self.line))
    }

    /// Reports the final byte count to the progress callback.
    pub(crate) fn finish_progress(&mut self) {
        (self.progress)(self.bytes_read);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8], cap: usize) -> (Vec<Vec<u8>>, bool, u64) {
        let mut progress = |_| {};
        let mut reader = LineReader::new(input, cap, &mut progress);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(line.to_vec());
        }
        (out, reader.ended_with_newline, reader.overlong_lines)
    }

    #[test]
    fn splits_lines_and_sees_a_missing_last_newline() {
        let (lines, ended, _) = lines_of(b"a\r\nbb\n\nccc", 64);
        assert_eq!(
            lines,
            vec![b"a".to_vec(), b"bb".to_vec(), vec![], b"ccc".to_vec()]
        );
        assert!(!ended);
        let (_, ended, _) = lines_of(b"a\n", 64);
        assert!(ended);
    }

    #[test]
    fn caps_long_lines() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nshort\n");
        let (lines, _, overlong) = lines_of(&input, 16);
        assert_eq!(lines[0].len(), 16);
        assert_eq!(lines[1], b"short");
        assert_eq!(overlong, 1);
    }
}
