//! One batch: the samples of whole frames after the watermark, read from the
//! history with a bounded query, and the `WriteRequest` they become (names
//! and labels as `/metrics` shows them, see `exporter/names.rs`).

use super::proto::{Label, Sample, TimeSeries, WriteRequest};
use crate::exporter::names::family_for;
use memlens_cardinality::select::{selected, Candidate};
use memlens_cardinality::{process_labels, ProcessIdentity, Processes, Relabeler, INDEX_LABEL};
use memlens_store::{Store, StoreError, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One stored sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// ms since the Unix epoch.
    pub ts_ms: i64,
    /// `entities.id`.
    pub entity: i64,
    /// The history metric name.
    pub metric: String,
    /// The stored value.
    pub value: f64,
}

/// Samples of whole frames, in time order.
#[derive(Debug, Default)]
pub struct Batch {
    /// The samples (NaN values, which read as NULL, are left out).
    pub rows: Vec<Row>,
    /// The last frame's instant: the watermark once the batch is delivered.
    pub last_ts_ms: Option<i64>,
    /// Whether the read stopped at the sample cap (more frames follow).
    pub capped: bool,
}

/// Reads the frames after `after_ms` up to `until_ms` (inclusive; no bound
/// when `None`), whole frames only, about `max_samples` at most (a single
/// frame larger than that comes alone, whole).
pub fn read(
    store: &Store,
    after_ms: i64,
    until_ms: Option<i64>,
    max_samples: usize,
) -> Result<Batch, StoreError> {
    let bound = until_ms.map_or(String::new(), |t| format!(" AND ts <= {t}"));
    let sql = format!(
        "SELECT ts, entity, metric, value FROM samples WHERE ts > {after_ms}{bound} \
         ORDER BY ts LIMIT {}",
        max_samples + 1
    );
    let mut rows = collect(store, &sql)?;
    let mut capped = false;
    if rows.len() > max_samples {
        capped = true;
        let cut_ts = rows[max_samples].ts_ms;
        if rows[0].ts_ms == cut_ts {
            // One frame over the cap: send it alone.
            rows = collect(
                store,
                &format!("SELECT ts, entity, metric, value FROM samples WHERE ts = {cut_ts}"),
            )?;
        } else {
            rows.retain(|r| r.ts_ms < cut_ts);
        }
    }
    let last_ts_ms = rows.last().map(|r| r.ts_ms);
    rows.retain(|r| !r.value.is_nan());
    Ok(Batch {
        rows,
        last_ts_ms,
        capped,
    })
}

fn collect(store: &Store, sql: &str) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::new();
    store.query_each(sql, |_, row| {
        let int = |v: &Value| match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        };
        let (Some(ts_ms), Some(entity)) = (int(&row[0]), int(&row[1])) else {
            return true;
        };
        let Value::Text(metric) = &row[2] else {
            return true;
        };
        let value = match &row[3] {
            Value::Real(v) => *v,
            Value::Integer(i) => *i as f64,
            // NaN (stored as is, read as NULL).
            _ => f64::NAN,
        };
        rows.push(Row {
            ts_ms,
            entity,
            metric: metric.clone(),
            value,
        });
        true
    })?;
    Ok(rows)
}

/// What the series of one entity are labelled with.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityLabels {
    /// `host`, `process`, `cgroup` or `mysql`.
    pub kind: String,
    /// Labels as on `/metrics`: a process's identity
    /// (`memlens_cardinality::process_labels`) and `go_version`; `cgroup`
    /// of a cgroup; a MySQL server's process identity and `endpoint`; none
    /// for the host. Empty values are left out.
    pub labels: Vec<(&'static str, String)>,
    /// A Go program (for `processes = "go"`).
    pub go: bool,
}

/// Every entity's labels, by `entities.id`, with `pid` when `pid_label`.
pub fn entity_labels(
    store: &Store,
    pid_label: bool,
) -> Result<HashMap<i64, EntityLabels>, StoreError> {
    let mut out = HashMap::new();
    store.query_each(
        "SELECT id, kind, pid, comm, cgroup, go_version, labels FROM entities",
        |_, row| {
            let text = |v: &Value| match v {
                Value::Text(s) if !s.is_empty() => Some(s.clone()),
                Value::Integer(i) => Some(i.to_string()),
                _ => None,
            };
            let (Value::Integer(id), Some(kind)) = (&row[0], text(&row[1])) else {
                return true;
            };
            // The other labels: a JSON object of strings (instance_index,
            // a MySQL server's endpoint, ...).
            let other: BTreeMap<String, String> = text(&row[6])
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default();
            let identity = || {
                let pid = match &row[2] {
                    Value::Integer(pid) => *pid as i32,
                    _ => 0,
                };
                let comm = text(&row[3]).unwrap_or_default();
                let cgroup = text(&row[4]);
                let index = other
                    .get(INDEX_LABEL)
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                process_labels(
                    &ProcessIdentity {
                        pid,
                        comm: &comm,
                        cgroup: cgroup.as_deref(),
                        index,
                    },
                    pid_label,
                )
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect::<Vec<_>>()
            };
            let go_version = text(&row[5]);
            let mut labels = Vec::new();
            match kind.as_str() {
                "process" => {
                    labels = identity();
                    if let Some(version) = &go_version {
                        labels.push(("go_version", version.clone()));
                    }
                }
                "mysql" => {
                    labels = identity();
                    if let Some(endpoint) = other.get("endpoint") {
                        labels.push(("endpoint", endpoint.clone()));
                    }
                }
                "cgroup" => {
                    if let Some(path) = text(&row[4]) {
                        labels.push(("cgroup", path));
                    }
                }
                _ => {}
            }
            out.insert(
                *id,
                EntityLabels {
                    kind,
                    labels,
                    go: go_version.is_some(),
                },
            );
            true
        },
    )?;
    Ok(out)
}

/// What goes out besides the rows: which processes, the relabel rules,
/// the labels added to every series.
pub struct Shaping<'a> {
    /// Which processes get series, and how many with `top`.
    pub processes: (Processes, usize),
    /// Applied to every series (after `extra` labels are added).
    pub relabel: &'a Relabeler,
    /// Added to every series.
    pub extra: &'a BTreeMap<String, String>,
}

/// What [`to_request`] made of a batch besides the request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shaped {
    /// Rows of entities missing from `entities`: skipped.
    pub unknown: usize,
    /// Rows of processes not selected or series dropped by relabelling:
    /// not sent, by the config's choice.
    pub filtered: usize,
}

/// The request of `rows`: one `TimeSeries` per (entity, metric), named and
/// scaled as `/metrics` does, of the processes `shaping` selects at each
/// instant (by the RSS of that instant for `top`), with its `extra` labels
/// added and its relabel rules applied, labels sorted by name.
pub fn to_request(
    rows: &[Row],
    entities: &HashMap<i64, EntityLabels>,
    shaping: &Shaping<'_>,
) -> (WriteRequest, Shaped) {
    let chosen = chosen_processes(rows, entities, shaping.processes);
    let mut index: HashMap<(i64, &str), Option<usize>> = HashMap::new();
    let mut scales: Vec<f64> = Vec::new();
    let mut timeseries: Vec<TimeSeries> = Vec::new();
    let mut shaped = Shaped::default();
    for row in rows {
        let Some(entity) = entities.get(&row.entity) else {
            shaped.unknown += 1;
            continue;
        };
        if entity.kind == "process" && !chosen.contains(&(row.ts_ms, row.entity)) {
            shaped.filtered += 1;
            continue;
        }
        let slot = *index
            .entry((row.entity, row.metric.as_str()))
            .or_insert_with(|| {
                let spec = family_for(&entity.kind, &row.metric);
                // Go runtime series carry the process's identity, not its
                // build's Go version, as on /metrics.
                let go = entity.kind == "process" && row.metric.starts_with("go_");
                let mut labels: Vec<(String, String)> = vec![("__name__".to_string(), spec.name)];
                labels.extend(
                    entity
                        .labels
                        .iter()
                        .filter(|(name, _)| !go || *name != "go_version")
                        .map(|(name, value)| (name.to_string(), value.clone())),
                );
                labels.extend(extra_pairs(shaping.extra));
                if !shaping.relabel.apply(&mut labels) {
                    return None;
                }
                let mut labels: Vec<Label> = labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect();
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                timeseries.push(TimeSeries {
                    labels,
                    samples: Vec::new(),
                });
                scales.push(spec.scale);
                Some(timeseries.len() - 1)
            });
        let Some(i) = slot else {
            shaped.filtered += 1;
            continue;
        };
        timeseries[i].samples.push(Sample {
            value: row.value * scales[i],
            timestamp: row.ts_ms,
        });
    }
    (WriteRequest { timeseries }, shaped)
}

fn extra_pairs(extra: &BTreeMap<String, String>) -> impl Iterator<Item = (String, String)> + '_ {
    extra.iter().map(|(n, v)| (n.clone(), v.clone()))
}

/// The (instant, process entity) pairs that get series.
fn chosen_processes(
    rows: &[Row],
    entities: &HashMap<i64, EntityLabels>,
    (mode, top): (Processes, usize),
) -> HashSet<(i64, i64)> {
    let mut by_ts: BTreeMap<i64, HashMap<i64, Candidate<i64>>> = BTreeMap::new();
    for row in rows {
        let Some(entity) = entities.get(&row.entity).filter(|e| e.kind == "process") else {
            continue;
        };
        let candidate = by_ts
            .entry(row.ts_ms)
            .or_default()
            .entry(row.entity)
            .or_insert_with(|| Candidate {
                key: row.entity,
                rss_bytes: None,
                go: entity.go,
            });
        if row.metric == "rss_bytes" {
            candidate.rss_bytes = Some(row.value);
        }
    }
    let mut out = HashSet::new();
    for (ts, candidates) in by_ts {
        let candidates: Vec<Candidate<i64>> = candidates.into_values().collect();
        for id in selected(mode, top, &candidates) {
            out.insert((ts, id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored row.
    fn row(ts_ms: i64, entity: i64, metric: &str, value: f64) -> Row {
        Row {
            ts_ms,
            entity,
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn series_are_named_and_labelled_as_on_metrics() {
        let mut entities = HashMap::new();
        entities.insert(
            1,
            EntityLabels {
                kind: "process".into(),
                labels: vec![
                    ("pid", "42".into()),
                    ("comm", "api".into()),
                    ("go_version", "go1.27.3".into()),
                ],
                go: true,
            },
        );
        entities.insert(
            2,
            EntityLabels {
                kind: "host".into(),
                labels: vec![],
                go: false,
            },
        );
        let rows = [
            row(1000, 1, "rss_bytes", 5.0),
            row(1000, 1, "go_gc_pause_ns_total", 2e9),
            row(1000, 2, "oom_kills", 1.0),
            row(1000, 3, "rss_bytes", 1.0),
            row(2000, 1, "rss_bytes", 6.0),
        ];
        let extra = BTreeMap::from([("host".to_string(), "h1".to_string())]);
        let all = Shaping {
            processes: (Processes::All, 0),
            relabel: &Relabeler::default(),
            extra: &extra,
        };
        let (request, shaped) = to_request(&rows, &entities, &all);
        assert_eq!(
            shaped,
            Shaped {
                unknown: 1,
                filtered: 0
            }
        );
        let names = |ts: &TimeSeries| -> Vec<String> {
            ts.labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect()
        };
        assert_eq!(request.timeseries.len(), 3);
        let rss = &request.timeseries[0];
        assert_eq!(
            names(rss),
            [
                "__name__=memlens_process_resident_memory_bytes",
                "comm=api",
                "go_version=go1.27.3",
                "host=h1",
                "pid=42"
            ]
        );
        assert_eq!(
            rss.samples,
            [
                Sample {
                    value: 5.0,
                    timestamp: 1000
                },
                Sample {
                    value: 6.0,
                    timestamp: 2000
                }
            ]
        );
        let gc = &request.timeseries[1];
        assert_eq!(
            names(gc),
            [
                "__name__=memlens_go_gc_pause_seconds_total",
                "comm=api",
                "host=h1",
                "pid=42"
            ]
        );
        assert_eq!(gc.samples[0].value, 2.0);
        assert_eq!(
            names(&request.timeseries[2]),
            ["__name__=memlens_host_oom_kills_total", "host=h1"]
        );
    }

    #[test]
    fn the_largest_process_of_each_instant_and_relabelled_series_go_out() {
        let process = |comm: &str| EntityLabels {
            kind: "process".into(),
            labels: vec![("comm", comm.into())],
            go: false,
        };
        let entities = HashMap::from([(1, process("a")), (2, process("b"))]);
        // b is larger at 1000, a at 2000.
        let rows = [
            row(1000, 1, "rss_bytes", 5.0),
            row(1000, 1, "threads", 3.0),
            row(1000, 2, "rss_bytes", 9.0),
            row(2000, 1, "rss_bytes", 9.0),
            row(2000, 2, "rss_bytes", 5.0),
        ];
        let relabel =
            memlens_cardinality::Relabeler::compile(&[memlens_cardinality::RelabelConfig {
                source_labels: vec!["__name__".into()],
                separator: ";".into(),
                regex: "memlens_process_threads".into(),
                target_label: None,
                replacement: "$1".into(),
                action: "drop".into(),
            }])
            .unwrap();
        let top = Shaping {
            processes: (Processes::Top, 1),
            relabel: &relabel,
            extra: &BTreeMap::new(),
        };
        let (request, shaped) = to_request(&rows, &entities, &top);
        // Not sent: a's two rows at 1000 (threads dropped by the rule in
        // any case), b's at 2000.
        assert_eq!(shaped.filtered, 3);
        let sent: Vec<(String, i64)> = request
            .timeseries
            .iter()
            .flat_map(|t| {
                let comm = t
                    .labels
                    .iter()
                    .find(|l| l.name == "comm")
                    .unwrap()
                    .value
                    .clone();
                t.samples.iter().map(move |s| (comm.clone(), s.timestamp))
            })
            .collect();
        assert_eq!(sent, [("b".to_string(), 1000), ("a".to_string(), 2000)]);
    }
}
