//! `/proc/PID/cgroup`: which cgroups a process is in.

use crate::ParseError;

/// One line of `/proc/PID/cgroup`: `hierarchy-ID:controller-list:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// The hierarchy id; 0 is the unified (v2) hierarchy.
    pub hierarchy_id: u32,
    /// The controllers bound to the hierarchy (`memory`, `cpu`, `name=systemd`,
    /// ...); empty for the unified hierarchy.
    pub controllers: Vec<String>,
    /// The cgroup's path relative to the hierarchy's root (as seen from the
    /// reader's cgroup namespace), e.g. `/system.slice/mysqld.service`. It may
    /// contain `:`, and ends with ` (deleted)` when the cgroup was removed.
    pub path: String,
}

/// All lines of `/proc/PID/cgroup`, in file order.
///
/// A pure v2 machine has the single line `0::/path`; a v1 machine one line per
/// hierarchy; a hybrid one both (v1 controllers, plus `0::` for the unified tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMembership {
    /// The lines, in file order.
    pub lines: Vec<CgroupLine>,
}

impl CgroupMembership {
    /// Parses cgroup text; `input` names it in errors. Each line is split on its
    /// first two `:` only, so paths keep theirs. Every process is in at least one
    /// cgroup, so an empty text is an error.
    pub fn parse(input: &str, text: &str) -> Result<CgroupMembership, ParseError> {
        let mut lines = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: String| ParseError::at_line(input, index + 1, why);
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(format!(
                    "expected \"id:controllers:path\", found {line:?}"
                )));
            };
            let hierarchy_id = id
                .parse()
                .map_err(|_| bad(format!("hierarchy id: not a whole number: {id:?}")))?;
            if path.is_empty() {
                return Err(bad(format!("no path (cut short?): {line:?}")));
            }
            let controllers = if controllers.is_empty() {
                Vec::new()
            } else {
                controllers.split(',').map(str::to_string).collect()
            };
            lines.push(CgroupLine {
                hierarchy_id,
                controllers,
                path: path.to_string(),
            });
        }
        if lines.is_empty() {
            return Err(ParseError::new(input, "empty: no cgroup lines"));
        }
        Ok(CgroupMembership { lines })
    }

    /// The path in the v1 memory hierarchy: the line whose controllers include
    /// `memory`. `None` on a pure v2 machine.
    pub fn memory_v1_path(&self) -> Option<&str> {
        self.lines
            .iter()
            .find(|line| line.hierarchy_id != 0 && line.controllers.iter().any(|c| c == "memory"))
            .map(|line| line.path.as_str())
    }

    /// The path in the unified (v2) hierarchy: the line `0::path`. `None` on a
    /// pure v1 machine.
    pub fn unified_path(&self) -> Option<&str> {
        self.lines
            .iter()
            .find(|line| line.hierarchy_id == 0 && line.controllers.is_empty())
            .map(|line| line.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HYBRID: &str = include_str!("../../testdata/proc/linux6.18-cgroup-hybrid.txt");

    #[test]
    fn captured_hybrid() {
        // This machine mounts v1 controllers and an empty unified tree (see
        // linux6.18-mountinfo-hybrid-v1memory.txt); `cat /proc/self/cgroup` at
        // capture listed 10 lines, memory on hierarchy 4.
        let m = CgroupMembership::parse("/proc/16724/cgroup", HYBRID).unwrap();
        assert_eq!(m.lines.len(), 10);
        assert_eq!(
            m.memory_v1_path(),
            Some("/process_api/2c96a2c6b280a7bb3e6546a6633c3347")
        );
        assert_eq!(m.unified_path(), Some("/"));
        assert_eq!(m.lines[0].controllers, vec!["name=systemd".to_string()]);
        assert_eq!(m.lines[0].hierarchy_id, 9);
        let cpu = &m.lines[8];
        assert_eq!(
            (cpu.hierarchy_id, cpu.controllers.as_slice()),
            (1, &["cpu".to_string()][..])
        );
    }

    #[test]
    fn hand_written_pure_v2() {
        // NOT captured: written by hand in the format of a pure cgroup v2 host
        // (this machine is hybrid). A path with ':' and a deleted cgroup.
        let text = "0::/kubepods.slice/pod:abc/cri-containerd-1.scope (deleted)\n";
        let m = CgroupMembership::parse("cgroup", text).unwrap();
        assert_eq!(m.memory_v1_path(), None);
        assert_eq!(
            m.unified_path(),
            Some("/kubepods.slice/pod:abc/cri-containerd-1.scope (deleted)")
        );
        assert!(m.lines[0].controllers.is_empty());
    }

    #[test]
    fn combined_v1_controllers() {
        let m =
            CgroupMembership::parse("cgroup", "5:cpu,cpuacct:/a\n4:memory,hugetlb:/b:c\n").unwrap();
        assert_eq!(
            m.lines[0].controllers,
            vec!["cpu".to_string(), "cpuacct".to_string()]
        );
        assert_eq!(m.memory_v1_path(), Some("/b:c"));
        assert_eq!(m.unified_path(), None);
    }

    #[test]
    fn malformed_cgroup_is_named() {
        let err = CgroupMembership::parse("/proc/8/cgroup", "").unwrap_err();
        assert!(err.to_string().starts_with("/proc/8/cgroup: "), "{err}");
        for (bad, line) in [
            ("x::/", 1),
            ("0::/\n0:/", 2),
            ("0::/\n1:cpu:", 2),
            ("-1:cpu:/", 1),
            ("nothing", 1),
        ] {
            let err = CgroupMembership::parse("/proc/8/cgroup", bad).unwrap_err();
            assert_eq!(err.line, Some(line), "{bad:?}: {err}");
        }
    }

    #[test]
    fn truncated_cgroup_is_an_error() {
        let cut = &HYBRID[..HYBRID.find("4:memory:").unwrap() + 9];
        assert!(CgroupMembership::parse("cgroup", cut).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = CgroupMembership::parse("cgroup", &text);
        }

        #[test]
        fn cgroup_like_text_never_panics(text in "([0-9]{1,2}:[a-z,=]{0,12}:[/a-z:]{0,12}\n){0,6}") {
            if let Ok(m) = CgroupMembership::parse("cgroup", &text) {
                prop_assert!(!m.lines.is_empty());
            }
        }
    }
}
