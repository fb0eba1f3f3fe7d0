//! Contention in the engine: a sibling's growth before a cgroup's refaults
//! names it as the aggressor; an unrelated cgroup growing at the same time
//! elsewhere in the hierarchy is not a neighbour; without a growing
//! neighbour nothing fires.

use memlens_analyze::finding::CONTENTION;
use memlens_analyze::{Config, Engine, Finding};
use memlens_model::series::{Entity, Point};

const MIB: f64 = 1048576.0;

fn p(entity: &Entity, metric: &'static str, value: f64) -> Point {
    Point {
        entity: entity.clone(),
        metric,
        value,
    }
}

fn cg(path: &str) -> Entity {
    Entity::Cgroup {
        path: path.to_string(),
    }
}

fn proc(pid: i32) -> Entity {
    Entity::Process {
        pid,
        start_time: 1000 + pid as u64,
    }
}

/// 400 s at 2 s: /box/db reads steadily (its refaults and major faults jump
/// at `squeeze_s`), /box/go grows 2 MiB/s from 100 s to 250 s when
/// `go_grows`, /elsewhere grows the same way at the same time.
fn run(go_grows: bool, squeeze_s: i64) -> (Engine, Vec<Finding>) {
    let mut engine = Engine::new(Config::default());
    let (db, go, other) = (cg("/box/db"), cg("/box/go"), cg("/elsewhere"));
    engine.set_process_cgroup(&proc(10), "/box/db");
    engine.set_process_cgroup(&proc(20), "/box/go");
    engine.set_process_cgroup(&proc(30), "/elsewhere");
    let mut events = Vec::new();
    for step in 0..=200 {
        let t = step * 2;
        let ft = t as f64;
        let growth = |on: bool| {
            if on {
                2.0 * MIB * (ft.clamp(100.0, 250.0) - 100.0)
            } else {
                0.0
            }
        };
        let squeezed = (ft - squeeze_s as f64).max(0.0);
        let refaults = 3.0 * ft + 500.0 * squeezed;
        let majors = 1.0 * ft + 300.0 * squeezed;
        let go_usage = 40.0 * MIB + growth(go_grows);
        let points = vec![
            p(&db, "usage_bytes", 400.0 * MIB - growth(go_grows) / 2.0),
            p(&db, "file_refaults", refaults),
            p(&db, "anon_refaults", 0.0),
            p(&db, "major_faults", majors),
            p(&go, "usage_bytes", go_usage),
            p(&go, "file_refaults", 0.0),
            p(&go, "major_faults", 0.0),
            p(&other, "usage_bytes", 100.0 * MIB + growth(true)),
            p(&other, "file_refaults", 0.0),
            p(&proc(10), "rss_bytes", 200.0 * MIB),
            p(&proc(10), "major_faults", majors),
            p(&proc(20), "rss_bytes", go_usage - 5.0 * MIB),
            p(&proc(30), "rss_bytes", 90.0 * MIB),
            p(&Entity::Host, "pressure_some_total_usec", 1e4 * ft),
        ];
        events.extend(engine.observe(1_000_000 + t * 1000, &points));
    }
    (engine, events)
}

#[test]
fn the_growing_sibling_is_named_as_aggressor_of_the_faulting_cgroup() {
    let (engine, events) = run(true, 150);
    let fired: Vec<&Finding> = events.iter().filter(|f| f.id == CONTENTION).collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let f = fired[0];
    assert_eq!(f.target, cg("/box/db"));
    assert!(
        f.recommendation.contains("aggressor /box/go"),
        "{}",
        f.recommendation
    );
    assert!(
        !f.recommendation.contains("/elsewhere"),
        "{}",
        f.recommendation
    );
    assert_eq!(f.evidence("aggressor_pid"), Some(20.0));
    assert_eq!(f.evidence("victim_pid"), Some(10.0));
    // At the end (the evidence is kept current while active) the rates
    // reached are side by side with the ones before.
    let active = engine
        .active()
        .into_iter()
        .find(|f| f.id == CONTENTION)
        .unwrap();
    let before = active
        .evidence("victim_refaults_per_second_before")
        .unwrap();
    let after = active.evidence("victim_refaults_per_second_after").unwrap();
    assert!(before < 10.0 && after > 400.0, "{before} -> {after}");
    let majors = active
        .evidence("victim_major_faults_per_second_after")
        .unwrap();
    assert!(majors > 250.0, "{majors}");
    let growth = active.evidence("aggressor_growth_bytes").unwrap();
    assert!((290.0 * MIB..=310.0 * MIB).contains(&growth), "{growth}");
    // Fired once the faults were up, not before the squeeze.
    assert!(f.fired_at_ms >= 1_000_000 + 150_000, "{f:#?}");
    assert!(f.recommendation.contains("GOMEMLIMIT") && f.recommendation.contains("memory.low"));
    assert_eq!(
        engine
            .active()
            .iter()
            .filter(|f| f.id == CONTENTION)
            .count(),
        1
    );
}

#[test]
fn without_the_growing_sibling_nothing_is_named() {
    let (_, events) = run(false, 150);
    let fired: Vec<&Finding> = events.iter().filter(|f| f.id == CONTENTION).collect();
    assert!(fired.is_empty(), "{fired:#?}");
}

#[test]
fn faults_that_started_before_the_growth_are_not_blamed_on_it() {
    let (_, events) = run(true, 60);
    let fired: Vec<&Finding> = events.iter().filter(|f| f.id == CONTENTION).collect();
    assert!(fired.is_empty(), "{fired:#?}");
}
