//! The DWARF index: a Go binary's package-level map variables and the layout
//! of each one's runtime header, all read from the binary's own DWARF.

use crate::layout::MapLayout;
use crate::GomemError;
use gimli::{AttributeValue, EndianSlice, LittleEndian, SectionId};
use object::{Object, ObjectSection, ObjectSegment};
use std::borrow::Cow;
use std::collections::HashMap;

/// A package-level variable of map type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapVariable {
    /// Its Go name (`main.bloatedMap`).
    pub name: String,
    /// The address of the variable (it holds a pointer to the map header).
    pub addr: u64,
    /// The Go map type (`map[int64][64]uint8`).
    pub type_name: String,
    /// The key type (`int64`).
    pub key_type: String,
    /// The value type (`[64]uint8`).
    pub value_type: String,
    /// Where the header's fields are.
    pub layout: MapLayout,
    /// Bytes of one bucket (classic, `map.bucket[K]V`) or group (Swiss,
    /// `map.group[K]V`) of 8 slots, when the DWARF has that type.
    pub group_bytes: Option<u64>,
}

/// One type entry, as much of it as the index needs.
#[derive(Debug, Default, Clone)]
struct TypeDie {
    tag: u16,
    name: String,
    type_ref: Option<u64>,
    byte_size: Option<u64>,
    /// Fields: name, byte offset, type.
    members: Vec<(String, u64, Option<u64>)>,
}

/// How deep the index follows fields of package-level structs (`pkg.v.a.b.c.d`).
pub const MAX_FIELD_DEPTH: usize = 4;

/// The most map locations the index lists for one binary.
pub const MAX_INDEXED_MAPS: usize = 100_000;

/// Package-level map variables of one Go binary.
#[derive(Debug, Default)]
pub struct DwarfIndex {
    /// The map variables, in DWARF order.
    pub maps: Vec<MapVariable>,
    /// Map variables whose type this reader could not lay out, with why.
    pub skipped: Vec<(String, String)>,
    /// Position-independent (`ET_DYN`, `-buildmode=pie`): the addresses above
    /// are link-time ones and need [`DwarfIndex::load_bias`] added.
    pub pie: bool,
    /// Loadable segments: file offset, link-time address, file size.
    segments: Vec<(u64, u64, u64)>,
}

impl DwarfIndex {
    /// Indexes the ELF binary `data` (named `path` in errors). Compressed debug
    /// sections (`SHF_COMPRESSED`, `.zdebug_*`) are inflated.
    pub fn from_elf(path: &str, data: &[u8]) -> Result<DwarfIndex, GomemError> {
        let elf = object::File::parse(data).map_err(|e| GomemError::Elf {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if elf.section_by_name(".debug_info").is_none() {
            return Err(GomemError::NoDwarf {
                path: path.to_string(),
            });
        }
        let bad = |reason: String| GomemError::Dwarf {
            path: path.to_string(),
            reason,
        };
        let mut sections: HashMap<SectionId, Cow<[u8]>> = HashMap::new();
        for id in [
            SectionId::DebugAbbrev,
            SectionId::DebugInfo,
            SectionId::DebugStr,
            SectionId::DebugLineStr,
            SectionId::DebugStrOffsets,
            SectionId::DebugAddr,
            SectionId::DebugLine,
            SectionId::DebugRanges,
            SectionId::DebugRngLists,
        ] {
            if let Some(s) = elf.section_by_name(id.name()) {
                let bytes = s
                    .uncompressed_data()
                    .map_err(|e| bad(format!("{}: {e}", id.name())))?;
                sections.insert(id, bytes);
            }
        }
        let mut index = index_sections(&sections).map_err(bad)?;
        index.pie = elf.kind() == object::ObjectKind::Dynamic;
        index.segments = elf
            .segments()
            .map(|seg| {
                let (offset, size) = seg.file_range();
                (offset, seg.address(), size)
            })
            .collect();
        Ok(index)
    }

    /// What a PIE binary's link-time addresses are shifted by in a process
    /// where the file offset `mapping_offset` of the binary is mapped at
    /// `mapping_start` (a line of `/proc/PID/maps`); `None` when no loadable
    /// segment holds that offset.
    pub fn load_bias(&self, mapping_start: u64, mapping_offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(offset, _, size)| {
                mapping_offset >= *offset && mapping_offset - offset < (*size).max(1)
            })
            .map(|(offset, vaddr, _)| {
                mapping_start.wrapping_sub(vaddr.wrapping_add(mapping_offset - offset))
            })
    }
}

/// Builds the index from the (inflated) debug sections.
fn index_sections(sections: &HashMap<SectionId, Cow<[u8]>>) -> Result<DwarfIndex, String> {
    let dwarf = gimli::Dwarf::load(|id| {
        Ok::<_, String>(EndianSlice::new(
            sections.get(&id).map(|c| c.as_ref()).unwrap_or(&[]),
            LittleEndian,
        ))
    })?;
    let mut types: HashMap<u64, TypeDie> = HashMap::new();
    let mut by_name: HashMap<String, u64> = HashMap::new();
    let mut vars: Vec<(String, u64, u64)> = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| e.to_string())? {
        let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
        let mut cursor = unit.entries();
        let mut current_struct: Option<u64> = None;
        while let Some(entry) = cursor.next_dfs().map_err(|e| e.to_string())? {
            let Some(offset) = entry.offset().to_debug_info_offset(&unit.header) else {
                continue;
            };
            let offset = offset.0 as u64;
            let name = match entry.attr_value(gimli::DW_AT_name) {
                Some(v) => dwarf
                    .attr_string(&unit, v)
                    .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
                    .unwrap_or_default(),
                None => String::new(),
            };
            let type_ref = match entry.attr_value(gimli::DW_AT_type) {
                Some(AttributeValue::UnitRef(r)) => {
                    r.to_debug_info_offset(&unit.header).map(|o| o.0 as u64)
                }
                Some(AttributeValue::DebugInfoRef(r)) => Some(r.0 as u64),
                _ => None,
            };
            let tag = entry.tag();
            if tag == gimli::DW_TAG_member {
                let member_offset = entry
                    .attr(gimli::DW_AT_data_member_location)
                    .and_then(|a| a.udata_value());
                if let (Some(s), Some(off)) = (current_struct, member_offset) {
                    if let Some(t) = types.get_mut(&s) {
                        t.members.push((name, off, type_ref));
                    }
                }
                continue;
            }
            if entry.depth() <= 1 {
                current_struct = None;
            }
            if tag == gimli::DW_TAG_variable {
                if let (Some(addr), Some(t)) = (variable_addr(entry), type_ref) {
                    vars.push((name, addr, t));
                }
                continue;
            }
            if matches!(
                tag,
                gimli::DW_TAG_typedef | gimli::DW_TAG_pointer_type | gimli::DW_TAG_structure_type
            ) {
                if tag == gimli::DW_TAG_structure_type {
                    current_struct = Some(offset);
                    by_name.entry(name.clone()).or_insert(offset);
                }
                types.insert(
                    offset,
                    TypeDie {
                        tag: tag.0,
                        name,
                        type_ref,
                        byte_size: entry
                            .attr(gimli::DW_AT_byte_size)
                            .and_then(|a| a.udata_value()),
                        members: Vec::new(),
                    },
                );
            }
        }
    }
    let mut index = DwarfIndex::default();
    for (name, addr, type_ref) in vars {
        collect(&mut index, &types, &by_name, name, addr, type_ref, 0);
    }
    Ok(index)
}

/// Adds the map at `addr` of type `type_ref` named `path`, or the maps in its
/// fields when it is a struct (to [`MAX_FIELD_DEPTH`]).
fn collect(
    index: &mut DwarfIndex,
    types: &HashMap<u64, TypeDie>,
    by_name: &HashMap<String, u64>,
    path: String,
    addr: u64,
    type_ref: u64,
    depth: usize,
) {
    if index.maps.len() >= MAX_INDEXED_MAPS {
        return;
    }
    let Some(t) = types.get(&type_ref) else {
        return;
    };
    if t.tag == gimli::DW_TAG_typedef.0 && t.name.starts_with("map[") {
        match layout_of(t, types, by_name) {
            Ok(layout) => {
                let (key_type, value_type) = split_map_type(&t.name);
                let kind = match layout {
                    MapLayout::Classic { .. } => "bucket",
                    MapLayout::Swiss { .. } => "group",
                };
                let kv = &t.name["map".len()..];
                let group_bytes = [format!("noalg.map.{kind}{kv}"), format!("map.{kind}{kv}")]
                    .iter()
                    .filter_map(|n| by_name.get(n).and_then(|o| types.get(o)))
                    .find_map(|g| g.byte_size);
                index.maps.push(MapVariable {
                    name: path,
                    addr,
                    type_name: t.name.clone(),
                    key_type,
                    value_type,
                    layout,
                    group_bytes,
                });
            }
            Err(why) => index.skipped.push((path, why.to_string())),
        }
        return;
    }
    if t.tag != gimli::DW_TAG_structure_type.0 || depth >= MAX_FIELD_DEPTH {
        return;
    }
    for (field, offset, field_type) in &t.members {
        if let Some(field_type) = field_type {
            let Some(field_addr) = addr.checked_add(*offset) else {
                continue;
            };
            let field_path = format!("{path}.{field}");
            collect(
                index,
                types,
                by_name,
                field_path,
                field_addr,
                *field_type,
                depth + 1,
            );
        }
    }
}

/// The address of a variable located by a lone `DW_OP_addr`.
fn variable_addr(
    entry: &gimli::DebuggingInformationEntry<EndianSlice<LittleEndian>>,
) -> Option<u64> {
    let expr = entry.attr_value(gimli::DW_AT_location)?;
    let AttributeValue::Exprloc(expr) = expr else {
        return None;
    };
    let bytes = expr.0.slice();
    if bytes.len() == 9 && bytes[0] == gimli::DW_OP_addr.0 {
        Some(u64::from_le_bytes(bytes[1..9].try_into().ok()?))
    } else {
        None
    }
}

/// The header layout of a map typedef: typedef `map[K]V` -> `*hash<K,V>` or
/// `*map<K,V>` -> the struct whose fields name the layout.
fn layout_of(
    map_type: &TypeDie,
    types: &HashMap<u64, TypeDie>,
    by_name: &HashMap<String, u64>,
) -> Result<MapLayout, GomemError> {
    let missing = |struct_name: &str, field: &str| GomemError::Layout {
        type_name: map_type.name.clone(),
        struct_name: struct_name.to_string(),
        field: field.to_string(),
    };
    let pointer = map_type
        .type_ref
        .and_then(|r| types.get(&r))
        .filter(|t| t.tag == gimli::DW_TAG_pointer_type.0)
        .ok_or_else(|| missing(&map_type.name, "(pointer to the header)"))?;
    let header = pointer
        .type_ref
        .and_then(|r| types.get(&r))
        .filter(|t| t.tag == gimli::DW_TAG_structure_type.0)
        .ok_or_else(|| missing(&pointer.name, "(header struct)"))?;
    let field = |t: &TypeDie, f: &str| {
        t.members
            .iter()
            .find(|(n, _, _)| n == f)
            .map(|(_, o, _)| *o)
            .ok_or_else(|| missing(&t.name, f))
    };
    if let Some(rest) = header.name.strip_prefix("map<") {
        let table_name = format!("table<{rest}");
        let table = by_name
            .get(&table_name)
            .and_then(|o| types.get(o))
            .ok_or_else(|| missing(&table_name, "(table struct)"))?;
        Ok(MapLayout::Swiss {
            used_offset: field(header, "used")?,
            dir_ptr_offset: field(header, "dirPtr")?,
            dir_len_offset: field(header, "dirLen")?,
            table_capacity_offset: field(table, "capacity")?,
        })
    } else {
        Ok(MapLayout::Classic {
            count_offset: field(header, "count")?,
            b_offset: field(header, "B")?,
            noverflow_offset: field(header, "noverflow")?,
        })
    }
}

/// Splits `map[K]V` into `K` and `V` (brackets in `K` balanced).
pub(crate) fn split_map_type(name: &str) -> (String, String) {
    let Some(rest) = name.strip_prefix("map[") else {
        return (String::new(), String::new());
    };
    let mut depth = 1usize;
    for (i, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return (rest[..i].to_string(), rest[i + 1..].to_string());
                }
            }
            _ => {}
        }
    }
    (rest.to_string(), String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nested_map_types() {
        assert_eq!(
            split_map_type("map[int64][64]uint8"),
            ("int64".into(), "[64]uint8".into())
        );
        assert_eq!(
            split_map_type("map[[2]string]map[string]int"),
            ("[2]string".into(), "map[string]int".into())
        );
    }

    #[test]
    fn not_elf_is_one_error_naming_the_file() {
        let e = DwarfIndex::from_elf("/x/y", b"not an elf").unwrap_err();
        assert!(e.to_string().starts_with("/x/y: not a readable ELF"), "{e}");
    }
}
