//! Why a goroutine dump could not be read.

/// What is wrong with a goroutine dump (the caller adds which input it was).
#[derive(Debug, thiserror::Error)]
pub enum GoroutineError {
    /// Reading the input failed.
    #[error("reading the goroutine dump failed: {0}")]
    Io(#[from] std::io::Error),
    /// The input has no bytes at all.
    #[error("the input is empty, not a goroutine dump")]
    Empty,
    /// Text without a single `goroutine N [state]:` header or `?debug=1` block.
    #[error(
        "not a goroutine dump: no `goroutine N [state]:` line and no \
         `goroutine profile: total N` header in {lines} lines (first line: {first_line:?})"
    )]
    NotADump {
        /// Lines read.
        lines: u64,
        /// The start of the first line, for the message.
        first_line: String,
    },
    /// A `?debug=1` dump whose counts are not numbers or whose blocks are broken.
    #[error("line {line}: {what}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        what: String,
    },
    /// The protobuf profile could not be decoded.
    #[error("the protobuf goroutine profile cannot be decoded: {0}")]
    Profile(String),
    /// A protobuf profile of another kind (heap, allocs, ...).
    #[error(
        "the protobuf profile is not a goroutine profile: its sample types are {found}, \
         not goroutine/count or goroutineleak/count"
    )]
    NotGoroutineProfile {
        /// The sample types found, `type/unit` comma-separated.
        found: String,
    },
}
