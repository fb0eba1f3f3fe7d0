//! Just enough of 64-bit little-endian ELF to symbolize: section headers by
//! name, `PT_LOAD` segments (file offset to virtual address) and the `STT_FUNC`
//! symbols of `.symtab`/`.dynsym`. Every read is bounds-checked: a corrupt file
//! gives an error or fewer symbols, never a panic.

use crate::error::SymbolError;

/// A section: its name, virtual address and bytes' place in the file.
#[derive(Debug, Clone)]
pub struct Section {
    /// The section name (`.gopclntab`).
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_link` (the string table of a symbol table).
    pub link: u32,
    /// Virtual address when loaded.
    pub addr: u64,
    /// Offset in the file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A loadable segment: file bytes `[offset, offset+filesz)` at `vaddr`.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Offset in the file.
    pub offset: u64,
    /// Virtual address.
    pub vaddr: u64,
    /// Bytes present in the file.
    pub filesz: u64,
}

/// The parsed headers of one ELF file, borrowing its bytes.
#[derive(Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    /// Section headers (empty when the file has none).
    pub sections: Vec<Section>,
    /// `PT_LOAD` program headers.
    pub segments: Vec<Segment>,
}

pub(crate) fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn u64_at(d: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}
/// The NUL-terminated string at `off` (lossy UTF-8), if it ends inside `d`.
pub(crate) fn cstr_at(d: &[u8], off: usize) -> Option<String> {
    let rest = d.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

const SHT_SYMTAB: u32 = 2;
const SHT_DYNSYM: u32 = 11;
const SHT_NOBITS: u32 = 8;
const PT_LOAD: u32 = 1;
const STT_FUNC: u8 = 2;
const NT_GNU_BUILD_ID: u32 = 3;

impl<'a> Elf<'a> {
    /// Parses the headers of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, SymbolError> {
        if data.get(..4) != Some(b"\x7fELF") {
            return Err(SymbolError::NotElf);
        }
        if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
            return Err(SymbolError::Unsupported(
                "not 64-bit little-endian ELF".into(),
            ));
        }
        let bad = |what: &str| SymbolError::Corrupt(format!("ELF header: {what} out of bounds"));
        let phoff = u64_at(data, 0x20).ok_or_else(|| bad("e_phoff"))? as usize;
        let shoff = u64_at(data, 0x28).ok_or_else(|| bad("e_shoff"))? as usize;
        let phentsize = u16_at(data, 0x36).ok_or_else(|| bad("e_phentsize"))? as usize;
        let phnum = u16_at(data, 0x38).ok_or_else(|| bad("e_phnum"))? as usize;
        let shentsize = u16_at(data, 0x3a).ok_or_else(|| bad("e_shentsize"))? as usize;
        let shnum = u16_at(data, 0x3c).ok_or_else(|| bad("e_shnum"))? as usize;
        let shstrndx = u16_at(data, 0x3e).ok_or_else(|| bad("e_shstrndx"))? as usize;

        let mut segments = Vec::new();
        if phentsize >= 56 {
            for i in 0..phnum {
                let h = phoff.saturating_add(i.saturating_mul(phentsize));
                let (Some(kind), Some(offset), Some(vaddr), Some(filesz)) = (
                    u32_at(data, h),
                    u64_at(data, h.saturating_add(8)),
                    u64_at(data, h.saturating_add(16)),
                    u64_at(data, h.saturating_add(32)),
                ) else {
                    return Err(bad("program header"));
                };
                if kind == PT_LOAD {
                    segments.push(Segment {
                        offset,
                        vaddr,
                        filesz,
                    });
                }
            }
        }
        let mut raw = Vec::new();
        if shentsize >= 64 && shoff != 0 {
            for i in 0..shnum {
                let h = shoff.saturating_add(i.saturating_mul(shentsize));
                let field32 =
                    |o| u32_at(data, h.saturating_add(o)).ok_or_else(|| bad("section header"));
                let field64 =
                    |o| u64_at(data, h.saturating_add(o)).ok_or_else(|| bad("section header"));
                raw.push((
                    field32(0)?,
                    field32(4)?,
                    field32(40)?,
                    field64(16)?,
                    field64(24)?,
                    field64(32)?,
                ));
            }
        }
        let names = raw.get(shstrndx).map(|s| (s.4 as usize, s.5 as usize));
        let sections = raw
            .iter()
            .map(|&(name, kind, link, addr, offset, size)| {
                let name = names
                    .and_then(|(off, size)| {
                        let table = data.get(off..off.checked_add(size)?)?;
                        cstr_at(table, name as usize)
                    })
                    .unwrap_or_default();
                Section {
                    name,
                    kind,
                    link,
                    addr,
                    offset,
                    size,
                }
            })
            .collect();
        Ok(Elf {
            data,
            sections,
            segments,
        })
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The file bytes of a section (None for `SHT_NOBITS` or out of bounds).
    pub fn section_data(&self, s: &Section) -> Option<&'a [u8]> {
        if s.kind == SHT_NOBITS {
            return None;
        }
        let start = usize::try_from(s.offset).ok()?;
        self.data
            .get(start..start.checked_add(usize::try_from(s.size).ok()?)?)
    }

    /// The virtual address of file offset `offset`, through the `PT_LOAD`
    /// segment holding it.
    pub fn offset_to_vaddr(&self, offset: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| offset >= s.offset && offset - s.offset < s.filesz)
            .and_then(|s| s.vaddr.checked_add(offset - s.offset))
    }

    /// The file bytes from virtual address `vaddr` to the end of the
    /// `PT_LOAD` segment holding it.
    pub fn vaddr_bytes(&self, vaddr: u64) -> Option<&'a [u8]> {
        let s = self
            .segments
            .iter()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)?;
        let start = usize::try_from(s.offset.checked_add(vaddr - s.vaddr)?).ok()?;
        let end = usize::try_from(s.offset.checked_add(s.filesz)?).ok()?;
        self.data.get(start..end)
    }

    /// The GNU build id: the descriptor of the `NT_GNU_BUILD_ID` note in
    /// `.note.gnu.build-id` (what `/usr/lib/debug/.build-id/` is keyed by).
    pub fn build_id(&self) -> Option<&'a [u8]> {
        let notes = self.section_data(self.section(".note.gnu.build-id")?)?;
        let mut at = 0usize;
        while at + 12 <= notes.len() {
            let namesz = u32_at(notes, at)? as usize;
            let descsz = u32_at(notes, at + 4)? as usize;
            let kind = u32_at(notes, at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
            let end = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
            let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
            let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
            if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
                return Some(desc);
            }
            at = end;
        }
        None
    }

    /// `.gnu_debuglink`: the separate debug file's name and the CRC-32 of
    /// its bytes (the name is NUL-terminated, padded to 4 bytes, then the CRC).
    pub fn debuglink(&self) -> Option<(String, u32)> {
        let data = self.section_data(self.section(".gnu_debuglink")?)?;
        let len = data.iter().position(|&b| b == 0)?;
        let name = std::str::from_utf8(&data[..len]).ok()?;
        if name.is_empty() || name.contains('/') {
            return None;
        }
        let crc = u32_at(data, (len + 1).checked_add(3)? & !3)?;
        Some((name.to_string(), crc))
    }

    /// Function symbols `(address, size, name)` from `.symtab` and `.dynsym`,
    /// sorted by address. Empty for a stripped file.
    pub fn function_symbols(&self) -> Vec<(u64, u64, String)> {
        let mut out = Vec::new();
        for table in self
            .sections
            .iter()
            .filter(|s| s.kind == SHT_SYMTAB || s.kind == SHT_DYNSYM)
        {
            let (Some(syms), Some(strings)) = (
                self.section_data(table),
                self.sections
                    .get(table.link as usize)
                    .and_then(|s| self.section_data(s)),
            ) else {
                continue;
            };
            for sym in syms.chunks_exact(24) {
                let (Some(name), Some(value), Some(size)) =
                    (u32_at(sym, 0), u64_at(sym, 8), u64_at(sym, 16))
                else {
                    continue;
                };
                if sym[4] & 0xf != STT_FUNC || value == 0 {
                    continue;
                }
                if let Some(name) = cstr_at(strings, name as usize) {
                    out.push((value, size, name));
                }
            }
        }
        out.sort();
        out.dedup_by_key(|s| s.0);
        out
    }
}
