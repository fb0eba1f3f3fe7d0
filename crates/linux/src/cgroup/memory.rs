//! The memory controller's files of one cgroup, v1 or v2, as one typed value.

use super::{FlatKeyed, Limit};
use crate::host::Pressure;
use crate::ParseError;

/// Which cgroup version a cgroup's files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies (`memory.limit_in_bytes`, ...).
    V1,
    /// The unified hierarchy (`memory.max`, ...).
    V2,
}

/// What the memory controller says about one cgroup.
///
/// A field is `None` when the file does not exist on this version or kernel
/// (e.g. `high_limit` on v1, `failcnt` on v2) or could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupMemory {
    /// Memory charged now (`memory.usage_in_bytes` / `memory.current`).
    pub usage_bytes: Option<u64>,
    /// Peak charge (`memory.max_usage_in_bytes` / `memory.peak`).
    pub peak_usage_bytes: Option<u64>,
    /// The hard limit (`memory.limit_in_bytes` / `memory.max`).
    pub limit: Option<Limit>,
    /// The throttling limit, v2 only (`memory.high`).
    pub high_limit: Option<Limit>,
    /// Best-effort protection, v2 only (`memory.low`).
    pub low_protection: Option<Limit>,
    /// Hard protection, v2 only (`memory.min`).
    pub min_protection: Option<Limit>,
    /// v1 soft limit (`memory.soft_limit_in_bytes`).
    pub soft_limit: Option<Limit>,
    /// Swap in use: v2 `memory.swap.current`; v1 `memsw.usage - usage`.
    pub swap_usage_bytes: Option<u64>,
    /// Swap limit, v2 only (`memory.swap.max`).
    pub swap_limit: Option<Limit>,
    /// Memory + swap limit, v1 only (`memory.memsw.limit_in_bytes`).
    pub memsw_limit: Option<Limit>,
    /// Times the usage hit the limit, v1 only (`memory.failcnt`).
    pub failcnt: Option<u64>,
    /// Times the cgroup ran out of memory (v2 `events: oom`).
    pub oom_count: Option<u64>,
    /// Processes the OOM killer killed here (v1 `oom_control: oom_kill`, v2 `events: oom_kill`).
    pub oom_kill_count: Option<u64>,
    /// Whether tasks are now stalled waiting for the OOM killer (v1 `under_oom`).
    pub under_oom: Option<bool>,
    /// v2 `memory.events` (hierarchical).
    pub events: Option<FlatKeyed>,
    /// v2 `memory.events.local` (this cgroup only).
    pub events_local: Option<FlatKeyed>,
    /// `memory.stat` (anon, file, ... in v2; rss, cache, total_* in v1).
    pub stat: Option<FlatKeyed>,
    /// v2 `memory.pressure`.
    pub pressure: Option<Pressure>,
}

impl CgroupMemory {
    /// Builds the value from a cgroup directory's files.
    ///
    /// `read(name)` returns the text of `name` (e.g. `"memory.max"`), or `None`
    /// when the file does not exist or cannot be read. A file that exists but
    /// does not parse is an error naming it.
    pub fn from_files(
        version: CgroupVersion,
        read: impl Fn(&str) -> Option<String>,
    ) -> Result<CgroupMemory, ParseError> {
        let number = |name: &str| -> Result<Option<u64>, ParseError> {
            read(name)
                .map(|text| {
                    let value = text.trim();
                    value.parse::<u64>().map_err(|_| {
                        ParseError::new(
                            name,
                            format!("expected a number of bytes, found {value:?}"),
                        )
                    })
                })
                .transpose()
        };
        let keyed = |name: &str| read(name).map(|t| FlatKeyed::parse(name, &t)).transpose();
        match version {
            CgroupVersion::V1 => {
                let v1_limit =
                    |name: &str| read(name).map(|t| Limit::parse_v1(name, &t)).transpose();
                let usage_bytes = number("memory.usage_in_bytes")?;
                let memsw_usage = number("memory.memsw.usage_in_bytes")?;
                let oom_control = keyed("memory.oom_control")?;
                Ok(CgroupMemory {
                    usage_bytes,
                    peak_usage_bytes: number("memory.max_usage_in_bytes")?,
                    limit: v1_limit("memory.limit_in_bytes")?,
                    soft_limit: v1_limit("memory.soft_limit_in_bytes")?,
                    memsw_limit: v1_limit("memory.memsw.limit_in_bytes")?,
                    swap_usage_bytes: memsw_usage
                        .zip(usage_bytes)
                        .map(|(both, mem)| both.saturating_sub(mem)),
                    failcnt: number("memory.failcnt")?,
                    oom_kill_count: oom_control.as_ref().and_then(|c| c.get("oom_kill")),
                    under_oom: oom_control
                        .as_ref()
                        .and_then(|c| c.get("under_oom"))
                        .map(|v| v != 0),
                    stat: keyed("memory.stat")?,
                    ..CgroupMemory::default()
                })
            }
            CgroupVersion::V2 => {
                let v2_limit =
                    |name: &str| read(name).map(|t| Limit::parse_v2(name, &t)).transpose();
                let events = keyed("memory.events")?;
                let pressure = read("memory.pressure")
                    .map(|t| Pressure::parse("memory.pressure", &t))
                    .transpose()?;
                Ok(CgroupMemory {
                    usage_bytes: number("memory.current")?,
                    peak_usage_bytes: number("memory.peak")?,
                    limit: v2_limit("memory.max")?,
                    high_limit: v2_limit("memory.high")?,
                    low_protection: v2_limit("memory.low")?,
                    min_protection: v2_limit("memory.min")?,
                    swap_usage_bytes: number("memory.swap.current")?,
                    swap_limit: v2_limit("memory.swap.max")?,
                    oom_count: events.as_ref().and_then(|e| e.get("oom")),
                    oom_kill_count: events.as_ref().and_then(|e| e.get("oom_kill")),
                    events,
                    events_local: keyed("memory.events.local")?,
                    stat: keyed("memory.stat")?,
                    pressure,
                    ..CgroupMemory::default()
                })
            }
        }
    }

    /// v1 only: the limit in force counting every ancestor, as the kernel computed
    /// it (`hierarchical_memory_limit` of `memory.stat`).
    pub fn v1_hierarchical_limit(&self) -> Option<Limit> {
        let bytes = self.stat.as_ref()?.get("hierarchical_memory_limit")?;
        Limit::parse_v1("memory.stat", &bytes.to_string()).ok()
    }
}

/// The limit in force for a cgroup: the tightest `limit` of it and its ancestors.
///
/// `chain` holds the limits from the cgroup up to the root, in any order; a
/// missing value (`None`) is skipped. An empty chain has no limit.
pub fn effective_limit(chain: impl IntoIterator<Item = Option<Limit>>) -> Limit {
    chain
        .into_iter()
        .flatten()
        .fold(Limit::Max, Limit::tightest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture_dir(dir: &str) -> impl Fn(&str) -> Option<String> {
        let base = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(dir);
        move |name| std::fs::read_to_string(base.join(name)).ok()
    }

    #[test]
    fn v1_root_has_no_limit_and_no_v2_fields() {
        let mem =
            CgroupMemory::from_files(CgroupVersion::V1, fixture_dir("linux6.18-v1-root")).unwrap();
        assert_eq!(mem.limit, Some(Limit::Max));
        assert_eq!(mem.memsw_limit, Some(Limit::Max));
        assert_eq!(mem.high_limit, None);
        assert_eq!(mem.pressure, None);
        assert_eq!(mem.oom_kill_count, Some(0));
        assert_eq!(mem.under_oom, Some(false));
        assert!(mem.usage_bytes.unwrap() > 0);
        assert_eq!(mem.v1_hierarchical_limit(), Some(Limit::Max));
    }

    #[test]
    fn v1_cgroup_after_an_oom_kill() {
        // A 128 MiB cgroup right after the kernel killed the heap-leak workload.
        let mem =
            CgroupMemory::from_files(CgroupVersion::V1, fixture_dir("linux6.18-v1-oomkilled"))
                .unwrap();
        assert_eq!(mem.limit, Some(Limit::Bytes(128 << 20)));
        assert_eq!(mem.memsw_limit, Some(Limit::Bytes(128 << 20)));
        assert_eq!(mem.oom_kill_count, Some(1));
        assert_eq!(mem.under_oom, Some(false));
        // The peak reached the limit before the kill (v1 records it a couple of
        // pages past the limit: 134225920 here); the victim's memory is gone after.
        let peak = mem.peak_usage_bytes.unwrap();
        assert!(
            peak > 120 << 20 && peak <= (128 << 20) + (64 << 10),
            "peak {peak}"
        );
        assert!(mem.usage_bytes.unwrap() < 8 << 20);
        assert_eq!(mem.v1_hierarchical_limit(), Some(Limit::Bytes(128 << 20)));
    }

    #[test]
    fn a_file_that_does_not_parse_is_named() {
        let read = |name: &str| match name {
            "memory.max" => Some("a lot\n".to_string()),
            _ => None,
        };
        let err = CgroupMemory::from_files(CgroupVersion::V2, read).unwrap_err();
        assert_eq!(err.input, "memory.max");
        let read = |name: &str| (name == "memory.current").then(|| "-5\n".to_string());
        let err = CgroupMemory::from_files(CgroupVersion::V2, read).unwrap_err();
        assert_eq!(err.input, "memory.current");
    }

    #[test]
    fn nothing_readable_is_all_none() {
        let mem = CgroupMemory::from_files(CgroupVersion::V2, |_| None).unwrap();
        assert_eq!(mem, CgroupMemory::default());
    }

    #[test]
    fn effective_limit_is_the_tightest_ancestor() {
        let chain = [
            Some(Limit::Max),
            Some(Limit::Bytes(512)),
            None,
            Some(Limit::Bytes(1024)),
        ];
        assert_eq!(effective_limit(chain), Limit::Bytes(512));
        assert_eq!(effective_limit([None, Some(Limit::Max)]), Limit::Max);
    }
}
