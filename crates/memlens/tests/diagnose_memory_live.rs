//! Issue 8's memory detectors of `memlens diagnose` made to fire on real
//! processes (Go 1.19 and 1.27 workloads), their numbers checked against
//! sources memlens does not use:
//!
//! - `memory.rss_above_heap` from goroutine stacks: `goroutine-leak` with
//!   20 000 goroutines 100 frames deep (8 KiB stacks) → the finding names
//!   the stacks as the largest part; its figure lies between the runtime's
//!   `StackInuse` and `StackSys` read by the test from expvar before and
//!   after, and is at least 8 KiB a goroutine; RSS brackets `/proc` VmRSS.
//! - `memory.rss_above_heap` from non-Go memory: `mmap` with 100 mappings
//!   of 1600 KiB, every page written → the finding names memory outside the
//!   Go runtime; the test finds the workload's mappings in its own read of
//!   `/proc/PID/smaps` (as many as the `MAPPINGS` line says, each fully
//!   resident, as many bytes as expvar `workload.mapping_bytes`) and
//!   brackets memlens's figure with them, the binary's resident pages and
//!   the runtime's own `Sys − HeapReleased`.
//! - `vma.fragmented` (info): `mmap` with 12 000 mappings of 4 KiB; its
//!   counts, mean mapping size and largest gap against the test's own parse
//!   of `/proc/PID/maps` before and after.
//! - `vma.fragmented` (warning): `mmap --fill-address-space-mib 256` (the
//!   free address space below the stack reserved with PROT_NONE mappings,
//!   64 MiB left free at both ends of each range) → the largest gap is under
//!   1 GiB; it equals the test's parse of `/proc/PID/maps` and the
//!   workload's own `ADDRESS_SPACE_FILLED` count.
//!
//! The tests run one at a time (two shared cores); each workload stays
//! under 200 MiB RSS. `--no-profiles`: a `?debug=2` dump of 20 000 deep
//! goroutines takes seconds and adds 150 MiB to the workload.

use memlens_testkit::{http_get, GoToolchain, Workload, WorkloadSpec};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

#[path = "common/cli.rs"]
mod cli;
use cli::{diagnose, finding, findings_of};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Evidence `name` of a finding, a whole number (bytes, counts).
fn evidence(f: &Value, name: &str) -> u64 {
    cli::evidence(f, name) as u64
}

/// The runtime's memstats as the workload's expvar serves them.
fn memstats(w: &Workload) -> Value {
    let text = http_get(w.listen_addr(), "/debug/vars").expect("GET /debug/vars");
    let vars: Value = serde_json::from_str(&text).expect("expvar JSON");
    vars["memstats"].clone()
}

fn stat(m: &Value, name: &str) -> u64 {
    m[name]
        .as_u64()
        .unwrap_or_else(|| panic!("memstats.{name}"))
}

/// `VmRSS` of `/proc/PID/status`, in bytes.
fn vm_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("VmRSS in kB")
        * KIB
}

/// `lo ≤ v ≤ hi` up to `slack` either side.
fn within(v: u64, lo: u64, hi: u64, slack: u64) -> bool {
    v + slack >= lo && v <= hi + slack
}

/// The value of `name=` in a protocol line.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// The parts of the breakdown, by evidence name.
const PARTS: [&str; 4] = [
    "idle_heap_kept_bytes",
    "stacks_bytes",
    "runtime_metadata_bytes",
    "outside_runtime_bytes",
];

fn assert_largest_part(f: &Value, part: &str) {
    let v = evidence(f, part);
    for other in PARTS.iter().filter(|p| **p != part) {
        assert!(v > evidence(f, other), "{part} is not the largest: {f:#}");
    }
}

#[test]
fn goroutine_stacks_put_rss_above_the_heap() {
    let _serial = serial();
    const GOROUTINES: u64 = 20_000;
    for toolchain in GoToolchain::all() {
        let w = WorkloadSpec::new(&toolchain, "goroutine-leak")
            .arg(format!("--goroutines={GOROUTINES}"))
            .arg("--leak-depth=100")
            .arg("--duration=120s")
            .start();
        let pid = w.pid();
        let leaked = w.wait_for_line("GOROUTINES_LEAKED", Duration::from_secs(60));
        assert_eq!(leaked, format!("GOROUTINES_LEAKED {GOROUTINES}"));
        w.wait_for_line("SETUP_DONE", Duration::from_secs(60));

        let (m0, rss0) = (memstats(&w), vm_rss(pid));
        let report = diagnose(pid, "1", &["--no-profiles"]);
        let (m1, rss1) = (memstats(&w), vm_rss(pid));
        let found = findings_of(&report, pid);
        let f = finding(&found, "memory.rss_above_heap");
        assert_eq!(f["severity"], "warning", "{f:#}");
        let recommendation = f["recommendation"].as_str().expect("recommendation");
        assert!(
            recommendation.contains("goroutine stacks"),
            "{recommendation}"
        );
        assert_largest_part(f, "stacks_bytes");

        let stacks = evidence(f, "stacks_bytes");
        let inuse = stat(&m0, "StackInuse").min(stat(&m1, "StackInuse"));
        let sys = stat(&m0, "StackSys").max(stat(&m1, "StackSys"));
        let rss = evidence(f, "rss_bytes");
        println!(
            "{}: rss {} MiB (/proc {}..{} MiB), heap in use {} MiB, stacks {} MiB \
             (runtime StackInuse {} MiB .. StackSys {} MiB around it; {GOROUTINES} \
             goroutines × 8 KiB = {} MiB)",
            toolchain.name,
            rss / MIB,
            rss0 / MIB,
            rss1 / MIB,
            evidence(f, "heap_inuse_bytes") / MIB,
            stacks / MIB,
            inuse / MIB,
            sys / MIB,
            GOROUTINES * 8 * KIB / MIB
        );
        // memlens's own requests are served by goroutines whose stacks
        // count while they run: a few KiB each.
        assert!(
            within(stacks, inuse, sys, 256 * KIB),
            "stacks {stacks}, runtime {inuse}..{sys}"
        );
        // 100 frames do not fit the initial 2 KiB, nor 4 KiB.
        assert!(stacks >= GOROUTINES * 8 * KIB, "{stacks}");
        assert!(
            within(rss, rss0.min(rss1), rss0.max(rss1), MIB),
            "rss {rss}, /proc {rss0}..{rss1}"
        );
        let heap_inuse = evidence(f, "heap_inuse_bytes");
        let (h0, h1) = (stat(&m0, "HeapInuse"), stat(&m1, "HeapInuse"));
        assert!(
            within(heap_inuse, h0.min(h1), h0.max(h1), 2 * MIB),
            "heap in use {heap_inuse}, runtime {h0}..{h1}"
        );
        assert_eq!(evidence(f, "gap_bytes"), rss - heap_inuse);
    }
}

/// One mapping of `/proc/PID/smaps`: its range, size, path (empty when
/// anonymous) and resident bytes.
struct SmapsEntry {
    start: u64,
    end: u64,
    size_bytes: u64,
    path: String,
    rss_bytes: u64,
}

/// The test's own read of `/proc/PID/smaps`.
fn smaps(pid: i32) -> Vec<SmapsEntry> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read smaps");
    let mut out: Vec<SmapsEntry> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            {
                out.push(SmapsEntry {
                    start,
                    end,
                    size_bytes: end - start,
                    path: words.nth(4).unwrap_or("").to_string(),
                    rss_bytes: 0,
                });
                continue;
            }
        }
        if first == "Rss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).expect("Rss kB");
            out.last_mut().expect("Rss after a header").rss_bytes = kib * KIB;
        }
    }
    out
}

#[test]
fn non_go_mappings_put_rss_above_the_heap() {
    let _serial = serial();
    const K: u64 = 100;
    const PIECE_BYTES: u64 = 1600 * KIB;
    for toolchain in GoToolchain::all() {
        let w = WorkloadSpec::new(&toolchain, "mmap")
            .arg(format!("--mappings={K}"))
            .arg(format!("--mapping-kib={}", PIECE_BYTES / KIB))
            .arg("--duration=120s")
            .start();
        let pid = w.pid();
        let line = w.wait_for_line("MAPPINGS", Duration::from_secs(60));
        w.wait_for_line("SETUP_DONE", Duration::from_secs(60));
        let text = http_get(w.listen_addr(), "/debug/vars").expect("GET /debug/vars");
        let vars: Value = serde_json::from_str(&text).expect("expvar JSON");
        let mapping_bytes = vars["workload"]["mapping_bytes"]
            .as_u64()
            .expect("workload.mapping_bytes");
        assert_eq!(mapping_bytes, K * PIECE_BYTES, "{line}");

        // The workload's pieces: anonymous, of their exact size, one page
        // apart, every page written. A mapping the runtime makes later can
        // land right below the lowest piece (the hole under it is free space)
        // and merge with it: that one is larger, one page below the next.
        // The binary's pages are resident and outside the runtime too.
        let entries = smaps(pid);
        let page = 4 * KIB;
        let anon = || entries.iter().filter(|e| e.path.is_empty());
        let exact: Vec<&SmapsEntry> = anon().filter(|e| e.size_bytes == PIECE_BYTES).collect();
        if exact.len() as u64 == K - 1 {
            let lowest = exact.iter().map(|x| x.start).min().expect("pieces");
            let merged = anon()
                .find(|e| e.size_bytes > PIECE_BYTES && e.end + page == lowest)
                .unwrap_or_else(|| panic!("{} pieces, none merged: {line}", K - 1));
            assert!(
                merged.rss_bytes >= PIECE_BYTES,
                "a piece not fully resident"
            );
        } else {
            assert_eq!(exact.len() as u64, K, "{line}");
        }
        for e in &exact {
            assert_eq!(e.rss_bytes, PIECE_BYTES, "a piece not fully resident");
        }
        let pieces_rss = K * PIECE_BYTES;
        let file_rss: u64 = entries
            .iter()
            .filter(|e| e.path.starts_with('/'))
            .map(|e| e.rss_bytes)
            .sum();

        let (m0, rss0) = (memstats(&w), vm_rss(pid));
        let report = diagnose(pid, "1", &["--no-profiles"]);
        let (m1, rss1) = (memstats(&w), vm_rss(pid));
        let found = findings_of(&report, pid);
        let f = finding(&found, "memory.rss_above_heap");
        let recommendation = f["recommendation"].as_str().expect("recommendation");
        assert!(
            recommendation.contains("outside the Go runtime"),
            "{recommendation}"
        );
        assert_largest_part(f, "outside_runtime_bytes");
        let outside = evidence(f, "outside_runtime_bytes");
        let rss = evidence(f, "rss_bytes");
        // What the runtime holds mapped and not released: resident or not.
        let go_mapped = |m: &Value| stat(m, "Sys") - stat(m, "HeapReleased");
        let go_mapped_max = go_mapped(&m0).max(go_mapped(&m1));
        println!(
            "{}: rss {} KiB (/proc {}..{} KiB), outside the runtime {} KiB; smaps: the \
             workload's {K} mappings {} KiB resident, files {} KiB; runtime Sys − \
             HeapReleased ≤ {} KiB",
            toolchain.name,
            rss / KIB,
            rss0 / KIB,
            rss1 / KIB,
            outside / KIB,
            pieces_rss / KIB,
            file_rss / KIB,
            go_mapped_max / KIB
        );
        assert!(
            within(rss, rss0.min(rss1), rss0.max(rss1), MIB),
            "rss {rss}, /proc {rss0}..{rss1}"
        );
        // outside = RSS − (Sys − HeapReleased): at most the non-Go pages
        // (the pieces, the binary's file pages, its bss), at least them less
        // what the runtime mapped without touching.
        let non_go = pieces_rss + file_rss;
        assert!(
            outside + go_mapped_max + MIB >= non_go && outside <= non_go + 4 * MIB,
            "outside {outside}, pieces + files {non_go}, runtime mapped {go_mapped_max}"
        );
        // The runtime's untouched mappings are a few MiB against 156 MiB.
        assert!(
            outside >= mapping_bytes / 10 * 9,
            "{outside} < 90 % of {mapping_bytes}"
        );
    }
}

/// What the test reads of `/proc/PID/maps` itself: the kernel's VMA count
/// (`[vsyscall]` is none), the anonymous ones (no path, `[heap]`,
/// `[stack]`, `[anon:…]`), the mapped bytes and the largest free range
/// between consecutive mappings up to `[stack]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Maps {
    vmas: u64,
    anon_vmas: u64,
    mapped_bytes: u64,
    largest_gap_bytes: u64,
}

fn read_maps(pid: i32) -> Maps {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    let mut m = Maps {
        vmas: 0,
        anon_vmas: 0,
        mapped_bytes: 0,
        largest_gap_bytes: 0,
    };
    let mut prev_end: Option<u64> = None;
    let mut stack_seen = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let path = words.get(5).copied().unwrap_or("");
        if path == "[vsyscall]" {
            continue;
        }
        let (start, end) = words[0].split_once('-').expect("start-end");
        let start = u64::from_str_radix(start, 16).expect("hex start");
        let end = u64::from_str_radix(end, 16).expect("hex end");
        m.vmas += 1;
        m.mapped_bytes += end - start;
        if path.is_empty() || path == "[heap]" || path == "[stack]" || path.starts_with("[anon:") {
            m.anon_vmas += 1;
        }
        if !stack_seen {
            if let Some(p) = prev_end {
                m.largest_gap_bytes = m.largest_gap_bytes.max(start - p);
            }
            stack_seen = path == "[stack]";
        }
        prev_end = Some(end);
    }
    m
}

/// Checks the `vma.fragmented` evidence against the test's reads of the
/// maps before and after `memlens diagnose`.
fn check_against_maps(f: &Value, before: Maps, after: Maps) {
    let bracket = |name: &str, a: u64, b: u64, slack: u64| {
        let v = evidence(f, name);
        assert!(
            within(v, a.min(b), a.max(b), slack),
            "{name} {v}, /proc/PID/maps {a}..{b}"
        );
    };
    // The runtime may map a page or two for memlens's requests meanwhile.
    bracket("vmas", before.vmas, after.vmas, 2);
    bracket("anon_vmas", before.anon_vmas, after.anon_vmas, 2);
    bracket(
        "largest_gap_bytes",
        before.largest_gap_bytes,
        after.largest_gap_bytes,
        0,
    );
    let mean = |m: Maps| m.mapped_bytes / m.vmas;
    bracket("mean_mapping_bytes", mean(before), mean(after), 64 * KIB);
}

#[test]
fn many_small_mappings_are_fragmentation() {
    let _serial = serial();
    const K: u64 = 12_000;
    let w = WorkloadSpec::new(&GoToolchain::go119(), "mmap")
        .arg(format!("--mappings={K}"))
        .arg("--mapping-kib=4")
        .arg("--duration=120s")
        .start();
    let pid = w.pid();
    let line = w.wait_for_line("MAPPINGS", Duration::from_secs(60));
    w.wait_for_line("SETUP_DONE", Duration::from_secs(60));
    // A stray runtime mapping may fall between the workload's two counts.
    let own = field(&line, "vmas_after") - field(&line, "vmas_before");
    assert!(own.abs_diff(K) <= 2, "{line}");
    let before = read_maps(pid);
    let report = diagnose(pid, "1", &["--no-profiles"]);
    let after = read_maps(pid);
    let found = findings_of(&report, pid);
    let f = finding(&found, "vma.fragmented");
    println!(
        "go1.19 mmap {K} × 4 KiB: memlens {} VMAs, {} anonymous, mean {} B, largest gap {} GiB; \
         /proc/PID/maps {before:?} .. {after:?}",
        evidence(f, "vmas"),
        evidence(f, "anon_vmas"),
        evidence(f, "mean_mapping_bytes"),
        evidence(f, "largest_gap_bytes") >> 30
    );
    // Thousands of anonymous VMAs, but terabytes of address space free.
    assert_eq!(f["severity"], "info", "{f:#}");
    assert!(evidence(f, "anon_vmas") >= K);
    check_against_maps(f, before, after);
}

#[test]
fn a_filled_address_space_is_fragmentation() {
    let _serial = serial();
    const FILL_MIB: u64 = 256;
    for toolchain in GoToolchain::all() {
        let w = WorkloadSpec::new(&toolchain, "mmap")
            .arg("--mappings=2000")
            .arg("--mapping-kib=4")
            .arg(format!("--fill-address-space-mib={FILL_MIB}"))
            .arg("--duration=120s")
            .start();
        let pid = w.pid();
        let filled = w.wait_for_line("ADDRESS_SPACE_FILLED", Duration::from_secs(60));
        w.wait_for_line("SETUP_DONE", Duration::from_secs(60));
        let own_gap = field(&filled, "largest_gap_bytes");
        assert!(field(&filled, "reserved_bytes") > 1 << 40, "{filled}");
        let before = read_maps(pid);
        let report = diagnose(pid, "1", &["--no-profiles"]);
        let after = read_maps(pid);
        let found = findings_of(&report, pid);
        let f = finding(&found, "vma.fragmented");
        let gap = evidence(f, "largest_gap_bytes");
        println!(
            "{}: largest free range {} MiB (/proc/PID/maps {}..{} MiB, the workload's own \
             count after the fill {} MiB), {} VMAs",
            toolchain.name,
            gap / MIB,
            before.largest_gap_bytes / MIB,
            after.largest_gap_bytes / MIB,
            own_gap / MIB,
            evidence(f, "vmas")
        );
        assert_eq!(f["severity"], "warning", "{f:#}");
        assert!(gap < FILL_MIB * MIB && gap > 0, "{gap}");
        // The mmap mode maps its pieces after the fill: into a free range,
        // which can only shrink the largest.
        assert!(gap <= own_gap, "{gap} > {own_gap}");
        check_against_maps(f, before, after);
    }
}
