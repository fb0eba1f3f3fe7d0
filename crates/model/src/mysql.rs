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
    /// Resident bytes of the buffer pool's mapping (smaps of the process),
    /// when memlens could find that mapping.
    pub pool_resident_bytes: Option<u64>,
    /// Collector errors for this server since the agent started (counter).
    pub errors_total: u64,
}
