//! The DWARF index: a Go binary's package-level variables that can reach a
//! map, the types on the way (structs, arrays, slices, pointers, maps) and the
//! layout of each map type's runtime header and buckets or groups, all read
//! from the binary's own DWARF.

use crate::hash::FastMap;
use crate::layout::{EntryLayout, MapLayout};
use crate::GomemError;
use gimli::{AttributeValue, EndianSlice, LittleEndian, SectionId};
use object::{Object, ObjectSection, ObjectSegment};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// A type in the index: the offset of its DWARF entry.
pub type TypeId = u64;

/// A Go map type and where its runtime structures keep their fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapType {
    /// The Go map type (`map[int64][64]uint8`).
    pub type_name: String,
    /// The key type (`int64`).
    pub key_type: String,
    /// The value type (`[64]uint8`).
    pub value_type: String,
    /// Where the header's fields are.
    pub layout: MapLayout,
    /// Bytes of one bucket (classic, `bucket<K,V>`) or group (Swiss,
    /// `map.group[K]V`) of 8 slots, when the DWARF has that type.
    pub group_bytes: Option<u64>,
    /// Where keys and values sit in a bucket or group, with their types, when
    /// the DWARF has the bucket or group type.
    pub entries: Option<EntryLayout>,
}

/// A map at a known place: a package-level variable or a field or element of
/// one (no memory read needed to find it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapVariable {
    /// Its path (`main.bloatedMap`, `main.holder.inner.keys`, `main.arr[2]`).
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
    /// Bytes of one bucket or group of 8 slots, when the DWARF has that type.
    pub group_bytes: Option<u64>,
}

/// What the index knows of a type, as far as finding maps needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// A map (`map[K]V` typedef: a pointer to the runtime header).
    Map(Box<MapType>),
    /// A map type this reader could not lay out, with why.
    BadMap {
        /// The Go map type.
        type_name: String,
        /// Why.
        reason: String,
    },
    /// A struct: fields with their byte offsets.
    Struct {
        /// Fields: name, offset, type.
        fields: Vec<(String, u64, TypeId)>,
    },
    /// A fixed-size array `[count]elem`.
    Array {
        /// Element type.
        elem: TypeId,
        /// Elements.
        count: u64,
        /// Bytes from one element to the next.
        stride_bytes: u64,
    },
    /// A slice `[]elem`: a header of pointer, length, capacity.
    Slice {
        /// Element type.
        elem: TypeId,
        /// Bytes from one element to the next.
        stride_bytes: u64,
        /// Offset of the `array` pointer in the header.
        array_offset: u64,
        /// Offset of `len` in the header.
        len_offset: u64,
    },
    /// A pointer (`None`: `unsafe.Pointer`, never followed).
    Pointer(Option<TypeId>),
    /// A Go string: a pointer to bytes and a length.
    String,
    /// An integer of `size_bytes` bytes.
    Int {
        /// 1, 2, 4 or 8.
        size_bytes: u8,
        /// Signed or not.
        signed: bool,
    },
    /// Anything else (floats, funcs, interfaces, channels...): not followed.
    Other,
}

/// A package-level variable whose type can reach a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Its Go name (`main.bloatedMap`).
    pub name: String,
    /// Its link-time address.
    pub addr: u64,
    /// Its type.
    pub ty: TypeId,
}

/// One type entry, as much of it as the index needs.
#[derive(Debug, Default, Clone)]
struct TypeDie {
    tag: u16,
    name: String,
    type_ref: Option<u64>,
    byte_size: Option<u64>,
    /// `DW_AT_encoding` of a base type.
    encoding: Option<u8>,
    /// `DW_AT_count` (or upper bound + 1) of an array's subrange.
    count: Option<u64>,
    /// Fields: name, byte offset, type.
    members: Vec<(String, u64, Option<u64>)>,
}

/// How deep [`DwarfIndex::static_maps`] follows fields and elements of
/// package-level variables (`pkg.v.a.b[2].c`).
pub const MAX_FIELD_DEPTH: usize = 8;

/// The most map locations [`DwarfIndex::static_maps`] lists for one binary.
pub const MAX_INDEXED_MAPS: usize = 100_000;

/// Typedef chains longer than this are malformed.
const MAX_TYPEDEF_HOPS: usize = 16;

/// Package-level variables of one Go binary that can reach a map, and their types.
#[derive(Debug, Default)]
pub struct DwarfIndex {
    /// Variables whose type can reach a map, in DWARF order.
    pub roots: Vec<Root>,
    /// The types: maps, and everything on the way to one.
    pub types: HashMap<TypeId, Ty>,
    /// Types from which a map can be reached (a map, or a struct, array, slice
    /// or pointer leading to one).
    pub reaches_map: HashSet<TypeId>,
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
        DwarfIndex::from_split_elf(path, data, path, data)
    }

    /// [`DwarfIndex::from_elf`] on an open file, reading only what it needs
    /// (the ELF headers, the symbol table and the debug sections kept by the
    /// index: about a fifth of a Go binary) instead of all of it.
    pub fn from_elf_file(path: &str, file: &std::fs::File) -> Result<DwarfIndex, GomemError> {
        let cache = object::ReadCache::new(file);
        DwarfIndex::from_split_elf(path, &cache, path, &cache)
    }

    /// Indexes a binary whose DWARF is in a separate debug file (`objcopy
    /// --only-keep-debug`): `debug` gives the DWARF, `binary` the segments and
    /// whether it is position-independent.
    pub fn from_split_elf<'b, 'd, B: object::ReadRef<'b>, D: object::ReadRef<'d>>(
        binary_path: &str,
        binary: B,
        debug_path: &str,
        debug: D,
    ) -> Result<DwarfIndex, GomemError> {
        let elf_error = |path: &str, e: object::Error| GomemError::Elf {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let elf = object::File::parse(binary).map_err(|e| elf_error(binary_path, e))?;
        let dbg = object::File::parse(debug).map_err(|e| elf_error(debug_path, e))?;
        if dbg.section_by_name(".debug_info").is_none() {
            return Err(GomemError::NoDwarf {
                path: debug_path.to_string(),
            });
        }
        let bad = |reason: String| GomemError::Dwarf {
            path: debug_path.to_string(),
            reason,
        };
        let mut sections: HashMap<SectionId, Cow<[u8]>> = HashMap::new();
        for id in SECTIONS {
            if let Some(s) = dbg.section_by_name(id.name()) {
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

    /// The type `id`, typedefs already resolved by the index.
    pub fn ty(&self, id: TypeId) -> Option<&Ty> {
        self.types.get(&id)
    }

    /// The maps found without reading memory: package-level map variables and
    /// maps in fields and array elements of package-level variables (to
    /// [`MAX_FIELD_DEPTH`], at most [`MAX_INDEXED_MAPS`]).
    pub fn static_maps(&self) -> Vec<MapVariable> {
        let mut out = Vec::new();
        for root in &self.roots {
            self.static_walk(&mut out, root.name.clone(), root.addr, root.ty, 0);
        }
        out
    }

    fn static_walk(
        &self,
        out: &mut Vec<MapVariable>,
        path: String,
        addr: u64,
        ty: TypeId,
        depth: usize,
    ) {
        if out.len() >= MAX_INDEXED_MAPS || !self.reaches_map.contains(&ty) {
            return;
        }
        match self.types.get(&ty) {
            Some(Ty::Map(m)) => out.push(MapVariable {
                name: path,
                addr,
                type_name: m.type_name.clone(),
                key_type: m.key_type.clone(),
                value_type: m.value_type.clone(),
                layout: m.layout,
                group_bytes: m.group_bytes,
            }),
            Some(Ty::Struct { fields }) if depth < MAX_FIELD_DEPTH => {
                for (name, offset, field_ty) in fields {
                    if let Some(a) = addr.checked_add(*offset) {
                        self.static_walk(out, format!("{path}.{name}"), a, *field_ty, depth + 1);
                    }
                }
            }
            Some(Ty::Array {
                elem,
                count,
                stride_bytes,
            }) if depth < MAX_FIELD_DEPTH => {
                for i in 0..*count {
                    let Some(a) = stride_bytes
                        .checked_mul(i)
                        .and_then(|o| addr.checked_add(o))
                    else {
                        break;
                    };
                    self.static_walk(out, format!("{path}[{i}]"), a, *elem, depth + 1);
                    if out.len() >= MAX_INDEXED_MAPS {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The debug sections the index reads (no line tables, ranges or locations:
/// the variables are located by `DW_OP_addr`, and the names are inline or in
/// the string sections).
const SECTIONS: [SectionId; 5] = [
    SectionId::DebugAbbrev,
    SectionId::DebugInfo,
    SectionId::DebugStr,
    SectionId::DebugLineStr,
    SectionId::DebugStrOffsets,
];

/// The attributes of one entry the index keeps.
#[derive(Default)]
struct EntryAttrs<'d> {
    name: Option<AttributeValue<EndianSlice<'d, LittleEndian>>>,
    type_ref: Option<u64>,
    byte_size: Option<u64>,
    encoding: Option<u8>,
    count: Option<u64>,
    upper_bound: Option<u64>,
    member_offset: Option<u64>,
    location: Option<AttributeValue<EndianSlice<'d, LittleEndian>>>,
    str_offsets_base: Option<gimli::DebugStrOffsetsBase<usize>>,
}

/// Builds the index from the (inflated) debug sections. Reads every entry's
/// abbreviation but the attributes only of the entries it keeps (types,
/// members, subranges, package-level variables).
fn index_sections(sections: &HashMap<SectionId, Cow<[u8]>>) -> Result<DwarfIndex, String> {
    let dwarf = gimli::Dwarf::load(|id| {
        Ok::<_, String>(EndianSlice::new(
            sections.get(&id).map(|c| c.as_ref()).unwrap_or(&[]),
            LittleEndian,
        ))
    })?;
    let err = |e: gimli::Error| e.to_string();
    // Type entries in DWARF order (offsets increase), and where each is.
    let mut dies: Vec<(u64, TypeDie)> = Vec::new();
    let mut vars: Vec<(String, u64, u64)> = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(err)? {
        let abbrevs = dwarf.abbreviations(&header).map_err(err)?;
        let mut raw = header.entries_raw(&abbrevs, None).map_err(err)?;
        let mut str_offsets_base = gimli::DebugStrOffsetsBase(0);
        // The struct or array whose members and subranges come next (an index
        // into `dies`).
        let mut parent: Option<usize> = None;
        while !raw.is_empty() {
            let depth = raw.next_depth();
            let unit_offset = raw.next_offset();
            let Some(abbrev) = raw.read_abbreviation().map_err(err)? else {
                continue;
            };
            let tag = abbrev.tag();
            let wanted = match tag {
                gimli::DW_TAG_subrange_type
                | gimli::DW_TAG_member
                | gimli::DW_TAG_typedef
                | gimli::DW_TAG_pointer_type
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_array_type
                | gimli::DW_TAG_base_type => true,
                // Package-level variables are the unit's children.
                gimli::DW_TAG_variable => depth == 1,
                gimli::DW_TAG_compile_unit => depth == 0,
                _ => false,
            };
            if !wanted {
                raw.skip_attributes(abbrev.attributes()).map_err(err)?;
                if depth <= 1 {
                    parent = None;
                }
                continue;
            }
            let mut a = EntryAttrs::default();
            for spec in abbrev.attributes() {
                let attr = raw.read_attribute(*spec).map_err(err)?;
                match attr.name() {
                    gimli::DW_AT_name => a.name = Some(attr.value()),
                    gimli::DW_AT_type => {
                        a.type_ref = match attr.value() {
                            AttributeValue::UnitRef(r) => {
                                r.to_debug_info_offset(&header).map(|o| o.0 as u64)
                            }
                            AttributeValue::DebugInfoRef(r) => Some(r.0 as u64),
                            _ => None,
                        }
                    }
                    gimli::DW_AT_byte_size => a.byte_size = attr.udata_value(),
                    gimli::DW_AT_encoding => {
                        if let AttributeValue::Encoding(e) = attr.value() {
                            a.encoding = Some(e.0);
                        }
                    }
                    gimli::DW_AT_count => a.count = attr.udata_value(),
                    gimli::DW_AT_upper_bound => a.upper_bound = attr.udata_value(),
                    gimli::DW_AT_data_member_location => a.member_offset = attr.udata_value(),
                    gimli::DW_AT_location => a.location = Some(attr.value()),
                    gimli::DW_AT_str_offsets_base => {
                        if let AttributeValue::DebugStrOffsetsBase(b) = attr.value() {
                            a.str_offsets_base = Some(b);
                        }
                    }
                    _ => {}
                }
            }
            if tag == gimli::DW_TAG_compile_unit {
                if let Some(b) = a.str_offsets_base {
                    str_offsets_base = b;
                }
                parent = None;
                continue;
            }
            if tag == gimli::DW_TAG_subrange_type {
                let count = a
                    .count
                    .or_else(|| a.upper_bound.and_then(|u| u.checked_add(1)));
                if let Some((_, t)) = parent.map(|p| &mut dies[p]) {
                    if t.tag == gimli::DW_TAG_array_type.0 {
                        t.count = count;
                    }
                }
                continue;
            }
            let name = a
                .name
                .and_then(|v| attr_bytes(&dwarf, &header, str_offsets_base, v))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if tag == gimli::DW_TAG_member {
                if let (Some((_, t)), Some(off)) = (parent.map(|p| &mut dies[p]), a.member_offset) {
                    if t.tag == gimli::DW_TAG_structure_type.0 {
                        t.members.push((name, off, a.type_ref));
                    }
                }
                continue;
            }
            if depth <= 1 {
                parent = None;
            }
            if tag == gimli::DW_TAG_variable {
                if let (Some(addr), Some(t)) = (a.location.and_then(variable_addr), a.type_ref) {
                    vars.push((name, addr, t));
                }
                continue;
            }
            let Some(offset) = unit_offset.to_debug_info_offset(&header) else {
                continue;
            };
            if matches!(tag, gimli::DW_TAG_structure_type | gimli::DW_TAG_array_type) {
                parent = Some(dies.len());
            }
            dies.push((
                offset.0 as u64,
                TypeDie {
                    tag: tag.0,
                    name,
                    type_ref: a.type_ref,
                    byte_size: a.byte_size,
                    encoding: a.encoding,
                    count: None,
                    members: Vec::new(),
                },
            ));
        }
    }
    let mut by_name: FastMap<String, u64> = FastMap::default();
    for (offset, t) in &dies {
        if t.tag == gimli::DW_TAG_structure_type.0 && !by_name.contains_key(&t.name) {
            by_name.insert(t.name.clone(), *offset);
        }
    }
    let types: FastMap<u64, TypeDie> = dies.into_iter().collect();
    Ok(build_index(&types, &by_name, vars))
}

/// The bytes of a string attribute (inline, or in `.debug_str`,
/// `.debug_line_str` or through `.debug_str_offsets`).
fn attr_bytes<'d>(
    dwarf: &gimli::Dwarf<EndianSlice<'d, LittleEndian>>,
    header: &gimli::UnitHeader<EndianSlice<'d, LittleEndian>>,
    str_offsets_base: gimli::DebugStrOffsetsBase<usize>,
    value: AttributeValue<EndianSlice<'d, LittleEndian>>,
) -> Option<&'d [u8]> {
    let s = match value {
        AttributeValue::String(s) => s,
        AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o).ok()?,
        AttributeValue::DebugLineStrRef(o) => dwarf.debug_line_str.get_str(o).ok()?,
        AttributeValue::DebugStrOffsetsIndex(i) => {
            let o = dwarf
                .debug_str_offsets
                .get_str_offset(header.format(), str_offsets_base, i)
                .ok()?;
            dwarf.debug_str.get_str(o).ok()?
        }
        _ => return None,
    };
    Some(s.slice())
}

/// Resolves the raw entries into [`Ty`]s, finds which reach a map and keeps
/// the variables whose type does. Only the types reachable from a variable
/// are resolved.
fn build_index(
    raw: &FastMap<u64, TypeDie>,
    by_name: &FastMap<String, u64>,
    vars: Vec<(String, u64, u64)>,
) -> DwarfIndex {
    let mut index = DwarfIndex::default();
    let resolver = Resolver { raw, by_name };
    // Typedefs that are not maps stand for what they name: every reference to
    // one goes to the resolved type.
    let mut stack: Vec<TypeId> = vars
        .iter()
        .filter_map(|(_, _, t)| resolver.resolve(*t))
        .collect();
    while let Some(id) = stack.pop() {
        if index.types.contains_key(&id) {
            continue;
        }
        let remap = |t: TypeId| resolver.resolve(t);
        let fixed = match resolver.ty(id) {
            Ty::Struct { fields } => Ty::Struct {
                fields: fields
                    .into_iter()
                    .filter_map(|(n, o, t)| remap(t).map(|t| (n, o, t)))
                    .collect(),
            },
            Ty::Array {
                elem,
                count,
                stride_bytes,
            } => match remap(elem) {
                Some(elem) => Ty::Array {
                    elem,
                    count,
                    stride_bytes,
                },
                None => Ty::Other,
            },
            Ty::Slice {
                elem,
                stride_bytes,
                array_offset,
                len_offset,
            } => match remap(elem) {
                Some(elem) => Ty::Slice {
                    elem,
                    stride_bytes,
                    array_offset,
                    len_offset,
                },
                None => Ty::Other,
            },
            Ty::Pointer(Some(t)) => Ty::Pointer(remap(t)),
            Ty::Map(mut m) => {
                if let Some(e) = m.entries.as_mut() {
                    e.key_ty = e.key_ty.and_then(remap);
                    e.value_ty = e.value_ty.and_then(remap);
                }
                Ty::Map(m)
            }
            other => other,
        };
        match &fixed {
            Ty::Struct { fields } => stack.extend(fields.iter().map(|(_, _, t)| *t)),
            Ty::Array { elem, .. } | Ty::Slice { elem, .. } => stack.push(*elem),
            Ty::Pointer(Some(t)) => stack.push(*t),
            Ty::Map(m) => {
                if let Some(e) = &m.entries {
                    stack.extend(e.key_ty.into_iter().chain(e.value_ty));
                }
            }
            _ => {}
        }
        index.types.insert(id, fixed);
    }
    // Which types reach a map: a fixed point over the type graph.
    loop {
        let mut changed = false;
        for (id, ty) in &index.types {
            if index.reaches_map.contains(id) {
                continue;
            }
            let reaches = match ty {
                Ty::Map(_) | Ty::BadMap { .. } => true,
                Ty::Struct { fields } => {
                    fields.iter().any(|(_, _, t)| index.reaches_map.contains(t))
                }
                Ty::Array { elem, .. } | Ty::Slice { elem, .. } => index.reaches_map.contains(elem),
                Ty::Pointer(Some(t)) => index.reaches_map.contains(t),
                _ => false,
            };
            if reaches {
                changed = true;
                index.reaches_map.insert(*id);
            }
        }
        if !changed {
            break;
        }
    }
    for (name, addr, type_ref) in vars {
        let Some(ty) = resolver.resolve(type_ref) else {
            continue;
        };
        if !index.reaches_map.contains(&ty) {
            continue;
        }
        if let Some(Ty::BadMap { reason, .. }) = index.types.get(&ty) {
            index.skipped.push((name, reason.clone()));
            continue;
        }
        index.roots.push(Root { name, addr, ty });
    }
    index
}

/// Turns raw DWARF entries into [`Ty`]s.
struct Resolver<'a> {
    raw: &'a FastMap<u64, TypeDie>,
    by_name: &'a FastMap<String, u64>,
}

impl Resolver<'_> {
    /// Follows typedefs (other than map typedefs) to the entry they name.
    fn resolve(&self, mut id: u64) -> Option<u64> {
        for _ in 0..MAX_TYPEDEF_HOPS {
            let t = self.raw.get(&id)?;
            if t.tag != gimli::DW_TAG_typedef.0 || t.name.starts_with("map[") {
                return Some(id);
            }
            id = t.type_ref?;
        }
        None
    }

    /// Bytes of a value of type `id`.
    fn size_of(&self, id: u64) -> Option<u64> {
        let t = self.raw.get(&self.resolve(id)?)?;
        if t.tag == gimli::DW_TAG_pointer_type.0 || t.tag == gimli::DW_TAG_typedef.0 {
            return Some(8);
        }
        t.byte_size
    }

    fn ty(&self, id: u64) -> Ty {
        let Some(t) = self.raw.get(&id) else {
            return Ty::Other;
        };
        match gimli::DwTag(t.tag) {
            gimli::DW_TAG_typedef => match layout_of(t, self.raw, self.by_name) {
                Ok(layout) => {
                    let (key_type, value_type) = split_map_type(&t.name);
                    let kv = &t.name["map".len()..];
                    let header = header_name(t, self.raw).unwrap_or_default();
                    let rest = header.split_once('<').map(|(_, r)| r).unwrap_or("");
                    let group = match layout {
                        MapLayout::Classic { .. } => [
                            format!("bucket<{rest}"),
                            format!("noalg.map.bucket{kv}"),
                            format!("map.bucket{kv}"),
                        ],
                        MapLayout::Swiss { .. } => [
                            format!("noalg.map.group{kv}"),
                            format!("map.group{kv}"),
                            String::new(),
                        ],
                    }
                    .iter()
                    .find_map(|n| self.by_name.get(n).copied());
                    let group_bytes = group
                        .and_then(|g| self.raw.get(&g))
                        .and_then(|g| g.byte_size);
                    let entries = group.and_then(|g| self.entry_layout(g, &layout));
                    Ty::Map(Box::new(MapType {
                        type_name: t.name.clone(),
                        key_type,
                        value_type,
                        layout,
                        group_bytes,
                        entries,
                    }))
                }
                Err(e) => Ty::BadMap {
                    type_name: t.name.clone(),
                    reason: e.to_string(),
                },
            },
            gimli::DW_TAG_pointer_type => Ty::Pointer(t.type_ref),
            gimli::DW_TAG_base_type => match (t.encoding, t.byte_size) {
                (Some(e), Some(size @ (1 | 2 | 4 | 8)))
                    if e == gimli::DW_ATE_signed.0 || e == gimli::DW_ATE_unsigned.0 =>
                {
                    Ty::Int {
                        size_bytes: size as u8,
                        signed: e == gimli::DW_ATE_signed.0,
                    }
                }
                _ => Ty::Other,
            },
            gimli::DW_TAG_array_type => match (t.type_ref, t.count, t.byte_size) {
                (Some(elem), Some(count), Some(size)) if count > 0 => Ty::Array {
                    elem,
                    count,
                    stride_bytes: size / count,
                },
                _ => Ty::Other,
            },
            gimli::DW_TAG_structure_type => {
                let member = |n: &str| t.members.iter().find(|(m, _, _)| m == n);
                if t.name == "string" && member("str").is_some() && member("len").is_some() {
                    return Ty::String;
                }
                if t.name.starts_with("[]") {
                    let (Some(array), Some(len)) = (member("array"), member("len")) else {
                        return Ty::Other;
                    };
                    let elem = array
                        .2
                        .and_then(|p| self.raw.get(&p))
                        .and_then(|p| p.type_ref);
                    let Some(elem) = elem else {
                        return Ty::Other;
                    };
                    return match self.size_of(elem) {
                        Some(stride) if stride > 0 => Ty::Slice {
                            elem,
                            stride_bytes: stride,
                            array_offset: array.1,
                            len_offset: len.1,
                        },
                        _ => Ty::Other,
                    };
                }
                Ty::Struct {
                    fields: t
                        .members
                        .iter()
                        .filter_map(|(n, o, ty)| ty.map(|ty| (n.clone(), *o, ty)))
                        .collect(),
                }
            }
            _ => Ty::Other,
        }
    }

    /// Where keys and values are in the bucket (classic) or group (Swiss)
    /// struct `group`.
    fn entry_layout(&self, group: u64, layout: &MapLayout) -> Option<EntryLayout> {
        let g = self.raw.get(&group)?;
        let member = |t: &TypeDie, n: &str| t.members.iter().find(|(m, _, _)| m == n).cloned();
        // An array member `[8]T`: its offset, element type and stride.
        let array = |t: &TypeDie, n: &str| -> Option<(u64, u64, u64)> {
            let (_, offset, ty) = member(t, n)?;
            let a = self.raw.get(&self.resolve(ty?)?)?;
            let elem = a.type_ref?;
            let count = a.count.filter(|c| *c > 0)?;
            Some((offset, elem, a.byte_size? / count))
        };
        match layout {
            MapLayout::Classic { .. } => {
                let (tophash_offset, _, _) = array(g, "tophash")?;
                let (keys_offset, key_ty, key_stride) = array(g, "keys")?;
                let (values_offset, value_ty, value_stride) =
                    array(g, "values").or_else(|| array(g, "elems"))?;
                let (_, overflow_offset, _) = member(g, "overflow")?;
                Some(EntryLayout {
                    group_bytes: g.byte_size?,
                    ctrl_offset: tophash_offset,
                    key_offset: keys_offset,
                    key_stride,
                    value_offset: values_offset,
                    value_stride,
                    overflow_offset: Some(overflow_offset),
                    key_ty: Some(key_ty),
                    value_ty: Some(value_ty),
                })
            }
            MapLayout::Swiss { .. } => {
                let (_, ctrl_offset, _) = member(g, "ctrl")?;
                let (slots_offset, slot_ty, slot_stride) = array(g, "slots")?;
                let slot = self.raw.get(&self.resolve(slot_ty)?)?;
                let (_, key_in_slot, key_ty) = member(slot, "key")?;
                let (_, elem_in_slot, value_ty) = member(slot, "elem")?;
                Some(EntryLayout {
                    group_bytes: g.byte_size?,
                    ctrl_offset,
                    key_offset: slots_offset.checked_add(key_in_slot)?,
                    key_stride: slot_stride,
                    value_offset: slots_offset.checked_add(elem_in_slot)?,
                    value_stride: slot_stride,
                    overflow_offset: None,
                    key_ty,
                    value_ty,
                })
            }
        }
    }
}

/// The address of a variable located by a lone `DW_OP_addr`.
fn variable_addr(location: AttributeValue<EndianSlice<LittleEndian>>) -> Option<u64> {
    let AttributeValue::Exprloc(expr) = location else {
        return None;
    };
    let bytes = expr.0.slice();
    if bytes.len() == 9 && bytes[0] == gimli::DW_OP_addr.0 {
        Some(u64::from_le_bytes(bytes[1..9].try_into().ok()?))
    } else {
        None
    }
}

/// The name of the header struct a map typedef points to (`hash<K,V>`, `map<K,V>`).
fn header_name(map_type: &TypeDie, types: &FastMap<u64, TypeDie>) -> Option<String> {
    let pointer = types.get(&map_type.type_ref?)?;
    Some(types.get(&pointer.type_ref?)?.name.clone())
}

/// The header layout of a map typedef: typedef `map[K]V` -> `*hash<K,V>` or
/// `*map<K,V>` -> the struct whose fields name the layout.
fn layout_of(
    map_type: &TypeDie,
    types: &FastMap<u64, TypeDie>,
    by_name: &FastMap<String, u64>,
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
    let find = |t: &TypeDie, f: &str| {
        t.members
            .iter()
            .find(|(n, _, _)| n == f)
            .map(|(_, o, ty)| (*o, *ty))
    };
    let field = |t: &TypeDie, f: &str| {
        find(t, f)
            .map(|(o, _)| o)
            .ok_or_else(|| missing(&t.name, f))
    };
    if let Some(rest) = header.name.strip_prefix("map<") {
        let table_name = format!("table<{rest}");
        let table = by_name
            .get(&table_name)
            .and_then(|o| types.get(o))
            .ok_or_else(|| missing(&table_name, "(table struct)"))?;
        let (groups_offset, groups_ty) =
            find(table, "groups").ok_or_else(|| missing(&table.name, "groups"))?;
        let group_ref = groups_ty
            .and_then(|t| types.get(&t))
            .ok_or_else(|| missing(&table.name, "groups (groupReference)"))?;
        let offset_in = |f: &str| -> Result<u64, GomemError> {
            groups_offset
                .checked_add(field(group_ref, f)?)
                .ok_or_else(|| missing(&group_ref.name, f))
        };
        Ok(MapLayout::Swiss {
            used_offset: field(header, "used")?,
            dir_ptr_offset: field(header, "dirPtr")?,
            dir_len_offset: field(header, "dirLen")?,
            table_capacity_offset: field(table, "capacity")?,
            table_used_offset: field(table, "used")?,
            table_groups_offset: offset_in("data")?,
            table_length_mask_offset: offset_in("lengthMask")?,
            tombstone_possible_offset: find(header, "tombstonePossible").map(|(o, _)| o),
        })
    } else {
        Ok(MapLayout::Classic {
            count_offset: field(header, "count")?,
            flags_offset: field(header, "flags")?,
            b_offset: field(header, "B")?,
            noverflow_offset: field(header, "noverflow")?,
            buckets_offset: field(header, "buckets")?,
            oldbuckets_offset: field(header, "oldbuckets")?,
            nevacuate_offset: field(header, "nevacuate")?,
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
