//! The JSON endpoints other than series: the history's range, the entities
//! ranked by risk, one entity at an instant, and findings over a range.
//! Every one answers as the history stood at `at` (default: its last
//! instant).

use crate::query::Query;
use crate::ApiError;
use memlens_store::{EntityId, EntityInfo, FindingRecord, Store, Value as SqlValue};
use serde_json::{json, Value};
use std::collections::HashMap;

/// How far before `at` the latest value of a series is looked for (an entity
/// with no sample in it is not alive at `at`), unless `window` says.
pub const DEFAULT_WINDOW_MS: i64 = 120_000;

/// The finding whose evidence carries the predicted kill.
const TIME_TO_OOM: &str = "memory.time_to_oom";

/// The first and last instant of the history (ms), if it has samples.
pub(crate) fn range(store: &Store) -> Result<Option<(i64, i64)>, ApiError> {
    let q = store.query(
        "SELECT (SELECT min(first_ts) FROM groups), (SELECT max(last_ts) FROM groups),
                (SELECT min(ts) FROM frames), (SELECT max(ts) FROM frames)",
    )?;
    let int = |i: usize| match q.rows.first().map(|r| &r[i]) {
        Some(SqlValue::Integer(v)) => Some(*v),
        _ => None,
    };
    let first = [int(0), int(2)].into_iter().flatten().min();
    let last = [int(1), int(3)].into_iter().flatten().max();
    Ok(first.zip(last))
}

/// `GET /api/v1/info`: the history's range.
pub(crate) fn info(store: &Store) -> Result<Value, ApiError> {
    let (first, last) = match range(store)? {
        Some((f, l)) => (json!(f), json!(l)),
        None => (Value::Null, Value::Null),
    };
    Ok(json!({ "first_ms": first, "last_ms": last, "api": 1 }))
}

/// `at` if given, else the history's last instant.
fn instant(store: &Store, query: &Query) -> Result<i64, ApiError> {
    match query.int("at")? {
        Some(at) => Ok(at),
        None => Ok(range(store)?.map_or(0, |r| r.1)),
    }
}

fn window(query: &Query) -> Result<i64, ApiError> {
    let w = query.int("window")?.unwrap_or(DEFAULT_WINDOW_MS);
    if w <= 0 {
        return Err(ApiError::BadRequest(format!("window={w}: expected > 0 ms")));
    }
    Ok(w)
}

fn number(v: &SqlValue) -> Option<f64> {
    match v {
        SqlValue::Real(v) => Some(*v),
        SqlValue::Integer(v) => Some(*v as f64),
        _ => None,
    }
}

/// The latest value of `metric` of each entity with a sample in
/// `[at - window, at]`.
fn latest_by_entity(
    store: &Store,
    metric: &str,
    at: i64,
    window: i64,
) -> Result<HashMap<EntityId, (i64, f64)>, ApiError> {
    // `metric` is one of ours (a constant), never a request's text.
    let sql = format!(
        "SELECT entity, ts, value FROM samples WHERE metric = '{metric}' AND ts >= {} AND ts <= {at}",
        at - window
    );
    let mut out: HashMap<EntityId, (i64, f64)> = HashMap::new();
    store.query_each(&sql, |_, row| {
        if let (SqlValue::Integer(e), SqlValue::Integer(t), Some(v)) =
            (&row[0], &row[1], number(&row[2]))
        {
            let slot = out.entry(*e).or_insert((*t, v));
            if *t >= slot.0 {
                *slot = (*t, v);
            }
        }
        true
    })?;
    Ok(out)
}

/// The findings that fired by `at` and had not cleared by `from`
/// (a clear after `at` is not known yet: such a finding is active).
fn findings_between(store: &Store, from: i64, at: i64) -> Result<Vec<FindingRecord>, ApiError> {
    let mut all = store.findings(i64::MIN, at)?;
    all.retain(|f| f.cleared_ms.is_none_or(|c| c >= from));
    for f in &mut all {
        if f.cleared_ms.is_some_and(|c| c > at) {
            f.cleared_ms = None;
        }
    }
    Ok(all)
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 3,
        "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

fn evidence(f: &FindingRecord, name: &str) -> Option<f64> {
    let parsed: Value = serde_json::from_str(&f.evidence_json).ok()?;
    parsed
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_f64())
}

/// The instant a time-to-OOM finding predicts the kill, with its range.
fn predicted_kill(f: &FindingRecord) -> Option<Value> {
    let left = evidence(f, "time_left_seconds")?;
    let at = |s: f64| json!(f.fired_ms + (s * 1000.0) as i64);
    Some(json!({
        "kill_ms": at(left),
        "earliest_ms": evidence(f, "time_left_earliest_seconds").map(at),
        "latest_ms": evidence(f, "time_left_latest_seconds").filter(|s| s.is_finite()).map(at),
    }))
}

fn finding_json(f: &FindingRecord) -> Value {
    let evidence: Value = serde_json::from_str(&f.evidence_json).unwrap_or(Value::Null);
    let mut v = json!({
        "row": f.row,
        "id": f.id,
        "severity": f.severity,
        "target": f.target,
        "entity": f.entity,
        "fired_ms": f.fired_ms,
        "cleared_ms": f.cleared_ms,
        "active": f.cleared_ms.is_none(),
        "evidence": evidence,
        "recommendation": f.recommendation,
    });
    if f.id == TIME_TO_OOM {
        v["forecast"] = predicted_kill(f).unwrap_or(Value::Null);
    }
    v
}

fn entity_json(e: &EntityInfo) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind,
        "key": e.key,
        "pid": e.pid,
        "comm": e.comm,
        "cmdline": e.cmdline,
        "cgroup": e.cgroup,
        "go_version": e.go_version,
        "first_ms": e.first_ts_ms,
    })
}

/// What an entity's memory is measured against: its cgroup's limit, else
/// the host's memory.
struct KillPoints {
    cgroup_limit: HashMap<String, f64>,
    host_total: Option<f64>,
}

impl KillPoints {
    fn of(&self, e: &EntityInfo) -> Option<f64> {
        let cgroup = match e.kind.as_str() {
            "host" => None,
            _ => e.cgroup.as_deref(),
        };
        cgroup
            .and_then(|c| self.cgroup_limit.get(c).copied())
            .filter(|l| l.is_finite() && *l > 0.0)
            .or(self.host_total)
    }
}

/// `GET /api/v1/entities?at=MS[&window=MS][&limit=N]`: the processes,
/// cgroups and the host alive at `at`, riskiest first.
pub(crate) fn entities(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let at = instant(store, query)?;
    let window = window(query)?;
    let limit = query.int("limit")?.unwrap_or(500).max(1) as usize;
    let infos = store.entities()?;
    let by_id: HashMap<EntityId, &EntityInfo> = infos.iter().map(|e| (e.id, e)).collect();
    let rss = latest_by_entity(store, "rss_bytes", at, window)?;
    let usage = latest_by_entity(store, "usage_bytes", at, window)?;
    let inactive = latest_by_entity(store, "inactive_file_bytes", at, window)?;
    let limits = latest_by_entity(store, "effective_limit_bytes", at, window)?;
    let heap = latest_by_entity(store, "go_heap_inuse_bytes", at, window)?;
    let total = latest_by_entity(store, "mem_total_bytes", at, window)?;
    let available = latest_by_entity(store, "mem_available_bytes", at, window)?;
    let kill_points = KillPoints {
        cgroup_limit: limits
            .iter()
            .filter_map(|(id, (_, v))| Some((by_id.get(id)?.cgroup.clone()?, *v)))
            .collect(),
        host_total: total.values().next().map(|v| v.1),
    };
    let findings = findings_between(store, at, at)?;
    let mut rows = Vec::new();
    for e in &infos {
        let used = match e.kind.as_str() {
            "process" => rss.get(&e.id).map(|v| v.1),
            "cgroup" => usage
                .get(&e.id)
                .map(|u| u.1 - inactive.get(&e.id).map_or(0.0, |i| i.1).min(u.1)),
            _ => total
                .get(&e.id)
                .zip(available.get(&e.id))
                .map(|(t, a)| t.1 - a.1),
        };
        let Some(used) = used else { continue };
        let kill = kill_points.of(e);
        let mine: Vec<&FindingRecord> = findings
            .iter()
            .filter(|f| f.entity == Some(e.id) || f.target == e.key)
            .collect();
        let worst = mine
            .iter()
            .map(|f| severity_rank(&f.severity))
            .max()
            .unwrap_or(0);
        let ratio = kill.map(|k| used / k);
        let forecast = mine
            .iter()
            .filter(|f| f.id == TIME_TO_OOM)
            .filter_map(|f| predicted_kill(f))
            .next();
        let mut row = entity_json(e);
        row["used_bytes"] = json!(used);
        row["kill_point_bytes"] = json!(kill);
        row["used_ratio"] = json!(ratio);
        row["go_heap_inuse_bytes"] = json!(heap.get(&e.id).map(|v| v.1));
        row["findings"] = mine
            .iter()
            .map(|f| json!({ "id": f.id, "severity": f.severity, "fired_ms": f.fired_ms }))
            .collect();
        row["forecast"] = forecast.unwrap_or(Value::Null);
        row["risk"] = json!(f64::from(worst) * 10.0 + ratio.unwrap_or(0.0).min(9.99));
        rows.push(row);
    }
    rows.sort_by(|a, b| {
        let r = |v: &Value| v["risk"].as_f64().unwrap_or(0.0);
        r(b).total_cmp(&r(a))
            .then(a["id"].as_i64().cmp(&b["id"].as_i64()))
    });
    rows.truncate(limit);
    Ok(json!({ "at": at, "window_ms": window, "entities": rows }))
}

/// `GET /api/v1/entity?id=ID&at=MS[&window=MS]`: one entity, the latest
/// value of each of its metrics at `at`, and for a process its cgroup's.
pub(crate) fn entity(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let id = query.required_int("id")?;
    let at = instant(store, query)?;
    let window = window(query)?;
    let infos = store.entities()?;
    let Some(e) = infos.iter().find(|e| e.id == id) else {
        return Err(ApiError::NotFound(format!(
            "no entity {id} in this history"
        )));
    };
    let latest = |entity: EntityId| -> Result<Value, ApiError> {
        let sql = format!(
            "SELECT metric, ts, value FROM samples WHERE entity = {entity} AND ts >= {} AND ts <= {at}",
            at - window
        );
        let mut values: HashMap<String, (i64, f64)> = HashMap::new();
        store.query_each(&sql, |_, row| {
            if let (SqlValue::Text(m), SqlValue::Integer(t), Some(v)) =
                (&row[0], &row[1], number(&row[2]))
            {
                let slot = values.entry(m.clone()).or_insert((*t, v));
                if *t >= slot.0 {
                    *slot = (*t, v);
                }
            }
            true
        })?;
        let mut sorted: Vec<_> = values.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(sorted
            .into_iter()
            .map(|(m, (t, v))| (m, json!({ "ts": t, "value": v })))
            .collect::<serde_json::Map<_, _>>()
            .into())
    };
    let mut out = entity_json(e);
    out["at"] = json!(at);
    out["values"] = latest(e.id)?;
    let cgroup = infos
        .iter()
        .find(|c| c.kind == "cgroup" && e.kind == "process" && c.cgroup == e.cgroup);
    out["cgroup_entity"] = json!(cgroup.map(|c| c.id));
    out["cgroup_values"] = match cgroup {
        Some(c) => latest(c.id)?,
        None => Value::Null,
    };
    out["host_entity"] = json!(infos.iter().find(|h| h.kind == "host").map(|h| h.id));
    Ok(out)
}

/// `GET /api/v1/findings?from=MS&to=MS[&at=MS][&entity=ID]`: the findings
/// active at some instant of `[from, min(to, at)]`, oldest first; with
/// `entity`, those of the entity and (for a process) of its cgroup.
pub(crate) fn findings(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let to = query.required_int("to")?;
    let from = query.int("from")?.unwrap_or(i64::MIN);
    let at = query.int("at")?.map_or(to, |at| at.min(to));
    let mut all = findings_between(store, from, at)?;
    if let Some(id) = query.int("entity")? {
        let infos = store.entities()?;
        let Some(e) = infos.iter().find(|e| e.id == id) else {
            return Err(ApiError::NotFound(format!(
                "no entity {id} in this history"
            )));
        };
        let cgroup_key = e
            .cgroup
            .as_ref()
            .filter(|_| e.kind == "process")
            .map(|c| format!("cgroup:{c}"));
        all.retain(|f| {
            f.entity == Some(id) || f.target == e.key || Some(&f.target) == cgroup_key.as_ref()
        });
    }
    Ok(json!({
        "from": from.max(0),
        "at": at,
        "findings": all.iter().map(finding_json).collect::<Vec<_>>(),
    }))
}
