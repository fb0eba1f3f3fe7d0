//! Fuzzes the symbol readers on any bytes: `GoFuncs::parse` (a `.gopclntab`
//! from its magic on) and `BinarySymbols::from_bytes` (a whole ELF file).
//! Must hold: no panic, no unbounded allocation; a table that parses answers
//! lookups, and the function it names for an entry address is that entry's.
#![no_main]

use libfuzzer_sys::fuzz_target;
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
    let symbols = BinarySymbols::from_bytes(data);
    for offset in (0..data.len() as u64).step_by(97).take(64) {
        let _ = symbols.frames_at_offset(offset);
    }
});
