//! Finding every map reachable from a Go program's package-level variables in
//! its live memory: through struct fields, array and slice elements, pointers
//! (cycles detected) and the values of other maps, to a bounded depth and
//! count.

use crate::dwarf::{DwarfIndex, MapType, Ty, TypeId};
use crate::layout::{count_tombstones, map_entries, read_map, MapStats};
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
    };
    for (name, reason) in &index.skipped {
        w.out.skipped.push((name.clone(), reason.clone()));
    }
    for root in &index.roots {
        w.visit(root.name.clone(), root.addr.wrapping_add(bias), root.ty, 0)?;
    }
    Ok(w.out)
}

struct Walker<'a, 'm> {
    index: &'a DwarfIndex,
    mem: &'m dyn Memory,
    limits: &'m Limits,
    out: Walk<'a>,
    visits: u64,
    seen_headers: HashSet<u64>,
    seen_pointers: HashSet<(u64, TypeId)>,
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
                self.out.skipped.push((path.to_string(), e.to_string()));
                Ok(None)
            }
        }
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
                    let ptr = self
                        .mem
                        .read_u64(addr.checked_add(*array_offset).unwrap_or(u64::MAX))?;
                    let len = self
                        .mem
                        .read_u64(addr.checked_add(*len_offset).unwrap_or(u64::MAX))?;
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
        let Some(header) = self.soft(&path, self.mem.read_u64(addr))? else {
            return Ok(());
        };
        if header != 0 && !self.seen_headers.insert(header) {
            self.out.cycles += 1;
            return Ok(());
        }
        let Some(mut stats) = self.soft(&path, read_map(self.mem, addr, &m.layout))? else {
            return Ok(());
        };
        if let Some(e) = &m.entries {
            let t = count_tombstones(self.mem, addr, &m.layout, e, self.limits.max_scan_bytes);
            stats.tombstones = self.soft(&path, t)?.flatten();
        }
        self.out.maps.push(FoundMap {
            path: path.clone(),
            var_addr: addr,
            map: m,
            stats,
        });
        let Some(e) = &m.entries else {
            return Ok(());
        };
        let Some(value_ty) = e.value_ty.filter(|t| self.index.reaches_map.contains(t)) else {
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
