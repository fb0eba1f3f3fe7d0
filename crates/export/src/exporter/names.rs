//! How a history series (entity kind + metric name, see `docs/history.md`)
//! becomes a Prometheus metric family (see `docs/metrics.md`).
//!
//! The rule: `memlens_` + a prefix by entity (`host_`, `process_`, `go_` for
//! a process's Go runtime metrics, `cgroup_memory_`) + the history name, with
//! `_total` added to counters, non-base units converted to seconds, and the
//! few names Prometheus conventions spell differently renamed (RSS is
//! `resident_memory_bytes` as in client libraries, `fd_count` is `open_fds`;
//! no gauge ends in `_count`). The table below lists every known metric; a
//! metric added to the history later gets the rule without a rename.

use memlens_model::series::is_counter;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows over its series' lifetime.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    /// The word of the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The family a series belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySpec {
    /// The metric name.
    pub name: String,
    /// Counter or gauge.
    pub kind: Kind,
    /// Multiplies the stored value (unit conversion: µs and ns to seconds).
    pub scale: f64,
    /// The `# HELP` text.
    pub help: String,
}

/// (history metric, exported name, scale, help) of host series.
#[rustfmt::skip]
const HOST: &[(&str, &str, f64, &str)] = &[
    ("mem_total_bytes", "memlens_host_memory_total_bytes", 1.0, "MemTotal of /proc/meminfo."),
    ("mem_available_bytes", "memlens_host_memory_available_bytes", 1.0, "MemAvailable of /proc/meminfo: memory that can be had without swapping."),
    ("mem_free_bytes", "memlens_host_memory_free_bytes", 1.0, "MemFree of /proc/meminfo."),
    ("swap_total_bytes", "memlens_host_swap_total_bytes", 1.0, "SwapTotal of /proc/meminfo."),
    ("swap_free_bytes", "memlens_host_swap_free_bytes", 1.0, "SwapFree of /proc/meminfo."),
    ("anon_bytes", "memlens_host_memory_anon_bytes", 1.0, "Anonymous memory of the host (AnonPages)."),
    ("page_cache_bytes", "memlens_host_memory_page_cache_bytes", 1.0, "Page cache of the host (Cached)."),
    ("shmem_bytes", "memlens_host_memory_shmem_bytes", 1.0, "Shared memory and tmpfs of the host (Shmem)."),
    ("committed_bytes", "memlens_host_memory_committed_bytes", 1.0, "Committed_AS of /proc/meminfo."),
    ("commit_limit_bytes", "memlens_host_memory_commit_limit_bytes", 1.0, "CommitLimit of /proc/meminfo."),
    ("page_faults", "memlens_host_page_faults_total", 1.0, "Page faults of the host (pgfault of /proc/vmstat)."),
    ("major_page_faults", "memlens_host_major_page_faults_total", 1.0, "Major page faults of the host (pgmajfault)."),
    ("oom_kills", "memlens_host_oom_kills_total", 1.0, "Processes killed by the OOM killer (oom_kill of /proc/vmstat)."),
    ("pages_scanned", "memlens_host_pages_scanned_total", 1.0, "Pages scanned by reclaim (pgscan_*)."),
    ("pages_stolen", "memlens_host_pages_stolen_total", 1.0, "Pages reclaimed (pgsteal_*)."),
    ("pressure_some_total_usec", "memlens_host_memory_pressure_some_seconds_total", 1e-6, "Time some task stalled on memory (/proc/pressure/memory some total)."),
    ("pressure_full_total_usec", "memlens_host_memory_pressure_full_seconds_total", 1e-6, "Time all non-idle tasks stalled on memory (/proc/pressure/memory full total)."),
    ("max_map_count", "memlens_host_max_memory_maps", 1.0, "vm.max_map_count: the most memory mappings a process may have."),
];

/// Process series (`/proc/PID/*`).
#[rustfmt::skip]
const PROCESS: &[(&str, &str, f64, &str)] = &[
    ("rss_bytes", "memlens_process_resident_memory_bytes", 1.0, "Resident set size (VmRSS)."),
    ("pss_bytes", "memlens_process_pss_bytes", 1.0, "Proportional set size (smaps_rollup Pss)."),
    ("uss_bytes", "memlens_process_uss_bytes", 1.0, "Unique set size: private clean + dirty pages (smaps_rollup)."),
    ("swap_bytes", "memlens_process_swap_bytes", 1.0, "Swapped-out anonymous memory (VmSwap)."),
    ("swap_pss_bytes", "memlens_process_swap_pss_bytes", 1.0, "Proportional share of swap (smaps_rollup SwapPss)."),
    ("anon_bytes", "memlens_process_anon_bytes", 1.0, "Resident anonymous memory (RssAnon)."),
    ("file_bytes", "memlens_process_file_bytes", 1.0, "Resident file-backed memory (RssFile)."),
    ("shmem_bytes", "memlens_process_shmem_bytes", 1.0, "Resident shared memory (RssShmem)."),
    ("page_tables_bytes", "memlens_process_page_tables_bytes", 1.0, "Page tables (VmPTE)."),
    ("vm_size_bytes", "memlens_process_virtual_memory_bytes", 1.0, "Virtual memory size (VmSize)."),
    ("minor_faults", "memlens_process_minor_faults_total", 1.0, "Minor page faults (/proc/PID/stat minflt)."),
    ("major_faults", "memlens_process_major_faults_total", 1.0, "Major page faults (/proc/PID/stat majflt)."),
    ("threads", "memlens_process_threads", 1.0, "Threads of the process."),
    ("cpu_user_seconds", "memlens_process_cpu_user_seconds_total", 1.0, "CPU time in user mode."),
    ("cpu_system_seconds", "memlens_process_cpu_system_seconds_total", 1.0, "CPU time in kernel mode."),
    ("run_queue_wait_seconds", "memlens_process_run_queue_wait_seconds_total", 1.0, "Time the threads waited on a run queue for a CPU, summed over the threads alive (/proc/PID/task/TID/schedstat); Go processes, read with their runtime."),
    ("vma_count", "memlens_process_memory_maps", 1.0, "Memory mappings (lines of /proc/PID/maps)."),
    ("anon_vma_count", "memlens_process_anon_memory_maps", 1.0, "Anonymous memory mappings."),
    ("largest_gap_bytes", "memlens_process_largest_address_gap_bytes", 1.0, "Largest unmapped gap of the address space."),
    ("fd_count", "memlens_process_open_fds", 1.0, "Open file descriptors."),
    ("fd_limit", "memlens_process_max_fds", 1.0, "Soft limit of open file descriptors (RLIMIT_NOFILE)."),
    ("oom_score", "memlens_process_oom_score", 1.0, "The kernel's OOM badness score (/proc/PID/oom_score)."),
    ("oom_score_adj", "memlens_process_oom_score_adj", 1.0, "The OOM score adjustment (/proc/PID/oom_score_adj)."),
    ("read_bytes", "memlens_process_read_bytes_total", 1.0, "Bytes read from storage (/proc/PID/io read_bytes)."),
    ("write_bytes", "memlens_process_write_bytes_total", 1.0, "Bytes written to storage (/proc/PID/io write_bytes)."),
    ("go_heap_alloc_bytes", "memlens_go_heap_alloc_bytes", 1.0, "Go heap: bytes of allocated heap objects (HeapAlloc)."),
    ("go_heap_inuse_bytes", "memlens_go_heap_inuse_bytes", 1.0, "Go heap: bytes in in-use spans (HeapInuse)."),
    ("go_heap_idle_bytes", "memlens_go_heap_idle_bytes", 1.0, "Go heap: bytes in idle spans (HeapIdle)."),
    ("go_heap_released_bytes", "memlens_go_heap_released_bytes", 1.0, "Go heap: bytes returned to the OS (HeapReleased)."),
    ("go_heap_sys_bytes", "memlens_go_heap_sys_bytes", 1.0, "Go heap: bytes obtained from the OS (HeapSys)."),
    ("go_heap_objects", "memlens_go_heap_objects", 1.0, "Go heap: allocated objects (HeapObjects)."),
    ("go_stack_inuse_bytes", "memlens_go_stack_inuse_bytes", 1.0, "Go: bytes in stack spans (StackInuse)."),
    ("go_sys_bytes", "memlens_go_sys_bytes", 1.0, "Go: total bytes obtained from the OS (Sys)."),
    ("go_next_gc_bytes", "memlens_go_next_gc_bytes", 1.0, "Go: heap size target of the next GC (NextGC)."),
    ("go_gc_cycles_total", "memlens_go_gc_cycles_total", 1.0, "Go: completed GC cycles (NumGC)."),
    ("go_gc_forced_cycles_total", "memlens_go_gc_forced_cycles_total", 1.0, "Go: GC cycles forced by the program (NumForcedGC)."),
    ("go_gc_pause_ns_total", "memlens_go_gc_pause_seconds_total", 1e-9, "Go: total stop-the-world GC pause (PauseTotalNs)."),
    ("go_alloc_bytes_total", "memlens_go_alloc_bytes_total", 1.0, "Go: bytes allocated for heap objects, cumulative (TotalAlloc)."),
    ("go_mallocs_total", "memlens_go_mallocs_total", 1.0, "Go: heap objects allocated, cumulative (Mallocs)."),
    ("go_frees_total", "memlens_go_frees_total", 1.0, "Go: heap objects freed, cumulative (Frees)."),
    ("go_gc_cpu_fraction", "memlens_go_gc_cpu_fraction", 1.0, "Go: fraction of CPU time used by the GC since start (GCCPUFraction)."),
    ("go_goroutines", "memlens_go_goroutines", 1.0, "Go: goroutines (from the service's /metrics)."),
    ("go_threads", "memlens_go_threads", 1.0, "Go: OS threads created by the runtime (from the service's /metrics)."),
    ("go_gogc_percent", "memlens_go_gogc_percent", 1.0, "Go: the GOGC setting (from the service's /metrics)."),
    ("go_gomemlimit_bytes", "memlens_go_gomemlimit_bytes", 1.0, "Go: the GOMEMLIMIT setting (from the service's /metrics)."),
    ("go_env_gomemlimit_bytes", "memlens_go_env_gomemlimit_bytes", 1.0, "Go: GOMEMLIMIT as the process's environment sets it (9.2e18: none), every Go process."),
    ("go_env_gogc_percent", "memlens_go_env_gogc_percent", 1.0, "Go: GOGC as the process's environment sets it (-1: off; 100 when unset), every Go process."),
];

/// Memory cgroup series.
#[rustfmt::skip]
const CGROUP: &[(&str, &str, f64, &str)] = &[
    ("usage_bytes", "memlens_cgroup_memory_usage_bytes", 1.0, "Memory charged to the cgroup (memory.current / memory.usage_in_bytes)."),
    ("limit_bytes", "memlens_cgroup_memory_limit_bytes", 1.0, "The cgroup's own hard limit (memory.max); absent when unlimited."),
    ("effective_limit_bytes", "memlens_cgroup_memory_effective_limit_bytes", 1.0, "The tightest hard limit up the hierarchy; absent when unlimited."),
    ("high_bytes", "memlens_cgroup_memory_high_bytes", 1.0, "The throttling threshold (memory.high); absent when unlimited."),
    ("oom_kill_count", "memlens_cgroup_memory_oom_kills_total", 1.0, "Processes of the cgroup killed by the OOM killer (memory.events oom_kill)."),
    ("inactive_file_bytes", "memlens_cgroup_memory_inactive_file_bytes", 1.0, "File cache on the inactive list, reclaimed first before an OOM kill (memory.stat inactive_file / total_inactive_file); usage minus it is the working set."),
    ("active_file_bytes", "memlens_cgroup_memory_active_file_bytes", 1.0, "File cache on the active list, pages used more than once lately (memory.stat active_file / total_active_file): part of the working set, reclaiming it is thrashing."),
    ("anon_bytes", "memlens_cgroup_memory_anon_bytes", 1.0, "Anonymous memory of the cgroup (memory.stat anon / total_rss): with no swap, nothing reclaim can take."),
    ("file_refaults", "memlens_cgroup_memory_file_refaults_total", 1.0, "File pages read back in after reclaim evicted them (memory.stat workingset_refault_file / total_workingset_refault_file)."),
    ("anon_refaults", "memlens_cgroup_memory_anon_refaults_total", 1.0, "Anonymous pages faulted back in from swap after reclaim (memory.stat workingset_refault_anon / total_workingset_refault_anon)."),
    ("major_faults", "memlens_cgroup_memory_major_faults_total", 1.0, "Major page faults of the cgroup's processes (memory.stat pgmajfault / total_pgmajfault)."),
    ("pressure_some_total_usec", "memlens_cgroup_memory_pressure_some_seconds_total", 1e-6, "Time some of the cgroup's tasks stalled on memory (memory.pressure some total; v2 only)."),
    ("pressure_full_total_usec", "memlens_cgroup_memory_pressure_full_seconds_total", 1e-6, "Time all of the cgroup's non-idle tasks stalled on memory (memory.pressure full total; v2 only)."),
    ("file_restores", "memlens_cgroup_memory_file_restores_total", 1.0, "Refaulted file pages that were in active use when evicted (memory.stat workingset_restore_file; v2 only)."),
    ("anon_restores", "memlens_cgroup_memory_anon_restores_total", 1.0, "Refaulted anonymous pages that were in active use when evicted (memory.stat workingset_restore_anon; v2 only)."),
    ("pages_scanned", "memlens_cgroup_memory_pages_scanned_total", 1.0, "Pages reclaim scanned in the cgroup (memory.stat pgscan; v2 only)."),
    ("pages_stolen", "memlens_cgroup_memory_pages_reclaimed_total", 1.0, "Pages reclaim took from the cgroup (memory.stat pgsteal; v2 only)."),
];

/// MySQL/MariaDB server series (entity kind `mysql`).
#[rustfmt::skip]
const MYSQL: &[(&str, &str, f64, &str)] = &[
    ("mysql_up", "memlens_mysql_up", 1.0, "1 when memlens read the server this cycle, 0 when it could not (wrong password, server gone, query past the read timeout)."),
    ("mysql_errors", "memlens_mysql_errors_total", 1.0, "Failed reads of this server since the agent started."),
    ("mysql_pool_size_bytes", "memlens_mysql_pool_size_bytes", 1.0, "innodb_buffer_pool_size (SHOW GLOBAL VARIABLES)."),
    ("mysql_page_size_bytes", "memlens_mysql_page_size_bytes", 1.0, "The InnoDB page size (Innodb_page_size)."),
    ("mysql_pool_pages_total", "memlens_mysql_pool_pages_total", 1.0, "Pages of the buffer pool (Innodb_buffer_pool_pages_total)."),
    ("mysql_pool_pages_data", "memlens_mysql_pool_pages_data", 1.0, "Pages holding data (Innodb_buffer_pool_pages_data)."),
    ("mysql_pool_pages_free", "memlens_mysql_pool_pages_free", 1.0, "Free pages (Innodb_buffer_pool_pages_free)."),
    ("mysql_pool_read_requests", "memlens_mysql_pool_read_requests_total", 1.0, "Logical reads from the pool (Innodb_buffer_pool_read_requests): the hit ratio is 1 - rate(reads) / rate(read requests)."),
    ("mysql_pool_reads", "memlens_mysql_pool_reads_total", 1.0, "Reads that missed the pool and went to disk (Innodb_buffer_pool_reads)."),
    ("mysql_memory_used_bytes", "memlens_mysql_memory_used_bytes", 1.0, "Memory the server accounts for itself (Memory_used, MariaDB)."),
    ("mysql_memory_used_initial_bytes", "memlens_mysql_memory_used_initial_bytes", 1.0, "Memory_used when the server began serving connections (Memory_used_initial, MariaDB): Memory_used above it is the connections' part."),
    ("mysql_instrumented_bytes", "memlens_mysql_instrumented_bytes", 1.0, "With performance_schema on: bytes its memory instruments count now (SUM of CURRENT_NUMBER_OF_BYTES_USED of memory_summary_global_by_event_name)."),
    ("mysql_threads_connected", "memlens_mysql_threads_connected", 1.0, "Open connections (Threads_connected)."),
    ("mysql_sort_buffer_size_bytes", "memlens_mysql_sort_buffer_size_bytes", 1.0, "sort_buffer_size: what one sorting connection may take."),
    ("mysql_pool_resident_bytes", "memlens_mysql_pool_resident_bytes", 1.0, "Resident bytes of the buffer pool: of its own address range (pagemap) where the server reserved innodb_buffer_pool_size_max, else of the anonymous mapping taken for it (smaps), when found."),
    ("mysql_pool_pages_misc", "memlens_mysql_pool_pages_misc", 1.0, "Pool pages used for other things: adaptive hash index, row locks (Innodb_buffer_pool_pages_misc)."),
    ("mysql_pool_range_found", "memlens_mysql_pool_range_found", 1.0, "1 when memlens found the buffer pool's own address range (the innodb_buffer_pool_size_max reservation, MariaDB 10.11.12+) and split its resident bytes into descriptors, misc pages and page frames; 0 when it took an anonymous mapping by size (a heuristic, not split)."),
    ("mysql_log_buffer_bytes", "memlens_mysql_log_buffer_bytes", 1.0, "The InnoDB redo log buffers: 2 x innodb_log_buffer_size."),
    ("mysql_threads_memory_bytes", "memlens_mysql_threads_memory_bytes", 1.0, "Memory the server's threads (its connections) hold: the sum of information_schema.PROCESSLIST.MEMORY_USED (MariaDB)."),
];

/// The family of `metric` of an entity of `entity_kind` (`host`, `process`,
/// `cgroup`).
pub fn family_for(entity_kind: &str, metric: &str) -> FamilySpec {
    let table = match entity_kind {
        "host" => HOST,
        "process" => PROCESS,
        "mysql" => MYSQL,
        _ => CGROUP,
    };
    let counter = is_counter(metric);
    let kind = if counter { Kind::Counter } else { Kind::Gauge };
    if let Some(&(_, name, scale, help)) = table.iter().find(|row| row.0 == metric) {
        return FamilySpec {
            name: name.to_string(),
            kind,
            scale,
            help: help.to_string(),
        };
    }
    // The rule alone, for a metric this table does not know yet.
    let prefix = match entity_kind {
        "host" => "memlens_host_",
        "process" if metric.starts_with("go_") => "memlens_",
        "process" => "memlens_process_",
        "mysql" => "memlens_",
        _ => "memlens_cgroup_memory_",
    };
    let mut name = format!("{prefix}{}", sanitize(metric));
    if counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    FamilySpec {
        name,
        kind,
        scale: 1.0,
        help: format!("The {entity_kind} series {metric} of the memlens history."),
    }
}

/// Every family name of the table, for the docs check.
#[cfg(test)]
pub fn known_names() -> impl Iterator<Item = &'static str> {
    HOST.iter()
        .chain(PROCESS)
        .chain(CGROUP)
        .chain(MYSQL)
        .map(|row| row.1)
}

/// A name made of `[a-zA-Z0-9_]` only.
fn sanitize(metric: &str) -> String {
    metric
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_end_in_total_and_gauges_do_not() {
        for (kind, table) in [
            ("host", HOST),
            ("process", PROCESS),
            ("cgroup", CGROUP),
            ("mysql", MYSQL),
        ] {
            for row in table {
                let family = family_for(kind, row.0);
                assert_eq!(
                    family.name.ends_with("_total"),
                    family.kind == Kind::Counter,
                    "{family:?}"
                );
                assert!(!family.name.ends_with("_count"), "{family:?}");
            }
        }
        let unknown = family_for("process", "voluntary_ctxt_switches");
        assert_eq!(
            unknown.name,
            "memlens_process_voluntary_ctxt_switches_total"
        );
        assert_eq!(unknown.kind, Kind::Counter);
        assert_eq!(family_for("process", "go_x.y").name, "memlens_go_x_y");
    }

    #[test]
    fn the_docs_list_every_family() {
        let docs = include_str!("../../../../docs/metrics.md");
        for name in known_names() {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/metrics.md lacks {name}"
            );
        }
        for name in super::super::render::AGENT_FAMILIES {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/metrics.md lacks {name}"
            );
        }
    }
}
