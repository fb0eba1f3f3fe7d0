//! Kernel traces of memory events by user stack, for `memlens trace`: who
//! faults pages and who maps memory in a process.
//!
//! An eBPF program (`bpf/trace.bpf.c`, compiled by clang in `build.rs`,
//! loaded with aya) attaches to `exceptions:page_fault_user` and the
//! `syscalls:sys_enter_{mmap,munmap,brk,madvise,mremap}` tracepoints. It
//! keeps only the chosen processes (a pid filter in the kernel), counts
//! every event exactly by process, event, size class and detail (mmap flags,
//! madvise advice), and walks the user stack (frame pointers) on 1 event in N
//! per CPU: the walk is what costs. Stack counts are scaled to the exact totals.
//!
//! Main types:
//! - [`session::run`]: validate, attach, wait, read, symbolize → [`Report`];
//! - [`Tracer`] (module [`bpf`]): the loaded programs and their maps;
//! - [`GoFuncs`] (module [`pclntab`]): Go function names from `.gopclntab`,
//!   stripped binaries included, inlined calls expanded; [`Symbolizer`] names frames through
//!   `/proc/PID/maps`, unknown ones as `binary+0xOFFSET`;
//! - [`Report`]: totals, size classes, scaled stacks, folded stacks, JSON;
//!   [`pprof`] encodes gzipped profiles (the table lives in the binary).
//!
//! Without clang at build time the crate builds and [`Tracer::start`] says
//! how to get it.

pub mod bpf;
pub mod cgroup;
pub mod cold_start;
pub mod debuginfo;
pub mod dwarf;
pub mod elf;
pub mod error;
pub mod event;
mod inline;
pub mod pclntab;
pub mod pprof;
pub mod raw;
pub mod report;
pub mod session;
pub mod symbolize;

pub use bpf::{TraceOptions, Tracer};
pub use error::{SymbolError, TraceError};
pub use event::Event;
pub use pclntab::GoFuncs;
pub use report::Report;
pub use symbolize::Symbolizer;
