//! How far `/proc/PID/stat`'s resident size (what `ps` and process-exporter
//! read) may be from `VmRSS` of `/proc/PID/status` (what memlens reads) at
//! the same instant.
//!
//! The kernel keeps a process's RSS in three per-CPU counters (anon, file,
//! shmem pages). `stat` reads them without summing what each CPU still holds
//! (`get_mm_rss`); `status` sums them. A CPU holds up to `batch - 1` pages of
//! each counter before folding them in, `batch` being `percpu_counter_batch`
//! = max(32, 2 × CPUs): so the two differ by at most 3 × CPUs × (batch - 1)
//! pages (seen: 43 to 70 pages on 2 CPUs).

/// The most bytes `/proc/PID/stat`'s RSS can be off from `VmRSS`.
pub fn stat_rss_slack_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (cpus, page) = unsafe {
        (
            libc::sysconf(libc::_SC_NPROCESSORS_CONF),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let batch = 32.max(2 * cpus);
    (3 * cpus * (batch - 1) * page) as u64
}
