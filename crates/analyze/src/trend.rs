//! A robust growth trend of one memory series, blind to the GC sawtooth and
//! to start-up ramps.
//!
//! The window's samples are cut into buckets of at least
//! [`TrendConfig::bucket_seconds`] and [`TrendConfig::bucket_min_samples`]
//! samples, counted back from the newest sample. Each bucket gives its
//! minimum (a post-GC trough: the lower envelope) and its maximum (the
//! peaks: the upper envelope). The trend is the Theil–Sen line through the
//! troughs; it counts as growth only when
//!
//! - the troughs span at least [`TrendConfig::min_span_seconds`] over at
//!   least [`TrendConfig::min_buckets`] buckets,
//! - the rise over the span is [`TrendConfig::significance_z`] times its own
//!   standard error (the troughs' scatter around the line, MAD-based; the
//!   sawtooth shows up there),
//! - the rise over the span exceeds the raw samples' spread around the
//!   line (10th to 90th percentile: the sawtooth as sampled), unless every
//!   bucket holds whole sawtooth periods (all buckets' ranges alike and as
//!   wide as that spread: a batch job's working set coming and going),
//!   when the troughs are exact and no sampling floor is put under their
//!   scatter either, and
//! - it is steady: the older and the newer half of the buckets each rise at
//!   least [`TrendConfig::persistence_ratio`] times and at most 1/ratio
//!   times as fast as the whole (a start-up ramp, a one-off step, or a
//!   change too recent to measure are no trend).
//!
//! For forecasts ([`analyse_recent`]) the window is first cut where the
//! trend changes (see `segment_start`): a leak that began ten minutes into a
//! flat series is measured from its start only.
//!
//! Forecasts ([`analyse_for_forecast`]) also take unambiguous growth early,
//! before the buckets above can show it: see [`fast`] for that rule. Every
//! trend carries the interval of its forecast slope and the uncertainty of
//! its peak level at [`TrendConfig::coverage`], for the forecast's range.

pub mod fast;

use crate::robust::{mad_sigma, median, normal_quantile, theil_sen, theil_sen_interval, Line};
use std::collections::VecDeque;

/// Tuning of [`analyse`]; the defaults suit the agent's 5 s interval.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendConfig {
    /// How much history a trend looks at.
    pub window_seconds: f64,
    /// At most this many samples are kept per series (older ones dropped).
    pub max_samples: usize,
    /// Shortest bucket.
    pub bucket_seconds: f64,
    /// Fewest samples a bucket should hold (at the series' typical interval).
    pub bucket_min_samples: usize,
    /// Shortest span of troughs that can show a trend.
    pub min_span_seconds: f64,
    /// Fewest buckets that can show a trend.
    pub min_buckets: usize,
    /// Rise over the span in units of its standard error.
    pub significance_z: f64,
    /// The newer half must rise at least this fraction of the whole's slope.
    pub persistence_ratio: f64,
    /// Two-sided coverage of the slope's interval and of the peak level's
    /// uncertainty, and so of a forecast's range (0.9: nine kills in ten
    /// inside it, when the growth goes on as measured).
    pub coverage: f64,
    /// The fast rule ([`fast`]): shortest span of unambiguous growth.
    pub fast_min_span_seconds: f64,
    /// The fast rule: fewest samples.
    pub fast_min_samples: usize,
    /// The fast rule: fewest separate rises of the lower envelope.
    pub fast_min_rises: usize,
    /// The fast rule: the largest fall (any sample to any later one) is at
    /// most this share of the rise.
    pub fast_max_fall_share: f64,
}

impl Default for TrendConfig {
    fn default() -> TrendConfig {
        TrendConfig {
            window_seconds: 900.0,
            max_samples: 512,
            bucket_seconds: 15.0,
            bucket_min_samples: 3,
            min_span_seconds: 60.0,
            min_buckets: 5,
            significance_z: 5.0,
            persistence_ratio: 0.5,
            coverage: 0.9,
            fast_min_span_seconds: 30.0,
            fast_min_samples: 12,
            fast_min_rises: 4,
            fast_max_fall_share: 0.125,
        }
    }
}

/// The recent samples of one series, bounded by time and count.
#[derive(Debug, Clone, Default)]
pub struct Window {
    points: VecDeque<(i64, f64)>,
}

impl Window {
    /// Appends a sample (older or equal timestamps than the newest are
    /// ignored; so are non-finite values) and drops what falls out of the
    /// window.
    pub fn push(&mut self, ts_ms: i64, value: f64, config: &TrendConfig) {
        if !value.is_finite() || self.points.back().is_some_and(|p| p.0 >= ts_ms) {
            return;
        }
        self.points.push_back((ts_ms, value));
        let oldest = ts_ms - (config.window_seconds * 1000.0) as i64;
        while self.points.front().is_some_and(|p| p.0 < oldest)
            || self.points.len() > config.max_samples.max(2)
        {
            self.points.pop_front();
        }
    }

    /// The samples, oldest first.
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.points.iter().copied().collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.points.back().copied()
    }

    /// How many samples are kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no sample is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// What [`analyse`] found in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// Theil–Sen line through the troughs (lower envelope), per second.
    pub lower: Line,
    /// Theil–Sen line through the peaks (upper envelope), per second.
    pub upper: Line,
    /// Slope of the older half of the troughs, per second.
    pub older_slope_per_second: f64,
    /// Slope of the newer half of the troughs, per second.
    pub recent_slope_per_second: f64,
    /// Slope of the newer half of the peaks, per second.
    pub recent_upper_slope_per_second: f64,
    /// The highest sample of the newest bucket.
    pub last_peak: f64,
    /// Standard deviation of the troughs around their line (MAD-based).
    pub trough_noise: f64,
    /// The sawtooth's height, estimated from the buckets' median range.
    pub sawtooth_height: f64,
    /// Time between the first and the last trough, seconds.
    pub span_seconds: f64,
    /// Number of buckets.
    pub buckets: usize,
    /// The rise over the span divided by its standard error.
    pub z: f64,
    /// The newest sample's value.
    pub last_value: f64,
    /// The newest sample's time (ms).
    pub last_ms: i64,
    /// Whether this is a growth trend by every rule in the module docs.
    pub growing: bool,
    /// When every bucket holds whole sawtooth periods: the slopes of lines
    /// through every sample below and above the envelopes' midline (lower,
    /// upper), steadier than one extreme per bucket.
    pub phase_slopes_per_second: Option<(f64, f64)>,
    /// Whether the fast rule ([`fast`]) found this trend (then `lower` and
    /// `upper` are one line through the window's peaks).
    pub fast: bool,
    /// The share of the troughs' slope that is growth, not a one-off step
    /// (1 unless both halves of the troughs rise slower than the whole; see
    /// [`step_free_share`]): the forecast slope is scaled by it.
    pub growth_share: f64,
    /// The interval of [`Trend::forecast_slope_per_second`] at
    /// [`TrendConfig::coverage`] (low, high), per second.
    pub forecast_slope_interval: (f64, f64),
    /// Standard deviation of the peak level now ([`Trend::peak_now`])
    /// around the envelope the forecast follows: the peaks' scatter around
    /// their line and the line's own uncertainty at the newest sample.
    pub peak_sigma: f64,
    /// How far above the sampled bucket peaks the series' true peaks may
    /// lie: the sawtooth's height (the larger of the buckets' estimate and
    /// the raw samples' spread around the trough line, net of the trend's
    /// own rise across a bucket; 0 when every bucket holds whole periods,
    /// whose peaks are sampled). The kill comes at a true peak: the
    /// earliest kill of the range allows for it.
    pub peak_shortfall: f64,
    /// The longest wait between two rises of the series over the trend's
    /// samples beyond one sampling interval (seconds), counting the wait
    /// still open at the newest sample: a staircase (a Go heap's RSS, flat
    /// while the GC reuses the spans it freed) reaches a new level only on a
    /// rise, so the kill can come up to one such wait after the level says
    /// ([`plateau_seconds`]).
    pub plateau_seconds: f64,
    /// The two-sided normal quantile of the coverage the interval and the
    /// sigma are meant for ([`coverage_z`]).
    pub coverage_z: f64,
}

impl Trend {
    /// The slope to forecast with. When every bucket holds whole sawtooth
    /// periods, the slope of the peaks' phase: the peaks are what reach the
    /// limit, and they are sampled (the troughs of a batch sawtooth can rise
    /// faster than its peaks: the garbage piled up after each release grows
    /// with the heap's GC goal; following them forecast a kill 20-35 % early
    /// on oom_live's slow leaks). Otherwise the steeper of the two bucket
    /// envelopes (a Go heap's peaks grow GOGC/100 + 1 times as fast as its
    /// troughs, but a bucket's maximum may miss the true peak).
    /// Either is scaled by [`Trend::growth_share`]: a one-off step inside
    /// the window is not a rate.
    pub fn forecast_slope_per_second(&self) -> f64 {
        let slope = match self.phase_slopes_per_second {
            Some((_, high)) => high,
            None => self.lower.slope_per_second.max(self.upper.slope_per_second),
        };
        slope * self.growth_share
    }

    /// The value the kernel will compare with a limit now: the newest
    /// bucket's peak (observed, not extrapolated).
    pub fn peak_now(&self) -> f64 {
        self.last_value.max(self.last_peak)
    }
}

/// Buckets hold whole sawtooth periods when their median range is at least
/// this share of the window's spread...
const FULL_PERIOD_SPREAD_SHARE: f64 = 0.8;
/// ...and their ranges scatter by at most this share of it (ranges of
/// random-phase samples of a ramp scatter by about 45%).
const FULL_PERIOD_HEIGHT_SCATTER: f64 = 0.15;

/// One bucket: (t of min, min), (t of max, max).
type Bucket = ((f64, f64), (f64, f64));

/// A bucket being filled: index from the newest, min, max, sample count.
type Filling = (usize, (f64, f64), (f64, f64), usize);

/// Buckets counted back from the newest sample, oldest first, and the
/// typical number of samples in one.
fn buckets(points: &[(i64, f64)], config: &TrendConfig) -> (Vec<Bucket>, f64) {
    let n = points.len();
    let gaps: Vec<f64> = points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) as f64 / 1000.0)
        .collect();
    let typical_gap = median(&gaps).unwrap_or(1.0).max(1e-3);
    let length = config
        .bucket_seconds
        .max(typical_gap * config.bucket_min_samples as f64);
    let newest = points[n - 1].0 as f64 / 1000.0;
    // (index from newest, min, max, count)
    let mut out: Vec<Filling> = Vec::new();
    for &(ms, v) in points.iter().rev() {
        let t = ms as f64 / 1000.0;
        let index = ((newest - t) / length).floor() as usize;
        match out.last_mut() {
            Some(b) if b.0 == index => {
                if v < b.1 .1 {
                    b.1 = (t, v);
                }
                if v > b.2 .1 {
                    b.2 = (t, v);
                }
                b.3 += 1;
            }
            _ => out.push((index, (t, v), (t, v), 1)),
        }
    }
    // The oldest bucket is usually cut by the window: keep it only when it
    // holds as many samples as a typical one.
    let counts: Vec<f64> = out.iter().map(|b| b.3 as f64).collect();
    let typical = median(&counts).unwrap_or(1.0);
    if out.len() > 1 && (out[out.len() - 1].3 as f64) < typical {
        out.pop();
    }
    out.reverse();
    (out.into_iter().map(|b| (b.1, b.2)).collect(), typical)
}

/// Theil–Sen lines through the samples below and above the midline of the
/// bucket envelopes `lower` and `upper` (`None` when a side has fewer than
/// three samples).
fn phase_envelopes(points: &[(i64, f64)], lower: &Line, upper: &Line) -> Option<(Line, Line)> {
    let (mut low, mut high) = (Vec::new(), Vec::new());
    for &(ms, v) in points {
        let t = ms as f64 / 1000.0;
        if v < (lower.at(t) + upper.at(t)) / 2.0 {
            low.push((t, v));
        } else {
            high.push((t, v));
        }
    }
    if low.len() < 3 || high.len() < 3 {
        return None;
    }
    Some((theil_sen(&low)?, theil_sen(&high)?))
}

/// Sum of absolute residuals of a Theil–Sen fit (0 for fewer than 2 points).
fn l1_cost(points: &[(f64, f64)]) -> f64 {
    match theil_sen(points) {
        Some(line) => points.iter().map(|p| (p.1 - line.at(p.0)).abs()).sum(),
        None => 0.0,
    }
}

/// Where the current trend starts: the bucket from which a line (plus a
/// separate one before it) fits the troughs best, when that is at least 30%
/// better than one line for the whole window (a leak that began
/// mid-window, a plateau after a start-up ramp). Only searched when the
/// whole window rises, at ≤ 12 cuts (each a Theil–Sen fit, O(n²)).
fn segment_start(lows: &[(f64, f64)], config: &TrendConfig) -> usize {
    let n = lows.len();
    let whole = l1_cost(lows);
    if theil_sen(lows).is_none_or(|l| l.slope_per_second <= 0.0) {
        return 0;
    }
    let mut best = (0, whole);
    // At most ~12 candidate cuts: bounded cost per evaluation.
    let stride = n.div_ceil(12).max(1);
    for start in (stride..n).step_by(stride) {
        let suffix = &lows[start..];
        if suffix.len() < config.min_buckets
            || suffix[suffix.len() - 1].0 - suffix[0].0 < config.min_span_seconds
        {
            break;
        }
        let cost = l1_cost(&lows[..start]) + l1_cost(suffix);
        if cost < best.1 && cost < 0.7 * whole {
            best = (start, cost);
        }
    }
    best.0
}

/// The interval `(low, high)` of a slope `slope` widened by how much the
/// growth itself wandered over the window: half the difference between the
/// slopes of its `older` and `newer` halves, as one more standard deviation
/// (at the quantile `z`), combined in quadrature with the interval's own
/// distance from the slope. Sen's interval sees only the scatter around
/// one line; a leak whose pace drifts (GC cycles lengthening with the
/// heap, a workload slowed by its neighbours) strays further.
pub(crate) fn widened_interval(
    slope: f64,
    (low, high): (f64, f64),
    older: f64,
    newer: f64,
    z: f64,
) -> (f64, f64) {
    let drift = z * (newer - older).abs() / 2.0;
    let below = (slope - low).max(0.0);
    let above = (high - slope).max(0.0);
    (slope - below.hypot(drift), slope + above.hypot(drift))
}

/// How long `points` (ms, value; ascending) went without rising, beyond
/// one sampling interval: the longest time between two rises (the wait
/// still open at the newest sample included) less the median time between
/// samples, in seconds; 0 unless the series is a clean staircase. A rise
/// is a sample above the level of the previous rise by more than the step
/// noise, three times the median fall between two samples (at least a
/// 4 KiB page): a staircase (a high-water mark such as a Go heap's RSS)
/// falls back by its jitter only, noise by as much as it rises. Clean: the
/// median rise is at least twice that noise; where noise is as large as the
/// rises, flat stretches are the noise's own (and already in the level's
/// uncertainty). A steady climb rises at every sample (0).
pub fn plateau_seconds(points: &[(i64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    // The step noise, from the falls: a staircase (a high-water mark)
    // falls back by its jitter only, noise by as much as it rises.
    let falls: Vec<f64> = points
        .windows(2)
        .map(|w| w[0].1 - w[1].1)
        .filter(|fall| *fall > 0.0)
        .collect();
    let tolerance = (3.0 * median(&falls).unwrap_or(0.0)).max(4096.0);
    let (mut last_rise_ms, mut level) = points[0];
    let mut longest_ms = 0;
    let mut rises = Vec::new();
    for &(ms, value) in &points[1..] {
        if value > level + tolerance {
            longest_ms = longest_ms.max(ms - last_rise_ms);
            rises.push(value - level);
            last_rise_ms = ms;
            level = value;
        }
    }
    if median(&rises).is_none_or(|rise| rise < 2.0 * tolerance) {
        return 0.0;
    }
    let newest_ms = points[points.len() - 1].0;
    longest_ms = longest_ms.max(newest_ms - last_rise_ms);
    let gaps: Vec<f64> = points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) as f64)
        .collect();
    let interval_ms = median(&gaps).unwrap_or(0.0);
    ((longest_ms as f64 - interval_ms) / 1000.0).max(0.0)
}

/// The share of a window's slope `whole` that is a rate of growth, given
/// the slopes of its `older` and `newer` halves (each fitted on its own):
/// the faster half over the whole, when both rise slower than the whole
/// (then the whole line climbs a step between the halves that neither half
/// shows: a workload that stalled and caught up, a sawtooth whose phase
/// slipped; on oom_live's slow sawtooth leak such a step of ~4 MiB in an
/// 85 s window gave both halves 0.16 MiB/s, the whole 0.21 MiB/s, and a
/// first critical 28 % early). The step stays in the level the forecast
/// starts from; it is not extrapolated. 1 otherwise, and when a half is not
/// rising (a change of pace, which the persistence rule judges).
pub fn step_free_share(whole: f64, older: f64, newer: f64) -> f64 {
    let faster_half = older.max(newer);
    if whole > 0.0 && older > 0.0 && newer > 0.0 && faster_half < whole {
        faster_half / whole
    } else {
        1.0
    }
}

/// The two-sided normal quantile of `config.coverage`.
pub fn coverage_z(config: &TrendConfig) -> f64 {
    normal_quantile((1.0 + config.coverage.clamp(0.01, 0.9999)) / 2.0)
}

/// The trend a time-to-OOM forecast follows: [`analyse_recent`] of the
/// samples from `settled` on (start-up left out) when it shows growth;
/// otherwise the fast rule ([`fast::analyse`]) over every sample, which
/// guards against start-up ramps itself; otherwise the (not growing)
/// trend of the first.
pub fn analyse_for_forecast(
    points: &[(i64, f64)],
    settled: usize,
    config: &TrendConfig,
) -> Option<Trend> {
    let slow = analyse_recent(&points[settled.min(points.len())..], config);
    if slow.as_ref().is_some_and(|t| t.growing) {
        return slow;
    }
    fast::analyse(points, config).or(slow)
}

/// The trend of `points` (ms, value; ascending) over the whole window.
/// `None` with fewer than two buckets.
pub fn analyse(points: &[(i64, f64)], config: &TrendConfig) -> Option<Trend> {
    analyse_with(points, config, false)
}

/// The trend since the window's last change (see `segment_start`), for
/// forecasts: a leak that began mid-window is measured from its start.
/// Searching for the cut tests several segments, so it is more prone to
/// find a trend in noise than [`analyse`]: use it only where a trend is
/// also checked against a limit.
pub fn analyse_recent(points: &[(i64, f64)], config: &TrendConfig) -> Option<Trend> {
    analyse_with(points, config, true)
}

fn analyse_with(points: &[(i64, f64)], config: &TrendConfig, cut: bool) -> Option<Trend> {
    if points.len() < 2 {
        return None;
    }
    let (all, per_bucket) = buckets(points, config);
    if all.len() < 2 {
        return None;
    }
    let all_lows: Vec<(f64, f64)> = all.iter().map(|b| b.0).collect();
    let start = if cut {
        segment_start(&all_lows, config)
    } else {
        0
    };
    let buckets = &all[start..];
    let lows: Vec<(f64, f64)> = buckets.iter().map(|b| b.0).collect();
    let highs: Vec<(f64, f64)> = buckets.iter().map(|b| b.1).collect();
    let z_coverage = coverage_z(config);
    let (lower, lower_low, lower_high) = theil_sen_interval(&lows, z_coverage)?;
    let (upper, upper_low, upper_high) = theil_sen_interval(&highs, z_coverage)?;
    // Noise and sawtooth from the whole window (each part against its own
    // line), so that cutting the window cannot pick a quiet stretch.
    // The range of k samples at random phases of a sawtooth of height H is
    // H·(k-1)/(k+1) on average: scale the buckets' median range back to H.
    let half = lows.len() / 2;
    // Disjoint halves (the middle bucket of an odd count in neither).
    let recent = &lows[lows.len() - half..];
    let recent_highs = &highs[highs.len() - half..];
    let (recent_slope_per_second, recent_upper_slope_per_second) = if recent.len() >= 2 {
        (
            theil_sen(recent).map_or(0.0, |l| l.slope_per_second),
            theil_sen(recent_highs).map_or(0.0, |l| l.slope_per_second),
        )
    } else {
        (lower.slope_per_second, upper.slope_per_second)
    };
    let older_slope_per_second = if half >= 2 {
        theil_sen(&lows[..half]).map_or(0.0, |l| l.slope_per_second)
    } else {
        lower.slope_per_second
    };
    // The raw samples' spread around the trough line (10th to 90th
    // percentile): a sawtooth sampled at nearly its own period drifts
    // slowly through its phases and can look like a trend of the troughs
    // for minutes; a real trend rises by more than the whole spread.
    let segment_start_ms = (lows[0].0.min(highs[0].0) * 1000.0).floor() as i64;
    let mut raw: Vec<f64> = points[points.partition_point(|p| p.0 < segment_start_ms)..]
        .iter()
        .map(|p| p.1 - lower.at(p.0 as f64 / 1000.0))
        .collect();
    raw.sort_by(f64::total_cmp);
    let spread = if raw.len() >= 2 {
        raw[raw.len() * 9 / 10] - raw[raw.len() / 10]
    } else {
        0.0
    };
    // The buckets' ranges (max - min), each against its own bucket.
    let k = per_bucket.max(1.0);
    let heights: Vec<f64> = all.iter().map(|b| b.1 .1 - b.0 .1).collect();
    let median_height = median(&heights).unwrap_or(0.0);
    // Buckets that each span whole sawtooth periods (a batch job's working
    // set, a sawtooth slower than the sampling but faster than a bucket)
    // all see about the same range, as wide as the whole window's spread:
    // their minima are the troughs themselves, not random samples of a
    // ramp, and their scatter is what it is.
    let full_periods = heights.len() >= config.min_buckets
        && median_height > 0.0
        && median_height >= FULL_PERIOD_SPREAD_SHARE * spread
        && mad_sigma(&heights).unwrap_or(f64::INFINITY)
            <= FULL_PERIOD_HEIGHT_SCATTER * median_height;
    // With whole periods in every bucket each envelope is a phase of the
    // sawtooth: fit it through every sample of that phase, not one per
    // bucket (which phase sample is a bucket's extreme depends on how the
    // buckets fall on the periods: a jitter that a short trend's slope
    // would feel).
    // (For the forecast's slope only: whether there is a trend at all is
    // judged on the buckets, as for every other shape.)
    let phase_slopes_per_second = if full_periods {
        let segment = &points[points.partition_point(|p| p.0 < segment_start_ms)..];
        phase_envelopes(segment, &lower, &upper)
            .map(|(low, high)| (low.slope_per_second, high.slope_per_second))
    } else {
        None
    };
    // The range of k samples at random phases of a sawtooth of height H is
    // H·(k-1)/(k+1) on average: scale the buckets' median range back to H.
    let sawtooth_height = if full_periods {
        median_height
    } else {
        median_height * (k + 1.0) / (k - 1.0).max(1.0)
    };
    let mut residuals: Vec<f64> = lows.iter().map(|p| p.1 - lower.at(p.0)).collect();
    if let Some(before) = theil_sen(&all_lows[..start]) {
        residuals.extend(all_lows[..start].iter().map(|p| p.1 - before.at(p.0)));
    }
    let level = lows.last().map_or(0.0, |p| p.1.abs());
    // The minimum of k samples at random phases of a sawtooth of height H
    // scatters by H·sqrt(k / ((k+1)²(k+2))): a floor for the troughs' noise
    // when a few buckets happen to agree (not needed when every bucket
    // holds a whole period). Values are whole bytes: never trust a scatter
    // below a byte (or a millionth of the level).
    let sampling_floor = if full_periods {
        0.0
    } else {
        sawtooth_height * (k / ((k + 1.0).powi(2) * (k + 2.0))).sqrt()
    };
    let trough_noise = mad_sigma(&residuals)
        .unwrap_or(0.0)
        .max(sampling_floor)
        .max(1.0)
        .max(level * 1e-6);
    let span_seconds = lows[lows.len() - 1].0 - lows[0].0;
    let n = lows.len() as f64;
    let standard_error = trough_noise * (12.0 / n).sqrt();
    let z = lower.slope_per_second * span_seconds / standard_error;
    let last_peak = highs[highs.len() - 1].1;
    let (last_ms, last_value) = points[points.len() - 1];
    // The forecast slope's interval: that of the envelope it follows
    // (shifted onto the phase line when the phases give the slope).
    // (With phases, the peaks' phase: see Trend::forecast_slope_per_second.)
    let follow_upper =
        phase_slopes_per_second.is_some() || upper.slope_per_second >= lower.slope_per_second;
    let (env_slope, env_low, env_high) = if follow_upper {
        (upper.slope_per_second, upper_low, upper_high)
    } else {
        (lower.slope_per_second, lower_low, lower_high)
    };
    let shift = match phase_slopes_per_second {
        Some((_, high)) => high - env_slope,
        None => 0.0,
    };
    let peak_residuals: Vec<f64> = highs.iter().map(|p| p.1 - upper.at(p.0)).collect();
    let peak_sigma = mad_sigma(&peak_residuals)
        .unwrap_or(0.0)
        .max(sampling_floor)
        .max(1.0)
        * (1.0 + 4.0 / n).sqrt();
    let growth_share = if half >= 2 {
        step_free_share(
            lower.slope_per_second,
            older_slope_per_second,
            recent_slope_per_second,
        )
    } else {
        1.0
    };
    let growing = lower.slope_per_second > 0.0
        && span_seconds >= config.min_span_seconds
        && lows.len() >= config.min_buckets
        && z >= config.significance_z
        && (full_periods || lower.slope_per_second * span_seconds >= spread)
        && recent_slope_per_second >= config.persistence_ratio * lower.slope_per_second
        && older_slope_per_second >= config.persistence_ratio * lower.slope_per_second
        && recent_slope_per_second * config.persistence_ratio <= lower.slope_per_second
        && older_slope_per_second * config.persistence_ratio <= lower.slope_per_second;
    Some(Trend {
        lower,
        upper,
        older_slope_per_second,
        recent_slope_per_second,
        recent_upper_slope_per_second,
        last_peak,
        trough_noise,
        sawtooth_height,
        span_seconds,
        buckets: lows.len(),
        z,
        last_value,
        last_ms,
        growing,
        phase_slopes_per_second,
        fast: false,
        growth_share,
        forecast_slope_interval: {
            // The halves' slopes of the envelope followed, scaled to the
            // forecast slope.
            let (older, newer) = if follow_upper {
                let older_upper = if half >= 2 {
                    theil_sen(&highs[..half]).map_or(0.0, |l| l.slope_per_second)
                } else {
                    upper.slope_per_second
                };
                (older_upper, recent_upper_slope_per_second)
            } else {
                (older_slope_per_second, recent_slope_per_second)
            };
            let (low, high) = widened_interval(
                env_slope + shift,
                (env_low + shift, env_high + shift),
                older,
                newer,
                z_coverage,
            );
            // A step's share comes off the low end only: the high end
            // keeps the whole's slope (the step may be the first of more).
            (low * growth_share, high)
        },
        peak_sigma,
        peak_shortfall: if full_periods {
            0.0
        } else {
            let gap = (last_ms - points[0].0) as f64 / 1000.0 / (points.len() - 1).max(1) as f64;
            let trend_rise = env_slope.max(0.0) * (k - 1.0).max(0.0) * gap;
            // The buckets' ranges may all sit at one phase of a sawtooth
            // sampled near its own period: the raw samples' spread over
            // the whole segment sees every phase.
            (sawtooth_height.max(spread) - trend_rise).max(0.0)
        },
        plateau_seconds: plateau_seconds(
            &points[points.partition_point(|p| p.0 < segment_start_ms)..],
        ),
        coverage_z: z_coverage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, step_ms: i64, f: impl Fn(f64) -> f64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| {
                let ms = i as i64 * step_ms;
                (ms, f(ms as f64 / 1000.0))
            })
            .collect()
    }

    #[test]
    fn plateau_is_the_longest_wait_between_rises() {
        // A steady climb rises at every 1 s sample: no wait beyond that.
        let climb = series(60, 1000, |t| 1e8 + 1e6 * t);
        assert_eq!(plateau_seconds(&climb), 0.0);
        // A staircase: 8 MB every 10 s, with 100 kB of jitter on the flat
        // stretches (no rise); its last flat stretch has lasted 7 s.
        let stairs = series(58, 1000, |t| {
            1e8 + 8e6 * (t / 10.0).floor() + [0.0, 1e5][(t as usize) % 2]
        });
        assert_eq!(plateau_seconds(&stairs), 9.0);
        // Still open: the same staircase stopped 25 s ago.
        let mut stopped = stairs.clone();
        let last = stopped[stopped.len() - 1];
        stopped.extend((1..=25).map(|k| (last.0 + k * 1000, last.1)));
        assert_eq!(plateau_seconds(&stopped), 31.0);
        assert_eq!(plateau_seconds(&climb[..1]), 0.0);
        // Noise as large as the steps: no staircase to tell.
        let noisy = series(58, 1000, |t| {
            1e8 + 8e6 * (t / 10.0).floor() + [0.0, 6e6, 2e6, 9e6][(t as usize) % 4]
        });
        assert_eq!(plateau_seconds(&noisy), 0.0);
    }

    #[test]
    fn a_line_is_growth_and_a_flat_series_is_not() {
        let config = TrendConfig::default();
        let up = analyse(&series(60, 5000, |t| 1e8 + 1000.0 * t), &config).unwrap();
        assert!(up.growing, "{up:?}");
        assert!((up.lower.slope_per_second - 1000.0).abs() < 1e-6);
        let flat = analyse(&series(60, 5000, |_| 1e8), &config).unwrap();
        assert!(!flat.growing, "{flat:?}");
        assert_eq!(flat.lower.slope_per_second, 0.0);
    }

    #[test]
    fn the_step_free_share_is_the_faster_half_when_both_are_slower() {
        // oom_live's slow leak at its first critical: halves 0.160 and
        // 0.161 MiB/s, the whole 0.209 MiB/s.
        let share = step_free_share(0.209, 0.160, 0.161);
        assert!((share - 0.161 / 0.209).abs() < 1e-12, "{share}");
        // One half as fast as the whole or faster: a change of pace, no step.
        assert_eq!(step_free_share(0.2, 0.25, 0.1), 1.0);
        assert_eq!(step_free_share(0.2, 0.2, 0.19), 1.0);
        // A half not rising, or no growth at all: nothing to scale.
        assert_eq!(step_free_share(0.2, -0.1, 0.15), 1.0);
        assert_eq!(step_free_share(0.2, 0.15, 0.0), 1.0);
        assert_eq!(step_free_share(0.0, 0.1, 0.1), 1.0);
    }

    #[test]
    fn a_one_off_step_is_not_extrapolated_as_growth() {
        let config = TrendConfig::default();
        let rate = 0.16 * 1048576.0;
        // 100 s at 0.16 MiB/s, 5 s samples, and once 4 MiB at 52 s (a
        // workload that stalled and caught up).
        let stepped = series(21, 5000, |t| {
            1.5e8 + rate * t + if t > 52.0 { 4.0 * 1048576.0 } else { 0.0 }
        });
        let trend = analyse(&stepped, &config).unwrap();
        assert!(trend.growing, "{trend:?}");
        let whole = trend
            .lower
            .slope_per_second
            .max(trend.upper.slope_per_second);
        assert!(whole > 1.2 * rate, "the line through the step: {trend:?}");
        assert!(trend.growth_share < 1.0, "{trend:?}");
        let slope = trend.forecast_slope_per_second();
        assert!(
            (slope - rate).abs() < 0.05 * rate,
            "{slope} vs {rate}: {trend:?}"
        );
        // The interval still reaches the whole's slope: the step may recur.
        let (low, high) = trend.forecast_slope_interval;
        assert!(low <= slope && high >= whole, "{low} .. {high}: {trend:?}");
        // The same line without the step: all of its slope is growth.
        let line = analyse(&series(21, 5000, |t| 1.5e8 + rate * t), &config).unwrap();
        assert!(line.growth_share > 0.999, "{line:?}");
        assert!((line.forecast_slope_per_second() - rate).abs() < 1e-6 * rate);
        // A staircase of many steps keeps them in both halves: growth.
        let stairs = series(41, 5000, |t| 1.5e8 + 4.0 * 1048576.0 * (t / 25.0).floor());
        let trend = analyse(&stairs, &config).unwrap();
        assert!(trend.growth_share > 0.8, "{trend:?}");
    }

    #[test]
    fn a_ramp_that_levelled_off_is_not_growth() {
        let config = TrendConfig::default();
        // 0 -> 60 MB in 60 s, then flat for two minutes.
        let ramp = series(36, 5000, |t| 6e7 * (t / 60.0).min(1.0));
        let trend = analyse(&ramp, &config).unwrap();
        assert!(!trend.growing, "{trend:?}");
    }

    #[test]
    fn too_short_a_span_is_not_growth_yet() {
        let config = TrendConfig::default();
        let up = analyse(&series(10, 5000, |t| 1e8 + 1000.0 * t), &config).unwrap();
        assert!(!up.growing, "45 s < 60 s: {up:?}");
    }

    #[test]
    fn the_window_is_bounded() {
        let config = TrendConfig {
            max_samples: 10,
            ..TrendConfig::default()
        };
        let mut w = Window::default();
        for i in 0..100 {
            w.push(i * 1000, i as f64, &config);
        }
        w.push(5, 1.0, &config); // back in time: ignored
        w.push(200_000, f64::NAN, &config);
        assert_eq!(w.len(), 10);
        assert_eq!(w.last(), Some((99_000, 99.0)));
    }
}
