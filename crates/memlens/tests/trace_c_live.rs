//! `memlens trace` on a C program stripped of `.symtab` but built with `-g`
//! (`workloads/c/dwarf_faulter.c`, built by the testkit): its own functions,
//! named from DWARF alone, head its fault stacks, and the faults counted match
//! the program's own count of the pages it wrote.
//!
//! The program prints READY and waits for a line on stdin before it faults, and
//! exits after its last round: memlens attaches before the first fault and the
//! trace ends on its own when the pid exits, so the window holds every fault of
//! the loop whatever the load on the machine.
//!
//! Needs root (BPF) and clang at build time; with CI=true nothing skips.

#[path = "common/trace.rs"]
mod trace;

use memlens_testkit::{dwarf_c_program, ChildGuard, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use trace::{can_run, event, Trace, ONE_TRACE};

/// 16 MiB a round, 32 rounds: 131,072 page faults in the loop.
const MIB: u64 = 16;
const ROUNDS: u64 = 32;

#[test]
fn c_program_without_symtab_is_named_from_dwarf() {
    if !can_run() {
        return;
    }
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let program = dwarf_c_program();
    let mut child = Command::new(&program.without_symtab)
        .args([MIB.to_string(), ROUNDS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start dwarf_faulter");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let guard = ChildGuard(child);
    let mut line = String::new();
    stdout.read_line(&mut line).expect("READY line");
    assert!(line.starts_with("READY "), "dwarf_faulter said {line:?}");
    let pid = guard.pid();

    let dir = TempDir::new("trace-c");
    let trace = Trace::attach(pid, &dir);
    writeln!(stdin, "go").expect("start the loop");
    line.clear();
    stdout.read_line(&mut line).expect("DONE line");
    let pages: u64 = line
        .trim()
        .strip_prefix("DONE faults=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("dwarf_faulter said {line:?}"));
    assert_eq!(pages, MIB * 256 * ROUNDS, "the program's own count");
    let report = trace.finish(false, "dwarf_faulter");

    let faults = event(&report, pid, "faults");
    let counted = faults["events"].as_u64().unwrap();
    // The loop's faults plus start-up and exit (libc, stdio): a few hundred.
    assert!(
        counted >= pages && counted < pages + 2000,
        "{counted} faults counted, the loop wrote {pages} pages"
    );
    let stacks = faults["stacks"].as_array().expect("fault stacks");
    let top = &stacks[0];
    let frames: Vec<&str> = top["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Frames are listed outermost first.
    assert_eq!(
        frames.last(),
        Some(&"dwarf_touch_pages"),
        "top fault stack: {frames:?}"
    );
    assert!(
        frames.contains(&"main"),
        "main missing from the top fault stack: {frames:?}"
    );
    let share = top["events_estimated"].as_f64().unwrap() / counted as f64;
    assert!(
        share > 0.9,
        "the touch loop holds {share:.2} of the faults: {stacks:#?}"
    );
}
