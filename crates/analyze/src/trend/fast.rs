//! The fast rule: growth so consistent that a few samples prove it.
//!
//! The bucketed trend ([`super::analyse_recent`]) needs a minute of 15 s
//! buckets (plus the start-up skip) whatever the data say; a leak that kills
//! in two minutes is then half over before it is forecast. Growth is
//! *unambiguous* when, over a suffix of the window (the newest samples back
//! to some start), all of these hold:
//!
//! - it spans at least [`TrendConfig::fast_min_span_seconds`] (30 s) and
//!   [`TrendConfig::fast_min_samples`] (12) samples;
//! - **monotone troughs**: no sample is followed, anywhere later in the
//!   suffix, by one lower than itself by more than
//!   [`TrendConfig::fast_max_fall_share`] (1/8) of the suffix's rise. A GC
//!   sawtooth, alloc churn or noise fall back by their whole height every
//!   period: they pass only if the suffix rises eight times that height,
//!   i.e. if the growth is far above the series' noise;
//! - **many steps**: the lower envelope (each sample's minimum with every
//!   later one) rises at least [`TrendConfig::fast_min_rises`] (4) separate
//!   times, and no single rise is more than half the total: a one-off step
//!   (a start-up allocation, a new arena, a batch working set arriving) is
//!   no trend;
//! - **steady**: the older and the newer half (by time) of the suffix rise
//!   within a factor 1/[`TrendConfig::persistence_ratio`] (2) of each other
//!   (a start-up ramp slowing down as it levels off is no trend), each
//!   quarter rises by at least a quarter of the average quarter's rise (a
//!   ramp, a plateau, then a rise is no trend) and the newest quarter by at
//!   least `persistence_ratio` of it (a ramp that just stopped is no trend);
//! - **unprecedented**: the newest sample lies above every sample of the
//!   window before the suffix by at least half the suffix's rise. A batch
//!   job's working set built again, or a sawtooth's next tooth, climbs
//!   steadily too, but to where the series has already been (and came back
//!   from): on a recorded 1 s benchmark a batch job's 80 MiB every minute
//!   was critical ("22 s left") and a sawtooth leak's tooth gave a first
//!   critical 93 % off. Those are left to the bucketed rule, which sees the
//!   teeth as a sawtooth.
//!
//! The longest such suffix is taken. The trend is the Theil–Sen line through
//! its samples' peaks (at most 64 points: block maxima when there are more),
//! with its slope's interval ([`crate::robust::theil_sen_interval`]); the
//! peak shortfall is the largest rise between two samples beyond the line's
//! (a staircase can climb its next step at any moment).
//!
//! Limits: a linear start-up ramp lasting longer than the minimum span, or a
//! working set built at a steady pace for longer than it and then freed,
//! is growth by this rule until it stops (the forecast's
//! `max_extrapolation` still requires the rise seen to be a quarter of the
//! headroom left). Cost: O(n) for the scan, O(64²) for the fit.

use super::{coverage_z, plateau_seconds, widened_interval, Trend, TrendConfig};
use crate::robust::{mad_sigma, theil_sen, theil_sen_interval};

/// Most points the fit goes through.
const MAX_FIT_POINTS: usize = 64;

/// The suffix must end above every earlier sample of the window by at
/// least this share of its rise (see the module docs).
const UNPRECEDENTED_SHARE: f64 = 0.5;

/// The longest suffix of `points` that is unambiguous growth by the rules
/// in the module docs: the index of its first sample.
fn unambiguous_start(points: &[(i64, f64)], config: &TrendConfig) -> Option<usize> {
    let n = points.len();
    if n < config.fast_min_samples.max(3) {
        return None;
    }
    let t = |i: usize| points[i].0 as f64 / 1000.0;
    // floor[i]: the lowest of sample i and every later one.
    let mut floor = vec![0.0; n];
    let mut lowest = f64::INFINITY;
    for i in (0..n).rev() {
        lowest = lowest.min(points[i].1);
        floor[i] = lowest;
    }
    let newest = floor[n - 1];
    // before[i]: the highest sample before sample i.
    let mut before = vec![f64::NEG_INFINITY; n];
    for i in 1..n {
        before[i] = before[i - 1].max(points[i - 1].1);
    }
    let (mut fall, mut rises, mut largest_rise) = (0.0_f64, 0usize, 0.0_f64);
    // The first sample at or after each quarter of the suffix's time.
    let mut quarter = [n - 1; 3];
    let mut best = None;
    for i in (0..n - 1).rev() {
        fall = fall.max(points[i].1 - floor[i + 1]);
        let step = floor[i + 1] - floor[i];
        if step > 0.0 {
            rises += 1;
            largest_rise = largest_rise.max(step);
        }
        if t(n - 1) - t(i) < config.fast_min_span_seconds || n - i < config.fast_min_samples {
            continue;
        }
        let rise = newest - floor[i];
        for (k, q) in quarter.iter_mut().enumerate() {
            let t_q = t(i) + (t(n - 1) - t(i)) * (k + 1) as f64 / 4.0;
            while *q > i && t(*q - 1) >= t_q {
                *q -= 1;
            }
        }
        let marks = [
            floor[i],
            floor[quarter[0]],
            floor[quarter[1]],
            floor[quarter[2]],
            newest,
        ];
        let quarters_rise = marks.windows(2).all(|w| w[1] - w[0] >= rise / 16.0)
            && newest - marks[3] >= config.persistence_ratio * rise / 4.0;
        let (older, newer) = (marks[2] - marks[0], marks[4] - marks[2]);
        let ratio = config.persistence_ratio;
        if rise > 0.0
            && newest - before[i] >= UNPRECEDENTED_SHARE * rise
            && quarters_rise
            && fall <= config.fast_max_fall_share * rise
            && rises >= config.fast_min_rises
            && largest_rise <= 0.5 * rise
            && older >= ratio * newer
            && newer >= ratio * older
        {
            best = Some(i);
        }
    }
    best
}

/// The trend of `points` (ms, value; ascending) by the fast rule; `None`
/// when no suffix is unambiguous growth (or its fitted slope is not
/// positive).
pub fn analyse(points: &[(i64, f64)], config: &TrendConfig) -> Option<Trend> {
    let start = unambiguous_start(points, config)?;
    let suffix = &points[start..];
    // Block maxima counted back from the newest sample: the peaks.
    let block = suffix.len().div_ceil(MAX_FIT_POINTS).max(1);
    let mut peaks: Vec<(f64, f64)> = suffix
        .rchunks(block)
        .map(|chunk| {
            let top = chunk
                .iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or(chunk[0]);
            (top.0 as f64 / 1000.0, top.1)
        })
        .collect();
    peaks.reverse();
    let z_coverage = coverage_z(config);
    let (line, low, high) = theil_sen_interval(&peaks, z_coverage)?;
    if line.slope_per_second <= 0.0 {
        return None;
    }
    let half = peaks.len() / 2;
    let slope_of = |part: &[(f64, f64)]| theil_sen(part).map_or(0.0, |l| l.slope_per_second);
    let (older, newer) = (
        slope_of(&peaks[..half]),
        slope_of(&peaks[peaks.len() - half..]),
    );
    let interval = widened_interval(line.slope_per_second, (low, high), older, newer, z_coverage);
    let (last_ms, last_value) = suffix[suffix.len() - 1];
    let last_peak = peaks[peaks.len() - 1].1;
    let residuals: Vec<f64> = peaks.iter().map(|p| p.1 - line.at(p.0)).collect();
    let n = peaks.len() as f64;
    let noise = mad_sigma(&residuals)
        .unwrap_or(0.0)
        .max(1.0)
        .max(last_value.abs() * 1e-6);
    let span_seconds = (last_ms - suffix[0].0) as f64 / 1000.0;
    let fall = suffix
        .iter()
        .scan(f64::NEG_INFINITY, |top, p| {
            *top = top.max(p.1);
            Some(*top - p.1)
        })
        .fold(0.0, f64::max);
    Some(Trend {
        lower: line,
        upper: line,
        older_slope_per_second: older,
        recent_slope_per_second: newer,
        recent_upper_slope_per_second: newer,
        last_peak,
        trough_noise: noise,
        sawtooth_height: fall,
        span_seconds,
        buckets: peaks.len(),
        z: line.slope_per_second * span_seconds / (noise * (12.0 / n).sqrt()),
        last_value,
        last_ms,
        growing: true,
        phase_slopes_per_second: None,
        growth_share: 1.0,
        fast: true,
        forecast_slope_interval: interval,
        peak_sigma: noise * (1.0 + 4.0 / n).sqrt(),
        // A staircase climbs a GC's step at once: the kill can come a
        // whole step above the line, between two samples.
        peak_shortfall: suffix
            .windows(2)
            .map(|w| w[1].1 - w[0].1 - line.slope_per_second * (w[1].0 - w[0].0) as f64 / 1000.0)
            .fold(0.0, f64::max),
        plateau_seconds: plateau_seconds(suffix),
        coverage_z: z_coverage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch job at 1 s: 40 MB, and every 60 s 80 MB built over 40 s,
    /// then freed.
    fn batch(until_seconds: i64) -> Vec<(i64, f64)> {
        (0..=until_seconds)
            .map(|t| {
                let phase = t % 60;
                let batch = if phase < 40 { 2e6 * phase as f64 } else { 0.0 };
                (t * 1000, 4e7 + batch)
            })
            .collect()
    }

    #[test]
    fn a_climb_to_where_the_series_has_been_is_not_unambiguous_growth() {
        let config = TrendConfig::default();
        // The first batch climbs higher than anything before it: by its
        // shape alone it cannot be told from a leak.
        assert!(analyse(&batch(39), &config).is_some());
        // The next ones climb again to where the first went.
        for top in [99, 159, 219] {
            let trend = analyse(&batch(top), &config);
            assert!(trend.is_none(), "batch at {top} s: {trend:?}");
        }
        // A leak after the batches climbs past them: growth once it is
        // above them by half its own rise.
        let mut leak = batch(239);
        leak.extend((1..=80).map(|k| ((239 + k) * 1000, 4e7 + 1.5e6 * k as f64)));
        assert!(analyse(&leak[..leak.len() - 30], &config).is_none());
        assert!(analyse(&leak, &config).is_some());
    }
}
