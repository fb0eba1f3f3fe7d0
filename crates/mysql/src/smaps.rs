//! The buffer pool's mapping in `/proc/PID/smaps`: InnoDB (MariaDB 10.11)
//! allocates the pool as one readable-writable anonymous mapping of at least
//! `innodb_buffer_pool_size` and less than twice it (a 64 MiB pool: a 96 MiB
//! mapping, the pages with their block descriptors and hash), so the smallest
//! such mapping is taken as the pool's. Reserved ranges (`---p`, glibc arenas)
//! are skipped. A heuristic: another anonymous mapping of that size range
//! (the redo log buffer, 2 × `innodb_log_buffer_size`, when that equals the
//! pool size) can be taken instead.

/// One mapping of smaps: its size and resident bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolMapping {
    /// `Size`.
    pub size_bytes: u64,
    /// `Rss`.
    pub rss_bytes: u64,
}

/// Finds the pool's mapping in smaps text; `None` when no anonymous mapping
/// is that large.
pub fn pool_mapping(smaps: &str, pool_size_bytes: u64) -> Option<PoolMapping> {
    let mut best: Option<PoolMapping> = None;
    let mut anon = false;
    let mut size = 0u64;
    let kb = |line: &str| -> u64 {
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A header: `start-end perms offset dev inode [path]`.
            let mut fields = line.split_whitespace();
            let perms = fields.nth(1).unwrap_or("");
            anon = perms.starts_with("rw") && fields.nth(3).is_none();
            size = 0;
        } else if first == "Size:" {
            size = kb(line);
        } else if first == "Rss:" && anon && size >= pool_size_bytes && size < 2 * pool_size_bytes {
            let m = PoolMapping {
                size_bytes: size,
                rss_bytes: kb(line),
            };
            if best.is_none_or(|b| m.size_bytes < b.size_bytes) {
                best = Some(m);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_anonymous_mapping_at_least_the_pool() {
        let text = include_str!("../testdata/mariadbd-10.11-smaps-excerpt.txt");
        let m = pool_mapping(text, 32 << 20).expect("pool mapping");
        // The 48 MiB mapping of a 32 MiB pool, not the 64 MiB glibc arena
        // reservations (---p) nor the larger anonymous mappings.
        assert_eq!(m.size_bytes, 49152 * 1024);
        assert!(m.rss_bytes <= m.size_bytes);
        assert_eq!(pool_mapping(text, 1 << 40), None);
    }
}
