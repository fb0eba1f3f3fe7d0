//! `memlens heap` and `memlens flame` on Go's text heap profile
//! (`/debug/pprof/heap?debug=1`, the form runbooks save with curl), fetched live
//! from the heap-leak workload built with Go 1.19 and with Go 1.27, against
//! `go tool pprof` of the same toolchain:
//!
//! - On the SAME saved text file, symbolised by pprof from the workload's
//!   binary (`go tool pprof -top BINARY FILE`): the total and every function's
//!   cum, for all four sample types. pprof's binary symboliser does not expand
//!   inlined calls (it names each address by the function whose code holds it),
//!   the text's `#` lines do, so memlens also lists the inlined ones
//!   (`memlens_testkit::compare_with_binary_symbolised` says exactly what must
//!   hold).
//! - Every function's flat and cum, the total and the order, against
//!   `go tool pprof -top` on the protobuf profile fetched between two text
//!   fetches that came back identical: all three show the same GC cycle (the
//!   profile changes only when a GC completes and its counts only grow, so two
//!   equal texts leave no room for a change in between). A GC may complete
//!   between the fetches, so the triple is fetched again until one is clean
//!   (deadline 60 s). Cleanliness depends on where GCs fall, not on speed: this
//!   workload completes several GCs a second and the three fetches take a few
//!   milliseconds, so a clean triple came within 1 to 7 tries in 10 runs at a
//!   load of 5.7 on 2 cores; the deadline allows hundreds.
//! - `memlens heap TEXT --base PROTO` of that cycle: no growth anywhere.
//! - `--base` with a second text capture 30 ticks later: growth in
//!   main.retainLeakChunk, the leaking function, with the cum growth
//!   `go tool pprof -top -base OLDER BINARY NEWER` prints.
//! - `memlens flame TEXT -o x.svg`, and `--base OLDER`: SVGs naming the leak.

use memlens_testkit::{
    compare_with_binary_symbolised, go_tool_pprof_top, http_get, http_get_bytes, GoToolchain,
    TempDir, TestCgroup, Workload, WorkloadSpec,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::{memlens, memlens_json};

const MIB: u64 = 1 << 20;
const SAMPLES: [(&str, &str); 4] = [
    ("alloc_objects", "none"),
    ("alloc_space", "B"),
    ("inuse_objects", "none"),
    ("inuse_space", "B"),
];

/// The records of a text heap profile: everything before the MemStats trailer
/// (which changes with every fetch).
fn records(text: &str) -> &str {
    text.split("\n# runtime.MemStats").next().unwrap_or(text)
}

/// Fetches text, protobuf, text until both texts are identical; returns the
/// first text and the protobuf (the same GC cycle) and how many tries it took.
fn same_cycle_pair(addr: &str) -> (String, Vec<u8>, u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tries = 0;
    loop {
        tries += 1;
        let before = http_get(addr, "/debug/pprof/heap?debug=1").unwrap();
        let proto = http_get_bytes(addr, "/debug/pprof/heap").unwrap();
        let after = http_get(addr, "/debug/pprof/heap?debug=1").unwrap();
        if records(&before) == records(&after) {
            return (before, proto, tries);
        }
        assert!(
            Instant::now() < deadline,
            "{tries} tries in 60 s, a GC completed during each"
        );
    }
}

/// Whether a record of the text heap profile `text` meets a runtime frame
/// between user frames: walking from the root, a `runtime.` frame after one
/// that is not (but the `runtime.panic*`, `runtime.reflectcall` and
/// `runtime.callN` frames pprof keeps). pprof's reading of a legacy profile
/// cuts such a stack there, with everything beneath, and memlens does as
/// pprof; the protobuf keeps the whole stack, so the two cannot match
/// exactly. Go 1.27's init of internal/godebug allocates beneath
/// `runtime.godebugNotify`, and the sampler now and then records it (a
/// soak once saw it: flat at `internal/godebug.setUpdate` in the text,
/// beneath `internal/sync.newEntryNode[...]` in the protobuf).
fn prunes_mid_stack(text: &str) -> bool {
    let kept = |name: &str| {
        name.starts_with("runtime.panic")
            || name == "runtime.reflectcall"
            || name
                .strip_prefix("runtime.call")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let crosses = |names: &[&str]| {
        let mut user = false;
        names.iter().rev().any(|name| {
            let runtime = name.starts_with("runtime.") && !kept(name);
            let cut = user && runtime;
            user |= !name.starts_with("runtime.");
            cut
        })
    };
    let mut names: Vec<&str> = Vec::new();
    for line in records(text).lines() {
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            if crosses(&names) {
                return true;
            }
            names.clear();
        } else if let Some(symbol) = line.strip_prefix("#\t0x") {
            if let Some(function) = symbol.split('\t').nth(1) {
                names.push(
                    function
                        .rsplit_once("+0x")
                        .map_or(function, |(name, _)| name),
                );
            }
        }
    }
    crosses(&names)
}

/// The number of the last `TICK n` line the workload printed.
fn last_tick(workload: &Workload) -> u64 {
    let lines = workload.stdout_lines();
    let tick = lines.iter().rev().find_map(|l| l.strip_prefix("TICK "));
    let n = tick.and_then(|t| t.split(' ').next()?.parse().ok());
    n.expect("a TICK line after LEAK_START")
}

/// `memlens heap FILE --sample S --top 0 --json`: total and (flat, cum) per
/// function, in memlens's order.
fn memlens_top(file: &Path, sample: &str) -> (i64, BTreeMap<String, (i64, i64)>, Vec<String>) {
    let path = file.to_str().unwrap();
    let report = memlens_json(&["heap", path, "--sample", sample, "--top", "0", "--json"]);
    assert_eq!(report["sample_type"], sample);
    assert_eq!(report["functions_omitted"], 0);
    let functions = report["functions"].as_array().unwrap();
    let rows = functions
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap().to_string(),
                (f["flat"].as_i64().unwrap(), f["cum"].as_i64().unwrap()),
            )
        })
        .collect();
    let order = functions
        .iter()
        .map(|f| f["function"].as_str().unwrap().to_string())
        .collect();
    (report["total"].as_i64().unwrap(), rows, order)
}

fn growth_of<'a>(report: &'a Value, function: &str) -> Option<&'a Value> {
    report["base"]["functions"]
        .as_array()?
        .iter()
        .find(|f| f["function"] == function)
}

fn check(go: GoToolchain) {
    let label = go.version.clone();
    let dir = TempDir::new(&format!("heap-text-live-{}", go.name));
    let cgroup = TestCgroup::with_limit(512 * MIB);
    // A profile pprof would cut mid-stack (see prunes_mid_stack) cannot be
    // held against the protobuf: a new process samples anew.
    let mut attempt = 0;
    let (workload, text, proto) = loop {
        attempt += 1;
        let workload = WorkloadSpec::new(&go, "heap-leak")
            .arg("--leak-kib=512")
            .arg("--garbage-kib=2048")
            .arg("--duration=0")
            .start_in(&cgroup);
        workload.wait_for_line("LEAK_START", Duration::from_secs(30));
        workload.wait_for_line("TICK 10 ", Duration::from_secs(30));
        let (text, proto, tries) = same_cycle_pair(workload.listen_addr());
        eprintln!("{label}: same-cycle text/protobuf after {tries} tries");
        if !prunes_mid_stack(&text) {
            break (workload, text, proto);
        }
        assert!(
            attempt < 3,
            "{label}: {attempt} processes' profiles all had a runtime frame between user frames"
        );
        eprintln!("{label}: a runtime frame between user frames; a new process");
    };
    let older = dir.join("older-heap-debug1.txt");
    let proto_path = dir.join("older-heap.pb.gz");
    std::fs::write(&older, &text).unwrap();
    std::fs::write(&proto_path, &proto).unwrap();
    let later = format!("TICK {} ", last_tick(&workload) + 30);
    workload.wait_for_line(&later, Duration::from_secs(30));
    let newer = dir.join("newer-heap-debug1.txt");
    std::fs::write(
        &newer,
        http_get(workload.listen_addr(), "/debug/pprof/heap?debug=1").unwrap(),
    )
    .unwrap();
    // The binary stays for pprof's symbolisation; the process can go.
    let binary = workload.binary().clone();
    drop(workload);
    assert!(text.starts_with("heap profile: "), "{label}: {text:.200}");

    for (sample, unit) in SAMPLES {
        let (total, got, order) = memlens_top(&older, sample);
        let on_text = go_tool_pprof_top(&go, sample, unit, &[], &[&binary, &older]);
        let on_proto = go_tool_pprof_top(&go, sample, unit, &[], &[&proto_path]);
        if let Err(e) = compare_with_binary_symbolised(total, &got, &on_text, &on_proto) {
            panic!("{label} {sample}: memlens vs go tool pprof BINARY TEXT: {e}");
        }
        assert_eq!(total, on_proto.total, "{label} {sample}: total");
        assert_eq!(
            got, on_proto.rows,
            "{label} {sample}: (flat, cum) per function"
        );
        assert_eq!(order, on_proto.order, "{label} {sample}: order");
        assert!(got.contains_key("main.retainLeakChunk"), "{label} {sample}");
    }

    // Text and protobuf of one GC cycle: nothing grew.
    let (older_s, newer_s) = (older.to_str().unwrap(), newer.to_str().unwrap());
    let proto_s = proto_path.to_str().unwrap();
    let same = memlens_json(&["heap", older_s, "--base", proto_s, "--top", "0", "--json"]);
    assert_eq!(same["base"]["total_delta"], 0, "{label}: {same:#}");
    let functions = same["base"]["functions"].as_array().unwrap();
    assert!(
        functions
            .iter()
            .all(|f| f["flat_delta"] == 0 && f["cum_delta"] == 0),
        "{label}: text vs protobuf of the same cycle: {same:#}"
    );

    // Growth between two text captures, as pprof -base sees it.
    let grown = memlens_json(&["heap", newer_s, "--base", older_s, "--top", "0", "--json"]);
    assert!(
        grown["base"]["total_delta"].as_i64().unwrap() > 0,
        "{label}"
    );
    let leak = growth_of(&grown, "main.retainLeakChunk")
        .unwrap_or_else(|| panic!("{label}: no growth row for main.retainLeakChunk: {grown:#}"));
    let base_arg = format!("-base={older_s}");
    let pprof_base = go_tool_pprof_top(&go, "inuse_space", "B", &[&base_arg], &[&binary, &newer]);
    let want = pprof_base.rows.get("main.retainLeakChunk").map(|p| p.1);
    assert!(
        want.is_some_and(|cum| cum > 0),
        "{label}: pprof -base: {pprof_base:?}"
    );
    assert_eq!(
        leak["cum_delta"].as_i64(),
        want,
        "{label}: cum growth vs pprof -base"
    );

    // Flame graphs from the text, plain and differential.
    let svg = dir.join("flame.svg");
    memlens(&["flame", older_s, "-o", svg.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{label}");
    assert!(svg.contains("main.retainLeakChunk"), "{label}: flame graph");
    assert!(svg.contains("main.newChunk"), "{label}: the inlined leaf");
    let diff = dir.join("diff.svg");
    memlens(&[
        "flame",
        newer_s,
        "--base",
        older_s,
        "-o",
        diff.to_str().unwrap(),
    ]);
    let diff = std::fs::read_to_string(&diff).unwrap();
    assert!(
        diff.contains("main.retainLeakChunk"),
        "{label}: differential"
    );
    assert_ne!(
        diff, svg,
        "{label}: the differential graph is another drawing"
    );
}

#[test]
fn heap_text_go119_matches_go_tool_pprof() {
    check(GoToolchain::go119());
}

#[test]
fn a_runtime_frame_between_user_frames_is_found() {
    // The stack of Go 1.27's heap-leak workload that failed a soak run,
    // rebuilt from the failure's function names (addresses and lines made
    // up, frames between them left out).
    let godebug = "heap profile: 1: 48 [1: 48] @ heap/1048576
1: 48 [1: 48] @ 0x4a1 0x4a2 0x4a3 0x4a4 0x4a5
#\t0x4a1\tinternal/sync.newEntryNode[go.shape.interface {},go.shape.interface {}]+0x2c\t/go/src/internal/sync/hashtriemap.go:1
#\t0x4a2\tinternal/godebug.update+0x10\t/go/src/internal/godebug/godebug.go:1
#\t0x4a3\truntime.godebugNotify+0x7a\t/go/src/runtime/runtime.go:197
#\t0x4a4\tinternal/godebug.setUpdate+0x1\t/go/src/internal/godebug/godebug.go:2
#\t0x4a5\truntime.main+0x1\t/go/src/runtime/proc.go:1
";
    assert!(prunes_mid_stack(godebug));
    // Runtime frames only at the ends (the allocator beneath, runtime.main
    // at the root), or kept by pprof: nothing to cut.
    let ends = godebug.replace("runtime.godebugNotify", "internal/godebug.notify");
    assert!(!prunes_mid_stack(&ends));
    let kept = godebug.replace("runtime.godebugNotify", "runtime.call32");
    assert!(!prunes_mid_stack(&kept));
}

#[test]
fn heap_text_go127_matches_go_tool_pprof() {
    check(GoToolchain::go127());
}
