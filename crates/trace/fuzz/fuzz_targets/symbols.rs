//! Fuzzes the symbol readers on any bytes: `GoFuncs::parse` (a `.gopclntab`
//! from its magic on), `BinarySymbols::from_bytes` (a whole ELF file),
//! `dwarf_functions` (its `.debug_info`), its build id and debuglink, and
//! `BinarySymbols::with_debug_file` with the same bytes as its debug file.
//! Must hold: no panic, no unbounded allocation; a table that parses answers
//! lookups, and the function it names for an entry address is that entry's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memlens_trace::dwarf::dwarf_functions;
use memlens_trace::elf::Elf;
use memlens_trace::symbolize::BinarySymbols;
use memlens_trace::GoFuncs;

fuzz_target!(|data: &[u8]| {
    if let Ok(funcs) = GoFuncs::parse(data) {
        let base = funcs.text_start;
        for step in 0..64u64 {
            if let Some(name) = funcs.lookup(base.wrapping_add(step * 17)) {
                let frames = funcs.frames(base.wrapping_add(step * 17));
                assert_eq!(frames.last(), Some(&name));
                if let Some(entry) = funcs.entry_of(&name) {
                    assert!(entry <= base.wrapping_add(step * 17) || entry < base);
                }
            }
        }
    }
    if let Ok(elf) = Elf::parse(data) {
        let functions = dwarf_functions(&elf);
        assert!(functions.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(functions.iter().all(|f| f.1 > 0 && !f.2.is_empty()));
        if let Some(id) = elf.build_id() {
            assert!(!id.is_empty() && id.len() <= data.len());
        }
        if let Some((name, _crc)) = elf.debuglink() {
            assert!(!name.is_empty() && !name.contains('/'));
        }
        let with_debug = BinarySymbols::with_debug_file(data, Some(data));
        for offset in (0..data.len() as u64).step_by(101).take(32) {
            let _ = with_debug.frames_at_offset(offset);
        }
    }
    let symbols = BinarySymbols::from_bytes(data);
    for offset in (0..data.len() as u64).step_by(97).take(64) {
        let _ = symbols.frames_at_offset(offset);
    }
});
