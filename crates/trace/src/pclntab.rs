//! Go function names from `.gopclntab`, the table the Go runtime itself uses
//! for tracebacks. It survives `go build -ldflags=-s` and `strip`, so it names
//! functions in stripped binaries too.
//!
//! Layouts handled: Go 1.18-1.19 (magic `0xfffffff0`) and Go 1.20 onwards
//! (magic `0xfffffff1`, unchanged up to 1.27 in the parts read here). The
//! header gives `nfunc`, `textStart` and the offsets of the function-name table
//! and of the function table: `nfunc + 1` pairs of `(entry offset from
//! textStart, offset of the _func record)`, sorted by entry, the last one
//! marking the end of the text. A `_func` record starts with its entry offset
//! and the offset of its name in the function-name table.
//!
//! Inlined calls are expanded (module `inline`): the `PCDATA_InlTreeIndex`
//! table of a function says which inlined call a pc belongs to, and the
//! `FUNCDATA_InlTree` table (in `go:func.*`, found through the runtime's
//! module data) names it and its call site.

use crate::elf::{cstr_at, u32_at, u64_at, Elf};
use crate::error::SymbolError;

const MAGIC_GO118: u32 = 0xffff_fff0;
const MAGIC_GO120: u32 = 0xffff_fff1;

/// The Go function table of one binary.
#[derive(Debug, Clone)]
pub struct GoFuncs {
    /// `runtime.text`: function entries are offsets from it.
    pub text_start: u64,
    /// `(entry offset, name offset, _func record offset)` by function, sorted
    /// by entry offset.
    pub(crate) entries: Vec<(u32, u32, u32)>,
    /// The end of the last function, as an offset from `text_start`.
    end_offset: u32,
    /// The function-name table.
    names: Vec<u8>,
    /// The pc-value tables (`pctab`).
    pub(crate) pctab: Vec<u8>,
    /// The `_func` records (`pclntable`, from the function table on).
    pub(crate) funcs: Vec<u8>,
    /// The bytes of `go:func.*` on (inline trees), when the module data was found.
    pub(crate) gofunc: Option<Vec<u8>>,
    /// Which layout was read (`"go1.18"` or `"go1.20"`).
    pub layout: &'static str,
}

impl GoFuncs {
    /// Reads the `.gopclntab` of an ELF file. Falls back to searching the
    /// file for the table's header when there is no such section (some
    /// externally linked or packed binaries).
    ///
    /// Go 1.2x linkers leave the header's `textStart` 0 in the file (the
    /// runtime's module data carries it); it is then the start of `.text`.
    pub fn from_elf(elf: &Elf<'_>, file: &[u8]) -> Result<GoFuncs, SymbolError> {
        let mut funcs = GoFuncs::find(elf, file)?;
        funcs.gofunc = crate::inline::find_gofunc(elf).map(<[u8]>::to_vec);
        if funcs.text_start == 0 {
            funcs.text_start = elf
                .section(".text")
                .map(|s| s.addr)
                .ok_or_else(|| corrupt("textStart is 0 and there is no .text section"))?;
        }
        Ok(funcs)
    }

    fn find(elf: &Elf<'_>, file: &[u8]) -> Result<GoFuncs, SymbolError> {
        if let Some(data) = elf.section(".gopclntab").and_then(|s| elf.section_data(s)) {
            return GoFuncs::parse(data);
        }
        for (at, w) in file.windows(8).enumerate().step_by(4) {
            let magic = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if (magic == MAGIC_GO118 || magic == MAGIC_GO120)
                && w[4] == 0
                && w[5] == 0
                && w[6] == 1
                && w[7] == 8
            {
                if let Ok(funcs) = GoFuncs::parse(&file[at..]) {
                    return Ok(funcs);
                }
            }
        }
        Err(SymbolError::NoPclntab)
    }

    /// Parses the table from its first byte (the magic) on.
    pub fn parse(tab: &[u8]) -> Result<GoFuncs, SymbolError> {
        let magic = u32_at(tab, 0).ok_or_else(|| corrupt("shorter than its header"))?;
        let layout = match magic {
            MAGIC_GO118 => "go1.18",
            MAGIC_GO120 => "go1.20",
            0xffff_fffa | 0xffff_fffb => {
                return Err(SymbolError::Unsupported(format!(
                    "pclntab magic {magic:#x} (Go < 1.18)"
                )))
            }
            _ => return Err(corrupt(&format!("unknown magic {magic:#x}"))),
        };
        if tab.get(6) != Some(&1) || tab.get(7) != Some(&8) {
            return Err(SymbolError::Unsupported(
                "pclntab not for amd64/arm64 (instruction quantum 1, 8-byte pointers)".into(),
            ));
        }
        let word =
            |i: usize| u64_at(tab, 8 + 8 * i).ok_or_else(|| corrupt("shorter than its header"));
        let nfunc = word(0)?;
        let text_start = word(2)?;
        let funcname_off = to_usize(word(3)?)?;
        let pctab_off = to_usize(word(6)?)?;
        let pcln_off = to_usize(word(7)?)?;
        let names = tab
            .get(funcname_off..)
            .ok_or_else(|| corrupt("function-name table past the end"))?;
        let functab = tab
            .get(pcln_off..)
            .ok_or_else(|| corrupt("function table past the end"))?;
        let nfunc = usize::try_from(nfunc)
            .ok()
            .filter(|&n| n.saturating_add(1).saturating_mul(8) <= functab.len());
        let nfunc = nfunc.ok_or_else(|| corrupt("function count larger than the table"))?;
        let mut entries = Vec::with_capacity(nfunc);
        let mut previous = 0u32;
        for i in 0..nfunc {
            let (Some(entry), Some(func_off)) =
                (u32_at(functab, 8 * i), u32_at(functab, 8 * i + 4))
            else {
                return Err(corrupt("function table cut short"));
            };
            if entry < previous {
                return Err(corrupt(&format!("function {i} out of order")));
            }
            previous = entry;
            let name_off = u32_at(functab, (func_off as usize).saturating_add(4))
                .ok_or_else(|| corrupt(&format!("function {i}: record past the end")))?;
            entries.push((entry, name_off, func_off));
        }
        let end_offset = u32_at(functab, 8 * nfunc).ok_or_else(|| corrupt("no end entry"))?;
        if end_offset < previous {
            return Err(corrupt("end entry before the last function"));
        }
        // Only the part up to the function table holds names; cap the copy.
        let names_len = pcln_off.saturating_sub(funcname_off).min(names.len());
        let names = if names_len > 0 {
            names[..names_len].to_vec()
        } else {
            names.to_vec()
        };
        let pctab = tab.get(pctab_off..pcln_off).unwrap_or_default().to_vec();
        Ok(GoFuncs {
            text_start,
            entries,
            end_offset,
            names,
            pctab,
            funcs: functab.to_vec(),
            gofunc: None,
            layout,
        })
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no functions.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the function holding virtual address `pc`.
    pub fn lookup(&self, pc: u64) -> Option<String> {
        let i = self.index_of(pc)?;
        self.name(self.entries[i].1)
    }

    /// The index of the function holding `pc`.
    pub(crate) fn index_of(&self, pc: u64) -> Option<usize> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        if off >= self.end_offset {
            return None;
        }
        self.entries
            .partition_point(|&(entry, _, _)| entry <= off)
            .checked_sub(1)
    }

    /// The name at `offset` in the function-name table.
    pub(crate) fn name(&self, offset: u32) -> Option<String> {
        cstr_at(&self.names, offset as usize)
    }

    /// The entry address of the function named `name` (a linear search).
    pub fn entry_of(&self, name: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|&&(_, n, _)| cstr_at(&self.names, n as usize).as_deref() == Some(name))
            .map(|&(entry, _, _)| self.text_start.wrapping_add(u64::from(entry)))
    }
}

fn corrupt(what: &str) -> SymbolError {
    SymbolError::Corrupt(format!(".gopclntab: {what}"))
}

fn to_usize(v: u64) -> Result<usize, SymbolError> {
    usize::try_from(v).map_err(|_| corrupt("offset does not fit in memory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cut from the workload program's real tables by
    // testdata/make_small_pclntab.py (first 16 functions).
    const GO119: &[u8] = include_bytes!("../testdata/go1.19-workload-pclntab-first16.bin");
    const GO127: &[u8] = include_bytes!("../testdata/go1.27-workload-pclntab-first16.bin");

    #[test]
    fn go119_layout_names_functions_by_address() {
        let f = GoFuncs::parse(GO119).unwrap();
        assert_eq!((f.layout, f.len(), f.text_start), ("go1.18", 16, 0x401000));
        // Addresses from `go tool nm -n` of the same binary.
        assert_eq!(
            f.lookup(0x401000).as_deref(),
            Some("internal/cpu.Initialize")
        );
        assert_eq!(
            f.lookup(0x40105f).as_deref(),
            Some("internal/cpu.Initialize")
        );
        assert_eq!(
            f.lookup(0x401060).as_deref(),
            Some("internal/cpu.processOptions")
        );
        assert_eq!(f.lookup(0x400fff), None);
        assert_eq!(f.entry_of("internal/cpu.doinit"), Some(0x4015c0));
    }

    #[test]
    fn go127_layout_leaves_text_start_to_the_elf() {
        let f = GoFuncs::parse(GO127).unwrap();
        assert_eq!((f.layout, f.len(), f.text_start), ("go1.20", 16, 0));
        assert_eq!(f.lookup(0).as_deref(), Some("internal/abi.BoundsDecode"));
        assert_eq!(f.lookup(0xe0).as_deref(), Some("internal/abi.NoEscape"));
        assert_eq!(f.lookup(0xffff_ffff), None);
    }

    #[test]
    fn every_cut_of_a_real_table_parses_or_errs_without_panicking() {
        for table in [GO119, GO127] {
            for len in 0..table.len() {
                if let Ok(f) = GoFuncs::parse(&table[..len]) {
                    for pc in (0x401000..0x402000).step_by(64) {
                        let _ = f.lookup(pc);
                    }
                }
            }
        }
    }

    #[test]
    fn old_and_unknown_magics_are_named() {
        let mut t = GO119.to_vec();
        t[..4].copy_from_slice(&0xffff_fffbu32.to_le_bytes());
        assert!(
            matches!(GoFuncs::parse(&t), Err(SymbolError::Unsupported(m)) if m.contains("Go < 1.18"))
        );
        t[..4].copy_from_slice(&0x1234u32.to_le_bytes());
        assert!(matches!(GoFuncs::parse(&t), Err(SymbolError::Corrupt(m)) if m.contains("0x1234")));
    }
}
