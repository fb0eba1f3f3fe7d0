//! The seeds' estimator (EWMA alpha 0.15, slope over the last three smoothed
//! points) against ours (Theil–Sen on bucket envelopes, cut at the last
//! change) on the same simulated services. Prints the figures
//! (`cargo test -p memlens-analyze --test ewma_vs_theil_sen -- --nocapture`).

mod common;

use common::{simulate, Shape, MIB};
use memlens_analyze::forecast::{forecast, severity, ForecastConfig};
use memlens_analyze::robust::{ewma_slope, median};
use memlens_analyze::trend::{analyse_recent, TrendConfig};

/// Per tick from the first minute until the kill: the relative error of each
/// estimator's time left (None when it has no forecast) and whether each
/// would warn (time left under 30 min).
struct Run {
    ewma_errors: Vec<f64>,
    ours_errors: Vec<f64>,
    ewma_warnings: usize,
    ours_warnings: usize,
    ticks: usize,
}

fn compare(shape: &Shape) -> Run {
    let (samples, kill) = simulate(shape);
    let kill_point = shape.limit_bytes - shape.page_cache_bytes;
    let config = TrendConfig::default();
    let thresholds = ForecastConfig::default();
    let mut run = Run {
        ewma_errors: Vec::new(),
        ours_errors: Vec::new(),
        ewma_warnings: 0,
        ours_warnings: 0,
        ticks: 0,
    };
    let pts: Vec<(i64, f64)> = samples
        .iter()
        .map(|s| ((s.t_seconds * 1000.0).round() as i64, s.rss_bytes))
        .collect();
    let secs: Vec<(f64, f64)> = pts.iter().map(|p| (p.0 as f64 / 1000.0, p.1)).collect();
    for i in 12..pts.len() {
        let now = secs[i].0;
        run.ticks += 1;
        let actual = kill.map(|k| k - now);
        // The seeds: EWMA over everything so far, forecast from the last value.
        if let Some(slope) = ewma_slope(&secs[..=i], 0.15) {
            if slope > 0.0 {
                let left = (kill_point - secs[i].1) / slope;
                if left <= thresholds.warning_seconds {
                    run.ewma_warnings += 1;
                }
                if let Some(a) = actual {
                    run.ewma_errors.push((left - a).abs() / a);
                }
            }
        }
        let window_start = pts.partition_point(|p| p.0 < pts[i].0 - 900_000);
        if let Some(trend) = analyse_recent(&pts[window_start..=i], &config) {
            if let Some(f) = forecast(&trend, kill_point) {
                if severity(&f, &thresholds).is_some() {
                    run.ours_warnings += 1;
                }
                if let Some(a) = actual {
                    run.ours_errors.push((f.time_left_seconds - a).abs() / a);
                }
            }
        }
    }
    run
}

fn leak() -> Shape {
    Shape {
        leak_bytes_per_second: 20.0 * MIB / 60.0,
        ..Shape::go(40.0)
    }
}

#[test]
fn theil_sen_envelopes_beat_the_seeds_ewma() {
    let pct = |v: &[f64]| median(v).map_or(f64::NAN, |m| m * 100.0);
    let mut ours_total = 0.0;
    let mut ewma_total = 0.0;
    for seed in 1..=5 {
        let r = compare(&Shape { seed, ..leak() });
        println!(
            "leak seed {seed}: median |error| of time left: EWMA {:.1}% over {} ticks, \
             Theil–Sen {:.1}% over {} ticks",
            pct(&r.ewma_errors),
            r.ewma_errors.len(),
            pct(&r.ours_errors),
            r.ours_errors.len()
        );
        ours_total += pct(&r.ours_errors);
        ewma_total += pct(&r.ewma_errors);
    }
    println!(
        "leak, mean of medians: EWMA {:.1}%, Theil–Sen {:.1}%",
        ewma_total / 5.0,
        ours_total / 5.0
    );
    assert!(
        ours_total < ewma_total,
        "ours {ours_total} vs EWMA {ewma_total}"
    );

    // Healthy services: a steady heap whose RSS follows the GC (a sawtooth
    // in what the kernel counts) and one where RSS holds the peaks.
    for (name, shape) in [
        (
            "steady, RSS follows the GC",
            Shape {
                rss_release_share: 1.0,
                limit_bytes: 128.0 * MIB,
                ..Shape::go(40.0)
            },
        ),
        (
            "steady, RSS holds the peaks",
            Shape {
                limit_bytes: 128.0 * MIB,
                ..Shape::go(40.0)
            },
        ),
    ] {
        let r = compare(&shape);
        println!(
            "{name}: false warnings (< 30 min to a 128 MiB kill that never comes): \
             EWMA {} of {} ticks, Theil–Sen {}",
            r.ewma_warnings, r.ticks, r.ours_warnings
        );
        assert_eq!(r.ours_warnings, 0, "{name}");
        if shape.rss_release_share > 0.0 {
            assert!(r.ewma_warnings > 0, "{name}: EWMA should be fooled");
        }
    }
}
