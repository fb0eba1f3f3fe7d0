//! The contention section: with a window from the agent's history, the
//! stored series of the lookback (cgroups, the host, MySQL servers and the
//! processes) go through the same engine `memlens watch` runs live
//! (memlens_analyze's `memory.contention`), instant by instant; the
//! contention findings that fired in the lookback and that concern a
//! selected process's cgroup (as victim or as aggressor) are reported, the
//! latest evidence of each. Without history there is nothing to rank: the
//! section says so.

use super::{Context, Section};
use anyhow::Context as _;
use memlens_analyze::finding::CONTENTION;
use memlens_analyze::{metric_name, Config, Engine, Finding};
use memlens_model::series::{Entity, Point};
use memlens_store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Builds the `contention` section.
pub fn section(context: &Context) -> anyhow::Result<Section> {
    let Some(history) = &context.history else {
        return Ok(Section {
            name: "contention",
            title: "Contention".to_string(),
            findings: Vec::new(),
            text: vec![
                "  needs the agent's history (memlens watch --data, then diagnose --data): not ranked"
                    .to_string(),
            ],
            data: serde_json::json!({ "ranked": false, "findings": [] }),
        });
    };
    let end_ms = context.snapshot.taken_at_unix_ms as i64;
    let from_ms = end_ms - (history.lookback_seconds * 1000.0) as i64;
    let store = Store::open_read_only(&history.dir)
        .with_context(|| format!("cannot read the history in {}", history.dir.display()))?;
    let findings = replay(&store, from_ms, end_ms)?;
    let cgroups: HashSet<&str> = context
        .selected_processes()
        .filter_map(|p| p.cgroup.as_ref().map(|c| c.path.as_str()))
        .collect();
    let findings: Vec<Finding> = findings
        .into_iter()
        .filter(|f| match &f.target {
            Entity::Cgroup { path } => {
                cgroups.contains(path.as_str())
                    || cgroups
                        .iter()
                        .any(|c| f.recommendation.contains(&format!("aggressor {c} ")))
            }
            _ => false,
        })
        .collect();
    let mut text = vec![format!(
        "  {} contention finding(s) over the last {:.0} s of history",
        findings.len(),
        history.lookback_seconds
    )];
    for f in &findings {
        text.push(format!("  {}: {}", f.target.key(), f.recommendation));
    }
    let rows: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "victim": f.target.key(),
                "fired_at_ms": f.fired_at_ms,
                "evidence": crate::show::findings::evidence_json(&f.evidence),
                "recommendation": f.recommendation,
            })
        })
        .collect();
    Ok(Section {
        name: "contention",
        title: "Contention".to_string(),
        findings,
        text,
        data: serde_json::json!({ "ranked": true, "findings": rows }),
    })
}

/// The contention findings the engine fired over the stored instants in
/// `[from_ms, to_ms]`, each with its latest evidence (cleared or not).
fn replay(store: &Store, from_ms: i64, to_ms: i64) -> anyhow::Result<Vec<Finding>> {
    let mut engine = Engine::new(Config::default());
    let mut instants: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
    for info in store.entities()? {
        let Some(entity) = Entity::from_key(&info.key) else {
            continue;
        };
        if let (Entity::Process { .. }, Some(cgroup)) = (&entity, &info.cgroup) {
            engine.set_process_cgroup(&entity, cgroup);
        }
        for (name, series) in store.metrics(info.id)? {
            let Some(metric) = metric_name(&name) else {
                continue;
            };
            for (ts, value) in store.series_by_id(series, from_ms, to_ms)? {
                instants.entry(ts).or_default().push(Point {
                    entity: entity.clone(),
                    metric,
                    value,
                });
            }
        }
    }
    let mut found: HashMap<(Entity, i64), Finding> = HashMap::new();
    for (ts, points) in &instants {
        for f in engine.observe(*ts, points) {
            if f.id == CONTENTION {
                found.insert((f.target.clone(), f.fired_at_ms), f);
            }
        }
    }
    // Active ones with their current evidence.
    for f in engine.active() {
        if f.id == CONTENTION {
            found.insert((f.target.clone(), f.fired_at_ms), f);
        }
    }
    let mut out: Vec<Finding> = found.into_values().collect();
    out.sort_by_key(|f| f.fired_at_ms);
    Ok(out)
}
