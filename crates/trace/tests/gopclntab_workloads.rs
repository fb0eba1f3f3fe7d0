//! `.gopclntab` names checked against `go tool nm` (the Go toolchain's own
//! reading of the symbol table) on the workload program built by Go 1.19 and
//! Go 1.27, and on a stripped copy (no symbol table: only `.gopclntab` left).

use memlens_testkit::{stripped_workload_binary, workload_binary, GoToolchain};
use memlens_trace::elf::Elf;
use memlens_trace::GoFuncs;
use std::process::Command;

/// A name as both sides can agree on: nm adds `.abi0` to assembly functions;
/// the two spell generic type arguments differently (Go 1.19's table writes
/// `[...]`, nm and Go 1.27's table the shapes), so they become `[...]`.
fn pclntab_spelling(nm_name: &str) -> String {
    let name = nm_name.strip_suffix(".abi0").unwrap_or(nm_name);
    let mut out = String::new();
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    out.push_str("[...]");
                }
                depth += 1;
            }
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `(address, name)` of every text symbol `go tool nm` lists.
fn nm_text_symbols(toolchain: &GoToolchain, binary: &std::path::Path) -> Vec<(u64, String)> {
    let out = Command::new(&toolchain.go_binary)
        .args(["tool", "nm"])
        .arg(binary)
        .output()
        .expect("go tool nm");
    assert!(
        out.status.success(),
        "go tool nm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
            (kind == "T" || kind == "t").then(|| {
                (
                    u64::from_str_radix(addr, 16).ok().unwrap_or(0),
                    pclntab_spelling(name),
                )
            })
        })
        .collect()
}

fn funcs_of(path: &std::path::Path) -> GoFuncs {
    let bytes = std::fs::read(path).expect("read binary");
    let elf = Elf::parse(&bytes).expect("ELF");
    GoFuncs::from_elf(&elf, &bytes).expect(".gopclntab")
}

fn check(toolchain: GoToolchain, layout: &str) {
    let binary = workload_binary(&toolchain);
    let funcs = funcs_of(&binary);
    assert_eq!(funcs.layout, layout, "{}", toolchain.name);
    let symbols = nm_text_symbols(&toolchain, &binary);
    // Every function the table names must sit at the address nm gives it; nm
    // also lists a few markers that are no function (runtime.text, etext).
    let mut matched = 0;
    let mut mismatched = Vec::new();
    for (addr, name) in &symbols {
        match funcs.lookup(*addr) {
            Some(found) if &pclntab_spelling(&found) == name => matched += 1,
            Some(found) => mismatched.push(format!("{addr:#x}: nm {name}, pclntab {found}")),
            None => {}
        }
    }
    assert!(
        matched >= funcs.len() * 95 / 100,
        "{}: {matched} of {} functions matched nm; mismatches: {:?}",
        toolchain.name,
        funcs.len(),
        &mismatched[..mismatched.len().min(10)]
    );
    // Different names at one address are aliases nm lists too; allow a handful.
    assert!(
        mismatched.len() * 100 <= symbols.len(),
        "{}: {:?}",
        toolchain.name,
        &mismatched[..mismatched.len().min(10)]
    );
    let leak = symbols
        .iter()
        .find(|(_, n)| n == "main.retainLeakChunk")
        .expect("nm lists main.retainLeakChunk");
    assert_eq!(
        funcs.lookup(leak.0 + 1).as_deref(),
        Some("main.retainLeakChunk")
    );
    assert_eq!(funcs.entry_of("main.retainLeakChunk"), Some(leak.0));

    // Stripped: no .symtab, same names from .gopclntab.
    let stripped = stripped_workload_binary(&toolchain);
    let stripped_bytes = std::fs::read(&stripped).expect("read stripped");
    let stripped_elf = Elf::parse(&stripped_bytes).expect("ELF");
    assert!(
        stripped_elf.section(".symtab").is_none(),
        "strip left .symtab"
    );
    assert!(stripped_elf.function_symbols().is_empty());
    let stripped_funcs = funcs_of(&stripped);
    for (addr, _) in symbols.iter().step_by(7) {
        assert_eq!(
            stripped_funcs.lookup(*addr),
            funcs.lookup(*addr),
            "{addr:#x}"
        );
    }
}

#[test]
fn go119_names_match_go_tool_nm_also_stripped() {
    check(GoToolchain::go119(), "go1.18");
}

#[test]
fn go127_names_match_go_tool_nm_also_stripped() {
    check(GoToolchain::go127(), "go1.20");
}

/// Every instruction of `main.retainLeakChunk`, with the source line `go tool
/// objdump` gives it (the innermost inlined position).
fn objdump_lines(toolchain: &GoToolchain, binary: &std::path::Path) -> Vec<(u64, u32)> {
    let out = Command::new(&toolchain.go_binary)
        .args(["tool", "objdump", "-s", "^main.retainLeakChunk$"])
        .arg(binary)
        .output()
        .expect("go tool objdump");
    assert!(
        out.status.success(),
        "go tool objdump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let line = f.next()?.strip_prefix("modes_heap.go:")?.parse().ok()?;
            let addr = u64::from_str_radix(f.next()?.strip_prefix("0x")?, 16).ok()?;
            Some((addr, line))
        })
        .collect()
}

/// `main.newChunk` (modes_heap.go lines 36-40) and `main.touchPages` (26-33)
/// are inlined into `main.retainLeakChunk` (97-102): each instruction's frames
/// must name the functions its source line belongs to, innermost first.
fn check_inlined(toolchain: GoToolchain, stripped: bool) {
    let binary = if stripped {
        stripped_workload_binary(&toolchain)
    } else {
        workload_binary(&toolchain)
    };
    let funcs = funcs_of(&binary);
    let lines = objdump_lines(&toolchain, &workload_binary(&toolchain));
    assert!(
        lines.len() > 20,
        "{}: objdump gave {} lines",
        toolchain.name,
        lines.len()
    );
    let (mut inlined, mut wrong) = (0, Vec::new());
    for (addr, line) in lines {
        let expected: &[&str] = match line {
            26..=33 => &["main.touchPages", "main.newChunk", "main.retainLeakChunk"],
            36..=40 => &["main.newChunk", "main.retainLeakChunk"],
            _ => &["main.retainLeakChunk"],
        };
        let frames = funcs.frames(addr);
        if frames != expected {
            wrong.push(format!("{addr:#x} line {line}: {frames:?}"));
        }
        inlined += usize::from(expected.len() > 1);
    }
    assert!(
        inlined > 5,
        "{}: too few inlined instructions ({inlined})",
        toolchain.name
    );
    assert!(
        wrong.is_empty(),
        "{} (stripped: {stripped}): {wrong:#?}",
        toolchain.name
    );
}

#[test]
fn go119_inlined_calls_expand_as_objdump_places_them() {
    check_inlined(GoToolchain::go119(), false);
}

#[test]
fn go127_inlined_calls_expand_as_objdump_places_them_also_stripped() {
    check_inlined(GoToolchain::go127(), false);
    check_inlined(GoToolchain::go127(), true);
}
