//! Sweeps over many simulated services (tests/common), each drawn from a
//! fixed seed so a run is reproducible: every healthy shape must be quiet
//! (no growth, no time-to-OOM finding at all); steady leaks that kill
//! within minutes must be critical early and accurately in at least 90% of
//! the shapes (the rest is printed). Plus a proptest: the engine never
//! panics, whatever points it is fed.

mod common;

use common::{run, simulate, Rng, Shape, MIB};
use memlens_analyze::finding::{GROWTH, TIME_TO_OOM};
use memlens_analyze::{Config, Engine, Severity};
use memlens_model::series::{Entity, Point};
use proptest::prelude::*;

fn between(rng: &mut Rng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.unit()
}

#[test]
fn healthy_shapes_are_quiet() {
    let mut rng = Rng::new(20261121);
    let mut failures = Vec::new();
    for case in 0..48 {
        let shape = Shape {
            gogc: between(&mut rng, 50.0, 200.0),
            gc_period_seconds: between(&mut rng, 0.3, 10.0),
            ramp_seconds: between(&mut rng, 0.0, 20.0),
            rss_release_share: between(&mut rng, 0.0, 1.0),
            noise_bytes: between(&mut rng, 0.0, 1.0) * MIB,
            limit_bytes: 1024.0 * MIB,
            duration_seconds: 900.0,
            seed: case,
            ..Shape::go(between(&mut rng, 4.0, 150.0))
        };
        let (samples, kill) = simulate(&shape);
        assert_eq!(kill, None);
        let findings = run(&shape, &samples);
        let noisy: Vec<_> = findings
            .iter()
            .filter(|(_, f)| f.id == GROWTH || f.id == TIME_TO_OOM)
            .map(|(t, f)| (*t, f.id, f.target.kind()))
            .collect();
        if !noisy.is_empty() {
            failures.push(format!("{shape:?}: {noisy:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn steady_leaks_are_critical_early_and_accurately() {
    let mut rng = Rng::new(7);
    let cases = 48usize;
    let mut misses = Vec::new();
    let mut leads = Vec::new();
    let mut errors = Vec::new();
    let mut inside = 0;
    for case in 0..cases {
        let live_mib = between(&mut rng, 16.0, 80.0);
        let kill_minutes = between(&mut rng, 3.5, 10.0);
        // The peaks rise twice the leak (GOGC 100): set the leak so that the
        // peaks go from where they start to 256 MiB in `kill_minutes`.
        let start_peak = live_mib * 2.0 + 10.0;
        let shape = Shape {
            leak_bytes_per_second: (256.0 - start_peak) / 2.0 / (kill_minutes * 60.0) * MIB,
            leak_start_seconds: between(&mut rng, 0.0, 10.0),
            gc_period_seconds: between(&mut rng, 0.5, 5.0),
            rss_release_share: between(&mut rng, 0.0, 0.1),
            seed: case as u64,
            ..Shape::go(live_mib)
        };
        let (samples, kill) = simulate(&shape);
        let kill = kill.expect("killed");
        let findings = run(&shape, &samples);
        let critical = findings.iter().find(|(_, f)| {
            f.id == TIME_TO_OOM && f.severity == Severity::Critical && f.cleared_at_ms.is_none()
        });
        let Some((t, f)) = critical else {
            misses.push(format!("no critical: {shape:?}"));
            continue;
        };
        let leak_seconds = kill - shape.leak_start_seconds;
        let lead = (kill - t) / leak_seconds;
        let predicted = f.evidence("time_left_seconds").unwrap();
        let error = (predicted - (kill - t)).abs() / (kill - t);
        leads.push(lead);
        errors.push(error);
        let kill_ms = common::EPOCH_MS as f64 + kill * 1000.0;
        let earliest = f.evidence("predicted_kill_earliest_at_ms").unwrap();
        let latest = f
            .evidence("predicted_kill_latest_at_ms")
            .unwrap_or(f64::INFINITY);
        inside += usize::from(earliest <= kill_ms && kill_ms <= latest);
        if lead < 0.6 || error > 0.25 {
            misses.push(format!(
                "lead {:.0}%, error {:.0}%: {shape:?}",
                lead * 100.0,
                error * 100.0
            ));
        }
    }
    let pct = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q) as usize] * 100.0
    };
    println!(
        "{cases} leaks: {} within bounds; lead (share of the leak) min {:.0}% median {:.0}%; \
         error median {:.1}% p90 {:.1}% max {:.1}%",
        cases - misses.len(),
        pct(&mut leads, 0.0),
        pct(&mut leads, 0.5),
        pct(&mut errors, 0.5),
        pct(&mut errors, 0.9),
        pct(&mut errors, 1.0)
    );
    for m in &misses {
        println!("  miss: {m}");
    }
    // Not bounded: RSS here drops after each GC and is back at its top only
    // at the end of a cycle, which 5 s samples rarely see (see the range's
    // limits in docs/findings.md); the coverage on sampled peaks is
    // forecast_ranges_hold_the_kill_about_as_often_as_stated's.
    println!("the kill inside the 90 % range at the first critical: {inside} of {cases}");
    assert!(misses.len() * 10 <= cases, "{misses:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary values, times (also back in time and repeated), entities and
    /// metrics never make the engine panic, and its state stays bounded.
    #[test]
    fn the_engine_never_panics(
        steps in proptest::collection::vec(
            (0i64..10_000, 0usize..4, 0usize..6, prop_oneof![
                any::<f64>(), 0.0f64..1e10, Just(f64::NAN), Just(f64::INFINITY)
            ]),
            0..300,
        ),
    ) {
        let metrics = ["rss_bytes", "usage_bytes", "effective_limit_bytes",
                       "go_sys_bytes", "go_gomemlimit_bytes", "mem_total_bytes"];
        let entities = [
            Entity::Host,
            Entity::Process { pid: 1, start_time: 1 },
            Entity::Process { pid: 2, start_time: 1 },
            Entity::Cgroup { path: "/x".to_string() },
        ];
        let mut engine = Engine::new(Config::default());
        engine.set_process_cgroup(&entities[1], "/x");
        let mut ts = 0i64;
        for (dt, e, m, value) in steps {
            ts += dt - 1000;
            let point = Point { entity: entities[e].clone(), metric: metrics[m], value };
            for f in engine.observe(ts, &[point]) {
                prop_assert!(f.evidence.iter().all(|e| !e.name.is_empty()));
            }
            prop_assert!(engine.tracked_entities() <= entities.len());
        }
    }
}

/// The range of the first critical time-to-OOM holds the kill about as
/// often as its stated coverage (90 %) over many noisy leaks whose peaks
/// the samples see (RSS holding the GC's peaks, as Go's scavenger mostly
/// does), at 1 s and 5 s intervals: not much less (too narrow), not all
/// of them (too wide to mean anything).
#[test]
fn forecast_ranges_hold_the_kill_about_as_often_as_stated() {
    let mut rng = Rng::new(90);
    let cases = 80usize;
    let mut inside = 0;
    let mut widths = Vec::new();
    for case in 0..cases {
        let live_mib = between(&mut rng, 16.0, 80.0);
        let kill_minutes = between(&mut rng, 2.0, 10.0);
        let start_peak = live_mib * 2.0 + 10.0;
        let shape = Shape {
            leak_bytes_per_second: (256.0 - start_peak) / 2.0 / (kill_minutes * 60.0) * MIB,
            gc_period_seconds: between(&mut rng, 0.5, 5.0),
            noise_bytes: between(&mut rng, 0.0, 3.0) * MIB,
            interval_seconds: if case % 4 == 0 { 1.0 } else { 5.0 },
            runtime_every: 6,
            seed: 1000 + case as u64,
            ..Shape::go(live_mib)
        };
        let (samples, kill) = simulate(&shape);
        let kill = kill.expect("killed");
        let findings = run(&shape, &samples);
        let Some((t, f)) = findings.iter().find(|(_, f)| {
            f.id == TIME_TO_OOM && f.severity == Severity::Critical && f.cleared_at_ms.is_none()
        }) else {
            panic!("no critical: {shape:?}");
        };
        let kill_ms = common::EPOCH_MS as f64 + kill * 1000.0;
        let earliest = f.evidence("predicted_kill_earliest_at_ms").unwrap();
        let latest = f
            .evidence("predicted_kill_latest_at_ms")
            .unwrap_or(f64::INFINITY);
        inside += usize::from(earliest <= kill_ms && kill_ms <= latest);
        widths.push((latest - earliest) / 1000.0 / (kill - t));
    }
    widths.sort_by(f64::total_cmp);
    println!(
        "the kill inside the 90 % range: {inside} of {cases}; range width / time left: \
         median {:.2}, p90 {:.2}",
        widths[cases / 2],
        widths[cases * 9 / 10]
    );
    // 90 % of 80: 72, binomial sd 2.7: [64, 79] is about ±3 sd.
    assert!((64..=79).contains(&inside), "{inside} of {cases}");
}
