//! Reading memory cgroups: which hierarchy carries the memory controller, and
//! the memory files of one cgroup and its ancestors.

use super::{ReadError, Root};
use crate::cgroup::{effective_limit, CgroupMemory, CgroupVersion, Limit};
use crate::mountinfo::CgroupMounts;
use std::path::PathBuf;

/// The memory hierarchy of a host (or fixture tree) and how to read it.
#[derive(Debug, Clone)]
pub struct CgroupReader {
    root: Root,
    version: CgroupVersion,
    /// Where the hierarchy is mounted (under `root`).
    mount_dir: PathBuf,
    /// The cgroup path that the mount's top directory stands for (usually `/`).
    mount_cgroup_root: String,
}

/// A cgroup of the memory hierarchy, located on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCgroup {
    /// v1 or v2.
    pub version: CgroupVersion,
    /// The path as `/proc/PID/cgroup` shows it, e.g. `/system.slice/nginx.service`.
    pub path: String,
    /// Its directory under the reader's root.
    pub dir: PathBuf,
}

impl CgroupReader {
    /// Finds the memory hierarchy from `/proc/self/mountinfo` under `root`.
    ///
    /// On a hybrid host the v1 memory hierarchy wins (that is where the kernel
    /// charges memory); a v2 mount counts only when its `cgroup.controllers`
    /// lists `memory`. `Ok(None)`: no memory controller is mounted.
    pub fn new(root: &Root) -> Result<Option<CgroupReader>, ReadError> {
        let text = root.read("/proc/self/mountinfo")?;
        let mounts = CgroupMounts::parse("/proc/self/mountinfo", &text)?;
        if let Some(v1) = mounts.memory_v1() {
            return Ok(Some(CgroupReader {
                root: root.clone(),
                version: CgroupVersion::V1,
                mount_dir: root.path(&v1.mount_point),
                mount_cgroup_root: v1.root.clone(),
            }));
        }
        for v2 in &mounts.v2 {
            let controllers = root
                .read(format!("{}/cgroup.controllers", v2.mount_point))
                .unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                return Ok(Some(CgroupReader {
                    root: root.clone(),
                    version: CgroupVersion::V2,
                    mount_dir: root.path(&v2.mount_point),
                    mount_cgroup_root: v2.root.clone(),
                }));
            }
        }
        Ok(None)
    }

    /// The version of the memory hierarchy.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The root this reader reads under.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Locates the cgroup at `path` (as `/proc/PID/cgroup` shows it).
    ///
    /// `None` when the path lies outside what this mount shows (a process in
    /// another cgroup namespace).
    pub fn resolve(&self, path: &str) -> Option<ResolvedCgroup> {
        let relative = if self.mount_cgroup_root == "/" {
            path.trim_start_matches('/')
        } else {
            path.strip_prefix(self.mount_cgroup_root.as_str())?
                .trim_start_matches('/')
        };
        if relative.split('/').any(|part| part == "..") {
            return None;
        }
        Some(ResolvedCgroup {
            version: self.version,
            path: path.to_string(),
            dir: if relative.is_empty() {
                self.mount_dir.clone()
            } else {
                self.mount_dir.join(relative)
            },
        })
    }

    /// Reads the memory files of a cgroup.
    pub fn read_memory(&self, cgroup: &ResolvedCgroup) -> Result<CgroupMemory, ReadError> {
        if !cgroup.dir.is_dir() {
            return Err(ReadError::NotFound {
                path: cgroup.dir.clone(),
            });
        }
        let read = |name: &str| super::read_text(&cgroup.dir.join(name)).ok();
        Ok(CgroupMemory::from_files(cgroup.version, read)?)
    }

    /// The limit in force for `cgroup`: the tightest hard limit of the cgroup and
    /// every ancestor up to the top of the mount.
    pub fn effective_limit(&self, cgroup: &ResolvedCgroup) -> Result<Limit, ReadError> {
        let file = match cgroup.version {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        let mut limits = Vec::new();
        let mut dir = cgroup.dir.clone();
        loop {
            match super::read_text(&dir.join(file)) {
                Ok(text) => limits.push(Some(match cgroup.version {
                    CgroupVersion::V1 => Limit::parse_v1(file, &text)?,
                    CgroupVersion::V2 => Limit::parse_v2(file, &text)?,
                })),
                // The v2 root has no memory.max.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            if dir == self.mount_dir || !dir.pop() || !dir.starts_with(&self.mount_dir) {
                break;
            }
        }
        Ok(effective_limit(limits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn this_host_has_v1_memory() {
        // The development and CI machines mount memory as v1 (hybrid host).
        let reader = CgroupReader::new(&Root::host())
            .unwrap()
            .expect("memory hierarchy");
        assert_eq!(reader.version(), CgroupVersion::V1);
        let top = reader.resolve("/").unwrap();
        assert_eq!(top.dir, PathBuf::from("/sys/fs/cgroup/memory"));
        let mem = reader.read_memory(&top).unwrap();
        assert_eq!(mem.limit, Some(Limit::Max));
        assert_eq!(reader.effective_limit(&top).unwrap(), Limit::Max);
    }

    /// Lays the captured v2 tree (Debian 6.1 kernel under qemu) out as a root
    /// directory: `proc/self/mountinfo` and `sys/fs/cgroup/...`.
    fn v2_fixture_root() -> (PathBuf, Root) {
        let captured = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/linux6.1-v2-qemu");
        let dir = std::env::temp_dir().join(format!(
            "memlens-v2-root-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let copy_dir = |from: &Path, to: &Path| {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        };
        let cgroup = dir.join("sys/fs/cgroup");
        copy_dir(&captured.join("root"), &cgroup);
        copy_dir(
            &captured.join("memlens-fixture"),
            &cgroup.join("memlens-fixture"),
        );
        copy_dir(&captured.join("memlens-oom"), &cgroup.join("memlens-oom"));
        std::fs::create_dir_all(dir.join("proc/self")).unwrap();
        std::fs::copy(
            captured.join("mountinfo.txt"),
            dir.join("proc/self/mountinfo"),
        )
        .unwrap();
        (dir.clone(), Root::at(dir))
    }

    #[test]
    fn captured_v2_tree() {
        let (dir, root) = v2_fixture_root();
        let reader = CgroupReader::new(&root)
            .unwrap()
            .expect("v2 memory hierarchy");
        assert_eq!(reader.version(), CgroupVersion::V2);

        // The process in the capture (proc-pid-cgroup.txt: 0::/memlens-fixture).
        let live = reader.resolve("/memlens-fixture").unwrap();
        let mem = reader.read_memory(&live).unwrap();
        assert_eq!(mem.limit, Some(Limit::Bytes(64 << 20)));
        assert_eq!(mem.high_limit, Some(Limit::Bytes(48 << 20)));
        assert_eq!(mem.low_protection, Some(Limit::Bytes(8 << 20)));
        assert_eq!(mem.min_protection, Some(Limit::Bytes(4 << 20)));
        assert_eq!(mem.swap_limit, Some(Limit::Bytes(0)));
        // The hog had written 32 MiB: that much anon, plus a little for libc and page tables.
        let usage = mem.usage_bytes.unwrap();
        assert!((32 << 20..34 << 20).contains(&usage), "usage {usage}");
        let anon = mem.stat.as_ref().unwrap().get("anon").unwrap();
        assert!((32 << 20..33 << 20).contains(&anon), "anon {anon}");
        assert_eq!(mem.oom_kill_count, Some(0));
        assert!(mem.pressure.is_some());
        // v1-only files are absent, not zero.
        assert_eq!(mem.failcnt, None);
        assert_eq!(
            reader.effective_limit(&live).unwrap(),
            Limit::Bytes(64 << 20)
        );

        // The cgroup whose hog the kernel OOM-killed.
        let killed = reader.resolve("/memlens-oom").unwrap();
        let mem = reader.read_memory(&killed).unwrap();
        assert_eq!(mem.oom_kill_count, Some(1));
        assert_eq!(mem.oom_count, Some(1));
        assert_eq!(mem.peak_usage_bytes, Some(32 << 20));
        assert_eq!(mem.events_local.as_ref().unwrap().get("max"), Some(35));
        assert!(mem.pressure.unwrap().some.total_usec > 0);

        // The v2 root has no memory.max: no limit at the top.
        let top = reader.resolve("/").unwrap();
        assert_eq!(reader.effective_limit(&top).unwrap(), Limit::Max);
        assert_eq!(reader.read_memory(&top).unwrap().limit, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn paths_outside_the_mount_are_not_resolved() {
        let reader = CgroupReader {
            root: Root::host(),
            version: CgroupVersion::V2,
            mount_dir: PathBuf::from("/sys/fs/cgroup"),
            mount_cgroup_root: "/kubepods/pod1".into(),
        };
        assert_eq!(reader.resolve("/system.slice/x.service"), None);
        assert_eq!(
            reader.resolve("/kubepods/pod1/c1").unwrap().dir,
            PathBuf::from("/sys/fs/cgroup/c1")
        );
        assert_eq!(reader.resolve("/kubepods/pod1/../../etc"), None);
    }
}
