//! memlens's sample types: what the collectors produce, the store keeps and the
//! views show.
//!
//! Main types:
//! - [`Snapshot`]: one moment of a host: [`HostSample`] and every [`ProcessSample`].
//! - [`ProcessSample`]: one process through the kernel's eyes, with its
//!   [`GoInfo`] when it is a Go program and its [`CgroupSample`].
//!
//! The serde form of these types is the `snapshot --json` contract documented in
//! `docs/snapshot-json.md`; renaming a field breaks users' scripts.
//!
//! - [`MysqlSample`]: a MySQL/MariaDB server beside its process.
//!
//! - [`series`]: a snapshot as numeric points per entity (host, process as
//!   (pid, start time), cgroup): what the history stores.
//!
//! No IO and no clock here: times come in as values.

mod limit_json;
mod mysql;
pub mod series;
mod snapshot;

pub use mysql::MysqlSample;
pub use snapshot::{CgroupSample, GoInfo, HostSample, ProcessIdentity, ProcessSample, Snapshot};
