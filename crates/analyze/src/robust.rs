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
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dt = b.0 - a.0;
            if dt != 0.0 {
                slopes.push((b.1 - a.1) / dt);
            }
        }
    }
    let slope = median(&slopes)?;
    let t_ref = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let offsets: Vec<f64> = points.iter().map(|p| p.1 - slope * (p.0 - t_ref)).collect();
    Some(Line {
        slope_per_second: slope,
        intercept: median(&offsets)?,
        t_ref_seconds: t_ref,
    })
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
    fn ewma_slope_of_a_line_converges_to_its_slope() {
        let pts: Vec<(f64, f64)> = (0..200)
            .map(|t| (t as f64 * 5.0, 3.0 * t as f64 * 5.0))
            .collect();
        let s = ewma_slope(&pts, 0.15).unwrap();
        assert!((s - 3.0).abs() < 0.01, "{s}");
        assert_eq!(ewma_slope(&pts[..2], 0.15), None);
    }
}
