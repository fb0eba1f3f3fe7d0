//! Map header layouts and reading one map's length and capacity through
//! [`Memory`], consistent against a target that keeps running.

use crate::hash::FastSet;
use crate::memory::{read_batch, Memory, ReadError};
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
    /// `runtime.hmap`: `count int`, `flags uint8`, `B uint8`, `noverflow
    /// uint16`, `buckets`, `oldbuckets`, `nevacuate uintptr`.
    Classic {
        /// Offset of `count`.
        count_offset: u64,
        /// Offset of `flags` (bit 8: same-size grow).
        flags_offset: u64,
        /// Offset of `B` (log2 of the bucket count).
        b_offset: u64,
        /// Offset of `noverflow` (approximate overflow bucket count).
        noverflow_offset: u64,
        /// Offset of `buckets` (the bucket array).
        buckets_offset: u64,
        /// Offset of `oldbuckets` (non-nil while the map grows).
        oldbuckets_offset: u64,
        /// Offset of `nevacuate` (old buckets below it are evacuated).
        nevacuate_offset: u64,
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
        /// Offset of `used uint16` in a table.
        table_used_offset: u64,
        /// Offset of `groups.data` (the group array) in a table.
        table_groups_offset: u64,
        /// Offset of `groups.lengthMask` (groups − 1) in a table.
        table_length_mask_offset: u64,
        /// Offset of `tombstonePossible bool` in the map (Go ≥ 1.25).
        tombstone_possible_offset: Option<u64>,
    },
}

/// Where keys and values are in one bucket (classic) or group (Swiss) of 8
/// slots, from the DWARF of `bucket<K,V>` / `map.group[K]V`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLayout {
    /// Bytes of one bucket or group.
    pub group_bytes: u64,
    /// Offset of the 8 control bytes (`tophash` classic, `ctrl` Swiss).
    pub ctrl_offset: u64,
    /// Offset of slot 0's key.
    pub key_offset: u64,
    /// Bytes from one slot's key to the next.
    pub key_stride: u64,
    /// Offset of slot 0's value.
    pub value_offset: u64,
    /// Bytes from one slot's value to the next.
    pub value_stride: u64,
    /// Offset of the overflow bucket pointer (classic only).
    pub overflow_offset: Option<u64>,
    /// The key type as stored in a slot (a pointer when stored indirectly).
    pub key_ty: Option<u64>,
    /// The value type as stored in a slot.
    pub value_ty: Option<u64>,
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
    /// Classic: buckets of the array being evacuated while the map grows (0
    /// when it is not growing).
    pub old_buckets: Option<u64>,
    /// Classic: how many of the old buckets are evacuated (`nevacuate`).
    pub evacuated_buckets: Option<u64>,
    /// Swiss: the distinct tables in the directory.
    pub tables: Option<u64>,
    /// Swiss: deleted slots (control byte `0xFE`) counted in the groups, when
    /// counted ([`count_tombstones`]).
    pub tombstones: Option<u64>,
    /// Where the header is (0 for a nil map): the same map reached by two
    /// paths has the same header.
    pub header_addr: u64,
    /// False when two reads in a row never agreed (the map was changing).
    pub consistent: bool,
}

/// Bytes the buckets or groups of a map with `capacity_slots` slots take
/// (`group_bytes` per 8 slots; classic overflow buckets and the old buckets of
/// a growing map included).
pub fn bytes_held(stats: &MapStats, group_bytes: u64) -> u64 {
    let groups = (stats.capacity_slots / SLOTS_PER_GROUP)
        .saturating_add(stats.overflow_buckets.unwrap_or(0))
        .saturating_add(stats.old_buckets.unwrap_or(0));
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
    read_maps(mem, &[(var_addr, *layout)])
        .pop()
        .expect("one result per map")
}

/// [`read_map`] for many maps at once (`(var_addr, layout)` each): every read
/// is one batch over all the maps still to read ([`read_batch`]: a few system
/// calls for thousands of headers), so the two reads that must agree are one
/// batch apart. One result per map, in order.
pub fn read_maps(mem: &dyn Memory, maps: &[(u64, MapLayout)]) -> Vec<Result<MapStats, ReadError>> {
    let mut last = read_once_many(mem, maps);
    let mut pending: Vec<usize> = (0..maps.len()).filter(|&i| last[i].is_ok()).collect();
    for _ in 1..READ_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let again: Vec<(u64, MapLayout)> = pending.iter().map(|&i| maps[i]).collect();
        let mut changing = Vec::new();
        for (&i, next) in pending.iter().zip(read_once_many(mem, &again)) {
            match next {
                Ok(s) if last[i].as_ref() == Ok(&s) => {
                    last[i] = Ok(MapStats {
                        consistent: true,
                        ..s
                    })
                }
                Ok(s) => {
                    last[i] = Ok(s);
                    changing.push(i);
                }
                Err(e) => last[i] = Err(e),
            }
        }
        pending = changing;
    }
    last
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

/// Reads `len` bytes at `addr`.
fn read_vec(mem: &dyn Memory, addr: u64, len: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0u8; len as usize];
    mem.read(addr, &mut buf)?;
    Ok(buf)
}

/// A little-endian integer of `N` bytes at `offset` of `bytes`.
fn le<const N: usize>(bytes: &[u8], offset: u64) -> u64 {
    let mut b = [0u8; 8];
    let o = offset as usize;
    b[..N].copy_from_slice(&bytes[o..o + N]);
    u64::from_le_bytes(b)
}

/// Bytes to read to cover `u64`s at every one of `offsets`.
fn span(offsets: &[u64]) -> u64 {
    offsets.iter().copied().max().unwrap_or(0).saturating_add(8)
}

/// The most bytes one header or table read takes (a larger span means a
/// malformed layout).
const MAX_HEADER_BYTES: u64 = 4096;

/// Bytes of Swiss directories read in one batch (bounds the memory a batch of
/// torn `dirLen`s can take).
const MAX_DIRECTORY_BATCH_BYTES: u64 = 8 << 20;

/// Bytes of the header [`read_once_many`] reads for `layout`.
fn header_span(layout: &MapLayout) -> u64 {
    match *layout {
        MapLayout::Classic {
            count_offset,
            flags_offset,
            b_offset,
            noverflow_offset,
            buckets_offset: _,
            oldbuckets_offset,
            nevacuate_offset,
        } => span(&[
            count_offset,
            flags_offset,
            b_offset,
            noverflow_offset,
            oldbuckets_offset,
            nevacuate_offset,
        ]),
        MapLayout::Swiss {
            used_offset,
            dir_ptr_offset,
            dir_len_offset,
            tombstone_possible_offset,
            ..
        } => span(&[
            used_offset,
            dir_ptr_offset,
            dir_len_offset,
            tombstone_possible_offset.unwrap_or(0),
        ]),
    }
}

/// One read of each map's header (and directory and tables), `consistent`
/// left false: four batches (header pointers, headers, directories, table
/// capacities), each map failing alone.
fn read_once_many(mem: &dyn Memory, maps: &[(u64, MapLayout)]) -> Vec<Result<MapStats, ReadError>> {
    let mut out: Vec<Result<MapStats, ReadError>> = vec![Ok(MapStats::default()); maps.len()];
    // The header pointers; a nil map stays empty.
    let pointers: Vec<(u64, usize)> = maps.iter().map(|(addr, _)| (*addr, 8)).collect();
    let mut headers: Vec<(usize, u64)> = Vec::new();
    let mut ranges: Vec<(u64, usize)> = Vec::new();
    let read = read_batch(mem, &pointers);
    for i in 0..maps.len() {
        let header = match read.get(i) {
            Ok(b) => le::<8>(b, 0),
            Err(e) => {
                out[i] = Err(e);
                continue;
            }
        };
        if header == 0 {
            continue;
        }
        let len = header_span(&maps[i].1);
        if len > MAX_HEADER_BYTES {
            out[i] = Err(ReadError::Unmapped {
                addr: header,
                len_bytes: len as usize,
                reason: "header layout larger than 4096 bytes".into(),
            });
            continue;
        }
        if let Err(e) = field(header, len) {
            out[i] = Err(e);
            continue;
        }
        headers.push((i, header));
        ranges.push((header, len as usize));
    }
    // The headers; Swiss maps with a directory go on below.
    let mut directories: Vec<(usize, u64, u64)> = Vec::new();
    let read = read_batch(mem, &ranges);
    for (k, &(i, header)) in headers.iter().enumerate() {
        let h = match read.get(k) {
            Ok(h) => h,
            Err(e) => {
                out[i] = Err(e);
                continue;
            }
        };
        out[i] = Ok(match maps[i].1 {
            MapLayout::Classic {
                count_offset,
                flags_offset,
                b_offset,
                noverflow_offset,
                buckets_offset: _,
                oldbuckets_offset,
                nevacuate_offset,
            } => {
                let b = le::<1>(h, b_offset) as u32;
                // B is at most 63 in any real map; a larger value is a torn read.
                let capacity_slots = SLOTS_PER_GROUP.checked_shl(b).unwrap_or(0);
                let growing = le::<8>(h, oldbuckets_offset) != 0;
                let old_buckets = if !growing {
                    0
                } else if le::<1>(h, flags_offset) & SAME_SIZE_GROW != 0 {
                    capacity_slots / SLOTS_PER_GROUP
                } else {
                    capacity_slots / SLOTS_PER_GROUP / 2
                };
                MapStats {
                    header_addr: header,
                    length: le::<8>(h, count_offset),
                    capacity_slots,
                    overflow_buckets: Some(le::<2>(h, noverflow_offset)),
                    old_buckets: Some(old_buckets),
                    evacuated_buckets: Some(if growing {
                        le::<8>(h, nevacuate_offset).min(old_buckets)
                    } else {
                        0
                    }),
                    tables: None,
                    tombstones: None,
                    consistent: false,
                }
            }
            MapLayout::Swiss {
                used_offset,
                dir_ptr_offset,
                dir_len_offset,
                tombstone_possible_offset,
                ..
            } => {
                let dir_ptr = le::<8>(h, dir_ptr_offset);
                let dir_len = le::<8>(h, dir_len_offset);
                let mut stats = MapStats {
                    header_addr: header,
                    length: le::<8>(h, used_offset),
                    ..MapStats::default()
                };
                // Go ≥ 1.25: no delete left a tombstone since the last clear.
                if tombstone_possible_offset.is_some_and(|o| le::<1>(h, o) == 0) {
                    stats.tombstones = Some(0);
                }
                if dir_len == 0 {
                    stats.capacity_slots = if dir_ptr == 0 { 0 } else { SLOTS_PER_GROUP };
                    stats.tables = Some(0);
                } else {
                    directories.push((i, dir_ptr, dir_len.min(MAX_DIRECTORY_ENTRIES)));
                }
                stats
            }
        });
    }
    // The directories and their tables' capacities, a bounded batch at a time.
    let mut rest = directories.as_slice();
    while !rest.is_empty() {
        let mut bytes = 0;
        let n = rest
            .iter()
            .take_while(|(_, _, entries)| {
                bytes += entries * 8;
                bytes <= MAX_DIRECTORY_BATCH_BYTES
            })
            .count()
            .max(1);
        let (batch, more) = rest.split_at(n);
        rest = more;
        read_tables(mem, maps, batch, &mut out);
    }
    out
}

/// Reads the directories `(map, dir_ptr, entries)` and sums the capacity of
/// each map's distinct tables into `out`.
fn read_tables(
    mem: &dyn Memory,
    maps: &[(u64, MapLayout)],
    directories: &[(usize, u64, u64)],
    out: &mut [Result<MapStats, ReadError>],
) {
    let ranges: Vec<(u64, usize)> = directories
        .iter()
        .map(|&(_, dir_ptr, entries)| (dir_ptr, (entries * 8) as usize))
        .collect();
    // Per map: its tables' capacity fields in directory order, up to the first
    // whose address overflows.
    let mut fields: Vec<(usize, Vec<Result<u64, ReadError>>)> = Vec::new();
    let read = read_batch(mem, &ranges);
    for (k, &(i, _, _)) in directories.iter().enumerate() {
        let dir = match read.get(k) {
            Ok(d) => d,
            Err(e) => {
                out[i] = Err(e);
                continue;
            }
        };
        let MapLayout::Swiss {
            table_capacity_offset,
            ..
        } = maps[i].1
        else {
            continue;
        };
        let mut seen = FastSet::default();
        let mut tables = Vec::new();
        let mut previous = 0;
        for chunk in dir.chunks_exact(8) {
            let table = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // Entries sharing a table are next to each other (a table covers
            // a run of the directory): most repeats need no lookup.
            if table == previous {
                continue;
            }
            previous = table;
            if table != 0 && seen.insert(table) {
                let f = field(table, table_capacity_offset);
                let bad = f.is_err();
                tables.push(f);
                if bad {
                    break;
                }
            }
        }
        fields.push((i, tables));
    }
    let ranges: Vec<(u64, usize)> = fields
        .iter()
        .flat_map(|(_, t)| t.iter().filter_map(|f| f.as_ref().ok()).map(|a| (*a, 2)))
        .collect();
    let read = read_batch(mem, &ranges);
    let mut capacities = 0..read.len();
    for (i, tables) in fields {
        let mut total = Ok(0u64);
        for f in &tables {
            let cap = match f {
                Ok(_) => read
                    .get(capacities.next().expect("one capacity read per table"))
                    .map(|b| le::<2>(b, 0)),
                Err(e) => Err(e.clone()),
            };
            total = match (total, cap) {
                (Ok(sum), Ok(c)) => Ok(sum.saturating_add(c)),
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            };
        }
        match (total, &mut out[i]) {
            (Ok(capacity), Ok(stats)) => {
                stats.capacity_slots = capacity;
                stats.tables = Some(tables.len() as u64);
            }
            (Err(e), slot) => *slot = Err(e),
            (Ok(_), Err(_)) => {}
        }
    }
}

/// `flags` bit of a classic map growing to the same size (evacuating
/// overflow buckets, not doubling).
const SAME_SIZE_GROW: u64 = 8;

/// The distinct non-nil tables of a Swiss directory, in directory order.
fn distinct_tables(mem: &dyn Memory, dir_ptr: u64, dir_len: u64) -> Result<Vec<u64>, ReadError> {
    let entries = dir_len.min(MAX_DIRECTORY_ENTRIES);
    let dir = read_vec(mem, dir_ptr, entries * 8)?;
    let mut seen = HashSet::new();
    let mut tables = Vec::new();
    for chunk in dir.chunks_exact(8) {
        let table = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        if table != 0 && seen.insert(table) {
            tables.push(table);
        }
    }
    Ok(tables)
}

/// Bytes read at once when scanning an array of buckets or groups.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// The longest chain of classic overflow buckets followed from one bucket
/// (a longer one is a cycle in a torn read).
const MAX_OVERFLOW_CHAIN: usize = 1 << 16;

/// A run of `count` buckets or groups of `group_bytes` at `base`.
struct GroupRun {
    base: u64,
    count: u64,
}

/// Calls `f(address, bytes)` for every bucket or group of the map held at
/// `var_addr` (classic: the bucket array, the old buckets of a growing map and
/// every overflow bucket; Swiss: the small group or every table's groups),
/// until `f` returns `false` or `max_bytes` have been read (then `Ok(false)`).
pub fn for_each_group(
    mem: &dyn Memory,
    var_addr: u64,
    layout: &MapLayout,
    entries: &EntryLayout,
    max_bytes: u64,
    f: &mut dyn FnMut(u64, &[u8]) -> bool,
) -> Result<bool, ReadError> {
    let Some(runs) = group_runs(mem, var_addr, layout, entries)? else {
        return Ok(false);
    };
    scan_runs(mem, runs, entries, max_bytes, f)
}

/// The bucket or group arrays of the map held at `var_addr` (classic: the
/// buckets and old buckets, overflow buckets not included; Swiss: the small
/// group or each table's groups); `None` when they cannot be laid out.
fn group_runs(
    mem: &dyn Memory,
    var_addr: u64,
    layout: &MapLayout,
    entries: &EntryLayout,
) -> Result<Option<Vec<GroupRun>>, ReadError> {
    let gb = entries.group_bytes;
    if gb == 0 || gb > SCAN_CHUNK_BYTES || span(&[entries.ctrl_offset]) > gb {
        return Ok(None);
    }
    let header = mem.read_u64(var_addr)?;
    if header == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut runs = Vec::new();
    match *layout {
        MapLayout::Classic {
            flags_offset,
            b_offset,
            buckets_offset,
            oldbuckets_offset,
            ..
        } => {
            let len = span(&[flags_offset, b_offset, buckets_offset, oldbuckets_offset]);
            if len > MAX_HEADER_BYTES {
                return Ok(None);
            }
            let h = read_vec(mem, header, len)?;
            let b = le::<1>(&h, b_offset);
            if b > 40 {
                return Ok(None);
            }
            let buckets = 1u64 << b;
            runs.push(GroupRun {
                base: le::<8>(&h, buckets_offset),
                count: buckets,
            });
            let old = le::<8>(&h, oldbuckets_offset);
            if old != 0 {
                let same = le::<1>(&h, flags_offset) & SAME_SIZE_GROW != 0;
                runs.push(GroupRun {
                    base: old,
                    count: if same { buckets } else { (buckets / 2).max(1) },
                });
            }
        }
        MapLayout::Swiss {
            dir_ptr_offset,
            dir_len_offset,
            table_groups_offset,
            table_length_mask_offset,
            ..
        } => {
            let len = span(&[dir_ptr_offset, dir_len_offset]);
            if len > MAX_HEADER_BYTES {
                return Ok(None);
            }
            let h = read_vec(mem, header, len)?;
            let dir_ptr = le::<8>(&h, dir_ptr_offset);
            let dir_len = le::<8>(&h, dir_len_offset);
            if dir_len == 0 {
                if dir_ptr != 0 {
                    runs.push(GroupRun {
                        base: dir_ptr,
                        count: 1,
                    });
                }
            } else {
                for table in distinct_tables(mem, dir_ptr, dir_len)? {
                    let data = mem.read_u64(field(table, table_groups_offset)?)?;
                    let mask = mem.read_u64(field(table, table_length_mask_offset)?)?;
                    // A table holds at most 1024 slots: 128 groups.
                    runs.push(GroupRun {
                        base: data,
                        count: mask.saturating_add(1).min(128),
                    });
                }
            }
        }
    }
    Ok(Some(runs))
}

/// Calls `f` on every group of `runs` and every classic overflow bucket, as
/// [`for_each_group`] does.
fn scan_runs(
    mem: &dyn Memory,
    runs: Vec<GroupRun>,
    entries: &EntryLayout,
    max_bytes: u64,
    f: &mut dyn FnMut(u64, &[u8]) -> bool,
) -> Result<bool, ReadError> {
    let gb = entries.group_bytes;
    let mut budget = max_bytes;
    let per_chunk = (SCAN_CHUNK_BYTES / gb).max(1);
    let mut overflow = Vec::new();
    for run in runs {
        if run.base == 0 {
            continue;
        }
        let mut i = 0;
        while i < run.count {
            let n = per_chunk.min(run.count - i);
            let bytes = n * gb;
            if bytes > budget {
                return Ok(false);
            }
            budget -= bytes;
            let start = field(run.base, i * gb)?;
            let chunk = read_vec(mem, start, bytes)?;
            for (k, group) in chunk.chunks_exact(gb as usize).enumerate() {
                let addr = start + k as u64 * gb;
                if !f(addr, group) {
                    return Ok(false);
                }
                if let Some(o) = entries.overflow_offset {
                    if span(&[o]) <= gb {
                        let next = le::<8>(group, o);
                        if next != 0 {
                            overflow.push(next);
                        }
                    }
                }
            }
            i += n;
        }
    }
    // Classic overflow buckets, each chain followed to its end.
    if let Some(o) = entries.overflow_offset {
        for first in overflow {
            let mut next = first;
            for _ in 0..MAX_OVERFLOW_CHAIN {
                if next == 0 {
                    break;
                }
                if gb > budget {
                    return Ok(false);
                }
                budget -= gb;
                let group = read_vec(mem, next, gb)?;
                if !f(next, &group) {
                    return Ok(false);
                }
                next = le::<8>(&group, o);
            }
        }
    }
    Ok(true)
}

/// Whether slot `i` of a bucket or group with control bytes `ctrl` holds an
/// entry: classic `tophash >= minTopHash (5)` (below: empty or evacuated);
/// Swiss: the control byte's high bit clear (`0x80` empty, `0xFE` deleted).
pub fn slot_full(layout: &MapLayout, ctrl: u8) -> bool {
    match layout {
        MapLayout::Classic { .. } => ctrl >= 5,
        MapLayout::Swiss { .. } => ctrl & 0x80 == 0,
    }
}

/// The Swiss control byte of a deleted slot (a tombstone).
pub const CTRL_DELETED: u8 = 0xFE;

/// Counts the Swiss map's tombstones: control bytes equal to [`CTRL_DELETED`]
/// in every group of every table. A Go ≥ 1.25 map whose `tombstonePossible`
/// is false has none and is not scanned. `None` for classic maps, or when the
/// groups are larger than `max_bytes` together.
pub fn count_tombstones(
    mem: &dyn Memory,
    var_addr: u64,
    layout: &MapLayout,
    entries: &EntryLayout,
    max_bytes: u64,
) -> Result<Option<u64>, ReadError> {
    let MapLayout::Swiss {
        tombstone_possible_offset,
        ..
    } = *layout
    else {
        return Ok(None);
    };
    if let Some(o) = tombstone_possible_offset {
        let header = mem.read_u64(var_addr)?;
        if header == 0 {
            return Ok(Some(0));
        }
        let mut b = [0u8; 1];
        mem.read(field(header, o)?, &mut b)?;
        if b[0] == 0 {
            return Ok(Some(0));
        }
    }
    let Some(runs) = group_runs(mem, var_addr, layout, entries)? else {
        return Ok(None);
    };
    // Groups past the budget: give up before reading any (a map of 10 million
    // entries has over 1 GiB of groups).
    let total_bytes = runs.iter().fold(0u64, |sum, r| {
        sum.saturating_add(r.count.saturating_mul(entries.group_bytes))
    });
    if total_bytes > max_bytes {
        return Ok(None);
    }
    let mut deleted = 0u64;
    let ctrl = entries.ctrl_offset as usize;
    let complete = scan_runs(mem, runs, entries, max_bytes, &mut |_, g| {
        deleted += g[ctrl..ctrl + 8]
            .iter()
            .filter(|c| **c == CTRL_DELETED)
            .count() as u64;
        true
    })?;
    Ok(complete.then_some(deleted))
}

/// The addresses of the key and the value of every entry of the map held at
/// `var_addr`, at most `max_entries` (`true` with them when all were found).
pub fn map_entries(
    mem: &dyn Memory,
    var_addr: u64,
    layout: &MapLayout,
    entries: &EntryLayout,
    max_entries: usize,
    max_bytes: u64,
) -> Result<(Vec<(u64, u64)>, bool), ReadError> {
    let mut found = Vec::new();
    let ctrl = entries.ctrl_offset as usize;
    let complete = for_each_group(mem, var_addr, layout, entries, max_bytes, &mut |addr, g| {
        for (i, c) in g[ctrl..ctrl + 8].iter().enumerate() {
            if !slot_full(layout, *c) {
                continue;
            }
            if found.len() >= max_entries {
                return false;
            }
            let i = i as u64;
            let key = entries
                .key_stride
                .checked_mul(i)
                .and_then(|o| o.checked_add(entries.key_offset))
                .and_then(|o| addr.checked_add(o));
            let value = entries
                .value_stride
                .checked_mul(i)
                .and_then(|o| o.checked_add(entries.value_offset))
                .and_then(|o| addr.checked_add(o));
            if let (Some(k), Some(v)) = (key, value) {
                found.push((k, v));
            }
        }
        true
    })?;
    Ok((found, complete))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeMemory;
    use std::cell::Cell;

    /// The Go 1.19 hmap layout (offsets as its DWARF gives them).
    const CLASSIC: MapLayout = MapLayout::Classic {
        count_offset: 0,
        flags_offset: 8,
        b_offset: 9,
        noverflow_offset: 10,
        buckets_offset: 16,
        oldbuckets_offset: 24,
        nevacuate_offset: 32,
    };
    /// The Go 1.27 Map and table layout.
    const SWISS: MapLayout = MapLayout::Swiss {
        used_offset: 0,
        dir_ptr_offset: 16,
        dir_len_offset: 24,
        table_capacity_offset: 2,
        table_used_offset: 0,
        table_groups_offset: 16,
        table_length_mask_offset: 24,
        tombstone_possible_offset: Some(40),
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
        let mut m = FakeMemory::default();
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
                    buf[..8].copy_from_slice(&self.0.get().to_le_bytes());
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
        let mut m = FakeMemory::default();
        m.put(0x1000, &0u64.to_le_bytes());
        let s = read_map(&m, 0x1000, &SWISS).unwrap();
        assert_eq!((s.length, s.capacity_slots), (0, 0));
    }

    #[test]
    fn swiss_tables_shared_by_directory_entries_count_once() {
        let mut m = FakeMemory::default();
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
        let mut m = FakeMemory::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &swiss_header(5, 0x9000, 0));
        let s = read_map(&m, 0x1000, &SWISS).unwrap();
        assert_eq!((s.length, s.capacity_slots), (5, 8));
    }

    #[test]
    fn exit_mid_read_is_reported_as_exit() {
        let mut m = FakeMemory {
            fail_after: Some(2),
            ..FakeMemory::default()
        };
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &classic_header(1, 1, 0));
        let e = read_map(&m, 0x1000, &CLASSIC).unwrap_err();
        assert_eq!(e, ReadError::Exited { pid: 7 });
    }

    #[test]
    fn header_pointer_at_the_top_of_the_address_space_is_unreadable() {
        // Found by the fuzzer: a garbage table pointer plus a field offset overflowed.
        let mut m = FakeMemory::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x2000, &swiss_header(1, 0x3000, 1));
        m.put(0x3000, &u64::MAX.to_le_bytes());
        let e = read_map(&m, 0x1000, &SWISS).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }

    #[test]
    fn maps_read_together_fail_alone_and_equal_maps_read_alone() {
        let mut m = FakeMemory::default();
        // Three maps: a directory of two tables, an unmapped header, a small one.
        m.put(0x1000, &0x2000u64.to_le_bytes());
        m.put(0x1008, &0xdead0u64.to_le_bytes());
        m.put(0x1010, &0x2100u64.to_le_bytes());
        m.put(0x2000, &swiss_header(900, 0x3000, 2));
        m.put(0x2100, &swiss_header(3, 0x9000, 0));
        let dir: Vec<u8> = [0x4000u64, 0x5000]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        m.put(0x3000, &dir);
        for (addr, cap) in [(0x4000u64, 1024u16), (0x5000, 512)] {
            let mut t = vec![0u8; 32];
            t[2..4].copy_from_slice(&cap.to_le_bytes());
            m.put(addr, &t);
        }
        let vars = [(0x1000, SWISS), (0x1008, SWISS), (0x1010, SWISS)];
        let all = read_maps(&m, &vars);
        let a = all[0].as_ref().unwrap();
        assert_eq!((a.length, a.capacity_slots, a.tables), (900, 1536, Some(2)));
        assert!(all[1].as_ref().unwrap_err().to_string().contains("0xdead0"));
        assert_eq!(all[2].as_ref().unwrap().capacity_slots, 8);
        for (r, (addr, layout)) in all.iter().zip(vars) {
            assert_eq!(r, &read_map(&m, addr, &layout));
        }
    }

    #[test]
    fn tombstones_past_the_budget_are_not_read_at_all() {
        let mut m = FakeMemory::default();
        m.put(0x1000, &0x2000u64.to_le_bytes());
        let mut h = swiss_header(100, 0x3000, 2);
        h[40] = 1; // tombstonePossible
        m.put(0x2000, &h);
        let dir: Vec<u8> = [0x4000u64, 0x5000]
            .iter()
            .flat_map(|p| p.to_le_bytes())
            .collect();
        m.put(0x3000, &dir);
        // Two tables of 128 groups (mask 127); the groups are not mapped.
        for (addr, data) in [(0x4000u64, 0x10_0000u64), (0x5000, 0x20_0000)] {
            let mut t = vec![0u8; 32];
            t[2..4].copy_from_slice(&1024u16.to_le_bytes());
            t[16..24].copy_from_slice(&data.to_le_bytes());
            t[24..32].copy_from_slice(&127u64.to_le_bytes());
            m.put(addr, &t);
        }
        let entries = EntryLayout {
            group_bytes: 136,
            ctrl_offset: 0,
            key_offset: 8,
            key_stride: 16,
            value_offset: 16,
            value_stride: 16,
            overflow_offset: None,
            key_ty: None,
            value_ty: None,
        };
        // 2 × 128 × 136 bytes of groups over a budget of one table's worth.
        let t = count_tombstones(&m, 0x1000, &SWISS, &entries, 128 * 136 + 1);
        assert_eq!(t, Ok(None));
        // Within the budget the (unmapped) groups are read.
        let t = count_tombstones(&m, 0x1000, &SWISS, &entries, 1 << 20);
        assert!(t.unwrap_err().to_string().contains("0x100000"));
    }

    #[test]
    fn unmapped_header_names_the_address() {
        let mut m = FakeMemory::default();
        m.put(0x1000, &0xdead0u64.to_le_bytes());
        let e = read_map(&m, 0x1000, &CLASSIC).unwrap_err();
        assert!(e.to_string().contains("0xdead0"), "{e}");
    }
}
