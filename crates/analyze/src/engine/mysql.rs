//! The MySQL/MariaDB detectors in the engine: [`MYSQL_HIT_RATIO_DROP`] and
//! [`MYSQL_RSS_OVER_POOL`] on each `mysql` entity, with its process's RSS
//! and major faults and its cgroup's refaults beside it
//! ([`crate::mysql`] does the arithmetic).

use super::{Condition, Engine, EntityState, Key};
use crate::finding::{Evidence, Layer, Severity, MYSQL_HIT_RATIO_DROP, MYSQL_RSS_OVER_POOL};
use crate::mysql::{hit_ratio_drop, ledger, rss_vs_pool, Cause, LedgerInput, ServerPoint};
use memlens_model::series::Entity;

/// The metric whose arrival makes a server's instant.
pub(super) const TRIGGER: &str = "mysql_pool_read_requests";

fn mib(bytes: f64) -> f64 {
    bytes / 1048576.0
}

impl Engine {
    /// Appends this instant's point of each server that reported one.
    pub(super) fn push_mysql(&mut self, ts_ms: i64) {
        let mut pushes = Vec::new();
        for (entity, state) in &self.entities {
            let Entity::Mysql { pid, start_time } = entity else {
                continue;
            };
            if !state.updated.contains(&TRIGGER) {
                continue;
            }
            let process = Entity::Process {
                pid: *pid,
                start_time: *start_time,
            };
            let ps = self.entities.get(&process);
            let cgroup = self
                .process_cgroups
                .get(&process)
                .and_then(|path| self.entities.get(&Entity::Cgroup { path: path.clone() }));
            let get = |s: Option<&EntityState>, m: &str| s.and_then(|s| s.latest.get(m).copied());
            // The pool is anonymous memory: only its cgroup's anon refaults
            // and, when the host has swap, the server's major faults (swap-ins)
            // can be pool pages coming back. Without swap every major fault
            // is a file page (its binary, libraries, data files read through
            // the page cache), and file refaults are the page cache's: under
            // another process's I/O they rose to 91/s beside an untouched pool.
            let swap_bytes = self
                .entities
                .get(&Entity::Host)
                .and_then(|h| h.latest.get("swap_total_bytes").copied());
            let major_faults = match swap_bytes {
                Some(swap) if swap <= 0.0 => Some(0.0),
                _ => get(ps, "major_faults"),
            };
            let refaults = get(cgroup, "anon_refaults");
            let (Some(pool), Some(requests), Some(reads)) = (
                get(Some(state), "mysql_pool_size_bytes"),
                get(Some(state), TRIGGER),
                get(Some(state), "mysql_pool_reads"),
            ) else {
                continue;
            };
            pushes.push((
                entity.clone(),
                ServerPoint {
                    ts_ms,
                    pool_size_bytes: pool,
                    pages_data: get(Some(state), "mysql_pool_pages_data").unwrap_or(0.0),
                    read_requests: requests,
                    reads,
                    rss_bytes: get(ps, "rss_bytes"),
                    major_faults,
                    refaults,
                },
            ));
        }
        let keep_ms = (self.config.mysql.window_seconds * 1000.0) as i64;
        for (entity, point) in pushes {
            if let Some(state) = self.entities.get_mut(&entity) {
                state.mysql.push_back(point);
                while state
                    .mysql
                    .front()
                    .is_some_and(|p| p.ts_ms < ts_ms - keep_ms)
                {
                    state.mysql.pop_front();
                }
            }
        }
    }

    /// The conditions of a server, due when its trigger metric arrived.
    pub(super) fn evaluate_mysql(
        &self,
        entity: &Entity,
        state: &EntityState,
        metric: &'static str,
        out: &mut Vec<(Key, Option<Condition>)>,
    ) {
        let Entity::Mysql { pid, start_time } = entity else {
            return;
        };
        if metric != TRIGGER {
            return;
        }
        let config = &self.config.mysql;
        let points: Vec<ServerPoint> = state.mysql.iter().copied().collect();
        // Only a full window is judged (a half-window is no baseline).
        let span_s = match (points.first(), points.last()) {
            (Some(a), Some(b)) => (b.ts_ms - a.ts_ms) as f64 / 1000.0,
            _ => 0.0,
        };
        let full = span_s >= config.window_seconds * 0.8;
        let drop = hit_ratio_drop(&points, config).filter(|d| full && d.fires);
        out.push((
            (entity.clone(), MYSQL_HIT_RATIO_DROP, TRIGGER),
            drop.map(|d| {
                let (why, what) = match d.cause {
                    Cause::PoolShrank => ("the buffer pool shrank", format!(
                        "the pool went from {:.0} to {:.0} MiB (data pages {:.0} -> {:.0}): restore innodb_buffer_pool_size, or find what shrank it (SET GLOBAL, a memory-pressure resize); on the host side, give the server's cgroup room for the pool",
                        mib(d.pool_size_bytes.0), mib(d.pool_size_bytes.1), d.pages_data.0, d.pages_data.1
                    )),
                    Cause::PagesReclaimed => ("pool pages were reclaimed and faulted back", format!(
                        "the server's swap-ins and its cgroup's anon refaults rose to {:.0}/s: the kernel is taking the pool's pages; on the host side, stop the neighbour's growth or raise the server's cgroup limit; on the server side, lower innodb_buffer_pool_size so the pool fits",
                        d.faults_per_second.1
                    )),
                    Cause::QueryMixChanged => ("the query mix changed", format!(
                        "read requests went from {:.0}/s to {:.0}/s and pages read from disk from {:.0}/s to {:.0}/s with no memory signal: look for the new queries (slow log, performance_schema digests); memory is not the cause",
                        d.requests_per_second.0, d.requests_per_second.1,
                        d.disk_reads_per_second.0, d.disk_reads_per_second.1
                    )),
                    Cause::Unknown => ("no memory or load signal explains it", "compare the slow log and the working set's size against the pool".to_string()),
                };
                let mut evidence = vec![
                    Evidence::new("hit_ratio_before", d.before, "ratio", Layer::Derived),
                    Evidence::new("hit_ratio_after", d.after, "ratio", Layer::Derived),
                    Evidence::new("pool_size_before_bytes", d.pool_size_bytes.0, "bytes", Layer::Process),
                    Evidence::new("pool_size_after_bytes", d.pool_size_bytes.1, "bytes", Layer::Process),
                    Evidence::new("pages_data_before", d.pages_data.0, "", Layer::Process),
                    Evidence::new("pages_data_after", d.pages_data.1, "", Layer::Process),
                    Evidence::new("read_requests_per_second_before", d.requests_per_second.0, "1/s", Layer::Process),
                    Evidence::new("read_requests_per_second_after", d.requests_per_second.1, "1/s", Layer::Process),
                    Evidence::new("disk_reads_per_second_before", d.disk_reads_per_second.0, "1/s", Layer::Process),
                    Evidence::new("disk_reads_per_second_after", d.disk_reads_per_second.1, "1/s", Layer::Process),
                    Evidence::new("faults_per_second_before", d.faults_per_second.0, "1/s", Layer::Kernel),
                    Evidence::new("faults_per_second_after", d.faults_per_second.1, "1/s", Layer::Kernel),
                ];
                evidence.push(Evidence::new(cause_evidence(d.cause), 1.0, "", Layer::Derived));
                Condition {
                    severity: Severity::Warning,
                    evidence,
                    recommendation: format!("cause: {} ({}). {what}", d.cause.as_str(), why),
                }
            }),
        ));
        let process = Entity::Process {
            pid: *pid,
            start_time: *start_time,
        };
        let over = rss_vs_pool(&points, config).filter(|v| full && v.fires);
        out.push((
            (entity.clone(), MYSQL_RSS_OVER_POOL, TRIGGER),
            over.map(|v| {
                let ps = self.entities.get(&process);
                let get = |s: Option<&EntityState>, m: &str| s.and_then(|s| s.latest.get(m).copied());
                let page = get(Some(state), "mysql_page_size_bytes").unwrap_or(16384.0);
                let m = |name: &str| get(Some(state), name);
                let exact = m("mysql_pool_range_found") == Some(1.0);
                let anon = get(ps, "anon_bytes").or(get(ps, "rss_bytes")).unwrap_or(0.0);
                let l = ledger(&LedgerInput {
                    anon_rss_bytes: anon,
                    pool_size_bytes: m("mysql_pool_size_bytes"),
                    page_size_bytes: page,
                    pages_total: m("mysql_pool_pages_total"),
                    pages_data: m("mysql_pool_pages_data").unwrap_or(0.0),
                    pages_free: m("mysql_pool_pages_free"),
                    pages_misc: m("mysql_pool_pages_misc"),
                    pool_resident_bytes: m("mysql_pool_resident_bytes"),
                    pool_resident_exact: exact,
                    log_buffer_bytes: m("mysql_log_buffer_bytes"),
                    threads_memory_bytes: m("mysql_threads_memory_bytes"),
                    memory_used_bytes: m("mysql_memory_used_bytes"),
                    memory_used_initial_bytes: m("mysql_memory_used_initial_bytes"),
                });
                let mut evidence = vec![
                    Evidence::new("rss_to_pool_ratio", v.ratio, "ratio", Layer::Derived),
                    Evidence::new("rss_swing_to_pool_ratio", v.swing_ratio, "ratio", Layer::Derived),
                    Evidence::new("anon_rss_bytes", l.anon_rss_bytes, "bytes", Layer::Process),
                    Evidence::new("pool_data_bytes", l.pool_data_bytes, "bytes", Layer::Process),
                    Evidence::new("untracked_bytes", l.untracked_bytes, "bytes", Layer::Derived),
                ];
                if let Some(r) = l.pool_resident_bytes {
                    evidence.push(Evidence::new("pool_resident_bytes", r, "bytes", Layer::Process));
                }
                if let Some(b) = l.log_buffer_bytes {
                    evidence.push(Evidence::new("log_buffer_bytes", b, "bytes", Layer::Process));
                }
                if let Some(p) = l.pool {
                    evidence.push(Evidence::new("pool_descriptor_bytes", p.descriptor_bytes, "bytes", Layer::Process));
                    evidence.push(Evidence::new("pool_free_resident_bytes", p.free_resident_bytes, "bytes", Layer::Process));
                }
                if let Some(c) = l.connections_bytes {
                    evidence.push(Evidence::new("connections_bytes", c, "bytes", Layer::Process));
                }
                Condition {
                    severity: Severity::Warning,
                    evidence,
                    recommendation: format!(
                        "mysqld's RSS is {:.0} % of its buffer pool and swings by {:.0} % of it; {:.0} MiB are neither pool nor connections (allocator retention, untracked): on the server side, check version_malloc_library (glibc arenas keep freed memory: jemalloc or MALLOC_ARENA_MAX=2), per-connection buffers and max_connections; on the host side, size the cgroup for the RSS peak, not the pool",
                        v.ratio * 100.0,
                        v.swing_ratio * 100.0,
                        mib(l.untracked_bytes)
                    ),
                }
            }),
        ));
    }
}

/// The evidence naming the cause (value 1).
fn cause_evidence(cause: Cause) -> &'static str {
    match cause {
        Cause::PoolShrank => "cause_pool_shrank",
        Cause::PagesReclaimed => "cause_pages_reclaimed",
        Cause::QueryMixChanged => "cause_query_mix_changed",
        Cause::Unknown => "cause_unknown",
    }
}
