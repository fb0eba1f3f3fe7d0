//! Views for people: plain-text tables sized for a terminal.

mod bytes;
pub mod findings;
mod snapshot_table;

pub use bytes::human_bytes;
pub use snapshot_table::snapshot_table;
