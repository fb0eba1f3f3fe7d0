//! Map header layouts and reading one map's length and capacity through
//! [`Memory`], consistent against a target that keeps running.

use crate::memory::{Memory, ReadError};
use std::collections::HashSet;

/// Slots in a classic bucket and in a Swiss group.
const SLOTS_PER_GROUP: u64 = 8;

/// The most directory entries read for one Swiss map (a directory has at most
/// one entry per 1,024-slot table times the sharing; 1<<20 entries cover maps
/// far beyond a billion slots).
pub const MAX_DIRECTORY_ENTRIES: u64 = 1 << 20;

/// How many times a map is read before its values are called inconsistent.
const READ_ATTEMPTS: usize = 4;

/// Where one map type's header fields are (byte offsets from the DWARF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapLayout {
    /// `runtime.hmap`: `count int`, `B uint8`, `noverflow uint16`.
    Classic {
        /// Offset of `count`.
        count_offset: u64,
        /// Offset of `B` (log2 of the bucket count).
        b_offset: u64,
        /// Offset of `noverflow` (approximate overflow bucket count).
        noverflow_offset: u64,
    },
    /// `internal/runtime/maps.Map` and its `table`s.
    Swiss {
        /// Offset of `used` in the map.
        used_offset: u64,
        /// Offset of `dirPtr` (small group, or `[dirLen]*table`).
        dir_ptr_offset: u64,
        /// Offset of `dirLen` (0 for a small map).
        dir_len_offset: u64,
        /// Offset of `capacity uint16` in a table.
        table_capacity_offset: u64,
    },
}

impl MapLayout {
    /// `"classic"` or `"swiss"`.
    pub fn name(&self) -> &'static str {
        match self {
            MapLayout::Classic { .. } => "classic",
            MapLayout::Swiss { .. } => "swiss",
        }
    }
}

/// One map's numbers as read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapStats {
    /// Entries (`len(m)`).
    pub length: u64,
    /// Slots allocated: buckets × 8 (classic) or the tables' capacities (swiss).
    pub capacity_slots: u64,
    /// Classic: the runtime's overflow bucket count (approximate past 2^16).
    pub overflow_buckets: Option<u64>,
    /// Swiss: the distinct tables in the directory.
    pub tables: Option<u64>,
    /// False when two reads in a row never agreed (the map was changing).
    pub consistent: bool,
}

/// Bytes the buckets or groups of a map with `capacity_slots` slots take
/// (`group_bytes` per 8 slots; classic overflow buckets included).
pub fn bytes_held(stats: &MapStats, group_bytes: u64) -> u64 {
    let groups = (stats.capacity_slots / SLOTS_PER_GROUP)
        .saturating_add(stats.overflow_buckets.unwrap_or(0));
    groups.saturating_mul(group_bytes)
}

/// Bytes of buckets or groups a fresh map of `length` entries would hold: the
/// runtime sizes a map to a power of two of buckets/groups filled at most to
/// its maximum load (6.5 of 8 slots classic, 7 of 8 Swiss); a map of at most
/// 8 entries takes one. What a map holds beyond this is its "never shrinks"
/// waste.
pub fn bytes_needed(length: u64, layout: &MapLayout, group_bytes: u64) -> u64 {
    if length == 0 {
        return 0;
    }
    // Entries per group at the maximum load, in eighths to stay in integers.
    let per_group_eighths = match layout {
        MapLayout::Classic { .. } => 52, // 6.5 entries
        MapLayout::Swiss { .. } => 56,   // 7 entries
    };
    let groups = if length <= SLOTS_PER_GROUP {
        1
    } else {
        length
            .saturating_mul(8)
            .div_ceil(per_group_eighths)
            .checked_next_power_of_two()
            .unwrap_or(u64::MAX)
    };
    groups.saturating_mul(group_bytes)
}

impl MapStats {
    /// `length / capacity_slots` (0 for a map with no slots).
    pub fn load(&self) -> f64 {
        if self.capacity_slots == 0 {
            0.0
        } else {
            self.length as f64 / self.capacity_slots as f64
        }
    }
}

/// Reads the map held by the variable at `var_addr`, twice or more until two
/// reads agree (up to a few attempts; else `consistent: false` with the last).
/// A nil map reads as empty with no slots.
pub fn read_map(
    mem: &dyn Memory,
    var_addr: u64,
    layout: &MapLayout,
) -> Result<MapStats, ReadError> {
    let mut last = read_once(mem, var_addr, layout)?;
    for _ in 1..READ_ATTEMPTS {
        let next = read_once(mem, var_addr, layout)?;
        if next == last {
            return Ok(MapStats {
                consistent: true,
                ..next
            });
        }
        last = next;
    }
    Ok(last)
}

/// The address of the field at `offset` past `base`; a sum past the top of the
/// address space (a torn or garbage pointer) is an unreadable address.
fn field(base: u64, offset: u64) -> Result<u64, ReadError> {
    base.checked_add(offset).ok_or(ReadError::Unmapped {
        addr: base,
        len_bytes: 0,
        reason: format!("field offset {offset} overflows the address space"),
    })
}

/// One read of the header (and directory), `consistent` left false.
fn read_once(mem: &dyn Memory, var_addr: u64, layout: &MapLayout) -> Result<MapStats, ReadError> {
    let header = mem.read_u64(var_addr)?;
    if header == 0 {
        return Ok(MapStats::default());
    }
    match *layout {
        MapLayout::Classic {
            count_offset,
            b_offset,
            noverflow_offset,
        } => {
            let count = mem.read_u64(field(header, count_offset)?)?;
            let mut b = [0u8; 1];
            mem.read(field(header, b_offset)?, &mut b)?;
            let mut noverflow = [0u8; 2];
            mem.read(field(header, noverflow_offset)?, &mut noverflow)?;
            Ok(MapStats {
                length: count,
                // B is at most 63 in any real map; a larger value is a torn read.
                capacity_slots: SLOTS_PER_GROUP.checked_shl(u32::from(b[0])).unwrap_or(0),
                overflow_buckets: Some(u64::from(u16::from_le_bytes(noverflow))),
                tables: None,
                consistent: false,
            })
        }
        MapLayout::Swiss {
            used_offset,
            dir_ptr_offset,
            dir_len_offset,
            table_capacity_offset,
        } => {
            let used = mem.read_u64(field(header, used_offset)?)?;
            let dir_ptr = mem.read_u64(field(header, dir_ptr_offset)?)?;
            let dir_len = mem.read_u64(field(header, dir_len_offset)?)?;
            let mut stats = MapStats {
                length: used,
                ..MapStats::default()
            };
            if dir_len == 0 {
                stats.capacity_slots = if dir_ptr == 0 { 0 } else { SLOTS_PER_GROUP };
                stats.tables = Some(0);
                return Ok(stats);
            }
            let entries = dir_len.min(MAX_DIRECTORY_ENTRIES);
            let mut dir = vec![0u8; entries as usize * 8];
            mem.read(dir_ptr, &mut dir)?;
            let mut seen = HashSet::new();
            for chunk in dir.chunks_exact(8) {
                let table = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                if table == 0 || !seen.insert(table) {
                    continue;
                }
                let mut cap = [0u8; 2];
                mem.read(field(table, table_capacity_offset)?, &mut cap)?;
                stats.capacity_slots = stats
                    .capacity_slots
                    .saturating_add(u64::from(u16::from_le_bytes(cap)));
            }
            stats.tables = Some(seen.len() as u64);
            Ok(stats)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::BTreeMap;

    /// A sparse address space: byte runs at addresses; optionally failing as
    /// an exited process after `fail_after` reads.
    #[derive(Default)]
    struct Fake {
        runs: BTreeMap<u64, Vec<u8>>,
        reads: Cell<usize>,
        fail_after: Option<usize>,
    }

    impl Fake {
        fn put(&mut self, addr: u64, bytes: &[u8]) {
            self.runs.insert(addr, bytes.to_vec());
        }
    }

    impl Memory for Fake {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            self.reads.set(self.reads.get() + 1);
            if self.fail_after.is_some_and(|n| self.reads.get() > n) {
                return Err(ReadError::Exited { pid: 7 });
            }
            let (start, run) = self
                .runs
                .range(..=addr)
                .next_back()
                .filter(|(s, r)| addr + buf.len() as u64 <= **s + r.len() as u64)
                .ok_or(ReadError::Unmapped {
                    addr,
                    len_bytes: buf.len(),
                    reason: "unmapped".into(),
                })?;
            let from = (addr - start) as usize;
            buf.copy_from_slice(&run[from..from + buf.len()]);
            Ok(())
        }
    }

    const CLASSIC: MapLayout = MapLayout::Classic {
        count_offset: 0,
        b_offset: 9,
        noverflow_offset: 10,
    };
    const SWISS: MapLayout = MapLayout::Swiss {
        used_offset: 0,
        dir_ptr_offset: 16,
        dir_len_offset: 24,
        table_capacity_offset: 2,
    };

    fn classic_header(count: u64, b: u8, noverflow: u16) -> Vec<u8> {
        let mut h = vec![0u8; 48];
        h[..8].copy_from_slice(&count.to_le_bytes());
        h[9] = b;
        h[10..12].copy_from_slice(&noverflow.to_le_bytes());
        h
    }

    fn swiss_header(used: u64, dir_ptr: u64, dir_len: u64) -> Vec<u8> {
        let mut h = vec![0u8; 48];
        h[..8].copy_from_slice(&used.to_le_bytes());
        h[16..24].copy_from_slice(&dir_ptr.to_le_bytes());
        h[24..32].copy_from_slice(&dir_len.to_le_bytes());
        h
    }

    #[test]
    fn classic_capacity_is_eight_slots_per_bucket() {
        let mut m = Fake::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &classic_header(1000, 17, 3));
        let s = read_map(&m, 0x1000, &CLASSIC).unwrap();
        assert_eq!((s.length, s.capacity_slots), (1000, 8 << 17));
        assert_eq!(s.overflow_buckets, Some(3));
        assert!(s.consistent);
    }

    /// A classic map whose `count` goes up by one on every read of it.
    struct Growing(Cell<u64>);

    impl Memory for Growing {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            buf.fill(0);
            match addr {
                0x1000 => buf.copy_from_slice(&0x2000u64.to_le_bytes()),
                0x2000 => {
                    self.0.set(self.0.get() + 1);
                    buf.copy_from_slice(&self.0.get().to_le_bytes());
                }
                _ => {}
            }
            Ok(())
        }
    }

    #[test]
    fn a_map_changing_on_every_read_is_marked_inconsistent() {
        let m = Growing(Cell::new(0));
        let s = read_map(&m, 0x1000, &CLASSIC).unwrap();
        assert!(!s.consistent);
        assert_eq!(s.length, READ_ATTEMPTS as u64, "the last read is kept");
    }

    #[test]
    fn bytes_held_and_needed() {
        let full = MapStats {
            length: 1000,
            capacity_slots: 8 << 17,
            overflow_buckets: Some(2),
            ..MapStats::default()
        };
        assert_eq!(bytes_held(&full, 592), ((1 << 17) + 2) * 592);
        // 1000 entries at 6.5 a bucket: 154 buckets, 256 as a power of two.
        assert_eq!(bytes_needed(1000, &CLASSIC, 592), 256 * 592);
        // 1000 at 7 a group: 143 groups, 256.
        assert_eq!(bytes_needed(1000, &SWISS, 584), 256 * 584);
        assert_eq!(bytes_needed(5, &SWISS, 584), 584);
        assert_eq!(bytes_needed(0, &SWISS, 584), 0);
    }

    #[test]
    fn nil_map_is_empty_without_slots() {
        let mut m = Fake::default();
        m.put(0x1000, &0u64.to_le_bytes());
        let s = read_map(&m, 0x1000, &SWISS).unwrap();
        assert_eq!((s.length, s.capacity_slots), (0, 0));
    }

    #[test]
    fn swiss_tables_shared_by_directory_entries_count_once() {
        let mut m = Fake::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &swiss_header(1500, 0x3000, 4));
        let dir: Vec<u8> = [0x4000u64, 0x4000, 0x5000, 0x6000]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        m.put(0x3000, &dir);
        for (addr, cap) in [(0x4000u64, 1024u16), (0x5000, 512), (0x6000, 512)] {
            let mut t = vec![0u8; 32];
            t[2..4].copy_from_slice(&cap.to_le_bytes());
            m.put(addr, &t);
        }
        let s = read_map(&m, 0x1000, &SWISS).unwrap();
        assert_eq!(
            (s.length, s.capacity_slots, s.tables),
            (1500, 2048, Some(3))
        );
    }

    #[test]
    fn swiss_small_map_is_one_group() {
        let mut m = Fake::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &swiss_header(5, 0x9000, 0));
        let s = read_map(&m, 0x1000, &SWISS).unwrap();
        assert_eq!((s.length, s.capacity_slots), (5, 8));
    }

    #[test]
    fn exit_mid_read_is_reported_as_exit() {
        let mut m = Fake {
            fail_after: Some(2),
            ..Fake::default()
        };
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &classic_header(1, 1, 0));
        let e = read_map(&m, 0x1000, &CLASSIC).unwrap_err();
        assert_eq!(e, ReadError::Exited { pid: 7 });
    }

    #[test]
    fn header_pointer_at_the_top_of_the_address_space_is_unreadable() {
        // Found by the fuzzer: a garbage table pointer plus a field offset overflowed.
        let mut m = Fake::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &swiss_header(1, 0x3000, 1));
        m.put(0x3000, &u64::MAX.to_le_bytes());
        let e = read_map(&m, 0x1000, &SWISS).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }

    #[test]
    fn unmapped_header_names_the_address() {
        let mut m = Fake::default();
        m.put(0x1000, &0xdead0u64.to_le_bytes());
        let e = read_map(&m, 0x1000, &CLASSIC).unwrap_err();
        assert!(e.to_string().contains("0xdead0"), "{e}");
    }
}
