//! The Go build info embedded in ELF binaries: what `go version -m BINARY` prints.
//!
//! Since Go 1.13 the linker writes a 32-byte header, aligned to 16 bytes, at the
//! start of the `.go.buildinfo` section, in the writable data segment (first in
//! it when Go links internally, after `.data` when an external linker does):
//!
//! | bytes  | meaning |
//! |--------|---------|
//! | 0..14  | magic `"\xff Go buildinf:"` |
//! | 14     | pointer size (4 or 8) |
//! | 15     | flags: `0x1` big-endian, `0x2` inline strings (Go ≥ 1.18) |
//! | 16..32 | pointer format only: pointers to the two Go string headers |
//!
//! With inline strings, two uvarint-length-prefixed strings follow the header: the
//! Go version (`go1.27.3`) and the module info. In the older pointer format
//! (Go 1.13–1.17) the header holds the virtual addresses of two Go string headers
//! `(data pointer, length)`, which we resolve through the `PT_LOAD` segments. The
//! module info string is wrapped in 16-byte sentinels; its text is parsed by
//! [`crate::parse_modinfo`].
//!
//! Reads are bounded: only the ELF headers, the section and name tables, and the
//! build info itself are read (a few KiB for a 100 MB binary); strings are capped
//! at [`MAX_STRING_BYTES`] and the fallback scan at [`MAX_SCAN_BYTES`].

use crate::elf::{Elf, SectionLookup, Source};
use crate::error::BuildInfoError;
use crate::modinfo::{parse_modinfo, Module};
use crate::read_at::ReadAt;
use crate::region::{find_magic, Region, Window};

/// The longest Go version or module info string read (bytes).
pub const MAX_STRING_BYTES: u64 = 1 << 20;
/// The most bytes of data segments searched for the magic in a binary without
/// section headers.
pub const MAX_SCAN_BYTES: u64 = 64 << 20;

const HEADER_LEN: u64 = 32;
const FLAG_BIG_ENDIAN: u8 = 0x1;
const FLAG_INLINE: u8 = 0x2;

/// How the build info stores its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildInfoFormat {
    /// Length-prefixed strings right after the header (Go 1.18 and later).
    Inline,
    /// Pointers to Go string headers elsewhere in the data (Go 1.13 to 1.17).
    Pointer,
}

/// The build info of a Go binary, as `go version -m` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuildInfo {
    /// The Go toolchain that built the binary, e.g. `go1.27.3` (may carry
    /// experiment suffixes such as `go1.22.1 X:loopvar`).
    pub go_version: String,
    /// The main program: the `path` line (import path of the main package, e.g.
    /// `github.com/prometheus/prometheus/cmd/prometheus`), or the module path of
    /// the `mod` line when there is no `path` line. `None` for binaries built
    /// without module information.
    pub main_module: Option<String>,
    /// The version of the main module from the `mod` line, e.g. `(devel)` or
    /// `v2.42.0`. `None` when there is no `mod` line (GOPATH-mode builds, such as
    /// Debian's packages).
    pub main_module_version: Option<String>,
    /// The module path of the `mod` line (e.g. `github.com/prometheus/prometheus`
    /// when `main_module` is `.../cmd/prometheus`). `None` without a `mod` line.
    pub module_path: Option<String>,
    /// The `build` lines in order, unquoted: `-compiler=gc`, `-ldflags=-s -w`,
    /// `CGO_ENABLED=1`, `GOARCH=amd64`, `vcs.revision=...`.
    pub settings: Vec<(String, String)>,
    /// The `dep` lines (with their `=>` replacements).
    pub deps: Vec<Module>,
    /// How the strings were stored.
    pub format: BuildInfoFormat,
}

impl GoBuildInfo {
    /// The value of the build setting `key` (e.g. `GOARCH`, `CGO_ENABLED`), if set.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the Go build info of the ELF binary `src`.
///
/// - `Ok(Some(info))`: a Go binary (built by Go 1.13 or later).
/// - `Ok(None)`: not a Go binary: a file that does not start with the ELF magic
///   (scripts, other formats, empty files: when scanning every `/proc/PID/exe`
///   these are "not Go", not errors), or a valid ELF file whose section headers
///   have no `.go.buildinfo` section (what `go version` says too). An ELF file
///   without section headers is searched like Go 1.19 did: its writable data
///   segments, up to [`MAX_SCAN_BYTES`], for the 16-byte aligned magic.
/// - `Err`: a file with the ELF magic whose headers are malformed or truncated,
///   or whose build info is (a `.go.buildinfo` section without the magic, a
///   string past its section, a bad length, an unmapped pointer, ...).
pub fn read_build_info<R: ReadAt + ?Sized>(src: &R) -> Result<Option<GoBuildInfo>, BuildInfoError> {
    let src = Source::new(src)?;
    let Some(elf) = Elf::parse(&src)? else {
        return Ok(None);
    };
    let ((header_at, chunk), region) = match elf.find_section(&src, ".go.buildinfo")? {
        SectionLookup::Absent => return Ok(None),
        SectionLookup::Found(section) => {
            let region = Region {
                name: ".go.buildinfo section",
                start: section.offset,
                end: section.offset.saturating_add(section.size),
                vaddr: section.addr,
            };
            let mut budget = MAX_SCAN_BYTES;
            match find_magic(&src, &region, &mut budget)? {
                Some(found) => (found, region),
                None => {
                    return Err(BuildInfoError::NoMagicInSection {
                        offset: region.start,
                        end: region.end,
                    })
                }
            }
        }
        SectionLookup::NoSections => {
            let mut budget = MAX_SCAN_BYTES;
            let mut found = None;
            for seg in elf.loads.iter().filter(|s| s.is_data()) {
                let region = Region {
                    name: "data segment",
                    start: seg.offset,
                    end: seg.offset.saturating_add(seg.filesz),
                    vaddr: seg.vaddr,
                };
                if let Some(magic) = find_magic(&src, &region, &mut budget)? {
                    found = Some((magic, region));
                    break;
                }
            }
            match found {
                Some(found) => found,
                None => return Ok(None),
            }
        }
    };

    let mut window = Window::new(&src, region, chunk);
    let header = window.bytes(header_at, HEADER_LEN, "Go build info header")?;
    let (ptr_size, flags) = (header[14], header[15]);
    let ptrs = header[16..32].to_vec();
    let (format, version, modinfo) = if flags & FLAG_INLINE != 0 {
        let (version, next) = window.varint_string(header_at + HEADER_LEN, "Go version string")?;
        let (modinfo, _) = window.varint_string(next, "module info string")?;
        (BuildInfoFormat::Inline, version, modinfo)
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Err(BuildInfoError::BadPointerSize(ptr_size));
        }
        // Go reads every pointer of this format in the byte order of the flags.
        let ptr = Pointers {
            size: ptr_size,
            big_endian: flags & FLAG_BIG_ENDIAN != 0,
        };
        let p = usize::from(ptr_size);
        let version = pointed_string(&src, &elf, ptr, ptr.read(&ptrs), "Go version string")?;
        let modinfo = pointed_string(&src, &elf, ptr, ptr.read(&ptrs[p..]), "module info string")?;
        (BuildInfoFormat::Pointer, version, modinfo)
    };
    if version.is_empty() {
        return Err(BuildInfoError::EmptyGoVersion { offset: header_at });
    }
    let text = strip_sentinels(&modinfo);
    let info = parse_modinfo(&String::from_utf8_lossy(text));
    let main = info.main;
    Ok(Some(GoBuildInfo {
        go_version: String::from_utf8_lossy(&version).into_owned(),
        main_module: info.path.or_else(|| main.as_ref().map(|m| m.path.clone())),
        main_module_version: main.as_ref().map(|m| m.version.clone()),
        module_path: main.map(|m| m.path),
        settings: info.settings,
        deps: info.deps,
        format,
    }))
}

/// The module info text between its 16-byte sentinels, as Go's `debug/buildinfo`
/// cuts it: empty unless the string is at least 33 bytes and the byte before the
/// end sentinel is a newline.
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    let n = modinfo.len();
    if n >= 33 && modinfo[n - 17] == b'\n' {
        &modinfo[16..n - 16]
    } else {
        &[]
    }
}

/// How the pointer format stores pointers and lengths.
#[derive(Debug, Clone, Copy)]
struct Pointers {
    /// 4 or 8 bytes.
    size: u8,
    big_endian: bool,
}

impl Pointers {
    /// The pointer-sized unsigned integer at the start of `b`.
    fn read(self, b: &[u8]) -> u64 {
        let b = &b[..usize::from(self.size)];
        let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
        if self.big_endian {
            b.iter().fold(0, fold)
        } else {
            b.iter().rev().fold(0, fold)
        }
    }
}

/// A Go string whose header `(data pointer, length)` is at virtual address `at`.
fn pointed_string<R: ReadAt + ?Sized>(
    src: &Source<'_, R>,
    elf: &Elf,
    ptr: Pointers,
    at: u64,
    what: &'static str,
) -> Result<Vec<u8>, BuildInfoError> {
    let p = u64::from(ptr.size);
    let header_offset = elf
        .vaddr_to_offset(at, 2 * p)
        .ok_or(BuildInfoError::UnmappedAddress {
            what: "Go string header",
            vaddr: at,
            len: 2 * p,
        })?;
    let header = src.read(header_offset, 2 * p, "Go string header")?;
    let data = ptr.read(&header);
    let len = ptr.read(&header[usize::from(ptr.size)..]);
    if len > MAX_STRING_BYTES {
        return Err(BuildInfoError::TooLong {
            what,
            len,
            limit: MAX_STRING_BYTES,
        });
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let offset = elf
        .vaddr_to_offset(data, len)
        .ok_or(BuildInfoError::UnmappedAddress {
            what,
            vaddr: data,
            len,
        })?;
    src.read(offset, len, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_are_cut_only_when_go_would_cut_them() {
        let text = b"path\tx\n";
        let wrapped: Vec<u8> = [&[b'S'; 16][..], text, &[b'E'; 16][..]].concat();
        // 16 + 7 + 16 = 39 bytes and a newline just before the end sentinel.
        assert_eq!(strip_sentinels(&wrapped), text);
        assert_eq!(strip_sentinels(&wrapped[..32]), b"");
        let no_newline: Vec<u8> = [&[b'S'; 16][..], b"path\tx", &[b'E'; 17][..]].concat();
        assert_eq!(strip_sentinels(&no_newline), b"");
    }

    #[test]
    fn pointers_follow_byte_order_and_size() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8];
        let p = |size, big_endian| Pointers { size, big_endian }.read(&b);
        assert_eq!(p(4, false), 0x0403_0201);
        assert_eq!(p(4, true), 0x0102_0304);
        assert_eq!(p(8, false), 0x0807_0605_0403_0201);
        assert_eq!(p(8, true), 0x0102_0304_0506_0708);
    }
}
