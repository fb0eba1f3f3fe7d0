//! Host-wide memory files.
//!
//! - [`Meminfo`]: `/proc/meminfo`, every field in bytes (counts for `HugePages_*`).
//! - [`Vmstat`]: the memory events of `/proc/vmstat` (faults, OOM kills, reclaim).
//! - [`Pressure`]: a PSI file (`/proc/pressure/memory`, a v2 cgroup's `memory.pressure`).
//! - [`parse_sysctl_u64`] / [`Overcommit`]: `vm.max_map_count`, `vm.overcommit_memory`.

mod meminfo;
mod pressure;
mod sysctl;
mod vmstat;

pub use meminfo::Meminfo;
pub use pressure::{Pressure, PressureLine};
pub use sysctl::{parse_sysctl_u64, Overcommit};
pub use vmstat::Vmstat;
