//! The dashboard of `memlens grafana` as tests read it: its JSON, and each
//! panel query as Prometheus sees it once Grafana replaced the variables
//! (`$host`, `$process`, `$cgroup` by `.*`, `$__rate_interval` by `1m`).
#![allow(dead_code)]

use super::cli::memlens;
use serde_json::Value;

/// `memlens grafana`, parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&memlens(&["grafana"])).expect("memlens grafana prints JSON")
}

/// Every panel's queries, variables replaced.
pub fn panel_queries(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("expr")
                .replace("$__rate_interval", "1m")
                .replace("$host", ".*")
                .replace("$process", ".*")
                .replace("$cgroup", ".*")
        })
        .collect()
}
