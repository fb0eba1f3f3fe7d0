//! The `go_*` and `process_*` series of client_golang's Go and process
//! collectors, picked out of an [`Exposition`].
//!
//! Every field is `None` when the series is absent (older or newer
//! client_golang, a custom registry) or its value does not fit the field (NaN,
//! negative, fractional for a count). `go_gc_gogc_percent` and
//! `go_gc_gomemlimit_bytes` come only from client_golang versions that read
//! `runtime/metrics` (`/gc/gogc:percent`, `/gc/gomemlimit:bytes`): they are the
//! settings *in force*, including ones made in code with `debug.SetGCPercent` /
//! `debug.SetMemoryLimit`, which the environment never shows.

use super::Exposition;

/// `go_gc_duration_seconds`: the summary of stop-the-world pause durations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GcDurationSummary {
    /// `(quantile, seconds)` pairs, in the order exposed (client_golang: 0, 0.25,
    /// 0.5, 0.75, 1).
    pub quantiles: Vec<(f64, f64)>,
    /// `_sum`: total pause time, seconds.
    pub sum_seconds: Option<f64>,
    /// `_count`: the number of completed GC cycles.
    pub count: Option<u64>,
}

/// The Go runtime series of client_golang (`go_*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GoMetrics {
    /// `go_info{version}`: the Go version, e.g. `go1.19.8`.
    pub version: Option<String>,
    /// `go_goroutines`.
    pub goroutines: Option<u64>,
    /// `go_threads`: OS threads created.
    pub threads: Option<u64>,
    /// `go_memstats_alloc_bytes` (= HeapAlloc).
    pub alloc_bytes: Option<u64>,
    /// `go_memstats_alloc_bytes_total` (= TotalAlloc).
    pub alloc_bytes_total: Option<u64>,
    /// `go_memstats_sys_bytes` (= Sys).
    pub sys_bytes: Option<u64>,
    /// `go_memstats_mallocs_total`.
    pub mallocs_total: Option<u64>,
    /// `go_memstats_frees_total`.
    pub frees_total: Option<u64>,
    /// `go_memstats_heap_alloc_bytes`.
    pub heap_alloc_bytes: Option<u64>,
    /// `go_memstats_heap_sys_bytes`.
    pub heap_sys_bytes: Option<u64>,
    /// `go_memstats_heap_idle_bytes`.
    pub heap_idle_bytes: Option<u64>,
    /// `go_memstats_heap_inuse_bytes`.
    pub heap_inuse_bytes: Option<u64>,
    /// `go_memstats_heap_released_bytes`.
    pub heap_released_bytes: Option<u64>,
    /// `go_memstats_heap_objects`.
    pub heap_objects: Option<u64>,
    /// `go_memstats_stack_inuse_bytes`.
    pub stack_inuse_bytes: Option<u64>,
    /// `go_memstats_stack_sys_bytes`.
    pub stack_sys_bytes: Option<u64>,
    /// `go_memstats_mspan_inuse_bytes`.
    pub mspan_inuse_bytes: Option<u64>,
    /// `go_memstats_mspan_sys_bytes`.
    pub mspan_sys_bytes: Option<u64>,
    /// `go_memstats_mcache_inuse_bytes`.
    pub mcache_inuse_bytes: Option<u64>,
    /// `go_memstats_mcache_sys_bytes`.
    pub mcache_sys_bytes: Option<u64>,
    /// `go_memstats_buck_hash_sys_bytes`.
    pub buck_hash_sys_bytes: Option<u64>,
    /// `go_memstats_gc_sys_bytes`.
    pub gc_sys_bytes: Option<u64>,
    /// `go_memstats_other_sys_bytes`.
    pub other_sys_bytes: Option<u64>,
    /// `go_memstats_next_gc_bytes`: the heap goal.
    pub next_gc_bytes: Option<u64>,
    /// `go_memstats_last_gc_time_seconds`: end of the last GC, Unix seconds.
    pub last_gc_time_seconds: Option<f64>,
    /// `go_gc_duration_seconds`.
    pub gc_duration: Option<GcDurationSummary>,
    /// `go_gc_gogc_percent`: GOGC in force; `Some(None)` when GC is off
    /// (`GOGC=off`, exposed as a negative or huge value).
    pub gogc_percent: Option<Option<u64>>,
    /// `go_gc_gomemlimit_bytes`: the memory limit in force; `Some(None)` when
    /// there is none (the runtime's `math.MaxInt64`).
    pub gomemlimit_bytes: Option<Option<u64>>,
    /// `go_sched_gomaxprocs_threads`: GOMAXPROCS (newer client_golang).
    pub gomaxprocs: Option<u64>,
}

/// The process collector's series of client_golang (`process_*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessMetrics {
    /// `process_resident_memory_bytes`.
    pub resident_memory_bytes: Option<u64>,
    /// `process_virtual_memory_bytes`.
    pub virtual_memory_bytes: Option<u64>,
    /// `process_virtual_memory_max_bytes` (`None` for "unlimited" is not
    /// distinguished: the value as exposed, when it fits).
    pub virtual_memory_max_bytes: Option<u64>,
    /// `process_open_fds`.
    pub open_fds: Option<u64>,
    /// `process_max_fds`.
    pub max_fds: Option<u64>,
    /// `process_start_time_seconds`: Unix seconds.
    pub start_time_seconds: Option<f64>,
    /// `process_cpu_seconds_total`: user + system CPU seconds.
    pub cpu_seconds_total: Option<f64>,
}

/// The largest value an `f64` holds that is still an exact `u64` range check
/// bound: `2^64`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
/// Values at or above `2^63 - 1` (the runtime's "no limit", `math.MaxInt64`)
/// mean "none".
const NO_LIMIT: f64 = 9_223_372_036_854_775_807.0;

/// A count or byte size: finite, non-negative, whole, below 2^64.
fn whole(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value < TWO_POW_64)
        .then_some(value as u64)
}

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

impl GoMetrics {
    /// Picks the `go_*` series out of `exposition`.
    pub fn from_exposition(exposition: &Exposition) -> GoMetrics {
        let count = |name: &str| exposition.value(name).and_then(whole);
        let memstat = |name: &str| count(&format!("go_memstats_{name}"));
        GoMetrics {
            version: exposition
                .samples()
                .find(|s| s.name == "go_info")
                .and_then(|s| s.label("version"))
                .map(str::to_string),
            goroutines: count("go_goroutines"),
            threads: count("go_threads"),
            alloc_bytes: memstat("alloc_bytes"),
            alloc_bytes_total: memstat("alloc_bytes_total"),
            sys_bytes: memstat("sys_bytes"),
            mallocs_total: memstat("mallocs_total"),
            frees_total: memstat("frees_total"),
            heap_alloc_bytes: memstat("heap_alloc_bytes"),
            heap_sys_bytes: memstat("heap_sys_bytes"),
            heap_idle_bytes: memstat("heap_idle_bytes"),
            heap_inuse_bytes: memstat("heap_inuse_bytes"),
            heap_released_bytes: memstat("heap_released_bytes"),
            heap_objects: memstat("heap_objects"),
            stack_inuse_bytes: memstat("stack_inuse_bytes"),
            stack_sys_bytes: memstat("stack_sys_bytes"),
            mspan_inuse_bytes: memstat("mspan_inuse_bytes"),
            mspan_sys_bytes: memstat("mspan_sys_bytes"),
            mcache_inuse_bytes: memstat("mcache_inuse_bytes"),
            mcache_sys_bytes: memstat("mcache_sys_bytes"),
            buck_hash_sys_bytes: memstat("buck_hash_sys_bytes"),
            gc_sys_bytes: memstat("gc_sys_bytes"),
            other_sys_bytes: memstat("other_sys_bytes"),
            next_gc_bytes: memstat("next_gc_bytes"),
            last_gc_time_seconds: exposition
                .value("go_memstats_last_gc_time_seconds")
                .and_then(finite),
            gc_duration: gc_duration(exposition),
            gogc_percent: exposition.value("go_gc_gogc_percent").map(|v| {
                if !(0.0..NO_LIMIT).contains(&v) {
                    None
                } else {
                    whole(v)
                }
            }),
            gomemlimit_bytes: exposition.value("go_gc_gomemlimit_bytes").map(|v| {
                if v >= NO_LIMIT {
                    None
                } else {
                    whole(v)
                }
            }),
            gomaxprocs: count("go_sched_gomaxprocs_threads"),
        }
    }
}

fn gc_duration(exposition: &Exposition) -> Option<GcDurationSummary> {
    let family = exposition.family("go_gc_duration_seconds")?;
    let mut summary = GcDurationSummary::default();
    for sample in &family.samples {
        match sample.name.as_str() {
            "go_gc_duration_seconds" => {
                if let Some(q) = sample.label("quantile").and_then(|q| q.parse().ok()) {
                    summary.quantiles.push((q, sample.value));
                }
            }
            "go_gc_duration_seconds_sum" => summary.sum_seconds = finite(sample.value),
            "go_gc_duration_seconds_count" => summary.count = whole(sample.value),
            _ => {}
        }
    }
    Some(summary)
}

impl ProcessMetrics {
    /// Picks the `process_*` series out of `exposition`.
    pub fn from_exposition(exposition: &Exposition) -> ProcessMetrics {
        let count = |name: &str| exposition.value(name).and_then(whole);
        let seconds = |name: &str| exposition.value(name).and_then(finite);
        ProcessMetrics {
            resident_memory_bytes: count("process_resident_memory_bytes"),
            virtual_memory_bytes: count("process_virtual_memory_bytes"),
            virtual_memory_max_bytes: count("process_virtual_memory_max_bytes"),
            open_fds: count("process_open_fds"),
            max_fds: count("process_max_fds"),
            start_time_seconds: seconds("process_start_time_seconds"),
            cpu_seconds_total: seconds("process_cpu_seconds_total"),
        }
    }

    /// True when none of the series is there.
    pub fn is_empty(&self) -> bool {
        *self == ProcessMetrics::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promtext::parse_promtext;

    #[test]
    fn settings_in_force_and_their_off_values() {
        let text = "go_gc_gogc_percent 50\ngo_gc_gomemlimit_bytes 1.00663296e+08\n";
        let go = GoMetrics::from_exposition(&parse_promtext("m", text.as_bytes()).unwrap());
        assert_eq!(go.gogc_percent, Some(Some(50)));
        assert_eq!(go.gomemlimit_bytes, Some(Some(96 << 20)));
        let text = "go_gc_gogc_percent -1\ngo_gc_gomemlimit_bytes 9.223372036854776e+18\n";
        let go = GoMetrics::from_exposition(&parse_promtext("m", text.as_bytes()).unwrap());
        assert_eq!(go.gogc_percent, Some(None));
        assert_eq!(go.gomemlimit_bytes, Some(None));
        assert_eq!(go.goroutines, None);
    }

    #[test]
    fn counts_must_be_whole() {
        let text = "go_goroutines 1.5\ngo_threads NaN\nprocess_open_fds -1\n";
        let e = parse_promtext("m", text.as_bytes()).unwrap();
        let go = GoMetrics::from_exposition(&e);
        assert_eq!((go.goroutines, go.threads), (None, None));
        assert!(ProcessMetrics::from_exposition(&e).is_empty());
    }
}
