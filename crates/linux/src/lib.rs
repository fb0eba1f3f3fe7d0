//! Pure parsers for the kernel's view of memory.
//!
//! Every parser takes text and returns typed values; nothing here opens a file
//! (the thin readers that do live next to the code that needs them and are rooted
//! at a directory, so tests point them at fixture trees under `testdata/`).
//!
//! Main types:
//! - [`ParseError`]: one clear error naming the input and what is wrong with it.
//! - [`cgroup::Limit`]: a memory limit, either a number of bytes or `max`.
//! - [`cgroup::FlatKeyed`]: the `key value` files of the memory controller
//!   (`memory.events`, `memory.oom_control`, `memory.stat`).
//! - [`fs`]: the thin IO layer, rooted at a directory ([`fs::Root`]); readers for
//!   the host files and the memory cgroup hierarchy.
//! - [`kmsg`]: `/dev/kmsg` records and the OOM kills logged in them.
//! - [`host`]: `/proc/meminfo`, `/proc/vmstat`, PSI, `vm.*` sysctls.
//! - [`net_tcp`]: `/proc/PID/net/tcp{,6}`, to find a process's listening sockets.
//! - [`mountinfo::CgroupMounts`]: where the cgroup hierarchies are mounted, v1, v2 or hybrid.
//! - [`process`]: the per-process files, `/proc/PID/{status,stat,smaps_rollup,maps,limits,io,oom_score,cmdline,environ,cgroup}`.

pub mod cgroup;
mod error;
pub mod fs;
pub mod host;
mod kb_value;
pub mod kmsg;
pub mod mountinfo;
pub mod net_tcp;
pub mod process;

pub use error::ParseError;
