//! DWARF function names on a real C program (`workloads/c/dwarf_faulter.c`,
//! built with `-g` and stripped of `.symtab`), checked against `nm` (binutils)
//! on the unstripped build: every function nm lists in `.text` is named the
//! same at its address from the DWARF alone.

use memlens_testkit::dwarf_c_program;
use memlens_trace::elf::Elf;
use memlens_trace::symbolize::BinarySymbols;
use std::process::Command;

/// `(address, name)` of the text symbols (`T`/`t`) `nm` lists.
fn nm_text_symbols(binary: &std::path::Path) -> Vec<(u64, String)> {
    let out = Command::new("nm").arg(binary).output().expect("run nm");
    assert!(out.status.success(), "nm {}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            matches!(kind, "T" | "t")
                .then(|| Some((u64::from_str_radix(addr, 16).ok()?, name.to_string())))?
        })
        .collect()
}

#[test]
fn c_functions_are_named_from_dwarf_without_symtab() {
    let program = dwarf_c_program();
    let bytes = std::fs::read(&program.without_symtab).expect("read stripped build");
    let elf = Elf::parse(&bytes).expect("ELF");
    assert!(elf.section(".symtab").is_none(), "strip left .symtab");
    assert!(elf.section(".debug_info").is_some(), "strip removed DWARF");
    let symbols = BinarySymbols::from_bytes(&bytes);

    let expected = nm_text_symbols(&program.with_symtab);
    let ours: Vec<&str> = ["main", "dwarf_fault_round", "dwarf_touch_pages"].to_vec();
    for name in ours {
        let (addr, _) = expected
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("nm lists no {name}: {expected:?}"));
        let offset = elf
            .segments
            .iter()
            .find(|s| *addr >= s.vaddr && *addr - s.vaddr < s.filesz)
            .map(|s| s.offset + (addr - s.vaddr))
            .expect("address in a PT_LOAD segment");
        // The entry and a few bytes in both name the function.
        for delta in [0, 4] {
            assert_eq!(
                symbols.frames_at_offset(offset + delta),
                [name],
                "{name} at {:#x}",
                addr + delta
            );
        }
    }
}
