//! `/proc/PID/mountinfo`: where the cgroup hierarchies are mounted.
//!
//! A host runs cgroup v1 (one hierarchy per controller set), v2 (one unified
//! hierarchy) or both at once ("hybrid": v1 controllers plus an empty v2 tree,
//! often at `/sys/fs/cgroup/unified`). Which controllers a v2 tree actually has
//! is in its `cgroup.controllers` file, not in mountinfo.

use crate::ParseError;

/// One cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Controllers bound to it (`memory`, `cpu`, ...; `name=systemd` kept as is).
    pub controllers: Vec<String>,
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: String,
    /// The cgroup path of the mount's root inside the hierarchy (`/` unless bind-mounted).
    pub root: String,
}

/// A cgroup v2 (unified) mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Mount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup`.
    pub mount_point: String,
    /// The cgroup path of the mount's root (`/` unless inside a cgroup namespace bind).
    pub root: String,
}

/// The cgroup mounts of a mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// v1 hierarchies, in mountinfo order.
    pub v1: Vec<V1Hierarchy>,
    /// v2 mounts, in mountinfo order (usually zero or one).
    pub v2: Vec<V2Mount>,
}

impl CgroupMounts {
    /// Parses mountinfo text; `input` names it in errors.
    ///
    /// Lines that are not cgroup mounts are only checked for the fields needed to
    /// recognise them.
    pub fn parse(input: &str, text: &str) -> Result<CgroupMounts, ParseError> {
        let mut mounts = CgroupMounts::default();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: &str| ParseError::at_line(input, index + 1, why.to_string());
            // Fields before " - " are: id parent major:minor root mount_point options [optional...]
            let (left, right) = line
                .split_once(" - ")
                .ok_or_else(|| bad("no \" - \" separator before the filesystem type"))?;
            let left: Vec<&str> = left.split(' ').collect();
            if left.len() < 6 {
                return Err(bad("fewer than six fields before the separator"));
            }
            let mut right = right.split(' ');
            let fs_type = right.next().ok_or_else(|| bad("no filesystem type"))?;
            let _source = right.next().ok_or_else(|| bad("no mount source"))?;
            let super_options = right.next().ok_or_else(|| bad("no super options"))?;
            let root = unescape(left[3]);
            let mount_point = unescape(left[4]);
            match fs_type {
                "cgroup2" => mounts.v2.push(V2Mount { mount_point, root }),
                "cgroup" => {
                    let controllers = super_options
                        .split(',')
                        .filter(|opt| !is_generic_option(opt))
                        .map(str::to_string)
                        .collect();
                    mounts.v1.push(V1Hierarchy {
                        controllers,
                        mount_point,
                        root,
                    });
                }
                _ => {}
            }
        }
        Ok(mounts)
    }

    /// The v1 hierarchy that carries the memory controller, if any.
    pub fn memory_v1(&self) -> Option<&V1Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "memory"))
    }

    /// The first v2 mount, if any.
    pub fn unified(&self) -> Option<&V2Mount> {
        self.v2.first()
    }
}

/// Mount options that are not controller names.
fn is_generic_option(option: &str) -> bool {
    matches!(
        option,
        "rw" | "ro"
            | "nosuid"
            | "nodev"
            | "noexec"
            | "relatime"
            | "noatime"
            | "clone_children"
            | "xattr"
            | "nsdelegate"
            | "memory_recursiveprot"
            | "memory_localevents"
            | "memory_hugetlb_accounting"
            | "favordynmods"
            | "cpuset_v2_mode"
    ) || option.starts_with("release_agent=")
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host_with_v1_memory() {
        // This machine: v1 controllers under /sys/fs/cgroup/*, an empty v2 at unified/.
        let text = include_str!("../testdata/linux6.18-mountinfo-hybrid-v1memory.txt");
        let mounts = CgroupMounts::parse("mountinfo", text).unwrap();
        let memory = mounts.memory_v1().expect("memory hierarchy");
        assert_eq!(memory.mount_point, "/sys/fs/cgroup/memory");
        assert_eq!(memory.controllers, vec!["memory".to_string()]);
        assert_eq!(memory.root, "/");
        assert_eq!(
            mounts.unified().unwrap().mount_point,
            "/sys/fs/cgroup/unified"
        );
        assert!(mounts
            .v1
            .iter()
            .any(|h| h.controllers == vec!["name=systemd".to_string()]));
    }

    #[test]
    fn pure_v2_host() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let mounts = CgroupMounts::parse("mountinfo", text).unwrap();
        assert!(mounts.memory_v1().is_none());
        assert_eq!(mounts.unified().unwrap().mount_point, "/sys/fs/cgroup");
    }

    #[test]
    fn escaped_mount_points() {
        let text = "40 31 0:37 / /mnt/my\\040cgroups rw - cgroup cgroup rw,nosuid,memory,cpu\n";
        let mounts = CgroupMounts::parse("mountinfo", text).unwrap();
        assert_eq!(mounts.v1[0].mount_point, "/mnt/my cgroups");
        assert_eq!(mounts.v1[0].controllers, vec!["memory", "cpu"]);
    }

    #[test]
    fn malformed_lines_are_named() {
        let err = CgroupMounts::parse("mountinfo", "1 2 3\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.to_string().contains("separator"), "{err}");
        let err = CgroupMounts::parse("mountinfo", "1 2 0:1 / /x rw - \n").unwrap_err();
        assert!(err.to_string().starts_with("mountinfo line 1"), "{err}");
    }
}
