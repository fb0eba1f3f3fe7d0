//! Pure parsing of `SHOW GLOBAL STATUS` and `SHOW GLOBAL VARIABLES` rows into
//! one typed sample, and the buffer pool hit ratio between two samples.

use std::collections::BTreeMap;

/// One reading of a server: the status and variables memlens uses. A value
/// the server does not report (an older version, another fork) is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSample {
    /// `version` (`10.11.19-MariaDB-0+deb12u1`).
    pub version: String,
    /// `version_malloc_library` (`system`, `jemalloc 5.3.0`).
    pub malloc_library: Option<String>,
    /// `innodb_buffer_pool_size`.
    pub pool_size_bytes: Option<u64>,
    /// `Innodb_page_size` (status) or `innodb_page_size` (variable).
    pub page_size_bytes: Option<u64>,
    /// `Innodb_buffer_pool_pages_total`.
    pub pages_total: Option<u64>,
    /// `Innodb_buffer_pool_pages_data`.
    pub pages_data: Option<u64>,
    /// `Innodb_buffer_pool_pages_free`.
    pub pages_free: Option<u64>,
    /// `Innodb_buffer_pool_pages_misc`: pages taken from the pool for other
    /// uses (the adaptive hash index, row locks), neither data nor free.
    pub pages_misc: Option<u64>,
    /// `innodb_buffer_pool_size_max` (MariaDB 10.11.12+): the address space
    /// reserved for the pool.
    pub pool_size_max_bytes: Option<u64>,
    /// `innodb_log_buffer_size` (InnoDB keeps two buffers of it).
    pub log_buffer_size_bytes: Option<u64>,
    /// `Innodb_buffer_pool_pages_dirty`.
    pub pages_dirty: Option<u64>,
    /// `Innodb_buffer_pool_read_requests` (logical reads, a counter).
    pub read_requests: Option<u64>,
    /// `Innodb_buffer_pool_reads` (reads that missed the pool, a counter).
    pub reads: Option<u64>,
    /// `Memory_used` (MariaDB: memory the server accounts for, all threads).
    pub memory_used_bytes: Option<u64>,
    /// `Memory_used_initial` (MariaDB: Memory_used when the server began
    /// serving connections; Memory_used above it is the connections' part).
    pub memory_used_initial_bytes: Option<u64>,
    /// `Threads_connected`.
    pub threads_connected: Option<u64>,
    /// `sort_buffer_size`.
    pub sort_buffer_size_bytes: Option<u64>,
    /// `max_connections`.
    pub max_connections: Option<u64>,
    /// `performance_schema` is `ON`.
    pub performance_schema: bool,
}

fn num(map: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    map.get(&key.to_ascii_lowercase())?.trim().parse().ok()
}

impl ServerSample {
    /// Builds a sample from `SHOW GLOBAL STATUS` and `SHOW GLOBAL VARIABLES`
    /// rows (name, value); names match case-insensitively.
    pub fn from_rows(status: &[(String, String)], variables: &[(String, String)]) -> ServerSample {
        let lower = |rows: &[(String, String)]| -> BTreeMap<String, String> {
            rows.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        let s = lower(status);
        let v = lower(variables);
        ServerSample {
            version: v.get("version").cloned().unwrap_or_default(),
            malloc_library: v.get("version_malloc_library").cloned(),
            pool_size_bytes: num(&v, "innodb_buffer_pool_size"),
            page_size_bytes: num(&s, "Innodb_page_size").or_else(|| num(&v, "innodb_page_size")),
            pages_total: num(&s, "Innodb_buffer_pool_pages_total"),
            pages_data: num(&s, "Innodb_buffer_pool_pages_data"),
            pages_free: num(&s, "Innodb_buffer_pool_pages_free"),
            pages_misc: num(&s, "Innodb_buffer_pool_pages_misc"),
            pool_size_max_bytes: num(&v, "innodb_buffer_pool_size_max"),
            log_buffer_size_bytes: num(&v, "innodb_log_buffer_size"),
            pages_dirty: num(&s, "Innodb_buffer_pool_pages_dirty"),
            read_requests: num(&s, "Innodb_buffer_pool_read_requests"),
            reads: num(&s, "Innodb_buffer_pool_reads"),
            memory_used_bytes: num(&s, "Memory_used"),
            memory_used_initial_bytes: num(&s, "Memory_used_initial"),
            threads_connected: num(&s, "Threads_connected"),
            sort_buffer_size_bytes: num(&v, "sort_buffer_size"),
            max_connections: num(&v, "max_connections"),
            performance_schema: v
                .get("performance_schema")
                .is_some_and(|x| x.eq_ignore_ascii_case("ON")),
        }
    }

    /// Bytes of the pool holding data pages: pages_data × page size.
    pub fn pool_data_bytes(&self) -> Option<u64> {
        Some(self.pages_data? * self.page_size_bytes?)
    }
}

/// The buffer pool hit ratio between two samples: 1 − Δreads / Δread_requests.
/// `None` when a counter is missing, went backwards (a restart), or no read
/// request happened in between.
pub fn hit_ratio(before: &ServerSample, after: &ServerSample) -> Option<f64> {
    let requests = after.read_requests?.checked_sub(before.read_requests?)?;
    let misses = after.reads?.checked_sub(before.reads?)?;
    if requests == 0 {
        return None;
    }
    Some(1.0 - (misses.min(requests) as f64 / requests as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn real_mariadb_rows() {
        let status = rows(include_str!(
            "../testdata/mariadb-10.11-show-global-status.tsv"
        ));
        let vars = rows(include_str!(
            "../testdata/mariadb-10.11-show-global-variables.tsv"
        ));
        let s = ServerSample::from_rows(&status, &vars);
        assert!(s.version.contains("MariaDB"), "{}", s.version);
        assert_eq!(s.page_size_bytes, Some(16384));
        assert_eq!(s.pool_size_bytes, Some(33554432));
        let (total, data, free) = (
            s.pages_total.unwrap(),
            s.pages_data.unwrap(),
            s.pages_free.unwrap(),
        );
        assert!(data + free <= total, "{data} + {free} > {total}");
        assert!(s.memory_used_bytes.unwrap() > 0);
        assert!(s.read_requests.unwrap() >= s.reads.unwrap());
        assert_eq!(s.malloc_library.as_deref(), Some("system"));
        assert!(!s.performance_schema);
        assert_eq!(s.pages_misc, Some(0));
        assert_eq!(s.pool_size_max_bytes, Some(8 << 40));
        assert_eq!(s.log_buffer_size_bytes, Some(16 << 20));
    }

    #[test]
    fn hit_ratio_from_deltas() {
        let at = |req, reads| ServerSample {
            read_requests: Some(req),
            reads: Some(reads),
            ..Default::default()
        };
        // Lifetime would say 1 - 110/1100 = 0.9; the window says 1 - 100/200.
        assert_eq!(hit_ratio(&at(900, 10), &at(1100, 110)), Some(0.5));
        assert_eq!(hit_ratio(&at(900, 10), &at(900, 10)), None);
        assert_eq!(hit_ratio(&at(900, 10), &at(100, 1)), None, "restart");
        assert_eq!(hit_ratio(&ServerSample::default(), &at(1, 1)), None);
    }
}
