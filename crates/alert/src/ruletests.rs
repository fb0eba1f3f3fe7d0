//! `promtool test rules` unit tests for a catalogue, with series generated
//! from the same thresholds (crate::series), so a changed threshold gives
//! tests that hold for it. Standard names: a leak that must fire filling-up
//! with a stated lead before its working set reaches the limit (a warning
//! at least half the warning's time left before, a critical at least a
//! quarter of the critical's: the sampled peaks of a sawtooth fall short of
//! its true tops, which the kernel kills at, so the forecast runs late by
//! the growth of the last scrape interval of each period), and a GC sawtooth, a start-up ramp and a plateau under
//! the limit that must fire nothing for three hours; plus near limit,
//! thrashing and OOM kills. memlens names: each finding and setting alert
//! fires on the series memlens exports.
//!
//! Checks read `ALERTS` (which promtool's rule evaluation writes): a
//! firing check counts the alert's firing series for its target at an
//! instant, a quiet check counts every `ALERTS` sample (pending too) of a
//! target over a span and expects none.

use crate::catalogue::Naming;
use crate::series::{counter, join, step_at, steps, Shape, STEP_SECONDS};
use crate::thresholds::{prom_duration as d, Thresholds};
use crate::yaml::Yaml;

const GIB: f64 = 1_073_741_824.0;

/// What a scenario asserts.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `alert` with `severity` is firing for `target` at `at_seconds`.
    Firing {
        /// Alert name.
        alert: &'static str,
        /// Severity label.
        severity: &'static str,
        /// Target label.
        target: String,
        /// When.
        at_seconds: f64,
    },
    /// No alert at all (not even pending) for `target` from `from_seconds`
    /// (exclusive) to `to_seconds`.
    Quiet {
        /// Target label.
        target: String,
        /// Start of the span.
        from_seconds: f64,
        /// End of the span.
        to_seconds: f64,
    },
}

/// One test group: input series and checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// What it shows.
    pub name: String,
    /// (series selector, promtool values).
    pub series: Vec<(String, String)>,
    /// What must hold.
    pub checks: Vec<Check>,
}

/// The scenarios of `naming` with thresholds `t`.
pub fn scenarios(naming: Naming, t: &Thresholds) -> Vec<Scenario> {
    match naming {
        Naming::Standard => standard(t),
        Naming::Memlens => crate::ruletests_memlens::scenarios(t),
    }
}

/// The test file's text; `rule_file` is the rule file's path as promtool
/// should open it (relative to the test file).
pub fn test_file(naming: Naming, t: &Thresholds, rule_file: &str) -> String {
    let groups = scenarios(naming, t).into_iter().map(group).collect();
    Yaml::map([
        ("rule_files", Yaml::strs([rule_file])),
        ("evaluation_interval", Yaml::str("1m")),
        ("tests", Yaml::List(groups)),
    ])
    .render()
}

fn group(s: Scenario) -> Yaml {
    let series = s
        .series
        .into_iter()
        .map(|(name, values)| {
            Yaml::map([("series", Yaml::str(name)), ("values", Yaml::str(values))])
        })
        .collect();
    let checks = s.checks.into_iter().map(check).collect();
    Yaml::map([
        ("name", Yaml::str(s.name)),
        ("interval", Yaml::str(d(STEP_SECONDS))),
        ("input_series", Yaml::List(series)),
        ("promql_expr_test", Yaml::List(checks)),
    ])
}

/// Rule evaluations come every minute: checks fall on them.
fn minute(seconds: f64) -> f64 {
    (seconds / 60.0).floor() * 60.0
}

fn check(c: Check) -> Yaml {
    match c {
        Check::Firing {
            alert,
            severity,
            target,
            at_seconds,
        } => Yaml::map([
            (
                "expr",
                Yaml::str(format!(
                    "count by (target) (ALERTS{{alertname=\"{alert}\",alertstate=\"firing\",severity=\"{severity}\",target=\"{target}\"}})"
                )),
            ),
            ("eval_time", Yaml::str(d(minute(at_seconds)))),
            (
                "exp_samples",
                Yaml::List(vec![Yaml::map([
                    ("labels", Yaml::str(format!("{{target=\"{target}\"}}"))),
                    ("value", Yaml::Num(1.0)),
                ])]),
            ),
        ]),
        Check::Quiet {
            target,
            from_seconds,
            to_seconds,
        } => {
            let to = minute(to_seconds);
            Yaml::map([
                (
                    "expr",
                    Yaml::str(format!(
                        "count_over_time(ALERTS{{target=\"{target}\"}}[{}])",
                        d(to - from_seconds)
                    )),
                ),
                ("eval_time", Yaml::str(d(to))),
                ("exp_samples", Yaml::List(vec![])),
            ])
        }
    }
}

/// A cAdvisor container: its labels and its target.
fn container(name: &str) -> (String, String) {
    let id = format!("/kubepods/burstable/{name}");
    (
        format!("{{id=\"{id}\",namespace=\"shop\",pod=\"{name}-0\",container=\"{name}\"}}"),
        format!("cgroup:{id}"),
    )
}

/// A GC period the sawtooth window holds twice and a half.
fn gc_period(t: &Thresholds) -> f64 {
    (t.sawtooth_window / 2.5 / STEP_SECONDS).floor().max(2.0) * STEP_SECONDS
}

fn standard(t: &Thresholds) -> Vec<Scenario> {
    let limit = GIB;
    let period = gc_period(t);
    let noise = 0.005 * limit;
    let quiet_span = 3.0 * 3600.0;
    let mut out = Vec::new();
    let healthy = [
        (
            "gc-sawtooth",
            "a GC sawtooth from 30 % to 70 % of the limit",
            Shape {
                sawtooth_bytes: 0.4 * limit,
                period_seconds: period,
                ..Shape::flat(0.3 * limit, noise)
            },
        ),
        (
            "startup-ramp",
            "a start-up ramp to 65 % of the limit in 10 minutes, then a GC sawtooth to 80 %",
            Shape {
                ramp_seconds: 600.0,
                sawtooth_bytes: 0.15 * limit,
                period_seconds: period,
                ..Shape::flat(0.65 * limit, noise)
            },
        ),
        (
            "plateau",
            "a plateau at 85 % of the limit",
            Shape::flat(0.85 * limit, noise),
        ),
    ];
    for (name, what, shape) in healthy {
        let (labels, target) = container(name);
        out.push(Scenario {
            name: format!("standard names: {what} fires nothing for 3 hours"),
            series: vec![
                (
                    format!("container_memory_working_set_bytes{labels}"),
                    shape.values(quiet_span),
                ),
                (
                    format!("container_spec_memory_limit_bytes{labels}"),
                    flat(limit, quiet_span),
                ),
            ],
            checks: vec![Check::Quiet {
                target,
                from_seconds: 0.0,
                to_seconds: quiet_span,
            }],
        });
    }
    out.push(leak(t, limit, period, noise));
    out.extend(at_limit(t, limit, noise));
    out
}

/// A leak from 30 % of the limit with a GC sawtooth of 10 %, killed when its
/// top reaches the limit, long enough for the trend window and the
/// warning's time left.
fn leak(t: &Thresholds, limit: f64, period: f64, noise: f64) -> Scenario {
    let kill_at = ((t.trend_window + t.warning_time_left + 1800.0) / 600.0).ceil() * 600.0;
    let shape = Shape {
        leak_bytes_per_second: 0.6 * limit / kill_at,
        sawtooth_bytes: 0.1 * limit,
        period_seconds: period,
        ..Shape::flat(0.3 * limit, noise)
    };
    let kill_at = shape.reaches_at(limit).expect("a leak reaches the limit");
    let span = kill_at + 1200.0;
    let (labels, target) = container("leak");
    let working_set = format!(
        "{} stale",
        join((0..steps(kill_at)).map(|i| shape.at(i).min(limit)))
    );
    let firing = |alert, severity, at_seconds| Check::Firing {
        alert,
        severity,
        target: target.clone(),
        at_seconds,
    };
    Scenario {
        name: format!(
            "standard names: a leak reaching the limit at {}: filling-up warns by {} before and is critical by {} before; quiet for the first two thirds of the trend window; OOM killed after",
            d(kill_at),
            d(t.warning_time_left / 2.0),
            d(t.critical_time_left / 4.0)
        ),
        series: vec![
            (format!("container_memory_working_set_bytes{labels}"), working_set),
            (format!("container_spec_memory_limit_bytes{labels}"), flat(limit, span)),
            (format!("container_oom_events_total{labels}"), step_at(0.0, 1.0, kill_at, span)),
        ],
        checks: vec![
            Check::Quiet {
                target: target.clone(),
                from_seconds: 0.0,
                to_seconds: t.trend_window * 2.0 / 3.0,
            },
            firing("MemoryFillingUp", "warning", kill_at - t.warning_time_left / 2.0),
            firing("MemoryFillingUp", "critical", kill_at - t.critical_time_left / 4.0),
            firing("MemoryOOMKilled", "critical", kill_at + 120.0),
        ],
    }
}

/// A plateau at 95 % (near limit), a cgroup pinned at the limit with a
/// stall (thrashing), and three kills within the window (repeated kills).
fn at_limit(t: &Thresholds, limit: f64, noise: f64) -> Vec<Scenario> {
    let span = 3600.0;
    let flat_limit = flat(limit, span);
    let (near, near_target) = container("near");
    let (thrash, thrash_target) = container("thrash");
    let (loop_, loop_target) = container("oomloop");
    let kills =
        join((0..steps(span)).map(|i| ((i as f64 * STEP_SECONDS) / 600.0).floor().min(3.0)));
    vec![
        Scenario {
            name: "standard names: a plateau at 95 % of the limit is near the limit".to_string(),
            series: vec![
                (format!("container_memory_working_set_bytes{near}"), Shape::flat(0.95 * limit, noise).values(span)),
                (format!("container_spec_memory_limit_bytes{near}"), flat_limit.clone()),
            ],
            checks: vec![Check::Firing {
                alert: "MemoryNearLimit",
                severity: "warning",
                target: near_target,
                at_seconds: t.sawtooth_window + t.near_limit_for + 180.0,
            }],
        },
        Scenario {
            name: format!(
                "standard names: usage pinned at 99 % of the limit with {} major faults a second is thrashing",
                2.0 * t.min_major_faults_per_second
            ),
            series: vec![
                (format!("container_memory_working_set_bytes{thrash}"), Shape::flat(0.9 * limit, noise).values(span)),
                (format!("container_memory_usage_bytes{thrash}"), Shape::flat(0.99 * limit, noise).values(span)),
                (format!("container_spec_memory_limit_bytes{thrash}"), flat_limit.clone()),
                (
                    format!(
                        "container_memory_failures_total{}",
                        thrash.replace('}', ",failure_type=\"pgmajfault\",scope=\"container\"}")
                    ),
                    counter(0.0, 2.0 * t.min_major_faults_per_second, span),
                ),
            ],
            checks: vec![Check::Firing {
                alert: "MemoryThrashing",
                severity: "critical",
                target: thrash_target,
                at_seconds: t.thrashing_window + t.thrashing_for + 180.0,
            }],
        },
        Scenario {
            name: "standard names: three OOM kills 10 minutes apart are repeated kills".to_string(),
            series: vec![
                (format!("container_oom_events_total{loop_}"), kills),
                (format!("container_spec_memory_limit_bytes{loop_}"), flat_limit),
            ],
            checks: vec![
                Check::Firing {
                    alert: "MemoryOOMKilledRepeatedly",
                    severity: "critical",
                    target: "container:shop/oomloop-0/oomloop".to_string(),
                    at_seconds: 1860.0,
                },
                Check::Firing {
                    alert: "MemoryOOMKilled",
                    severity: "critical",
                    target: loop_target,
                    at_seconds: 660.0,
                },
            ],
        },
    ]
}

/// A limit of `bytes` held for `seconds`.
pub(crate) fn flat(bytes: f64, seconds: f64) -> String {
    format!("{bytes}+0x{}", steps(seconds) - 1)
}
