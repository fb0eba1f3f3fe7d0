//! Just enough of ELF to find Go's build info: the file header, the program
//! headers (`PT_LOAD` segments: where virtual addresses live in the file) and the
//! section headers with their names.
//!
//! 32- and 64-bit, little- and big-endian. Every table is read in one bounded
//! read after its size has been checked against the file size and a cap, so a
//! corrupt header can neither make us allocate gigabytes nor read past the end.

use crate::error::BuildInfoError;
use crate::read_at::ReadAt;

/// Largest program or section header table read (bytes).
const MAX_TABLE_BYTES: u64 = 4 << 20;
/// Largest section name table read (bytes).
const MAX_NAMES_BYTES: u64 = 1 << 20;

const PT_LOAD: u32 = 1;
const PF_X: u32 = 0x1;
const PF_W: u32 = 0x2;
const SHT_NOBITS: u32 = 8;
/// `e_phnum` value meaning "the real count is in section 0's `sh_info`".
const PN_XNUM: u16 = 0xffff;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;

/// A [`ReadAt`] with its size, reading named structures with bounds checks.
pub(crate) struct Source<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    /// The file size.
    pub size: u64,
}

impl<'a, R: ReadAt + ?Sized> Source<'a, R> {
    pub fn new(src: &'a R) -> Result<Self, BuildInfoError> {
        let size = src.size().map_err(|source| BuildInfoError::Io {
            what: "file size",
            offset: 0,
            len: 0,
            source,
        })?;
        Ok(Source { src, size })
    }

    /// Reads `len` bytes at `offset`; an error names `what` when the range is
    /// past the end of the file or the read fails.
    pub fn read(
        &self,
        offset: u64,
        len: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, BuildInfoError> {
        let truncated = || BuildInfoError::Truncated {
            what,
            offset,
            len,
            file_size: self.size,
        };
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(truncated());
        }
        let n = usize::try_from(len).map_err(|_| truncated())?;
        self.src
            .read_at(offset, n)
            .map_err(|source| BuildInfoError::Io {
                what,
                offset,
                len,
                source,
            })
    }
}

/// Reads the fields of one header in the file's byte order and word size.
#[derive(Debug, Clone, Copy)]
struct Fields {
    big_endian: bool,
    is_64: bool,
}

impl Fields {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    fn u64(self, b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }
}

/// One `PT_LOAD` program header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
}

impl Segment {
    /// A data segment: writable and not executable, where Go's linker puts the
    /// build info.
    pub fn is_data(&self) -> bool {
        self.flags & (PF_X | PF_W) == PF_W
    }
}

/// One section header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
}

/// What the section headers say about one section name.
#[derive(Debug)]
pub(crate) enum SectionLookup {
    /// The file has no (usable) section headers or section names.
    NoSections,
    /// The file has named sections but none of that name.
    Absent,
    /// The section.
    Found(Section),
}

/// The parsed headers of an ELF file.
#[derive(Debug)]
pub(crate) struct Elf {
    fields: Fields,
    /// The `PT_LOAD` segments, in program header order.
    pub loads: Vec<Segment>,
    /// Section header table: file offset, entry size, count, name table index.
    sections: Option<(u64, u64, u64, u64)>,
}

impl Elf {
    /// Reads the file header and program headers. `Ok(None)` when the file does
    /// not start with the ELF magic.
    pub fn parse<R: ReadAt + ?Sized>(src: &Source<'_, R>) -> Result<Option<Elf>, BuildInfoError> {
        // One read for the magic, the identification and the header.
        let head = src.read(0, src.size.min(64), "ELF header")?;
        if !head.starts_with(b"\x7fELF") {
            return Ok(None);
        }
        let ident = match head.get(..16) {
            Some(ident) => ident,
            None => &src.read(0, 16, "ELF identification")?, // fails: too short
        };
        let is_64 = match ident[4] {
            1 => false,
            2 => true,
            c => return Err(malformed(format!("unknown ELF class {c} (byte 4)"))),
        };
        let big_endian = match ident[5] {
            1 => false,
            2 => true,
            d => return Err(malformed(format!("unknown ELF data encoding {d} (byte 5)"))),
        };
        let f = Fields { big_endian, is_64 };
        let need = if is_64 { 64 } else { 52 };
        let h = match head.get(..need) {
            Some(h) => h,
            None => &src.read(0, need as u64, "ELF header")?, // fails: too short
        };
        // (e_phoff, e_shoff, first of the six u16 fields) by class.
        let (phoff, shoff, at) = if is_64 {
            (f.u64(h, 0x20), f.u64(h, 0x28), 0x36)
        } else {
            (u64::from(f.u32(h, 0x1c)), u64::from(f.u32(h, 0x20)), 0x2a)
        };
        let [phentsize, phnum, shentsize, shnum, shstrndx] =
            [0, 2, 4, 6, 8].map(|d| u64::from(f.u16(h, at + d)));

        let mut elf = Elf {
            fields: f,
            loads: Vec::new(),
            sections: None,
        };
        // Section 0 holds the real counts when they do not fit the header.
        let needs_section0 =
            phnum == u64::from(PN_XNUM) || shnum == 0 || shstrndx == u64::from(SHN_XINDEX);
        let section0 = if shoff != 0 && needs_section0 {
            check_entsize(shentsize, if is_64 { 64 } else { 40 }, "section")?;
            Some(src.read(shoff, shentsize, "section header 0")?)
        } else {
            None
        };
        let phnum = match (&section0, phnum == u64::from(PN_XNUM)) {
            (Some(s0), true) => u64::from(f.u32(s0, if is_64 { 0x2c } else { 0x1c })),
            _ => phnum,
        };
        if shoff != 0 {
            let (s0_size, s0_link) = match &section0 {
                Some(s0) if is_64 => (f.u64(s0, 0x20), u64::from(f.u32(s0, 0x28))),
                Some(s0) => (u64::from(f.u32(s0, 0x14)), u64::from(f.u32(s0, 0x18))),
                None => (0, 0),
            };
            let count = if shnum == 0 { s0_size } else { shnum };
            let names = if shstrndx == u64::from(SHN_XINDEX) {
                s0_link
            } else {
                shstrndx
            };
            // No names (SHN_UNDEF) means no way to find a section: as if none.
            if count > 0 && names != 0 {
                check_entsize(shentsize, if is_64 { 64 } else { 40 }, "section")?;
                elf.sections = Some((shoff, shentsize, count, names));
            }
        }

        if phnum > 0 {
            check_entsize(phentsize, if is_64 { 56 } else { 32 }, "program")?;
            let table = read_table(src, phoff, phentsize, phnum, "program header table")?;
            for e in table.chunks_exact(phentsize as usize) {
                if f.u32(e, 0) != PT_LOAD {
                    continue;
                }
                let seg = if is_64 {
                    Segment {
                        flags: f.u32(e, 4),
                        offset: f.u64(e, 8),
                        vaddr: f.u64(e, 16),
                        filesz: f.u64(e, 32),
                    }
                } else {
                    Segment {
                        offset: u64::from(f.u32(e, 4)),
                        vaddr: u64::from(f.u32(e, 8)),
                        filesz: u64::from(f.u32(e, 16)),
                        flags: f.u32(e, 24),
                    }
                };
                elf.loads.push(seg);
            }
        }
        Ok(Some(elf))
    }

    /// Finds a section by name (reads the section header table and the name table).
    pub fn find_section<R: ReadAt + ?Sized>(
        &self,
        src: &Source<'_, R>,
        name: &str,
    ) -> Result<SectionLookup, BuildInfoError> {
        let Some((shoff, entsize, count, names_index)) = self.sections else {
            return Ok(SectionLookup::NoSections);
        };
        if names_index >= count {
            return Err(malformed(format!(
                "section name table index {names_index} is not below the section count {count}"
            )));
        }
        let table = read_table(src, shoff, entsize, count, "section header table")?;
        let headers: Vec<&[u8]> = table.chunks_exact(entsize as usize).collect();
        let f = self.fields;
        // (sh_name, sh_type, sh_addr, sh_offset, sh_size)
        let field = |h: &[u8]| {
            if f.is_64 {
                (
                    f.u32(h, 0),
                    f.u32(h, 4),
                    f.u64(h, 0x10),
                    f.u64(h, 0x18),
                    f.u64(h, 0x20),
                )
            } else {
                let w = |at| u64::from(f.u32(h, at));
                (f.u32(h, 0), f.u32(h, 4), w(0x0c), w(0x10), w(0x14))
            }
        };
        let (_, names_type, _, names_offset, names_size) = field(headers[names_index as usize]);
        if names_type == SHT_NOBITS {
            return Err(malformed(
                "the section name table has no bytes in the file (SHT_NOBITS)".into(),
            ));
        }
        if names_size > MAX_NAMES_BYTES {
            return Err(BuildInfoError::TooLong {
                what: "section name table",
                len: names_size,
                limit: MAX_NAMES_BYTES,
            });
        }
        let names = src.read(names_offset, names_size, "section name table")?;
        let wanted = name.as_bytes();
        for h in headers {
            let (name_at, sh_type, addr, offset, size) = field(h);
            let name_at = name_at as usize;
            let matches = names
                .get(name_at..)
                .is_some_and(|rest| rest.starts_with(wanted) && rest.get(wanted.len()) == Some(&0));
            if matches {
                if sh_type == SHT_NOBITS {
                    return Err(malformed(format!(
                        "section {name} has no bytes in the file (SHT_NOBITS)"
                    )));
                }
                return Ok(SectionLookup::Found(Section { addr, offset, size }));
            }
        }
        Ok(SectionLookup::Absent)
    }

    /// The file offset of `len` bytes at virtual address `vaddr`, when they lie
    /// inside the file-backed part of one `PT_LOAD` segment.
    pub fn vaddr_to_offset(&self, vaddr: u64, len: u64) -> Option<u64> {
        self.loads.iter().find_map(|s| {
            let rel = vaddr.checked_sub(s.vaddr)?;
            (rel.checked_add(len)? <= s.filesz).then_some(())?;
            s.offset.checked_add(rel)
        })
    }
}

fn check_entsize(entsize: u64, min: u64, kind: &str) -> Result<(), BuildInfoError> {
    if entsize < min {
        return Err(malformed(format!(
            "{kind} header entries are {entsize} bytes, fewer than the {min} the format needs"
        )));
    }
    Ok(())
}

fn read_table<R: ReadAt + ?Sized>(
    src: &Source<'_, R>,
    offset: u64,
    entsize: u64,
    count: u64,
    what: &'static str,
) -> Result<Vec<u8>, BuildInfoError> {
    let len = entsize.saturating_mul(count);
    if len > MAX_TABLE_BYTES {
        return Err(BuildInfoError::TooLong {
            what,
            len,
            limit: MAX_TABLE_BYTES,
        });
    }
    src.read(offset, len, what)
}

fn malformed(reason: String) -> BuildInfoError {
    BuildInfoError::MalformedElf(reason)
}
