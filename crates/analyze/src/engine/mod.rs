//! The detector engine: feed it every instant's points in time order, it
//! answers with the findings that fired or cleared at that instant.
//!
//! State is bounded: per entity, one [`Window`] per trended metric (bounded
//! by time and count) and the latest value of a few others. An entity with no
//! point for [`Config::forget_after_seconds`] (and three of its own
//! intervals) is forgotten and its active findings clear.
//!
//! Detectors:
//! - [`GROWTH`] on `rss_bytes`, `go_heap_inuse_bytes` (processes) and
//!   `usage_bytes` (cgroups): a growth trend ([`crate::trend`]) of at least
//!   [`Config::growth_min_percent_per_hour`] of the level and
//!   [`Config::growth_min_bytes_per_minute`].
//! - [`TIME_TO_OOM`] for processes (`rss_bytes`) and cgroups (their
//!   working set, [`WORKING_SET`]) ([`crate::forecast`]).
//! - [`GOMEMLIMIT_REACHED`]: `go_sys_bytes - go_heap_released_bytes` at
//!   [`Config::gomemlimit_fire_ratio`] of `go_gomemlimit_bytes`.
//!
//! - [`NEAR_LIMIT`] (cgroups' working set, processes' RSS) and
//!   [`THRASHING`] (cgroups) ([`limits`]).
//! - [`CONTENTION`] (cgroups): a neighbour's growth that preceded and
//!   correlates with the cgroup's refaults, faults and stalls ([`contention`]).
//! - [`OOM_KILL`]: kills that already happened, from the OOM kill counters
//!   (`oom_kill_count` of a cgroup, `oom_kills` of the host) and the kernel
//!   log ([`Engine::note_kernel_kill`]), linked to the victim ([`kills`]).
//! - The checks `memlens diagnose` runs over a window, live ([`checks`]):
//!   GOMEMLIMIT/GOGC against the cgroup limit, the goroutine count trend,
//!   GC pressure, FD exhaustion and the VMA count.
//!
//! A condition fires at once; it clears (or steps down a severity) only
//! after it has been absent (or lower) for [`Config::hold_seconds`] without
//! a break: one episode, one fire and one clear, however the condition
//! hovers at a threshold meanwhile (docs/findings.md, "The hold"). The hold
//! is the same for every finding of the engine: a detector only says, at
//! each evaluation, whether its condition holds and at which severity.

mod checks;
mod contention;
mod kills;
mod limits;
mod mysql;

pub use checks::{
    ChecksConfig, CHECK_METRICS, GO_ENV_GOGC, GO_ENV_GOMEMLIMIT, RUN_QUEUE_WAIT, UNSET,
};
pub use kills::KernelKill;
pub use limits::LimitsConfig;

use crate::finding::{Evidence, Finding, Layer, Severity, GOMEMLIMIT_REACHED, GROWTH, TIME_TO_OOM};
#[cfg(doc)]
use crate::finding::{CONTENTION, NEAR_LIMIT, OOM_KILL, THRASHING};
use crate::forecast::{forecast_with_reclaimable, severity, Forecast, ForecastConfig};
use crate::trend::{analyse, analyse_for_forecast, Trend, TrendConfig, Window};
use memlens_model::series::{Entity, Point};
use std::collections::{BTreeMap, HashMap};

/// The metrics the engine reads besides the checks' [`CHECK_METRICS`] (the
/// rest are ignored); [`metric_name`] maps a stored metric name to the
/// `&'static str` of [`Point::metric`] over both.
pub const METRICS: &[&str] = &[
    "rss_bytes",
    "go_heap_inuse_bytes",
    "go_sys_bytes",
    "go_heap_released_bytes",
    "go_gomemlimit_bytes",
    "usage_bytes",
    "inactive_file_bytes",
    WORKING_SET,
    "effective_limit_bytes",
    "mem_total_bytes",
    "mem_available_bytes",
    "swap_total_bytes",
    "oom_kill_count",
    "oom_kills",
    // Near limit and thrashing (limits.rs).
    "high_bytes",
    "anon_bytes",
    "active_file_bytes",
    "file_refaults",
    "anon_refaults",
    "major_faults",
    "pressure_some_total_usec",
    "pressure_full_total_usec",
    "go_next_gc_bytes",
    "go_gogc_percent",
    // MySQL/MariaDB servers (mysql.rs).
    "mysql_pool_size_bytes",
    "mysql_page_size_bytes",
    "mysql_pool_pages_data",
    "mysql_pool_read_requests",
    "mysql_pool_reads",
    "mysql_pool_resident_bytes",
    "mysql_memory_used_bytes",
    "mysql_memory_used_initial_bytes",
    "mysql_pool_pages_total",
    "mysql_pool_pages_free",
    "mysql_pool_pages_misc",
    "mysql_pool_range_found",
    "mysql_log_buffer_bytes",
    "mysql_threads_memory_bytes",
];

/// The OOM kill counters (of cgroups and of the host).
const KILL_COUNTERS: &[&str] = &["oom_kill_count", "oom_kills"];

/// The `&'static str` of a metric name the engine reads ([`METRICS`] and
/// the checks' [`CHECK_METRICS`]); `None` otherwise.
pub fn metric_name(name: &str) -> Option<&'static str> {
    METRICS
        .iter()
        .chain(CHECK_METRICS)
        .copied()
        .find(|m| *m == name)
}

const TRENDED: &[&str] = &[
    "rss_bytes",
    "go_heap_inuse_bytes",
    "usage_bytes",
    WORKING_SET,
];

/// A cgroup's working set, derived by the engine at each instant from the
/// cgroup's points: `usage_bytes - inactive_file_bytes` (`usage_bytes`
/// alone when the inactive file cache is not known). Near its limit the
/// kernel reclaims the inactive file cache before it kills, so the working
/// set, not the usage, is what reaches the limit at the kill.
pub const WORKING_SET: &str = "working_set_bytes";

/// The working set of each cgroup of one instant's points, as points.
fn working_sets(points: &[Point]) -> Vec<Point> {
    let mut usage: BTreeMap<&Entity, f64> = BTreeMap::new();
    let mut inactive: BTreeMap<&Entity, f64> = BTreeMap::new();
    for point in points {
        if !matches!(point.entity, Entity::Cgroup { .. }) || !point.value.is_finite() {
            continue;
        }
        match point.metric {
            "usage_bytes" => {
                usage.insert(&point.entity, point.value);
            }
            "inactive_file_bytes" => {
                inactive.insert(&point.entity, point.value);
            }
            _ => {}
        }
    }
    usage
        .into_iter()
        .map(|(entity, usage)| Point {
            entity: entity.clone(),
            metric: WORKING_SET,
            value: (usage - inactive.get(entity).copied().unwrap_or(0.0)).max(0.0),
        })
        .collect()
}

/// Tuning of the engine. The defaults are the documented ones (docs/findings.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How trends are computed.
    pub trend: TrendConfig,
    /// Time-to-OOM thresholds.
    pub forecast: ForecastConfig,
    /// Growth slower than this share of the level per hour is no finding.
    pub growth_min_percent_per_hour: f64,
    /// Growth slower than this is no finding.
    /// (256 KiB/min: a healthy Go 1.27 `steady` workload's cgroup was
    /// measured creeping 132 KiB/min, 11 %/h, through its first minutes.)
    pub growth_min_bytes_per_minute: f64,
    /// A growth finding needs a trend over at least this long (a slow
    /// growth is only told from a high-water mark creeping up over minutes;
    /// fast ones are caught earlier by time-to-OOM).
    pub growth_min_span_seconds: f64,
    /// Samples this close to an entity's first one are no part of a growth
    /// trend (start-up).
    pub growth_skip_startup_seconds: f64,
    /// Samples this close to an entity's first one are no part of a
    /// time-to-OOM trend: a process that just started (or was first seen)
    /// is still filling its heap, and a batch working set may be half built.
    pub forecast_skip_startup_seconds: f64,
    /// A trended series is evaluated at most this often: its trend is made
    /// of 15 s buckets, and at a 1 s interval evaluating every sample
    /// would cost the agent CPU for nothing.
    pub evaluate_every_seconds: f64,
    /// GOMEMLIMIT reached at this share of it...
    pub gomemlimit_fire_ratio: f64,
    /// ...and no longer below this share.
    pub gomemlimit_clear_ratio: f64,
    /// An entity unseen this long is forgotten.
    pub forget_after_seconds: f64,
    /// The hold: how long a condition must be absent (or lower), without a
    /// break, before its finding clears (or steps down a severity).
    pub hold_seconds: f64,
    /// Near limit and thrashing.
    pub limits: LimitsConfig,
    /// The MySQL/MariaDB detectors.
    pub mysql: crate::mysql::MysqlConfig,
    /// Contention: which neighbour took whose memory.
    pub contention: crate::contention::ContentionConfig,
    /// The process and Go runtime checks of `memlens diagnose`, live.
    pub checks: ChecksConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            trend: TrendConfig::default(),
            forecast: ForecastConfig::default(),
            growth_min_percent_per_hour: 10.0,
            growth_min_bytes_per_minute: 256.0 * 1024.0,
            growth_min_span_seconds: 300.0,
            growth_skip_startup_seconds: 300.0,
            forecast_skip_startup_seconds: 20.0,
            evaluate_every_seconds: 5.0,
            gomemlimit_fire_ratio: 0.95,
            gomemlimit_clear_ratio: 0.90,
            forget_after_seconds: 60.0,
            hold_seconds: 300.0,
            limits: LimitsConfig::default(),
            mysql: crate::mysql::MysqlConfig::default(),
            contention: crate::contention::ContentionConfig::default(),
            checks: ChecksConfig::default(),
        }
    }
}

#[derive(Debug, Default)]
struct EntityState {
    first_seen_ms: i64,
    last_seen_ms: i64,
    typical_gap_ms: i64,
    windows: HashMap<&'static str, Window>,
    latest: HashMap<&'static str, f64>,
    updated: Vec<&'static str>,
    /// When each trended metric was last evaluated.
    evaluated_ms: HashMap<&'static str, i64>,
    /// Recent values for near limit and thrashing.
    recent: limits::Recent,
    /// A MySQL server's recent instants.
    mysql: std::collections::VecDeque<crate::mysql::ServerPoint>,
    /// Series kept over the contention window.
    history: contention::History,
    /// The windows of the process and Go runtime checks.
    samples: checks::Samples,
}

#[derive(Debug)]
struct Active {
    finding: Finding,
    /// Since when the condition has been absent or lower (the hold runs).
    absent_since_ms: Option<i64>,
}

/// Key of an active finding: (target, id, metric it is about).
type Key = (Entity, &'static str, &'static str);

/// The detector engine (see the module docs).
#[derive(Debug, Default)]
pub struct Engine {
    config: Config,
    entities: BTreeMap<Entity, EntityState>,
    process_cgroups: HashMap<Entity, String>,
    active: BTreeMap<Key, Active>,
    pending_kills: Vec<kills::PendingKill>,
    kernel_kills: Vec<KernelKill>,
    /// Kills the log reported before their counter moved: (cgroup, when).
    log_only_kills: Vec<(Option<String>, i64)>,
    /// Victims already reported (a kill is reported once).
    killed: std::collections::HashSet<Entity>,
    /// Whether the caller reads the kernel log (then it names the victims
    /// and host-wide kills are not guessed from vanished processes).
    kernel_log: bool,
}

/// A condition that holds now: its severity, evidence and recommendation.
struct Condition {
    severity: Severity,
    evidence: Vec<Evidence>,
    recommendation: String,
}

/// How many recent instants [`recent_offset`] looks at.
const OFFSET_INSTANTS: usize = 24;

/// The median of `working set - rss` over the last instants at which both
/// the cgroup's usage and the process's RSS were sampled.
fn recent_offset(cgroup: &EntityState, process: &EntityState) -> Option<f64> {
    let usage = cgroup.windows.get(WORKING_SET)?.points();
    let rss = process.windows.get("rss_bytes")?.points();
    let mut offsets = Vec::with_capacity(OFFSET_INSTANTS);
    let mut u = usage.iter().rev().peekable();
    for &(ts, r) in rss.iter().rev() {
        while u.peek().is_some_and(|p| p.0 > ts) {
            u.next();
        }
        if let Some(&&(uts, uv)) = u.peek() {
            if uts == ts {
                offsets.push(uv - r);
                if offsets.len() == OFFSET_INSTANTS {
                    break;
                }
            }
        }
    }
    crate::robust::median(&offsets)
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: Config) -> Engine {
        Engine {
            config,
            ..Engine::default()
        }
    }

    /// Tells the engine which cgroup (path) a process is in, for its kill
    /// point. Call it when a process appears (its `cgroup` label).
    pub fn set_process_cgroup(&mut self, process: &Entity, cgroup_path: &str) {
        self.process_cgroups
            .insert(process.clone(), cgroup_path.to_string());
    }

    /// The findings active now, with their current evidence.
    pub fn active(&self) -> Vec<Finding> {
        self.active.values().map(|a| a.finding.clone()).collect()
    }

    /// Feeds one instant (`ts_ms`, ascending across calls) and returns the
    /// findings that fired (`cleared_at_ms: None`) or cleared
    /// (`cleared_at_ms: Some(ts_ms)`, with the evidence they had) at it.
    pub fn observe(&mut self, ts_ms: i64, points: &[Point]) -> Vec<Finding> {
        let mut out = Vec::new();
        for state in self.entities.values_mut() {
            state.updated.clear();
        }
        let mut counters = Vec::new();
        let mut outside = Vec::new();
        let derived = working_sets(points);
        for point in points.iter().chain(&derived) {
            let Some(metric) = metric_name(point.metric) else {
                continue;
            };
            if !point.value.is_finite() {
                continue;
            }
            let state = self
                .entities
                .entry(point.entity.clone())
                .or_insert_with(|| EntityState {
                    first_seen_ms: ts_ms,
                    last_seen_ms: ts_ms,
                    ..EntityState::default()
                });
            if state.last_seen_ms < ts_ms {
                let gap = ts_ms - state.last_seen_ms;
                state.typical_gap_ms = if state.typical_gap_ms == 0 {
                    gap
                } else {
                    (state.typical_gap_ms * 3 + gap) / 4
                };
                state.last_seen_ms = ts_ms;
            }
            let previous = state.latest.insert(metric, point.value);
            state
                .recent
                .push(&self.config.limits, metric, ts_ms, point.value);
            if !matches!(point.entity, Entity::Process { .. }) {
                state
                    .history
                    .push(&self.config.contention, metric, ts_ms, point.value);
            }
            if KILL_COUNTERS.contains(&metric) {
                counters.push((
                    point.entity.clone(),
                    previous,
                    point.value,
                    state.typical_gap_ms,
                ));
            }
            let mut due = true;
            if CHECK_METRICS.contains(&metric) {
                due = state
                    .samples
                    .push(&self.config.checks, metric, ts_ms, point.value);
            }
            if metric == "go_sys_bytes" {
                outside.push(point.entity.clone());
            }
            let trended = TRENDED.contains(&metric);
            let contention_due =
                metric == contention::TRIGGER && matches!(point.entity, Entity::Cgroup { .. });
            if trended {
                state.windows.entry(metric).or_default().push(
                    ts_ms,
                    point.value,
                    &self.config.trend,
                );
            }
            if trended || contention_due {
                // (A fifth of slack: the agent's instants jitter by a few
                // ms, and at its 5 s default every sample must count.)
                let every_ms = (self.config.evaluate_every_seconds * 800.0) as i64;
                let last = state.evaluated_ms.get(metric).copied();
                due = last.is_none_or(|last| ts_ms - last >= every_ms);
                if due {
                    state.evaluated_ms.insert(metric, ts_ms);
                }
            }
            if due && !state.updated.contains(&metric) {
                state.updated.push(metric);
            }
        }
        for entity in outside {
            self.note_outside(&entity, ts_ms);
        }
        self.push_mysql(ts_ms);
        let mut conditions: Vec<(Key, Option<Condition>)> = Vec::new();
        for (entity, state) in &self.entities {
            for &metric in &state.updated {
                self.evaluate(entity, state, metric, &mut conditions);
            }
        }
        for (key, condition) in conditions {
            self.apply(ts_ms, key, condition, &mut out);
        }
        for (entity, previous, value, gap_ms) in counters {
            self.counter_moved(ts_ms, &entity, previous, value, gap_ms);
        }
        self.resolve_kills(ts_ms, &mut out);
        self.forget(ts_ms, &mut out);
        out
    }

    fn evaluate(
        &self,
        entity: &Entity,
        state: &EntityState,
        metric: &'static str,
        out: &mut Vec<(Key, Option<Condition>)>,
    ) {
        let layer = match entity {
            Entity::Cgroup { .. } => Layer::Cgroup,
            Entity::Host => Layer::Kernel,
            Entity::Process { .. } if metric.starts_with("go_") => Layer::GoRuntime,
            Entity::Process { .. } | Entity::Mysql { .. } => Layer::Process,
        };
        if TRENDED.contains(&metric) {
            let points = state.windows.get(metric).map(|w| w.points());
            let points = points.as_deref().unwrap_or(&[]);
            // Growth is judged after start-up: the first samples of a new
            // entity (a process filling its caches and heap) are left out.
            let settled_ms =
                state.first_seen_ms + (self.config.growth_skip_startup_seconds * 1000.0) as i64;
            let settled = points.partition_point(|p| p.0 < settled_ms);
            // A cgroup's growth is its usage's; its working set is for
            // the time to OOM.
            if metric != WORKING_SET {
                let growth = analyse(&points[settled..], &self.config.trend)
                    .and_then(|t| self.growth(&t, metric, layer));
                out.push(((entity.clone(), GROWTH, metric), growth));
            }
            let oom_metric = matches!(
                (entity, metric),
                (Entity::Process { .. }, "rss_bytes") | (Entity::Cgroup { .. }, WORKING_SET)
            );
            if oom_metric {
                let started_ms = state.first_seen_ms
                    + (self.config.forecast_skip_startup_seconds * 1000.0) as i64;
                let started = points.partition_point(|p| p.0 < started_ms);
                let trend = analyse_for_forecast(points, started, &self.config.trend);
                let condition = trend.as_ref().and_then(|t| {
                    let kill = self.kill_point(entity, state, t.last_value)?;
                    let reclaimable = self.reclaimable_file(entity, state);
                    let f = forecast_with_reclaimable(t, kill.0, reclaimable)?;
                    let sev = severity(&f, &self.config.forecast)?;
                    Some(self.oom_condition(t, &f, sev, metric, layer, kill.1))
                });
                out.push(((entity.clone(), TIME_TO_OOM, metric), condition));
            }
        }
        self.evaluate_limits(entity, state, metric, out);
        self.evaluate_mysql(entity, state, metric, out);
        self.evaluate_contention(entity, state, metric, out);
        self.evaluate_checks(entity, state, metric, out);
        if metric == "go_sys_bytes" {
            out.push((
                (entity.clone(), GOMEMLIMIT_REACHED, "go_sys_bytes"),
                self.gomemlimit(entity, state),
            ));
        }
    }

    fn growth(&self, t: &Trend, metric: &'static str, layer: Layer) -> Option<Condition> {
        if !t.growing || t.span_seconds < self.config.growth_min_span_seconds {
            return None;
        }
        let slope = t.lower.slope_per_second;
        let level = t.lower.at(t.last_ms as f64 / 1000.0).max(1.0);
        let percent_per_hour = slope * 3600.0 / level * 100.0;
        if percent_per_hour < self.config.growth_min_percent_per_hour
            || slope * 60.0 < self.config.growth_min_bytes_per_minute
        {
            return None;
        }
        Some(Condition {
            severity: Severity::Warning,
            evidence: vec![
                Evidence::new(metric, t.last_value, "bytes", layer),
                Evidence::new("trough_bytes", level, "bytes", layer),
                Evidence::new("slope_bytes_per_second", slope, "bytes/s", Layer::Derived),
                Evidence::new(
                    "growth_percent_per_hour",
                    percent_per_hour,
                    "%/h",
                    Layer::Derived,
                ),
                Evidence::new("sawtooth_height_bytes", t.sawtooth_height, "bytes", layer),
                Evidence::new(
                    "trend_span_seconds",
                    t.span_seconds,
                    "seconds",
                    Layer::Derived,
                ),
                Evidence::new("trend_z", t.z, "ratio", Layer::Derived),
            ],
            recommendation: format!(
                "{metric} grows {:.1} MiB/min ({percent_per_hour:.0}%/h) under the GC sawtooth: \
                 compare two heap profiles (memlens heap --base) to find the growing site",
                slope * 60.0 / 1048576.0
            ),
        })
    }

    /// The active file cache the kernel can still reclaim before it kills
    /// `entity` (its cgroup's, for a process); 0 when unknown or unlimited.
    fn reclaimable_file(&self, entity: &Entity, state: &EntityState) -> f64 {
        let cgroup = match entity {
            Entity::Cgroup { .. } => Some(state),
            Entity::Process { .. } => self
                .process_cgroups
                .get(entity)
                .and_then(|path| self.entities.get(&Entity::Cgroup { path: path.clone() })),
            Entity::Host | Entity::Mysql { .. } => None,
        };
        cgroup
            .filter(|cg| cg.latest.contains_key("effective_limit_bytes"))
            .and_then(|cg| cg.latest.get("active_file_bytes").copied())
            .unwrap_or(0.0)
    }

    /// The kill point for `entity` and which layer it comes from.
    fn kill_point(&self, entity: &Entity, state: &EntityState, value: f64) -> Option<(f64, Layer)> {
        match entity {
            Entity::Cgroup { .. } => state
                .latest
                .get("effective_limit_bytes")
                .map(|l| (*l, Layer::Cgroup)),
            Entity::Process { .. } => {
                let cgroup = self
                    .process_cgroups
                    .get(entity)
                    .and_then(|path| self.entities.get(&Entity::Cgroup { path: path.clone() }));
                if let Some(cg) = cgroup {
                    if let Some(limit) = cg.latest.get("effective_limit_bytes") {
                        // The kill comes when the cgroup's working set
                        // reaches the limit. What the rest of the cgroup
                        // uses is working set - RSS; negative when the RSS counts pages charged to
                        // another cgroup (a binary's text first read by
                        // someone else): then the RSS at the kill is above
                        // the limit by as much. The median over recent
                        // instants, not the latest one: RSS and usage are
                        // read a moment apart, and while a batch working set
                        // comes or goes they disagree by megabytes.
                        let others = recent_offset(cg, state).unwrap_or_else(|| {
                            cg.latest.get(WORKING_SET).copied().unwrap_or(value) - value
                        });
                        return Some((limit - others, Layer::Cgroup));
                    }
                }
                let host = self.entities.get(&Entity::Host)?;
                let total = *host.latest.get("mem_total_bytes")?;
                let available = *host.latest.get("mem_available_bytes")?;
                let swap = host.latest.get("swap_total_bytes").copied().unwrap_or(0.0);
                let others = (total - available - value).max(0.0);
                Some((total + swap - others, Layer::Kernel))
            }
            Entity::Host | Entity::Mysql { .. } => None,
        }
    }

    fn oom_condition(
        &self,
        t: &Trend,
        f: &Forecast,
        severity: Severity,
        metric: &'static str,
        layer: Layer,
        kill_layer: Layer,
    ) -> Condition {
        let minutes = f.time_left_seconds / 60.0;
        let mut evidence = vec![
            Evidence::new(metric, t.last_value, "bytes", layer),
            Evidence::new("peak_bytes", f.peak_bytes, "bytes", layer),
            Evidence::new("kill_point_bytes", f.kill_point_bytes, "bytes", kill_layer),
            Evidence::new(
                "slope_bytes_per_second",
                f.slope_bytes_per_second,
                "bytes/s",
                Layer::Derived,
            ),
            Evidence::new(
                "time_left_seconds",
                f.time_left_seconds,
                "seconds",
                Layer::Derived,
            ),
            Evidence::new(
                "predicted_kill_at_ms",
                f.predicted_kill_at_ms as f64,
                "ms",
                Layer::Derived,
            ),
            Evidence::new(
                "trend_span_seconds",
                t.span_seconds,
                "seconds",
                Layer::Derived,
            ),
            Evidence::new(
                "time_left_earliest_seconds",
                f.earliest_seconds,
                "seconds",
                Layer::Derived,
            ),
            Evidence::new(
                "predicted_kill_earliest_at_ms",
                f.earliest_kill_at_ms as f64,
                "ms",
                Layer::Derived,
            ),
            Evidence::new(
                "range_coverage",
                self.config.trend.coverage,
                "ratio",
                Layer::Derived,
            ),
            Evidence::new(
                "trend_fast",
                if f.fast { 1.0 } else { 0.0 },
                "flag",
                Layer::Derived,
            ),
        ];
        if f.reclaimable_bytes > 0.0 {
            evidence.push(Evidence::new(
                "reclaimable_file_bytes",
                f.reclaimable_bytes,
                "bytes",
                Layer::Cgroup,
            ));
        }
        if f.growth_share < 1.0 {
            evidence.push(Evidence::new(
                "growth_share",
                f.growth_share,
                "ratio",
                Layer::Derived,
            ));
        }
        if f.rise_wait_seconds > 0.0 {
            evidence.push(Evidence::new(
                "rise_wait_seconds",
                f.rise_wait_seconds,
                "seconds",
                Layer::Derived,
            ));
        }
        // Unbounded when the slope's interval reaches zero: left out.
        if let Some(latest_ms) = f.latest_kill_at_ms {
            evidence.push(Evidence::new(
                "time_left_latest_seconds",
                f.latest_seconds,
                "seconds",
                Layer::Derived,
            ));
            evidence.push(Evidence::new(
                "predicted_kill_latest_at_ms",
                latest_ms as f64,
                "ms",
                Layer::Derived,
            ));
        }
        let latest = if f.latest_seconds.is_finite() {
            format!("{:.1} min", f.latest_seconds / 60.0)
        } else {
            "unbounded".to_string()
        };
        Condition {
            severity,
            evidence,
            recommendation: format!(
                "at {:.1} MiB/min the kill point ({:.0} MiB) is reached in {minutes:.1} min \
                 ({:.1} min to {latest} at {:.0} % coverage): take a heap profile now \
                 (memlens heap PID), then raise the limit or fix the leak",
                f.slope_bytes_per_second * 60.0 / 1048576.0,
                f.kill_point_bytes / 1048576.0,
                f.earliest_seconds / 60.0,
                self.config.trend.coverage * 100.0
            ),
        }
    }

    fn gomemlimit(&self, entity: &Entity, state: &EntityState) -> Option<Condition> {
        let limit = *state.latest.get("go_gomemlimit_bytes")?;
        // Unset is math.MaxInt64: no limit.
        if !(limit > 0.0 && limit < 4e18) {
            return None;
        }
        let sys = *state.latest.get("go_sys_bytes")?;
        let released = state
            .latest
            .get("go_heap_released_bytes")
            .copied()
            .unwrap_or(0.0);
        let used = sys - released;
        let key = (entity.clone(), GOMEMLIMIT_REACHED, "go_sys_bytes");
        let ratio = if self.active.contains_key(&key) {
            self.config.gomemlimit_clear_ratio
        } else {
            self.config.gomemlimit_fire_ratio
        };
        if used < ratio * limit {
            return None;
        }
        Some(Condition {
            severity: Severity::Warning,
            evidence: vec![
                Evidence::new("go_memory_bytes", used, "bytes", Layer::GoRuntime),
                Evidence::new("go_gomemlimit_bytes", limit, "bytes", Layer::GoRuntime),
                Evidence::new("ratio", used / limit, "ratio", Layer::Derived),
            ],
            recommendation: "the Go runtime is at GOMEMLIMIT: the GC runs more often to stay \
                             under it (CPU cost, not a kill); raise GOMEMLIMIT if the live heap \
                             legitimately needs it, or find what holds memory (memlens heap)"
                .to_string(),
        })
    }

    fn apply(
        &mut self,
        ts_ms: i64,
        key: Key,
        condition: Option<Condition>,
        out: &mut Vec<Finding>,
    ) {
        let hold_ms = (self.config.hold_seconds.max(0.0) * 1000.0) as i64;
        match (self.active.get_mut(&key), condition) {
            (None, None) => {}
            (None, Some(c)) => {
                let finding = Finding::fired(
                    key.1,
                    c.severity,
                    key.0.clone(),
                    c.evidence,
                    c.recommendation,
                    ts_ms,
                );
                out.push(finding.clone());
                self.active.insert(
                    key,
                    Active {
                        finding,
                        absent_since_ms: None,
                    },
                );
            }
            (Some(active), Some(c)) if c.severity == active.finding.severity => {
                active.finding.evidence = c.evidence;
                active.finding.recommendation = c.recommendation;
                active.absent_since_ms = None;
            }
            (Some(active), Some(c)) if c.severity > active.finding.severity => {
                let mut old = self.active.remove(&key).map(|a| a.finding);
                if let Some(old) = old.as_mut() {
                    old.cleared_at_ms = Some(ts_ms);
                    out.push(old.clone());
                }
                self.apply(ts_ms, key, Some(c), out);
            }
            (Some(active), lower) => {
                let since = *active.absent_since_ms.get_or_insert(ts_ms);
                if let Some(c) = &lower {
                    // Held at its severity, with the numbers kept current.
                    active.finding.evidence = c.evidence.clone();
                }
                if ts_ms - since >= hold_ms {
                    if let Some(mut old) = self.active.remove(&key).map(|a| a.finding) {
                        old.cleared_at_ms = Some(ts_ms);
                        out.push(old);
                    }
                    if lower.is_some() {
                        self.apply(ts_ms, key, lower, out);
                    }
                }
            }
        }
    }

    fn forget(&mut self, ts_ms: i64, out: &mut Vec<Finding>) {
        let floor_ms = (self.config.forget_after_seconds * 1000.0) as i64;
        let gone: Vec<Entity> = self
            .entities
            .iter()
            .filter(|(_, s)| ts_ms - s.last_seen_ms > floor_ms.max(3 * s.typical_gap_ms))
            .map(|(e, _)| e.clone())
            .collect();
        for entity in gone {
            self.killed.remove(&entity);
            self.entities.remove(&entity);
            self.process_cgroups.remove(&entity);
            let keys: Vec<Key> = self
                .active
                .keys()
                .filter(|k| k.0 == entity)
                .cloned()
                .collect();
            for key in keys {
                if let Some(mut finding) = self.active.remove(&key).map(|a| a.finding) {
                    finding.cleared_at_ms = Some(ts_ms);
                    out.push(finding);
                }
            }
        }
    }

    /// How many entities the engine holds state for.
    pub fn tracked_entities(&self) -> usize {
        self.entities.len()
    }

    /// Age of an entity in the engine's eyes (ms since its first point).
    pub fn observed_ms(&self, entity: &Entity) -> Option<i64> {
        self.entities
            .get(entity)
            .map(|s| s.last_seen_ms - s.first_seen_ms)
    }
}
