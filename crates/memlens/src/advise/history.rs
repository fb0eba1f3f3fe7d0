//! The peaks of `memlens advise` read from the agent's history
//! (`memlens watch`'s store), so that the advice sees the worst of hours
//! instead of the worst of a ten-second window.
//!
//! For the process (matched by pid AND start time) and its cgroup, the
//! stored `rss_bytes`, the cgroup's `usage_bytes` and the runtime's
//! `go_heap_inuse_bytes`, `go_sys_bytes` and `go_heap_released_bytes` over
//! the lookback are joined by instant (the agent stores every value of one
//! cycle at the same instant) into [`Sample`]s, and each figure is the
//! highest over them, with the same definitions as the live window
//! ([`Sample::outside_runtime_bytes`], [`Sample::non_heap_bytes`]).
//! [`merge`] then keeps, per figure, the higher of the stored and the live
//! peak and says where it came from.
//!
//! The agent reads the Go runtime on its own thread and stores what it read
//! with the next cycle: a runtime number can be up to one interval older
//! than the RSS stored with it. A heap that jumps within that interval can
//! make one instant's outside memory look larger (never smaller) than it
//! was; the advice then errs on the safe side.
//!
//! IO is [`read`]; the rest is pure.

use super::observe::Sample;
use memlens_model::series::Entity;
use memlens_store::Store;
use std::collections::BTreeMap;

/// One series as stored: (instant in ms since the epoch, value).
pub type Series = Vec<(i64, f64)>;

/// The stored series of one process and its cgroup over the lookback.
#[derive(Debug, Clone, Default)]
pub struct StoredSeries {
    /// `rss_bytes` of the process.
    pub rss_bytes: Series,
    /// `usage_bytes` of its (current) cgroup.
    pub usage_bytes: Series,
    /// `go_heap_inuse_bytes`.
    pub heap_inuse_bytes: Series,
    /// `go_sys_bytes`.
    pub sys_bytes: Series,
    /// `go_heap_released_bytes`.
    pub heap_released_bytes: Series,
}

/// The highest value of one figure over stored instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// The value.
    pub bytes: u64,
    /// When it was stored (ms since the epoch; the first instant on a tie).
    pub at_unix_ms: i64,
    /// How many stored instants had the figure.
    pub samples: usize,
}

/// The peaks of the stored history of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peaks {
    /// The oldest stored instant of the process within the lookback (ms).
    pub first_unix_ms: i64,
    /// The newest one (ms).
    pub last_unix_ms: i64,
    /// Stored instants of the process (its `rss_bytes` samples).
    pub samples: usize,
    /// Highest `rss_bytes`.
    pub rss: Option<Peak>,
    /// Highest cgroup `usage_bytes` while the process was recorded.
    pub usage: Option<Peak>,
    /// Highest [`Sample::outside_runtime_bytes`].
    pub outside: Option<Peak>,
    /// Highest [`Sample::non_heap_bytes`].
    pub non_heap: Option<Peak>,
}

/// The value as a whole non-negative number (`None` for NaN, infinities,
/// negatives and values past `u64`).
fn whole(v: f64) -> Option<u64> {
    (0.0..18_446_744_073_709_551_616.0)
        .contains(&v)
        .then_some(v.round() as u64)
}

/// The stored series joined by instant into samples, oldest first. Only
/// instants of the process (with an `rss_bytes` sample) are kept: the
/// cgroup's usage of instants when the process was not recorded is not its
/// history.
pub fn samples(series: &StoredSeries) -> Vec<(i64, Sample)> {
    let mut by_ts: BTreeMap<i64, Sample> = BTreeMap::new();
    for (ts, v) in &series.rss_bytes {
        by_ts.entry(*ts).or_default().rss_bytes = whole(*v);
    }
    let mut fill = |s: &Series, set: fn(&mut Sample, Option<u64>)| {
        for (ts, v) in s {
            if let Some(sample) = by_ts.get_mut(ts) {
                set(sample, whole(*v));
            }
        }
    };
    fill(&series.usage_bytes, |s, v| s.usage_bytes = v);
    fill(&series.heap_inuse_bytes, |s, v| {
        s.runtime.heap_inuse_bytes = v
    });
    fill(&series.sys_bytes, |s, v| s.runtime.sys_bytes = v);
    fill(&series.heap_released_bytes, |s, v| {
        s.runtime.heap_released_bytes = v
    });
    by_ts.into_iter().collect()
}

/// The highest of `f` over `samples`, when any has it.
fn peak_of(samples: &[(i64, Sample)], f: impl Fn(&Sample) -> Option<u64>) -> Option<Peak> {
    let mut peak: Option<Peak> = None;
    let mut count = 0;
    for (ts, s) in samples {
        let Some(v) = f(s) else { continue };
        count += 1;
        if peak.is_none_or(|p| v > p.bytes) {
            peak = Some(Peak {
                bytes: v,
                at_unix_ms: *ts,
                samples: 0,
            });
        }
    }
    peak.map(|p| Peak {
        samples: count,
        ..p
    })
}

/// The peaks of the stored series; `None` when the process has no stored
/// sample.
pub fn peaks(series: &StoredSeries) -> Option<Peaks> {
    let samples = samples(series);
    let (first, last) = (samples.first()?.0, samples.last()?.0);
    Some(Peaks {
        first_unix_ms: first,
        last_unix_ms: last,
        samples: samples.len(),
        rss: peak_of(&samples, |s| s.rss_bytes),
        usage: peak_of(&samples, |s| s.usage_bytes),
        outside: peak_of(&samples, Sample::outside_runtime_bytes),
        non_heap: peak_of(&samples, Sample::non_heap_bytes),
    })
}

/// Where a figure's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The live read of this run.
    Live,
    /// The agent's history.
    History,
}

impl Origin {
    /// `live` or `history` (the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Live => "live",
            Origin::History => "history",
        }
    }
}

/// One figure of the advice with where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    /// The value (`None`: neither source had it).
    pub bytes: Option<u64>,
    /// Where the value came from (live when neither had it).
    pub origin: Origin,
    /// Samples of that source the value is the peak of.
    pub samples: usize,
    /// When the history's peak was stored (ms since the epoch); `None` for
    /// a live value.
    pub at_unix_ms: Option<i64>,
}

/// The higher of the live peak (`live`, over `live_samples` samples) and
/// the stored one; the live one on a tie (it is the fresher reading).
pub fn merge(live: Option<u64>, live_samples: usize, stored: Option<Peak>) -> Figure {
    match stored {
        Some(p) if live.is_none_or(|l| p.bytes > l) => Figure {
            bytes: Some(p.bytes),
            origin: Origin::History,
            samples: p.samples,
            at_unix_ms: Some(p.at_unix_ms),
        },
        _ => Figure {
            bytes: live,
            origin: Origin::Live,
            samples: live_samples,
            at_unix_ms: None,
        },
    }
}

/// Reads the stored series of process (`pid`, `start_time`) and of its
/// cgroup `cgroup_path` from `from_ms` to `to_ms` and returns their peaks;
/// `None` when the store holds no sample of the process in that span.
pub fn read(
    store: &Store,
    pid: i32,
    start_time: u64,
    cgroup_path: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<Option<Peaks>> {
    let Some(process) = store.entity_id(&Entity::Process { pid, start_time })? else {
        return Ok(None);
    };
    let get = |metric: &str| store.series(process, metric, from_ms, to_ms);
    let mut series = StoredSeries {
        rss_bytes: get("rss_bytes")?,
        heap_inuse_bytes: get("go_heap_inuse_bytes")?,
        sys_bytes: get("go_sys_bytes")?,
        heap_released_bytes: get("go_heap_released_bytes")?,
        ..StoredSeries::default()
    };
    if series.rss_bytes.is_empty() {
        return Ok(None);
    }
    if let Some(path) = cgroup_path {
        let entity = store.entity_id(&Entity::Cgroup {
            path: path.to_string(),
        })?;
        if let Some(cgroup) = entity {
            series.usage_bytes = store.series(cgroup, "usage_bytes", from_ms, to_ms)?;
        }
    }
    Ok(peaks(&series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::observe::RuntimeSample;

    const MIB: f64 = 1048576.0;

    /// A sample with no runtime numbers.
    fn bare(rss: Option<u64>, usage: Option<u64>) -> Sample {
        Sample {
            rss_bytes: rss,
            usage_bytes: usage,
            runtime: RuntimeSample::default(),
        }
    }

    fn mib(pairs: &[(i64, f64)]) -> Series {
        pairs.iter().map(|(t, v)| (*t, v * MIB)).collect()
    }

    /// Six instants; the runtime read at three of them; a spike of memory
    /// outside the Go runtime at t=3000 that the live window will not see.
    fn stored() -> StoredSeries {
        StoredSeries {
            rss_bytes: mib(&[
                (1000, 40.0),
                (2000, 42.0),
                (3000, 90.0),
                (4000, 45.0),
                (5000, 44.0),
                (6000, 43.0),
            ]),
            // The cgroup also has instants before the process was recorded.
            usage_bytes: mib(&[
                (500, 500.0),
                (1000, 50.0),
                (2000, 52.0),
                (3000, 120.0),
                (5000, 60.0),
            ]),
            heap_inuse_bytes: mib(&[(1000, 20.0), (3000, 22.0), (5000, 30.0)]),
            sys_bytes: mib(&[(1000, 35.0), (3000, 36.0), (5000, 40.0)]),
            heap_released_bytes: mib(&[(1000, 5.0), (3000, 4.0), (5000, 10.0), (6000, 1.0)]),
        }
    }

    #[test]
    fn peaks_are_taken_over_the_instants_of_the_process() {
        let p = peaks(&stored()).expect("peaks");
        assert_eq!(
            (p.first_unix_ms, p.last_unix_ms, p.samples),
            (1000, 6000, 6)
        );
        let rss = p.rss.unwrap();
        assert_eq!(
            (rss.bytes, rss.at_unix_ms, rss.samples),
            (90 << 20, 3000, 6)
        );
        // 500 MiB at t=500 is before the process was recorded: not its.
        let usage = p.usage.unwrap();
        assert_eq!(
            (usage.bytes, usage.at_unix_ms, usage.samples),
            (120 << 20, 3000, 4)
        );
        // outside = max(usage, rss) - (sys - released), where sys and
        // released are both stored: 1000 → 50-30, 3000 → 120-32, 5000 → 60-30.
        let outside = p.outside.unwrap();
        assert_eq!(
            (outside.bytes, outside.at_unix_ms, outside.samples),
            (88 << 20, 3000, 3)
        );
        // non-heap = rss - heap in use: 1000 → 20, 3000 → 68, 5000 → 14.
        let non_heap = p.non_heap.unwrap();
        assert_eq!(
            (non_heap.bytes, non_heap.at_unix_ms, non_heap.samples),
            (68 << 20, 3000, 3)
        );
    }

    #[test]
    fn the_same_definitions_as_the_live_window() {
        for (_, s) in samples(&stored()) {
            let live = Sample {
                rss_bytes: s.rss_bytes,
                usage_bytes: s.usage_bytes,
                runtime: s.runtime,
            };
            assert_eq!(s.outside_runtime_bytes(), live.outside_runtime_bytes());
        }
        // Without a cgroup, RSS stands for the charge.
        let s = Sample {
            runtime: RuntimeSample {
                sys_bytes: Some(30),
                heap_released_bytes: Some(10),
                heap_inuse_bytes: Some(15),
                ..RuntimeSample::default()
            },
            ..bare(Some(50), None)
        };
        assert_eq!(s.outside_runtime_bytes(), Some(30));
        assert_eq!(s.non_heap_bytes(), Some(35));
        assert_eq!(bare(Some(50), Some(70)).outside_runtime_bytes(), None);
    }

    #[test]
    fn nothing_stored_or_odd_values() {
        assert_eq!(peaks(&StoredSeries::default()), None);
        let only_cgroup = StoredSeries {
            usage_bytes: mib(&[(1, 1.0)]),
            ..StoredSeries::default()
        };
        assert_eq!(peaks(&only_cgroup), None);
        let odd = StoredSeries {
            rss_bytes: vec![(1, f64::NAN), (2, -5.0), (3, f64::INFINITY), (4, 7.0)],
            heap_inuse_bytes: vec![(4, 9.0)],
            ..StoredSeries::default()
        };
        let p = peaks(&odd).unwrap();
        assert_eq!(p.samples, 4);
        assert_eq!(p.rss.map(|r| (r.bytes, r.samples)), Some((7, 1)));
        // Heap in use above RSS: floored at 0, not wrapped.
        assert_eq!(p.non_heap.map(|r| r.bytes), Some(0));
        assert_eq!(p.usage, None);
        assert_eq!(p.outside, None);
    }

    #[test]
    fn merge_keeps_the_higher_and_says_where_from() {
        let stored = Some(Peak {
            bytes: 100,
            at_unix_ms: 42,
            samples: 7,
        });
        let f = merge(Some(80), 3, stored);
        assert_eq!(
            (f.bytes, f.origin, f.samples, f.at_unix_ms),
            (Some(100), Origin::History, 7, Some(42))
        );
        let f = merge(Some(100), 3, stored);
        assert_eq!((f.bytes, f.origin, f.samples), (Some(100), Origin::Live, 3));
        let f = merge(Some(120), 3, stored);
        assert_eq!(
            (f.bytes, f.origin, f.at_unix_ms),
            (Some(120), Origin::Live, None)
        );
        let f = merge(None, 0, stored);
        assert_eq!((f.bytes, f.origin), (Some(100), Origin::History));
        let f = merge(Some(5), 1, None);
        assert_eq!((f.bytes, f.origin, f.samples), (Some(5), Origin::Live, 1));
        assert_eq!(merge(None, 0, None).bytes, None);
    }
}
