//! Unit tests of the GOMEMLIMIT/GOGC detector and advice.

use super::*;
use proptest::prelude::*;

fn inputs(limit: Option<u64>, gomemlimit: Option<u64>, source: Source) -> Inputs {
    Inputs {
        cgroup_limit_bytes: limit,
        gomemlimit: MemoryLimit {
            bytes: gomemlimit,
            source,
        },
        gogc: GcPercent {
            percent: Some(100),
            source: Source::Default,
        },
        outside_runtime_bytes: Some(12 * MIB),
        non_heap_bytes: Some(20 * MIB),
        peak_rss_bytes: Some(90 * MIB),
        peak_usage_bytes: Some(95 * MIB),
        live_heap_bytes: Some(40 * MIB),
    }
}

fn target() -> Target {
    Target::Process {
        pid: 1,
        start_time: 2,
    }
}

#[test]
fn gomemlimit_syntax_is_the_runtimes() {
    // Cases from the Go runtime's own parseByteCount tests (runtime/string_test.go).
    assert_eq!(parse_gomemlimit("96MiB"), Ok(Some(96 * MIB)));
    assert_eq!(parse_gomemlimit("1GiB"), Ok(Some(1 << 30)));
    assert_eq!(parse_gomemlimit("2TiB"), Ok(Some(2 << 40)));
    assert_eq!(parse_gomemlimit("3KiB"), Ok(Some(3 << 10)));
    assert_eq!(parse_gomemlimit("4096"), Ok(Some(4096)));
    assert_eq!(parse_gomemlimit("10B"), Ok(Some(10)));
    assert_eq!(parse_gomemlimit("0"), Ok(Some(0)));
    assert_eq!(parse_gomemlimit("-0"), Ok(Some(0)));
    assert_eq!(parse_gomemlimit("off"), Ok(None));
    assert_eq!(parse_gomemlimit(""), Ok(None));
    assert_eq!(parse_gomemlimit("9223372036854775807"), Ok(None));
    for bad in [
        "96MB",
        "MiB",
        "-1",
        "99999999TiB",
        "1.5GiB",
        " 1GiB",
        "1 GiB",
        "1kiB",
        "1iB",
        "B",
        "OFF",
        "+5",
        "9223372036854775808",
    ] {
        assert!(parse_gomemlimit(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn gogc_syntax_is_the_runtimes() {
    assert_eq!(parse_gogc("50"), Some(50));
    assert_eq!(parse_gogc("off"), None);
    assert_eq!(parse_gogc("-1"), None);
    assert_eq!(parse_gogc("OFF"), Some(100));
    assert_eq!(parse_gogc(""), Some(100));
}

#[test]
fn the_runtime_wins_over_the_environment() {
    let seen = resolve_gomemlimit(Some(Some(64 * MIB)), None).unwrap();
    assert_eq!(seen.bytes, Some(64 * MIB));
    assert_eq!(seen.source, Source::Runtime);
    let off = resolve_gomemlimit(Some(Some(i64::MAX as u64)), Some("100MiB")).unwrap();
    assert_eq!((off.bytes, off.source), (None, Source::Runtime));
    let env = resolve_gomemlimit(None, Some("100MiB")).unwrap();
    assert_eq!(
        (env.bytes, env.source),
        (Some(100 * MIB), Source::Environment)
    );
    assert_eq!(
        resolve_gomemlimit(None, None).unwrap().source,
        Source::Default
    );
    assert!(resolve_gomemlimit(None, Some("lots")).is_err());
    assert_eq!(resolve_gogc(Some(None), Some("50")).percent, None);
    assert_eq!(resolve_gogc(None, Some("off")).percent, None);
    assert_eq!(resolve_gogc(None, None).percent, Some(100));
}

#[test]
fn recommendation_is_limit_minus_outside_minus_margin() {
    let rec = recommend(
        &inputs(Some(256 * MIB), None, Source::Runtime),
        &Config::default(),
    );
    // margin: 5 % of 256 MiB = 12.8 MiB, under the 16 MiB floor; outside 12 MiB.
    let margin = 16 * MIB;
    assert_eq!(rec.margin_bytes, margin);
    assert_eq!(
        rec.gomemlimit_bytes,
        (256 * MIB - 12 * MIB - margin) / MIB * MIB
    );
    assert_eq!(rec.gomemlimit_bytes, 228 * MIB);
    assert!(rec.memory_high_bytes < 256 * MIB && rec.memory_high_bytes > rec.gomemlimit_bytes);
    assert_eq!(rec.k8s_request_bytes, 95 * MIB);
    assert_eq!(rec.k8s_limit_bytes, 256 * MIB);
    // The small-limit floor of the margin.
    let small = recommend(
        &inputs(Some(64 * MIB), None, Source::Runtime),
        &Config::default(),
    );
    assert_eq!(small.margin_bytes, 16 * MIB);
    assert_eq!(small.gomemlimit_bytes, 36 * MIB);
    assert!(
        !small.notes.is_empty(),
        "live 40 MiB vs 36 MiB must be noted"
    );
    // A large limit: the 5 % share (51.2 MiB).
    let large = recommend(
        &inputs(Some(1 << 30), None, Source::Runtime),
        &Config::default(),
    );
    assert_eq!(large.margin_bytes, (1u64 << 30) / 20);
    assert_eq!(large.gomemlimit_bytes, 960 * MIB);
    assert!(large.notes.is_empty(), "{:?}", large.notes);
}

#[test]
fn unlimited_cgroup_gets_a_proposed_limit() {
    let rec = recommend(&inputs(None, None, Source::Runtime), &Config::default());
    assert!(rec.memory_max_proposed);
    assert_eq!(rec.memory_max_bytes, 95 * MIB + 64 * MIB);
    assert!(check(
        &inputs(None, None, Source::Runtime),
        &Config::default(),
        &target(),
        0
    )
    .is_empty());
}

#[test]
fn findings_by_case() {
    let c = Config::default();
    let ids = |i: &Inputs| -> Vec<(&str, Severity)> {
        check(i, &c, &target(), 5)
            .iter()
            .map(|f| (f.id, f.severity))
            .collect()
    };
    let limit = Some(256 * MIB);
    assert_eq!(
        ids(&inputs(limit, None, Source::Default)),
        [(GOMEMLIMIT_MISSING, Severity::Warning)]
    );
    assert_eq!(
        ids(&inputs(limit, Some(300 * MIB), Source::Environment)),
        [(GOMEMLIMIT_ABOVE_LIMIT, Severity::Critical)]
    );
    assert_eq!(
        ids(&inputs(limit, Some(256 * MIB), Source::Runtime)),
        [(GOMEMLIMIT_ABOVE_LIMIT, Severity::Critical)]
    );
    // 240 MiB leaves 16 MiB < 12 + 16/2 MiB; 236 MiB leaves exactly that.
    assert!(ids(&inputs(limit, Some(236 * MIB), Source::Runtime)).is_empty());
    assert_eq!(
        ids(&inputs(limit, Some(240 * MIB), Source::Runtime)),
        [(GOMEMLIMIT_TOO_CLOSE, Severity::Warning)]
    );
    assert!(ids(&inputs(limit, Some(228 * MIB), Source::Runtime)).is_empty());
    assert!(ids(&inputs(limit, Some(100 * MIB), Source::Runtime)).is_empty());
    let mut off = inputs(None, None, Source::Default);
    off.gogc.percent = None;
    assert_eq!(ids(&off), [(GOGC_OFF_WITHOUT_LIMIT, Severity::Critical)]);
    off.gomemlimit.bytes = Some(100 * MIB);
    assert!(
        ids(&off).is_empty(),
        "GOGC=off with a limit is a sound setting"
    );
    let missing = check(&inputs(limit, None, Source::Default), &c, &target(), 5);
    assert_eq!(
        missing[0].evidence("recommended_gomemlimit_bytes"),
        Some((228 * MIB) as f64)
    );
    assert!(missing[0].recommendation.contains("GOMEMLIMIT=228MiB"));
    assert!(missing[0].recommendation.contains("cannot be seen"));
}

#[test]
fn format_round_trips() {
    assert_eq!(format_gomemlimit(228 * MIB), "228MiB");
    assert_eq!(format_gomemlimit(1000), "1000");
    assert_eq!(
        parse_gomemlimit(&format_gomemlimit(77 * MIB)),
        Ok(Some(77 * MIB))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsing_never_panics(raw in ".{0,24}") {
        let _ = parse_gomemlimit(&raw);
        let _ = parse_gogc(&raw);
    }

    #[test]
    fn recommendation_never_exceeds_the_limit(
        limit in 0u64..(1 << 40),
        outside in proptest::option::of(0u64..(1 << 40)),
        peak in proptest::option::of(0u64..(1 << 40)),
    ) {
        let mut i = inputs(Some(limit), None, Source::Default);
        i.outside_runtime_bytes = outside;
        i.peak_usage_bytes = peak;
        let rec = recommend(&i, &Config::default());
        prop_assert!(rec.gomemlimit_bytes + rec.margin_bytes <= limit.max(rec.margin_bytes));
        prop_assert!(rec.memory_high_bytes <= limit);
        let _ = check(&i, &Config::default(), &target(), 0);
    }
}
