//! Errors of the trace crate: reading a binary's symbols and running a trace.

use thiserror::Error;

/// Why a binary's symbols could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SymbolError {
    /// The bytes do not start with the ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// A layout this reader does not handle (32-bit, big-endian, an old Go).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A header or table points outside the file or contradicts itself.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The binary has no `.gopclntab`.
    #[error("no .gopclntab section (not a Go binary)")]
    NoPclntab,
}

/// Why a trace could not run. Each message names the input and what is wrong.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The binary was built without clang, so there is no BPF program.
    #[error(
        "memlens was built without clang, so it has no BPF program: install clang \
         (apt-get install clang) and rebuild memlens"
    )]
    NoBpfProgram,
    /// Not root.
    #[error("memlens trace needs root (to load BPF programs): run it as root, e.g. with sudo")]
    NotRoot,
    /// A pid that is not running.
    #[error("--pid {0}: no such process")]
    NoSuchPid(u32),
    /// A bad option value.
    #[error("{0}")]
    BadOption(String),
    /// tracefs is not mounted and mounting it failed.
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: {0}")]
    Tracefs(std::io::Error),
    /// Loading, attaching or reading the BPF program failed.
    #[error("BPF: {what}: {detail}")]
    Bpf {
        /// What was being done.
        what: String,
        /// The loader's error, with its causes.
        detail: String,
    },
}
