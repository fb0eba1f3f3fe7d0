//! `memlens maps` against the live map-bloat workload built with Go 1.19
//! (classic hmap), 1.24 (the first Swiss tables), 1.25 (DWARF 5) and 1.27
//! (Swiss tables): the length and capacity memlens
//! reads from outside (DWARF + /proc/PID/mem) must equal what the workload
//! printed from its own header through unsafe (`MAP_HEADER`, workloads/
//! mapheader.go, written from the runtime sources, not from DWARF), before and
//! after it deletes most entries; and the capacity must not shrink. A second
//! map, two fields deep in a package-level struct, checks the field paths.
//!
//! Timing: the workload waits `--shrink-after` (30 s) between `MAP_FULL` and
//! the deletes; memlens reads the full map in well under a second (0.3 s for a
//! debug build here), so even with a loaded 2-core machine slowing it tenfold
//! the read ends long before the deletes start. The test checks that no
//! `MAP_SHRUNK` line appeared by the end of the read, so an overlap fails
//! loudly instead of passing by luck.

use memlens_testkit::{GoToolchain, WorkloadSpec};
use serde_json::Value;
use std::time::Duration;

#[path = "common/cli.rs"]
mod cli;
use cli::{memlens_json, memlens_refuses};

const VARIABLE: &str = "main.bloatedMap";
/// A map two fields deep in a package-level struct, filled with KEEP entries.
const FIELD_PATH: &str = "main.mapHolder.inner.keys";
const ENTRIES: u64 = 200_000;
const KEEP: u64 = 1_000;

/// `len=` and `capacity=` of a `MAP_HEADER` line.
fn header_numbers(line: &str) -> (u64, u64) {
    let field = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("{key} in {line:?}: {e}"))
    };
    (field("len="), field("capacity="))
}

/// memlens's row for the workload's map `path`.
fn memlens_row(pid: i32, path: &str) -> Value {
    let report = memlens_json(&["maps", "--pid", &pid.to_string(), "--json"]);
    report["maps"]
        .as_array()
        .expect("maps is an array")
        .iter()
        .find(|m| m["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {report:#}"))
        .clone()
}

fn check(spec: WorkloadSpec, layout: &str) {
    let w = spec
        .arg(format!("--map-entries={ENTRIES}"))
        .arg(format!("--map-keep={KEEP}"))
        .arg("--shrink-after=30s")
        .arg("--duration=120s")
        .start();
    let wait = Duration::from_secs(90);
    w.wait_for_line("MAP_FULL", wait);
    let prefix = format!("MAP_HEADER var={VARIABLE} ");
    let full_line = w.wait_for_line(&prefix, wait);
    let (full_len, full_capacity) = header_numbers(&full_line);
    assert_eq!(full_len, ENTRIES, "{full_line}");
    assert!(
        full_line.ends_with(&format!("layout={layout}")),
        "{full_line}"
    );

    let full = memlens_row(w.pid(), VARIABLE);
    assert!(
        !w.stdout_lines().iter().any(|l| l.starts_with("MAP_SHRUNK")),
        "the deletes began before memlens finished reading the full map"
    );
    assert_eq!(full["layout"], layout, "{full:#}");
    assert_eq!(full["type"], "map[int64][64]uint8", "{full:#}");
    assert_eq!(
        full["length"], full_len,
        "full map: {full:#} vs {full_line}"
    );
    assert_eq!(
        full["capacity_slots"], full_capacity,
        "full map: {full:#} vs {full_line}"
    );
    assert_eq!(full["consistent"], true, "{full:#}");

    let field_line = w.wait_for_line(&format!("MAP_HEADER var={FIELD_PATH} "), wait);
    let field = memlens_row(w.pid(), FIELD_PATH);
    let (field_len, field_capacity) = header_numbers(&field_line);
    assert_eq!(field_len, KEEP, "{field_line}");
    assert_eq!(field["length"], field_len, "{field:#} vs {field_line}");
    assert_eq!(
        field["capacity_slots"], field_capacity,
        "{field:#} vs {field_line}"
    );

    w.wait_for_line("MAP_SHRUNK", wait);
    let shrunk_line = w
        .stdout_lines()
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .nth(1);
    let shrunk_line = match shrunk_line {
        Some(l) => l,
        None => {
            w.wait_for_line("SETUP_DONE", wait);
            w.stdout_lines()
                .into_iter()
                .filter(|l| l.starts_with(&prefix))
                .nth(1)
                .expect("a second MAP_HEADER before SETUP_DONE")
        }
    };
    let (shrunk_len, shrunk_capacity) = header_numbers(&shrunk_line);
    assert_eq!(shrunk_len, KEEP, "{shrunk_line}");
    let shrunk = memlens_row(w.pid(), VARIABLE);
    assert_eq!(
        shrunk["length"], shrunk_len,
        "after deletes: {shrunk:#} vs {shrunk_line}"
    );
    assert_eq!(
        shrunk["capacity_slots"], shrunk_capacity,
        "after deletes: {shrunk:#} vs {shrunk_line}"
    );
    assert_eq!(
        shrunk["capacity_slots"], full["capacity_slots"],
        "a Go map never shrinks: capacity after the deletes must equal the full one"
    );
}

#[test]
fn go119_classic_map_length_and_capacity_match_the_workload() {
    check(
        WorkloadSpec::new(&GoToolchain::go119(), "map-bloat"),
        "classic",
    );
}

#[test]
fn go127_swiss_map_length_and_capacity_match_the_workload() {
    check(
        WorkloadSpec::new(&GoToolchain::go127(), "map-bloat"),
        "swiss",
    );
}

#[test]
fn go127_pie_build_is_read_at_its_load_address() {
    check(
        WorkloadSpec::new(&GoToolchain::go127(), "map-bloat").pie(),
        "swiss",
    );
}

#[test]
fn stripped_binary_is_one_clear_line() {
    let w = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--live-mib=1")
        .arg("--duration=60s")
        .stripped()
        .start();
    w.wait_for_line("READY", Duration::from_secs(60));
    let line = memlens_refuses(&["maps", "--pid", &w.pid().to_string()]);
    assert!(line.contains("no DWARF"), "{line}");
}

#[test]
fn exited_pid_is_one_clear_line() {
    // Reading a process that exits while its maps are read is covered with
    // bytes (gomem's layout tests: a read failing as an exit mid-map); here
    // the real kernel path: the pid's /proc entry and memory are gone.
    let mut w = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--live-mib=1")
        .arg("--duration=60s")
        .start();
    w.wait_for_line("READY", Duration::from_secs(60));
    let pid = w.pid();
    w.kill();
    let line = memlens_refuses(&["maps", "--pid", &pid.to_string()]);
    assert!(line.contains(&format!("process {pid}")), "{line}");
}

#[test]
fn go124_swiss_map_length_and_capacity_match_the_workload() {
    check(
        WorkloadSpec::new(&GoToolchain::go124(), "map-bloat"),
        "swiss",
    );
}

#[test]
fn go125_swiss_map_dwarf5_length_and_capacity_match_the_workload() {
    check(
        WorkloadSpec::new(&GoToolchain::go125(), "map-bloat"),
        "swiss",
    );
}
