//! A MySQL/MariaDB server beside the processes: what memlens read from it
//! (`SHOW GLOBAL STATUS`/`VARIABLES`) and which process it is.

use crate::snapshot::ProcessIdentity;
use serde::Serialize;

/// One server at one moment, linked to its `mysqld`/`mariadbd` process.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MysqlSample {
    /// The server process (its cgroup is the process's).
    pub process: ProcessIdentity,
    /// Where memlens reached it (`unix:/run/mysqld/mysqld.sock`, `tcp:127.0.0.1:3306`).
    pub endpoint: String,
    /// Why it could not be read this time (`null` when it was): wrong
    /// password, server gone, a query past the read timeout. The other fields
    /// are then `null`.
    pub error: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `version_malloc_library`.
    pub malloc_library: Option<String>,
    /// `innodb_buffer_pool_size`.
    pub pool_size_bytes: Option<u64>,
    /// InnoDB page size.
    pub page_size_bytes: Option<u64>,
    /// `Innodb_buffer_pool_pages_total`.
    pub pool_pages_total: Option<u64>,
    /// `Innodb_buffer_pool_pages_data`.
    pub pool_pages_data: Option<u64>,
    /// `Innodb_buffer_pool_pages_free`.
    pub pool_pages_free: Option<u64>,
    /// `Innodb_buffer_pool_pages_misc`: pool pages used for other things
    /// (adaptive hash index, row locks).
    pub pool_pages_misc: Option<u64>,
    /// `innodb_buffer_pool_size_max` (MariaDB 10.11.12+).
    pub pool_size_max_bytes: Option<u64>,
    /// `Innodb_buffer_pool_read_requests` (counter).
    pub pool_read_requests: Option<u64>,
    /// `Innodb_buffer_pool_reads`: requests that missed the pool (counter).
    pub pool_reads: Option<u64>,
    /// `Memory_used` (MariaDB).
    pub memory_used_bytes: Option<u64>,
    /// `Memory_used_initial` (MariaDB): Memory_used above it is what the
    /// connections hold.
    pub memory_used_initial_bytes: Option<u64>,
    /// With performance_schema on: bytes its memory instruments count now
    /// (sum of `CURRENT_NUMBER_OF_BYTES_USED` of
    /// `memory_summary_global_by_event_name`).
    pub instrumented_bytes: Option<u64>,
    /// `Threads_connected`.
    pub threads_connected: Option<u64>,
    /// `sort_buffer_size`.
    pub sort_buffer_size_bytes: Option<u64>,
    /// Resident bytes of the buffer pool, when memlens could find it: of the
    /// pool's own address range (`/proc/PID/pagemap`) where the server
    /// reserved `innodb_buffer_pool_size_max` for it, else of the mapping
    /// taken for the pool (smaps). See `pool_resident_source`.
    pub pool_resident_bytes: Option<u64>,
    /// Where `pool_resident_bytes` comes from: `range` (the pool's own
    /// range, exact) or `mapping` (the smallest anonymous mapping of at
    /// least the pool size: a heuristic that can include other memory).
    pub pool_resident_source: Option<String>,
    /// The InnoDB redo log buffers: 2 × `innodb_log_buffer_size` (MariaDB
    /// 10.11 allocates both at start and they are resident).
    pub log_buffer_bytes: Option<u64>,
    /// The sum of `information_schema.PROCESSLIST.MEMORY_USED` (MariaDB):
    /// memory the server's threads (the connections) hold now.
    pub threads_memory_bytes: Option<u64>,
    /// Collector errors for this server since the agent started (counter).
    pub errors_total: u64,
}
