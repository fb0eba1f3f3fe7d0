//! Robust statistics on small samples: median, median absolute deviation,
//! the Theil–Sen slope, and the seeds' EWMA slope (kept for comparison).
//!
//! All functions take plain slices, ignore nothing silently (non-finite
//! inputs are the caller's job to drop) and return `None` when the input is
//! too small to say anything.

/// The median of `values` (mean of the middle two for an even count);
/// `None` when empty. Sorts a copy.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median absolute deviation from the median, scaled by 1.4826 so that
/// it estimates the standard deviation of normal noise; `None` when empty.
pub fn mad_sigma(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    median(&deviations).map(|d| d * 1.4826)
}

/// A straight line `value = intercept + slope × (t - t_ref)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Units per second.
    pub slope_per_second: f64,
    /// Value at `t_ref_seconds`.
    pub intercept: f64,
    /// The reference time (seconds) of the intercept.
    pub t_ref_seconds: f64,
}

impl Line {
    /// The line's value at `t_seconds`.
    pub fn at(&self, t_seconds: f64) -> f64 {
        self.intercept + self.slope_per_second * (t_seconds - self.t_ref_seconds)
    }
}

/// The Theil–Sen fit of `points` (t seconds, value): the slope is the median
/// of the slopes of all pairs with distinct times, the intercept the median
/// of `value - slope × (t - t_ref)` with `t_ref` the last time. Up to ~29% of
/// the points can be arbitrary outliers without moving it far. `None` with
/// fewer than two distinct times.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<Line> {
    let slope = median(&pairwise_slopes(points))?;
    line_through(points, slope)
}

/// The slopes of all pairs of `points` with distinct times.
fn pairwise_slopes(points: &[(f64, f64)]) -> Vec<f64> {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dt = b.0 - a.0;
            if dt != 0.0 {
                slopes.push((b.1 - a.1) / dt);
            }
        }
    }
    slopes
}

/// The line of `slope` through `points`: intercept the median of `value -
/// slope × (t - t_ref)`, `t_ref` the last time.
fn line_through(points: &[(f64, f64)], slope: f64) -> Option<Line> {
    let t_ref = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let offsets: Vec<f64> = points.iter().map(|p| p.1 - slope * (p.0 - t_ref)).collect();
    Some(Line {
        slope_per_second: slope,
        intercept: median(&offsets)?,
        t_ref_seconds: t_ref,
    })
}

/// The Theil–Sen line of `points` and the interval of its slope at the
/// two-sided normal quantile `z` (1.645 for 90 %), from the order statistics
/// of the pairwise slopes (Sen 1968: the slopes ranked `(N ∓ C)/2` around
/// the median, `C = z·sqrt(n(n-1)(2n+5)/18)`). Sen's interval assumes
/// independent residuals; a lag-one autocorrelation `ρ > 0` of the
/// residuals (a staircase, a sawtooth's phase) widens `C` by
/// `sqrt((1+ρ)/(1-ρ))` (ρ capped at 0.8). `None` as [`theil_sen`].
pub fn theil_sen_interval(points: &[(f64, f64)], z: f64) -> Option<(Line, f64, f64)> {
    let mut slopes = pairwise_slopes(points);
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let m = slopes.len();
    let slope = if m % 2 == 1 {
        slopes[m / 2]
    } else {
        (slopes[m / 2 - 1] + slopes[m / 2]) / 2.0
    };
    let line = line_through(points, slope)?;
    let residuals: Vec<f64> = points.iter().map(|p| p.1 - line.at(p.0)).collect();
    let rho = lag_one_autocorrelation(&residuals).clamp(0.0, 0.8);
    let n = points.len() as f64;
    let c =
        z * (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt() * ((1.0 + rho) / (1.0 - rho)).sqrt();
    let last = (m - 1) as f64;
    let rank = |r: f64| slopes[r.round().clamp(0.0, last) as usize];
    Some((
        line,
        rank((m as f64 - c) / 2.0 - 1.0),
        rank((m as f64 + c) / 2.0),
    ))
}

/// The lag-one autocorrelation of `values` around their mean (0 with fewer
/// than three values or no variance).
pub fn lag_one_autocorrelation(values: &[f64]) -> f64 {
    if values.len() < 3 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return 0.0;
    }
    let cov: f64 = values
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum();
    cov / var
}

/// The standard normal quantile of `p` in (0, 1) (Acklam's rational
/// approximation, relative error below 1.2e-9); clamped to ±8.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    if p.is_nan() || p <= 0.0 {
        return -8.0;
    }
    if p >= 1.0 {
        return 8.0;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    x.clamp(-8.0, 8.0)
}

/// The seeds' estimator: exponentially smooth the values (`s = α·v + (1-α)·s`,
/// starting at the first value), then the slope over the last three smoothed
/// points, `(s[n-1] - s[n-3]) / (t[n-1] - t[n-3])`, per second. `None` with
/// fewer than three points or no time between them.
pub fn ewma_slope(points: &[(f64, f64)], alpha: f64) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let mut smoothed = Vec::with_capacity(points.len());
    let mut s = points[0].1;
    for p in points {
        s = alpha * p.1 + (1.0 - alpha) * s;
        smoothed.push(s);
    }
    let n = points.len();
    let dt = points[n - 1].0 - points[n - 3].0;
    if dt <= 0.0 {
        return None;
    }
    Some((smoothed[n - 1] - smoothed[n - 3]) / dt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        // |x - 3| = 2,1,0,1,2 -> median 1
        assert!((mad_sigma(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap() - 1.4826).abs() < 1e-9);
    }

    #[test]
    fn theil_sen_ignores_outliers_that_least_squares_would_follow() {
        // y = 2 t + 1 with two huge outliers out of ten points.
        let mut pts: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 2.0 * t as f64 + 1.0)).collect();
        pts[3].1 = 1000.0;
        pts[7].1 = -1000.0;
        let line = theil_sen(&pts).unwrap();
        assert!((line.slope_per_second - 2.0).abs() < 1e-9, "{line:?}");
        assert!((line.at(9.0) - 19.0).abs() < 1e-9, "{line:?}");
        assert_eq!(theil_sen(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn normal_quantiles_match_the_tables() {
        assert!((normal_quantile(0.95) - 1.644854).abs() < 1e-5);
        assert!((normal_quantile(0.995) - 2.575829).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.001) + 3.090232).abs() < 1e-5);
    }

    #[test]
    fn sens_interval_covers_the_true_slope_about_as_often_as_stated() {
        // y = 2 t + uniform noise ±10 over 20 points, 400 seeds: the 90 %
        // interval holds 2 in about 90 % of them.
        let mut state = 88172645463325252u64;
        let mut unit = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let z = normal_quantile(0.95);
        let mut inside = 0;
        for _ in 0..400 {
            let pts: Vec<(f64, f64)> = (0..20)
                .map(|t| (t as f64, 2.0 * t as f64 + 20.0 * (unit() - 0.5)))
                .collect();
            let (line, lo, hi) = theil_sen_interval(&pts, z).unwrap();
            assert!(lo <= line.slope_per_second && line.slope_per_second <= hi);
            if lo <= 2.0 && 2.0 <= hi {
                inside += 1;
            }
        }
        assert!((340..=386).contains(&inside), "{inside} of 400");
    }

    #[test]
    fn ewma_slope_of_a_line_converges_to_its_slope() {
        let pts: Vec<(f64, f64)> = (0..200)
            .map(|t| (t as f64 * 5.0, 3.0 * t as f64 * 5.0))
            .collect();
        let s = ewma_slope(&pts, 0.15).unwrap();
        assert!((s - 3.0).abs() < 0.01, "{s}");
        assert_eq!(ewma_slope(&pts[..2], 0.15), None);
    }
}
