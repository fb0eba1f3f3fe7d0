//! `parse_gctrace` on the real gctrace captures of Go 1.19 .. 1.27, checked
//! against facts of how each capture was made (README of the captures) and
//! counts taken by hand with grep, plus "never panics" on mutated inputs.
//!
//! Counts by hand (rerun to check):
//! `for f in *gctrace*.txt; do grep -c '^gc [0-9]* @' $f; grep -c '(forced)$' $f; done`

use memlens_goruntime::gctrace::{parse_gctrace, GcTraceEvent};
use proptest::prelude::*;
use std::path::PathBuf;

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/captures")
}

/// (file, GC lines, forced lines), counted with grep (see the module comment).
const FILES: &[(&str, usize, u64)] = &[
    ("go1.19.8-map-bloat-gctrace-forced.txt", 5, 1),
    ("go1.19.8-steady-gctrace.txt", 27, 0),
    ("go1.19.8-steady-gomemlimit64MiB-gctrace.txt", 52, 0),
    ("go1.21.13-map-bloat-gctrace-forced.txt", 6, 1),
    ("go1.21.13-steady-gctrace.txt", 28, 0),
    ("go1.21.13-steady-gomemlimit64MiB-gctrace.txt", 48, 0),
    ("go1.22.10-map-bloat-gctrace-forced.txt", 5, 1),
    ("go1.22.10-steady-gctrace.txt", 28, 0),
    ("go1.22.10-steady-gomemlimit64MiB-gctrace.txt", 45, 0),
    ("go1.24.11-map-bloat-gctrace-forced.txt", 7, 1),
    ("go1.24.11-steady-gctrace.txt", 28, 0),
    ("go1.24.11-steady-gomemlimit64MiB-gctrace.txt", 45, 0),
    ("go1.26.6-map-bloat-gctrace-forced.txt", 7, 1),
    ("go1.26.6-steady-gctrace.txt", 28, 0),
    ("go1.26.6-steady-gomemlimit64MiB-gctrace.txt", 45, 0),
    ("go1.27.3-map-bloat-gctrace-forced.txt", 7, 1),
    ("go1.27.3-steady-gctrace.txt", 28, 0),
    ("go1.27.3-steady-gomemlimit64MiB-gctrace.txt", 45, 0),
];

fn read(name: &str) -> Vec<u8> {
    std::fs::read(captures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_capture_parses_completely() {
    for &(name, gc_lines, forced) in FILES {
        let trace = parse_gctrace(name, &read(name)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(trace.cycles().count(), gc_lines, "{name}");
        assert_eq!(trace.forced_cycles(), forced, "{name}");
        assert!(trace.is_complete(), "{name}: cycles 1..N without gaps");
        let last = trace.last_cycle().unwrap();
        assert_eq!(last.cycle, gc_lines as u64, "{name}");
        for cycle in trace.cycles() {
            // The capture VM has 2 CPUs, so GOMAXPROCS = 2 (captures README).
            assert_eq!(cycle.procs, 2, "{name} gc {}", cycle.cycle);
            // Go 1.18+ prints stacks and globals: every version here has them.
            assert!(cycle.stacks_mib.is_some() && cycle.globals_mib.is_some());
            assert!(cycle.heap_live_mib <= cycle.heap_end_mib.max(cycle.heap_start_mib));
            assert!(cycle.since_start_seconds < 6.0, "runs lasted 5 s");
        }
        // The only other lines are the workload's own ("workload: terminated ...").
        for (line, event) in &trace.events {
            if let GcTraceEvent::Other(text) = event {
                assert!(text.starts_with("workload: "), "{name} line {line}: {text}");
            }
        }
    }
}

#[test]
fn the_forced_cycle_is_the_last_one_of_map_bloat() {
    // map-bloat calls runtime.GC() once after its deletes and is then killed.
    for &(name, ..) in FILES.iter().filter(|f| f.0.contains("forced")) {
        let trace = parse_gctrace(name, &read(name)).unwrap();
        let last = trace.last_cycle().unwrap();
        assert!(last.forced, "{name}");
        assert!(trace.cycles().filter(|c| c.forced).count() == 1);
    }
}

#[test]
fn gomemlimit_caps_the_heap_goal() {
    // The same steady workload: with GOMEMLIMIT=64MiB no goal reaches 64 MiB,
    // without it the goal passes 64 MiB (32 MiB live, GOGC=100 doubles it).
    for &(name, ..) in FILES.iter().filter(|f| f.0.contains("steady")) {
        let trace = parse_gctrace(name, &read(name)).unwrap();
        let max_goal = trace.cycles().map(|c| c.heap_goal_mib).max().unwrap();
        if name.contains("gomemlimit64MiB") {
            assert!(max_goal < 64, "{name}: goal {max_goal} MiB");
        } else {
            assert!(max_goal > 64, "{name}: goal {max_goal} MiB");
        }
    }
}

#[test]
fn one_line_read_by_hand() {
    // go1.27.3-map-bloat-gctrace-forced.txt, the last line, read by eye:
    // gc 7 @0.078s 5%: 10+0.26+0.006 ms clock, 21+0/8.3/0.18+0.013 ms cpu,
    // 26->26->20 MB, 29 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)
    let name = "go1.27.3-map-bloat-gctrace-forced.txt";
    let trace = parse_gctrace(name, &read(name)).unwrap();
    let c = trace.last_cycle().unwrap();
    assert_eq!(
        (c.cycle, c.since_start_seconds, c.gc_cpu_percent),
        (7, 0.078, 5)
    );
    assert_eq!(c.clock.sweep_termination_ms, 10.0);
    assert_eq!(c.clock.concurrent_mark_ms, 0.26);
    assert_eq!(c.clock.mark_termination_ms, 0.006);
    assert_eq!(c.cpu.sweep_termination_ms, 21.0);
    assert_eq!((c.cpu.assist_ms, c.cpu.background_ms), (0.0, 8.3));
    assert_eq!((c.cpu.idle_ms, c.cpu.mark_termination_ms), (0.18, 0.013));
    assert_eq!(
        (c.heap_start_mib, c.heap_end_mib, c.heap_live_mib),
        (26, 26, 20)
    );
    assert_eq!(c.heap_goal_mib, 29);
    assert!(c.forced);
}

#[test]
fn empty_and_garbage_inputs() {
    assert!(parse_gctrace("e", b"").unwrap().events.is_empty());
    let err = parse_gctrace("bad.txt", b"hello\ngc 3 @0.1s x%: 1+1+1 ms clock\n").unwrap_err();
    assert_eq!(err.line, Some(2));
    assert!(err.to_string().starts_with("bad.txt line 2: "), "{err}");
    let err = parse_gctrace("bin", b"\xff\xfe").unwrap_err();
    assert!(err.reason.contains("UTF-8"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_gctrace("arb", &bytes);
    }

    #[test]
    fn mutated_captures_never_panic(
        file in 0..FILES.len(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = read(FILES[file].0);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(trace) = parse_gctrace("mut", &bytes) {
            prop_assert!(trace.cycles().count() <= FILES[file].1 + 8);
        }
    }
}
