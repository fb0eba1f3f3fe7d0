//! A Grafana dashboard over memlens's `/metrics` names, in Grafana's
//! classic dashboard JSON model ([`SCHEMA_VERSION`]): a Prometheus
//! datasource variable and `host` (instance), `process` (comm) and
//! `cgroup` variables; per process RSS, Go heap in use, heap goal and
//! GOMEMLIMIT; per cgroup working set and limit; the time-to-OOM forecast
//! with its range; goroutines; GC; page faults; FDs; host PSI and
//! MemAvailable; the active findings. Every key is one of the model's,
//! with the model's defaults written out, so the JSON round-trips unchanged
//! through Grafana's own model (the `grafana-foundation-sdk`, checked by
//! crates/memlens/tests/alert_rules.rs): a misspelled key would be dropped.

use serde_json::{json, Value};

/// The dashboard JSON model's schema version written.
pub const SCHEMA_VERSION: u32 = 39;

const PROCESS: &str = "instance=~\"$host\",comm=~\"$process\"";
const CGROUP: &str = "instance=~\"$host\",cgroup=~\"$cgroup\"";
const HOST: &str = "instance=~\"$host\"";

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "query": {"query": query, "refId": format!("{name}-variable")},
        "refresh": 2,
        "multi": true,
        "includeAll": true,
        "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "skipUrlSync": false,
        "allowCustomValue": true,
        "auto": false,
        "auto_count": 30,
        "auto_min": "10s",
    })
}

/// One query of a panel: (PromQL, legend).
type Query<'a> = (String, &'a str);

fn panel(
    id: u32,
    title: &str,
    unit: &str,
    kind: &str,
    queries: Vec<Query>,
    pos: (u32, u32, u32),
) -> Value {
    let targets: Vec<Value> = queries
        .into_iter()
        .enumerate()
        .map(|(i, (expr, legend))| {
            let mut target = json!({
                "refId": ((b'A' + i as u8) as char).to_string(),
                "datasource": datasource(),
                "expr": expr,
                "legendFormat": legend,
            });
            if kind == "table" {
                target["instant"] = json!(true);
                target["format"] = json!("table");
            }
            target
        })
        .collect();
    let (x, y, w) = pos;
    json!({
        "id": id,
        "type": kind,
        "title": title,
        "datasource": datasource(),
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "transparent": false,
        "repeatDirection": "h",
    })
}

/// The panels, left to right, top to bottom.
fn panels() -> Vec<Value> {
    let q = |expr: String, legend: &'static str| -> Query<'static> { (expr, legend) };
    let rate = |name: &str, sel: &str| format!("rate({name}{{{sel}}}[$__rate_interval])");
    let defs: Vec<(&str, &str, &str, Vec<Query>)> = vec![
        (
            "Process memory: RSS, Go heap in use, heap goal, GOMEMLIMIT",
            "bytes",
            "timeseries",
            vec![
                q(format!("memlens_process_resident_memory_bytes{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}} RSS"),
                q(format!("memlens_go_heap_inuse_bytes{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}} heap in use"),
                q(format!("memlens_go_next_gc_bytes{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}} heap goal"),
                q(format!("memlens_go_gomemlimit_bytes{{{PROCESS}}} < 9e18"), "{{comm}} {{service}} {{instance_index}} GOMEMLIMIT"),
            ],
        ),
        (
            "Cgroup working set and limit",
            "bytes",
            "timeseries",
            vec![
                q(
                    format!("memlens_cgroup_memory_usage_bytes{{{CGROUP}}} - memlens_cgroup_memory_inactive_file_bytes{{{CGROUP}}}"),
                    "{{cgroup}} working set",
                ),
                q(format!("memlens_cgroup_memory_effective_limit_bytes{{{CGROUP}}}"), "{{cgroup}} limit"),
            ],
        ),
        (
            "Time to OOM: forecast and its range",
            "s",
            "timeseries",
            vec![
                q(format!("memlens_time_to_oom_seconds{{{HOST}}}"), "{{target}} forecast"),
                q(format!("memlens_time_to_oom_earliest_seconds{{{HOST}}}"), "{{target}} earliest"),
                q(format!("memlens_time_to_oom_latest_seconds{{{HOST}}}"), "{{target}} latest"),
            ],
        ),
        (
            "Goroutines",
            "short",
            "timeseries",
            vec![q(format!("memlens_go_goroutines{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}}")],
        ),
        (
            "GC: cycles a minute and CPU fraction since start",
            "short",
            "timeseries",
            vec![
                q(format!("60 * {}", rate("memlens_go_gc_cycles_total", PROCESS)), "{{comm}} {{service}} {{instance_index}} cycles/min"),
                q(format!("memlens_go_gc_cpu_fraction{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}} GC CPU fraction"),
            ],
        ),
        (
            "Page faults a second",
            "short",
            "timeseries",
            vec![
                q(rate("memlens_process_minor_faults_total", PROCESS), "{{comm}} {{service}} {{instance_index}} minor"),
                q(rate("memlens_process_major_faults_total", PROCESS), "{{comm}} {{service}} {{instance_index}} major"),
            ],
        ),
        (
            "Open file descriptors and their limit",
            "short",
            "timeseries",
            vec![
                q(format!("memlens_process_open_fds{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}} open"),
                q(format!("memlens_process_max_fds{{{PROCESS}}}"), "{{comm}} {{service}} {{instance_index}} limit"),
            ],
        ),
        (
            "Host: memory stall (PSI) and MemAvailable",
            "percentunit",
            "timeseries",
            vec![
                q(rate("memlens_host_memory_pressure_some_seconds_total", HOST), "{{instance}} some"),
                q(rate("memlens_host_memory_pressure_full_seconds_total", HOST), "{{instance}} full"),
                q(
                    format!("memlens_host_memory_available_bytes{{{HOST}}} / memlens_host_memory_total_bytes{{{HOST}}}"),
                    "{{instance}} available",
                ),
            ],
        ),
        (
            "Active findings",
            "short",
            "table",
            vec![q(format!("memlens_finding_active{{{HOST}}} == 1"), "{{finding}} {{target}}")],
        ),
    ];
    defs.into_iter()
        .enumerate()
        .map(|(i, (title, unit, kind, queries))| {
            let i = i as u32;
            let pos = if kind == "table" {
                (0, (i / 2) * 8, 24)
            } else {
                ((i % 2) * 12, (i / 2) * 8, 12)
            };
            panel(i + 1, title, unit, kind, queries, pos)
        })
        .collect()
}

/// The dashboard's JSON.
pub fn dashboard() -> Value {
    json!({
        "uid": "memlens",
        "title": "memlens: memory of Go services",
        "tags": ["memlens"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": true,
        "timezone": "browser",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "annotations": {"list": []},
        "templating": {"list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {"text": "", "value": ""},
                "multi": false,
                "includeAll": false,
                "skipUrlSync": false,
                "allowCustomValue": true,
                "auto": false,
                "auto_count": 30,
                "auto_min": "10s",
            },
            variable("host", "Host", "label_values(memlens_agent_last_cycle_timestamp_seconds, instance)"),
            variable(
                "process",
                "Process",
                "label_values(memlens_process_resident_memory_bytes{instance=~\"$host\"}, comm)",
            ),
            variable(
                "cgroup",
                "Cgroup",
                "label_values(memlens_cgroup_memory_usage_bytes{instance=~\"$host\"}, cgroup)",
            ),
        ]},
        "panels": panels(),
    })
}

/// Every panel query of a dashboard (its `targets[].expr`), for checks.
pub fn queries(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_has_a_query_and_a_unique_id() {
        let d = dashboard();
        let panels = d["panels"].as_array().unwrap();
        let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        ids.dedup();
        assert_eq!(ids.len(), panels.len());
        for p in panels {
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{}",
                p["title"]
            );
        }
        assert_eq!(queries(&d).len(), 20);
    }
}
