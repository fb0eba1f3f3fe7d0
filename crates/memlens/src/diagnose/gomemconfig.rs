//! The GOMEMLIMIT / GOGC section: for each selected Go process in a
//! memory-limited cgroup, its settings against the limit and the
//! recommended GOMEMLIMIT — the checks of `memlens advise`
//! (memlens_analyze::gomemconfig), run on the window's two ends.

use super::{sort_worst_first, Context, Section};
use crate::advise::observe::{Observation, Sample};
use crate::advise::{self};
use crate::show::human_bytes;
use memlens_analyze::gomemconfig::format_gomemlimit;
use memlens_analyze::Finding;

/// Builds the `gomemlimit` section.
pub fn section(context: &Context) -> Section {
    let mut findings: Vec<Finding> = Vec::new();
    let mut rows = Vec::new();
    let mut text = Vec::new();
    for g in context.go {
        let Some(p) = context.at_end(g.pid, g.start_time) else {
            continue;
        };
        let Some(cgroup) = &p.cgroup else {
            continue;
        };
        let Some(limit_bytes) = cgroup.effective_limit_bytes.and_then(|l| l.bytes()) else {
            continue;
        };
        let first = context.at_start(p);
        let sample = |proc: Option<&memlens_model::ProcessSample>,
                      read: Option<&super::window::GoRead>| Sample {
            rss_bytes: proc.and_then(|p| p.rss_bytes),
            usage_bytes: proc
                .and_then(|p| p.cgroup.as_ref())
                .and_then(|c| c.usage_bytes),
            runtime: read.map(|r| r.runtime).unwrap_or_default(),
        };
        let go = p.go.as_ref();
        let obs = Observation {
            comm: p.comm.clone(),
            start_time: p.start_time,
            go_version: go.map(|g| g.version.clone()),
            env_gomemlimit: go.and_then(|g| g.gomemlimit.clone()),
            env_gogc: go.and_then(|g| g.gogc.clone()),
            cgroup_path: Some(cgroup.path.clone()),
            cgroup_limit_bytes: Some(limit_bytes),
            cgroup_high_bytes: cgroup.high_bytes.and_then(|l| l.bytes()),
            hwm_bytes: None,
            runtime_sources: g.sources.clone(),
            samples: vec![
                sample(first, g.start.as_ref()),
                sample(Some(p), g.end.as_ref()),
            ],
            notes: g.notes.clone(),
        };
        let advice = match advise::advise(g.pid, context.window_seconds_of(p), obs) {
            Ok(a) => a,
            Err(e) => {
                text.push(format!("  {:>8}  {}: {e:#}", g.pid, p.comm));
                continue;
            }
        };
        let inputs = &advice.inputs;
        let in_force = inputs
            .gomemlimit
            .bytes
            .map_or("none".to_string(), human_bytes);
        let recommended = advice.recommendation.gomemlimit_bytes;
        text.push(format!(
            "  {:>8}  {:<16} cgroup {} limit {}: GOMEMLIMIT {} ({}), recommended GOMEMLIMIT={}{}",
            g.pid,
            p.comm.chars().take(16).collect::<String>(),
            cgroup.path,
            human_bytes(limit_bytes),
            in_force,
            inputs.gomemlimit.source.as_str(),
            format_gomemlimit(recommended),
            advice
                .setting_error
                .as_ref()
                .map_or(String::new(), |e| format!(" ({e})")),
        ));
        for f in &advice.findings {
            text.push(format!(
                "    {} {}: {}",
                f.severity.as_str(),
                f.id,
                f.recommendation
            ));
        }
        rows.push(serde_json::json!({
            "pid": g.pid,
            "comm": p.comm,
            "cgroup_path": cgroup.path,
            "cgroup_limit_bytes": limit_bytes,
            "gomemlimit_bytes": inputs.gomemlimit.bytes,
            "gomemlimit_source": inputs.gomemlimit.source.as_str(),
            "gogc_percent": inputs.gogc.percent,
            "recommended_gomemlimit_bytes": recommended,
            "setting_error": advice.setting_error,
            "findings": advice.findings.iter().map(|f| f.id).collect::<Vec<_>>(),
        }));
        findings.extend(advice.findings);
    }
    sort_worst_first(&mut findings, |f| f, "cgroup_limit_bytes");
    let mut lines = vec![format!(
        "{} Go processes in a memory-limited cgroup (memlens advise --pid N for the snippets)",
        rows.len()
    )];
    lines.extend(text);
    Section {
        name: "gomemlimit",
        title: "GOMEMLIMIT / GOGC against the cgroup limit".to_string(),
        findings,
        text: lines,
        data: serde_json::json!({ "processes": rows }),
    }
}
