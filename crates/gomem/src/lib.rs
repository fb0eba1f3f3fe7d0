//! Reading Go data structures from outside a running process.
//!
//! memlens-gomem finds a Go program's package-level map variables in the DWARF
//! of its binary ([`DwarfIndex`], built from ELF bytes by [`DwarfIndex::from_elf`])
//! and reads their runtime headers from the process's memory through the
//! [`Memory`] trait ([`read_map`]), with the layout the DWARF itself gives:
//!
//! - classic maps (`runtime.hmap`, Go ≤ 1.23 and `GOEXPERIMENT=noswissmap`):
//!   `count`, `B`, `noverflow`; capacity is `8 << B` slots;
//! - Swiss maps (`internal/runtime/maps.Map`, Go ≥ 1.24): `used`, `dirPtr`,
//!   `dirLen`; capacity is one group of 8 slots when `dirLen == 0`, else the sum
//!   of the `capacity` of every distinct table in the directory.
//!
//! Everything here is pure except [`ProcMemory`], the thin reader of
//! `/proc/PID/mem`; tests feed bytes through [`Memory`] instead.

mod dwarf;
mod error;
mod layout;
mod memory;

pub use dwarf::{DwarfIndex, MapVariable, MAX_FIELD_DEPTH, MAX_INDEXED_MAPS};
pub use error::GomemError;
pub use layout::{bytes_held, bytes_needed, read_map, MapLayout, MapStats, MAX_DIRECTORY_ENTRIES};
pub use memory::{Memory, ProcMemory, ReadError};
