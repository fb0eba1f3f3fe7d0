//! Where the buffer pool is in the server's address space, and how much of
//! it is resident.
//!
//! - [`pool_range`] (exact, MariaDB 10.11.12 and later): the server reserves
//!   `innodb_buffer_pool_size_max` of address space (8 TiB by default) in one
//!   go and makes the first `innodb_buffer_pool_size` bytes of it
//!   readable-writable. In `/proc/PID/maps` the pool is the last
//!   `innodb_buffer_pool_size` bytes of a `rw-p` anonymous mapping followed
//!   directly by `---p` anonymous mappings that end `innodb_buffer_pool_size_max`
//!   bytes after the pool's start. The kernel may merge the pool with an
//!   anonymous mapping just below it (seen: the 32 MiB redo log buffers, 2 ×
//!   `innodb_log_buffer_size`, making one 80 MiB `rw-p` mapping for a 48 MiB
//!   pool), so a mapping's `Rss` in smaps is not the pool's: the range's
//!   resident pages are counted in `/proc/PID/pagemap` ([`resident_pages`]).
//!   After `SET GLOBAL innodb_buffer_pool_size` to a smaller size the
//!   released tail becomes a `---p` mapping of its own: the chain of `---p`
//!   mappings is followed to its end.
//! - [`pool_mapping`] (a heuristic, for servers without that reservation):
//!   the smallest readable-writable anonymous mapping of at least
//!   `innodb_buffer_pool_size` and under twice it. Another anonymous mapping
//!   of that size range (the redo log buffers, or those merged with the pool)
//!   can be taken instead.

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

/// An address range `[start, end)` of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PoolRange {
    /// `end - start`.
    pub fn len_bytes(&self) -> u64 {
        self.end - self.start
    }
}

/// One line of `/proc/PID/maps`: start, end, perms, anonymous (inode 0, no path).
fn maps_line(line: &str) -> Option<(u64, u64, &str, bool)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let inode = fields.next()?;
    let anon = inode == "0" && fields.next().is_none();
    Some((start, end, perms, anon))
}

/// The pool's own range in `/proc/PID/maps` text of a server that reserved
/// `pool_size_max_bytes` for it (see the module docs); `None` when no
/// mapping fits (an older server, MySQL: use [`pool_mapping`]).
///
/// The pool ends where a run of `---p` anonymous mappings begins, and the
/// `rw-p` anonymous mappings just below (one, or several adjacent that the
/// kernel did not merge) cover its `pool_size_bytes`. The run must reach
/// `pool_size_max_bytes` from the pool's start; it may reach further (up
/// to an eighth more), since the kernel merges an adjacent `PROT_NONE`
/// mapping of someone else into the reservation (seen: 6 MiB past an 8 TiB
/// reservation).
pub fn pool_range(maps: &str, pool_size_bytes: u64, pool_size_max_bytes: u64) -> Option<PoolRange> {
    if pool_size_bytes == 0 || pool_size_max_bytes <= pool_size_bytes {
        return None;
    }
    let lines: Vec<(u64, u64, &str, bool)> = maps.lines().filter_map(maps_line).collect();
    let rw = |l: &(u64, u64, &str, bool)| l.3 && l.2.starts_with("rw");
    let reserved = |l: &(u64, u64, &str, bool)| l.3 && l.2.starts_with("---");
    for (i, line) in lines.iter().enumerate() {
        if !rw(line) {
            continue;
        }
        let end = line.1;
        let Some(pool_start) = end.checked_sub(pool_size_bytes) else {
            continue;
        };
        // The readable-writable run below `end` must cover the pool.
        let mut covered_from = line.0;
        for below in lines[..i].iter().rev() {
            if covered_from <= pool_start || below.1 != covered_from || !rw(below) {
                break;
            }
            covered_from = below.0;
        }
        if covered_from > pool_start {
            continue;
        }
        // The reserved rest: contiguous `---p` anonymous mappings.
        let mut reserved_end = end;
        for l in &lines[i + 1..] {
            if l.0 != reserved_end || !reserved(l) {
                break;
            }
            reserved_end = l.1;
        }
        let span = reserved_end - pool_start;
        if reserved_end > end
            && span >= pool_size_max_bytes
            && span <= pool_size_max_bytes + pool_size_max_bytes / 8
        {
            return Some(PoolRange {
                start: pool_start,
                end,
            });
        }
    }
    None
}

/// Present pages among `/proc/PID/pagemap` entries (8 bytes each, little
/// endian; bit 63: present in RAM). Swapped-out pages (bit 62) are not
/// resident and not counted; a trailing partial entry is ignored.
pub fn resident_pages(pagemap: &[u8]) -> u64 {
    pagemap.chunks_exact(8).filter(|e| e[7] & 0x80 != 0).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_range_in_a_real_maps() {
        // A 48 MiB pool with the default 8 TiB innodb_buffer_pool_size_max,
        // taken from a live MariaDB 10.11.19 just after start.
        let maps = include_str!("../testdata/mariadbd-10.11-maps.txt");
        let r = pool_range(maps, 48 << 20, 8 << 40).expect("pool range");
        assert_eq!((r.start, r.end), (0x773998000000, 0x77399b000000));
        assert_eq!(r.len_bytes(), 48 << 20);
        // Not the glibc arenas (rw-p + ---p up to 64 MiB): a wrong max
        // finds nothing rather than something else.
        assert_eq!(pool_range(maps, 48 << 20, 4 << 40), None);
        assert_eq!(pool_range(maps, 1 << 20, 8 << 40), None);
    }

    #[test]
    fn a_shrunk_pool_merged_with_the_log_buffers() {
        // The same server kind after `SET GLOBAL innodb_buffer_pool_size =
        // 16 MiB` from 48 MiB: the pool (16 MiB) shares one rw-p mapping
        // with the 32 MiB redo log buffers below it; the released 32 MiB is
        // a ---p mapping of its own before the rest of the reservation.
        let maps = include_str!("../testdata/mariadbd-10.11-maps-shrunk-excerpt.txt");
        let r = pool_range(maps, 16 << 20, 8 << 40).expect("pool range");
        assert_eq!((r.start, r.end), (0x775c24000000, 0x775c25000000));
    }

    #[test]
    fn a_reservation_merged_with_a_neighbour() {
        // A 64 MiB pool merged with a 16 MiB log buffer below (one rw-p of
        // 80 MiB) and an 8 TiB reservation that the kernel merged with 6 MiB
        // of someone else's PROT_NONE mapping after it.
        let maps = include_str!("../testdata/mariadbd-10.11-maps-merged-reservation-excerpt.txt");
        let r = pool_range(maps, 64 << 20, 8 << 40).expect("pool range");
        assert_eq!((r.start, r.end), (0x77a8d7000000, 0x77a8db000000));
        // Not a run that reaches only the pool's size (a glibc arena), nor
        // an rw run that cannot hold the pool.
        assert_eq!(pool_range(maps, 64 << 20, 1 << 40), None);
        assert_eq!(pool_range(maps, 100 << 20, 8 << 40), None);
    }

    #[test]
    fn a_pool_over_two_unmerged_mappings() {
        let maps = "7000000-8000000 rw-p 00000000 00:00 0 \n\
                    8000000-9000000 rw-p 00000000 00:00 0 \n\
                    9000000-11000000 ---p 00000000 00:00 0 \n";
        let r = pool_range(maps, 0x1800000, 0x9000000).expect("pool range");
        assert_eq!((r.start, r.end), (0x7800000, 0x9000000));
        // A file mapping below does not count as the pool.
        let maps = maps.replacen("00:00 0 \n", "fe:00 12 /usr/lib/x.so\n", 1);
        assert_eq!(pool_range(&maps, 0x1800000, 0x9000000), None);
    }

    #[test]
    fn resident_pages_of_a_real_pagemap() {
        // The pagemap entries (PFNs zeroed) of that 48 MiB pool: 296 data
        // pages and 30 frames of block descriptors of 16 KiB resident,
        // (296 + 30) × 4 pages of 4 KiB, as counted when captured.
        let bytes = include_bytes!("../testdata/mariadbd-10.11-pagemap-pool.bin");
        assert_eq!(bytes.len(), (48 << 20) / 4096 * 8);
        assert_eq!(resident_pages(bytes), (296 + 30) * 4);
        assert_eq!(resident_pages(&[0, 0, 0, 0, 0, 0, 0, 0x40]), 0, "swapped");
    }

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
