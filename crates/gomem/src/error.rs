//! The errors of reading Go data from outside.

/// What went wrong finding or reading a Go program's maps.
#[derive(Debug, thiserror::Error)]
pub enum GomemError {
    /// The file is not an ELF object `object` can parse.
    #[error("{path}: not a readable ELF file: {reason}")]
    Elf {
        /// The binary.
        path: String,
        /// What the parser said.
        reason: String,
    },
    /// The binary has no `.debug_info` (built with `-w` or `-s`, or stripped).
    #[error("{path}: no DWARF (.debug_info) in the binary: built with -ldflags=-w/-s or stripped; rebuild without them to read its maps")]
    NoDwarf {
        /// The binary.
        path: String,
    },
    /// No DWARF in the binary, and no separate debug file it names was found.
    #[error("{path}: no DWARF (.debug_info) in the binary and no debug file found ({looked}): built with -ldflags=-w/-s or stripped; rebuild without them or install its debug file to read its maps")]
    NoDebugFile {
        /// The binary.
        path: String,
        /// What was looked for.
        looked: String,
    },
    /// The DWARF is there but malformed.
    #[error("{path}: bad DWARF: {reason}")]
    Dwarf {
        /// The binary.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A map type whose header layout lacks a field this reader needs.
    #[error("map type {type_name}: DWARF struct {struct_name} has no field {field}")]
    Layout {
        /// The Go map type (`map[K]V`).
        type_name: String,
        /// The runtime header struct looked at.
        struct_name: String,
        /// The missing field.
        field: String,
    },
}
