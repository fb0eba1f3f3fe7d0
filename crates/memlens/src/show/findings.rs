//! Findings (memlens-analyze) for people and for JSON: the same words in
//! `memlens watch` (live) and `memlens replay` (offline).

use crate::timearg::format_utc;
use memlens_analyze::{Evidence, Finding};
use memlens_model::series::Entity;

/// `process PID:START (comm)`, `cgroup PATH`, `host` or
/// `mysql server PID:START (comm)`.
pub fn target_text(target: &Entity, comm: Option<&str>) -> String {
    let name = comm.map(|n| format!(" ({n})")).unwrap_or_default();
    match target {
        Entity::Process { pid, start_time } => format!("process {pid}:{start_time}{name}"),
        Entity::Cgroup { path } => format!("cgroup {path}"),
        Entity::Host => "host".to_string(),
        Entity::Mysql { pid, start_time } => format!("mysql server {pid}:{start_time}{name}"),
    }
}

/// `name=value [layer]`, the value in its unit (MiB, MiB/min, s, UTC time).
pub fn evidence_text(e: &Evidence) -> String {
    let value = match e.unit {
        "bytes" => format!("{:.1} MiB", e.value / 1048576.0),
        "bytes/s" => format!("{:.2} MiB/min", e.value * 60.0 / 1048576.0),
        "seconds" => format!("{:.0} s", e.value),
        "ms" => format!("{} UTC", format_utc(e.value as i64)),
        "ratio" => format!("{:.2}", e.value),
        "" => format!("{}", e.value),
        unit => format!("{:.1} {unit}", e.value),
    };
    format!("{}={value} [{}]", e.name, e.layer.as_str())
}

/// Every piece of evidence on one line.
pub fn evidence_line(evidence: &[Evidence]) -> String {
    evidence
        .iter()
        .map(evidence_text)
        .collect::<Vec<_>>()
        .join("  ")
}

/// What happened to a finding at an instant.
pub fn event_word(f: &Finding) -> &'static str {
    match f.cleared_at_ms {
        Some(cleared) if cleared == f.fired_at_ms && f.id == memlens_analyze::OOM_KILL => "EVENT",
        Some(_) => "CLEARED",
        None => "FIRED",
    }
}

/// The evidence as a JSON array of `{name, value, unit, layer}`.
pub fn evidence_json(evidence: &[Evidence]) -> serde_json::Value {
    evidence
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "value": e.value,
                "unit": e.unit,
                "layer": e.layer.as_str(),
            })
        })
        .collect()
}

/// The target as JSON: `kind`, `key` and pid/start_time/comm or path.
pub fn target_json(target: &Entity, comm: Option<&str>) -> serde_json::Value {
    let mut json = serde_json::json!({ "kind": target.kind(), "key": target.key() });
    match target {
        Entity::Process { pid, start_time } | Entity::Mysql { pid, start_time } => {
            json["pid"] = (*pid).into();
            json["start_time"] = (*start_time).into();
            if let Some(comm) = comm {
                json["comm"] = comm.into();
            }
        }
        Entity::Cgroup { path } => json["path"] = path.as_str().into(),
        Entity::Host => {}
    }
    json
}

/// `2026-11-21T03:12:00.123Z`.
pub fn iso_utc(ms: i64) -> String {
    format!(
        "{}.{:03}Z",
        format_utc(ms).replace(' ', "T"),
        ms.rem_euclid(1000)
    )
}

/// A finding's lines for a terminal: `TIME UTC  WORD  severity  id  target`,
/// its evidence, and on firing the recommendation.
pub fn finding_text(ts_ms: i64, word: &str, f: &Finding, comm: Option<&str>) -> String {
    let mut text = format!(
        "{} UTC  {:<7}  {:<8}  {:<21}  {}\n    {}",
        format_utc(ts_ms),
        word,
        f.severity.as_str(),
        f.id,
        target_text(&f.target, comm),
        evidence_line(&f.evidence)
    );
    if word != "CLEARED" {
        text.push_str("\n    → ");
        text.push_str(&f.recommendation);
    }
    text
}

/// One line: `HH:MM:SS WORD severity id target: headline`, where the
/// headline is the time left for a forecast, else the first evidence.
pub fn finding_summary(ts_ms: i64, word: &str, f: &Finding, comm: Option<&str>) -> String {
    let first = || f.evidence.first().map(evidence_text).unwrap_or_default();
    // The number each finding is about (its evidence names, docs/findings.md).
    let about = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| f.evidence.iter().find(|e| e.name == *n))
            .map(evidence_text)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let headline = match f.id {
        memlens_analyze::fds::FD_EXHAUSTION => {
            about(&["fds", "fd_soft_limit", "time_left_seconds"])
        }
        memlens_analyze::vmas::VMA_COUNT => about(&["vmas", "max_map_count", "time_left_seconds"]),
        memlens_analyze::goroutine_leak::GOROUTINE_LEAK => about(&[
            "goroutines",
            "oldest_quarter_max_goroutines",
            "leaking_goroutines",
        ]),
        memlens_analyze::gcpressure::GC_PRESSURE => {
            about(&["gc_cpu_fraction", "cycles_per_minute", "pause_fraction"])
        }
        id if id.starts_with("go.gomemlimit_")
            || id == memlens_analyze::gomemconfig::GOGC_OFF_WITHOUT_LIMIT =>
        {
            about(&[
                "gomemlimit_bytes",
                "cgroup_limit_bytes",
                "recommended_gomemlimit_bytes",
            ])
        }
        _ => match f.evidence("time_left_seconds") {
            Some(left) => format!("OOM kill in {:.1} min", left / 60.0),
            None => first(),
        },
    };
    let headline = if headline.is_empty() {
        first()
    } else {
        headline
    };
    let time = format_utc(ts_ms);
    let clock = time.rsplit(' ').next().unwrap_or(&time);
    format!(
        "{clock} {word} {} {} {}: {headline}",
        f.severity.as_str(),
        f.id,
        target_text(&f.target, comm)
    )
}
