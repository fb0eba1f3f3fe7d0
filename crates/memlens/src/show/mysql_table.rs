//! The MySQL/MariaDB servers of a snapshot as text: one block per server.

use super::human_bytes;
use memlens_model::MysqlSample;
use std::io::{self, Write};

/// One block per server: its pool, pages and memory, or why it was not
/// available.
pub fn mysql_table(out: &mut impl Write, servers: &[MysqlSample]) -> io::Result<()> {
    for m in servers {
        let pid = m.process.pid;
        if let Some(error) = &m.error {
            writeln!(out, "mysql {pid} ({}): not available: {error}", m.endpoint)?;
            continue;
        }
        let b = |v: Option<u64>| v.map_or("-".to_string(), human_bytes);
        let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        writeln!(
            out,
            "mysql {pid} ({}) {}  pool {}  pages data {} free {} of {} ({} each)  pool resident {}",
            m.endpoint,
            m.version.as_deref().unwrap_or("-"),
            b(m.pool_size_bytes),
            n(m.pool_pages_data),
            n(m.pool_pages_free),
            n(m.pool_pages_total),
            b(m.page_size_bytes),
            b(m.pool_resident_bytes),
        )?;
        writeln!(
            out,
            "      Memory_used {}  connections {}  sort_buffer_size {}  read requests {}  reads {}  malloc {}",
            b(m.memory_used_bytes),
            n(m.threads_connected),
            b(m.sort_buffer_size_bytes),
            n(m.pool_read_requests),
            n(m.pool_reads),
            m.malloc_library.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}
