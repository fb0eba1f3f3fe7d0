//! [`CONTENTION`] in the engine: each cgroup is a possible victim, judged
//! when its refault counter arrives (at most every
//! [`super::Config::evaluate_every_seconds`]); its neighbours are the other
//! cgroups that share a non-root ancestor with it (siblings under a limited
//! parent, services of one slice, pods of one node's `kubepods`), neither
//! above nor below it. [`crate::contention::attribute`] does the ranking over
//! the series kept here ([`History`], bounded by the window).

use super::{Condition, Engine, EntityState, Key};
use crate::contention::{
    attribute, counter_rates, miss_ratios, pressure_percent, Signal, SignalKind,
};
use crate::finding::{Evidence, Layer, Severity, CONTENTION};
use memlens_model::series::Entity;
use std::collections::{HashMap, VecDeque};

/// The metric whose arrival makes a cgroup's evaluation.
pub(super) const TRIGGER: &str = "file_refaults";

/// Metrics kept over the contention window (of cgroups, the host and
/// MySQL servers).
const KEPT: &[&str] = &[
    "usage_bytes",
    "file_refaults",
    "anon_refaults",
    "major_faults",
    "pressure_some_total_usec",
    "mysql_pool_read_requests",
    "mysql_pool_reads",
];

/// A neighbour must still hold this share of its rise (a neighbour that
/// grew and gave its memory back, or a victim's own cache filling before it
/// was squeezed, took nothing that is still missing).
const MIN_HELD_SHARE: f64 = 0.5;

/// `(ts_ms, value)` of the [`KEPT`] metrics over the window, at most one
/// point per half bucket (enough for the grid, bounded memory).
#[derive(Debug, Default)]
pub(super) struct History {
    series: HashMap<&'static str, VecDeque<(i64, f64)>>,
}

impl History {
    /// Keeps `value` of `metric` at `ts_ms` when it is a [`KEPT`] one.
    pub(super) fn push(
        &mut self,
        config: &crate::contention::ContentionConfig,
        metric: &'static str,
        ts_ms: i64,
        value: f64,
    ) {
        if !KEPT.contains(&metric) {
            return;
        }
        let series = self.series.entry(metric).or_default();
        let spacing_ms = (config.bucket_seconds * 500.0) as i64;
        if series
            .back()
            .is_some_and(|last| ts_ms - last.0 < spacing_ms)
        {
            return;
        }
        series.push_back((ts_ms, value));
        let keep_ms = ((config.window_seconds + config.bucket_seconds) * 1000.0) as i64;
        while series.front().is_some_and(|p| p.0 < ts_ms - keep_ms) {
            series.pop_front();
        }
    }

    fn get(&self, metric: &str) -> Vec<(i64, f64)> {
        self.series
            .get(metric)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

fn mib(bytes: f64) -> f64 {
    bytes / 1048576.0
}

/// Whether `a` is `b` or below it.
fn within(a: &str, b: &str) -> bool {
    a == b || b == "/" || a.starts_with(&format!("{}/", b.trim_end_matches('/')))
}

/// Whether two cgroups share an ancestor other than the root.
fn share_parent(a: &str, b: &str) -> bool {
    let top = |p: &str| {
        p.trim_start_matches('/')
            .split('/')
            .next()
            .map(str::to_string)
    };
    let (x, y) = (top(a), top(b));
    x.is_some_and(|x| !x.is_empty() && Some(x) == y)
}

/// The `(before, after)` evidence names of a signal.
fn names(kind: SignalKind) -> (&'static str, &'static str) {
    match kind {
        SignalKind::Refaults => (
            "victim_refaults_per_second_before",
            "victim_refaults_per_second_after",
        ),
        SignalKind::MajorFaults => (
            "victim_major_faults_per_second_before",
            "victim_major_faults_per_second_after",
        ),
        SignalKind::Pressure => (
            "victim_pressure_some_percent_before",
            "victim_pressure_some_percent_after",
        ),
        SignalKind::HostPressure => (
            "host_pressure_some_percent_before",
            "host_pressure_some_percent_after",
        ),
        SignalKind::MissRatio => ("victim_miss_ratio_before", "victim_miss_ratio_after"),
        SignalKind::LatencySeconds => (
            "victim_latency_seconds_before",
            "victim_latency_seconds_after",
        ),
    }
}

impl Engine {
    /// The process of cgroup `path` (exactly) with the largest value of
    /// `metric`'s rate (`rate`) or latest value.
    fn top_process(&self, path: &str, metric: &str, rate: bool, now: i64) -> Option<(i32, f64)> {
        self.process_cgroups
            .iter()
            .filter(|(_, cg)| within(cg, path))
            .filter_map(|(p, _)| {
                let Entity::Process { pid, .. } = p else {
                    return None;
                };
                let state = self.entities.get(p)?;
                let value = if rate {
                    state.recent.rate(metric, now, 30_000)?.0
                } else {
                    *state.latest.get(metric)?
                };
                Some((*pid, value))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The victim's signals: its refaults, major faults, PSI (its own, else
    /// the host's), and the miss ratio of a MySQL server in it.
    fn victim_signals(&self, path: &str, state: &EntityState) -> Vec<Signal> {
        let h = &state.history;
        let mut signals = Vec::new();
        let file = h.get("file_refaults");
        let anon = h.get("anon_refaults");
        let refaults: Vec<(i64, f64)> = if anon.len() == file.len() {
            file.iter()
                .zip(&anon)
                .map(|(f, a)| (f.0, f.1 + a.1))
                .collect()
        } else {
            file
        };
        signals.push(Signal {
            kind: SignalKind::Refaults,
            points: counter_rates(&refaults),
        });
        signals.push(Signal {
            kind: SignalKind::MajorFaults,
            points: counter_rates(&h.get("major_faults")),
        });
        let own = h.get("pressure_some_total_usec");
        if own.len() > 1 {
            signals.push(Signal {
                kind: SignalKind::Pressure,
                points: pressure_percent(&own),
            });
        } else if let Some(host) = self.entities.get(&Entity::Host) {
            signals.push(Signal {
                kind: SignalKind::HostPressure,
                points: pressure_percent(&host.history.get("pressure_some_total_usec")),
            });
        }
        for (entity, server) in &self.entities {
            let Entity::Mysql { pid, start_time } = entity else {
                continue;
            };
            let process = Entity::Process {
                pid: *pid,
                start_time: *start_time,
            };
            if self
                .process_cgroups
                .get(&process)
                .is_some_and(|cg| within(cg, path))
            {
                signals.push(Signal {
                    kind: SignalKind::MissRatio,
                    points: miss_ratios(
                        &server.history.get("mysql_pool_read_requests"),
                        &server.history.get("mysql_pool_reads"),
                        self.config.mysql.min_read_requests / 10.0,
                    ),
                });
            }
        }
        signals
    }

    /// The contention condition of victim cgroup `entity`.
    pub(super) fn evaluate_contention(
        &self,
        entity: &Entity,
        state: &EntityState,
        metric: &'static str,
        out: &mut Vec<(Key, Option<Condition>)>,
    ) {
        let Entity::Cgroup { path } = entity else {
            return;
        };
        if metric != TRIGGER {
            return;
        }
        out.push((
            (entity.clone(), CONTENTION, TRIGGER),
            self.contention(path, state),
        ));
    }

    fn contention(&self, path: &str, state: &EntityState) -> Option<Condition> {
        let config = &self.config.contention;
        let now = state.last_seen_ms;
        let neighbours: Vec<(&str, Vec<(i64, f64)>)> = self
            .entities
            .iter()
            .filter_map(|(e, s)| match e {
                Entity::Cgroup { path: other }
                    if share_parent(path, other)
                        && !within(path, other)
                        && !within(other, path) =>
                {
                    Some((other.as_str(), s.history.get("usage_bytes")))
                }
                _ => None,
            })
            .collect();
        if neighbours.is_empty() {
            return None;
        }
        let signals = self.victim_signals(path, state);
        let series: Vec<&[(i64, f64)]> = neighbours.iter().map(|n| n.1.as_slice()).collect();
        let ranked = attribute(now, &series, &signals, config);
        let a = ranked.into_iter().find(|a| {
            let latest = neighbours[a.neighbour].1.last().map_or(0.0, |p| p.1);
            let rise = a.growth.peak_bytes - a.growth.trough_bytes;
            latest >= a.growth.trough_bytes + MIN_HELD_SHARE * rise
        })?;
        let (aggressor, aggressor_usage) = &neighbours[a.neighbour];
        let aggressor_now = aggressor_usage.last().map_or(0.0, |p| p.1);
        let rise = a.growth.peak_bytes - a.growth.trough_bytes;
        let victim_usage = state.history.get("usage_bytes");
        let victim_at = |ts: i64| {
            victim_usage
                .iter()
                .take_while(|p| p.0 <= ts)
                .last()
                .or(victim_usage.first())
                .map(|p| p.1)
        };
        let victim_before = victim_at(a.growth.onset_ms);
        let victim_now = victim_usage.last().map(|p| p.1);
        let mut evidence = vec![
            Evidence::new("aggressor_growth_bytes", rise, "bytes", Layer::Cgroup),
            Evidence::new(
                "aggressor_usage_before_bytes",
                a.growth.trough_bytes,
                "bytes",
                Layer::Cgroup,
            ),
            Evidence::new(
                "aggressor_usage_after_bytes",
                aggressor_now,
                "bytes",
                Layer::Cgroup,
            ),
            Evidence::new(
                "aggressor_onset_at_ms",
                a.growth.onset_ms as f64,
                "ms",
                Layer::Derived,
            ),
            Evidence::new("correlation", a.score, "ratio", Layer::Derived),
        ];
        if let Some((pid, rss)) = self.top_process(aggressor, "rss_bytes", false, now) {
            evidence.push(Evidence::new(
                "aggressor_pid",
                f64::from(pid),
                "pid",
                Layer::Process,
            ));
            evidence.push(Evidence::new(
                "aggressor_rss_bytes",
                rss,
                "bytes",
                Layer::Process,
            ));
        }
        if let (Some(b), Some(n)) = (victim_before, victim_now) {
            evidence.push(Evidence::new(
                "victim_usage_before_bytes",
                b,
                "bytes",
                Layer::Cgroup,
            ));
            evidence.push(Evidence::new(
                "victim_usage_after_bytes",
                n,
                "bytes",
                Layer::Cgroup,
            ));
        }
        let server = self.entities.keys().find_map(|e| match e {
            Entity::Mysql { pid, start_time } => self
                .process_cgroups
                .get(&Entity::Process {
                    pid: *pid,
                    start_time: *start_time,
                })
                .is_some_and(|cg| within(cg, path))
                .then_some(*pid),
            _ => None,
        });
        let victim_pid = server.or_else(|| {
            self.top_process(path, "major_faults", true, now)
                .map(|p| p.0)
        });
        if let Some(pid) = victim_pid {
            evidence.push(Evidence::new(
                "victim_pid",
                f64::from(pid),
                "pid",
                Layer::Process,
            ));
        }
        let mut told = Vec::new();
        for r in &a.rises {
            let (before, after) = names(r.kind);
            let layer = match r.kind {
                SignalKind::HostPressure => Layer::Kernel,
                SignalKind::MissRatio | SignalKind::LatencySeconds => Layer::Process,
                _ => Layer::Cgroup,
            };
            evidence.push(Evidence::new(before, r.before, r.kind.unit(), layer));
            evidence.push(Evidence::new(after, r.after, r.kind.unit(), layer));
            told.push(format!(
                "{} {:.1} -> {:.1} {} ({:.0} s after, r={:.2})",
                r.kind.name(),
                r.before,
                r.after,
                r.kind.unit(),
                r.lag_seconds,
                r.correlation
            ));
        }
        if let Some(first) = a.rises.first() {
            evidence.push(Evidence::new(
                "lag_seconds",
                first.lag_seconds,
                "seconds",
                Layer::Derived,
            ));
            evidence.push(Evidence::new(
                "correlation_lag_seconds",
                first.correlation_lag_seconds,
                "seconds",
                Layer::Derived,
            ));
        }
        let victim_text = match (victim_before, victim_now) {
            (Some(b), Some(n)) => format!(" (its usage {:.0} -> {:.0} MiB)", mib(b), mib(n)),
            _ => String::new(),
        };
        let db_advice = if server.is_some() {
            "size innodb_buffer_pool_size to hold the working set, so reads do not rely on the page cache the neighbour takes, and "
        } else {
            ""
        };
        Some(Condition {
            severity: Severity::Warning,
            evidence,
            recommendation: format!(
                "aggressor {aggressor}{} grew {:.0} MiB ({:.0} -> {:.0} MiB) and then victim {path}{}{victim_text} \
                 was squeezed: {}. For the aggressor: cap it, GOMEMLIMIT below its share for a Go service and \
                 memory.high on its cgroup (v2) so it is throttled and reclaimed before its neighbours are; \
                 for the victim: {db_advice}protect its working set with memory.low (or memory.min) on its cgroup (v2; \
                 on v1 give it a cgroup of its own with room for its cache)",
                self.top_process(aggressor, "rss_bytes", false, now)
                    .map_or(String::new(), |(pid, _)| format!(" (pid {pid})")),
                mib(rise),
                mib(a.growth.trough_bytes),
                mib(aggressor_now),
                victim_pid.map_or(String::new(), |pid| format!(" (pid {pid})")),
                told.join(", "),
            ),
        })
    }
}
