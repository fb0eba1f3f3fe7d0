//! `memlens replay --data DIR [--json] [--step DURATION]`: runs the detectors
//! (memlens-analyze) over a recorded history, instant by instant in time
//! order, exactly as the live agent would have, and prints when each finding
//! fired and cleared with its severity and evidence at that moment — so
//! detector quality can be measured offline. `--step` thins the history
//! first, as if the agent had sampled less often.

use crate::duration;
use crate::show::findings::{event_word, evidence_json, finding_text, iso_utc, target_json};
use crate::timearg::format_utc;
use crate::watch::findings::{linked_profiles, profiles_json};
use crate::watch::{default_data_dir, WatchConfig};
use anyhow::Context;
use memlens_analyze::{metric_name, Config, Engine, Finding};
use memlens_model::series::{Entity, Point};
use memlens_store::{ProfileInfo, Store};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

/// Options of `memlens replay`.
#[derive(Debug, clap::Args)]
#[command(after_help = duration::HELP)]
pub struct ReplayArgs {
    /// The history's directory (as given to `memlens watch --data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// An array of findings, each with fired/cleared times in ms and UTC.
    #[arg(long)]
    pub json: bool,

    /// The agent's TOML config file: its `[findings]` settings (hold,
    /// forecast coverage) are used, so replay fires as that agent did.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Replays only instants at least this far apart (the first kept, then
    /// each one at least DURATION after the last kept: `5s`, `1m`), as if the agent had sampled at that interval.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub step: Option<std::time::Duration>,
}

/// One finding from firing to clearing, as replayed.
struct Replayed {
    fired: Finding,
    cleared: Option<Finding>,
    /// The target's profiles kept before the finding fired (for kills).
    profiles: Vec<ProfileInfo>,
}

/// Runs `memlens replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open_read_only(&dir)
        .with_context(|| format!("cannot read the history in {}", dir.display()))?;
    let config = match &args.config {
        Some(path) => {
            let config = WatchConfig::load(path)?;
            config.validate()?;
            config.findings.engine_config()
        }
        None => Config::default(),
    };
    let mut engine = Engine::new(config);
    let mut names: HashMap<Entity, String> = HashMap::new();
    let mut entity_ids: HashMap<Entity, i64> = HashMap::new();
    let mut instants: BTreeMap<i64, Vec<Point>> = BTreeMap::new();
    for info in store.entities()? {
        let Some(entity) = Entity::from_key(&info.key) else {
            continue;
        };
        if let (Entity::Process { .. }, Some(cgroup)) = (&entity, &info.cgroup) {
            engine.set_process_cgroup(&entity, cgroup);
        }
        entity_ids.insert(entity.clone(), info.id);
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
    if let Some(step) = args.step {
        instants = thin_instants(instants, duration::millis_i64(step));
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
                        profiles: Vec::new(),
                    });
                }
                Some(_) => match open.remove(&key) {
                    Some(i) => replayed[i].cleared = Some(finding),
                    // An event (a kill) fires and clears at once: it links
                    // to the victim's last profiles.
                    None => replayed.push(Replayed {
                        profiles: match entity_ids.get(&finding.target) {
                            Some(&id) => linked_profiles(&store, id, finding.fired_at_ms)?,
                            None => Vec::new(),
                        },
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

/// The instants at least `step_ms` apart: the first one, then each one at
/// least `step_ms` after the last one kept. A step of 0 keeps every instant.
fn thin_instants<T>(instants: BTreeMap<i64, T>, step_ms: i64) -> BTreeMap<i64, T> {
    let mut last_kept: Option<i64> = None;
    instants
        .into_iter()
        .filter(|(ts, _)| {
            let keep = last_kept.is_none_or(|last| *ts - last >= step_ms);
            if keep {
                last_kept = Some(*ts);
            }
            keep
        })
        .collect()
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
    // One entry per event, in time order.
    let mut events: Vec<(i64, bool, &Replayed, &Finding)> = Vec::new();
    for r in replayed {
        let word = event_word(r.cleared.as_ref().unwrap_or(&r.fired));
        events.push((r.fired.fired_at_ms, true, r, &r.fired));
        if let (Some(c), false) = (&r.cleared, word == "EVENT") {
            events.push((c.cleared_at_ms.unwrap_or(last), false, r, c));
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    for (ts, fired, r, f) in &events {
        let word = match (fired, r.cleared.as_ref()) {
            (true, Some(c)) if event_word(c) == "EVENT" => "EVENT",
            (true, _) => "FIRED",
            (false, _) => "CLEARED",
        };
        let comm = names.get(&f.target).map(String::as_str);
        writeln!(out, "{}", finding_text(*ts, word, f, comm))?;
        for p in &r.profiles {
            writeln!(
                out,
                "    kept before: {} profile #{} of {} UTC ({} bytes): memlens profiles --id {} -o FILE",
                p.kind,
                p.id,
                format_utc(p.ts_ms),
                p.size_bytes,
                p.id
            )?;
        }
    }
    let active = replayed.iter().filter(|r| r.cleared.is_none()).count();
    writeln!(
        out,
        "{} findings, {active} still active at the end",
        replayed.len()
    )
}

fn json_finding(r: &Replayed, names: &HashMap<Entity, String>) -> serde_json::Value {
    let f = &r.fired;
    let cleared_ms = r.cleared.as_ref().and_then(|c| c.cleared_at_ms);
    serde_json::json!({
        "id": f.id,
        "severity": f.severity.as_str(),
        "target": target_json(&f.target, names.get(&f.target).map(String::as_str)),
        "fired_at_ms": f.fired_at_ms,
        "fired_at": iso_utc(f.fired_at_ms),
        "cleared_at_ms": cleared_ms,
        "cleared_at": cleared_ms.map(iso_utc),
        "evidence": evidence_json(&f.evidence),
        "evidence_at_clear": r.cleared.as_ref().map(|c| evidence_json(&c.evidence)),
        "recommendation": f.recommendation,
        "profiles": profiles_json(&r.profiles),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(timestamps: &[i64], step_ms: i64) -> Vec<i64> {
        let instants: BTreeMap<i64, ()> = timestamps.iter().map(|&ts| (ts, ())).collect();
        thin_instants(instants, step_ms).into_keys().collect()
    }

    #[test]
    fn thinning_keeps_instants_at_least_a_step_after_the_last_kept_one() {
        // An agent at 1 s with jitter: 1.0 s, 0.9 s, 1.2 s... apart.
        let ts = [
            0, 1_000, 1_900, 3_100, 4_000, 4_999, 5_050, 6_000, 10_200, 10_900,
        ];
        assert_eq!(kept(&ts, 5_000), vec![0, 5_050, 10_200]);
        // 5_050 is only 1.95 s after 3_100: 6_000 is the next one kept.
        assert_eq!(kept(&ts, 2_000), vec![0, 3_100, 6_000, 10_200]);
        // A gap longer than the step: the next instant after it is kept.
        assert_eq!(
            kept(&[0, 20_000, 21_000, 25_000], 5_000),
            vec![0, 20_000, 25_000]
        );
    }

    #[test]
    fn a_step_of_zero_or_below_the_interval_keeps_everything() {
        let ts = [0, 1_000, 2_000, 3_000];
        assert_eq!(kept(&ts, 0), ts.to_vec());
        assert_eq!(kept(&ts, 1_000), ts.to_vec());
        assert_eq!(kept(&[], 5_000), Vec::<i64>::new());
    }
}
