//! `memlens maps` against the live map-bloat workload built with Go 1.19
//! (classic hmap), 1.24 (the first Swiss tables), 1.25 (DWARF 5) and 1.27
//! (Swiss tables): the length and capacity memlens
//! reads from outside (DWARF + /proc/PID/mem) must equal what the workload
//! printed from its own header through unsafe (`MAP_HEADER`, workloads/
//! mapheader.go, written from the runtime sources, not from DWARF), before and
//! after it deletes most entries; and the capacity must not shrink. The maps
//! only reachable through the program's data (two fields deep in a struct,
//! behind a pointer whose struct points back to itself, in an array, in a
//! slice, as values of maps under string and integer keys; `main.reach*` in
//! workloads/modes_leak.go) are checked the same way, by path; on classic maps
//! a map caught growing gives its old and evacuated buckets, and on Swiss maps
//! the tombstones after the deletes equal the workload's own count of deleted
//! control bytes.
//!
//! Timing: the workload waits `--shrink-after` (30 s) between `MAP_FULL` and
//! the deletes; memlens reads the full map in well under a second (0.3 s for a
//! debug build here), so even with a loaded 2-core machine slowing it tenfold
//! the read ends long before the deletes start. The test checks that no
//! `MAP_SHRUNK` line appeared by the end of the read, so an overlap fails
//! loudly instead of passing by luck.

use memlens_testkit::{workload_binary, GoToolchain, TempDir, WorkloadSpec};
use serde_json::Value;
use std::time::Duration;

#[path = "common/cli.rs"]
mod cli;
use cli::{memlens_json, memlens_refuses};

const VARIABLE: &str = "main.bloatedMap";
/// The maps only reachable through the program's data whose headers the
/// workload prints before `MAP_FULL` (all must be there).
const REACHED: [&str; 10] = [
    "main.mapHolder.inner.keys",
    "main.reachPtr.counts",
    "main.reachArray[1]",
    "main.reachSlice[0]",
    "main.reachSlice[2]",
    "main.reachNested[\"alpha\"]",
    "main.reachNested[\"beta\"]",
    "main.reachByID[7].counts",
    "main.reachGrowing",
    "main.reachSlice[1]",
];
const ENTRIES: u64 = 200_000;
const KEEP: u64 = 1_000;

/// The number after `key` (`len=`) in a `MAP_HEADER` line, if there.
fn header_field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("{key} in {line:?}: {e}"))
        })
}

/// `len=` and `capacity=` of a `MAP_HEADER` line.
fn header_numbers(line: &str) -> (u64, u64) {
    let field = |key: &str| -> u64 {
        header_field(line, key).unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    (field("len="), field("capacity="))
}

/// memlens's row for the workload's map `path`.
fn memlens_row(pid: i32, path: &str) -> Value {
    let report = memlens_json(&["maps", "--pid", &pid.to_string(), "--json"]);
    row_of(&report, path)
}

/// The row of `path` in a `memlens maps --json` report.
fn row_of(report: &Value, path: &str) -> Value {
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

    // The reached maps: written once before MAP_FULL, unchanged since.
    let report = memlens_json(&["maps", "--pid", &w.pid().to_string(), "--json"]);
    assert_eq!(report["truncated"], false, "{report:#}");
    for path in REACHED {
        let line = w.wait_for_line(&format!("MAP_HEADER var={path} "), wait);
        let row = row_of(&report, path);
        let (len, capacity) = header_numbers(&line);
        assert!(len > 0, "{line}");
        assert_eq!(row["length"], len, "{row:#} vs {line}");
        assert_eq!(row["capacity_slots"], capacity, "{row:#} vs {line}");
        if layout == "classic" {
            assert_eq!(
                row["old_buckets"],
                header_field(&line, "old_buckets=").expect("old_buckets"),
                "{row:#} vs {line}"
            );
            assert_eq!(
                row["evacuated_buckets"],
                header_field(&line, "evacuated=").expect("evacuated"),
                "{row:#} vs {line}"
            );
        }
    }
    assert_eq!(
        header_field(
            &w.wait_for_line("MAP_HEADER var=main.mapHolder.inner.keys ", wait),
            "len="
        ),
        Some(KEEP)
    );
    if layout == "classic" {
        // 6657 entries is one past 6.5 × 1024: the insert that started the
        // growth evacuated one or two of the 1024 old buckets, and nothing
        // wrote since. The workload's own read says so; memlens agreed above.
        let growing = w.wait_for_line("MAP_HEADER var=main.reachGrowing ", wait);
        assert_eq!(
            header_field(&growing, "old_buckets="),
            Some(1024),
            "{growing}"
        );
    }

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
    if layout == "swiss" {
        // The deletes left tombstones wherever a group had no empty slot;
        // the workload counted the 0xFE control bytes itself.
        let tombstones = header_field(&shrunk_line, "tombstones=").expect("tombstones");
        assert!(tombstones > 0, "{shrunk_line}");
        assert_eq!(
            shrunk["tombstones"], tombstones,
            "{shrunk:#} vs {shrunk_line}"
        );
    }
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

/// Runs `program` with `args`, failing the test on a non-zero exit.
fn run(program: &str, args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `expect` naming the program (binutils must be installed).
trait UnwrapOrExpect<T> {
    fn unwrap_or_expect(self, program: &str) -> T;
}

impl<T> UnwrapOrExpect<T> for std::io::Result<T> {
    fn unwrap_or_expect(self, program: &str) -> T {
        self.unwrap_or_else(|e| panic!("run {program} (apt-get install binutils): {e}"))
    }
}

#[test]
fn stripped_binary_with_a_debuglink_is_read_from_its_debug_file() {
    // The workload's DWARF moved to a file beside it (objcopy --only-keep-debug),
    // the binary stripped and linked to it by name and CRC (--add-gnu-debuglink),
    // as distributions ship Go services with -dbg packages. The 1.19 build has
    // no GNU build ID, so only the debuglink can find the file.
    let dir = TempDir::new("maps-debuglink");
    let binary = dir.join("workload");
    let debug = dir.join("workload.debug");
    std::fs::copy(workload_binary(&GoToolchain::go119()), &binary).expect("copy workload");
    run(
        "objcopy",
        &[
            "--only-keep-debug".as_ref(),
            binary.as_os_str(),
            debug.as_os_str(),
        ],
    );
    run("strip", &[binary.as_os_str()]);
    run(
        "objcopy",
        &[
            format!("--add-gnu-debuglink={}", debug.display()).as_ref(),
            binary.as_os_str(),
        ],
    );
    let w = WorkloadSpec::new(&GoToolchain::go119(), "map-bloat")
        .binary(&binary)
        .arg("--map-entries=1000")
        .arg("--map-keep=100")
        .arg("--duration=60s")
        .start();
    let line = w.wait_for_line(
        "MAP_HEADER var=main.reachByID[7].counts ",
        Duration::from_secs(60),
    );
    let (len, capacity) = header_numbers(&line);
    let row = memlens_row(w.pid(), "main.reachByID[7].counts");
    assert_eq!(row["length"], len, "{row:#} vs {line}");
    assert_eq!(row["capacity_slots"], capacity, "{row:#} vs {line}");

    std::fs::remove_file(&debug).expect("remove the debug file");
    let refused = memlens_refuses(&["maps", "--pid", &w.pid().to_string()]);
    assert!(
        refused.contains("no debug file found") && refused.contains("workload.debug"),
        "{refused}"
    );
}
