//! The detectors on simulated Go services (tests/common): leaks must be
//! forecast early and accurately, healthy shapes must yield nothing.

mod common;

use common::{run, simulate, Shape, MIB};
use memlens_analyze::finding::{GROWTH, TIME_TO_OOM};
use memlens_analyze::{Finding, Severity};

/// Lead time and error of the first critical time-to-OOM finding.
#[derive(Debug)]
struct Verdict {
    leak_seconds: f64,
    lead_seconds: f64,
    lead_share: f64,
    predicted_seconds: f64,
    error_share: f64,
}

fn first_critical(findings: &[(f64, Finding)]) -> Option<&(f64, Finding)> {
    findings.iter().find(|(_, f)| {
        f.id == TIME_TO_OOM && f.severity == Severity::Critical && f.cleared_at_ms.is_none()
    })
}

fn verdict(name: &str, shape: &Shape) -> Verdict {
    let (samples, kill) = simulate(shape);
    let kill = kill.unwrap_or_else(|| panic!("{name}: the simulation was never killed"));
    let findings = run(shape, &samples);
    let (t, f) = first_critical(&findings).unwrap_or_else(|| {
        panic!("{name}: no critical time-to-OOM before the kill: {findings:#?}")
    });
    let leak_seconds = kill - shape.leak_start_seconds;
    let lead_seconds = kill - t;
    let predicted_seconds = f.evidence("time_left_seconds").unwrap();
    let v = Verdict {
        leak_seconds,
        lead_seconds,
        lead_share: lead_seconds / leak_seconds,
        predicted_seconds,
        error_share: (predicted_seconds - lead_seconds).abs() / lead_seconds,
    };
    println!(
        "{name}: leak {:.0} s, critical at {t:.0} s on {:?}: lead {:.0} s ({:.0}% of the leak), \
         predicted {:.0} s (error {:.1}%)",
        v.leak_seconds,
        f.target.kind(),
        v.lead_seconds,
        v.lead_share * 100.0,
        v.predicted_seconds,
        v.error_share * 100.0
    );
    v
}

fn assert_bounds(name: &str, v: &Verdict) {
    assert!(v.lead_share >= 0.6, "{name}: lead {v:?}");
    assert!(v.error_share <= 0.25, "{name}: error {v:?}");
}

fn fast_leak(seed: u64) -> Shape {
    // 40 MiB live, 20 MiB/min leak: the peaks rise 40 MiB/min to 256 MiB.
    Shape {
        leak_bytes_per_second: 20.0 * MIB / 60.0,
        seed,
        ..Shape::go(40.0)
    }
}

fn slow_leak(seed: u64) -> Shape {
    // Sawtooth height 40 MiB; the leak adds 3 MiB/min (7.5% of it); the
    // limit sits so that the kill comes after about five minutes.
    Shape {
        leak_bytes_per_second: 3.0 * MIB / 60.0,
        limit_bytes: 120.0 * MIB,
        seed,
        ..Shape::go(40.0)
    }
}

#[test]
fn a_steady_leak_is_critical_early_and_accurate() {
    let v = verdict("fast leak", &fast_leak(1));
    assert_bounds("fast leak", &v);
}

#[test]
fn a_leak_small_against_its_sawtooth_is_critical_early_and_accurate() {
    let v = verdict("slow leak", &slow_leak(2));
    assert_bounds("slow leak", &v);
}

#[test]
fn a_leak_after_a_quiet_start() {
    let shape = Shape {
        leak_start_seconds: 120.0,
        ..fast_leak(3)
    };
    let v = verdict("late leak", &shape);
    assert_bounds("late leak", &v);
}

fn assert_quiet(name: &str, shape: &Shape) {
    let (samples, kill) = simulate(shape);
    assert_eq!(kill, None, "{name}: killed");
    let findings = run(shape, &samples);
    let noisy: Vec<_> = findings
        .iter()
        .filter(|(_, f)| f.id == GROWTH || f.id == TIME_TO_OOM)
        .collect();
    assert!(noisy.is_empty(), "{name}: {noisy:#?}");
}

#[test]
fn steady_and_churn_and_ramps_are_quiet() {
    assert_quiet("steady", &Shape::go(32.0));
    assert_quiet(
        "steady with RSS following the GC",
        &Shape {
            rss_release_share: 1.0,
            ..Shape::go(32.0)
        },
    );
    assert_quiet(
        "alloc-churn",
        &Shape {
            gc_period_seconds: 0.2,
            noise_bytes: 1.0 * MIB,
            ..Shape::go(4.0)
        },
    );
    assert_quiet(
        "slow start-up ramp",
        &Shape {
            ramp_seconds: 20.0,
            ..Shape::go(100.0)
        },
    );
    assert_quiet(
        "a new arena once",
        &Shape {
            rss_steps: vec![(200.0, 4.0 * MIB)],
            ..Shape::go(32.0)
        },
    );
}

/// At the agent's 1 s interval (`watch --interval 1`).
fn at_one_second(shape: Shape) -> Shape {
    Shape {
        interval_seconds: 1.0,
        runtime_every: 1,
        ..shape
    }
}

#[test]
fn a_leak_killing_in_two_minutes_at_one_second_is_critical_for_most_of_it() {
    // 40 MiB live leaking 0.68 MiB/s: the peaks reach 256 MiB in ~2 min.
    for seed in 1..4 {
        let shape = at_one_second(Shape {
            leak_bytes_per_second: 0.68 * MIB,
            seed,
            ..Shape::go(40.0)
        });
        let name = format!("two-minute leak at 1 s, seed {seed}");
        let v = verdict(&name, &shape);
        assert!(v.leak_seconds < 150.0, "{name}: {v:?}");
        assert!(v.lead_share >= 0.6, "{name}: lead {v:?}");
        assert!(v.error_share <= 0.25, "{name}: error {v:?}");
    }
}

#[test]
fn sawtooth_churn_ramps_and_steps_are_quiet_at_one_and_five_seconds() {
    for interval in [1.0, 5.0] {
        let at = |shape: Shape| Shape {
            interval_seconds: interval,
            runtime_every: if interval < 5.0 { 1 } else { 6 },
            duration_seconds: 300.0,
            ..shape
        };
        for gc_period_seconds in [0.5, 2.0, 8.0, 20.0] {
            assert_quiet(
                &format!(
                    "GC sawtooth every {gc_period_seconds} s, RSS following it, at {interval} s"
                ),
                &at(Shape {
                    gc_period_seconds,
                    rss_release_share: 1.0,
                    ..Shape::go(60.0)
                }),
            );
        }
        assert_quiet(
            &format!("alloc churn noise at {interval} s"),
            &at(Shape {
                gc_period_seconds: 0.2,
                noise_bytes: 2.0 * MIB,
                ..Shape::go(4.0)
            }),
        );
        for ramp_seconds in [10.0, 20.0] {
            assert_quiet(
                &format!("{ramp_seconds} s start-up ramp to 80 % of the limit at {interval} s"),
                &at(Shape {
                    ramp_seconds,
                    ..Shape::go(97.0)
                }),
            );
        }
        assert_quiet(
            &format!("a step of 80 MiB at {interval} s"),
            &at(Shape {
                rss_steps: vec![(60.0, 80.0 * MIB)],
                ..Shape::go(32.0)
            }),
        );
    }
}
