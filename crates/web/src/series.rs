//! `/api/v1/series`: series over `[from, to]`, downsampled on the server to
//! min / max / last per pixel column, so a day at 1 s is a few thousand
//! numbers per series whatever the interval. Counters are turned into rates
//! per second first (raw values are stored: the rate between two samples is
//! derived here, as `memlens history` does).

use crate::query::Query;
use crate::ApiError;
use memlens_model::series::is_counter;
use memlens_store::{EntityId, Store};
use serde_json::{json, Value};

/// The most columns one request may ask for.
pub const MAX_WIDTH: i64 = 4000;
/// The most series one request may ask for.
pub const MAX_SERIES: usize = 16;
/// How far before `from` a counter is read, so its first rate is known.
const RATE_LOOKBACK_MS: i64 = 300_000;

/// The samples of one pixel column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// The smallest value in the column.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The latest value (what a cursor in the column reads).
    pub last: f64,
}

/// The column of instant `t_ms` when `[from_ms, to_ms]` is split into
/// `width` columns of equal span: `(t - from) * width / (to - from + 1)`.
pub fn column_of(t_ms: i64, from_ms: i64, to_ms: i64, width: i64) -> usize {
    let span = (to_ms - from_ms + 1).max(1) as i128;
    ((t_ms - from_ms) as i128 * width as i128 / span) as usize
}

/// The first instant of column `c` (the inverse of [`column_of`]).
pub fn column_start(c: usize, from_ms: i64, to_ms: i64, width: i64) -> i64 {
    let span = (to_ms - from_ms + 1).max(1) as i128;
    from_ms + ((c as i128 * span + width as i128 - 1) / width as i128) as i64
}

/// Min, max and last of the (ascending) `samples` in each of `width`
/// columns over `[from_ms, to_ms]`; `None` for a column without a sample.
/// Samples outside the range and NaN values are left out.
pub fn downsample(
    samples: &[(i64, f64)],
    from_ms: i64,
    to_ms: i64,
    width: i64,
) -> Vec<Option<Column>> {
    let mut columns: Vec<Option<Column>> = vec![None; width.max(0) as usize];
    for &(t, v) in samples {
        if t < from_ms || t > to_ms || v.is_nan() {
            continue;
        }
        let c = column_of(t, from_ms, to_ms, width);
        let column = &mut columns[c];
        match column {
            Some(col) => {
                col.min = col.min.min(v);
                col.max = col.max.max(v);
                col.last = v;
            }
            None => {
                *column = Some(Column {
                    min: v,
                    max: v,
                    last: v,
                })
            }
        }
    }
    columns
}

/// The mean of the values in each non-empty column, as (column, mean).
fn column_means(samples: &[(i64, f64)], from_ms: i64, to_ms: i64, width: i64) -> Vec<(usize, f64)> {
    let mut out: Vec<(usize, f64, u32)> = Vec::new();
    for &(t, v) in samples
        .iter()
        .filter(|s| (from_ms..=to_ms).contains(&s.0) && !s.1.is_nan())
    {
        let c = column_of(t, from_ms, to_ms, width);
        match out.last_mut() {
            Some(last) if last.0 == c => {
                last.1 += v;
                last.2 += 1;
            }
            _ => out.push((c, v, 1)),
        }
    }
    out.into_iter()
        .map(|(c, sum, n)| (c, sum / f64::from(n)))
        .collect()
}

/// Rates per second between consecutive samples of a counter, at the later
/// sample's instant; a decrease (a reset) gives no rate.
pub fn rates(samples: &[(i64, f64)]) -> Vec<(i64, f64)> {
    samples
        .windows(2)
        .filter(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1)
        .map(|w| {
            (
                w[1].0,
                (w[1].1 - w[0].1) * 1000.0 / (w[1].0 - w[0].0) as f64,
            )
        })
        .collect()
}

/// The samples of `metric` of `entity` as plotted: rates for counters, and
/// `working_set_bytes` (usage − inactive file, per instant) derived for a
/// cgroup.
pub(crate) fn plotted(
    store: &Store,
    entity: EntityId,
    metric: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, f64)>, ApiError> {
    if metric == "working_set_bytes" {
        let usage = store.series(entity, "usage_bytes", from_ms, to_ms)?;
        let inactive = store.series(entity, "inactive_file_bytes", from_ms, to_ms)?;
        let mut j = 0;
        let mut out = Vec::with_capacity(usage.len());
        for (t, u) in usage {
            while j < inactive.len() && inactive[j].0 < t {
                j += 1;
            }
            match inactive.get(j) {
                Some(&(ti, i)) if ti == t => out.push((t, (u - i).max(0.0))),
                _ => out.push((t, u)),
            }
        }
        return Ok(out);
    }
    if is_counter(metric) {
        let raw = store.series(entity, metric, from_ms - RATE_LOOKBACK_MS, to_ms)?;
        let mut out = rates(&raw);
        out.retain(|(t, _)| *t >= from_ms);
        return Ok(out);
    }
    Ok(store.series(entity, metric, from_ms, to_ms)?)
}

/// `GET /api/v1/series?s=ENTITY:METRIC&...&from=MS&to=MS[&width=PX][&at=MS]`.
pub(crate) fn series(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let from_ms = query.required_int("from")?;
    let mut to_ms = query.required_int("to")?;
    if let Some(at) = query.int("at")? {
        to_ms = to_ms.min(at);
    }
    if to_ms < from_ms {
        return Err(ApiError::BadRequest(format!(
            "from={from_ms} is after to={to_ms} (or at)"
        )));
    }
    let width = query.int("width")?.unwrap_or(1000);
    if !(1..=MAX_WIDTH).contains(&width) {
        return Err(ApiError::BadRequest(format!(
            "width={width}: expected 1 to {MAX_WIDTH} columns"
        )));
    }
    let mut wanted = Vec::new();
    for s in query.all("s") {
        let parsed = s
            .split_once(':')
            .and_then(|(e, m)| Some((e.parse::<EntityId>().ok()?, m)))
            .filter(|(_, m)| !m.is_empty());
        match parsed {
            Some(pair) => wanted.push(pair),
            None => {
                return Err(ApiError::BadRequest(format!(
                    "s={s:?}: expected ENTITY_ID:METRIC"
                )))
            }
        }
    }
    if wanted.is_empty() || wanted.len() > MAX_SERIES {
        return Err(ApiError::BadRequest(format!(
            "s: expected 1 to {MAX_SERIES} series, got {}",
            wanted.len()
        )));
    }
    let mut all = Vec::with_capacity(wanted.len());
    for &(entity, metric) in &wanted {
        let samples = plotted(store, entity, metric, from_ms, to_ms)?;
        let mut columns = downsample(&samples, from_ms, to_ms, width);
        if is_counter(metric) {
            // A rate's `last` is the column's mean: what the counter rose
            // by over the column, whatever the width.
            for (c, mean) in column_means(&samples, from_ms, to_ms, width) {
                if let Some(col) = columns[c].as_mut() {
                    col.last = mean;
                }
            }
        }
        all.push((entity, metric, samples.len(), columns));
    }
    // Only the columns where some series has a sample.
    let used: Vec<usize> = (0..width as usize)
        .filter(|&c| all.iter().any(|(_, _, _, cols)| cols[c].is_some()))
        .collect();
    let pick = |cols: &[Option<Column>], f: fn(&Column) -> f64| -> Vec<Value> {
        used.iter()
            .map(|&c| cols[c].as_ref().map_or(Value::Null, |col| json!(f(col))))
            .collect()
    };
    let series: Vec<Value> = all
        .iter()
        .map(|(entity, metric, n, cols)| {
            json!({
                "entity": entity,
                "metric": metric,
                "rate": is_counter(metric),
                "samples": n,
                "min": pick(cols, |c| c.min),
                "max": pick(cols, |c| c.max),
                "last": pick(cols, |c| c.last),
            })
        })
        .collect();
    let t: Vec<i64> = used
        .iter()
        .map(|&c| column_start(c, from_ms, to_ms, width))
        .collect();
    Ok(json!({
        "from": from_ms,
        "to": to_ms,
        "width": width,
        "step_ms": (to_ms - from_ms + 1) as f64 / width as f64,
        "t": t,
        "series": series,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_holds_the_extremes_of_its_span() {
        // A day at 1 s with a spike and a dip: 86,400 samples into 1,000 columns.
        let day_ms = 86_400_000;
        let samples: Vec<(i64, f64)> = (0..86_400)
            .map(|i| {
                let v = match i {
                    40_000 => 1e9,
                    40_001 => -5.0,
                    _ => (i % 97) as f64,
                };
                (i * 1000, v)
            })
            .collect();
        let cols = downsample(&samples, 0, day_ms - 1, 1000);
        assert_eq!(cols.len(), 1000);
        for (c, col) in cols.iter().enumerate() {
            let start = column_start(c, 0, day_ms - 1, 1000);
            let end = column_start(c + 1, 0, day_ms - 1, 1000);
            let inside: Vec<f64> = samples
                .iter()
                .filter(|(t, _)| (start..end).contains(t))
                .map(|s| s.1)
                .collect();
            let col = col.expect("every column of a dense series has samples");
            let max = inside.iter().cloned().fold(f64::MIN, f64::max);
            let min = inside.iter().cloned().fold(f64::MAX, f64::min);
            assert_eq!(
                (col.min, col.max, col.last),
                (min, max, *inside.last().unwrap()),
                "column {c}"
            );
        }
        let spike = column_of(40_000_000, 0, day_ms - 1, 1000);
        assert_eq!(cols[spike].unwrap().max, 1e9);
        assert_eq!(cols[spike].unwrap().min, -5.0);
    }

    #[test]
    fn narrow_columns_keep_every_sample_and_nan_and_outside_are_left_out() {
        let samples = [(5, 1.0), (10, f64::NAN), (15, 3.0), (200, 9.0)];
        let cols = downsample(&samples, 0, 99, 100);
        assert_eq!(
            cols[5],
            Some(Column {
                min: 1.0,
                max: 1.0,
                last: 1.0
            })
        );
        assert_eq!(cols[10], None);
        assert_eq!(cols[15].unwrap().last, 3.0);
        assert_eq!(cols.iter().flatten().count(), 2);
        for t in [0, 5, 37, 99] {
            assert_eq!(column_start(column_of(t, 0, 99, 100), 0, 99, 100), t);
        }
    }

    #[test]
    fn counters_become_rates_and_a_reset_gives_none() {
        let r = rates(&[(0, 10.0), (2000, 30.0), (3000, 5.0), (4000, 6.0)]);
        assert_eq!(r, vec![(2000, 10.0), (4000, 1.0)]);
    }
}
