//! `pprof::top` against `go tool pprof -top` (Go 1.27's pprof, the reference
//! implementation) on real captured profiles: every function's flat and cum,
//! for every sample type, must be exactly what pprof prints.

use memlens_goruntime::pprof::{self, Profile};
use memlens_testkit::{go_tool_pprof_top, GoToolchain};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name)
}

fn check_file(go: &GoToolchain, name: &str) {
    let file = capture(name);
    let bytes = std::fs::read(&file).unwrap();
    let profile = Profile::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let types = profile.sample_types();
    assert!(!types.is_empty());
    for (index, (sample, unit)) in types.iter().enumerate() {
        let pprof_unit = if unit == "bytes" { "B" } else { "none" };
        let want = go_tool_pprof_top(go, sample, pprof_unit, &[], &[&file]);
        let got = pprof::top(&profile, index).unwrap();
        assert_eq!(got.total, want.total, "{name} {sample}: total");
        let got_rows: BTreeMap<String, (i64, i64)> = got
            .functions
            .iter()
            .map(|f| (f.function.clone(), (f.flat, f.cum)))
            .collect();
        for (function, pair) in &want.rows {
            assert_eq!(
                got_rows.get(function),
                Some(pair),
                "{name} {sample}: (flat, cum) of {function}"
            );
        }
        let extra: Vec<&String> = got_rows
            .keys()
            .filter(|k| !want.rows.contains_key(*k))
            .collect();
        assert!(
            extra.is_empty(),
            "{name} {sample}: memlens lists functions pprof does not: {extra:?}"
        );
        assert!(
            !want.rows.is_empty() || want.total == 0,
            "{name} {sample}: parsed no rows"
        );
        // Same order as pprof's -top (|flat| descending, then name).
        let got_order: Vec<&String> = got.functions.iter().map(|f| &f.function).collect();
        let want_order: Vec<&String> = want.order.iter().collect();
        assert_eq!(got_order, want_order, "{name} {sample}: order");
    }
}

#[test]
fn heap_profiles_match_go_tool_pprof_for_all_sample_types() {
    let go = GoToolchain::go127();
    for name in [
        "go1.27.3-heap-leak-heap.pb.gz",
        "go1.27.3-heap-leak-heap-later.pb.gz",
        "go1.19.8-heap-leak-heap-later.pb.gz",
        "go1.24.11-heap-leak-allocs.pb.gz",
        "prometheus2.42.0-go1.19.8-heap.pb.gz",
        "alertmanager0.25.0-go1.19.8-heap.pb.gz",
        "node-exporter1.5.0-go1.19.8-heap.pb.gz",
    ] {
        check_file(&go, name);
    }
}

#[test]
fn goroutine_profiles_match_go_tool_pprof() {
    let go = GoToolchain::go127();
    for name in [
        "go1.27.3-goroutine-leak-goroutine.pb.gz",
        "prometheus2.42.0-go1.19.8-goroutine.pb.gz",
    ] {
        check_file(&go, name);
    }
}
