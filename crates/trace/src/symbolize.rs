//! Names for user stack frames: which mapping of the process holds an address
//! (`/proc/PID/maps`), then the Go function from `.gopclntab`, an ELF
//! function symbol (the binary's, or its separate debug file's:
//! [`crate::debuginfo`]), or (no `.symtab`) a DWARF function. A frame no table names prints as `binary+0xOFFSET` (the
//! offset in the file), an address outside every mapping as `[unmapped]+0xADDR`.
//!
//! [`parse_maps`] and [`BinarySymbols::from_bytes`] are pure; [`ProcessSymbols`]
//! reads the files.

use std::collections::HashMap;
use std::path::Path;

use crate::elf::Elf;
use crate::pclntab::GoFuncs;

/// One executable mapping of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The mapped file (`[vdso]`, or empty for anonymous memory).
    pub path: String,
}

/// The executable mappings of a `/proc/PID/maps` text; lines it cannot read are
/// skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let path = fields.nth(2).unwrap_or("").trim_start().to_string();
            let (start, end) = range.split_once('-')?;
            if perms.as_bytes().get(2) != Some(&b'x') {
                return None;
            }
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// The symbols of one binary.
#[derive(Debug, Default)]
pub struct BinarySymbols {
    go: Option<GoFuncs>,
    /// `(address, size, name)` sorted by address.
    functions: Vec<(u64, u64, String)>,
    /// `PT_LOAD` segments `(offset, vaddr, filesz)`.
    segments: Vec<(u64, u64, u64)>,
}

impl BinarySymbols {
    /// Reads the symbol tables of an ELF file's bytes; a file that is not ELF
    /// or has no table gives empty symbols (frames then print as offsets).
    pub fn from_bytes(data: &[u8]) -> BinarySymbols {
        BinarySymbols::with_debug_file(data, None)
    }

    /// As [`BinarySymbols::from_bytes`], with the functions of its separate
    /// debug file's bytes (`debug`, [`crate::debuginfo`]) too: its `.symtab`,
    /// or its DWARF when it has none. The binary's own names win at an
    /// address both have; its segments place the addresses.
    pub fn with_debug_file(data: &[u8], debug: Option<&[u8]>) -> BinarySymbols {
        let Ok(elf) = Elf::parse(data) else {
            return BinarySymbols::default();
        };
        let mut functions = function_table(&elf);
        if let Some(debug) = debug.and_then(|d| Elf::parse(d).ok()) {
            functions.extend(function_table(&debug));
            // Stable: the binary's entry sorts first at its address and is kept.
            functions.sort_by_key(|f| f.0);
            functions.dedup_by_key(|f| f.0);
        }
        BinarySymbols {
            go: GoFuncs::from_elf(&elf, data).ok(),
            functions,
            segments: elf
                .segments
                .iter()
                .map(|s| (s.offset, s.vaddr, s.filesz))
                .collect(),
        }
    }

    /// Whether the binary has a Go function table.
    pub fn is_go(&self) -> bool {
        self.go.is_some()
    }

    /// The frames at file offset `offset`, innermost first: Go's inlined
    /// calls expanded, then the function; empty when no table names it.
    pub fn frames_at_offset(&self, offset: u64) -> Vec<String> {
        let Some(&(seg_off, vaddr, _)) = self
            .segments
            .iter()
            .find(|&&(o, _, size)| offset >= o && offset - o < size)
        else {
            return Vec::new();
        };
        let Some(pc) = vaddr.checked_add(offset - seg_off) else {
            return Vec::new();
        };
        if let Some(go) = &self.go {
            let frames = go.frames(pc);
            if !frames.is_empty() {
                return frames;
            }
        }
        let Some(i) = self.functions.partition_point(|f| f.0 <= pc).checked_sub(1) else {
            return Vec::new();
        };
        let (start, size, name) = &self.functions[i];
        if pc - start < (*size).max(1) {
            vec![name.clone()]
        } else {
            Vec::new()
        }
    }
}

/// The ELF function symbols (`.symtab`, `.dynsym`) and, for a binary without
/// `.symtab`, the DWARF functions at addresses no symbol starts at.
fn function_table(elf: &Elf<'_>) -> Vec<(u64, u64, String)> {
    let mut functions = elf.function_symbols();
    if elf.section(".symtab").is_none() {
        functions.extend(crate::dwarf::dwarf_functions(elf));
        // Stable: a symbol sorts before the DWARF entry at its address and is kept.
        functions.sort_by_key(|f| f.0);
        functions.dedup_by_key(|f| f.0);
    }
    functions
}

/// Names the frames of one process's stacks.
#[derive(Debug, Default)]
pub struct Symbolizer {
    mappings: Vec<Mapping>,
    binaries: HashMap<String, BinarySymbols>,
}

impl Symbolizer {
    /// A symbolizer over `mappings` and the symbols of their binaries (keyed by
    /// mapping path; a missing path gives offsets).
    pub fn new(mappings: Vec<Mapping>, binaries: HashMap<String, BinarySymbols>) -> Symbolizer {
        Symbolizer { mappings, binaries }
    }

    /// The names of frame `index` at address `addr`, innermost first (more
    /// than one when Go inlined calls there; frames after the first are
    /// return addresses: the call is the byte before).
    pub fn frame(&self, index: usize, addr: u64) -> Vec<String> {
        let lookup = if index == 0 {
            addr
        } else {
            addr.saturating_sub(1)
        };
        let Some(m) = self
            .mappings
            .iter()
            .find(|m| lookup >= m.start && lookup < m.end)
        else {
            return vec![format!("[unmapped]+{addr:#x}")];
        };
        let offset = (lookup - m.start).wrapping_add(m.offset);
        if let Some(frames) = self
            .binaries
            .get(&m.path)
            .map(|b| b.frames_at_offset(offset))
            .filter(|f| !f.is_empty())
        {
            return frames;
        }
        let base = Path::new(&m.path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&m.path);
        let base = if base.is_empty() { "[anon]" } else { base };
        vec![format!(
            "{base}+{:#x}",
            (addr - m.start).wrapping_add(m.offset)
        )]
    }

    /// Whether any mapped binary is Go.
    pub fn has_go(&self) -> bool {
        self.binaries.values().any(BinarySymbols::is_go)
    }
}

/// Reads a live process's mappings and binaries.
pub struct ProcessSymbols;

impl ProcessSymbols {
    /// The executable mappings of `pid`, or None when it is gone.
    pub fn read_maps(pid: u32) -> Option<Vec<Mapping>> {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .ok()
            .map(|t| parse_maps(&t))
    }

    /// Opens each binary `mappings` name through `/proc/PID/map_files`
    /// (the very file mapped, also when it was deleted or replaced since, or
    /// lives in another mount namespace), keyed by mapping path. An open
    /// file outlives the process: [`ProcessSymbols::load`] reads it after
    /// the process exited, when the path may name another file or none
    /// (a deploy replaced the binary; seen in a soak, where one test rebuilt
    /// the workload binary that another was tracing).
    pub fn open_binaries(pid: u32, mappings: &[Mapping]) -> HashMap<String, std::fs::File> {
        let mut files = HashMap::new();
        for m in mappings {
            if m.path.is_empty() || m.path.starts_with('[') || files.contains_key(&m.path) {
                continue;
            }
            let via_map_files = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
            if let Ok(file) = std::fs::File::open(via_map_files) {
                files.insert(m.path.clone(), file);
            }
        }
        files
    }

    /// A symbolizer for `pid` over `mappings`, reading each binary through
    /// `/proc/PID/map_files` (works for deleted files and other mount
    /// namespaces), else through the file `opened` holds for its path (see
    /// [`ProcessSymbols::open_binaries`]: the process may have exited),
    /// else by its path.
    pub fn load(
        pid: u32,
        mappings: Vec<Mapping>,
        opened: &HashMap<String, std::fs::File>,
    ) -> Symbolizer {
        let mut binaries = HashMap::new();
        for m in &mappings {
            if m.path.is_empty() || m.path.starts_with('[') || binaries.contains_key(&m.path) {
                continue;
            }
            let via_map_files = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
            let bytes = std::fs::read(via_map_files)
                .or_else(|e| match opened.get(&m.path) {
                    Some(file) => read_whole(file),
                    None => Err(e),
                })
                .or_else(|_| std::fs::read(&m.path));
            let symbols = bytes
                .map(|b| {
                    // A binary without `.symtab` may have it in a debug file.
                    let debug = Elf::parse(&b)
                        .ok()
                        .filter(|e| e.section(".symtab").is_none())
                        .and_then(|e| crate::debuginfo::find(Path::new("/"), &m.path, &e));
                    BinarySymbols::with_debug_file(&b, debug.as_deref())
                })
                .unwrap_or_default();
            binaries.insert(m.path.clone(), symbols);
        }
        Symbolizer::new(mappings, binaries)
    }
}

/// All of an open file, from its start (whatever its offset).
fn read_whole(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let length = file.metadata()?.len();
    let mut bytes = vec![0; usize::try_from(length).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_executable_mappings_with_paths() {
        let text = "00400000-00401000 r--p 00000000 fe:01 123  /usr/bin/w\n\
                    00401000-004a0000 r-xp 00001000 fe:01 123  /usr/bin/w\n\
                    7ffd1000-7ffd3000 r-xp 00000000 00:00 0                  [vdso]\n\
                    c000000000-c000400000 rw-p 00000000 00:00 0\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 2);
        assert_eq!(
            maps[0],
            Mapping {
                start: 0x401000,
                end: 0x4a0000,
                offset: 0x1000,
                path: "/usr/bin/w".into()
            }
        );
        assert_eq!(maps[1].path, "[vdso]");
    }

    #[test]
    fn unknown_frames_print_binary_and_file_offset() {
        let maps = parse_maps("00401000-004a0000 r-xp 00001000 fe:01 123  /opt/x/server\n");
        let s = Symbolizer::new(maps, HashMap::new());
        assert_eq!(s.frame(0, 0x401234), ["server+0x1234"]);
        assert_eq!(s.frame(1, 0x10), ["[unmapped]+0x10"]);
    }
}
