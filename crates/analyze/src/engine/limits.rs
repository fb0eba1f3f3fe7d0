//! No silence at the limit: [`NEAR_LIMIT`] and [`THRASHING`], defined in
//! docs/findings.md ("At the limit").
//!
//! - Near limit (warning): the recent peak of the working set (a cgroup's
//!   `working_set_bytes`, a process's `rss_bytes`) is at least
//!   [`LimitsConfig::near_limit_ratio`] of the engine's kill point, with less
//!   headroom than the growth it must absorb: one GC cycle of its Go heaps
//!   (heap goal − live heap), else the working set's own recent swing, and
//!   never less than [`LimitsConfig::min_headroom_ratio`] of the kill point.
//! - Thrashing (critical, cgroups): usage pinned at the limit while pages
//!   are refaulted at a rate that matters and the cgroup stalls (major faults,
//!   or memory PSI: the cgroup's own on v2, the host's on v1).
//!
//! Both hold with hysteresis (a live finding needs less to stay than to
//! fire) on top of the engine's hold before a clear.

use super::{Condition, Engine, EntityState, Key, WORKING_SET};
use crate::finding::{Evidence, Layer, Severity, NEAR_LIMIT, THRASHING};
use memlens_model::series::Entity;
use std::collections::{HashMap, VecDeque};

/// Bytes of a page in `memory.stat`'s page counts (refaults). 4 KiB: the
/// base page of x86-64 and of the usual arm64 kernels.
const PAGE_BYTES: f64 = 4096.0;

/// Tuning of the near-limit and thrashing detectors. The defaults are the
/// documented ones (docs/findings.md).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Near limit fires at this share of the kill point...
    pub near_limit_ratio: f64,
    /// ...with less headroom than what it must absorb, which is never less
    /// than this share of the kill point: at 95 % a working set is near
    /// whatever its swing.
    pub min_headroom_ratio: f64,
    /// A live near-limit (or thrashing pinned) finding stays until the
    /// working set is this share of the kill point below where it fires.
    pub clear_margin_ratio: f64,
    /// The working set compared is its peak over this span (the kernel
    /// kills on a peak, and one low sample must not clear a finding).
    pub peak_seconds: f64,
    /// The working set's swing (max − min) over this span stands in for a
    /// GC cycle's growth when no Go heap goal is known.
    pub swing_seconds: f64,
    /// Refault, fault and stall rates are measured over this span.
    pub thrashing_window_seconds: f64,
    /// ...and need at least this much of it.
    pub thrashing_min_span_seconds: f64,
    /// Pinned: the median usage over the window at this share of the limit
    /// (the tighter of the hard limit and `memory.high`).
    pub pinned_ratio: f64,
    /// Refaults at this share of the limit per second: the cgroup re-reads
    /// its whole limit in 100 s or less.
    pub refault_limit_share_per_second: f64,
    /// A stall: this many major faults a second (each a wait on a read)...
    pub min_major_faults_per_second: f64,
    /// ...or memory PSI `some` at this percent of the time.
    pub min_pressure_percent: f64,
    /// A live thrashing finding stays while each rate is at least this
    /// share of its threshold.
    pub thrashing_hold_share: f64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            near_limit_ratio: 0.90,
            min_headroom_ratio: 0.05,
            clear_margin_ratio: 0.05,
            peak_seconds: 15.0,
            swing_seconds: 120.0,
            thrashing_window_seconds: 30.0,
            thrashing_min_span_seconds: 10.0,
            pinned_ratio: 0.97,
            refault_limit_share_per_second: 0.01,
            min_major_faults_per_second: 100.0,
            min_pressure_percent: 10.0,
            thrashing_hold_share: 0.5,
        }
    }
}

impl LimitsConfig {
    /// How long recent values are kept.
    fn keep_ms(&self) -> i64 {
        (self.swing_seconds.max(self.thrashing_window_seconds) * 1000.0) as i64
    }
}

/// Metrics whose recent values are kept for these detectors.
const RECENT: &[&str] = &[
    "usage_bytes",
    WORKING_SET,
    "rss_bytes",
    "file_refaults",
    "anon_refaults",
    "major_faults",
    "pressure_some_total_usec",
    "pressure_full_total_usec",
];

/// Recent `(ts_ms, value)` of an entity's [`RECENT`] metrics, bounded by
/// [`LimitsConfig::swing_seconds`] and the thrashing window.
#[derive(Debug, Default)]
pub(super) struct Recent {
    series: HashMap<&'static str, VecDeque<(i64, f64)>>,
}

impl Recent {
    /// Keeps `value` of `metric` at `ts_ms` when it is a [`RECENT`] one.
    pub(super) fn push(
        &mut self,
        config: &LimitsConfig,
        metric: &'static str,
        ts_ms: i64,
        value: f64,
    ) {
        if !RECENT.contains(&metric) {
            return;
        }
        let series = self.series.entry(metric).or_default();
        if series.back().is_some_and(|last| last.0 >= ts_ms) {
            series.pop_back();
        }
        series.push_back((ts_ms, value));
        // Keep the newest point at or before the cutoff: a rate over the
        // window needs a point at its start.
        let cutoff = ts_ms - config.keep_ms();
        while series.len() > 2 && series[1].0 <= cutoff {
            series.pop_front();
        }
    }

    /// The values of `metric` at or after `from_ms`.
    fn since(&self, metric: &str, from_ms: i64) -> impl Iterator<Item = f64> + '_ {
        self.series
            .get(metric)
            .into_iter()
            .flatten()
            .filter(move |p| p.0 >= from_ms)
            .map(|p| p.1)
    }

    fn max_since(&self, metric: &str, from_ms: i64) -> Option<f64> {
        self.since(metric, from_ms).reduce(f64::max)
    }

    fn min_since(&self, metric: &str, from_ms: i64) -> Option<f64> {
        self.since(metric, from_ms).reduce(f64::min)
    }

    fn median_since(&self, metric: &str, from_ms: i64) -> Option<f64> {
        crate::robust::median(&self.since(metric, from_ms).collect::<Vec<_>>())
    }

    /// The rate per second of counter `metric` from the newest point at or
    /// before `now_ms - window_ms` (or the oldest kept) to the newest, with
    /// the span it covers in seconds. A counter that went down (reset) adds
    /// nothing for that step.
    pub(super) fn rate(&self, metric: &str, now_ms: i64, window_ms: i64) -> Option<(f64, f64)> {
        let series = self.series.get(metric)?;
        let start = series
            .iter()
            .rposition(|p| p.0 <= now_ms - window_ms)
            .unwrap_or(0);
        let points: Vec<&(i64, f64)> = series.iter().skip(start).collect();
        let span_s = (points.last()?.0 - points.first()?.0) as f64 / 1000.0;
        if span_s <= 0.0 {
            return None;
        }
        let rise: f64 = points.windows(2).map(|w| (w[1].1 - w[0].1).max(0.0)).sum();
        Some((rise / span_s, span_s))
    }
}

/// Bytes as MiB, for recommendations.
fn mib(bytes: f64) -> f64 {
    bytes / 1048576.0
}

impl Engine {
    /// The near-limit and thrashing conditions due with `metric` of
    /// `entity` (evaluated with a cgroup's working set and a process's RSS).
    pub(super) fn evaluate_limits(
        &self,
        entity: &Entity,
        state: &EntityState,
        metric: &'static str,
        out: &mut Vec<(Key, Option<Condition>)>,
    ) {
        match (entity, metric) {
            (Entity::Cgroup { .. }, WORKING_SET) => {
                out.push((
                    (entity.clone(), NEAR_LIMIT, WORKING_SET),
                    self.near_limit(entity, state, WORKING_SET, Layer::Cgroup),
                ));
                out.push((
                    (entity.clone(), THRASHING, "file_refaults"),
                    self.thrashing(entity, state),
                ));
            }
            (Entity::Process { .. }, "rss_bytes") => out.push((
                (entity.clone(), NEAR_LIMIT, "rss_bytes"),
                self.near_limit(entity, state, "rss_bytes", Layer::Process),
            )),
            _ => {}
        }
    }

    /// One GC cycle's growth of a Go process: heap goal − live heap, where
    /// the goal is `go_next_gc_bytes` and GOGC (`go_gogc_percent`, else the
    /// default 100) puts the live heap at goal / (1 + GOGC/100). `None` when
    /// not a Go process or GOGC is off.
    fn gc_cycle_growth(state: &EntityState) -> Option<f64> {
        let goal = *state.latest.get("go_next_gc_bytes")?;
        let gogc = state
            .latest
            .get("go_gogc_percent")
            .copied()
            .unwrap_or(100.0);
        (gogc >= 0.0 && goal > 0.0).then(|| goal * gogc / (100.0 + gogc))
    }

    /// The GC cycle growth `entity` must absorb: a process's own, or the
    /// sum over the Go processes of a cgroup and its children (their cycles
    /// may peak together).
    fn gc_growth_of(&self, entity: &Entity, state: &EntityState) -> Option<f64> {
        let Entity::Cgroup { path } = entity else {
            return Engine::gc_cycle_growth(state);
        };
        let below = format!("{}/", path.trim_end_matches('/'));
        self.process_cgroups
            .iter()
            .filter(|(_, cg)| *cg == path || cg.starts_with(&below))
            .filter_map(|(p, _)| Engine::gc_cycle_growth(self.entities.get(p)?))
            .reduce(|a, b| a + b)
    }

    fn near_limit(
        &self,
        entity: &Entity,
        state: &EntityState,
        metric: &'static str,
        layer: Layer,
    ) -> Option<Condition> {
        let config = &self.config.limits;
        let now = state.last_seen_ms;
        let peak = state
            .recent
            .max_since(metric, now - (config.peak_seconds * 1000.0) as i64)?;
        let latest = *state.latest.get(metric)?;
        let (kill, kill_layer) = self.kill_point(entity, state, latest)?;
        if kill <= 0.0 {
            return None;
        }
        let swing_from = now - (config.swing_seconds * 1000.0) as i64;
        let swing = peak - state.recent.min_since(metric, swing_from).unwrap_or(peak);
        let gc = self.gc_growth_of(entity, state);
        let floor = config.min_headroom_ratio * kill;
        let (needed, reason) = [
            (
                gc.unwrap_or(0.0),
                "one GC cycle's growth of its Go heap (heap goal - live heap)",
            ),
            (swing, "how far it moved over the last minutes"),
            (floor, "the least headroom memlens accepts"),
        ]
        .into_iter()
        .fold((0.0, ""), |best, c| if c.0 > best.0 { c } else { best });
        let headroom = kill - peak;
        let key = (entity.clone(), NEAR_LIMIT, metric);
        let margin = if self.active.contains_key(&key) {
            config.clear_margin_ratio * kill
        } else {
            0.0
        };
        if peak < config.near_limit_ratio * kill - margin || headroom >= needed + margin {
            return None;
        }
        let mut evidence = vec![
            Evidence::new(metric, peak, "bytes", layer),
            Evidence::new("kill_point_bytes", kill, "bytes", kill_layer),
            Evidence::new("kill_point_share", peak / kill, "ratio", Layer::Derived),
            Evidence::new("headroom_bytes", headroom, "bytes", Layer::Derived),
            Evidence::new("needed_headroom_bytes", needed, "bytes", Layer::Derived),
            Evidence::new("swing_bytes", swing, "bytes", layer),
        ];
        if let Some(gc) = gc {
            evidence.push(Evidence::new(
                "gc_cycle_growth_bytes",
                gc,
                "bytes",
                Layer::GoRuntime,
            ));
        }
        let what = match entity {
            Entity::Process { pid, .. } => format!("process {pid}: RSS"),
            _ => "the working set (usage - inactive file cache)".to_string(),
        };
        let fix = if gc.is_some() {
            "set GOMEMLIMIT below the limit (memlens advise PID) so the Go GC collects before \
             the kernel reclaims or kills, raise the limit, or find what holds memory \
             (memlens heap PID)"
        } else {
            "raise the limit or find what holds memory; a Go service: set GOMEMLIMIT below \
             the limit (memlens advise PID)"
        };
        Some(Condition {
            severity: Severity::Warning,
            evidence,
            recommendation: format!(
                "{what} is at {:.0}% of its kill point ({:.0} of {:.0} MiB): {:.1} MiB of \
                 headroom is less than {:.1} MiB, {reason}. Any more growth is an OOM kill, \
                 or thrashing if the rest is file cache: {fix}",
                peak / kill * 100.0,
                mib(peak),
                mib(kill),
                mib(headroom),
                mib(needed),
            ),
        })
    }

    /// Memory PSI of a cgroup (its own, v2) or else of the host (v1 has no
    /// readable PSI per cgroup): `some` and `full` in percent of the time
    /// over the window, and the layer they come from.
    fn pressure_percent(
        &self,
        state: &EntityState,
        now: i64,
        window_ms: i64,
    ) -> Option<(f64, Option<f64>, Layer)> {
        let percent = |s: &EntityState, metric| {
            s.recent
                .rate(metric, now, window_ms)
                .map(|(usec_per_s, _)| usec_per_s / 1e4)
        };
        if let Some(some) = percent(state, "pressure_some_total_usec") {
            return Some((
                some,
                percent(state, "pressure_full_total_usec"),
                Layer::Cgroup,
            ));
        }
        let host = self.entities.get(&Entity::Host)?;
        let some = percent(host, "pressure_some_total_usec")?;
        Some((
            some,
            percent(host, "pressure_full_total_usec"),
            Layer::Kernel,
        ))
    }

    /// The process of cgroup `path` (or below) faulting most, with its
    /// major faults per second.
    fn top_faulting_process(&self, path: &str, now: i64, window_ms: i64) -> Option<(i32, f64)> {
        let below = format!("{}/", path.trim_end_matches('/'));
        self.process_cgroups
            .iter()
            .filter(|(_, cg)| *cg == path || cg.starts_with(&below))
            .filter_map(|(p, _)| {
                let Entity::Process { pid, .. } = p else {
                    return None;
                };
                let rate = self
                    .entities
                    .get(p)?
                    .recent
                    .rate("major_faults", now, window_ms)?;
                Some((*pid, rate.0))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn thrashing(&self, entity: &Entity, state: &EntityState) -> Option<Condition> {
        let config = &self.config.limits;
        let Entity::Cgroup { path } = entity else {
            return None;
        };
        let now = state.last_seen_ms;
        let window_ms = (config.thrashing_window_seconds * 1000.0) as i64;
        let hard = *state.latest.get("effective_limit_bytes")?;
        let limit = match state.latest.get("high_bytes") {
            Some(&high) if high > 0.0 && high < hard => high,
            _ => hard,
        };
        let usage = state.recent.median_since("usage_bytes", now - window_ms)?;
        let (file, span_s) = state.recent.rate("file_refaults", now, window_ms)?;
        if span_s < config.thrashing_min_span_seconds {
            return None;
        }
        let anon = state
            .recent
            .rate("anon_refaults", now, window_ms)
            .map_or(0.0, |r| r.0);
        let refaults = file + anon;
        let majors = state
            .recent
            .rate("major_faults", now, window_ms)
            .map(|r| r.0);
        let pressure = self.pressure_percent(state, now, window_ms);
        let active = self
            .active
            .contains_key(&(entity.clone(), THRASHING, "file_refaults"));
        let (share, pinned_slack) = if active {
            (config.thrashing_hold_share, config.clear_margin_ratio)
        } else {
            (1.0, 0.0)
        };
        let pinned = usage >= (config.pinned_ratio - pinned_slack) * limit;
        let refaulting =
            refaults * PAGE_BYTES >= share * config.refault_limit_share_per_second * limit;
        let faulting = majors.is_some_and(|m| m >= share * config.min_major_faults_per_second);
        let stalled = pressure.is_some_and(|p| p.0 >= share * config.min_pressure_percent);
        if !(pinned && refaulting && (faulting || stalled)) {
            return None;
        }
        let anon_bytes = state.latest.get("anon_bytes").copied();
        let file_cache = state
            .latest
            .get("active_file_bytes")
            .copied()
            .zip(state.latest.get("inactive_file_bytes").copied())
            .map(|(a, i)| a + i);
        let mut evidence = vec![
            Evidence::new("usage_bytes", usage, "bytes", Layer::Cgroup),
            Evidence::new("limit_bytes", limit, "bytes", Layer::Cgroup),
            Evidence::new("refaults_per_second", refaults, "pages/s", Layer::Derived),
            Evidence::new(
                "refault_bytes_per_second",
                refaults * PAGE_BYTES,
                "bytes/s",
                Layer::Derived,
            ),
            Evidence::new("window_seconds", span_s, "seconds", Layer::Derived),
        ];
        if let Some(m) = majors {
            evidence.push(Evidence::new(
                "major_faults_per_second",
                m,
                "1/s",
                Layer::Derived,
            ));
        }
        if let Some(a) = anon_bytes {
            evidence.push(Evidence::new("anon_bytes", a, "bytes", Layer::Cgroup));
        }
        if let Some(f) = file_cache {
            evidence.push(Evidence::new("file_cache_bytes", f, "bytes", Layer::Cgroup));
        }
        let mut psi_text = String::new();
        if let Some((some, full, layer)) = pressure {
            evidence.push(Evidence::new("pressure_some_percent", some, "%", layer));
            if let Some(full) = full {
                evidence.push(Evidence::new("pressure_full_percent", full, "%", layer));
            }
            let whose = if layer == Layer::Cgroup {
                "the cgroup's"
            } else {
                "the host's"
            };
            psi_text = format!(
                "; memory PSI ({whose}) some {some:.0}%{}",
                full.map_or(String::new(), |f| format!(", full {f:.0}%"))
            );
        }
        let top = self.top_faulting_process(path, now, window_ms);
        if let Some((pid, rate)) = top {
            evidence.push(Evidence::new(
                "top_process_pid",
                f64::from(pid),
                "pid",
                Layer::Process,
            ));
            evidence.push(Evidence::new(
                "top_process_major_faults_per_second",
                rate,
                "1/s",
                Layer::Derived,
            ));
        }
        let room = anon_bytes.map_or(String::new(), |a| {
            format!(
                "; anonymous memory {:.0} MiB leaves {:.0} MiB for file pages",
                mib(a),
                mib(limit - a)
            )
        });
        Some(Condition {
            severity: Severity::Critical,
            evidence,
            recommendation: format!(
                "pinned at its limit ({:.0} of {:.0} MiB{room}) while the kernel evicts pages it \
                 still needs and it reads them back: {:.1} MiB/s refaulted ({refaults:.0} pages/s){}{psi_text}{}. \
                 The service stalls on page faults instead of being killed. Fix: set GOMEMLIMIT \
                 below the limit so the Go GC frees heap before the kernel evicts file pages \
                 (memlens advise PID); on cgroup v2 set memory.high below memory.max to throttle \
                 and reclaim earlier; or give it more memory",
                mib(usage),
                mib(limit),
                mib(refaults * PAGE_BYTES),
                majors.map_or(String::new(), |m| format!(
                    ", {m:.0} major faults/s (each a thread waiting on a disk read)"
                )),
                top.map_or(String::new(), |(pid, rate)| format!(
                    "; most from process {pid} ({rate:.0} major faults/s)"
                )),
            ),
        })
    }
}
