//! The process and Go runtime checks that `memlens diagnose` runs over a
//! window, live in the engine: the same pure detectors ([`crate::fds`],
//! [`crate::vmas`], [`crate::gomemconfig`], [`crate::gcpressure`]) fed from
//! a short memory of each entity's points, plus the goroutine count trend of
//! the alert catalogue's GoroutineLeak ([`crate::goroutine_leak::count_trend`]).
//!
//! | finding | evaluated on | window kept |
//! |---|---|---|
//! | `fd.exhaustion` | `fd_count` with `fd_limit` | [`ChecksConfig::limit_window_seconds`] |
//! | `vma.count_near_limit` | `vma_count` with the host's `max_map_count` | the same |
//! | `go.gomemlimit_*`, `go.gogc_off_without_limit` | `go_env_gomemlimit_bytes` (each Go process, each cycle) with the runtime's settings when read, its cgroup's `effective_limit_bytes`, the outside memory's peak | [`ChecksConfig::outside_window_seconds`] |
//! | `go.goroutine_leak` | `go_goroutines` | [`ChecksConfig::goroutine_window_seconds`] |
//! | `go.gc_pressure` | `go_gc_cycles_total` with the GC counters and [`RUN_QUEUE_WAIT`] | [`ChecksConfig::gc_window_seconds`] |
//!
//! Cost, bounded: the collector reads the counts anyway (the fds by a
//! readdir, the maps by one read, every cycle); each check runs at most
//! every [`ChecksConfig::every_seconds`] per entity, and each window keeps
//! at most [`MAX_SAMPLES`] samples (a new one only when the window's share
//! has passed since the last kept one), whatever the interval.

use super::{Condition, Engine, EntityState, Key};
use crate::finding::{Evidence, Finding, Layer};
use crate::gomemconfig::{self, GOGC_OFF_WITHOUT_LIMIT, GOMEMLIMIT_ABOVE_LIMIT};
use crate::gomemconfig::{GOMEMLIMIT_MISSING, GOMEMLIMIT_TOO_CLOSE};
use crate::goroutine_leak::{self, GOROUTINE_LEAK};
use crate::{fds, gcpressure, vmas};
use memlens_model::series::Entity;
use std::collections::{HashMap, VecDeque};

/// The most samples one window keeps.
pub const MAX_SAMPLES: usize = 120;

/// The derived series of the memory the Go runtime does not count
/// ([`gomemconfig::outside_runtime_bytes`]), kept for its peak.
const OUTSIDE: &str = "outside_runtime_bytes";

/// The GC counters of [`gcpressure::Counters`], as the history names them,
/// and the run-queue wait of the process's threads read with them.
const GC_COUNTERS: [&str; 5] = [
    "go_gc_cycles_total",
    "go_gc_pause_ns_total",
    "go_alloc_bytes_total",
    "go_mallocs_total",
    RUN_QUEUE_WAIT,
];

/// The summed run-queue wait of a Go process's threads (seconds,
/// `/proc/PID/task/TID/schedstat`), a point the agent takes with each read of
/// the runtime's counters: the GC pressure check's "CPU-starved" exemption.
pub const RUN_QUEUE_WAIT: &str = "run_queue_wait_seconds";

/// The metrics the checks read ([`crate::metric_name`] knows them too).
pub const CHECK_METRICS: &[&str] = &[
    "fd_count",
    "fd_limit",
    "vma_count",
    "anon_vma_count",
    "mapped_bytes",
    "max_map_count",
    "go_goroutines",
    "go_gc_cycles_total",
    "go_gc_pause_ns_total",
    "go_alloc_bytes_total",
    "go_mallocs_total",
    "go_gc_cpu_fraction",
    "go_heap_alloc_bytes",
    RUN_QUEUE_WAIT,
    GO_ENV_GOMEMLIMIT,
    GO_ENV_GOGC,
];

/// GOMEMLIMIT as the process's environment sets it, a point of every Go
/// process at every cycle: the bytes, or [`UNSET`] when it sets none (or
/// one the runtime rejects). It also says "this is a Go process".
pub const GO_ENV_GOMEMLIMIT: &str = "go_env_gomemlimit_bytes";
/// GOGC as the environment sets it: the percent, -1 for `off`, 100 when
/// unset (the runtime's default).
pub const GO_ENV_GOGC: &str = "go_env_gogc_percent";
/// "No limit" (math.MaxInt64 as a float), as the runtime reports it.
pub const UNSET: f64 = 9.223_372_036_854_776e18;

/// Tuning of the live checks; the defaults are the alert catalogue's
/// (`memlens rules`, `[alerts]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChecksConfig {
    /// A check runs at most this often per entity (15 s).
    pub every_seconds: f64,
    /// Open files against the soft limit.
    pub fds: fds::Config,
    /// Mappings against `vm.max_map_count` (only its count finding runs live).
    pub vmas: vmas::Config,
    /// The window of the fd and mapping growth forecasts (300 s).
    pub limit_window_seconds: f64,
    /// GOMEMLIMIT's margin under the cgroup limit.
    pub gomem: gomemconfig::Config,
    /// The window whose peak of outside memory the GOMEMLIMIT checks take (3600 s).
    pub outside_window_seconds: f64,
    /// Goroutine leak: at least this many goroutines (1000).
    pub goroutine_min: f64,
    /// Goroutine leak: the newest quarter's fewest at least this many
    /// times the oldest quarter's most (1.5).
    pub goroutine_growth_ratio: f64,
    /// Goroutine leak: the window (3600 s).
    pub goroutine_window_seconds: f64,
    /// GC pressure.
    pub gc: gcpressure::Config,
    /// The window of the GC counters' rates (300 s).
    pub gc_window_seconds: f64,
}

impl Default for ChecksConfig {
    fn default() -> ChecksConfig {
        ChecksConfig {
            every_seconds: 15.0,
            fds: fds::Config::default(),
            vmas: vmas::Config::default(),
            limit_window_seconds: 300.0,
            gomem: gomemconfig::Config::default(),
            outside_window_seconds: 3600.0,
            goroutine_min: 1000.0,
            goroutine_growth_ratio: 1.5,
            goroutine_window_seconds: 3600.0,
            gc: gcpressure::Config::default(),
            gc_window_seconds: 300.0,
        }
    }
}

impl ChecksConfig {
    fn window_ms(&self, series: &str) -> i64 {
        let seconds = match series {
            "fd_count" | "vma_count" => self.limit_window_seconds,
            "go_goroutines" => self.goroutine_window_seconds,
            OUTSIDE => self.outside_window_seconds,
            _ => self.gc_window_seconds,
        };
        (seconds.max(0.0) * 1000.0) as i64
    }
}

/// The metrics whose arrival runs a check.
const TRIGGERS: &[&str] = &[
    "fd_count",
    "vma_count",
    GO_ENV_GOMEMLIMIT,
    "go_goroutines",
    "go_gc_cycles_total",
];

/// One entity's recent samples of the windowed series.
#[derive(Debug, Default)]
pub(super) struct Samples {
    series: HashMap<&'static str, VecDeque<(i64, f64)>>,
    checked_ms: HashMap<&'static str, i64>,
}

impl Samples {
    fn keep(&mut self, config: &ChecksConfig, series: &'static str, ts_ms: i64, value: f64) {
        let window_ms = config.window_ms(series);
        let spacing_ms = window_ms / MAX_SAMPLES as i64;
        let kept = self.series.entry(series).or_default();
        // The newest sample always stands for "now"; it is kept for good
        // once the spacing has passed since the one before it.
        if kept.len() >= 2 && kept[kept.len() - 1].0 - kept[kept.len() - 2].0 < spacing_ms {
            kept.pop_back();
        }
        kept.push_back((ts_ms, value));
        while kept.len() > 1 && kept[0].0 < ts_ms - window_ms {
            kept.pop_front();
        }
    }

    /// Takes one point; `true` when it is a trigger whose check is due.
    pub(super) fn push(
        &mut self,
        config: &ChecksConfig,
        metric: &'static str,
        ts_ms: i64,
        value: f64,
    ) -> bool {
        if matches!(metric, "fd_count" | "vma_count" | "go_goroutines")
            || GC_COUNTERS.contains(&metric)
        {
            self.keep(config, metric, ts_ms, value);
        }
        if !TRIGGERS.contains(&metric) {
            return false;
        }
        // (A fifth of slack, as for the trends: instants jitter.)
        let every_ms = (config.every_seconds * 800.0) as i64;
        let due = self
            .checked_ms
            .get(metric)
            .is_none_or(|last| ts_ms - last >= every_ms);
        if due {
            self.checked_ms.insert(metric, ts_ms);
        }
        due
    }

    /// The oldest kept sample of `series` and the newest one.
    fn ends(&self, series: &str) -> Option<((i64, f64), (i64, f64))> {
        let kept = self.series.get(series)?;
        Some((*kept.front()?, *kept.back()?))
    }
}

fn condition(f: Finding) -> Condition {
    Condition {
        severity: f.severity,
        evidence: f.evidence,
        recommendation: f.recommendation,
    }
}

impl Engine {
    /// Notes the memory a Go process's runtime does not count, for the
    /// GOMEMLIMIT checks' peak (at each read of its runtime).
    pub(super) fn note_outside(&mut self, entity: &Entity, ts_ms: i64) {
        let Some(state) = self.entities.get(entity) else {
            return;
        };
        let usage = self
            .process_cgroups
            .get(entity)
            .and_then(|path| self.entities.get(&Entity::Cgroup { path: path.clone() }))
            .and_then(|cg| cg.latest.get("usage_bytes").copied());
        let get = |m: &str| state.latest.get(m).map(|v| v.max(0.0) as u64);
        let outside = gomemconfig::outside_runtime_bytes(
            usage.map(|v| v.max(0.0) as u64),
            get("rss_bytes"),
            get("go_sys_bytes"),
            get("go_heap_released_bytes"),
        );
        if let (Some(outside), Some(state)) = (outside, self.entities.get_mut(entity)) {
            let config = &self.config.checks;
            state.samples.keep(config, OUTSIDE, ts_ms, outside as f64);
        }
    }

    /// The checks `metric`'s arrival runs for `entity`.
    pub(super) fn evaluate_checks(
        &self,
        entity: &Entity,
        state: &EntityState,
        metric: &'static str,
        out: &mut Vec<(Key, Option<Condition>)>,
    ) {
        if !matches!(entity, Entity::Process { .. }) || !TRIGGERS.contains(&metric) {
            return;
        }
        // An entity evaluated now was seen now.
        let ts_ms = state.last_seen_ms;
        let c = &self.config.checks;
        let latest = |m: &str| state.latest.get(m).copied().filter(|v| *v >= 0.0);
        match metric {
            "fd_count" => {
                let Some(((t0, start), (t1, end))) = state.samples.ends("fd_count") else {
                    return;
                };
                let obs = fds::Observation {
                    fds_start: start as u64,
                    fds_end: end as u64,
                    soft_limit: latest("fd_limit").map(|l| l as u64),
                    window_seconds: (t1 - t0) as f64 / 1000.0,
                };
                let f = fds::check(&obs, &c.fds, entity, ts_ms).map(condition);
                out.push(((entity.clone(), fds::FD_EXHAUSTION, "fd_count"), f));
            }
            "vma_count" => {
                let Some(((t0, start), (t1, end))) = state.samples.ends("vma_count") else {
                    return;
                };
                let max_map_count = self
                    .entities
                    .get(&Entity::Host)
                    .and_then(|h| h.latest.get("max_map_count"))
                    .map(|v| *v as u64);
                let obs = vmas::Observation {
                    vmas_start: start as u64,
                    vmas_end: end as u64,
                    anon_vmas: latest("anon_vma_count").unwrap_or(0.0) as u64,
                    mapped_bytes: latest("mapped_bytes").unwrap_or(0.0) as u64,
                    largest_gap_bytes: None,
                    max_map_count,
                    window_seconds: (t1 - t0) as f64 / 1000.0,
                };
                let f = vmas::check(&obs, &c.vmas, entity, ts_ms)
                    .into_iter()
                    .find(|f| f.id == vmas::VMA_COUNT)
                    .map(condition);
                out.push(((entity.clone(), vmas::VMA_COUNT, "vma_count"), f));
            }
            GO_ENV_GOMEMLIMIT => self.evaluate_settings(entity, state, ts_ms, out),
            "go_goroutines" => {
                let window = state
                    .samples
                    .series
                    .get("go_goroutines")
                    .map(|k| k.iter().copied().collect::<Vec<_>>())
                    .unwrap_or_default();
                let trend = goroutine_leak::CountTrendConfig {
                    min_goroutines: c.goroutine_min,
                    growth_ratio: c.goroutine_growth_ratio,
                    window_seconds: c.goroutine_window_seconds,
                };
                let f = goroutine_leak::count_trend(&window, &trend, entity, ts_ms).map(condition);
                out.push(((entity.clone(), GOROUTINE_LEAK, "go_goroutines"), f));
            }
            "go_gc_cycles_total" => {
                let counters = |i: usize| {
                    let at = |m: &str| {
                        let kept = state.samples.series.get(m)?;
                        let s = if i == 0 { kept.front() } else { kept.back() };
                        s.map(|s| s.1 as u64)
                    };
                    gcpressure::Counters {
                        num_gc: at("go_gc_cycles_total"),
                        pause_total_ns: at("go_gc_pause_ns_total"),
                        total_alloc_bytes: at("go_alloc_bytes_total"),
                        mallocs: at("go_mallocs_total"),
                        gc_cpu_fraction: (i == 1).then(|| latest("go_gc_cpu_fraction")).flatten(),
                        heap_alloc_bytes: (i == 1)
                            .then(|| latest("go_heap_alloc_bytes").map(|v| v as u64))
                            .flatten(),
                    }
                };
                let Some(((t0, _), (t1, _))) = state.samples.ends("go_gc_cycles_total") else {
                    return;
                };
                let gomemlimit = latest("go_gomemlimit_bytes").filter(|l| *l > 0.0 && *l < 4e18);
                // The wait read with the counters at both of the window's
                // instants (an instant's points are all kept before any check).
                let wait_at = |t: i64| {
                    let kept = state.samples.series.get(RUN_QUEUE_WAIT)?;
                    kept.iter().find(|s| s.0 == t).map(|s| s.1)
                };
                let run_queue_wait_seconds = match (wait_at(t0), wait_at(t1)) {
                    (Some(start), Some(end)) if end >= start => Some(end - start),
                    // A thread that exits takes its wait with it: a sum
                    // that went back says nothing of the window.
                    _ => None,
                };
                let obs = gcpressure::Observation {
                    start: counters(0),
                    end: counters(1),
                    window_seconds: (t1 - t0) as f64 / 1000.0,
                    gomemlimit_bytes: gomemlimit.map(|l| l as u64),
                    run_queue_wait_seconds,
                };
                let f = gcpressure::check(&obs, &c.gc, entity, ts_ms).map(|mut f| {
                    // What GOMEMLIMIT bounds, against it: the catalogue's
                    // GoGCDeathSpiral needs it.
                    let used = latest("go_sys_bytes")
                        .map(|sys| sys - latest("go_heap_released_bytes").unwrap_or(0.0));
                    if let (Some(used), Some(limit)) = (used, gomemlimit) {
                        f.evidence.push(Evidence::new(
                            "go_memory_to_gomemlimit_ratio",
                            used / limit,
                            "ratio",
                            Layer::Derived,
                        ));
                    }
                    condition(f)
                });
                out.push((
                    (
                        entity.clone(),
                        gcpressure::GC_PRESSURE,
                        "go_gc_cycles_total",
                    ),
                    f,
                ));
            }
            _ => {}
        }
    }

    /// GOMEMLIMIT and GOGC in force (the runtime's when read, else the
    /// environment's) against the process's cgroup limit.
    fn evaluate_settings(
        &self,
        entity: &Entity,
        state: &EntityState,
        ts_ms: i64,
        out: &mut Vec<(Key, Option<Condition>)>,
    ) {
        let latest = |m: &str| state.latest.get(m).copied();
        let runtime_limit = latest("go_gomemlimit_bytes").map(|v| (v > 0.0).then_some(v as u64));
        let env_limit = latest(GO_ENV_GOMEMLIMIT)
            .filter(|v| *v >= 0.0 && *v < 4e18)
            .map(|v| (v as u64).to_string());
        let gomemlimit = gomemconfig::resolve_gomemlimit(runtime_limit, env_limit.as_deref())
            .unwrap_or(gomemconfig::MemoryLimit {
                bytes: None,
                source: gomemconfig::Source::Default,
            });
        let runtime_gogc = latest("go_gogc_percent").map(|v| (v >= 0.0).then_some(v as u64));
        let env_gogc = latest(GO_ENV_GOGC).map(|v| {
            if v < 0.0 {
                "off".to_string()
            } else {
                (v as u64).to_string()
            }
        });
        let gogc = gomemconfig::resolve_gogc(runtime_gogc, env_gogc.as_deref());
        let cgroup = self
            .process_cgroups
            .get(entity)
            .and_then(|path| self.entities.get(&Entity::Cgroup { path: path.clone() }));
        let limit = cgroup
            .and_then(|cg| cg.latest.get("effective_limit_bytes"))
            .filter(|l| **l > 0.0 && **l < 4e18)
            .map(|l| *l as u64);
        let outside = state
            .samples
            .series
            .get(OUTSIDE)
            .and_then(|k| k.iter().map(|s| s.1 as u64).max());
        let inputs = gomemconfig::Inputs {
            cgroup_limit_bytes: limit,
            gomemlimit,
            gogc,
            outside_runtime_bytes: outside,
            non_heap_bytes: None,
            peak_rss_bytes: latest("rss_bytes").map(|v| v as u64),
            peak_usage_bytes: cgroup
                .and_then(|cg| cg.latest.get("usage_bytes"))
                .map(|v| *v as u64),
            live_heap_bytes: None,
        };
        let found = gomemconfig::check(&inputs, &self.config.checks.gomem, entity, ts_ms);
        for id in [
            GOGC_OFF_WITHOUT_LIMIT,
            GOMEMLIMIT_ABOVE_LIMIT,
            GOMEMLIMIT_TOO_CLOSE,
            GOMEMLIMIT_MISSING,
        ] {
            let f = found.iter().find(|f| f.id == id).cloned().map(condition);
            out.push(((entity.clone(), id, GO_ENV_GOMEMLIMIT), f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use crate::{Config, Engine};
    use memlens_model::series::Point;

    fn severity_of(events: &[Finding], id: &str) -> Option<Severity> {
        events.iter().find(|f| f.id == id).map(|f| f.severity)
    }

    #[test]
    fn every_metric_of_the_checks_reaches_the_engine() {
        for m in CHECK_METRICS {
            assert_eq!(crate::metric_name(m), Some(*m));
        }
    }

    fn process() -> Entity {
        Entity::Process {
            pid: 7,
            start_time: 1,
        }
    }

    fn p(entity: &Entity, metric: &'static str, value: f64) -> Point {
        Point {
            entity: entity.clone(),
            metric,
            value,
        }
    }

    #[test]
    fn fds_growing_to_the_limit_fire_and_a_flat_count_does_not() {
        let mut engine = Engine::new(Config::default());
        let (leaky, flat) = (
            process(),
            Entity::Process {
                pid: 8,
                start_time: 1,
            },
        );
        let mut fired = Vec::new();
        for i in 0..40 {
            let ts = i * 5_000;
            fired.extend(engine.observe(
                ts,
                &[
                    p(&leaky, "fd_count", 100.0 + 20.0 * i as f64),
                    p(&leaky, "fd_limit", 1024.0),
                    p(&flat, "fd_count", 500.0),
                    p(&flat, "fd_limit", 1024.0),
                ],
            ));
        }
        let f = fired.iter().find(|f| f.id == fds::FD_EXHAUSTION).unwrap();
        assert_eq!(f.target, leaky);
        assert_eq!(f.severity, Severity::Critical);
        assert!(fired.iter().all(|f| f.target != flat));
    }

    #[test]
    fn gomemlimit_above_the_cgroup_limit_from_the_environment() {
        let mut engine = Engine::new(Config::default());
        let cgroup = Entity::Cgroup {
            path: "/t".to_string(),
        };
        engine.set_process_cgroup(&process(), "/t");
        let mut events = Vec::new();
        for (i, env) in [(0, 200.0 * 1048576.0), (1, UNSET)] {
            let mut engine = Engine::new(Config::default());
            engine.set_process_cgroup(&process(), "/t");
            let e = engine.observe(
                i,
                &[
                    p(&cgroup, "effective_limit_bytes", 128.0 * 1048576.0),
                    p(&cgroup, "usage_bytes", 20.0 * 1048576.0),
                    p(&process(), "rss_bytes", 20.0 * 1048576.0),
                    p(&process(), GO_ENV_GOGC, 100.0),
                    p(&process(), GO_ENV_GOMEMLIMIT, env),
                ],
            );
            events.push(e);
        }
        assert_eq!(
            severity_of(&events[0], GOMEMLIMIT_ABOVE_LIMIT),
            Some(Severity::Critical)
        );
        assert_eq!(
            severity_of(&events[1], GOMEMLIMIT_MISSING),
            Some(Severity::Warning)
        );
        // The runtime's own value wins over the environment's.
        let e = engine.observe(
            0,
            &[
                p(&cgroup, "effective_limit_bytes", 128.0 * 1048576.0),
                p(&process(), "go_gomemlimit_bytes", 64.0 * 1048576.0),
                p(&process(), "go_gogc_percent", 100.0),
                p(&process(), GO_ENV_GOMEMLIMIT, 200.0 * 1048576.0),
            ],
        );
        assert!(e.is_empty(), "{e:?}");
    }

    /// The GC pressure findings of a healthy, CPU-starved Go process: 300
    /// cycles a minute (under the 600 of the cycle rule) stopping the world
    /// 1.6 % of the time (over the 1 % of the pause rule), as the soak saw
    /// the alloc-churn workload do at load 3, with its threads' summed
    /// run-queue wait at each second of the run as `wait` gives it (`None`:
    /// not read).
    fn gc_findings_of_a_starved_process(wait: impl Fn(i64) -> Option<f64>) -> Vec<Finding> {
        let mut engine = Engine::new(Config::default());
        let mut events = Vec::new();
        for i in 0..30 {
            let seconds = i * 5;
            let mut points = vec![
                p(&process(), "go_gc_cycles_total", 5.0 * seconds as f64),
                p(&process(), "go_gc_pause_ns_total", 16e6 * seconds as f64),
                p(&process(), "go_alloc_bytes_total", 10e6 * seconds as f64),
                p(&process(), "go_mallocs_total", 35e3 * seconds as f64),
                p(&process(), "go_gc_cpu_fraction", 0.02),
            ];
            if let Some(w) = wait(seconds) {
                points.push(p(&process(), RUN_QUEUE_WAIT, w));
            }
            events.extend(engine.observe(seconds * 1000, &points));
        }
        events
    }

    #[test]
    fn gc_pauses_a_run_queue_wait_accounts_for_are_not_judged() {
        // Its threads waited 20 % of the time for a CPU (0.2 thread on
        // average), more than the 1.6 % the world was stopped.
        let starved = gc_findings_of_a_starved_process(|s| Some(100.0 + 0.2 * s as f64));
        assert_eq!(
            severity_of(&starved, gcpressure::GC_PRESSURE),
            None,
            "{starved:?}"
        );
        // Without the wait, or with less of it than the pauses, the pauses
        // are judged: a warning.
        for (case, wait) in [
            (
                "not read",
                Box::new(|_| None) as Box<dyn Fn(i64) -> Option<f64>>,
            ),
            ("under the pauses", Box::new(|s| Some(0.01 * s as f64))),
            // A thread exited with its wait: the sum went back.
            (
                "went back",
                Box::new(|s| Some(if s < 60 { 50.0 + s as f64 } else { 1.0 })),
            ),
        ] {
            let judged = gc_findings_of_a_starved_process(wait);
            assert_eq!(
                severity_of(&judged, gcpressure::GC_PRESSURE),
                Some(Severity::Warning),
                "{case}: {judged:?}"
            );
        }
    }

    #[test]
    fn samples_stay_bounded_at_any_interval() {
        let config = ChecksConfig::default();
        let mut s = Samples::default();
        for i in 0..100_000 {
            s.push(&config, "go_goroutines", i * 100, i as f64);
        }
        let kept = &s.series["go_goroutines"];
        assert!(kept.len() <= MAX_SAMPLES + 2, "{}", kept.len());
        assert_eq!(kept.back().unwrap().0, 99_999 * 100);
        assert!(kept.front().unwrap().0 >= 99_999 * 100 - 3_600_000);
    }
}
