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
//! [`walk`] follows the program's live data from every package-level
//! variable to the maps it reaches: struct fields, array and slice elements,
//! pointers (cycles detected) and values of other maps (entries read from
//! the buckets or groups, laid out by the DWARF), to a bounded depth and count
//! ([`Limits`]). Swiss-map tombstones are counted in the groups' control
//! bytes; a growing classic map's old buckets come from its header.
//!
//! A binary without DWARF may name a separate debug file ([`DebugLink`]:
//! `.gnu_debuglink`, `.note.gnu.build-id`); [`DwarfIndex::from_split_elf`]
//! indexes the two together.
//!
//! Reads are batched: [`read_maps`] reads thousands of headers with a few
//! calls of [`Memory::read_many`] ([`read_batch`] merges nearby ranges), and
//! the walk reads the maps it reaches a batch at a time.
//!
//! Everything here is pure except [`ProcMemory`], the thin reader of the
//! target's memory (`process_vm_readv`, `/proc/PID/mem` for what it refuses);
//! tests feed bytes through [`Memory`] instead.

mod debuglink;
mod dwarf;
mod error;
#[cfg(test)]
mod fake;
mod hash;
mod layout;
mod memory;
mod walk;

pub use debuglink::{crc32, parse_build_id_note, parse_debuglink, DebugLink};
pub use dwarf::{
    DwarfIndex, MapType, MapVariable, Root, Ty, TypeId, MAX_FIELD_DEPTH, MAX_INDEXED_MAPS,
};
pub use error::GomemError;
pub use layout::{
    bytes_held, bytes_needed, count_tombstones, for_each_group, map_entries, read_map, read_maps,
    slot_full, EntryLayout, MapLayout, MapStats, CTRL_DELETED, MAX_DIRECTORY_ENTRIES,
};
pub use memory::{read_batch, Batch, Memory, ProcMemory, ReadError, MERGE_GAP_BYTES};
pub use walk::{walk, FoundMap, Limits, Walk};
