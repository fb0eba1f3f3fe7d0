//! The processes of a cgroup for `memlens trace --cgroup`: where its directory
//! is (a path, or a name under the memory hierarchy of v1 or under v2's) and
//! which processes its `cgroup.procs` lists. [`parse_procs`] is pure.

use std::path::{Path, PathBuf};

use crate::error::TraceError;

/// The pids of a `cgroup.procs` text (one a line); lines that are not a pid
/// are skipped. Sorted, without repeats.
pub fn parse_procs(text: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The cgroup directory `given` names: the path itself when it holds a
/// `cgroup.procs`, else the same path under `/sys/fs/cgroup/memory` (v1) or
/// `/sys/fs/cgroup` (v2). One clear error when none does.
pub fn resolve(given: &Path) -> Result<PathBuf, TraceError> {
    let relative = given.strip_prefix("/").unwrap_or(given);
    let candidates = [
        given.to_path_buf(),
        Path::new("/sys/fs/cgroup/memory").join(relative),
        Path::new("/sys/fs/cgroup").join(relative),
    ];
    candidates
        .into_iter()
        .find(|dir| dir.join("cgroup.procs").is_file())
        .ok_or_else(|| {
            TraceError::BadOption(format!(
                "--cgroup {}: no cgroup there (no cgroup.procs in it, nor under /sys/fs/cgroup/memory or /sys/fs/cgroup)",
                given.display()
            ))
        })
}

/// The processes now in cgroup `dir`, or None when it is gone.
pub fn read_pids(dir: &Path) -> Option<Vec<u32>> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .ok()
        .map(|t| parse_procs(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procs_are_pids_sorted_once() {
        assert_eq!(parse_procs("412\n17\n\n412\nx\n"), [17, 412]);
        assert!(parse_procs("").is_empty());
    }

    #[test]
    fn a_path_without_cgroup_procs_is_refused_with_its_name() {
        let err = resolve(Path::new("/nonexistent/memlens-no-such-cgroup"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/memlens-no-such-cgroup"), "{err}");
    }
}
