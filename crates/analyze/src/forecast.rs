//! Time-to-OOM: when the peaks of a growing series reach the kill point.
//!
//! The kill point is what the kernel compares with: a cgroup's effective
//! limit (for a process, minus what the other members of its cgroup use), or,
//! with no limit, the host's MemTotal + SwapTotal minus what everything else
//! uses. The value compared is the peak envelope now ([`Trend::peak_now`]),
//! not the troughs: the kernel kills on the first peak over the limit.

use crate::finding::Severity;
use crate::trend::Trend;

/// Thresholds of the time-to-OOM finding.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Warning when the kill is predicted within this many seconds.
    pub warning_seconds: f64,
    /// Critical when the kill is predicted within this many seconds.
    pub critical_seconds: f64,
    /// No forecast reaches further ahead than this many times the span of
    /// the trend behind it (a minute of growth says little about the next
    /// hour): until then the finding waits.
    pub max_extrapolation: f64,
}

impl Default for ForecastConfig {
    fn default() -> ForecastConfig {
        ForecastConfig {
            warning_seconds: 1800.0,
            critical_seconds: 600.0,
            max_extrapolation: 4.0,
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
}

/// The forecast of `trend` against `kill_point_bytes`; `None` when the
/// series is not growing (see [`crate::trend`]) or the kill point is unknown
/// (not finite or not positive).
pub fn forecast(trend: &Trend, kill_point_bytes: f64) -> Option<Forecast> {
    if !trend.growing || !kill_point_bytes.is_finite() || kill_point_bytes <= 0.0 {
        return None;
    }
    let slope = trend.forecast_slope_per_second();
    if slope <= 0.0 {
        return None;
    }
    let peak = trend.peak_now();
    let time_left_seconds = ((kill_point_bytes - peak) / slope).max(0.0);
    let predicted_kill_at_ms =
        trend.last_ms + (time_left_seconds * 1000.0).min(1e15).round() as i64;
    Some(Forecast {
        kill_point_bytes,
        peak_bytes: peak,
        slope_bytes_per_second: slope,
        time_left_seconds,
        predicted_kill_at_ms,
        span_seconds: trend.span_seconds,
    })
}

/// The severity of a forecast: critical within `critical_seconds`, warning
/// within `warning_seconds`, else none; none either while the time left is
/// more than `max_extrapolation` times the trend's span.
pub fn severity(forecast: &Forecast, config: &ForecastConfig) -> Option<Severity> {
    if forecast.time_left_seconds > config.max_extrapolation * forecast.span_seconds {
        None
    } else if forecast.time_left_seconds <= config.critical_seconds {
        Some(Severity::Critical)
    } else if forecast.time_left_seconds <= config.warning_seconds {
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
    }
}
