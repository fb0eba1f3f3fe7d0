//! Function names from DWARF (`.debug_info`), for C/C++ binaries stripped of
//! `.symtab` but built with `-g` (e.g. `strip --strip-unneeded` keeps the debug
//! sections, and so does `objcopy --strip-symbol`): every `DW_TAG_subprogram`
//! with code (`DW_AT_low_pc`/`DW_AT_high_pc` or `DW_AT_ranges`), named by its
//! `DW_AT_name`, found through `DW_AT_specification`/`DW_AT_abstract_origin`
//! when the entry itself has none (C++ out-of-line definitions, inlined
//! originals). Pure: the ELF's bytes in, `(address, size, name)` out.
//!
//! Compressed debug sections (`SHF_COMPRESSED`, `.zdebug_*`) are not read:
//! such a binary gives no DWARF names and its frames print as offsets.

use crate::elf::Elf;
use gimli::{AttributeValue, EndianSlice, LittleEndian};

type Reader<'a> = EndianSlice<'a, LittleEndian>;

/// At most this many functions are read from one binary (bounds the memory
/// a crafted file can make us take).
const MAX_FUNCTIONS: usize = 4_000_000;

/// How many `DW_AT_specification`/`DW_AT_abstract_origin` links are followed
/// to find a name.
const MAX_NAME_HOPS: usize = 4;

/// The functions with code described by the DWARF of `elf`, as
/// `(address, size, name)` sorted by address; empty when the file has no
/// `.debug_info` or it cannot be read (what was read before an error is kept).
pub fn dwarf_functions(elf: &Elf<'_>) -> Vec<(u64, u64, String)> {
    if elf.section(".debug_info").is_none() {
        return Vec::new();
    }
    let load = |id: gimli::SectionId| -> Result<Reader<'_>, gimli::Error> {
        let bytes = elf
            .section(id.name())
            .and_then(|s| elf.section_data(s))
            .unwrap_or(&[]);
        Ok(EndianSlice::new(bytes, LittleEndian))
    };
    let Ok(dwarf) = gimli::Dwarf::load(load) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let _ = read_units(&dwarf, &mut out);
    out.sort();
    out.dedup_by_key(|f| f.0);
    out
}

fn read_units(
    dwarf: &gimli::Dwarf<Reader<'_>>,
    out: &mut Vec<(u64, u64, String)>,
) -> gimli::Result<()> {
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let unit = unit.unit_ref(dwarf);
        let mut entries = unit.entries();
        while let Some((_, entry)) = entries.next_dfs()? {
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            let Some(name) = entry_name(&unit, entry) else {
                continue;
            };
            let Ok(mut ranges) = unit.die_ranges(entry) else {
                continue;
            };
            while let Ok(Some(range)) = ranges.next() {
                if range.begin == 0 || range.end <= range.begin {
                    continue;
                }
                if out.len() >= MAX_FUNCTIONS {
                    return Ok(());
                }
                out.push((range.begin, range.end - range.begin, name.clone()));
            }
        }
    }
    Ok(())
}

/// The entry's `DW_AT_name`, or that of the entry its specification or
/// abstract origin points to (same unit only).
fn entry_name<'a>(
    unit: &gimli::UnitRef<'_, Reader<'a>>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'a>>,
) -> Option<String> {
    if let Some(name) = direct_name(unit, entry) {
        return Some(name);
    }
    let mut next = link(entry)?;
    for _ in 0..MAX_NAME_HOPS {
        let target = unit.entry(next).ok()?;
        if let Some(name) = direct_name(unit, &target) {
            return Some(name);
        }
        next = link(&target)?;
    }
    None
}

fn direct_name<'a>(
    unit: &gimli::UnitRef<'_, Reader<'a>>,
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'a>>,
) -> Option<String> {
    let value = entry.attr_value(gimli::DW_AT_name).ok()??;
    let name = unit.attr_string(value).ok()?;
    let name = String::from_utf8_lossy(name.slice()).into_owned();
    (!name.is_empty()).then_some(name)
}

fn link(
    entry: &gimli::DebuggingInformationEntry<'_, '_, Reader<'_>>,
) -> Option<gimli::UnitOffset<usize>> {
    for attr in [gimli::DW_AT_specification, gimli::DW_AT_abstract_origin] {
        if let Ok(Some(AttributeValue::UnitRef(offset))) = entry.attr_value(attr) {
            return Some(offset);
        }
    }
    None
}
