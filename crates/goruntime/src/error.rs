//! What can go wrong reading the build info of a binary.

use std::io;

/// A binary that looks like an ELF file (or a Go binary) but whose bytes cannot
/// be read as one.
///
/// Every variant names the structure that was being read (`what`: "ELF header",
/// "section header table", "Go version string", ...) and, where it has one, the
/// file offset or virtual address, so the message alone says what is wrong. The
/// file itself is named by the caller that knows it: [`crate::FileError`] adds the
/// path.
#[derive(Debug, thiserror::Error)]
pub enum BuildInfoError {
    /// The file could not be opened.
    #[error("cannot open: {0}")]
    Open(#[source] io::Error),

    /// Reading a range that lies inside the file failed (an IO error).
    #[error("cannot read {what} ({len} bytes at file offset {offset}): {source}")]
    Io {
        /// The structure being read.
        what: &'static str,
        /// The file offset of the read.
        offset: u64,
        /// The number of bytes asked for.
        len: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A structure the file's own headers point to lies (partly) past its end.
    #[error(
        "truncated file: {what} ({len} bytes at file offset {offset}) ends past \
         the end of the file ({file_size} bytes)"
    )]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// Its length in bytes.
        len: u64,
        /// The size of the file.
        file_size: u64,
    },

    /// The file starts with the ELF magic but its headers are not valid.
    #[error("malformed ELF file: {0}")]
    MalformedElf(String),

    /// A string of the build info runs past the region that holds it.
    #[error(
        "{what} ({len} bytes at file offset {offset}) runs past the end of the \
         {region} (file offsets {region_start}..{region_end})"
    )]
    OutOfRegion {
        /// The string being read.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// Its length in bytes.
        len: u64,
        /// The region: the `.go.buildinfo` section or a data segment.
        region: &'static str,
        /// The region's first file offset.
        region_start: u64,
        /// The region's end file offset (exclusive).
        region_end: u64,
    },

    /// A length is larger than this crate is willing to read.
    #[error("{what} is {len} bytes long, more than the limit of {limit} bytes")]
    TooLong {
        /// The string or table being read.
        what: &'static str,
        /// The length the file claims.
        len: u64,
        /// The limit.
        limit: u64,
    },

    /// A varint length prefix (inline format) does not decode.
    #[error("the length of the {what} at file offset {offset} is not a valid varint")]
    BadVarint {
        /// The string whose length this is.
        what: &'static str,
        /// The file offset of the varint.
        offset: u64,
    },

    /// The pointer-format header gives a pointer size other than 4 or 8.
    #[error("the Go build info header gives a pointer size of {0}; only 4 and 8 exist")]
    BadPointerSize(u8),

    /// A pointer of the pointer format does not point into the file's loaded
    /// segments (for example an unrelocated pointer of a PIE binary built by Go
    /// before 1.18).
    #[error(
        "the {what} at virtual address {vaddr:#x} ({len} bytes) is not inside any \
         loaded segment of the file"
    )]
    UnmappedAddress {
        /// What the pointer points to.
        what: &'static str,
        /// The virtual address.
        vaddr: u64,
        /// The number of bytes that should be there.
        len: u64,
    },

    /// The `.go.buildinfo` section exists but does not hold the build info magic.
    #[error(
        "the .go.buildinfo section (file offsets {offset}..{end}) does not contain \
         the Go build info magic"
    )]
    NoMagicInSection {
        /// The section's file offset.
        offset: u64,
        /// The section's end file offset (exclusive).
        end: u64,
    },

    /// The build info was found but its Go version string is empty.
    #[error("the Go build info at file offset {offset} has an empty Go version")]
    EmptyGoVersion {
        /// The file offset of the build info header.
        offset: u64,
    },
}
