//! The engine's lifecycle: GOMEMLIMIT, forgetting vanished entities, the
//! kill point of a process in a shared cgroup, escalation and clearing.

use memlens_analyze::finding::{GOMEMLIMIT_REACHED, TIME_TO_OOM};
use memlens_analyze::{Config, Engine, Severity};
use memlens_model::series::{Entity, Point};

const MIB: f64 = 1048576.0;

fn p(entity: &Entity, metric: &'static str, value: f64) -> Point {
    Point {
        entity: entity.clone(),
        metric,
        value,
    }
}

fn go_process() -> Entity {
    Entity::Process {
        pid: 7,
        start_time: 99,
    }
}

#[test]
fn gomemlimit_reached_fires_and_clears_with_hysteresis_and_is_no_kill() {
    let mut engine = Engine::new(Config::default());
    let e = go_process();
    let tick = |engine: &mut Engine, t: i64, sys_mib: f64| {
        engine.observe(
            t * 30_000,
            &[
                p(&e, "rss_bytes", 100.0 * MIB),
                p(&e, "go_gomemlimit_bytes", 100.0 * MIB),
                p(&e, "go_heap_released_bytes", 4.0 * MIB),
                p(&e, "go_sys_bytes", sys_mib * MIB),
            ],
        )
    };
    assert!(tick(&mut engine, 1, 90.0).is_empty(), "86% of the limit");
    let fired = tick(&mut engine, 2, 100.0);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].id, GOMEMLIMIT_REACHED);
    assert_eq!(fired[0].severity, Severity::Warning);
    assert_eq!(fired[0].evidence("go_memory_bytes"), Some(96.0 * MIB));
    assert_eq!(fired[0].fired_at_ms, 60_000);
    // 92%: below the firing ratio but above the clearing one: stays.
    for t in 3..8 {
        assert!(tick(&mut engine, t, 96.0).is_empty());
    }
    assert_eq!(engine.active().len(), 1);
    // 86%: absent from t = 8 (240 s); back once at t = 12, which restarts
    // the hold; it clears once absent for the hold (300 s) without a break.
    for t in 8..12 {
        assert!(tick(&mut engine, t, 90.0).is_empty());
    }
    assert!(
        tick(&mut engine, 12, 100.0).is_empty(),
        "held, not fired again"
    );
    for t in 13..23 {
        assert!(tick(&mut engine, t, 90.0).is_empty(), "t={t}");
    }
    let cleared = tick(&mut engine, 23, 90.0);
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].cleared_at_ms, Some(690_000));
    assert!(engine.active().is_empty());
    // GOMEMLIMIT unset (math.MaxInt64): nothing, whatever the memory.
    let mut engine = Engine::new(Config::default());
    let out = engine.observe(
        0,
        &[
            p(&e, "go_gomemlimit_bytes", i64::MAX as f64),
            p(&e, "go_sys_bytes", 1e12),
        ],
    );
    assert!(out.is_empty());
}

/// A process leaking 1 MiB/s in a cgroup with a 256 MiB limit shared with a
/// neighbour using 100 MiB: the kill point is 156 MiB of the process's own.
#[test]
fn a_process_kill_point_leaves_out_its_neighbours_and_it_is_forgotten_when_gone() {
    let mut engine = Engine::new(Config::default());
    let e = go_process();
    let cg = Entity::Cgroup {
        path: "/app".to_string(),
    };
    engine.set_process_cgroup(&e, "/app");
    let mut critical = None;
    for i in 0..40 {
        let t = i * 5;
        let rss = 20.0 * MIB + MIB * t as f64;
        let out = engine.observe(
            t * 1000,
            &[
                p(&e, "rss_bytes", rss),
                p(&cg, "usage_bytes", rss + 100.0 * MIB),
                p(&cg, "effective_limit_bytes", 256.0 * MIB),
            ],
        );
        for f in out {
            if f.id == TIME_TO_OOM && f.target == e && f.severity == Severity::Critical {
                critical = Some((t, f));
            }
        }
        if critical.is_some() {
            break;
        }
    }
    let (t, f) = critical.expect("critical");
    // rss at t is 20 + t MiB; the kill at 156 MiB is at t = 136 s.
    let left = f.evidence("time_left_seconds").unwrap();
    assert!((left - (136.0 - t as f64)).abs() < 1.0, "t={t} left={left}");
    assert_eq!(f.evidence("kill_point_bytes"), Some(156.0 * MIB));
    assert_eq!(
        f.evidence("predicted_kill_at_ms").map(|v| v as i64),
        Some(136_000)
    );
    // The process vanishes (killed): its findings clear once it is unseen
    // for the forget delay, and its state goes.
    let before = engine.tracked_entities();
    let last = 5 * 40 * 1000;
    let out = engine.observe(last + 61_000, &[p(&cg, "usage_bytes", 100.0 * MIB)]);
    assert!(
        out.iter()
            .any(|f| f.target == e && f.cleared_at_ms == Some(last + 61_000)),
        "{out:?}"
    );
    assert!(engine.tracked_entities() < before);
    assert!(engine.active().iter().all(|f| f.target != e));
}

#[test]
fn warning_escalates_to_critical_as_a_new_finding() {
    // 1 MiB/min growth from 200 MiB with a 230 MiB limit: 30 min away
    // at first (nothing: needs span), warning, then critical under 10 min.
    let mut engine = Engine::new(Config::default());
    let cg = Entity::Cgroup {
        path: "/slow".to_string(),
    };
    let mut seen = Vec::new();
    for i in 0..400 {
        let t = i * 5;
        let usage = 200.0 * MIB + MIB * t as f64 / 60.0;
        if usage >= 230.0 * MIB {
            break;
        }
        for f in engine.observe(
            t * 1000,
            &[
                p(&cg, "usage_bytes", usage),
                p(&cg, "effective_limit_bytes", 230.0 * MIB),
            ],
        ) {
            if f.id == TIME_TO_OOM {
                seen.push((t, f.severity, f.cleared_at_ms.is_some()));
            }
        }
    }
    let kinds: Vec<(Severity, bool)> = seen.iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(
        kinds,
        vec![
            (Severity::Warning, false),
            (Severity::Warning, true),
            (Severity::Critical, false)
        ],
        "{seen:?}"
    );
    // Warning needs time left <= 8 x span (warning_max_extrapolation),
    // the span starting after the first 20 s: 1800 - t <= 8 (t - 20) ->
    // t >= 218 s (the trend's buckets, 15 s each, end up to one bucket
    // later).
    assert!(seen[0].0 >= 218 && seen[0].0 <= 240, "{seen:?}");
    // Critical when 10 min are left: t = 1200 s.
    assert!(seen[2].0 >= 1200 && seen[2].0 <= 1210, "{seen:?}");
}

#[test]
fn at_a_one_second_interval_trends_are_evaluated_every_few_seconds_and_still_fire() {
    // 40 MiB + 1 MiB/s against a 256 MiB cgroup, sampled every second: the
    // kill comes at t = 216 s. Evaluations are throttled to about every 4 s,
    // so firing times fall on a coarser grid, and still well before the kill.
    let mut engine = Engine::new(Config::default());
    let cg = Entity::Cgroup {
        path: "/fast".to_string(),
    };
    let mut fired = Vec::new();
    for t in 0..216 {
        let usage = 40.0 * MIB + MIB * t as f64;
        for f in engine.observe(
            t * 1000,
            &[
                p(&cg, "usage_bytes", usage),
                p(&cg, "effective_limit_bytes", 256.0 * MIB),
            ],
        ) {
            fired.push((t, f.id, f.severity));
        }
    }
    let critical = fired
        .iter()
        .find(|f| f.1 == TIME_TO_OOM && f.2 == Severity::Critical)
        .unwrap_or_else(|| panic!("no critical: {fired:?}"));
    assert!(critical.0 <= 120, "critical at {} s", critical.0);
    // Every firing instant is an evaluation instant: 4 s or more apart
    // from the entity's first sample's grid.
    assert!(fired.iter().all(|f| f.0 % 4 == 0), "{fired:?}");
}

#[test]
fn a_process_kill_point_takes_the_usual_offset_not_one_skewed_instant() {
    // RSS counts 5 MiB charged elsewhere (usage = RSS - 5 MiB), except at
    // the newest instant, read mid-allocation (usage = RSS + 7 MiB).
    let mut engine = Engine::new(Config::default());
    let e = go_process();
    let cg = Entity::Cgroup {
        path: "/app".to_string(),
    };
    engine.set_process_cgroup(&e, "/app");
    let mut critical = None;
    for i in 0..40 {
        let t = i * 5;
        let rss = 40.0 * MIB + MIB * t as f64;
        let skew = if i == 39 { 7.0 } else { -5.0 };
        engine.observe(
            t * 1000,
            &[
                p(&e, "rss_bytes", rss),
                p(&cg, "usage_bytes", rss + skew * MIB),
                p(&cg, "effective_limit_bytes", 256.0 * MIB),
            ],
        );
        if i == 39 {
            critical = engine
                .active()
                .into_iter()
                .find(|f| f.id == TIME_TO_OOM && f.target == e);
        }
    }
    let f = critical.expect("a time-to-OOM on the process");
    assert_eq!(f.evidence("kill_point_bytes"), Some(261.0 * MIB), "{f:?}");
}

#[test]
fn a_cgroup_is_killed_when_its_working_set_not_its_usage_reaches_the_limit() {
    // Anonymous memory 100 MiB + 1 MiB/s next to 10 MiB of inactive file
    // cache in a 256 MiB cgroup. The usage reaches the limit at t = 146 s;
    // from then on the kernel reclaims the cache to make room, and it kills
    // at t = 156 s, when the anonymous memory alone fills the limit.
    let mut engine = Engine::new(Config::default());
    let cg = Entity::Cgroup {
        path: "/cached".to_string(),
    };
    let limit = 256.0 * MIB;
    let mut critical = None;
    for t in 0..156 {
        let anon = 100.0 * MIB + MIB * t as f64;
        let usage = (anon + 10.0 * MIB).min(limit);
        for f in engine.observe(
            t * 1000,
            &[
                p(&cg, "usage_bytes", usage),
                p(&cg, "inactive_file_bytes", usage - anon),
                p(&cg, "effective_limit_bytes", limit),
            ],
        ) {
            if f.id == TIME_TO_OOM && f.severity == Severity::Critical && critical.is_none() {
                critical = Some(f);
            }
        }
    }
    let f = critical.expect("a critical before the kill");
    assert!(f.evidence("working_set_bytes").is_some(), "{f:?}");
    let predicted_s = f.evidence("predicted_kill_at_ms").unwrap() / 1000.0;
    assert!(
        (predicted_s - 156.0).abs() <= 3.0,
        "predicted kill at {predicted_s:.1} s, the kill comes at 156 s"
    );
}
