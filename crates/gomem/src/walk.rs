//! Finding every map reachable from a Go program's package-level variables in
//! its live memory: through struct fields, array and slice elements, pointers
//! (cycles detected) and the values of other maps, to a bounded depth and
//! count.

use crate::dwarf::{DwarfIndex, MapType, Ty, TypeId};
use crate::layout::{count_tombstones, map_entries, read_map, read_maps, MapLayout, MapStats};
use crate::memory::{Memory, ReadError};
use std::collections::HashSet;

/// How far [`walk`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Path steps past the variable (a field, an element, a map value).
    pub max_depth: usize,
    /// Maps listed at most.
    pub max_maps: usize,
    /// Places visited at most (fields, elements, map entries, pointers).
    pub max_visits: u64,
    /// Bytes of buckets or groups read at most per map (to find maps held as
    /// values, or to count tombstones).
    pub max_scan_bytes: u64,
}

impl Default for Limits {
    /// 8 steps, 100,000 maps, 4,000,000 places, 256 MiB of groups per map.
    fn default() -> Limits {
        Limits {
            max_depth: 8,
            max_maps: 100_000,
            max_visits: 4_000_000,
            max_scan_bytes: 256 << 20,
        }
    }
}

/// A map found in the target's memory.
#[derive(Debug, Clone)]
pub struct FoundMap<'a> {
    /// Its path: `pkg.var`, `.field`, `[index]`, `["key"]`/`[7]` (a map value
    /// under a string or integer key), `[#n]` (the n-th entry read, other keys).
    pub path: String,
    /// Where the map pointer is.
    pub var_addr: u64,
    /// Its type and layouts.
    pub map: &'a MapType,
    /// What its header says.
    pub stats: MapStats,
}

/// What [`walk`] found.
#[derive(Debug, Default)]
pub struct Walk<'a> {
    /// Every map, each once (the first path that reached it).
    pub maps: Vec<FoundMap<'a>>,
    /// Places that could not be read, with why (a torn pointer, an unmapped
    /// address, a map type without layout).
    pub skipped: Vec<(String, String)>,
    /// Pointers not followed because their target was already visited.
    pub cycles: u64,
    /// A limit stopped the walk: some maps may be missing.
    pub truncated: bool,
}

/// Walks every root of `index` (addresses shifted by `bias`, the load bias of
/// a PIE binary) through `mem`. Fails only when the target exits.
pub fn walk<'a>(
    index: &'a DwarfIndex,
    mem: &dyn Memory,
    bias: u64,
    limits: &Limits,
) -> Result<Walk<'a>, ReadError> {
    let mut w = Walker {
        index,
        mem,
        limits,
        out: Walk::default(),
        visits: 0,
        seen_headers: HashSet::new(),
        seen_pointers: HashSet::new(),
        pending: Vec::new(),
    };
    for (name, reason) in &index.skipped {
        w.out.skipped.push((name.clone(), reason.clone()));
    }
    for root in &index.roots {
        w.visit(root.name.clone(), root.addr.wrapping_add(bias), root.ty, 0)?;
    }
    w.flush()?;
    Ok(w.out)
}

/// Maps whose values hold no map are read this many at a time
/// ([`read_maps`]: a few system calls per batch instead of several per map).
const MAP_BATCH: usize = 1024;

/// A map reached, to be read with the next batch.
struct PendingMap<'a> {
    path: String,
    var_addr: u64,
    map: &'a MapType,
}

struct Walker<'a, 'm> {
    index: &'a DwarfIndex,
    mem: &'m dyn Memory,
    limits: &'m Limits,
    out: Walk<'a>,
    visits: u64,
    seen_headers: HashSet<u64>,
    seen_pointers: HashSet<(u64, TypeId)>,
    /// Maps reached but not read yet, in walk order: they are read (and
    /// listed, or skipped) in that order before anything after them is
    /// listed or skipped, so batching changes no result.
    pending: Vec<PendingMap<'a>>,
}

/// The longest string key printed in a path.
const MAX_KEY_BYTES: u64 = 64;

impl<'a> Walker<'a, '_> {
    /// Keeps an unreadable place as skipped; only an exit stops the walk.
    fn soft<T>(&mut self, path: &str, r: Result<T, ReadError>) -> Result<Option<T>, ReadError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e @ ReadError::Exited { .. }) => Err(e),
            Err(e) => {
                // Maps reached before this place are skipped before it.
                self.flush()?;
                self.out.skipped.push((path.to_string(), e.to_string()));
                Ok(None)
            }
        }
    }

    /// Maps listed so far, counting those not read yet (an upper bound).
    fn maps_reached(&self) -> usize {
        self.out.maps.len() + self.pending.len()
    }

    /// Reads the pending maps in one batch and lists them.
    fn flush(&mut self) -> Result<(), ReadError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let items: Vec<(u64, MapLayout)> =
            batch.iter().map(|p| (p.var_addr, p.map.layout)).collect();
        for (p, r) in batch.into_iter().zip(read_maps(self.mem, &items)) {
            self.list(p.path, p.var_addr, p.map, r)?;
        }
        Ok(())
    }

    /// Lists a map read (once: a header already listed is a revisit), its
    /// tombstones counted when the header leaves them open. The header, or
    /// `None` when the map was not listed.
    fn list(
        &mut self,
        path: String,
        addr: u64,
        m: &'a MapType,
        read: Result<MapStats, ReadError>,
    ) -> Result<Option<u64>, ReadError> {
        let Some(mut stats) = self.soft(&path, read)? else {
            return Ok(None);
        };
        let header = stats.header_addr;
        if header != 0 && !self.seen_headers.insert(header) {
            self.out.cycles += 1;
            return Ok(None);
        }
        if let (Some(e), None) = (&m.entries, stats.tombstones) {
            let t = count_tombstones(self.mem, addr, &m.layout, e, self.limits.max_scan_bytes);
            stats.tombstones = self.soft(&path, t)?.flatten();
        }
        self.out.maps.push(FoundMap {
            path,
            var_addr: addr,
            map: m,
            stats,
        });
        Ok(Some(header))
    }

    fn visit(
        &mut self,
        path: String,
        addr: u64,
        ty: TypeId,
        depth: usize,
    ) -> Result<(), ReadError> {
        let index = self.index;
        if !index.reaches_map.contains(&ty) {
            return Ok(());
        }
        if self.maps_reached() >= self.limits.max_maps {
            // Some pending maps may be revisits: count exactly.
            self.flush()?;
        }
        if self.visits >= self.limits.max_visits || self.out.maps.len() >= self.limits.max_maps {
            self.out.truncated = true;
            return Ok(());
        }
        self.visits += 1;
        let deeper = depth < self.limits.max_depth;
        match index.ty(ty) {
            Some(Ty::Map(m)) => self.visit_map(path, addr, m, depth)?,
            Some(Ty::BadMap { reason, .. }) => self.out.skipped.push((path, reason.clone())),
            Some(Ty::Struct { fields }) if deeper => {
                for (name, offset, field_ty) in fields {
                    if let Some(a) = addr.checked_add(*offset) {
                        self.visit(format!("{path}.{name}"), a, *field_ty, depth + 1)?;
                    }
                }
            }
            Some(Ty::Array {
                elem,
                count,
                stride_bytes,
            }) if deeper => {
                for i in 0..*count {
                    let Some(a) = stride_bytes
                        .checked_mul(i)
                        .and_then(|o| addr.checked_add(o))
                    else {
                        break;
                    };
                    self.visit(format!("{path}[{i}]"), a, *elem, depth + 1)?;
                    if self.out.truncated {
                        break;
                    }
                }
            }
            Some(Ty::Slice {
                elem,
                stride_bytes,
                array_offset,
                len_offset,
            }) if deeper => {
                let header = (|| {
                    let ptr = self.mem.read_u64(addr.saturating_add(*array_offset))?;
                    let len = self.mem.read_u64(addr.saturating_add(*len_offset))?;
                    Ok((ptr, len))
                })();
                let Some((ptr, len)) = self.soft(&path, header)? else {
                    return Ok(());
                };
                if ptr == 0 {
                    return Ok(());
                }
                for i in 0..len {
                    let Some(a) = stride_bytes.checked_mul(i).and_then(|o| ptr.checked_add(o))
                    else {
                        break;
                    };
                    self.visit(format!("{path}[{i}]"), a, *elem, depth + 1)?;
                    if self.out.truncated {
                        break;
                    }
                }
            }
            Some(Ty::Pointer(Some(target))) => {
                let target = *target;
                let Some(p) = self.soft(&path, self.mem.read_u64(addr))? else {
                    return Ok(());
                };
                if p == 0 {
                    return Ok(());
                }
                if !self.seen_pointers.insert((p, target)) {
                    self.out.cycles += 1;
                    return Ok(());
                }
                self.visit(path, p, target, depth)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn visit_map(
        &mut self,
        path: String,
        addr: u64,
        m: &'a MapType,
        depth: usize,
    ) -> Result<(), ReadError> {
        let value_ty = m
            .entries
            .as_ref()
            .and_then(|e| e.value_ty)
            .filter(|t| self.index.reaches_map.contains(t));
        let (Some(e), Some(value_ty)) = (&m.entries, value_ty) else {
            // Nothing to follow inside: read with the next batch.
            self.pending.push(PendingMap {
                path,
                var_addr: addr,
                map: m,
            });
            if self.pending.len() >= MAP_BATCH || self.maps_reached() >= self.limits.max_maps {
                self.flush()?;
            }
            return Ok(());
        };
        // Its entries are walked now: the maps reached before it are listed first.
        self.flush()?;
        let read = read_map(self.mem, addr, &m.layout);
        let Some(header) = self.list(path.clone(), addr, m, read)? else {
            return Ok(());
        };
        if depth >= self.limits.max_depth || header == 0 {
            return Ok(());
        }
        let left = self.limits.max_visits.saturating_sub(self.visits);
        let max_entries = usize::try_from(left).unwrap_or(usize::MAX);
        let found = map_entries(
            self.mem,
            addr,
            &m.layout,
            e,
            max_entries,
            self.limits.max_scan_bytes,
        );
        let Some((entries, complete)) = self.soft(&path, found)? else {
            return Ok(());
        };
        if !complete {
            self.out.truncated = true;
        }
        for (n, (key_addr, value_addr)) in entries.into_iter().enumerate() {
            let key = self.key_label(key_addr, e.key_ty, n)?;
            self.visit(format!("{path}[{key}]"), value_addr, value_ty, depth + 1)?;
            if self.out.truncated && self.out.maps.len() >= self.limits.max_maps {
                break;
            }
        }
        Ok(())
    }

    /// A map key as printed in a path: a quoted string, an integer, else `#n`.
    fn key_label(
        &mut self,
        addr: u64,
        key_ty: Option<TypeId>,
        n: usize,
    ) -> Result<String, ReadError> {
        let other = format!("#{n}");
        let Some(mut ty) = key_ty else {
            return Ok(other);
        };
        let mut addr = addr;
        // A key stored indirectly (large keys) is a pointer to it.
        if let Some(Ty::Pointer(Some(t))) = self.index.ty(ty) {
            match self.mem.read_u64(addr) {
                Ok(p) if p != 0 => {
                    addr = p;
                    ty = *t;
                }
                Err(e @ ReadError::Exited { .. }) => return Err(e),
                _ => return Ok(other),
            }
        }
        let label = match self.index.ty(ty) {
            Some(Ty::String) => {
                let mut h = [0u8; 16];
                match self.mem.read(addr, &mut h) {
                    Ok(()) => {
                        let ptr = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
                        let len = u64::from_le_bytes(h[8..].try_into().expect("8 bytes"));
                        if len > MAX_KEY_BYTES {
                            None
                        } else if len == 0 {
                            Some("\"\"".to_string())
                        } else {
                            let mut b = vec![0u8; len as usize];
                            match self.mem.read(ptr, &mut b) {
                                Ok(()) => Some(format!("{:?}", String::from_utf8_lossy(&b))),
                                Err(e @ ReadError::Exited { .. }) => return Err(e),
                                Err(_) => None,
                            }
                        }
                    }
                    Err(e @ ReadError::Exited { .. }) => return Err(e),
                    Err(_) => None,
                }
            }
            Some(Ty::Int { size_bytes, signed }) => {
                let size = usize::from(*size_bytes);
                let mut b = [0u8; 8];
                match self.mem.read(addr, &mut b[..size]) {
                    Ok(()) => {
                        let raw = u64::from_le_bytes(b);
                        Some(if *signed {
                            let shift = 64 - 8 * size as u32;
                            (((raw << shift) as i64) >> shift).to_string()
                        } else {
                            raw.to_string()
                        })
                    }
                    Err(e @ ReadError::Exited { .. }) => return Err(e),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        Ok(label.unwrap_or(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dwarf::Root;
    use crate::fake::FakeMemory;
    use crate::layout::{EntryLayout, MapLayout};

    /// A Swiss map header at `addr`: used, seed, dirPtr (one small group),
    /// dirLen 0, then tombstonePossible false at 40.
    fn small_map(m: &mut FakeMemory, addr: u64, used: u64, group: u64) {
        m.put_u64s(addr, &[used, 0, group, 0, 0, 0]);
    }

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

    fn map_type(name: &str, entries: Option<EntryLayout>) -> Ty {
        Ty::Map(Box::new(MapType {
            type_name: name.into(),
            key_type: String::new(),
            value_type: String::new(),
            layout: SWISS,
            group_bytes: Some(136),
            entries,
        }))
    }

    /// map[string]int (1), map[int64]map[string]int (2), int64 (3),
    /// struct node { m map[string]int; next *node } (4), *node (5),
    /// []map[string]int (6); roots main.outer, main.node, main.list.
    fn index() -> DwarfIndex {
        let mut ix = DwarfIndex::default();
        ix.types.insert(1, map_type("map[string]int", None));
        ix.types.insert(
            2,
            map_type(
                "map[int64]map[string]int",
                Some(EntryLayout {
                    group_bytes: 136,
                    ctrl_offset: 0,
                    key_offset: 8,
                    key_stride: 16,
                    value_offset: 16,
                    value_stride: 16,
                    overflow_offset: None,
                    key_ty: Some(3),
                    value_ty: Some(1),
                }),
            ),
        );
        ix.types.insert(
            3,
            Ty::Int {
                size_bytes: 8,
                signed: true,
            },
        );
        ix.types.insert(
            4,
            Ty::Struct {
                fields: vec![("m".into(), 0, 1), ("next".into(), 8, 5)],
            },
        );
        ix.types.insert(5, Ty::Pointer(Some(4)));
        ix.types.insert(
            6,
            Ty::Slice {
                elem: 1,
                stride_bytes: 8,
                array_offset: 0,
                len_offset: 8,
            },
        );
        ix.reaches_map.extend([1, 2, 4, 5, 6]);
        for (name, addr, ty) in [
            ("main.outer", 0x1000, 2),
            ("main.node", 0x1100, 5),
            ("main.list", 0x1200, 6),
        ] {
            ix.roots.push(Root {
                name: name.into(),
                addr,
                ty,
            });
        }
        ix
    }

    fn memory() -> FakeMemory {
        let mut m = FakeMemory::default();
        m.put_u64s(0x1000, &[0x2000]);
        small_map(&mut m, 0x2000, 2, 0x3000);
        // The outer map's one group: slots 0 and 2 full (high bit clear).
        let mut group = vec![0u8; 136];
        group[..8].copy_from_slice(&[0x01, 0x80, 0x05, 0x80, 0x80, 0x80, 0x80, 0x80]);
        group[8..16].copy_from_slice(&(-7i64).to_le_bytes());
        group[16..24].copy_from_slice(&0x4000u64.to_le_bytes());
        group[40..48].copy_from_slice(&42i64.to_le_bytes());
        group[48..56].copy_from_slice(&0x4100u64.to_le_bytes());
        m.put(0x3000, &group);
        small_map(&mut m, 0x4000, 3, 0x5000);
        small_map(&mut m, 0x4100, 1, 0x5100);
        // main.node -> node{m, next: itself}.
        m.put_u64s(0x1100, &[0x6000]);
        m.put_u64s(0x6000, &[0x4200, 0x6000]);
        small_map(&mut m, 0x4200, 4, 0x5200);
        // main.list: two elements, the second a nil map.
        m.put_u64s(0x1200, &[0x7000, 2, 2]);
        m.put_u64s(0x7000, &[0x4300, 0]);
        small_map(&mut m, 0x4300, 5, 0x5300);
        m
    }

    #[test]
    fn maps_behind_pointers_in_slices_and_in_map_values_are_found() {
        let ix = index();
        let w = walk(&ix, &memory(), 0, &Limits::default()).unwrap();
        let got: Vec<(&str, u64)> = w
            .maps
            .iter()
            .map(|m| (m.path.as_str(), m.stats.length))
            .collect();
        assert_eq!(
            got,
            [
                ("main.outer", 2),
                ("main.outer[-7]", 3),
                ("main.outer[42]", 1),
                ("main.node.m", 4),
                ("main.list[0]", 5),
                ("main.list[1]", 0),
            ]
        );
        assert_eq!(w.cycles, 1, "node.next points back to node");
        assert!(!w.truncated);
        assert!(w.skipped.is_empty(), "{:?}", w.skipped);
        assert_eq!(
            w.maps[0].stats.tombstones,
            Some(0),
            "tombstonePossible false"
        );
    }

    #[test]
    fn limits_stop_the_walk_and_say_so() {
        let ix = index();
        let limits = Limits {
            max_maps: 2,
            ..Limits::default()
        };
        let w = walk(&ix, &memory(), 0, &limits).unwrap();
        assert_eq!(w.maps.len(), 2);
        assert!(w.truncated);
        let shallow = Limits {
            max_depth: 0,
            ..Limits::default()
        };
        let w = walk(&ix, &memory(), 0, &shallow).unwrap();
        let paths: Vec<&str> = w.maps.iter().map(|m| m.path.as_str()).collect();
        // Depth 0: the variables themselves only (a pointer is no step).
        assert_eq!(paths, ["main.outer"]);
    }

    #[test]
    fn an_unreadable_pointer_is_skipped_not_fatal() {
        let ix = index();
        let mut mem = memory();
        mem.put_u64s(0x1100, &[0xdead_0000]);
        let w = walk(&ix, &mem, 0, &Limits::default()).unwrap();
        assert!(w.maps.iter().all(|m| m.path != "main.node.m"));
        // The struct's two fields, each named with the address that failed.
        assert_eq!(w.skipped.len(), 2, "{:?}", w.skipped);
        assert_eq!(w.skipped[0].0, "main.node.m");
        assert!(w.skipped[0].1.contains("0xdead0000"), "{:?}", w.skipped);
        assert!(w.maps.iter().any(|m| m.path == "main.list[0]"));
    }
}
