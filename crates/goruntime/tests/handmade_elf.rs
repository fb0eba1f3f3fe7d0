//! The pointer format of Go 1.13–1.17, which no toolchain here produces.
//!
//! HAND-MADE INPUT: each ELF file below is built byte by byte by [`make_elf`]: an
//! ELF header, one writable `PT_LOAD` segment holding a pointer-format build
//! info header, two Go string headers and the strings, and (optionally) the
//! section headers `.go.buildinfo` and `.shstrtab`. 32- and 64-bit, little- and
//! big-endian. The expected values are the ones written into the file; `go
//! version -m` (Go 1.27, which still reads this format, for files with
//! sections; Go 1.19 for files without) is asked as well, so the hand-made files
//! are checked to be what Go's own reader accepts.

mod common;

use common::{assert_matches_go, go_version_m, write_executable, TempDir};
use memlens_goruntime::{read_build_info, BuildInfoError, BuildInfoFormat};
use memlens_testkit::GoToolchain;

/// Go's 16-byte sentinels around the module info (copied from a Go binary).
const SENTINEL_START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
const SENTINEL_END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";
const VERSION: &str = "go1.16.15";
const MODINFO: &str = "path\tmemlens.dev/old/cmd/old\n\
                       mod\tmemlens.dev/old\tv1.0.0\th1:abc=\n\
                       dep\tgolang.org/x/sys\tv0.0.1\th1:xyz=\n";

/// File offset and virtual address of the data segment.
const DATA_OFFSET: usize = 0x100;
const DATA_VADDR: u64 = 0x50_0100;

#[derive(Debug, Clone, Copy)]
struct Spec {
    is_64: bool,
    big_endian: bool,
    with_sections: bool,
    /// The counts in section 0 instead of the ELF header (`e_shnum` 0,
    /// `e_shstrndx` `SHN_XINDEX`, `e_phnum` `PN_XNUM`), as for huge files.
    extended_numbering: bool,
}

/// A writer of fixed-width fields in one byte order.
struct Out {
    bytes: Vec<u8>,
    big_endian: bool,
}

impl Out {
    fn put(&mut self, at: usize, width: usize, value: u64) {
        let le = value.to_le_bytes();
        let mut field = le[..width].to_vec();
        if self.big_endian {
            field.reverse();
        }
        if self.bytes.len() < at + width {
            self.bytes.resize(at + width, 0);
        }
        self.bytes[at..at + width].copy_from_slice(&field);
    }
}

/// Builds the file; `data_patch` may change the data segment (the build info
/// header is at its start) before it is written.
fn make_elf(
    spec: Spec,
    version: &[u8],
    modinfo: &[u8],
    data_patch: impl Fn(&mut Vec<u8>, usize),
) -> Vec<u8> {
    let p = if spec.is_64 { 8 } else { 4 };
    let mut data = Out {
        bytes: Vec::new(),
        big_endian: spec.big_endian,
    };
    // Build info header: magic, pointer size, flags (bit 0: big-endian; bit 1
    // clear: pointer format), padding, then the two pointers.
    data.bytes.extend_from_slice(b"\xff Go buildinf:");
    data.bytes.push(p as u8);
    data.bytes.push(u8::from(spec.big_endian));
    let vaddr = |offset: usize| DATA_VADDR + offset as u64;
    let (version_header, modinfo_header, strings) = (32, 32 + 2 * p, 32 + 4 * p);
    data.put(16, p, vaddr(version_header));
    data.put(16 + p, p, vaddr(modinfo_header));
    // Go string headers: (data pointer, length).
    data.put(version_header, p, vaddr(strings));
    data.put(version_header + p, p, version.len() as u64);
    data.put(modinfo_header, p, vaddr(strings + version.len()));
    data.put(modinfo_header + p, p, modinfo.len() as u64);
    data.bytes.extend_from_slice(version);
    data.bytes.extend_from_slice(modinfo);
    data_patch(&mut data.bytes, p);

    let mut f = Out {
        bytes: vec![0; DATA_OFFSET],
        big_endian: spec.big_endian,
    };
    f.bytes.extend_from_slice(&data.bytes);
    let (ehsize, phentsize, shentsize) = if spec.is_64 {
        (64, 56, 64)
    } else {
        (52, 32, 40)
    };
    let mut shoff = 0;
    if spec.with_sections {
        let names_at = f.bytes.len();
        f.bytes.extend_from_slice(b"\0.go.buildinfo\0.shstrtab\0");
        shoff = f.bytes.len().next_multiple_of(8);
        f.bytes.resize(shoff + 3 * shentsize, 0);
        // (name, type, flags, addr, offset, size); index 0 stays all zero.
        let sections = [
            (1, 1, 3, DATA_VADDR, DATA_OFFSET, 32), // .go.buildinfo: PROGBITS, WA
            (15, 3, 0, 0, names_at, 25),            // .shstrtab: STRTAB
        ];
        if spec.extended_numbering {
            // Section 0: sh_size = section count, sh_link = name table index,
            // sh_info = program header count.
            let fields = if spec.is_64 {
                [(32, 8), (40, 4), (44, 4)]
            } else {
                [(20, 4), (24, 4), (28, 4)]
            };
            for ((at, width), v) in fields.into_iter().zip([3, 2, 1]) {
                f.put(shoff + at, width, v);
            }
        }
        for (i, (name, kind, flags, addr, offset, size)) in sections.into_iter().enumerate() {
            let h = shoff + (i + 1) * shentsize;
            f.put(h, 4, name);
            f.put(h + 4, 4, kind);
            if spec.is_64 {
                f.put(h + 8, 8, flags);
                f.put(h + 16, 8, addr);
                f.put(h + 24, 8, offset as u64);
                f.put(h + 32, 8, size);
                f.put(h + 48, 8, 1);
            } else {
                f.put(h + 8, 4, flags);
                f.put(h + 12, 4, addr);
                f.put(h + 16, 4, offset as u64);
                f.put(h + 20, 4, size);
                f.put(h + 32, 4, 1);
            }
        }
    }
    // ELF header.
    f.bytes[..4].copy_from_slice(b"\x7fELF");
    f.bytes[4] = if spec.is_64 { 2 } else { 1 };
    f.bytes[5] = if spec.big_endian { 2 } else { 1 };
    f.bytes[6] = 1; // EV_CURRENT
    let machine = match (spec.is_64, spec.big_endian) {
        (true, false) => 62, // x86-64
        (false, false) => 3, // i386
        (true, true) => 21,  // ppc64
        (false, true) => 20, // ppc
    };
    f.put(16, 2, 2); // ET_EXEC
    f.put(18, 2, machine);
    f.put(20, 4, 1);
    let (phnum, shnum, shstrndx) = match (spec.with_sections, spec.extended_numbering) {
        (true, false) => (1, 3, 2),
        (true, true) => (0xffff, 0, 0xffff),
        (false, _) => (1, 0, 0),
    };
    let w = if spec.is_64 { 8 } else { 4 };
    f.put(24, w, DATA_VADDR); // e_entry: anywhere
    f.put(24 + w, w, ehsize as u64); // e_phoff: right after the header
    f.put(24 + 2 * w, w, shoff as u64);
    let at = 24 + 3 * w + 4; // after e_flags
    for (i, v) in [ehsize, phentsize, phnum, shentsize, shnum, shstrndx]
        .into_iter()
        .enumerate()
    {
        f.put(at + 2 * i, 2, v as u64);
    }
    // One PT_LOAD, read-write, mapping the data.
    let (ph, len) = (ehsize, data.bytes.len() as u64);
    f.put(ph, 4, 1);
    if spec.is_64 {
        f.put(ph + 4, 4, 6);
        for (field, v) in [
            (8, DATA_OFFSET as u64),
            (16, DATA_VADDR),
            (24, DATA_VADDR),
            (32, len),
            (40, len),
            (48, 0x1000),
        ] {
            f.put(ph + field, 8, v);
        }
    } else {
        for (field, v) in [
            (4, DATA_OFFSET as u64),
            (8, DATA_VADDR),
            (12, DATA_VADDR),
            (16, len),
            (20, len),
            (24, 6),
            (28, 0x1000),
        ] {
            f.put(ph + field, 4, v);
        }
    }
    f.bytes
}

fn wrapped_modinfo() -> Vec<u8> {
    [&SENTINEL_START[..], MODINFO.as_bytes(), &SENTINEL_END[..]].concat()
}

fn all_specs() -> Vec<Spec> {
    let mut specs = Vec::new();
    for is_64 in [true, false] {
        for big_endian in [false, true] {
            for with_sections in [true, false] {
                specs.push(Spec {
                    is_64,
                    big_endian,
                    with_sections,
                    extended_numbering: false,
                });
            }
        }
    }
    specs
}

#[test]
fn pointer_format_is_read_in_every_class_and_byte_order() {
    let (go119, go127) = (GoToolchain::go119(), GoToolchain::go127());
    let dir = TempDir::new("handmade");
    for spec in all_specs() {
        let elf = make_elf(spec, VERSION.as_bytes(), &wrapped_modinfo(), |_, _| {});
        assert!(elf.len() < 1024, "{spec:?}: {} bytes", elf.len());
        let info = read_build_info(&elf)
            .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
            .unwrap_or_else(|| panic!("{spec:?}: not recognised"));
        // The values written into the file.
        assert_eq!(info.format, BuildInfoFormat::Pointer, "{spec:?}");
        assert_eq!(info.go_version, VERSION, "{spec:?}");
        assert_eq!(
            info.main_module.as_deref(),
            Some("memlens.dev/old/cmd/old"),
            "{spec:?}"
        );
        assert_eq!(
            info.module_path.as_deref(),
            Some("memlens.dev/old"),
            "{spec:?}"
        );
        assert_eq!(
            info.main_module_version.as_deref(),
            Some("v1.0.0"),
            "{spec:?}"
        );
        assert!(info.settings.is_empty(), "{spec:?}");
        assert_eq!(info.deps.len(), 1, "{spec:?}");
        assert_eq!(info.deps[0].path, "golang.org/x/sys");
        assert_eq!(info.deps[0].sum.as_deref(), Some("h1:xyz="));

        // Go's own reader agrees (Go 1.27 needs the section; Go 1.19 scans).
        let go = if spec.with_sections { &go127 } else { &go119 };
        let path = write_executable(&dir, "handmade", &elf);
        let reference = go_version_m(&go.go_binary, &path)
            .unwrap_or_else(|| panic!("{spec:?}: {} says not Go", go.version));
        assert_matches_go(&format!("{spec:?}"), &info, &reference);
    }
}

#[test]
fn pointer_format_errors_name_what_is_wrong() {
    for spec in all_specs() {
        let modinfo = wrapped_modinfo();
        let build = |patch: &dyn Fn(&mut Vec<u8>, usize)| {
            make_elf(spec, VERSION.as_bytes(), &modinfo, patch)
        };
        let err = |elf: Vec<u8>| read_build_info(&elf).unwrap_err();
        let be = spec.big_endian;
        let put = move |d: &mut Vec<u8>, at: usize, p: usize, v: u64| {
            let mut b = v.to_le_bytes()[..p].to_vec();
            if be {
                b.reverse();
            }
            d[at..at + p].copy_from_slice(&b);
        };

        // The version pointer points nowhere.
        let e = err(build(&|d, p| put(d, 16, p, 0x10)));
        assert!(
            matches!(e, BuildInfoError::UnmappedAddress { vaddr: 0x10, .. }),
            "{spec:?}: {e}"
        );
        assert!(
            e.to_string()
                .contains("Go string header at virtual address 0x10"),
            "{e}"
        );
        // The module info length is far too large.
        let e = err(build(&|d, p| put(d, 32 + 3 * p, p, 0x7fff_ffff)));
        assert!(
            matches!(
                e,
                BuildInfoError::TooLong {
                    what: "module info string",
                    ..
                }
            ),
            "{spec:?}: {e}"
        );
        // The module info runs past the end of the segment.
        let e = err(build(&|d, p| put(d, 32 + 3 * p, p, 4096)));
        assert!(
            matches!(
                e,
                BuildInfoError::UnmappedAddress {
                    what: "module info string",
                    ..
                }
            ),
            "{e}"
        );
        // An impossible pointer size.
        let e = err(build(&|d, _| d[14] = 3));
        assert!(
            matches!(e, BuildInfoError::BadPointerSize(3)),
            "{spec:?}: {e}"
        );
        // An empty version.
        let e = err(build(&|d, p| put(d, 32 + p, p, 0)));
        assert!(
            matches!(e, BuildInfoError::EmptyGoVersion { .. }),
            "{spec:?}: {e}"
        );
    }
}

#[test]
fn module_info_without_sentinels_is_no_module_info_as_in_go() {
    let spec = Spec {
        is_64: true,
        big_endian: false,
        with_sections: true,
        extended_numbering: false,
    };
    let elf = make_elf(spec, VERSION.as_bytes(), MODINFO.as_bytes(), |_, _| {});
    let info = read_build_info(&elf).unwrap().unwrap();
    assert_eq!(info.go_version, VERSION);
    assert_eq!((info.main_module, info.module_path), (None, None));
    assert!(info.deps.is_empty());
}

/// No reference from Go here: its debug/elf accepts the extended form only for
/// counts of 0xff00 and more, which a file of a few hundred bytes cannot have.
#[test]
fn extended_numbering_in_section_0_is_followed() {
    for (is_64, big_endian) in [(true, false), (false, true)] {
        let spec = Spec {
            is_64,
            big_endian,
            with_sections: true,
            extended_numbering: true,
        };
        let elf = make_elf(spec, VERSION.as_bytes(), &wrapped_modinfo(), |_, _| {});
        let info = read_build_info(&elf)
            .unwrap()
            .expect("found through section 0");
        assert_eq!(info.go_version, VERSION, "{spec:?}");
        assert_eq!(
            info.module_path.as_deref(),
            Some("memlens.dev/old"),
            "{spec:?}"
        );
        // Without section 0's section count there is no section table to
        // search, and the build info is found by the segment scan.
        let (shoff, count_at) = if is_64 {
            (
                u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap()) as usize,
                32,
            )
        } else {
            (
                u32::from_be_bytes(elf[0x20..0x24].try_into().unwrap()) as usize,
                20,
            )
        };
        let mut broken = elf.clone();
        let width = if is_64 { 8 } else { 4 };
        broken[shoff + count_at..shoff + count_at + width].fill(0);
        let found = read_build_info(&broken).unwrap();
        assert_eq!(
            found.map(|i| i.go_version),
            Some(VERSION.to_string()),
            "{spec:?}: found by the segment scan"
        );
    }
}
