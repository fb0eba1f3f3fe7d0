//! Separate debug files on a real C program (`workloads/c/dwarf_faulter.c`,
//! built with `-g`): its symbols moved out with `objcopy --only-keep-debug`,
//! the binary stripped of everything (`strip --strip-all`) and linked to
//! them with `objcopy --add-gnu-debuglink`. Under a temporary root, the
//! debug file is found by the binary's build id (as `readelf -n` prints it)
//! and by its debuglink, and the functions are named at the addresses `nm`
//! gives in the unstripped build; not found, or with a CRC that does not
//! match, nothing is named.

use memlens_testkit::{dwarf_c_program, TempDir};
use memlens_trace::debuginfo;
use memlens_trace::elf::Elf;
use memlens_trace::symbolize::BinarySymbols;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run binutils");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(address, name)` of the text symbols `nm` lists.
fn nm_text_symbols(binary: &Path) -> Vec<(u64, String)> {
    run(Command::new("nm").arg(binary))
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            matches!(kind, "T" | "t")
                .then(|| Some((u64::from_str_radix(addr, 16).ok()?, name.to_string())))?
        })
        .collect()
}

/// The build id `readelf -n` prints, in hex.
fn readelf_build_id(binary: &Path) -> String {
    run(Command::new("readelf").arg("-n").arg(binary))
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .expect("readelf -n shows a build id (gcc links with --build-id)")
}

/// Asserts the three functions are named (or, `named` false, not) at nm's
/// addresses of the unstripped build.
fn check_names(symbols: &BinarySymbols, stripped: &[u8], reference: &Path, named: bool) {
    let elf = Elf::parse(stripped).unwrap();
    let expected = nm_text_symbols(reference);
    for name in ["main", "dwarf_fault_round", "dwarf_touch_pages"] {
        let (addr, _) = expected
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("nm lists no {name}"));
        let offset = elf
            .segments
            .iter()
            .find(|s| *addr >= s.vaddr && *addr - s.vaddr < s.filesz)
            .map(|s| s.offset + (addr - s.vaddr))
            .expect("address in a PT_LOAD segment");
        let frames = symbols.frames_at_offset(offset + 4);
        if named {
            assert_eq!(frames, [name], "{name} at {addr:#x}");
        } else {
            assert!(
                frames.is_empty(),
                "{name} named without its debug file: {frames:?}"
            );
        }
    }
}

#[test]
fn a_stripped_binary_is_named_from_its_debug_file_by_build_id_and_by_debuglink() {
    let program = dwarf_c_program();
    let dir = TempDir::new("debug-file");
    let full = dir.join("full");
    std::fs::copy(&program.with_symtab, &full).unwrap();
    let debug = dir.join("dwarf_faulter.debug");
    run(Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&full)
        .arg(&debug));
    let stripped = dir.join("dwarf_faulter");
    run(Command::new("strip")
        .args(["--strip-all", "-o"])
        .arg(&stripped)
        .arg(&full));
    run(Command::new("objcopy")
        .arg(format!("--add-gnu-debuglink={}", debug.display()))
        .arg(&stripped));
    let bytes = std::fs::read(&stripped).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    assert!(elf.section(".symtab").is_none() && elf.section(".debug_info").is_none());
    let hex: String = elf
        .build_id()
        .expect("build id")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, readelf_build_id(&stripped));
    let debug_bytes = std::fs::read(&debug).unwrap();
    assert_eq!(
        elf.debuglink(),
        Some((
            "dwarf_faulter.debug".to_string(),
            debuginfo::crc32(&debug_bytes)
        ))
    );
    // Where the binary is said to live in its (pretend) root.
    let binary = "/opt/app/dwarf_faulter";

    // Nothing under the root: no debug file, no names.
    let empty = dir.join("root-empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(debuginfo::find(&empty, binary, &elf).is_none());
    check_names(&BinarySymbols::from_bytes(&bytes), &bytes, &full, false);

    // By build id.
    let by_id = dir.join("root-build-id");
    let place = by_id
        .join("usr/lib/debug/.build-id")
        .join(&hex[..2])
        .join(format!("{}.debug", &hex[2..]));
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::copy(&debug, &place).unwrap();
    let found = debuginfo::find(&by_id, binary, &elf).expect("found by build id");
    check_names(
        &BinarySymbols::with_debug_file(&bytes, Some(&found)),
        &bytes,
        &full,
        true,
    );

    // By debuglink, in DIR/.debug/.
    let by_link = dir.join("root-debuglink");
    let place = by_link.join("opt/app/.debug/dwarf_faulter.debug");
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::copy(&debug, &place).unwrap();
    let found = debuginfo::find(&by_link, binary, &elf).expect("found by debuglink");
    check_names(
        &BinarySymbols::with_debug_file(&bytes, Some(&found)),
        &bytes,
        &full,
        true,
    );

    // A file of that name whose CRC differs is not its debug file.
    let mut other = debug_bytes.clone();
    let last = other.len() - 1;
    other[last] ^= 0xff;
    std::fs::write(&place, &other).unwrap();
    assert!(debuginfo::find(&by_link, binary, &elf).is_none());
}
