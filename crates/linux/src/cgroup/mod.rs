//! Memory cgroup files, v1 and v2.
//!
//! - [`Limit`]: `memory.max` / `memory.limit_in_bytes` and friends, where "no
//!   limit" is a value of its own ([`Limit::Max`]), never a magic number.
//! - [`FlatKeyed`]: the `key value` per line files (`memory.events`,
//!   `memory.oom_control`, `memory.stat`).
//! - [`CgroupMemory`]: all memory files of one cgroup, v1 or v2, typed;
//!   [`effective_limit`] for the tightest limit up the hierarchy.
//! - [`MemoryStat`]: the keys of `memory.stat` memlens reads (anonymous and
//!   file memory, refaults, major faults), v1's and v2's names reconciled.
//! - [`describe_cgroup`]: what a cgroup path is (container, Kubernetes pod, systemd unit).

mod flat_keyed;
mod limit;
mod memory;
mod name;
mod stat;

pub use flat_keyed::FlatKeyed;
pub use limit::Limit;
pub use memory::{effective_limit, CgroupMemory, CgroupVersion};
pub use name::{describe_cgroup, CgroupOwner};
pub use stat::MemoryStat;
