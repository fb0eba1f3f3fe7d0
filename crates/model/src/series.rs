//! A snapshot as numeric series: what the history stores. One [`Point`] per
//! (entity, metric) and moment; raw values only (counters stay cumulative,
//! rates are derived when read), so a replay sees exactly what live saw.
//!
//! Metric names are part of the history's contract (`memlens query` users write
//! them in SQL): they are the model's field names, with their unit suffixes.

use crate::snapshot::{CgroupSample, HostSample, ProcessSample, Snapshot};
use crate::MysqlSample;
use memlens_linux::cgroup::Limit;
use std::collections::BTreeMap;

/// What a series is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    /// The whole host.
    Host,
    /// One process: a pid alone is reused, (pid, start time) is not.
    Process {
        /// The process id.
        pid: i32,
        /// Start time in clock ticks after boot.
        start_time: u64,
    },
    /// One memory cgroup, by its path in the hierarchy.
    Cgroup {
        /// The path as `/proc/PID/cgroup` shows it.
        path: String,
    },
    /// A MySQL/MariaDB server, by its process: its own series (pool, hit
    /// counters, Memory_used) beside the process's. A history written before
    /// this kind existed simply has none.
    Mysql {
        /// The server's process id.
        pid: i32,
        /// Its start time in clock ticks after boot.
        start_time: u64,
    },
}

impl Entity {
    /// A stable text key: `host`, `process:PID:START`, `cgroup:PATH`,
    /// `mysql:PID:START`.
    pub fn key(&self) -> String {
        match self {
            Entity::Host => "host".to_string(),
            Entity::Process { pid, start_time } => format!("process:{pid}:{start_time}"),
            Entity::Cgroup { path } => format!("cgroup:{path}"),
            Entity::Mysql { pid, start_time } => format!("mysql:{pid}:{start_time}"),
        }
    }

    /// The kind: `host`, `process`, `cgroup` or `mysql`.
    pub fn kind(&self) -> &'static str {
        match self {
            Entity::Host => "host",
            Entity::Process { .. } => "process",
            Entity::Cgroup { .. } => "cgroup",
            Entity::Mysql { .. } => "mysql",
        }
    }

    /// Reads back a [`Entity::key`]; `None` for anything else.
    pub fn from_key(key: &str) -> Option<Entity> {
        if key == "host" {
            return Some(Entity::Host);
        }
        if let Some(path) = key.strip_prefix("cgroup:") {
            return Some(Entity::Cgroup {
                path: path.to_string(),
            });
        }
        let (mysql, rest) = match key.strip_prefix("mysql:") {
            Some(rest) => (true, rest),
            None => (false, key.strip_prefix("process:")?),
        };
        let (pid, start) = rest.split_once(':')?;
        let (pid, start_time) = (pid.parse().ok()?, start.parse().ok()?);
        Some(if mysql {
            Entity::Mysql { pid, start_time }
        } else {
            Entity::Process { pid, start_time }
        })
    }
}

/// One value of one series at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Whose value.
    pub entity: Entity,
    /// The metric, with its unit suffix (`rss_bytes`, `minor_faults`).
    pub metric: &'static str,
    /// The value.
    pub value: f64,
}

/// Descriptive labels of an entity (comm, cmdline, cgroup, go version), kept
/// beside its series; they do not change for a process's lifetime.
pub type Labels = BTreeMap<&'static str, String>;

/// Whether a metric only ever grows over an entity's lifetime (a counter):
/// readers derive rates from it.
pub fn is_counter(metric: &str) -> bool {
    matches!(
        metric,
        "minor_faults"
            | "major_faults"
            | "cpu_user_seconds"
            | "run_queue_wait_seconds"
            | "cpu_system_seconds"
            | "read_bytes"
            | "write_bytes"
            | "page_faults"
            | "major_page_faults"
            | "oom_kills"
            | "pages_scanned"
            | "pages_stolen"
            | "pressure_some_total_usec"
            | "pressure_full_total_usec"
            | "oom_kill_count"
            | "file_refaults"
            | "anon_refaults"
            | "file_restores"
            | "anon_restores"
            | "voluntary_ctxt_switches"
            | "nonvoluntary_ctxt_switches"
            | "mysql_pool_read_requests"
            | "mysql_pool_reads"
            | "mysql_errors"
    ) || metric.ends_with("_total")
}

/// Every numeric value of `snapshot` as points: the host's, each process's and
/// each distinct cgroup's (once, however many processes share it).
pub fn snapshot_points(snapshot: &Snapshot) -> Vec<Point> {
    let mut points = Vec::with_capacity(16 + snapshot.processes.len() * 24);
    host_points(&snapshot.host, &mut points);
    let mut cgroups_seen: Vec<&str> = Vec::new();
    for process in &snapshot.processes {
        process_points(process, &mut points);
        if let Some(cgroup) = &process.cgroup {
            if !cgroups_seen.contains(&cgroup.path.as_str()) {
                cgroups_seen.push(&cgroup.path);
                cgroup_points(cgroup, &mut points);
            }
        }
    }
    for server in &snapshot.mysql {
        mysql_points(server, &mut points);
    }
    for cgroup in &snapshot.emptied_cgroups {
        if !cgroups_seen.contains(&cgroup.path.as_str()) {
            cgroups_seen.push(&cgroup.path);
            cgroup_points(cgroup, &mut points);
        }
    }
    points
}

/// The longest command line kept as a label: enough to tell processes apart;
/// compiler and JVM command lines of many kilobytes would otherwise cost more
/// than the process's samples.
pub const MAX_CMDLINE_LABEL_BYTES: usize = 512;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn capped(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The labels of a process entity.
pub fn process_labels(process: &ProcessSample) -> Labels {
    let mut labels = Labels::new();
    labels.insert("comm", process.comm.clone());
    if !process.cmdline.is_empty() {
        labels.insert(
            "cmdline",
            capped(process.cmdline.join(" "), MAX_CMDLINE_LABEL_BYTES),
        );
    }
    if let Some(cgroup) = &process.cgroup {
        labels.insert("cgroup", cgroup.path.clone());
    }
    if let Some(go) = &process.go {
        labels.insert("go_version", go.version.clone());
        if let Some(module) = &go.module {
            labels.insert("go_module", module.clone());
        }
    }
    labels
}

/// The labels of a MySQL/MariaDB server entity.
pub fn mysql_labels(server: &MysqlSample) -> Labels {
    let mut labels = Labels::new();
    labels.insert("endpoint", server.endpoint.clone());
    if let Some(version) = &server.version {
        labels.insert("mysql_version", version.clone());
    }
    if let Some(malloc) = &server.malloc_library {
        labels.insert("malloc_library", malloc.clone());
    }
    labels
}

fn mysql_points(m: &MysqlSample, points: &mut Vec<Point>) {
    let e = Entity::Mysql {
        pid: m.process.pid,
        start_time: m.process.start_time,
    };
    let o = |v: Option<u64>| v.map(|v| v as f64);
    push(
        points,
        &e,
        "mysql_up",
        Some(if m.error.is_none() { 1.0 } else { 0.0 }),
    );
    push(points, &e, "mysql_errors", Some(m.errors_total as f64));
    push(points, &e, "mysql_pool_size_bytes", o(m.pool_size_bytes));
    push(points, &e, "mysql_page_size_bytes", o(m.page_size_bytes));
    push(points, &e, "mysql_pool_pages_total", o(m.pool_pages_total));
    push(points, &e, "mysql_pool_pages_data", o(m.pool_pages_data));
    push(points, &e, "mysql_pool_pages_free", o(m.pool_pages_free));
    push(points, &e, "mysql_pool_pages_misc", o(m.pool_pages_misc));
    push(points, &e, "mysql_log_buffer_bytes", o(m.log_buffer_bytes));
    push(
        points,
        &e,
        "mysql_pool_range_found",
        m.pool_resident_source
            .as_ref()
            .map(|s| if s == "range" { 1.0 } else { 0.0 }),
    );
    push(
        points,
        &e,
        "mysql_threads_memory_bytes",
        o(m.threads_memory_bytes),
    );
    push(
        points,
        &e,
        "mysql_pool_read_requests",
        o(m.pool_read_requests),
    );
    push(points, &e, "mysql_pool_reads", o(m.pool_reads));
    push(
        points,
        &e,
        "mysql_memory_used_bytes",
        o(m.memory_used_bytes),
    );
    push(
        points,
        &e,
        "mysql_threads_connected",
        o(m.threads_connected),
    );
    push(
        points,
        &e,
        "mysql_instrumented_bytes",
        o(m.instrumented_bytes),
    );
    push(
        points,
        &e,
        "mysql_memory_used_initial_bytes",
        o(m.memory_used_initial_bytes),
    );
    push(
        points,
        &e,
        "mysql_sort_buffer_size_bytes",
        o(m.sort_buffer_size_bytes),
    );
    push(
        points,
        &e,
        "mysql_pool_resident_bytes",
        o(m.pool_resident_bytes),
    );
}

/// The labels of a cgroup entity.
pub fn cgroup_labels(cgroup: &CgroupSample) -> Labels {
    let mut labels = Labels::new();
    labels.insert("cgroup_version", cgroup.version.to_string());
    if let Some(name) = &cgroup.name {
        labels.insert("name", name.clone());
    }
    labels
}

fn push(points: &mut Vec<Point>, entity: &Entity, metric: &'static str, value: Option<f64>) {
    if let Some(value) = value.filter(|v| v.is_finite()) {
        points.push(Point {
            entity: entity.clone(),
            metric,
            value,
        });
    }
}

fn host_points(host: &HostSample, points: &mut Vec<Point>) {
    let e = Entity::Host;
    let u = |v: u64| Some(v as f64);
    let o = |v: Option<u64>| v.map(|v| v as f64);
    push(points, &e, "mem_total_bytes", u(host.mem_total_bytes));
    push(
        points,
        &e,
        "mem_available_bytes",
        u(host.mem_available_bytes),
    );
    push(points, &e, "mem_free_bytes", u(host.mem_free_bytes));
    push(points, &e, "swap_total_bytes", u(host.swap_total_bytes));
    push(points, &e, "swap_free_bytes", u(host.swap_free_bytes));
    push(points, &e, "anon_bytes", u(host.anon_bytes));
    push(points, &e, "page_cache_bytes", u(host.page_cache_bytes));
    push(points, &e, "shmem_bytes", u(host.shmem_bytes));
    push(points, &e, "committed_bytes", u(host.committed_bytes));
    push(points, &e, "commit_limit_bytes", u(host.commit_limit_bytes));
    push(points, &e, "page_faults", u(host.page_faults));
    push(points, &e, "major_page_faults", u(host.major_page_faults));
    push(points, &e, "oom_kills", o(host.oom_kills));
    push(points, &e, "pages_scanned", u(host.pages_scanned));
    push(points, &e, "pages_stolen", u(host.pages_stolen));
    push(
        points,
        &e,
        "pressure_some_total_usec",
        o(host.pressure_some_total_usec),
    );
    push(
        points,
        &e,
        "pressure_full_total_usec",
        o(host.pressure_full_total_usec),
    );
    push(points, &e, "max_map_count", o(host.max_map_count));
}

fn process_points(p: &ProcessSample, points: &mut Vec<Point>) {
    let e = Entity::Process {
        pid: p.pid,
        start_time: p.start_time,
    };
    let o = |v: Option<u64>| v.map(|v| v as f64);
    push(points, &e, "rss_bytes", o(p.rss_bytes));
    push(points, &e, "pss_bytes", o(p.pss_bytes));
    push(points, &e, "uss_bytes", o(p.uss_bytes));
    push(points, &e, "swap_bytes", o(p.swap_bytes));
    push(points, &e, "swap_pss_bytes", o(p.swap_pss_bytes));
    push(points, &e, "anon_bytes", o(p.anon_bytes));
    push(points, &e, "file_bytes", o(p.file_bytes));
    push(points, &e, "shmem_bytes", o(p.shmem_bytes));
    push(points, &e, "page_tables_bytes", o(p.page_tables_bytes));
    push(points, &e, "vm_size_bytes", o(p.vm_size_bytes));
    push(points, &e, "minor_faults", Some(p.minor_faults as f64));
    push(points, &e, "major_faults", Some(p.major_faults as f64));
    push(points, &e, "threads", Some(p.threads as f64));
    push(points, &e, "cpu_user_seconds", Some(p.cpu_user_seconds));
    push(points, &e, "cpu_system_seconds", Some(p.cpu_system_seconds));
    push(points, &e, "vma_count", o(p.vma_count));
    push(points, &e, "anon_vma_count", o(p.anon_vma_count));
    push(points, &e, "largest_gap_bytes", o(p.largest_gap_bytes));
    push(points, &e, "fd_count", o(p.fd_count));
    push(points, &e, "fd_limit", o(p.fd_limit));
    push(points, &e, "oom_score", p.oom_score.map(f64::from));
    push(points, &e, "oom_score_adj", p.oom_score_adj.map(f64::from));
    push(points, &e, "read_bytes", o(p.read_bytes));
    push(points, &e, "write_bytes", o(p.write_bytes));
}

/// A limit as a number; "max" (no limit) is not a number and is left out.
fn limit_value(limit: Option<Limit>) -> Option<f64> {
    match limit? {
        Limit::Bytes(bytes) => Some(bytes as f64),
        Limit::Max => None,
    }
}

fn cgroup_points(c: &CgroupSample, points: &mut Vec<Point>) {
    let e = Entity::Cgroup {
        path: c.path.clone(),
    };
    push(points, &e, "usage_bytes", c.usage_bytes.map(|v| v as f64));
    push(points, &e, "limit_bytes", limit_value(c.limit_bytes));
    push(
        points,
        &e,
        "effective_limit_bytes",
        limit_value(c.effective_limit_bytes),
    );
    push(points, &e, "high_bytes", limit_value(c.high_bytes));
    push(
        points,
        &e,
        "oom_kill_count",
        c.oom_kill_count.map(|v| v as f64),
    );
    let o = |v: Option<u64>| v.map(|v| v as f64);
    push(points, &e, "inactive_file_bytes", o(c.inactive_file_bytes));
    push(points, &e, "active_file_bytes", o(c.active_file_bytes));
    push(points, &e, "anon_bytes", o(c.anon_bytes));
    push(points, &e, "file_refaults", o(c.file_refaults));
    push(points, &e, "anon_refaults", o(c.anon_refaults));
    push(points, &e, "major_faults", o(c.major_faults));
    push(points, &e, "file_restores", o(c.file_restores));
    push(points, &e, "anon_restores", o(c.anon_restores));
    push(points, &e, "pages_scanned", o(c.pages_scanned));
    push(points, &e, "pages_stolen", o(c.pages_stolen));
    push(
        points,
        &e,
        "pressure_some_total_usec",
        o(c.pressure_some_total_usec),
    );
    push(
        points,
        &e,
        "pressure_full_total_usec",
        o(c.pressure_full_total_usec),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_command_lines_are_capped_at_a_char_boundary() {
        let process = ProcessSample {
            cmdline: vec!["rustc".to_string(), "é".repeat(2000)],
            ..ProcessSample::default()
        };
        let label = &process_labels(&process)["cmdline"];
        assert!(label.len() <= MAX_CMDLINE_LABEL_BYTES, "{}", label.len());
        assert!(label.starts_with("rustc é") && label.ends_with('…'));
        let short = ProcessSample {
            cmdline: vec!["sleep".to_string(), "30".to_string()],
            ..ProcessSample::default()
        };
        assert_eq!(process_labels(&short)["cmdline"], "sleep 30");
    }

    #[test]
    fn keys_round_trip() {
        for entity in [
            Entity::Host,
            Entity::Process {
                pid: 42,
                start_time: 123_456,
            },
            Entity::Cgroup {
                path: "/kubepods/pod1:x".to_string(),
            },
            Entity::Mysql {
                pid: 7,
                start_time: 99,
            },
        ] {
            assert_eq!(Entity::from_key(&entity.key()), Some(entity.clone()));
        }
        assert_eq!(Entity::from_key("process:1"), None);
        assert_eq!(Entity::from_key("proc:1:2"), None);
    }

    #[test]
    fn a_shared_cgroup_is_one_entity_and_max_is_not_a_number() {
        let cgroup = CgroupSample {
            version: 1,
            path: "/t".to_string(),
            usage_bytes: Some(10),
            limit_bytes: Some(Limit::Max),
            effective_limit_bytes: Some(Limit::Bytes(1 << 20)),
            ..CgroupSample::default()
        };
        let process = |pid| ProcessSample {
            pid,
            start_time: 7,
            rss_bytes: Some(4096),
            cgroup: Some(cgroup.clone()),
            ..ProcessSample::default()
        };
        let snapshot = Snapshot {
            taken_at_unix_ms: 1,
            host: HostSample::default(),
            processes: vec![process(1), process(2)],
            emptied_cgroups: Vec::new(),
            mysql: Vec::new(),
        };
        let points = snapshot_points(&snapshot);
        let of = |entity: &Entity, metric: &str| {
            points
                .iter()
                .filter(|p| &p.entity == entity && p.metric == metric)
                .map(|p| p.value)
                .collect::<Vec<_>>()
        };
        let cg = Entity::Cgroup {
            path: "/t".to_string(),
        };
        assert_eq!(of(&cg, "usage_bytes"), vec![10.0]);
        assert!(of(&cg, "limit_bytes").is_empty(), "max is no number");
        assert_eq!(of(&cg, "effective_limit_bytes"), vec![1048576.0]);
        let p2 = Entity::Process {
            pid: 2,
            start_time: 7,
        };
        assert_eq!(of(&p2, "rss_bytes"), vec![4096.0]);
        assert!(of(&p2, "pss_bytes").is_empty(), "not read is no value");
        assert!(is_counter("minor_faults") && !is_counter("rss_bytes"));
    }
}
