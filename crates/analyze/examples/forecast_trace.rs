//! Every evaluation of a cgroup's time-to-OOM over a recorded series, for
//! checking a forecast's range offline against the kernel's kill
//! (`scripts/forecast_coverage.py` feeds it a recording and scores it).
//!
//! stdin: lines `ts_ms working_set_bytes kill_point_bytes reclaimable_bytes`
//! (oldest first). Argument: the coverage (default 0.9). Prints per sample:
//! `ts_ms time_left earliest latest severity fast span`.

use memlens_analyze::forecast::{forecast_with_reclaimable, severity};
use memlens_analyze::trend::{analyse_for_forecast, Window};
use memlens_analyze::Config;
use std::io::BufRead;

fn main() {
    let coverage: f64 = std::env::args()
        .nth(1)
        .map_or(0.9, |a| a.parse().expect("coverage"));
    // The agent's defaults, as its engine uses them.
    let engine = Config::default();
    let mut config = engine.trend.clone();
    config.coverage = coverage;
    let forecast_config = engine.forecast.clone();
    let skip_ms = (engine.forecast_skip_startup_seconds * 1000.0) as i64;
    let mut window = Window::default();
    let mut first_ms = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().expect("number"))
            .collect();
        let (ts, ws, kill, reclaimable) = (v[0] as i64, v[1], v[2], v[3]);
        let first = *first_ms.get_or_insert(ts);
        window.push(ts, ws, &config);
        let points = window.points();
        let started = points.partition_point(|p| p.0 < first + skip_ms);
        let Some(trend) = analyse_for_forecast(&points, started, &config) else {
            continue;
        };
        let Some(f) = forecast_with_reclaimable(&trend, kill, reclaimable) else {
            continue;
        };
        let sev = severity(&f, &forecast_config);
        println!(
            "{ts} {:.1} {:.1} {:.1} {} {} {:.0}",
            f.time_left_seconds,
            f.earliest_seconds,
            f.latest_seconds,
            sev.map_or("-".to_string(), |s| format!("{s:?}")),
            f.fast,
            f.span_seconds
        );
    }
}
