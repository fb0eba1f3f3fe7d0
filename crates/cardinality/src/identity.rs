//! The identity of a process's series: what stays the same when a service
//! restarts, so a restart continues the series of the incarnation before it.
//!
//! A process series is named by its memory cgroup (`cgroup`, with the
//! readable `service` taken from it), its `comm`, and an `instance_index`
//! that keeps two live processes of the same cgroup and comm apart:
//!
//! - a process keeps its index for its whole life;
//! - a process seen for the first time takes the smallest index no live
//!   process of its cgroup and comm holds (processes first seen in the same
//!   cycle are taken oldest first, by start time);
//! - index 0 is not written as a label, so the usual single process of a
//!   service has none.
//!
//! A restarted service (the old process gone before the new one is seen)
//! takes index 0 again: its series go on. The number of series of a cgroup
//! and comm is bounded by how many of them ever ran at once, and two live
//! processes never share a series.

use memlens_model::series::Entity;
use std::collections::{HashMap, HashSet};

/// The label keeping two live processes of one cgroup and comm apart.
pub const INDEX_LABEL: &str = "instance_index";

/// The readable name of the service a memory cgroup belongs to:
///
/// - Kubernetes: `pod:UID` of a `kubepods…/pod<UID>` (or systemd driver
///   `…-pod<UID>.slice`) component;
/// - a container: `docker:ID12` (`/docker/<id>`, `docker-<id>.scope`),
///   `containerd:ID12` (`cri-containerd-<id>.scope`), `crio:ID12`
///   (`crio-<id>.scope`), `libpod:ID12` (podman), the first 12 hex digits;
/// - systemd: the innermost `*.service` unit (`nginx.service`);
/// - otherwise the path itself (`/` for the root cgroup).
pub fn service_of(cgroup: &str) -> String {
    let parts: Vec<&str> = cgroup.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| p.starts_with("kubepods")) {
        for part in parts.iter().rev() {
            let name = part.strip_suffix(".slice").unwrap_or(part);
            if let Some(at) = name.rfind("pod") {
                let uid = &name[at + 3..];
                if uid.len() >= 32
                    && uid
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == '-' || c == '_')
                {
                    return format!("pod:{}", uid.replace('_', "-"));
                }
            }
        }
    }
    if let Some(last) = parts.last() {
        let hex12 = |id: &str| -> Option<String> {
            (id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| id[..12].to_string())
        };
        let scoped = last.strip_suffix(".scope").unwrap_or(last);
        for (prefix, runtime) in [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("crio-", "crio"),
            ("libpod-", "libpod"),
        ] {
            if let Some(id) = scoped.strip_prefix(prefix).and_then(hex12) {
                return format!("{runtime}:{id}");
            }
        }
        if parts.len() >= 2 && matches!(parts[parts.len() - 2], "docker" | "libpod" | "containerd")
        {
            if let Some(id) = hex12(last) {
                return format!("{}:{id}", parts[parts.len() - 2]);
            }
        }
    }
    if let Some(unit) = parts.iter().rev().find(|p| p.ends_with(".service")) {
        return (*unit).to_string();
    }
    if cgroup.is_empty() {
        "/".to_string()
    } else {
        cgroup.to_string()
    }
}

/// The `target` label of a process's findings: `process:COMM@CGROUP`, with
/// `#N` appended for an `instance_index` N above 0 (the cgroup is empty when
/// unknown). The generated alert rules build the same text from the
/// series' labels.
pub fn process_target(comm: &str, cgroup: Option<&str>, index: u32) -> String {
    let mut target = format!("process:{comm}@{}", cgroup.unwrap_or(""));
    if index > 0 {
        target.push_str(&format!("#{index}"));
    }
    target
}

/// One live process, as the assignment needs it.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    /// Its pid.
    pub pid: i32,
    /// Its start time (clock ticks since boot).
    pub start_time: u64,
    /// Its `comm`.
    pub comm: &'a str,
    /// Its memory cgroup's path, when known.
    pub cgroup: Option<&'a str>,
}

/// The index of every live process, kept from cycle to cycle (the rule in
/// the module's overview).
#[derive(Debug, Default)]
pub struct Identities {
    /// Each live process's (cgroup, comm) and index.
    live: HashMap<Entity, ((String, String), u32)>,
}

impl Identities {
    /// Updates the assignment with this cycle's live processes and returns
    /// the index of each.
    pub fn assign(&mut self, processes: &[Live<'_>]) -> HashMap<Entity, u32> {
        let entity = |p: &Live<'_>| Entity::Process {
            pid: p.pid,
            start_time: p.start_time,
        };
        let key = |p: &Live<'_>| (p.cgroup.unwrap_or("").to_string(), p.comm.to_string());
        let current: HashMap<Entity, &Live<'_>> =
            processes.iter().map(|p| (entity(p), p)).collect();
        // A process gone, or one whose cgroup or comm changed (an exec, a
        // move), gives its index up; one that reads back without its
        // cgroup (on its way out) keeps it.
        self.live.retain(|e, (k, _)| {
            current
                .get(e)
                .is_some_and(|p| key(p) == *k || (p.cgroup.is_none() && p.comm == k.1))
        });
        let mut taken: HashMap<(String, String), HashSet<u32>> = HashMap::new();
        for (k, index) in self.live.values() {
            taken.entry(k.clone()).or_default().insert(*index);
        }
        let mut new: Vec<&Live<'_>> = processes
            .iter()
            .filter(|p| !self.live.contains_key(&entity(p)))
            .collect();
        new.sort_by_key(|p| (p.start_time, p.pid));
        for p in new {
            let k = key(p);
            let used = taken.entry(k.clone()).or_default();
            let index = (0..).find(|i| !used.contains(i)).unwrap_or(0);
            used.insert(index);
            self.live.insert(entity(p), (k, index));
        }
        self.live
            .iter()
            .map(|(e, (_, i))| (e.clone(), *i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(pid: i32, start_time: u64, comm: &'static str, cgroup: &'static str) -> Live<'static> {
        Live {
            pid,
            start_time,
            comm,
            cgroup: Some(cgroup),
        }
    }

    fn index(map: &HashMap<Entity, u32>, pid: i32, start_time: u64) -> u32 {
        map[&Entity::Process { pid, start_time }]
    }

    #[test]
    fn services_from_cgroup_paths() {
        for (path, service) in [
            ("/system.slice/nginx.service", "nginx.service"),
            ("/system.slice/docker-0123456789abcdef0123.scope", "docker:0123456789ab"),
            ("/docker/fedcba9876543210fedcba", "docker:fedcba987654"),
            (
                "/kubepods/burstable/pod2b5f1e0c-7c1a-4c5e-9f8e-0a1b2c3d4e5f/0123456789abcdef",
                "pod:2b5f1e0c-7c1a-4c5e-9f8e-0a1b2c3d4e5f",
            ),
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2b5f1e0c_7c1a_4c5e_9f8e_0a1b2c3d4e5f.slice/cri-containerd-0123456789abcdef.scope",
                "pod:2b5f1e0c-7c1a-4c5e-9f8e-0a1b2c3d4e5f",
            ),
            ("/system.slice/containerd.service/cri-containerd-aaaaaaaaaaaaaaaa.scope", "containerd:aaaaaaaaaaaa"),
            ("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "foo.service"),
            ("/memlens-test/a", "/memlens-test/a"),
            ("/", "/"),
            ("", "/"),
        ] {
            assert_eq!(service_of(path), service, "{path}");
        }
    }

    #[test]
    fn a_restart_takes_the_index_of_the_process_before_it() {
        let mut ids = Identities::default();
        let first = ids.assign(&[live(10, 100, "api", "/svc")]);
        assert_eq!(index(&first, 10, 100), 0);
        // Gone; the restart is seen a cycle later, or in the same cycle.
        ids.assign(&[]);
        let second = ids.assign(&[live(11, 200, "api", "/svc")]);
        assert_eq!(index(&second, 11, 200), 0);
        let third = ids.assign(&[live(12, 300, "api", "/svc")]);
        assert_eq!(index(&third, 12, 300), 0);
        assert_eq!(third.len(), 1);
    }

    #[test]
    fn two_live_processes_of_one_name_and_cgroup_stay_apart() {
        let mut ids = Identities::default();
        // First seen together: the older takes 0.
        let both = ids.assign(&[live(21, 500, "api", "/svc"), live(20, 400, "api", "/svc")]);
        assert_eq!(index(&both, 20, 400), 0);
        assert_eq!(index(&both, 21, 500), 1);
        // Another cgroup or comm has its own numbering.
        let more = ids.assign(&[
            live(21, 500, "api", "/svc"),
            live(20, 400, "api", "/svc"),
            live(30, 600, "api", "/other"),
            live(31, 600, "worker", "/svc"),
        ]);
        assert_eq!(index(&more, 30, 600), 0);
        assert_eq!(index(&more, 31, 600), 0);
        // The older exits: the younger keeps 1 (never moves to a series
        // another process wrote), and a newcomer takes the free 0.
        let after = ids.assign(&[live(21, 500, "api", "/svc"), live(22, 700, "api", "/svc")]);
        assert_eq!(index(&after, 21, 500), 1);
        assert_eq!(index(&after, 22, 700), 0);
        // Read back without its cgroup (a zombie): it keeps its index.
        let dying = ids.assign(&[
            Live {
                cgroup: None,
                ..live(21, 500, "api", "/svc")
            },
            live(22, 700, "api", "/svc"),
        ]);
        assert_eq!(index(&dying, 21, 500), 1);
        // An exec (new comm) gives the index up.
        let exec = ids.assign(&[live(21, 500, "sh", "/svc"), live(22, 700, "api", "/svc")]);
        assert_eq!(index(&exec, 21, 500), 0);
        assert_eq!(index(&exec, 22, 700), 0);
    }

    #[test]
    fn targets() {
        assert_eq!(process_target("api", Some("/svc"), 0), "process:api@/svc");
        assert_eq!(process_target("api", Some("/svc"), 2), "process:api@/svc#2");
        assert_eq!(process_target("api", None, 0), "process:api@");
    }
}
