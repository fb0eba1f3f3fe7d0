//! A process's memory cgroup into a [`CgroupSample`], read once per cgroup per snapshot.

use memlens_linux::cgroup::{describe_cgroup, CgroupOwner, CgroupVersion};
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
        inactive_file_bytes: memory.stat.as_ref().and_then(|stat| {
            stat.get(match resolved.version {
                CgroupVersion::V1 => "total_inactive_file",
                CgroupVersion::V2 => "inactive_file",
            })
        }),
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
