//! One moment of a host: host-wide memory and every process.

use memlens_linux::cgroup::Limit;
use serde::Serialize;

/// A process's identity: a pid alone is reused, (pid, start time) is not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: i32,
    /// Start time in clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
}

/// Everything one snapshot saw.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When the snapshot was taken, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// Host-wide memory.
    pub host: HostSample,
    /// The processes, in the order the view chose.
    pub processes: Vec<ProcessSample>,
    /// Memory cgroups that held selected processes a moment ago and hold
    /// none now (an OOM kill or an exit emptied them): still read for a
    /// while, so that a kill shows on their `oom_kill_count`. Left out of the
    /// JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emptied_cgroups: Vec<CgroupSample>,
    /// MySQL/MariaDB servers among the processes (`watch` with a `[mysql]`
    /// section or `snapshot --mysql`). Left out of the JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mysql: Vec<crate::MysqlSample>,
}

/// Host-wide memory at one moment (`/proc/meminfo`, `/proc/vmstat`, PSI, sysctls).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostSample {
    /// `MemTotal`.
    pub mem_total_bytes: u64,
    /// `MemAvailable`.
    pub mem_available_bytes: u64,
    /// `MemFree`.
    pub mem_free_bytes: u64,
    /// `SwapTotal`.
    pub swap_total_bytes: u64,
    /// `SwapFree`.
    pub swap_free_bytes: u64,
    /// `AnonPages`.
    pub anon_bytes: u64,
    /// `Cached` (page cache).
    pub page_cache_bytes: u64,
    /// `Shmem`.
    pub shmem_bytes: u64,
    /// `Committed_AS`.
    pub committed_bytes: u64,
    /// `CommitLimit`.
    pub commit_limit_bytes: u64,
    /// Page faults since boot (`pgfault`).
    pub page_faults: u64,
    /// Major page faults since boot (`pgmajfault`).
    pub major_page_faults: u64,
    /// OOM kills since boot (`oom_kill`), when the kernel counts them.
    pub oom_kills: Option<u64>,
    /// Pages scanned for reclaim since boot.
    pub pages_scanned: u64,
    /// Pages reclaimed since boot.
    pub pages_stolen: u64,
    /// PSI memory `some` avg10, percent; `null` when PSI is off.
    pub pressure_some_avg10_percent: Option<f64>,
    /// PSI memory `full` avg10, percent.
    pub pressure_full_avg10_percent: Option<f64>,
    /// PSI memory `some` total stall, microseconds.
    pub pressure_some_total_usec: Option<u64>,
    /// PSI memory `full` total stall, microseconds.
    pub pressure_full_total_usec: Option<u64>,
    /// `vm.max_map_count`: the most mappings one process may have.
    pub max_map_count: Option<u64>,
    /// `vm.overcommit_memory`: `heuristic`, `always` or `never`.
    pub overcommit: Option<&'static str>,
}

/// A Go program's runtime identity and the runtime settings in its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GoInfo {
    /// The Go version it was built with (`go1.27.3`).
    pub version: String,
    /// The main module path, when the binary records one.
    pub module: Option<String>,
    /// `GOGC` as set in the environment (raw string), if set.
    pub gogc: Option<String>,
    /// `GOMEMLIMIT` as set in the environment (raw string), if set.
    pub gomemlimit: Option<String>,
    /// `GODEBUG` as set in the environment (raw string), if set.
    pub godebug: Option<String>,
    /// `GOMAXPROCS` as set in the environment (raw string), if set.
    pub gomaxprocs: Option<String>,
}

/// The memory cgroup a process is in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CgroupSample {
    /// `1` or `2`.
    pub version: u8,
    /// The cgroup path as `/proc/PID/cgroup` shows it.
    pub path: String,
    /// What the path says the cgroup is (`docker:<id>`, `pod:<uid>`, `nginx.service`).
    pub name: Option<String>,
    /// Memory charged to the cgroup.
    pub usage_bytes: Option<u64>,
    /// The cgroup's own hard limit: bytes or `"max"`.
    #[serde(serialize_with = "crate::limit_json::serialize")]
    pub limit_bytes: Option<Limit>,
    /// The tightest hard limit of the cgroup and its ancestors.
    #[serde(serialize_with = "crate::limit_json::serialize")]
    pub effective_limit_bytes: Option<Limit>,
    /// `memory.high` (v2 only).
    #[serde(serialize_with = "crate::limit_json::serialize")]
    pub high_bytes: Option<Limit>,
    /// OOM kills in this cgroup.
    pub oom_kill_count: Option<u64>,
    /// File cache on the inactive list, charged to the cgroup and its
    /// children (`total_inactive_file` of v1's `memory.stat`,
    /// `inactive_file` of v2's): what the kernel reclaims first, before it
    /// OOM-kills. Usage minus it is the working set.
    pub inactive_file_bytes: Option<u64>,
    /// File cache on the active list (`total_active_file` of v1's
    /// `memory.stat`, `active_file` of v2's): pages used more than once
    /// lately. Part of the working set: reclaiming them is thrashing.
    pub active_file_bytes: Option<u64>,
    /// Anonymous memory (`total_rss` of v1's `memory.stat`, `anon` of
    /// v2's): with no swap, nothing reclaim can take.
    pub anon_bytes: Option<u64>,
    /// File pages read back in after reclaim evicted them, a count of pages
    /// since the cgroup was created (`total_workingset_refault_file` of v1,
    /// `workingset_refault_file` of v2).
    pub file_refaults: Option<u64>,
    /// Anonymous pages faulted back in from swap after reclaim, a count of
    /// pages (`total_workingset_refault_anon` / `workingset_refault_anon`).
    pub anon_refaults: Option<u64>,
    /// Major page faults of the cgroup's processes, a count (`total_pgmajfault`
    /// / `pgmajfault`).
    pub major_faults: Option<u64>,
    /// Time some of the cgroup's tasks stalled on memory, cumulative
    /// (`memory.pressure` `some total`, v2 only: v1 has no readable PSI per
    /// cgroup).
    pub pressure_some_total_usec: Option<u64>,
    /// Time all of the cgroup's non-idle tasks stalled on memory at once,
    /// cumulative (`memory.pressure` `full total`, v2 only).
    pub pressure_full_total_usec: Option<u64>,
    /// Refaulted file pages that were in active use when evicted
    /// (`workingset_restore_file` of v2's `memory.stat`; v1 has none).
    pub file_restores: Option<u64>,
    /// The same for anonymous pages (`workingset_restore_anon`, v2).
    pub anon_restores: Option<u64>,
    /// Pages reclaim scanned in the cgroup (`pgscan`, v2).
    pub pages_scanned: Option<u64>,
    /// Pages reclaim took from it (`pgsteal`, v2).
    pub pages_stolen: Option<u64>,
}

/// One process through the kernel's eyes.
///
/// `Option` fields are `null` when the value was not read: the file is missing
/// on this kernel, reading it was not allowed (see `unreadable`), or it was
/// skipped on purpose (smaps_rollup of a huge process).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessSample {
    /// The process id.
    pub pid: i32,
    /// Start time in clock ticks after boot; (pid, start_time) identifies a process.
    pub start_time: u64,
    /// The process name (`comm`).
    pub comm: String,
    /// The command line with secrets redacted.
    pub cmdline: Vec<String>,
    /// Parent pid.
    pub ppid: i32,
    /// Scheduler state letter from `stat` (`R`, `S`, `D`, `Z`, ...).
    pub state: String,
    /// Resident set size (`VmRSS`).
    pub rss_bytes: Option<u64>,
    /// Unique set size: private clean + private dirty (smaps_rollup).
    pub uss_bytes: Option<u64>,
    /// Proportional set size (smaps_rollup).
    pub pss_bytes: Option<u64>,
    /// Proportional swap (smaps_rollup `SwapPss`).
    pub swap_pss_bytes: Option<u64>,
    /// How old `pss_bytes`, `uss_bytes` and `swap_pss_bytes` are: 0 when
    /// smaps_rollup was read in this snapshot, more when a repeated collector
    /// reused its last reading (the process's cheap counters had not changed),
    /// `null` when there is none.
    pub pss_age_seconds: Option<f64>,
    /// Page tables (`VmPTE`).
    pub page_tables_bytes: Option<u64>,
    /// Virtual size (`VmSize`).
    pub vm_size_bytes: Option<u64>,
    /// Swapped out (`VmSwap`).
    pub swap_bytes: Option<u64>,
    /// Resident anonymous memory (`RssAnon`).
    pub anon_bytes: Option<u64>,
    /// Resident file-backed memory (`RssFile`).
    pub file_bytes: Option<u64>,
    /// Resident shared memory (`RssShmem`).
    pub shmem_bytes: Option<u64>,
    /// Minor page faults since start.
    pub minor_faults: u64,
    /// Major page faults since start.
    pub major_faults: u64,
    /// Threads.
    pub threads: u64,
    /// Voluntary context switches (`status`): the process waited.
    pub voluntary_ctxt_switches: Option<u64>,
    /// Involuntary context switches (`status`): the process was preempted.
    pub nonvoluntary_ctxt_switches: Option<u64>,
    /// CPU time in user mode, seconds.
    pub cpu_user_seconds: f64,
    /// CPU time in kernel mode, seconds.
    pub cpu_system_seconds: f64,
    /// Mappings (lines of `/proc/PID/maps`).
    pub vma_count: Option<u64>,
    /// Anonymous mappings.
    pub anon_vma_count: Option<u64>,
    /// Total size of all mappings.
    pub mapped_bytes: Option<u64>,
    /// Largest free address range between mappings below the stack.
    pub largest_gap_bytes: Option<u64>,
    /// Open file descriptors.
    pub fd_count: Option<u64>,
    /// The soft `Max open files` limit; `null` when unlimited or unread.
    pub fd_limit: Option<u64>,
    /// `oom_score` (0..=2000): how likely the OOM killer picks this process.
    pub oom_score: Option<u32>,
    /// `oom_score_adj` (-1000..=1000).
    pub oom_score_adj: Option<i32>,
    /// Bytes read from storage (`read_bytes` of `io`).
    pub read_bytes: Option<u64>,
    /// Bytes written to storage (`write_bytes` of `io`).
    pub write_bytes: Option<u64>,
    /// Go runtime identity, `null` for programs that are not Go.
    pub go: Option<GoInfo>,
    /// The memory cgroup.
    pub cgroup: Option<CgroupSample>,
    /// Files that could not be read, each with the reason (a partial row).
    pub unreadable: Vec<String>,
}

impl ProcessSample {
    /// The (pid, start time) identity.
    pub fn identity(&self) -> ProcessIdentity {
        ProcessIdentity {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}
