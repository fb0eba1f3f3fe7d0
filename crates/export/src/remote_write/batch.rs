//! One batch: the samples of whole frames after the watermark, read from the
//! history with a bounded query, and the `WriteRequest` they become (names
//! and labels as `/metrics` shows them, see `exporter/names.rs`).

use super::proto::{Label, Sample, TimeSeries, WriteRequest};
use crate::exporter::names::family_for;
use memlens_store::{Store, StoreError, Value};
use std::collections::{BTreeMap, HashMap};

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
    /// `host`, `process` or `cgroup`.
    pub kind: String,
    /// Labels as on `/metrics`: `pid`, `comm`, `cgroup`, `go_version` of a
    /// process; `cgroup` of a cgroup; none for the host. Empty values are left out.
    pub labels: Vec<(&'static str, String)>,
}

/// Every entity's labels, by `entities.id`.
pub fn entity_labels(store: &Store) -> Result<HashMap<i64, EntityLabels>, StoreError> {
    let mut out = HashMap::new();
    store.query_each(
        "SELECT id, kind, pid, comm, cgroup, go_version FROM entities",
        |_, row| {
            let text = |v: &Value| match v {
                Value::Text(s) if !s.is_empty() => Some(s.clone()),
                Value::Integer(i) => Some(i.to_string()),
                _ => None,
            };
            let (Value::Integer(id), Some(kind)) = (&row[0], text(&row[1])) else {
                return true;
            };
            let mut labels = Vec::new();
            match kind.as_str() {
                "process" => {
                    for (i, name) in [(2, "pid"), (3, "comm"), (4, "cgroup"), (5, "go_version")] {
                        if let Some(value) = text(&row[i]) {
                            labels.push((name, value));
                        }
                    }
                }
                "cgroup" => {
                    if let Some(path) = text(&row[4]) {
                        labels.push(("cgroup", path));
                    }
                }
                _ => {}
            }
            out.insert(*id, EntityLabels { kind, labels });
            true
        },
    )?;
    Ok(out)
}

/// The request of `rows`: one `TimeSeries` per (entity, metric), named and
/// scaled as `/metrics` does, with `extra` labels added, labels sorted by
/// name. Rows of entities missing from `entities` are skipped (counted in
/// the second value).
pub fn to_request(
    rows: &[Row],
    entities: &HashMap<i64, EntityLabels>,
    extra: &BTreeMap<String, String>,
) -> (WriteRequest, usize) {
    let mut index: HashMap<(i64, &str), usize> = HashMap::new();
    let mut scales: Vec<f64> = Vec::new();
    let mut timeseries: Vec<TimeSeries> = Vec::new();
    let mut unknown = 0;
    for row in rows {
        let Some(entity) = entities.get(&row.entity) else {
            unknown += 1;
            continue;
        };
        let i = *index
            .entry((row.entity, row.metric.as_str()))
            .or_insert_with(|| {
                let spec = family_for(&entity.kind, &row.metric);
                // Go runtime series carry only pid and comm, as on /metrics.
                let go = entity.kind == "process" && row.metric.starts_with("go_");
                let mut labels: Vec<Label> = vec![Label {
                    name: "__name__".to_string(),
                    value: spec.name,
                }];
                labels.extend(
                    entity
                        .labels
                        .iter()
                        .filter(|(name, _)| !go || matches!(*name, "pid" | "comm"))
                        .map(|(name, value)| Label {
                            name: name.to_string(),
                            value: value.clone(),
                        }),
                );
                labels.extend(extra.iter().map(|(name, value)| Label {
                    name: name.clone(),
                    value: value.clone(),
                }));
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                timeseries.push(TimeSeries {
                    labels,
                    samples: Vec::new(),
                });
                scales.push(spec.scale);
                timeseries.len() - 1
            });
        timeseries[i].samples.push(Sample {
            value: row.value * scales[i],
            timestamp: row.ts_ms,
        });
    }
    (WriteRequest { timeseries }, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            },
        );
        entities.insert(
            2,
            EntityLabels {
                kind: "host".into(),
                labels: vec![],
            },
        );
        let row = |ts_ms, entity, metric: &str, value| Row {
            ts_ms,
            entity,
            metric: metric.into(),
            value,
        };
        let rows = [
            row(1000, 1, "rss_bytes", 5.0),
            row(1000, 1, "go_gc_pause_ns_total", 2e9),
            row(1000, 2, "oom_kills", 1.0),
            row(1000, 3, "rss_bytes", 1.0),
            row(2000, 1, "rss_bytes", 6.0),
        ];
        let extra = BTreeMap::from([("host".to_string(), "h1".to_string())]);
        let (request, unknown) = to_request(&rows, &entities, &extra);
        assert_eq!(unknown, 1);
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
}
