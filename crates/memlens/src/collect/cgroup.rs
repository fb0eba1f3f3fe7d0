//! A process's memory cgroup into a [`CgroupSample`], read once per cgroup per snapshot.

use memlens_linux::cgroup::{describe_cgroup, CgroupOwner, CgroupVersion, MemoryStat};
use memlens_linux::fs::CgroupReader;
use memlens_model::CgroupSample;
use std::collections::HashMap;

/// Reads each cgroup once per snapshot, however many processes it holds.
#[derive(Debug, Default)]
pub struct CgroupCache {
    seen: HashMap<String, Option<CgroupSample>>,
}

impl CgroupCache {
    /// The sample of the cgroup at `path`, or `None` when it cannot be read
    /// (another namespace, removed since).
    pub fn sample(&mut self, reader: &CgroupReader, path: &str) -> Option<CgroupSample> {
        if let Some(known) = self.seen.get(path) {
            return known.clone();
        }
        let sample = read_sample(reader, path);
        self.seen.insert(path.to_string(), sample.clone());
        sample
    }
}

/// Reads the cgroup at `path`; `None` when it cannot be read (gone).
pub fn read_sample(reader: &CgroupReader, path: &str) -> Option<CgroupSample> {
    let resolved = reader.resolve(path)?;
    let memory = reader.read_memory(&resolved).ok()?;
    let effective = reader.effective_limit(&resolved).ok();
    let stat = memory
        .stat
        .as_ref()
        .map(|stat| MemoryStat::from_keyed(resolved.version, stat))
        .unwrap_or_default();
    Some(CgroupSample {
        version: match resolved.version {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
        },
        path: path.to_string(),
        name: describe_cgroup(path).map(|owner| owner_name(&owner)),
        usage_bytes: memory.usage_bytes,
        limit_bytes: memory.limit,
        effective_limit_bytes: effective,
        high_bytes: memory.high_limit,
        oom_kill_count: memory.oom_kill_count,
        inactive_file_bytes: stat.inactive_file_bytes,
        active_file_bytes: stat.active_file_bytes,
        anon_bytes: stat.anon_bytes,
        file_refaults: stat.file_refaults,
        anon_refaults: stat.anon_refaults,
        major_faults: stat.major_faults,
        pressure_some_total_usec: memory.pressure.map(|p| p.some.total_usec),
        pressure_full_total_usec: memory
            .pressure
            .and_then(|p| p.full.map(|full| full.total_usec)),
        file_restores: stat.file_restores,
        anon_restores: stat.anon_restores,
        pages_scanned: stat.pages_scanned,
        pages_stolen: stat.pages_stolen,
    })
}

/// A short name for what owns the cgroup: `pod:<uid>`, `docker:<id12>`, `nginx.service`.
fn owner_name(owner: &CgroupOwner) -> String {
    match owner {
        CgroupOwner::KubernetesPod {
            pod_uid,
            container_id,
            ..
        } => match container_id {
            Some(id) => format!("pod:{pod_uid}/{}", &id[..12]),
            None => format!("pod:{pod_uid}"),
        },
        CgroupOwner::Container { runtime, id } => format!("{runtime}:{}", &id[..12]),
        CgroupOwner::SystemdUnit(unit) => unit.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_linux::fs::Root;
    use std::path::Path;

    /// A tree in a temporary directory named `name`: each captured
    /// directory of `testdata` copied to its path in the tree, and the
    /// captured `mountinfo` as /proc/self/mountinfo.
    fn fixture_tree(
        name: &str,
        testdata: &Path,
        dirs: &[(&str, &str)],
        mountinfo: &str,
    ) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (from, to) in dirs {
            let to = dir.join(to);
            std::fs::create_dir_all(&to).unwrap();
            for entry in std::fs::read_dir(testdata.join(from)).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
        std::fs::create_dir_all(dir.join("proc/self")).unwrap();
        std::fs::copy(testdata.join(mountinfo), dir.join("proc/self/mountinfo")).unwrap();
        dir
    }

    /// A v1 tree: the captured hybrid mountinfo, the captured v1 root and
    /// the cgroup captured while the file-thrash workload thrashed.
    fn thrash_tree() -> std::path::PathBuf {
        fixture_tree(
            "memlens-thrash-tree",
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../linux/testdata"),
            &[
                ("linux6.18-v1-root", "sys/fs/cgroup/memory"),
                ("linux6.18-v1-filethrash", "sys/fs/cgroup/memory/thrash"),
            ],
            "linux6.18-mountinfo-hybrid-v1memory.txt",
        )
    }

    #[test]
    fn a_v1_sample_carries_the_hierarchical_reclaim_counters() {
        let dir = thrash_tree();
        let reader = CgroupReader::new(&Root::at(dir.clone()))
            .unwrap()
            .expect("a v1 memory hierarchy");
        let sample = read_sample(&reader, "/thrash").expect("the cgroup reads");
        // The capture's memory.stat, read here line by line.
        let text =
            std::fs::read_to_string(dir.join("sys/fs/cgroup/memory/thrash/memory.stat")).unwrap();
        let key = |k: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(k)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(sample.file_refaults, key("total_workingset_refault_file"));
        assert_eq!(sample.anon_refaults, key("total_workingset_refault_anon"));
        assert_eq!(sample.major_faults, key("total_pgmajfault"));
        assert_eq!(sample.anon_bytes, key("total_rss"));
        assert_eq!(sample.active_file_bytes, key("total_active_file"));
        assert_eq!(sample.inactive_file_bytes, key("total_inactive_file"));
        assert!(sample.file_refaults.unwrap() > 100_000, "{sample:?}");
        // v1 has no PSI per cgroup.
        assert_eq!(sample.pressure_some_total_usec, None);
        assert_eq!(sample.pressure_full_total_usec, None);
        // ...and no restore or reclaim counters.
        assert_eq!(sample.file_restores, None);
        assert_eq!(sample.pages_scanned, None);
        assert_eq!(sample.pages_stolen, None);
    }

    /// The captured v2 tree (Linux 6.1 under qemu) laid out as a root.
    fn v2_tree() -> std::path::PathBuf {
        fixture_tree(
            "memlens-v2-tree",
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../linux/testdata/linux6.1-v2-qemu"),
            &[
                ("root", "sys/fs/cgroup"),
                ("memlens-oom", "sys/fs/cgroup/memlens-oom"),
            ],
            "mountinfo.txt",
        )
    }

    #[test]
    fn a_v2_sample_carries_the_cgroups_own_pressure_and_its_reclaim_counters() {
        let dir = v2_tree();
        let reader = CgroupReader::new(&Root::at(dir.clone()))
            .unwrap()
            .expect("a v2 memory hierarchy");
        let sample = read_sample(&reader, "/memlens-oom").expect("the cgroup reads");
        let cg = dir.join("sys/fs/cgroup/memlens-oom");
        let stat = std::fs::read_to_string(cg.join("memory.stat")).unwrap();
        let pressure = std::fs::read_to_string(cg.join("memory.pressure")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let key = |k: &str| {
            stat.lines().find_map(|l| {
                l.strip_prefix(k)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        // The cgroup's own PSI (its hog stalled before the kill), the
        // `total=` of each line.
        let total = |line: &str| -> Option<u64> {
            pressure
                .lines()
                .find(|l| l.starts_with(line))?
                .split_whitespace()
                .find_map(|f| f.strip_prefix("total=")?.parse().ok())
        };
        assert_eq!(sample.version, 2);
        assert_eq!(sample.pressure_some_total_usec, total("some"));
        assert_eq!(sample.pressure_full_total_usec, total("full"));
        assert!(sample.pressure_some_total_usec.unwrap() > 0, "{sample:?}");
        assert_eq!(sample.file_refaults, key("workingset_refault_file"));
        assert_eq!(sample.major_faults, key("pgmajfault"));
        assert_eq!(sample.file_restores, key("workingset_restore_file"));
        assert_eq!(sample.anon_restores, key("workingset_restore_anon"));
        assert_eq!(sample.pages_scanned, key("pgscan"));
        assert_eq!(sample.pages_stolen, key("pgsteal"));
        assert!(sample.pages_scanned.is_some() && sample.file_restores.is_some());
    }
}
