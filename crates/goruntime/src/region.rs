//! Bounded reads of the bytes that hold the build info: a region of the file
//! (the `.go.buildinfo` section or a data segment), the search for the 16-byte
//! aligned magic in it, and the uvarint-length-prefixed strings of the inline
//! format. Nothing here reads outside its region.

use crate::elf::Source;
use crate::error::BuildInfoError;
use crate::read_at::ReadAt;
use crate::MAX_STRING_BYTES;

/// The magic that starts the build info header.
const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// The alignment of the header (of its virtual address).
const ALIGN: u64 = 16;
/// Bytes read at once after the header: enough for both strings of most binaries.
const READ_AHEAD: u64 = 4096;
/// Chunk size of the magic search (a multiple of [`ALIGN`]).
const SCAN_CHUNK: u64 = 64 << 10;

/// A range of file offsets that holds the build info: the `.go.buildinfo` section
/// or a data segment, with the virtual address of its start (for alignment).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub name: &'static str,
    pub start: u64,
    pub end: u64,
    pub vaddr: u64,
}

/// Searches `region` for the magic at 16-byte aligned virtual addresses, in
/// chunks, spending at most `budget` bytes. Returns its file offset and the
/// chunk that holds it (already read bytes the header decoding can reuse).
pub(crate) fn find_magic<R: ReadAt + ?Sized>(
    src: &Source<'_, R>,
    region: &Region,
    budget: &mut u64,
) -> Result<Option<(u64, Chunk)>, BuildInfoError> {
    // The first file offset whose virtual address is aligned.
    let skip = (ALIGN - region.vaddr % ALIGN) % ALIGN;
    let mut at = region.start.saturating_add(skip);
    while at < region.end && *budget > 0 {
        let len = (region.end - at).min(SCAN_CHUNK).min(*budget);
        *budget -= len;
        let chunk = src.read(at, len, "data searched for the Go build info")?;
        // Chunks start aligned and are multiples of ALIGN long (but the last),
        // and the magic is shorter than ALIGN, so it never straddles two chunks.
        for (i, window) in chunk.chunks(ALIGN as usize).enumerate() {
            if window.starts_with(MAGIC) {
                let magic_at = at + (i as u64) * ALIGN;
                return Ok(Some((
                    magic_at,
                    Chunk {
                        start: at,
                        bytes: chunk,
                    },
                )));
            }
        }
        at += len;
    }
    Ok(None)
}

/// Bytes already read from the file, starting at file offset `start`.
#[derive(Debug)]
pub(crate) struct Chunk {
    start: u64,
    bytes: Vec<u8>,
}

/// Bounded reads inside a [`Region`], served from one read-ahead buffer when the
/// bytes are already there.
pub(crate) struct Window<'s, 'a, R: ReadAt + ?Sized> {
    src: &'s Source<'a, R>,
    region: Region,
    buf_start: u64,
    buf: Vec<u8>,
}

impl<'s, 'a, R: ReadAt + ?Sized> Window<'s, 'a, R> {
    pub fn new(src: &'s Source<'a, R>, region: Region, chunk: Chunk) -> Self {
        Window {
            src,
            region,
            buf_start: chunk.start,
            buf: chunk.bytes,
        }
    }

    /// `len` bytes at `offset`, which must lie inside the region.
    pub fn bytes(
        &mut self,
        offset: u64,
        len: u64,
        what: &'static str,
    ) -> Result<&[u8], BuildInfoError> {
        let region = self.region;
        let end = offset
            .checked_add(len)
            .filter(|&end| offset >= region.start && end <= region.end);
        let Some(end) = end else {
            return Err(BuildInfoError::OutOfRegion {
                what,
                offset,
                len,
                region: region.name,
                region_start: region.start,
                region_end: region.end,
            });
        };
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset < self.buf_start || end > buf_end {
            // Read ahead (never past the region or the file) so the strings that
            // follow usually need no second read.
            let ahead = (region.end - offset)
                .min(len.max(READ_AHEAD))
                .min(self.src.size.saturating_sub(offset));
            self.buf = self.src.read(offset, ahead.max(len), what)?;
            self.buf_start = offset;
        }
        let from = (offset - self.buf_start) as usize;
        Ok(&self.buf[from..from + len as usize])
    }

    /// A uvarint length and that many bytes at `offset`; returns the string and
    /// the offset after it.
    pub fn varint_string(
        &mut self,
        offset: u64,
        what: &'static str,
    ) -> Result<(Vec<u8>, u64), BuildInfoError> {
        // A uvarint is at most 10 bytes; fewer may remain before the region's end.
        let avail = self.region.end.saturating_sub(offset).min(10);
        if avail == 0 {
            return Err(BuildInfoError::OutOfRegion {
                what,
                offset,
                len: 1,
                region: self.region.name,
                region_start: self.region.start,
                region_end: self.region.end,
            });
        }
        let (len, n) = uvarint(self.bytes(offset, avail, what)?)
            .ok_or(BuildInfoError::BadVarint { what, offset })?;
        if len > MAX_STRING_BYTES {
            return Err(BuildInfoError::TooLong {
                what,
                len,
                limit: MAX_STRING_BYTES,
            });
        }
        let start = offset + n;
        let bytes = self.bytes(start, len, what)?.to_vec();
        Ok((bytes, start + len))
    }
}

/// Decodes an unsigned LEB128 varint as Go's `binary.Uvarint` does; returns the
/// value and the number of bytes used, or `None` when it is cut short or
/// overflows 64 bits.
fn uvarint(b: &[u8]) -> Option<(u64, u64)> {
    let mut value = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i as u64 + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_matches_go_encoding() {
        assert_eq!(uvarint(&[0x08]), Some((8, 1)));
        // 0x336 = 822: 0xb6 0x06.
        assert_eq!(uvarint(&[0xb6, 0x06, 0xff]), Some((822, 2)));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(uvarint(&max), Some((u64::MAX, 10)));
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(uvarint(&overflow), None);
        assert_eq!(uvarint(&[0x80, 0x80]), None);
        assert_eq!(uvarint(&[]), None);
    }
}
