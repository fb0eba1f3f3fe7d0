//! `pprof::top` against `go tool pprof -top` (Go 1.27's pprof, the reference
//! implementation) on real captured profiles: every function's flat and cum,
//! for every sample type, must be exactly what pprof prints.

use memlens_goruntime::pprof::{self, Profile};
use memlens_testkit::GoToolchain;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn capture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name)
}

/// What `go tool pprof -top` printed: total and (flat, cum) per function.
struct PprofTop {
    total: i64,
    rows: BTreeMap<String, (i64, i64)>,
    /// Function names in the order pprof printed them.
    order: Vec<String>,
}

fn number(text: &str) -> i64 {
    let digits = text.trim_end_matches("none").trim_end_matches('B');
    digits
        .parse()
        .unwrap_or_else(|e| panic!("pprof printed {text:?}, not an exact number: {e}"))
}

fn go_tool_top(go: &GoToolchain, file: &PathBuf, sample: &str, unit: &str) -> PprofTop {
    let out = Command::new(&go.go_binary)
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-edgefraction=0",
        ])
        .arg(format!("-sample_index={sample}"))
        .arg(format!("-unit={unit}"))
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("run go tool pprof");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "go tool pprof failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut total = None;
    let mut rows = BTreeMap::new();
    let mut order = Vec::new();
    let mut in_table = false;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Showing nodes accounting for ") {
            // "X, 100% of TOTAL total"
            let of = rest.split(" of ").nth(1).expect("'of' in the Showing line");
            total = Some(number(of.split_whitespace().next().unwrap()));
            continue;
        }
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let flat = number(fields.next().unwrap());
        let _flat_pct = fields.next();
        let _sum_pct = fields.next();
        let cum = number(fields.next().unwrap());
        let _cum_pct = fields.next();
        let name: Vec<&str> = fields.collect();
        let name = name.join(" ");
        let name = name
            .trim_end_matches(" (partial-inline)")
            .trim_end_matches(" (inline)")
            .to_string();
        assert!(
            rows.insert(name.clone(), (flat, cum)).is_none(),
            "pprof printed {name} twice"
        );
        order.push(name);
    }
    PprofTop {
        total: total.unwrap_or(0),
        rows,
        order,
    }
}

fn check_file(go: &GoToolchain, name: &str) {
    let file = capture(name);
    let bytes = std::fs::read(&file).unwrap();
    let profile = Profile::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let types = profile.sample_types();
    assert!(!types.is_empty());
    for (index, (sample, unit)) in types.iter().enumerate() {
        let pprof_unit = if unit == "bytes" { "B" } else { "none" };
        let want = go_tool_top(go, &file, sample, pprof_unit);
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
