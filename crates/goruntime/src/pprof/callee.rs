//! What the leaf frame of each sample was calling, read from the profiled
//! binary: Go's heap profiles hide the runtime frames of an allocation
//! (`runtime.mapassign_fast64`, `runtime.makeslice`, ...), but the leaf
//! location's address is the call's return address minus one, so the call
//! instruction (x86-64 `call rel32`, 5 bytes) ends at that address and its
//! target names the hidden runtime entry point. The target is looked up in the
//! ELF symbol table (`.symtab`; a binary linked with `-s` has none, and then
//! nothing is resolved).

use super::Profile;
use crate::elf::{Elf, SectionLookup, Source};
use crate::{BuildInfoError, ReadAt};
use std::collections::HashMap;

/// Largest `.symtab` or `.strtab` read (a big Go service has a few MiB).
pub const MAX_SYMBOL_TABLE_BYTES: u64 = 256 << 20;

/// `e_machine` of x86-64.
const EM_X86_64: u16 = 62;
/// `STT_FUNC`.
const STT_FUNC: u8 = 2;
/// Opcode of `call rel32`.
const CALL_REL32: u8 = 0xe8;

/// Maps the address of each sample's leaf location (in the profile's first
/// mapping, the main executable) to the symbol its call instruction calls.
///
/// `binary` must be the profiled executable (for a live process,
/// `/proc/PID/exe`). Returns an empty map when the binary is not x86-64 ELF64
/// little-endian or has no symbol table; errors only on unreadable or
/// malformed ELF data.
pub fn leaf_callees<R: ReadAt + ?Sized>(
    binary: &R,
    profile: &Profile,
) -> Result<HashMap<u64, String>, BuildInfoError> {
    let src = Source::new(binary)?;
    let Some(elf) = Elf::parse(&src)? else {
        return Err(BuildInfoError::MalformedElf(
            "the file does not start with the ELF magic".to_string(),
        ));
    };
    let head = src.read(0, 20, "ELF header")?;
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if head[4] != 2 || head[5] != 1 || machine != EM_X86_64 {
        return Ok(HashMap::new());
    }
    let main = profile.mappings().first();

    // Call targets of the leaf addresses.
    let mut targets: Vec<(u64, u64)> = Vec::new(); // (location address, target vaddr)
    let mut done: HashMap<u64, ()> = HashMap::new();
    for sample in 0..profile.sample_count() {
        let Some(&loc) = profile.sample_locs(sample).first() else {
            continue;
        };
        let entry = profile.locations[loc as usize];
        if entry.mapping.is_some_and(|m| m != 0) || done.insert(entry.address, ()).is_some() {
            continue;
        }
        let Some((offset, vaddr)) = locate(&elf, main, entry.address) else {
            continue;
        };
        let Some(start) = offset.checked_sub(4) else {
            continue;
        };
        let Ok(code) = src.read(start, 5, "call instruction") else {
            continue;
        };
        if code[0] != CALL_REL32 {
            continue;
        }
        let rel = i32::from_le_bytes([code[1], code[2], code[3], code[4]]);
        let ret = vaddr.wrapping_add(1);
        targets.push((entry.address, ret.wrapping_add(rel as i64 as u64)));
    }
    if targets.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(symbols) = read_symbols(&elf, &src)? else {
        return Ok(HashMap::new());
    };
    let mut out = HashMap::with_capacity(targets.len());
    for (address, target) in targets {
        if let Some(name) = symbols.lookup(target) {
            out.insert(address, name.to_string());
        }
    }
    Ok(out)
}

/// File offset and link-time address of a runtime address.
fn locate(elf: &Elf, main: Option<&super::Mapping>, address: u64) -> Option<(u64, u64)> {
    let offset = match main {
        Some(m) if m.memory_start <= address && address < m.memory_limit => {
            (address - m.memory_start).checked_add(m.file_offset)?
        }
        Some(_) => return None,
        None => elf.vaddr_to_offset(address, 1)?,
    };
    let seg = elf
        .loads
        .iter()
        .find(|s| s.offset <= offset && offset - s.offset < s.filesz)?;
    Some((offset, seg.vaddr.checked_add(offset - seg.offset)?))
}

/// Function symbols sorted by address, with their names.
struct Symbols {
    /// (address, size, name offset in `names`)
    entries: Vec<(u64, u64, u32)>,
    names: Vec<u8>,
}

impl Symbols {
    fn lookup(&self, address: u64) -> Option<&str> {
        let i = self.entries.partition_point(|e| e.0 <= address);
        let (start, size, name_at) = *self.entries.get(i.checked_sub(1)?)?;
        if address - start >= size.max(1) {
            return None;
        }
        let rest = self.names.get(name_at as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }
}

fn read_symbols<R: ReadAt + ?Sized>(
    elf: &Elf,
    src: &Source<'_, R>,
) -> Result<Option<Symbols>, BuildInfoError> {
    let (SectionLookup::Found(symtab), SectionLookup::Found(strtab)) = (
        elf.find_section(src, ".symtab")?,
        elf.find_section(src, ".strtab")?,
    ) else {
        return Ok(None);
    };
    for (what, size) in [(".symtab", symtab.size), (".strtab", strtab.size)] {
        if size > MAX_SYMBOL_TABLE_BYTES {
            return Err(BuildInfoError::TooLong {
                what,
                len: size,
                limit: MAX_SYMBOL_TABLE_BYTES,
            });
        }
    }
    let table = src.read(symtab.offset, symtab.size, ".symtab")?;
    let names = src.read(strtab.offset, strtab.size, ".strtab")?;
    let mut entries = Vec::with_capacity(table.len() / 24);
    for e in table.chunks_exact(24) {
        let name_at = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let info = e[4];
        let mut value = [0u8; 8];
        value.copy_from_slice(&e[8..16]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&e[16..24]);
        let (value, size) = (u64::from_le_bytes(value), u64::from_le_bytes(size));
        if info & 0xf == STT_FUNC && value != 0 {
            entries.push((value, size, name_at));
        }
    }
    entries.sort_unstable();
    Ok(Some(Symbols { entries, names }))
}
