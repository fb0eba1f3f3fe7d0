//! Pure parsers for what a Go program says about itself.
//!
//! The first one reads the **build info** the Go linker embeds in every binary
//! (what `go version -m BINARY` prints), so memlens can tell that a process is a
//! Go program, which Go version built it and what its main module is, from
//! `/proc/PID/exe` alone, without running anything. Later modules of this crate
//! will parse pprof profiles (protobuf), goroutine dumps (text and proto), expvar
//! `/debug/vars` JSON, Prometheus text and gctrace lines. No HTTP client lives
//! here: callers fetch, this crate parses.
//!
//! Main types and functions:
//! - [`read_build_info`]: the build info of an ELF binary given as a [`ReadAt`];
//!   `Ok(None)` for anything that is not a Go binary. It reads only the ELF
//!   headers and the build info (a few KiB), never the whole file.
//! - [`GoBuildInfo`]: Go version, main module, build settings (`GOARCH`,
//!   `CGO_ENABLED`, `-ldflags`, ...), dependencies, and the [`BuildInfoFormat`].
//! - [`parse_modinfo`] / [`ModInfo`] / [`Module`]: the module info text alone.
//! - [`ReadAt`]: positional reads, implemented for byte slices and
//!   [`std::fs::File`]; [`read_build_info_from_path`] opens a path for you.
//! - [`BuildInfoError`] (what is wrong and where in the file) and [`FileError`]
//!   (the same with the path).
//! - [`pprof`]: pprof protobuf profiles (gzip or not): decode, top by function,
//!   diff, map share, folded stacks for flame graphs.
//! - [`expvar`]: `/debug/vars` JSON (`memstats` as [`expvar::MemStats`], `cmdline`).
//! - [`promtext`]: Prometheus text exposition (families, samples, labels) and
//!   the `go_*` / `process_*` series of client_golang.
//! - [`gctrace`]: `GODEBUG=gctrace=1` lines (one [`gctrace::GcCycle`] per GC).
//! - [`goroutine`]: goroutine dumps (`?debug=2`, SIGQUIT, `?debug=1`, protobuf)
//!   read as a stream and grouped by stack and creation site; leak ranking, diff.

mod buildinfo;
mod elf;
mod error;
pub mod expvar;
mod file;
pub mod gctrace;
pub mod goroutine;
mod modinfo;
pub mod pprof;
pub mod promtext;
mod read_at;
mod region;

pub use buildinfo::{
    read_build_info, BuildInfoFormat, GoBuildInfo, MAX_SCAN_BYTES, MAX_STRING_BYTES,
};
pub use error::BuildInfoError;
pub use file::{read_build_info_from_path, FileError};
pub use modinfo::{parse_modinfo, ModInfo, Module};
pub use read_at::ReadAt;
