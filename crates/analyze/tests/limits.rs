//! Near limit and thrashing in the engine: when they fire, what they need
//! to stay, and that one episode gives one fire and one clear.

use memlens_analyze::finding::{NEAR_LIMIT, THRASHING};
use memlens_analyze::{Config, Engine, Finding, Layer, Severity};
use memlens_model::series::{Entity, Point};

const MIB: f64 = 1048576.0;
const LIMIT: f64 = 256.0 * MIB;

fn p(entity: &Entity, metric: &'static str, value: f64) -> Point {
    Point {
        entity: entity.clone(),
        metric,
        value,
    }
}

fn cgroup() -> Entity {
    Entity::Cgroup {
        path: "/svc".to_string(),
    }
}

/// Every event of `id` over a run, as (fired, cleared) pairs of seconds.
fn episodes(events: &[Finding], id: &str) -> Vec<(i64, Option<i64>)> {
    let mut out: Vec<(i64, Option<i64>)> = Vec::new();
    for f in events.iter().filter(|f| f.id == id) {
        match f.cleared_at_ms {
            None => out.push((f.fired_at_ms / 1000, None)),
            Some(c) => {
                let open = out
                    .iter_mut()
                    .find(|e| e.0 == f.fired_at_ms / 1000 && e.1.is_none())
                    .expect("a clear of a fired finding");
                open.1 = Some(c / 1000);
            }
        }
    }
    out
}

/// A cgroup sampled every second with working set `ws(t)` (no file cache),
/// plus the points `extra(t)` adds; all events.
fn run(
    engine: &mut Engine,
    seconds: i64,
    ws: impl Fn(i64) -> f64,
    extra: impl Fn(i64) -> Vec<Point>,
) -> Vec<Finding> {
    let cg = cgroup();
    let mut events = Vec::new();
    for t in 0..seconds {
        let mut points = vec![
            p(&cg, "usage_bytes", ws(t)),
            p(&cg, "inactive_file_bytes", 0.0),
            p(&cg, "effective_limit_bytes", LIMIT),
        ];
        points.extend(extra(t));
        events.extend(engine.observe(t * 1000, &points));
    }
    events
}

#[test]
fn a_working_set_levelling_off_under_the_limit_is_near_it_once_and_clears_once() {
    // Climbs 1 MiB/s from 150 MiB to 240 MiB (94 %), holds 3 minutes with
    // a 3 MiB sawtooth, then drops to 150 MiB.
    let ws = |t: i64| {
        let saw = (t % 4) as f64 * MIB;
        match t {
            0..=89 => 150.0 * MIB + t as f64 * MIB,
            90..=269 => 237.0 * MIB + saw,
            _ => 150.0 * MIB,
        }
    };
    let hold = Config::default().hold_seconds as i64;
    let mut engine = Engine::new(Config::default());
    let events = run(&mut engine, 360 + hold, ws, |_| Vec::new());
    let near = episodes(&events, NEAR_LIMIT);
    assert_eq!(near.len(), 1, "{near:?}");
    let (fired, cleared) = near[0];
    // 90 % of 256 MiB is 230.4 MiB, passed at t = 81 s; evaluated every 5 s.
    assert!((81..=90).contains(&fired), "fired at {fired}");
    // Below 85 % from t = 270 s, then the peak span (15 s) and the hold
    // (evaluations 5 s apart).
    let cleared = cleared.expect("cleared after the drop");
    assert!(
        (270 + hold..=305 + hold).contains(&cleared),
        "cleared at {cleared}"
    );
    let f = events.iter().find(|f| f.id == NEAR_LIMIT).unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.evidence("kill_point_bytes"), Some(LIMIT));
    let share = f.evidence("kill_point_share").unwrap();
    assert!((0.90..0.95).contains(&share), "{share}");
}

#[test]
fn at_92_percent_a_still_working_set_needs_a_go_heap_cycle_to_be_near() {
    // 92 %: 20 MiB of headroom, more than 5 % of the limit (12.8 MiB) and
    // than a still series' swing: no finding without a Go heap...
    let ws = |_| 235.6 * MIB;
    let mut engine = Engine::new(Config::default());
    let events = run(&mut engine, 120, ws, |_| Vec::new());
    assert!(episodes(&events, NEAR_LIMIT).is_empty(), "{events:?}");
    // ...but a Go process in it whose heap goal is 80 MiB at GOGC 100
    // grows 40 MiB a cycle: the 20 MiB of headroom is not enough.
    let go = Entity::Process {
        pid: 42,
        start_time: 1,
    };
    let mut engine = Engine::new(Config::default());
    engine.set_process_cgroup(&go, "/svc");
    let events = run(&mut engine, 120, ws, |_| {
        vec![
            p(&go, "rss_bytes", 100.0 * MIB),
            p(&go, "go_next_gc_bytes", 80.0 * MIB),
        ]
    });
    let f = events
        .iter()
        .find(|f| f.id == NEAR_LIMIT && f.target == cgroup())
        .expect("near limit on the cgroup");
    assert_eq!(f.evidence("gc_cycle_growth_bytes"), Some(40.0 * MIB));
    assert_eq!(f.evidence("needed_headroom_bytes"), Some(40.0 * MIB));
    assert!(
        f.recommendation.contains("GOMEMLIMIT"),
        "{}",
        f.recommendation
    );
    // GOGC=50 makes it 80/3 MiB, still more than 20 MiB.
    let mut engine = Engine::new(Config::default());
    engine.set_process_cgroup(&go, "/svc");
    let events = run(&mut engine, 60, ws, |_| {
        vec![
            p(&go, "rss_bytes", 100.0 * MIB),
            p(&go, "go_next_gc_bytes", 80.0 * MIB),
            p(&go, "go_gogc_percent", 50.0),
        ]
    });
    let f = events.iter().find(|f| f.id == NEAR_LIMIT).unwrap();
    let growth = f.evidence("gc_cycle_growth_bytes").unwrap();
    assert!((growth - 80.0 * MIB / 3.0).abs() < 1.0, "{growth}");
}

#[test]
fn a_sawtooth_across_the_threshold_does_not_flap() {
    // A sawtooth between 84 % and 93 % of the limit, 10 s period: its
    // swing (9 %) is more than its headroom (7 %), and its troughs are
    // under where near limit fires.
    let ws = |t: i64| {
        let phase = (t % 10) as f64 / 9.0;
        LIMIT * (0.84 + 0.09 * phase)
    };
    let mut engine = Engine::new(Config::default());
    let events = run(&mut engine, 600, ws, |_| Vec::new());
    let near = episodes(&events, NEAR_LIMIT);
    assert_eq!(near, vec![(near[0].0, None)], "one fire, never cleared");
}

/// Counters of a thrashing v1 cgroup: `refaults(t)` and `majors(t)` pages
/// and faults so far, the host's PSI some at `psi_percent` of the time.
fn thrash_points(t: i64, refaults: f64, majors: f64, psi_percent: f64) -> Vec<Point> {
    let cg = cgroup();
    vec![
        p(&cg, "file_refaults", refaults),
        p(&cg, "anon_refaults", 0.0),
        p(&cg, "major_faults", majors),
        p(&cg, "anon_bytes", 180.0 * MIB),
        p(&cg, "active_file_bytes", 0.0),
        p(
            &Entity::Host,
            "pressure_some_total_usec",
            t as f64 * psi_percent * 1e4,
        ),
        p(
            &Entity::Host,
            "pressure_full_total_usec",
            t as f64 * psi_percent * 0.5e4,
        ),
    ]
}

#[test]
fn thrashing_fires_while_pages_are_refaulted_at_the_limit_and_clears_after() {
    // 4,000 refaults and major faults a second (15.6 MiB/s, 6 % of the
    // limit a second) from t = 60 s to 180 s, usage at the limit all along.
    let rate = |t: i64, per_s: f64| (t.clamp(60, 180) - 60) as f64 * per_s;
    let hold = Config::default().hold_seconds as i64;
    let mut engine = Engine::new(Config::default());
    let events = run(
        &mut engine,
        300 + hold,
        |_| 255.8 * MIB,
        |t| thrash_points(t, rate(t, 4000.0), rate(t, 4000.0), 1.0),
    );
    let thrash = episodes(&events, THRASHING);
    assert_eq!(thrash.len(), 1, "{thrash:?}");
    let (fired, cleared) = thrash[0];
    // The window's rate passes 1 % of the limit a second (640 pages/s)
    // within seconds; the next evaluation is at most 5 s later.
    assert!((60..=75).contains(&fired), "fired at {fired}");
    // After 180 s the 30 s rate falls under half the thresholds within
    // 30 s; then the hold.
    let cleared = cleared.expect("cleared");
    assert!(
        (185 + hold..=230 + hold).contains(&cleared),
        "cleared at {cleared}"
    );
    let f = events.iter().find(|f| f.id == THRASHING).unwrap();
    assert_eq!(f.severity, Severity::Critical);
    let active = engine.active();
    assert!(active.iter().all(|f| f.id != THRASHING));
    // The evidence while it lasted: the rates the counters gave.
    let refaults = f.evidence("refaults_per_second").unwrap();
    assert!(refaults > 640.0 && refaults <= 4000.0, "{refaults}");
    assert_eq!(
        f.evidence("refault_bytes_per_second"),
        Some(refaults * 4096.0)
    );
    assert!(f.evidence("major_faults_per_second").unwrap() > 100.0);
    let psi = f
        .evidence
        .iter()
        .find(|e| e.name == "pressure_some_percent")
        .unwrap();
    assert_eq!(psi.layer, Layer::Kernel, "v1: the host's PSI");
    assert!((psi.value - 1.0).abs() < 1e-6, "{psi:?}");
    assert_eq!(f.evidence("anon_bytes"), Some(180.0 * MIB));
    assert!(
        f.recommendation.contains("GOMEMLIMIT") && f.recommendation.contains("memory.high"),
        "{}",
        f.recommendation
    );
}

#[test]
fn refaults_without_the_limit_or_without_a_stall_are_no_thrashing() {
    let rate = |t: i64| t as f64 * 4000.0;
    // Far from the limit: a cache being re-read is not the limit's fault.
    let mut engine = Engine::new(Config::default());
    let events = run(
        &mut engine,
        120,
        |_| 150.0 * MIB,
        |t| thrash_points(t, rate(t), rate(t), 50.0),
    );
    assert!(episodes(&events, THRASHING).is_empty());
    // At the limit, refaulting through readahead (few major faults) with
    // no memory stall: nobody waits.
    let mut engine = Engine::new(Config::default());
    let events = run(
        &mut engine,
        120,
        |_| 255.8 * MIB,
        |t| thrash_points(t, rate(t), t as f64 * 2.0, 1.0),
    );
    assert!(episodes(&events, THRASHING).is_empty());
    // The same with the cgroup's own PSI (v2) at 30 %: a stall.
    let mut engine = Engine::new(Config::default());
    let cg = cgroup();
    let events = run(
        &mut engine,
        120,
        |_| 255.8 * MIB,
        |t| {
            let mut points = thrash_points(t, rate(t), t as f64 * 2.0, 1.0);
            points.push(p(&cg, "pressure_some_total_usec", t as f64 * 30.0 * 1e4));
            points
        },
    );
    let f = events
        .iter()
        .find(|f| f.id == THRASHING)
        .expect("a stall by the cgroup's PSI");
    let psi = f
        .evidence
        .iter()
        .find(|e| e.name == "pressure_some_percent")
        .unwrap();
    assert_eq!(psi.layer, Layer::Cgroup);
    assert!((psi.value - 30.0).abs() < 1e-6, "{psi:?}");
}

#[test]
fn a_thrashing_rate_that_dips_below_its_threshold_holds_the_finding() {
    // 2,000 refaults/s, then 600/s (under the 640/s that fires, over the
    // 320/s that holds), then back: one episode.
    let per_s = |t: i64| match t {
        0..=99 => 2000.0,
        100..=199 => 600.0,
        _ => 2000.0,
    };
    let total = |t: i64| (0..t).map(per_s).sum::<f64>();
    let mut engine = Engine::new(Config::default());
    let events = run(
        &mut engine,
        300,
        |_| 255.8 * MIB,
        |t| thrash_points(t, total(t), total(t), 1.0),
    );
    let thrash = episodes(&events, THRASHING);
    assert_eq!(thrash.len(), 1, "{thrash:?}");
    assert_eq!(thrash[0].1, None);
}
