//! Inlined calls in Go stacks: the frames the compiler merged into one
//! function, recovered the way the Go runtime's own tracebacks do.
//!
//! A function's `_func` record lists pc-data tables (offsets into `pctab`) and
//! func-data offsets (from `go:func.*`). Pc-data table `PCDATA_InlTreeIndex`
//! (2) maps each pc to an index in the function's inline tree (-1: not
//! inlined code); func-data `FUNCDATA_InlTree` (3) is that tree: per inlined
//! call its name offset and `parentPc`, a pc (offset from the function entry)
//! in the caller at the call site, looked up again for the next level.
//!
//! `go:func.*` is found through the runtime's module data (`moduledata`): the
//! one word that points at the pclntab header, followed (Go 1.19: in
//! `.noptrdata`; Go 1.2x: in `.go.module`) by, among others, `rodata` and then
//! `gofunc`. Layouts: `_func` header 40 bytes before Go 1.20 (44 after, with
//! `startLine`); inline tree entries 20 bytes before Go 1.20 (name at 12,
//! parentPc at 16), 16 bytes after (name at 4, parentPc at 8).

use crate::elf::{u32_at, u64_at, Elf};
use crate::pclntab::GoFuncs;

const PCDATA_INL_TREE_INDEX: usize = 2;
const FUNCDATA_INL_TREE: usize = 3;
/// Deepest inlining followed (the compiler's budget keeps real ones short).
const MAX_INLINE_DEPTH: usize = 64;

/// The bytes of `go:func.*` on to the end of its segment, found through the
/// module data; None when it cannot be found (then no inlined frames).
pub(crate) fn find_gofunc<'a>(elf: &Elf<'a>) -> Option<&'a [u8]> {
    let pclntab = elf.section(".gopclntab")?.addr;
    let rodata = elf.section(".rodata")?;
    for name in [".go.module", ".noptrdata", ".data"] {
        let Some(data) = elf.section(name).and_then(|s| elf.section_data(s)) else {
            continue;
        };
        for at in (0..data.len().saturating_sub(8)).step_by(8) {
            if u64_at(data, at) != Some(pclntab) {
                continue;
            }
            // The last word equal to rodata's start within the struct's
            // first 80 words is the `rodata` field (`types` may equal it too).
            let words: Vec<u64> = (0..80).filter_map(|i| u64_at(data, at + 8 * i)).collect();
            let Some(i) = words.iter().rposition(|&w| w == rodata.addr) else {
                continue;
            };
            let gofunc = *words.get(i + 1)?;
            if let Some(bytes) = elf.vaddr_bytes(gofunc) {
                return Some(bytes);
            }
        }
    }
    None
}

/// A varint of the pc-value encoding at `*p`, advancing it.
fn varint(table: &[u8], p: &mut usize) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let b = *table.get(*p)?;
        *p += 1;
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The value at `target` of the pc-value table at `table[start..]` of a
/// function entering at `entry` (Go's `pcvalue`): -1 before the first step.
pub(crate) fn pcvalue(table: &[u8], start: usize, entry: u64, target: u64) -> Option<i32> {
    if start == 0 {
        return Some(-1);
    }
    let (mut p, mut pc, mut value, mut first) = (start, entry, -1i32, true);
    loop {
        let uvdelta = varint(table, &mut p)?;
        if uvdelta == 0 && !first {
            return None;
        }
        first = false;
        value = value.wrapping_add((-((uvdelta & 1) as i32)) ^ ((uvdelta >> 1) as i32));
        pc = pc.checked_add(u64::from(varint(table, &mut p)?))?;
        if target < pc {
            return Some(value);
        }
    }
}

impl GoFuncs {
    /// The frames at `pc`, innermost first: the inlined calls it is part of,
    /// then the function it was compiled into. Empty for a pc outside the
    /// table.
    pub fn frames(&self, pc: u64) -> Vec<String> {
        let Some(i) = self.index_of(pc) else {
            return Vec::new();
        };
        let (entry_off, name_off, func_off) = self.entries[i];
        let mut frames = self.inlined(
            pc,
            self.text_start.wrapping_add(u64::from(entry_off)),
            func_off,
        );
        frames.extend(self.name(name_off));
        frames
    }

    fn inlined(&self, pc: u64, entry: u64, func_off: u32) -> Vec<String> {
        let mut out = Vec::new();
        let Some(gofunc) = &self.gofunc else {
            return out;
        };
        let (header, entry_size, name_at, parent_at) = if self.layout == "go1.18" {
            (40, 20, 12, 16)
        } else {
            (44, 16, 4, 8)
        };
        let f = func_off as usize;
        let (Some(npcdata), Some(&nfuncdata)) =
            (u32_at(&self.funcs, f + 28), self.funcs.get(f + header - 1))
        else {
            return out;
        };
        let npcdata = npcdata as usize;
        if npcdata <= PCDATA_INL_TREE_INDEX || usize::from(nfuncdata) <= FUNCDATA_INL_TREE {
            return out;
        }
        let pcdata = u32_at(&self.funcs, f + header + 4 * PCDATA_INL_TREE_INDEX);
        let tree = u32_at(
            &self.funcs,
            f + header + 4 * npcdata + 4 * FUNCDATA_INL_TREE,
        );
        let (Some(pcdata), Some(tree)) = (pcdata, tree) else {
            return out;
        };
        if tree == u32::MAX {
            return out;
        }
        let mut target = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let Some(index) = pcvalue(&self.pctab, pcdata as usize, entry, target) else {
                break;
            };
            let Ok(index) = usize::try_from(index) else {
                break;
            };
            let at = (tree as usize).saturating_add(index.saturating_mul(entry_size));
            let (Some(name), Some(parent_pc)) =
                (u32_at(gofunc, at + name_at), u32_at(gofunc, at + parent_at))
            else {
                break;
            };
            out.extend(self.name(name));
            target = entry.wrapping_add(u64::from(parent_pc));
        }
        out
    }
}
