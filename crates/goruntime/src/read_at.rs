//! Positional reads: how the parsers see a binary without reading all of it.
//!
//! A Go binary can be 100 MB; its build info is a few hundred bytes. The parsers
//! ask for exactly the ranges they need through [`ReadAt`], so a caller decides
//! where bytes come from: a byte slice in tests, a [`std::fs::File`] (see
//! `file.rs`) for `/proc/PID/exe`, or a wrapper that counts or limits reads.

use std::io;

/// Random access to the bytes of one file.
///
/// Implementations exist for `[u8]`, `Vec<u8>`, references to any implementation,
/// and [`std::fs::File`].
pub trait ReadAt {
    /// Returns exactly `len` bytes starting at `offset`.
    ///
    /// A range that does not lie entirely inside the file is an error of kind
    /// [`io::ErrorKind::UnexpectedEof`]. Callers in this crate check ranges against
    /// [`ReadAt::size`] first and never ask for more than a few MiB at once.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// The size of the file in bytes.
    ///
    /// Fallible because for a real file it comes from `fstat`.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| eof(offset, len, self.len()))?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.len())
            .ok_or_else(|| eof(offset, len, self.len()))?;
        Ok(self[start..end].to_vec())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.as_slice().read_at(offset, len)
    }

    fn size(&self) -> io::Result<u64> {
        self.as_slice().size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        (**self).read_at(offset, len)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

fn eof(offset: u64, len: usize, size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{len} bytes at offset {offset} are past the end of a {size}-byte buffer"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_exact_ranges_and_refuses_past_the_end() {
        let data: &[u8] = b"0123456789";
        assert_eq!(data.read_at(2, 3).unwrap(), b"234");
        assert_eq!(data.read_at(10, 0).unwrap(), b"");
        assert_eq!(data.size().unwrap(), 10);
        for (offset, len) in [(8, 3), (11, 0), (u64::MAX, 1), (1, usize::MAX)] {
            let err = data.read_at(offset, len).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{offset}+{len}");
        }
        let vec = data.to_vec();
        assert_eq!(vec.read_at(0, 2).unwrap(), b"01");
        assert_eq!(<&Vec<u8> as ReadAt>::size(&&vec).unwrap(), 10);
    }
}
