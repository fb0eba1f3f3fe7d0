//! Time-to-OOM: when the peaks of a growing series reach the kill point.
//!
//! The kill point is what the kernel compares with: a cgroup's effective
//! limit (for a process, minus what the other members of its cgroup use), or,
//! with no limit, the host's MemTotal + SwapTotal minus what everything else
//! uses. The value compared is the peak envelope now ([`Trend::peak_now`]),
//! not the troughs: the kernel kills on the first peak over the limit.
//!
//! The range: the time left is `H / b` (headroom `H` = kill point − peak
//! now, slope `b`). Its uncertainty comes from the slope's interval
//! ([`Trend::forecast_slope_interval`], from the Theil–Sen pairwise slopes)
//! and the peak level's ([`Trend::peak_sigma`]), combined as independent
//! errors: to first order `σ_T² = (σ_H / b)² + (H σ_b / b²)²`; the earliest
//! and latest kill are `(H ∓ x σ_H) / (b ± y σ_b)` with `(x, y)` the point
//! of the circle of radius `z` (the coverage's normal quantile) along that
//! gradient, so that the linear approximation of the range holds the
//! stated coverage while the 1/b asymmetry is kept (a slope that may be
//! near zero gives a far latest kill; one that may be zero none at all).
//!
//! The kill point itself is a range too: a cgroup's working set counts its
//! active file cache, which the kernel still reclaims (as a last resort,
//! refaulting it) before it kills. So the kill comes between the working
//! set's peak reaching the limit (the prediction and the earliest kill) and
//! the rest of it reaching the limit once that cache is gone: the latest
//! kill's headroom adds the reclaimable bytes ([`forecast_with_reclaimable`];
//! measured on a two-minute Go leak in a 160 MiB cgroup: the kill came 6 s
//! after a range that left the binary's ~8 MiB of active file pages out).
//!
//! And the kill comes on a rise: a series that climbs as a staircase (a Go
//! heap's RSS stays flat while the GC reuses the spans it freed, then
//! climbs when the heap outgrows them) can sit at the limit for a whole
//! flat stretch before it asks for the page the kernel refuses. The latest
//! kill waits for one more rise: the longest wait between two rises seen
//! in the trend's samples ([`crate::trend::Trend::plateau_seconds`]),
//! scaled by how far the limit lies above the peak now (a Go heap's GC
//! cycle, and so its flat stretch, lengthens in proportion to the heap).
//! The delay is taken as uniform up to that wait and combined with the
//! growth's own error (`with_rise_wait`). Measured on two-minute Go leaks
//! at a 1 s interval: a 160 MiB cgroup's working set reached 159.4 MiB 12 s
//! before the kill and stayed there; the 99 % range without the wait ended
//! 1-3 s before the kill in 3 of 8 CI-like kills. The wait is a delay the
//! series has shown, not an uncertainty of its growth: the critical's check
//! on the latest kill (see [`severity`]) leaves it out.

use crate::finding::Severity;
use crate::trend::Trend;

/// Thresholds of the time-to-OOM finding.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Warning when the kill is predicted within this many seconds.
    pub warning_seconds: f64,
    /// Critical when the kill is predicted within this many seconds.
    pub critical_seconds: f64,
    /// No critical reaches further ahead than this many times the span of
    /// the trend behind it (a minute of growth says little about the next
    /// hour): until then the forecast is at most a warning.
    pub max_extrapolation: f64,
    /// No warning reaches further ahead than this many times the span of
    /// the trend behind it: a warning is the early word on a slow leak
    /// (its trend at an eighth of the time left), the critical waits for
    /// the trend to span a quarter of it (`max_extrapolation`).
    pub warning_max_extrapolation: f64,
    /// A critical from the longer look (not the fast rule) needs a trend
    /// of at least this many seconds, or longer than the time left: a
    /// shorter one cannot tell a leak's pace from a step its series took
    /// once (see [`severity`]), an error that grows with how far it reaches.
    pub critical_min_span_seconds: f64,
}

impl Default for ForecastConfig {
    fn default() -> ForecastConfig {
        ForecastConfig {
            warning_seconds: 1800.0,
            critical_seconds: 600.0,
            max_extrapolation: 4.0,
            warning_max_extrapolation: 8.0,
            critical_min_span_seconds: 100.0,
        }
    }
}

/// A predicted kill.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// What the kernel compares with (bytes).
    pub kill_point_bytes: f64,
    /// The peak usage now (bytes).
    pub peak_bytes: f64,
    /// The growth used (bytes per second).
    pub slope_bytes_per_second: f64,
    /// Seconds until the kill (0 when already there).
    pub time_left_seconds: f64,
    /// When the kill is predicted (ms since the epoch).
    pub predicted_kill_at_ms: i64,
    /// How long the trend behind it was observed.
    pub span_seconds: f64,
    /// The earliest time left at the trend's coverage (seconds, ≥ 0).
    pub earliest_seconds: f64,
    /// The latest time left at the trend's coverage (seconds; infinite when
    /// the slope's interval reaches zero).
    pub latest_seconds: f64,
    /// The earliest predicted kill (ms since the epoch).
    pub earliest_kill_at_ms: i64,
    /// The latest predicted kill (ms since the epoch); `None` when unbounded.
    pub latest_kill_at_ms: Option<i64>,
    /// What the kernel can still reclaim before the kill (bytes; counted in
    /// the latest kill only).
    pub reclaimable_bytes: f64,
    /// The longest wait for the rise that kills (seconds; see the module
    /// docs), counted in the latest kill.
    pub rise_wait_seconds: f64,
    /// The latest time left from the growth's uncertainty alone, before the
    /// wait for the rise is counted (seconds; what a critical checks).
    pub growth_latest_seconds: f64,
    /// Whether the fast rule found the trend behind it.
    pub fast: bool,
    /// The share of the trend's slope taken as growth (below 1 when a
    /// one-off step lifted it: [`crate::trend::step_free_share`]).
    pub growth_share: f64,
}

/// The range `(earliest, latest)` of `headroom / slope` (see the module
/// docs): `sigma_headroom` the level's standard deviation, `slope_interval`
/// the slope's interval at the normal quantile `z`.
pub fn time_left_range(
    headroom: f64,
    sigma_headroom: f64,
    slope: f64,
    slope_interval: (f64, f64),
    z: f64,
) -> (f64, f64) {
    let headroom = headroom.max(0.0);
    let z = z.max(1e-9);
    let side = |slope_sigma: f64, sign: f64| {
        let a = sigma_headroom / slope;
        let c = headroom * slope_sigma / (slope * slope);
        let norm = (a * a + c * c).sqrt();
        if norm <= 0.0 || !norm.is_finite() {
            return headroom / slope;
        }
        let (x, y) = (z * a / norm, z * c / norm);
        let denominator = slope - sign * y * slope_sigma;
        if denominator <= 0.0 {
            return f64::INFINITY;
        }
        ((headroom + sign * x * sigma_headroom) / denominator).max(0.0)
    };
    let up = (slope_interval.1 - slope).max(0.0) / z;
    let down = (slope - slope_interval.0).max(0.0) / z;
    (side(up, -1.0), side(down, 1.0))
}

/// The latest time left once the kill may also wait up to `wait` seconds
/// for its rise: the delay taken as uniform on `[0, wait]` (mean `wait/2`,
/// standard deviation `wait/√12`) and added to the growth's own error (the
/// latest end `growth_latest` `z` deviations past `central`), the two
/// independent: `central + wait/2 + √((growth_latest − central)² +
/// (z·wait/√12)²)`. Unbounded stays unbounded.
fn with_rise_wait(central: f64, growth_latest: f64, wait: f64, z: f64) -> f64 {
    if !growth_latest.is_finite() || wait <= 0.0 {
        return growth_latest;
    }
    let spread = (growth_latest - central).max(0.0);
    central + wait / 2.0 + spread.hypot(z * wait / 12f64.sqrt())
}

/// The forecast of `trend` against `kill_point_bytes`; `None` when the
/// series is not growing (see [`crate::trend`]) or the kill point is unknown
/// (not finite or not positive).
pub fn forecast(trend: &Trend, kill_point_bytes: f64) -> Option<Forecast> {
    forecast_with_reclaimable(trend, kill_point_bytes, 0.0)
}

/// [`forecast`] of a series that still holds `reclaimable_bytes` the kernel
/// takes back before it kills (a cgroup's active file cache): the latest
/// kill's headroom adds them (see the module docs); the prediction and the
/// earliest kill do not.
pub fn forecast_with_reclaimable(
    trend: &Trend,
    kill_point_bytes: f64,
    reclaimable_bytes: f64,
) -> Option<Forecast> {
    if !trend.growing || !kill_point_bytes.is_finite() || kill_point_bytes <= 0.0 {
        return None;
    }
    let slope = trend.forecast_slope_per_second();
    if slope <= 0.0 {
        return None;
    }
    let peak = trend.peak_now();
    let time_left_seconds = ((kill_point_bytes - peak) / slope).max(0.0);
    let at_ms = |seconds: f64| trend.last_ms + (seconds * 1000.0).min(1e15).round() as i64;
    let predicted_kill_at_ms = at_ms(time_left_seconds);
    let range = |headroom: f64| {
        time_left_range(
            headroom,
            trend.peak_sigma,
            slope,
            trend.forecast_slope_interval,
            trend.coverage_z,
        )
    };
    // The earliest kill allows for a true peak up to a sawtooth above the
    // sampled ones; the latest takes the sampled peak as the top and lets
    // the kernel reclaim what it still can first.
    let earliest_seconds = range(kill_point_bytes - peak - trend.peak_shortfall).0;
    let reclaimable = if reclaimable_bytes.is_finite() {
        reclaimable_bytes.max(0.0)
    } else {
        0.0
    };
    let rise_wait_seconds = if peak > 0.0 && trend.plateau_seconds.is_finite() {
        trend.plateau_seconds.max(0.0) * (kill_point_bytes / peak).max(1.0)
    } else {
        0.0
    };
    let latest_headroom = kill_point_bytes - peak + reclaimable;
    let growth_latest_seconds = range(latest_headroom).1;
    let latest_seconds = with_rise_wait(
        (latest_headroom.max(0.0) / slope).min(growth_latest_seconds),
        growth_latest_seconds,
        rise_wait_seconds,
        trend.coverage_z,
    );
    Some(Forecast {
        kill_point_bytes,
        peak_bytes: peak,
        slope_bytes_per_second: slope,
        time_left_seconds,
        predicted_kill_at_ms,
        span_seconds: trend.span_seconds,
        earliest_seconds,
        latest_seconds,
        earliest_kill_at_ms: at_ms(earliest_seconds),
        latest_kill_at_ms: latest_seconds.is_finite().then(|| at_ms(latest_seconds)),
        reclaimable_bytes: reclaimable,
        rise_wait_seconds,
        growth_latest_seconds,
        fast: trend.fast,
        growth_share: trend.growth_share,
    })
}

/// The severity of a forecast: critical when the kill is predicted within
/// `critical_seconds`, the latest kill of its range too, less the wait for
/// the rise that kills (a forecast whose range reaches past the critical
/// horizon, or has no latest end, is not sure enough to page on: on
/// oom_live's slow sawtooth leaks such first criticals came with 15-36 %
/// errors, ranges like 120 s .. 2,000 s; the wait is a known delay, not an
/// uncertainty of the growth),
/// the time left is at most `max_extrapolation` times the trend's span, and
/// a trend of the longer look spans `critical_min_span_seconds` or more than
/// the time left (the fast rule's trends need not); else
/// warning within `warning_seconds` while it is at most
/// `warning_max_extrapolation` times the span; else none.
pub fn severity(forecast: &Forecast, config: &ForecastConfig) -> Option<Severity> {
    let left = forecast.time_left_seconds;
    let reach = |ratio: f64| left <= ratio * forecast.span_seconds;
    if left <= config.critical_seconds
        && reach(config.max_extrapolation)
        && forecast.growth_latest_seconds <= config.critical_seconds
        && (forecast.fast || forecast.span_seconds >= config.critical_min_span_seconds.min(left))
    {
        Some(Severity::Critical)
    } else if left <= config.warning_seconds && reach(config.warning_max_extrapolation) {
        Some(Severity::Warning)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trend::{analyse, TrendConfig};

    #[test]
    fn a_line_reaches_its_limit_when_arithmetic_says() {
        // 100 MB + 1 MB/s sampled every 5 s for 2 min: limit 400 MB.
        let points: Vec<(i64, f64)> = (0..25)
            .map(|i| (i * 5000, 1e8 + 1e6 * (i * 5) as f64))
            .collect();
        let trend = analyse(&points, &TrendConfig::default()).unwrap();
        let f = forecast(&trend, 4e8).unwrap();
        assert!((f.time_left_seconds - 180.0).abs() < 1e-6, "{f:?}");
        assert_eq!(f.predicted_kill_at_ms, 120_000 + 180_000);
        let config = ForecastConfig::default();
        assert_eq!(severity(&f, &config), Some(Severity::Critical));
        assert_eq!(forecast(&trend, f64::NAN), None);
        let far = forecast(&trend, 1e8 + 1e6 * 2000.0).unwrap();
        assert_eq!(severity(&far, &config), None);
        // A kill 4.5 spans ahead (under 10 min) is only a warning, as is
        // one 7.5 spans ahead; 8.5 spans ahead is nothing.
        let span = f.span_seconds;
        let ahead = |spans: f64| {
            let left = spans * span;
            forecast(&trend, 1e8 + 1e6 * (120.0 + left)).unwrap()
        };
        assert!(4.5 * span <= 600.0 && 8.5 * span <= 1800.0, "{span}");
        assert_eq!(severity(&ahead(4.5), &config), Some(Severity::Warning));
        assert_eq!(severity(&ahead(7.5), &config), Some(Severity::Warning));
        let beyond = ahead(8.5);
        assert_eq!(severity(&beyond, &config), None);
    }

    #[test]
    fn a_critical_from_the_longer_look_needs_100_s_of_trend_or_more_than_is_left() {
        // 1 MB/s for 2 min, 300 s from the limit: critical on its own.
        let points: Vec<(i64, f64)> = (0..25)
            .map(|i| (i * 5000, 1e8 + 1e6 * (i * 5) as f64))
            .collect();
        let trend = analyse(&points, &TrendConfig::default()).unwrap();
        let f = forecast(&trend, trend.peak_now() + 3e8).unwrap();
        let config = ForecastConfig::default();
        assert_eq!(config.critical_min_span_seconds, 100.0);
        assert_eq!(severity(&f, &config), Some(Severity::Critical), "{f:?}");
        // The same 300 s on an 85 s trend (4 spans would allow it): the
        // trend of oom_live's slow leak whose step made it 28 % early.
        let short = Forecast {
            span_seconds: 85.0,
            ..f.clone()
        };
        assert_eq!(severity(&short, &config), Some(Severity::Warning));
        // From the fast rule, or with less left than the trend is long:
        // critical.
        let fast = Forecast {
            fast: true,
            ..short.clone()
        };
        assert_eq!(severity(&fast, &config), Some(Severity::Critical));
        let imminent = Forecast {
            time_left_seconds: 80.0,
            ..short
        };
        assert_eq!(severity(&imminent, &config), Some(Severity::Critical));
    }

    #[test]
    fn a_critical_needs_its_latest_kill_inside_the_critical_horizon() {
        // 1 MB/s under a noisy saw (every 5 s for 2 min), 300 s from a
        // limit: critical while the range's latest end is inside 10 min;
        // the same forecast with a range reaching past it is a warning.
        let points: Vec<(i64, f64)> = (0..25)
            .map(|i| {
                let noise = [0.0, 9e6, 2e6, 7e6, 4e6][(i % 5) as usize];
                (i * 5000, 1e8 + 1e6 * (i * 5) as f64 + noise)
            })
            .collect();
        let trend = analyse(&points, &TrendConfig::default()).unwrap();
        let config = ForecastConfig::default();
        let f = forecast(&trend, trend.peak_now() + 3e8).unwrap();
        assert!(f.latest_seconds > f.time_left_seconds, "{f:?}");
        assert!(f.latest_seconds <= config.critical_seconds, "{f:?}");
        assert_eq!(severity(&f, &config), Some(Severity::Critical));
        let unsure = Forecast {
            latest_seconds: config.critical_seconds + 1.0,
            growth_latest_seconds: config.critical_seconds + 1.0,
            ..f.clone()
        };
        assert_eq!(severity(&unsure, &config), Some(Severity::Warning));
        let unbounded = Forecast {
            latest_seconds: f64::INFINITY,
            growth_latest_seconds: f64::INFINITY,
            latest_kill_at_ms: None,
            ..f
        };
        assert_eq!(severity(&unbounded, &config), Some(Severity::Warning));
    }

    #[test]
    fn reclaimable_cache_moves_only_the_latest_kill() {
        // 100 MB + 1 MB/s with a little noise, every second for 2 min;
        // 10 MB of active file cache the kernel can take back first.
        let points: Vec<(i64, f64)> = (0..120)
            .map(|i| {
                (
                    i * 1000,
                    1e8 + 1e6 * i as f64 + ((i * 7919) % 13) as f64 * 1e4,
                )
            })
            .collect();
        let trend = analyse(&points, &TrendConfig::default()).unwrap();
        let plain = forecast(&trend, 4e8).unwrap();
        let with = forecast_with_reclaimable(&trend, 4e8, 1e7).unwrap();
        assert_eq!(with.time_left_seconds, plain.time_left_seconds);
        assert_eq!(with.earliest_seconds, plain.earliest_seconds);
        // 10 MB more headroom at about 1 MB/s: about 10 s later.
        let later = with.latest_seconds - plain.latest_seconds;
        assert!(
            (9.0..11.0).contains(&later),
            "{later} s: {plain:?} {with:?}"
        );
        assert_eq!(with.reclaimable_bytes, 1e7);
        // Nothing reclaimable, or nonsense: the plain forecast.
        for nothing in [0.0, -5.0, f64::NAN] {
            let same = forecast_with_reclaimable(&trend, 4e8, nothing).unwrap();
            assert_eq!(same.latest_seconds, plain.latest_seconds);
        }
    }

    #[test]
    fn a_staircase_may_kill_a_flat_stretch_after_its_level_says() {
        // A Go heap's RSS at 1 s: 10 MB up every 10 s (1 MB/s on average,
        // flat for 9 s after each step), from 50 MB to 100 MB, 160 MB the
        // limit: a kill may wait at the limit for one more flat stretch,
        // 1.6 times as long there (160 / 100 MB) as it is now.
        let steps: Vec<(i64, f64)> = (0..60)
            .map(|i| (i * 1000, 4e7 + 1e7 * (i / 10 + 1) as f64))
            .collect();
        let trend = crate::trend::analyse_for_forecast(&steps, 0, &TrendConfig::default())
            .expect("a trend");
        assert!(
            (8.0..=9.0).contains(&trend.plateau_seconds),
            "{}",
            trend.plateau_seconds
        );
        let f = forecast(&trend, 1.6e8).unwrap();
        let scale = 1.6e8 / f.peak_bytes;
        assert!(
            (f.rise_wait_seconds - trend.plateau_seconds * scale).abs() < 1e-9,
            "{f:?}"
        );
        // The wait, uniform on [0, W], on top of the growth's own range:
        // the latest end moves by between W/2 and W.
        let added = f.latest_seconds - f.growth_latest_seconds;
        let w = f.rise_wait_seconds;
        assert!(w > 5.0 && added >= w / 2.0 && added <= w + 1e-9, "{f:?}");
        // The wait widens the range, not the doubt: a critical whose latest
        // kill is past the horizon by the wait only is still critical.
        let config = ForecastConfig::default();
        let at_horizon = Forecast {
            latest_seconds: config.critical_seconds - 1.0 + w,
            growth_latest_seconds: config.critical_seconds - 1.0,
            time_left_seconds: 100.0,
            ..f.clone()
        };
        assert_eq!(severity(&at_horizon, &config), Some(Severity::Critical));
        let past = Forecast {
            latest_seconds: config.critical_seconds + 1.0 + w,
            growth_latest_seconds: config.critical_seconds + 1.0,
            time_left_seconds: 100.0,
            ..f
        };
        assert_eq!(severity(&past, &config), Some(Severity::Warning));
    }
}
