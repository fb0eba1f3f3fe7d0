//! [`PprofError`]: why bytes are not a usable pprof profile.

/// Why a pprof profile could not be decoded or analysed. Every variant names
/// what is wrong; none is produced by a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PprofError {
    /// Zero bytes.
    #[error("empty input: a pprof profile is a (gzipped) protobuf, got 0 bytes")]
    Empty,
    /// The input is recognisably something else (a text dump, HTML, JSON).
    #[error("not a pprof profile: {0}")]
    NotProfile(String),
    /// The gzip stream is corrupt.
    #[error("not a valid gzip stream: {0}")]
    Gzip(String),
    /// The gzip stream or the protobuf ends early.
    #[error("truncated {0}: the input ends in the middle of the data")]
    Truncated(&'static str),
    /// Decompressing would exceed the limit.
    #[error("the profile decompresses to more than {limit_bytes} bytes (refused: gzip bomb?)")]
    TooLarge {
        /// The limit that was hit.
        limit_bytes: u64,
    },
    /// A legacy (pre-protobuf) profile format other than Go's text heap profile.
    #[error("not a profile memlens reads: the input is {0}")]
    LegacyFormat(String),
    /// Go's text heap profile (`heap?debug=1`) is malformed.
    #[error("line {line} of the text heap profile (debug=1): {reason}")]
    LegacyHeap {
        /// Line number, from 1.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The bytes are not a protobuf `Profile` message.
    #[error("not a pprof protobuf: {0}")]
    Protobuf(String),
    /// The profile has no sample types (an empty or foreign protobuf message).
    #[error("not a pprof profile: it declares no sample types")]
    NoSampleTypes,
    /// A sample has a different number of values than there are sample types.
    #[error("sample {sample} has {found} values but the profile declares {expected} sample types")]
    ValueCount {
        /// Index of the sample.
        sample: usize,
        /// Values found.
        found: usize,
        /// Sample types declared.
        expected: usize,
    },
    /// A sample refers to a location id that is not defined.
    #[error("sample {sample} refers to location id {id}, which the profile does not define")]
    DanglingLocation {
        /// Index of the sample.
        sample: usize,
        /// The undefined id.
        id: u64,
    },
    /// A location refers to a function id that is not defined.
    #[error("location {location} refers to function id {id}, which the profile does not define")]
    DanglingFunction {
        /// The location's id.
        location: u64,
        /// The undefined id.
        id: u64,
    },
    /// A location refers to a mapping id that is not defined.
    #[error("location {location} refers to mapping id {id}, which the profile does not define")]
    DanglingMapping {
        /// The location's id.
        location: u64,
        /// The undefined id.
        id: u64,
    },
    /// A string index points outside the string table.
    #[error("{what} refers to string {index}, but the string table has {len} entries")]
    DanglingString {
        /// Which field held the index.
        what: &'static str,
        /// The index.
        index: i64,
        /// Entries in the string table.
        len: usize,
    },
    /// Two entries of one kind share an id.
    #[error("{what} id {id} is defined twice")]
    DuplicateId {
        /// `location`, `function` or `mapping`.
        what: &'static str,
        /// The id.
        id: u64,
    },
    /// Too many entries for the 32-bit indices used internally.
    #[error("the profile has more than 4294967295 {0}")]
    TooMany(&'static str),
    /// A requested sample type does not exist.
    #[error("sample type {name:?} is not in this profile (it has: {available})")]
    UnknownSampleType {
        /// What was asked for.
        name: String,
        /// Comma-separated list of the profile's sample types.
        available: String,
    },
    /// A sample type index is out of range.
    #[error("sample type index {index} is out of range: the profile has {count} sample types")]
    SampleIndex {
        /// What was asked for.
        index: usize,
        /// Sample types in the profile.
        count: usize,
    },
}
