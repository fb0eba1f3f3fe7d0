//! pprof profiles: decoding (gzipped or plain protobuf) and the analyses memlens
//! runs on them.
//!
//! - [`Profile::decode`]: bytes in, a [`Profile`] with every id resolved and
//!   checked, or one [`PprofError`] naming what is wrong. Gzip is detected by its
//!   magic; decompression stops at [`MAX_DECOMPRESSED_BYTES`].
//! - [`Profile::decode_any`]: the same, and Go's legacy text heap profile
//!   (`heap?debug=1`, symbols from its `#` lines) into the same [`Profile`];
//!   other legacy formats (contention, `heapz`, gperftools CPU, ...) are refused
//!   by name.
//! - [`Profile::stacks`]: each sample as [`Frame`]s (leaf first, inlined calls
//!   expanded), its values and its string labels.
//! - [`top`] / [`diff`]: flat and cumulative totals per function as
//!   `go tool pprof -top` prints them, and growth between two profiles.
//! - [`map_share`]: how much of a sample type Go maps hold, and which user
//!   functions own them; [`leaf_callees`] reads from the binary the runtime
//!   calls that heap profiles hide.
//! - [`folded_stacks`]: `root;...;leaf value` lines for flame graphs.
//!
//! The wire structs are written by hand from the public `profile.proto` (no
//! code generation, no `protoc`).

mod callee;
mod decode;
mod error;
mod folded;
mod legacy;
mod legacy_heap;
mod legacy_prune;
mod mapshare;
mod profile;
mod proto;
mod top;

pub use callee::{leaf_callees, MAX_SYMBOL_TABLE_BYTES};
pub use decode::MAX_DECOMPRESSED_BYTES;
pub use error::PprofError;
pub use folded::folded_stacks;
pub use mapshare::{is_map_function, is_runtime_function, map_share, MapOwner, MapShare};
pub use profile::{Frame, Mapping, Profile};
pub use top::{diff, top, FunctionDelta, FunctionTotal, Top, TopDiff};
