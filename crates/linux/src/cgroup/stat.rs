//! The keys of a cgroup's `memory.stat` memlens reads, with v1's and v2's
//! names reconciled: what is charged (anonymous, file cache by LRU list) and
//! what reclaim costs (refaults, major faults).
//!
//! v1 prints each counter twice: the cgroup's own pages (`rss`,
//! `inactive_file`, `workingset_refault_file`, ...) and the cgroup with its
//! children (`total_rss`, `total_inactive_file`, ...). The hierarchical
//! `total_*` ones are taken, as v1's `memory.usage_in_bytes` counts the
//! children too. v2's `memory.stat` is hierarchical already.
//!
//! Refaults (`workingset_refault_anon`/`_file`) count pages faulted or read
//! back in while the kernel still remembered evicting them (a shadow entry
//! in the page cache or swap cache): memory the cgroup needed again after
//! reclaim took it. Linux 5.9 split them into anon and file; v2 kernels
//! before that print one `workingset_refault` (file pages only, anonymous
//! pages were not tracked): it is read as the file refaults. v1 gained the
//! split names with the rest of the v2 counters (this machine's Linux 6.18
//! prints both `workingset_refault_file` and `total_workingset_refault_file`).

use super::{CgroupVersion, FlatKeyed};
use crate::ParseError;

/// What memlens reads of one cgroup's `memory.stat`. Each field is `None`
/// when this kernel's file does not have the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// Anonymous memory (v1 `total_rss`: anonymous and swap cache; v2 `anon`).
    pub anon_bytes: Option<u64>,
    /// File cache on the active list: pages used more than once lately
    /// (v1 `total_active_file`, v2 `active_file`).
    pub active_file_bytes: Option<u64>,
    /// File cache on the inactive list: reclaimed first (v1
    /// `total_inactive_file`, v2 `inactive_file`).
    pub inactive_file_bytes: Option<u64>,
    /// File pages read back in after reclaim evicted them (v1
    /// `total_workingset_refault_file`, v2 `workingset_refault_file`, or
    /// `workingset_refault` before Linux 5.9). A count of pages.
    pub file_refaults: Option<u64>,
    /// Anonymous pages faulted back in from swap after reclaim evicted them
    /// (v1 `total_workingset_refault_anon`, v2 `workingset_refault_anon`;
    /// always 0 without swap). A count of pages.
    pub anon_refaults: Option<u64>,
    /// Major page faults: faults that had to wait for a read from disk or
    /// swap (v1 `total_pgmajfault`, v2 `pgmajfault`). A count.
    pub major_faults: Option<u64>,
    /// File pages refaulted while they had been part of the workingset
    /// when evicted (v2 `workingset_restore_file`, Linux 5.9+; v1 has no
    /// such key): refaults of pages that were in active use, the ones that
    /// cost. A count of pages.
    pub file_restores: Option<u64>,
    /// The same for anonymous pages (v2 `workingset_restore_anon`).
    pub anon_restores: Option<u64>,
    /// Pages scanned by reclaim in this cgroup (v2 `pgscan`, Linux 5.0+; v1
    /// has no such key). A count.
    pub pages_scanned: Option<u64>,
    /// Pages reclaimed from it (v2 `pgsteal`). A count.
    pub pages_stolen: Option<u64>,
}

impl MemoryStat {
    /// Parses the text of a `memory.stat` of `version`; `input` names it in
    /// errors.
    pub fn parse(
        version: CgroupVersion,
        input: &str,
        text: &str,
    ) -> Result<MemoryStat, ParseError> {
        Ok(MemoryStat::from_keyed(
            version,
            &FlatKeyed::parse(input, text)?,
        ))
    }

    /// The keys memlens reads from an already parsed `memory.stat`.
    pub fn from_keyed(version: CgroupVersion, stat: &FlatKeyed) -> MemoryStat {
        let get = |v1: &str, v2: &str| match version {
            CgroupVersion::V1 => stat.get(v1),
            CgroupVersion::V2 => stat.get(v2),
        };
        MemoryStat {
            anon_bytes: get("total_rss", "anon"),
            active_file_bytes: get("total_active_file", "active_file"),
            inactive_file_bytes: get("total_inactive_file", "inactive_file"),
            file_refaults: get("total_workingset_refault_file", "workingset_refault_file")
                .or_else(|| get("total_workingset_refault", "workingset_refault")),
            anon_refaults: get("total_workingset_refault_anon", "workingset_refault_anon"),
            major_faults: get("total_pgmajfault", "pgmajfault"),
            // v2 only: v1's memory.stat has none of these, whatever the
            // kernel (its `total_*` list stops at the refaults).
            file_restores: v2(stat, version, "workingset_restore_file"),
            anon_restores: v2(stat, version, "workingset_restore_anon"),
            pages_scanned: v2(stat, version, "pgscan"),
            pages_stolen: v2(stat, version, "pgsteal"),
        }
    }
}

/// `key` of a v2 `memory.stat`; `None` for v1.
fn v2(stat: &FlatKeyed, version: CgroupVersion, key: &str) -> Option<u64> {
    match version {
        CgroupVersion::V1 => None,
        CgroupVersion::V2 => stat.get(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(path: &str) -> String {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(path);
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
    }

    #[test]
    fn v1_takes_the_hierarchical_counters_of_a_thrashing_cgroup() {
        // Captured 30 s into the file-thrash workload (Go 1.27) reading a
        // 96 MiB file again and again beside a 176 MiB heap in a 256 MiB
        // cgroup (testdata/README.md).
        let text = fixture("linux6.18-v1-filethrash/memory.stat");
        let stat = MemoryStat::parse(CgroupVersion::V1, "memory.stat", &text).unwrap();
        let keyed = FlatKeyed::parse("memory.stat", &text).unwrap();
        // The cgroup has no children: its own and its total_* counters agree
        // but for what moved between the two lines' reads (nothing here:
        // memory.stat is printed in one go).
        assert_eq!(
            stat.file_refaults,
            keyed.get("total_workingset_refault_file")
        );
        assert_eq!(stat.anon_refaults, Some(0), "no swap on this host");
        assert_eq!(stat.major_faults, keyed.get("total_pgmajfault"));
        assert_eq!(stat.anon_bytes, keyed.get("total_rss"));
        // Thrashing: far more pages read back than the whole limit holds.
        let limit_pages = (256u64 << 20) / 4096;
        assert!(stat.file_refaults.unwrap() > limit_pages, "{stat:?}");
        assert!(stat.major_faults.unwrap() > 1000, "{stat:?}");
        // The heap is anonymous and most of the limit.
        assert!(stat.anon_bytes.unwrap() > 170 << 20, "{stat:?}");
        let file = stat.active_file_bytes.unwrap() + stat.inactive_file_bytes.unwrap();
        assert!(file < 90 << 20, "{stat:?}");
    }

    #[test]
    fn v1_root_has_the_split_refault_names() {
        let text = fixture("linux6.18-v1-root/memory.stat");
        let stat = MemoryStat::parse(CgroupVersion::V1, "memory.stat", &text).unwrap();
        let keyed = FlatKeyed::parse("memory.stat", &text).unwrap();
        assert_eq!(stat.inactive_file_bytes, keyed.get("total_inactive_file"));
        assert_eq!(stat.active_file_bytes, keyed.get("total_active_file"));
        assert_eq!(
            stat.file_refaults,
            keyed.get("total_workingset_refault_file")
        );
        assert_eq!(stat.major_faults, keyed.get("total_pgmajfault"));
    }

    #[test]
    fn v2_reads_the_unprefixed_keys() {
        // A cgroup holding 32 MiB of written malloc memory (Linux 6.1).
        let text = fixture("linux6.1-v2-qemu/memlens-fixture/memory.stat");
        let stat = MemoryStat::parse(CgroupVersion::V2, "memory.stat", &text).unwrap();
        assert_eq!(
            stat,
            MemoryStat {
                anon_bytes: Some(33738752),
                active_file_bytes: Some(0),
                inactive_file_bytes: Some(0),
                file_refaults: Some(0),
                anon_refaults: Some(0),
                major_faults: Some(0),
                file_restores: Some(0),
                anon_restores: Some(0),
                pages_scanned: Some(0),
                pages_stolen: Some(0),
            }
        );
    }

    #[test]
    fn v2_reclaim_counters_are_read_where_present_and_v1_has_none() {
        // Every v2 cgroup of the Linux 6.1 guest prints the restore and
        // reclaim counters (0 there: nothing was reclaimed, the OOM one
        // was killed with its pages); v1's thrashing cgroup of Linux 6.18,
        // which reclaimed plenty, prints none of them.
        for dir in ["memlens-fixture", "memlens-oom", "root"] {
            let text = fixture(&format!("linux6.1-v2-qemu/{dir}/memory.stat"));
            let keyed = FlatKeyed::parse("memory.stat", &text).unwrap();
            let stat = MemoryStat::parse(CgroupVersion::V2, "memory.stat", &text).unwrap();
            assert!(keyed.get("pgscan").is_some(), "{dir}: {text}");
            assert_eq!(stat.file_restores, keyed.get("workingset_restore_file"));
            assert_eq!(stat.anon_restores, keyed.get("workingset_restore_anon"));
            assert_eq!(stat.pages_scanned, keyed.get("pgscan"));
            assert_eq!(stat.pages_stolen, keyed.get("pgsteal"));
        }
        let text = fixture("linux6.18-v1-filethrash/memory.stat");
        let stat = MemoryStat::parse(CgroupVersion::V1, "memory.stat", &text).unwrap();
        assert!(stat.file_refaults.unwrap() > 0);
        assert_eq!(
            (
                stat.file_restores,
                stat.anon_restores,
                stat.pages_scanned,
                stat.pages_stolen
            ),
            (None, None, None, None),
            "{stat:?}"
        );
    }

    #[test]
    fn v2_before_linux_5_9_has_one_refault_counter_for_file_pages() {
        let text = "anon 4096\nfile 8192\nworkingset_refault 77\npgmajfault 5\n";
        let stat = MemoryStat::parse(CgroupVersion::V2, "memory.stat", text).unwrap();
        assert_eq!(stat.file_refaults, Some(77));
        assert_eq!(stat.anon_refaults, None);
        assert_eq!(stat.active_file_bytes, None);
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = MemoryStat::parse(CgroupVersion::V1, "memory.stat", "total_rss x\n").unwrap_err();
        assert_eq!(err.input, "memory.stat");
    }
}
