//! `memlens replay --data DIR [--json]`: runs the detectors
//! (memlens-analyze) over a recorded history, instant by instant in time
//! order, exactly as the live agent would have, and prints when each finding
//! fired and cleared with its severity and evidence at that moment — so
//! detector quality can be measured offline.

use crate::timearg::format_utc;
use crate::watch::default_data_dir;
use anyhow::Context;
use memlens_analyze::{metric_name, Config, Engine, Evidence, Finding};
use memlens_model::series::{Entity, Point};
use memlens_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

/// Options of `memlens replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The history's directory (as given to `memlens watch --data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// An array of findings, each with fired/cleared times in ms and UTC.
    #[arg(long)]
    pub json: bool,
}

/// One finding from firing to clearing, as replayed.
struct Replayed {
    fired: Finding,
    cleared: Option<Finding>,
}

/// Runs `memlens replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open_read_only(&dir)
        .with_context(|| format!("cannot read the history in {}", dir.display()))?;
    let mut engine = Engine::new(Config::default());
    let mut names: HashMap<Entity, String> = HashMap::new();
    let mut instants: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
    for info in store.entities()? {
        let Some(entity) = Entity::from_key(&info.key) else {
            continue;
        };
        if let (Entity::Process { .. }, Some(cgroup)) = (&entity, &info.cgroup) {
            engine.set_process_cgroup(&entity, cgroup);
        }
        if let Some(comm) = &info.comm {
            names.insert(entity.clone(), comm.clone());
        }
        for (name, series) in store.metrics(info.id)? {
            let Some(metric) = metric_name(&name) else {
                continue;
            };
            for (ts, value) in store.series_by_id(series, i64::MIN, i64::MAX)? {
                instants.entry(ts).or_default().push(Point {
                    entity: entity.clone(),
                    metric,
                    value,
                });
            }
        }
    }
    let first_ms = instants.keys().next().copied();
    let last_ms = instants.keys().next_back().copied();
    let mut replayed: Vec<Replayed> = Vec::new();
    let mut open: HashMap<(&'static str, Entity, i64), usize> = HashMap::new();
    for (ts, points) in &instants {
        for finding in engine.observe(*ts, points) {
            let key = (finding.id, finding.target.clone(), finding.fired_at_ms);
            match finding.cleared_at_ms {
                None => {
                    open.insert(key, replayed.len());
                    replayed.push(Replayed {
                        fired: finding,
                        cleared: None,
                    });
                }
                Some(_) => match open.remove(&key) {
                    Some(i) => replayed[i].cleared = Some(finding),
                    None => replayed.push(Replayed {
                        fired: finding.clone(),
                        cleared: Some(finding),
                    }),
                },
            }
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let array: Vec<serde_json::Value> =
            replayed.iter().map(|r| json_finding(r, &names)).collect();
        serde_json::to_writer_pretty(&mut out, &array)?;
        writeln!(out)?;
    } else {
        write_text(
            &mut out,
            &replayed,
            &names,
            instants.len(),
            first_ms,
            last_ms,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn iso_utc(ms: i64) -> String {
    format!(
        "{}.{:03}Z",
        format_utc(ms).replace(' ', "T"),
        ms.rem_euclid(1000)
    )
}

fn target_text(target: &Entity, names: &HashMap<Entity, String>) -> String {
    let name = names
        .get(target)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    match target {
        Entity::Process { pid, start_time } => format!("process {pid}:{start_time}{name}"),
        Entity::Cgroup { path } => format!("cgroup {path}"),
        Entity::Host => "host".to_string(),
    }
}

fn evidence_text(e: &Evidence) -> String {
    let value = match e.unit {
        "bytes" => format!("{:.1} MiB", e.value / 1048576.0),
        "bytes/s" => format!("{:.2} MiB/min", e.value * 60.0 / 1048576.0),
        "seconds" => format!("{:.0} s", e.value),
        "ms" => format!("{} UTC", format_utc(e.value as i64)),
        "ratio" => format!("{:.2}", e.value),
        unit => format!("{:.1} {unit}", e.value),
    };
    format!("{}={value} [{}]", e.name, e.layer.as_str())
}

fn write_text(
    out: &mut impl Write,
    replayed: &[Replayed],
    names: &HashMap<Entity, String>,
    instants: usize,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
) -> std::io::Result<()> {
    let (Some(first), Some(last)) = (first_ms, last_ms) else {
        return writeln!(out, "no samples in this history");
    };
    writeln!(
        out,
        "replayed {instants} instants from {} to {} UTC",
        format_utc(first),
        format_utc(last)
    )?;
    // One line per event, in time order.
    let mut events: Vec<(i64, bool, &Finding)> = Vec::new();
    for r in replayed {
        events.push((r.fired.fired_at_ms, true, &r.fired));
        if let Some(c) = &r.cleared {
            events.push((c.cleared_at_ms.unwrap_or(last), false, c));
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    for (ts, fired, f) in &events {
        let evidence: Vec<String> = f.evidence.iter().map(evidence_text).collect();
        writeln!(
            out,
            "{} UTC  {:<7}  {:<8}  {:<21}  {}\n    {}",
            format_utc(*ts),
            if *fired { "FIRED" } else { "CLEARED" },
            f.severity.as_str(),
            f.id,
            target_text(&f.target, names),
            evidence.join("  ")
        )?;
        if *fired {
            writeln!(out, "    → {}", f.recommendation)?;
        }
    }
    let active = replayed.iter().filter(|r| r.cleared.is_none()).count();
    writeln!(
        out,
        "{} findings, {active} still active at the end",
        replayed.len()
    )
}

fn json_evidence(evidence: &[Evidence]) -> serde_json::Value {
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

fn json_finding(r: &Replayed, names: &HashMap<Entity, String>) -> serde_json::Value {
    let f = &r.fired;
    let mut target = serde_json::json!({ "kind": f.target.kind(), "key": f.target.key() });
    match &f.target {
        Entity::Process { pid, start_time } => {
            target["pid"] = (*pid).into();
            target["start_time"] = (*start_time).into();
            if let Some(comm) = names.get(&f.target) {
                target["comm"] = comm.as_str().into();
            }
        }
        Entity::Cgroup { path } => target["path"] = path.as_str().into(),
        Entity::Host => {}
    }
    let cleared_ms = r.cleared.as_ref().and_then(|c| c.cleared_at_ms);
    serde_json::json!({
        "id": f.id,
        "severity": f.severity.as_str(),
        "target": target,
        "fired_at_ms": f.fired_at_ms,
        "fired_at": iso_utc(f.fired_at_ms),
        "cleared_at_ms": cleared_ms,
        "cleared_at": cleared_ms.map(iso_utc),
        "evidence": json_evidence(&f.evidence),
        "evidence_at_clear": r.cleared.as_ref().map(|c| json_evidence(&c.evidence)),
        "recommendation": f.recommendation,
    })
}
