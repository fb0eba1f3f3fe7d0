//! The pprof protobuf messages, written by hand from the public `profile.proto`
//! (github.com/google/pprof, `proto/profile.proto`): field numbers and types only.
//!
//! These are the wire structs; [`super::Profile`] checks and indexes them. String
//! fields are indices into [`RawProfile::string_table`]; ids are resolved there too.

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawProfile {
    /// What each value of a sample measures.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<RawValueType>,
    /// The measured stacks.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<RawSample>,
    /// Address ranges of the binaries.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<RawMapping>,
    /// Program locations (addresses with their source lines).
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<RawLocation>,
    /// Functions referenced by the lines.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<RawFunction>,
    /// All strings; index 0 is the empty string.
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Regexp (string index) of frames to drop.
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// Regexp (string index) of frames to keep.
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// When the profile was taken (ns since the epoch).
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// How long it covers.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What one event of `period` is.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<RawValueType>,
    /// Events between two samples.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments (string indices).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// The sample type shown by default (string index of its type).
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `ValueType`: a type and a unit, both string indices.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawValueType {
    /// e.g. `inuse_space`.
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// e.g. `bytes`.
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`: a stack (leaf first) with one value per sample type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawSample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels of this sample.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<RawLabel>,
}

/// `Label`: a string or numeric label.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawLabel {
    /// Key (string index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String value (string index), or 0.
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// Numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// Unit of `num` (string index).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// `Mapping`: one mapped binary.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawMapping {
    /// Unique non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Start address.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// End address (exclusive).
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// Offset in the file of `memory_start`.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// Path of the binary (string index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Build id (string index).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Whether function names are resolved.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Whether file names are resolved.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Whether line numbers are resolved.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Whether inlined frames are expanded.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `Location`: an address and the source lines at it (innermost inline first).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawLocation {
    /// Unique non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Mapping id, or 0.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// Instruction address.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// Source lines, the innermost (inlined) call first.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<RawLine>,
    /// Whether several symbols were folded into this one.
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// `Line`: a function and a line in it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawLine {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Line number, or 0.
    #[prost(int64, tag = "2")]
    pub line: i64,
    /// Column number, or 0.
    #[prost(int64, tag = "3")]
    pub column: i64,
}

/// `Function`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawFunction {
    /// Unique non-zero id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Human-readable name (string index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Linker name (string index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Source file (string index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
    /// First line of the function.
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}
