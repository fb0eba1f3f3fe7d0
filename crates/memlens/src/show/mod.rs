//! Views for people: plain-text tables sized for a terminal.

mod bytes;
pub mod findings;
mod mysql_table;
mod snapshot_table;

pub use bytes::human_bytes;
pub use mysql_table::mysql_table;
pub use snapshot_table::snapshot_table;
