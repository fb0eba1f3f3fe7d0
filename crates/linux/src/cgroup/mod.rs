//! Memory cgroup files, v1 and v2.
//!
//! - [`Limit`]: `memory.max` / `memory.limit_in_bytes` and friends, where "no
//!   limit" is a value of its own ([`Limit::Max`]), never a magic number.
//! - [`FlatKeyed`]: the `key value` per line files (`memory.events`,
//!   `memory.oom_control`, `memory.stat`).

mod flat_keyed;
mod limit;

pub use flat_keyed::FlatKeyed;
pub use limit::Limit;
