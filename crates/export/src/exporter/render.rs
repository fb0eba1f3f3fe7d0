//! The exposition: a cycle's series (and the agent's own counters) in the
//! Prometheus text format 0.0.4. Pure: values in, text out.

use super::names::{family_for, FamilySpec, Kind};
use memlens_cardinality::select::{selected, Candidate};
use memlens_cardinality::{process_labels, ProcessIdentity, Relabeler, SeriesOptions};
use memlens_model::series::{Entity, Point};
use memlens_model::Snapshot;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// The agent's own families (listed in `docs/metrics.md`).
#[cfg(test)]
pub const AGENT_FAMILIES: [&str; 12] = [
    "memlens_finding_active",
    "memlens_time_to_oom_seconds",
    "memlens_time_to_oom_earliest_seconds",
    "memlens_time_to_oom_latest_seconds",
    "memlens_oom_kills_observed_total",
    "memlens_agent_cycles_total",
    "memlens_agent_cycle_duration_seconds",
    "memlens_agent_last_cycle_timestamp_seconds",
    "memlens_agent_collector_errors_total",
    "memlens_agent_store_size_bytes",
    "memlens_agent_series",
    "memlens_agent_series_dropped_total",
];

/// Error counters present (at 0) from the start, so alert rules see them.
const KNOWN_ERRORS: [(&str, &str); 8] = [
    ("snapshot", "collect"),
    ("store", "write"),
    ("store", "findings"),
    ("store", "maintain"),
    ("go", "discover"),
    ("go", "runtime"),
    ("go", "profile"),
    ("go", "goroutine_dump"),
];

/// An active finding's labels and, for a time-to-OOM, its forecast.
pub type ActiveFinding = (Vec<(&'static str, String)>, Option<TimeLeft>);

/// A time-to-OOM's forecast as exported (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeLeft {
    /// The time left.
    pub seconds: f64,
    /// The earliest time left at the forecast's coverage.
    pub earliest_seconds: f64,
    /// The latest (`+Inf` when the slope may be zero).
    pub latest_seconds: f64,
}

/// The agent's health, as the exposition shows it.
#[derive(Debug, Clone, Default)]
pub struct AgentHealth {
    /// Cycles finished.
    pub cycles_total: u64,
    /// How long the last cycle took.
    pub last_cycle_seconds: f64,
    /// When the last cycle ended, in seconds since the Unix epoch.
    pub last_cycle_unix_seconds: f64,
    /// Failures by (collector, stage).
    pub errors: BTreeMap<(String, String), u64>,
    /// Bytes of the history's files.
    pub store_size_bytes: u64,
    /// Series exported by the last cycle.
    pub series: u64,
    /// Series left out because of the cap, summed over cycles.
    pub series_dropped_total: u64,
    /// With `[[remote_write]]`: each sender's totals.
    pub remote_write: Option<Vec<crate::remote_write::SenderTotals>>,
    /// With `[alerting]`: each notifier's totals, and the alerts pending,
    /// firing and inhibited.
    pub alerting: Option<(Vec<super::NotifierTotals>, (usize, usize, usize))>,
    /// The active findings: labels (`finding`, `severity`, `target`, and
    /// `pid`/`comm` or `cgroup`) and, for a time-to-OOM, the time left.
    pub findings: Vec<ActiveFinding>,
    /// OOM kills the agent has seen (kill findings) since it started, by
    /// the labels of their target (`target`, `pid`, `comm`, `cgroup`).
    pub oom_kills_observed: BTreeMap<Vec<(&'static str, String)>, u64>,
}

/// One entity's values of a cycle, with the labels its series carry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySeries {
    /// Whose.
    pub entity: Entity,
    /// Labels in output order (`pid`, `comm`, `cgroup`, `go_version` of a
    /// process; `cgroup` of a cgroup; none for the host).
    pub labels: Vec<(&'static str, String)>,
    /// Its RSS (processes), for choosing which to keep under the cap.
    pub rss_bytes: f64,
    /// (history metric, value).
    pub values: Vec<(&'static str, f64)>,
}

/// What names a process's series besides its `comm`: its cgroup and Go
/// version (the last known ones, when a dying process reads back without
/// them) and its `instance_index`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessNames {
    /// The memory cgroup's path.
    pub cgroup: Option<String>,
    /// The Go version of its build.
    pub go_version: Option<String>,
    /// Its `instance_index`.
    pub index: u32,
}

/// The entities of a cycle: the snapshot's host, cgroups and the selected
/// processes (`series.processes`) with the values of `points` (which may
/// also hold Go runtime points of them), labelled by their identity
/// (`memlens_cardinality::process_labels`, with `names` of each process;
/// the snapshot's own values and index 0 for one missing there).
pub fn entities(
    snapshot: &Snapshot,
    points: &[Point],
    names: &HashMap<Entity, ProcessNames>,
    series: &SeriesOptions,
) -> Vec<EntitySeries> {
    let mut by_entity: HashMap<&Entity, Vec<(&'static str, f64)>> = HashMap::new();
    for point in points {
        by_entity
            .entry(&point.entity)
            .or_default()
            .push((point.metric, point.value));
    }
    let mut out = Vec::new();
    let mut take = |entity: Entity, labels: Vec<(&'static str, String)>, rss_bytes: f64| {
        if let Some(values) = by_entity.remove(&entity) {
            out.push(EntitySeries {
                entity,
                labels,
                rss_bytes,
                values,
            });
        }
    };
    take(Entity::Host, Vec::new(), 0.0);
    let mut cgroups: Vec<&str> = snapshot
        .processes
        .iter()
        .filter_map(|p| p.cgroup.as_ref().map(|c| c.path.as_str()))
        .collect();
    cgroups.sort_unstable();
    cgroups.dedup();
    for path in cgroups {
        take(
            Entity::Cgroup {
                path: path.to_string(),
            },
            vec![("cgroup", path.to_string())],
            0.0,
        );
    }
    let candidates: Vec<Candidate<(i32, u64)>> = snapshot
        .processes
        .iter()
        .map(|p| Candidate {
            key: (p.pid, p.start_time),
            rss_bytes: p.rss_bytes.map(|b| b as f64),
            go: p.go.is_some(),
        })
        .collect();
    let chosen = selected(series.processes, series.top_processes, &candidates);
    let names_of = |p: &memlens_model::ProcessSample| {
        let entity = Entity::Process {
            pid: p.pid,
            start_time: p.start_time,
        };
        let own = names.get(&entity).cloned().unwrap_or_else(|| ProcessNames {
            cgroup: p.cgroup.as_ref().map(|c| c.path.clone()),
            go_version: p.go.as_ref().map(|g| g.version.clone()),
            index: 0,
        });
        (entity, own)
    };
    let identity = |p: &memlens_model::ProcessSample| {
        let (entity, own) = names_of(p);
        let labels = process_labels(
            &ProcessIdentity {
                pid: p.pid,
                comm: &p.comm,
                cgroup: own.cgroup.as_deref(),
                index: own.index,
            },
            series.pid_label,
        );
        (entity, labels)
    };
    for p in &snapshot.processes {
        if !chosen.contains(&(p.pid, p.start_time)) {
            continue;
        }
        let (entity, mut labels) = identity(p);
        if let Some(version) = names_of(p).1.go_version {
            labels.push(("go_version", version));
        }
        take(entity, labels, p.rss_bytes.unwrap_or(0) as f64);
    }
    for m in &snapshot.mysql {
        let (pid, start_time) = (m.process.pid, m.process.start_time);
        let process = snapshot
            .processes
            .iter()
            .find(|p| p.pid == pid && p.start_time == start_time);
        let mut labels = match process {
            Some(p) => identity(p).1,
            None if series.pid_label => vec![("pid", pid.to_string())],
            None => Vec::new(),
        };
        labels.push(("endpoint", m.endpoint.clone()));
        take(Entity::Mysql { pid, start_time }, labels, 0.0);
    }
    out
}

/// How many series of `entities` `relabel` keeps (all without rules).
pub fn kept_after_relabel(entities: &[EntitySeries], relabel: &Relabeler) -> u64 {
    let all: u64 = entities.iter().map(|e| e.values.len() as u64).sum();
    if relabel.is_empty() {
        return all;
    }
    let mut kept = 0;
    for e in entities {
        let kind = e.entity.kind();
        for &(metric, _) in &e.values {
            let go = kind == "process" && metric.starts_with("go_");
            let mut named = vec![("__name__".to_string(), family_for(kind, metric).name)];
            named.extend(
                e.labels
                    .iter()
                    .filter(|(name, _)| !go || *name != "go_version")
                    .map(|(n, v)| (n.to_string(), v.clone())),
            );
            if relabel.apply(&mut named) {
                kept += 1;
            }
        }
    }
    kept
}

/// Keeps at most `max_series` series: the host's first, then the cgroups',
/// then processes by RSS, largest first (an entity is kept whole or not at
/// all). Returns the kept entities and how many series were left out.
pub fn cap(mut entities: Vec<EntitySeries>, max_series: usize) -> (Vec<EntitySeries>, u64) {
    let rank = |e: &EntitySeries| match e.entity {
        Entity::Host => 0,
        Entity::Cgroup { .. } => 1,
        Entity::Process { .. } | Entity::Mysql { .. } => 2,
    };
    entities.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(b.rss_bytes.total_cmp(&a.rss_bytes))
            .then(a.entity.cmp(&b.entity))
    });
    let mut kept = Vec::with_capacity(entities.len());
    let mut used = 0usize;
    let mut dropped = 0u64;
    let mut full = false;
    for mut e in entities {
        let n = e.values.len();
        if !full && used + n <= max_series {
            used += n;
            kept.push(e);
        } else if !full && rank(&e) < 2 {
            // The host and cgroups are cut series by series rather than lost whole.
            let room = max_series - used;
            dropped += (n - room) as u64;
            e.values.truncate(room);
            used += room;
            full = true;
            kept.push(e);
        } else {
            full = true;
            dropped += n as u64;
        }
    }
    (kept, dropped)
}

/// The exposition of `entities` (each series after `relabel`; a series it
/// drops is left out) and the agent's health.
pub fn render(entities: &[EntitySeries], health: &AgentHealth, relabel: &Relabeler) -> String {
    let mut families: BTreeMap<String, (FamilySpec, String)> = BTreeMap::new();
    for e in entities {
        let kind = e.entity.kind();
        for &(metric, value) in &e.values {
            let spec = family_for(kind, metric);
            // Go runtime series carry the process's identity, not its
            // build's Go version.
            let go = kind == "process" && metric.starts_with("go_");
            let labels = e
                .labels
                .iter()
                .filter(|(name, _)| !go || *name != "go_version");
            if relabel.is_empty() {
                let entry = families
                    .entry(spec.name.clone())
                    .or_insert_with(|| (spec.clone(), String::new()));
                sample(&mut entry.1, &spec.name, labels, value * spec.scale);
                continue;
            }
            let mut named: Vec<(String, String)> =
                vec![("__name__".to_string(), spec.name.clone())];
            named.extend(labels.map(|(n, v)| (n.to_string(), v.clone())));
            if !relabel.apply(&mut named) {
                continue;
            }
            let name = named
                .iter()
                .find(|(n, _)| n == "__name__")
                .map_or(spec.name.clone(), |(_, v)| v.clone());
            let entry = families.entry(name.clone()).or_insert_with(|| {
                (
                    FamilySpec {
                        name: name.clone(),
                        ..spec.clone()
                    },
                    String::new(),
                )
            });
            let rest = named.into_iter().filter(|(n, _)| n != "__name__");
            sample_owned(&mut entry.1, &name, rest, value * spec.scale);
        }
    }
    let mut out = String::with_capacity(families.values().map(|f| f.1.len() + 128).sum());
    for (spec, samples) in families.values() {
        header(&mut out, &spec.name, spec.kind, &spec.help);
        out.push_str(samples);
    }
    agent(&mut out, health);
    out
}

fn agent(out: &mut String, h: &AgentHealth) {
    let none = std::iter::empty::<&(&str, String)>();
    let mut simple = |name: &str, kind: Kind, help: &str, value: f64| {
        header(out, name, kind, help);
        sample(out, name, none.clone(), value);
    };
    simple(
        "memlens_agent_cycles_total",
        Kind::Counter,
        "Sampling cycles the agent finished.",
        h.cycles_total as f64,
    );
    simple(
        "memlens_agent_cycle_duration_seconds",
        Kind::Gauge,
        "How long the last sampling cycle took.",
        h.last_cycle_seconds,
    );
    simple(
        "memlens_agent_last_cycle_timestamp_seconds",
        Kind::Gauge,
        "When the last sampling cycle ended, in seconds since the Unix epoch.",
        h.last_cycle_unix_seconds,
    );
    simple(
        "memlens_agent_store_size_bytes",
        Kind::Gauge,
        "Bytes of the history's files.",
        h.store_size_bytes as f64,
    );
    simple(
        "memlens_agent_series",
        Kind::Gauge,
        "Series of hosts, cgroups, processes and Go runtimes in this exposition.",
        h.series as f64,
    );
    simple(
        "memlens_agent_series_dropped_total",
        Kind::Counter,
        "Series left out of expositions because of max_series, summed over cycles.",
        h.series_dropped_total as f64,
    );
    if let Some(senders) = &h.remote_write {
        remote_write(out, senders);
    }
    if let Some((notifiers, (pending, firing, inhibited))) = &h.alerting {
        alerting(out, notifiers, [*pending, *firing, *inhibited]);
    }
    let name = "memlens_oom_kills_observed_total";
    header(
        out,
        name,
        Kind::Counter,
        "OOM kills the agent has seen (memory.oom_kill findings) since it started, by victim (target, pid, comm, cgroup).",
    );
    for (labels, kills) in &h.oom_kills_observed {
        sample(out, name, labels.iter(), *kills as f64);
    }
    let name = "memlens_finding_active";
    header(
        out,
        name,
        Kind::Gauge,
        "1 for each active finding (ids in docs/findings.md), by finding, severity and target.",
    );
    for (labels, _) in &h.findings {
        sample(out, name, labels.iter(), 1.0);
    }
    let name = "memlens_time_to_oom_seconds";
    header(
        out,
        name,
        Kind::Gauge,
        "Forecast time left until the OOM kill, for each active memory.time_to_oom finding.",
    );
    for (labels, left) in &h.findings {
        if let Some(left) = left {
            sample(out, name, labels.iter(), left.seconds);
        }
    }
    let name = "memlens_time_to_oom_earliest_seconds";
    header(
        out,
        name,
        Kind::Gauge,
        "Earliest time left until the OOM kill at the forecast's coverage (range_coverage, 90 % by default).",
    );
    for (labels, left) in &h.findings {
        if let Some(left) = left {
            sample(out, name, labels.iter(), left.earliest_seconds);
        }
    }
    let name = "memlens_time_to_oom_latest_seconds";
    header(
        out,
        name,
        Kind::Gauge,
        "Latest time left until the OOM kill at the forecast's coverage (+Inf when the growth may stop).",
    );
    for (labels, left) in &h.findings {
        if let Some(left) = left {
            sample(out, name, labels.iter(), left.latest_seconds);
        }
    }
    let name = "memlens_agent_collector_errors_total";
    header(
        out,
        name,
        Kind::Counter,
        "Failures of the agent's collectors by collector (snapshot, store, go) and stage.",
    );
    let mut errors = h.errors.clone();
    for (collector, stage) in KNOWN_ERRORS {
        errors
            .entry((collector.to_string(), stage.to_string()))
            .or_insert(0);
    }
    for ((collector, stage), count) in &errors {
        let labels = [("collector", collector.clone()), ("stage", stage.clone())];
        sample(out, name, labels.iter(), *count as f64);
    }
}

fn header(out: &mut String, name: &str, kind: Kind, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

fn sample<'a>(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = &'a (&'static str, String)>,
    value: f64,
) {
    out.push_str(name);
    let mut first = true;
    for (label, text) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        escape_label_value(out, text);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    format_value(out, value);
    out.push('\n');
}

/// [`sample`] with owned label names (after relabelling).
fn sample_owned(
    out: &mut String,
    name: &str,
    labels: impl Iterator<Item = (String, String)>,
    value: f64,
) {
    let labels: Vec<(String, String)> = labels.collect();
    out.push_str(name);
    for (i, (label, text)) in labels.iter().enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        out.push_str(label);
        out.push_str("=\"");
        escape_label_value(out, text);
        out.push('"');
    }
    if !labels.is_empty() {
        out.push('}');
    }
    out.push(' ');
    format_value(out, value);
    out.push('\n');
}

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A value as the format spells it (`+Inf`, `-Inf`, `NaN`, else a float).
fn format_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

/// The built-in alerting's families.
fn alerting(out: &mut String, notifiers: &[super::NotifierTotals], states: [usize; 3]) {
    let name = "memlens_alerts";
    header(
        out,
        name,
        Kind::Gauge,
        "Built-in alerts by state: pending (waiting for their for), firing, and inhibited (firing, silenced by another).",
    );
    for (state, n) in ["pending", "firing", "inhibited"].iter().zip(states) {
        let labels = [("state", state.to_string())];
        sample(out, name, labels.iter(), n as f64);
    }
    type Field = fn(&super::NotifierTotals) -> u64;
    let families: [(&str, Kind, &str, Field); 6] = [
        ("memlens_alert_notifications_total", Kind::Counter, "Alert notifications queued, by notifier: each is sent, dropped, rejected or still queued.", |t| t.enqueued),
        ("memlens_alert_notifications_sent_total", Kind::Counter, "Alert notifications the receiver took (2xx), by notifier.", |t| t.sent),
        ("memlens_alert_notification_retries_total", Kind::Counter, "Failed alert notification attempts (network, timeout, 5xx, 429), retried with back-off, by notifier.", |t| t.retries),
        ("memlens_alert_notifications_dropped_total", Kind::Counter, "Alert notifications dropped from a full queue (queue_capacity), by notifier.", |t| t.dropped),
        ("memlens_alert_notifications_rejected_total", Kind::Counter, "Alert notifications the receiver refused with a 4xx (not 429), by notifier.", |t| t.rejected),
        ("memlens_alert_notification_queue_length", Kind::Gauge, "Alert notifications waiting or being sent, by notifier.", |t| t.queued),
    ];
    for (name, kind, help, field) in families {
        header(out, name, kind, help);
        for t in notifiers {
            let labels = [("notifier", t.notifier.to_string())];
            sample(out, name, labels.iter(), field(t) as f64);
        }
    }
}

/// The remote-write senders: the totals over every URL (as before there
/// were several), and each URL's own.
fn remote_write(out: &mut String, senders: &[crate::remote_write::SenderTotals]) {
    use crate::remote_write::SenderTotals;
    let sum = |f: fn(&SenderTotals) -> u64| senders.iter().map(f).sum::<u64>() as f64;
    type Field = fn(&SenderTotals) -> u64;
    let totals: [(&str, &str, Field); 3] = [
        ("memlens_agent_remote_write_sent_samples_total", "Samples the remote-write receivers accepted (all URLs).", |t| t.sent_samples),
        ("memlens_agent_remote_write_dropped_samples_total", "Samples dropped because a remote-write receiver refused them with a 4xx (not 401, 403, 429), or past the buffer bound (all URLs).", |t| t.dropped_samples),
        ("memlens_agent_remote_write_failed_requests_total", "Remote-write requests that failed (5xx, 429, 401, 403, network) and were retried (all URLs).", |t| t.failed_requests),
    ];
    for (name, help, field) in totals {
        header(out, name, Kind::Counter, help);
        sample(out, name, std::iter::empty(), sum(field));
    }
    let per_url: [(&str, &str, Field); 7] = [
        (
            "memlens_remote_write_samples_sent_total",
            "Samples this remote-write URL accepted.",
            |t| t.sent_samples,
        ),
        (
            "memlens_remote_write_samples_retried_total",
            "Samples in requests to this URL that failed and are sent again.",
            |t| t.retried_samples,
        ),
        (
            "memlens_remote_write_samples_dropped_total",
            "Samples this URL refused with a 4xx (not 401, 403, 429), or past the buffer bound.",
            |t| t.dropped_samples,
        ),
        (
            "memlens_remote_write_sent_bytes_total",
            "Compressed request bytes this URL accepted.",
            |t| t.sent_bytes,
        ),
        (
            "memlens_remote_write_series_sent_total",
            "Series in requests this URL accepted, one per series and request.",
            |t| t.series_sent,
        ),
        (
            "memlens_remote_write_new_series_total",
            "Series this URL accepted that the agent had not sent it in the hour before (or since it started): what the agent adds to the receiver's index.",
            |t| t.new_series,
        ),
        (
            "memlens_remote_write_auth_failures_total",
            "Requests this URL refused with 401 or 403 (the samples are kept and retried).",
            |t| t.auth_failures,
        ),
    ];
    for (name, help, field) in per_url {
        header(out, name, Kind::Counter, help);
        for t in senders {
            let labels = [("url", t.url.clone())];
            sample(out, name, labels.iter(), field(t) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_goruntime::promtext::parse_promtext;

    fn process(pid: i32, rss: f64, n: usize) -> EntitySeries {
        EntitySeries {
            entity: Entity::Process { pid, start_time: 1 },
            labels: vec![("pid", pid.to_string()), ("comm", "a\"b\\c\nd".to_string())],
            rss_bytes: rss,
            values: (0..n).map(|_| ("rss_bytes", rss)).collect(),
        }
    }

    #[test]
    fn a_time_to_oom_shows_its_time_left_and_range() {
        let labels = vec![
            ("finding", "memory.time_to_oom".to_string()),
            ("severity", "critical".to_string()),
            ("target", "cgroup:/app".to_string()),
            ("cgroup", "/app".to_string()),
        ];
        let health = AgentHealth {
            findings: vec![
                (
                    labels.clone(),
                    Some(TimeLeft {
                        seconds: 120.0,
                        earliest_seconds: 90.5,
                        latest_seconds: f64::INFINITY,
                    }),
                ),
                (vec![("finding", "memory.growth".to_string())], None),
            ],
            ..AgentHealth::default()
        };
        let text = render(&[], &health, &Relabeler::default());
        if std::env::var_os("MEMLENS_PRINT_EXPOSITION").is_some() {
            println!("{text}");
        }
        let series = "{finding=\"memory.time_to_oom\",severity=\"critical\",\
                      target=\"cgroup:/app\",cgroup=\"/app\"}";
        for line in [
            format!("memlens_time_to_oom_seconds{series} 120\n"),
            format!("memlens_time_to_oom_earliest_seconds{series} 90.5\n"),
            format!("memlens_time_to_oom_latest_seconds{series} +Inf\n"),
        ] {
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert_eq!(text.matches("memlens_finding_active{").count(), 2);
        assert_eq!(
            text.matches("memlens_time_to_oom_latest_seconds{").count(),
            1
        );
    }

    #[test]
    fn the_cap_keeps_host_cgroups_then_the_largest_processes() {
        let host = EntitySeries {
            entity: Entity::Host,
            labels: Vec::new(),
            rss_bytes: 0.0,
            values: vec![("mem_total_bytes", 1.0); 3],
        };
        let cgroup = EntitySeries {
            entity: Entity::Cgroup {
                path: "/x".to_string(),
            },
            labels: vec![("cgroup", "/x".to_string())],
            rss_bytes: 0.0,
            values: vec![("usage_bytes", 1.0); 2],
        };
        let all = vec![
            process(1, 10.0, 4),
            process(2, 30.0, 4),
            cgroup,
            process(3, 20.0, 4),
            host,
        ];
        let (kept, dropped) = cap(all.clone(), 13);
        let kinds: Vec<String> = kept.iter().map(|e| e.entity.key()).collect();
        assert_eq!(
            kinds,
            ["host", "cgroup:/x", "process:2:1", "process:3:1"],
            "{kept:?}"
        );
        assert_eq!(dropped, 4);
        let (kept, dropped) = cap(all.clone(), 2);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].values.len(), 2);
        assert_eq!(dropped, 1 + 2 + 12);
        assert_eq!(cap(all, 100).1, 0);
    }

    #[test]
    fn the_exposition_parses_back_with_escaped_labels() {
        let text = render(
            &[process(7, 4096.0, 1)],
            &AgentHealth::default(),
            &Relabeler::default(),
        );
        assert!(text.contains(
            "memlens_process_resident_memory_bytes{pid=\"7\",comm=\"a\\\"b\\\\c\\nd\"} 4096\n"
        ));
        let parsed = parse_promtext("render", text.as_bytes()).expect("parses");
        assert_eq!(
            parsed.value("memlens_process_resident_memory_bytes"),
            Some(4096.0)
        );
        assert_eq!(parsed.value("memlens_agent_cycles_total"), Some(0.0));
        for name in AGENT_FAMILIES {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        let mut s = String::new();
        format_value(&mut s, f64::INFINITY);
        format_value(&mut s, f64::NAN);
        assert_eq!(s, "+InfNaN");
    }

    use crate::exporter::tests::snapshot as snapshot_of;

    fn worker(pid: i32, rss_bytes: u64) -> memlens_model::ProcessSample {
        memlens_model::ProcessSample {
            pid,
            start_time: pid as u64,
            comm: "worker".to_string(),
            rss_bytes: Some(rss_bytes),
            cgroup: Some(memlens_model::CgroupSample {
                path: "/system.slice/w.service".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn processes_are_named_by_identity_pid_on_request_and_selected() {
        let snapshot = snapshot_of(vec![worker(10, 100), worker(11, 300)]);
        let points = memlens_model::series::snapshot_points(&snapshot);
        let indexes: HashMap<Entity, ProcessNames> = [(10, 0), (11, 1)]
            .into_iter()
            .map(|(pid, index)| {
                (
                    Entity::Process {
                        pid,
                        start_time: pid as u64,
                    },
                    ProcessNames {
                        cgroup: Some("/system.slice/w.service".to_string()),
                        go_version: None,
                        index,
                    },
                )
            })
            .collect();
        let rss_lines = |series: &SeriesOptions| {
            let text = render(
                &entities(&snapshot, &points, &indexes, series),
                &AgentHealth::default(),
                &series.relabel,
            );
            text.lines()
                .filter(|l| l.starts_with("memlens_process_resident_memory_bytes{"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let base = "comm=\"worker\",cgroup=\"/system.slice/w.service\",service=\"w.service\"";
        assert_eq!(
            rss_lines(&SeriesOptions::default()),
            [
                format!("memlens_process_resident_memory_bytes{{{base}}} 100"),
                format!("memlens_process_resident_memory_bytes{{{base},instance_index=\"1\"}} 300"),
            ]
        );
        let with_pid = SeriesOptions {
            pid_label: true,
            ..SeriesOptions::default()
        };
        assert_eq!(
            rss_lines(&with_pid),
            [
                format!("memlens_process_resident_memory_bytes{{{base},pid=\"10\"}} 100"),
                format!(
                    "memlens_process_resident_memory_bytes{{{base},instance_index=\"1\",pid=\"11\"}} 300"
                ),
            ]
        );
        let top = SeriesOptions {
            processes: memlens_cardinality::Processes::Top,
            top_processes: 1,
            ..SeriesOptions::default()
        };
        assert_eq!(rss_lines(&top).len(), 1);
        assert!(rss_lines(&top)[0].ends_with(" 300"));
        // A rule renaming the family: the samples move under the new name.
        let renamed = SeriesOptions {
            relabel: Relabeler::compile(&[memlens_cardinality::RelabelConfig {
                source_labels: vec!["__name__".into()],
                separator: ";".into(),
                regex: "memlens_process_resident_memory_bytes".into(),
                target_label: Some("__name__".into()),
                replacement: "rss".into(),
                action: "replace".into(),
            }])
            .unwrap(),
            ..SeriesOptions::default()
        };
        let text = render(
            &entities(&snapshot, &points, &indexes, &renamed),
            &AgentHealth::default(),
            &renamed.relabel,
        );
        assert!(text.contains("# TYPE rss gauge\n"), "{text}");
        assert!(text.contains(&format!("rss{{{base}}} 100\n")), "{text}");
        assert!(!text.contains("memlens_process_resident_memory_bytes"));
    }

    #[test]
    fn go_series_carry_the_identity_without_go_version_and_are_scaled() {
        let mut e = process(9, 1.0, 0);
        e.labels.push(("go_version", "go1.27.3".to_string()));
        e.values = vec![("go_gc_pause_ns_total", 2e9), ("go_heap_inuse_bytes", 5.0)];
        let text = render(&[e], &AgentHealth::default(), &Relabeler::default());
        assert!(text.contains("memlens_go_gc_pause_seconds_total{pid=\"9\",comm="));
        assert!(text.contains("} 2\n"), "{text}");
        assert!(!text.contains("go_version"), "{text}");
        assert!(text.contains("# TYPE memlens_go_gc_pause_seconds_total counter\n"));
    }
}
