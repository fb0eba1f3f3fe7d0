//! `memlens profiles`: the heap and goroutine profiles the agent kept (and the
//! `trace-faults` profiles of its traces of critical forecasts), listed,
//! or the one nearest a moment written to a file ("the heap of 03:12") for
//! `memlens heap`, `memlens goroutines`, `memlens flame` or `go tool pprof`.

use crate::timearg::{format_utc, parse_time_ms};
use crate::watch::{default_data_dir, unix_ms};
use anyhow::{bail, Context};
use memlens_store::{ProfileInfo, Store};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

/// Options of `memlens profiles`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::duration::HELP)]
pub struct ProfilesArgs {
    /// Only profiles of this process id (every incarnation).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i64>,

    /// Only profiles of processes with this command name.
    #[arg(long, value_name = "COMM", conflicts_with = "pid")]
    pub name: Option<String>,

    /// Only this kind: heap, goroutine or trace-faults (a page-fault trace
    /// taken when a time-to-OOM turned critical).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,

    /// With -o: the profile nearest this time: now, -DURATION ago (-2h), 03:12,
    /// Unix s/ms, 2026-11-21T03:12:00Z (UTC).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,

    /// With -o: the profile with this id (the ID column; kill findings name
    /// the profiles kept before the kill by id).
    #[arg(long, value_name = "ID", conflicts_with = "at")]
    pub id: Option<i64>,

    /// Write the chosen profile (--id, nearest --at, else the latest) to this file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The history's directory (as given to `memlens watch --data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    pid: Option<i64>,
    comm: Option<String>,
    kind: String,
    ts_ms: i64,
    size_bytes: i64,
}

/// Runs `memlens profiles`.
pub fn run(args: &ProfilesArgs) -> anyhow::Result<()> {
    // A bad --at is refused before the history is opened.
    let at_ms = match &args.at {
        Some(at) => Some(parse_time_ms(at, unix_ms()).map_err(|e| anyhow::anyhow!("--at: {e}"))?),
        None => None,
    };
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open_read_only(&dir)
        .with_context(|| format!("cannot read the history in {}", dir.display()))?;
    let entities = match (&args.pid, &args.name) {
        (Some(pid), _) => store.entities_by_pid(*pid)?,
        (None, Some(name)) => store.entities_by_comm(name)?,
        (None, None) => store.entities()?,
    };
    let mut rows: Vec<(ProfileInfo, Row)> = Vec::new();
    for entity in entities.iter().filter(|e| e.kind == "process") {
        for info in store.profiles(Some(entity.id), args.kind.as_deref())? {
            let row = Row {
                id: info.id,
                pid: entity.pid,
                comm: entity.comm.clone(),
                kind: info.kind.clone(),
                ts_ms: info.ts_ms,
                size_bytes: info.size_bytes,
            };
            rows.push((info, row));
        }
    }
    rows.sort_by_key(|(info, _)| (info.ts_ms, info.id));
    if let Some(path) = &args.output {
        let chosen = match (at_ms, args.id) {
            (_, Some(id)) => rows.iter().find(|(info, _)| info.id == id),
            (Some(at_ms), None) => rows
                .iter()
                .min_by_key(|(info, _)| (info.ts_ms - at_ms).abs()),
            (None, None) => rows.last(),
        };
        let Some((info, row)) = chosen else {
            bail!("{} holds no profile matching the filters", dir.display());
        };
        let Some(bytes) = store.profile_data(info.id)? else {
            bail!(
                "profile {} was deleted (retention) while being read",
                info.id
            );
        };
        std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "wrote the {} profile of pid {} ({}) taken {} UTC to {} ({} bytes)",
            row.kind,
            row.pid.unwrap_or(0),
            row.comm.as_deref().unwrap_or("?"),
            format_utc(row.ts_ms),
            path.display(),
            bytes.len()
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<&Row> = rows.iter().map(|(_, r)| r).collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:>8}  {:<16} {:<12} {:<19} {:>10}",
        "ID", "PID", "COMM", "KIND", "TAKEN (UTC)", "BYTES"
    )?;
    for (_, row) in &rows {
        writeln!(
            out,
            "{:>6}  {:>8}  {:<16} {:<12} {:<19} {:>10}",
            row.id,
            row.pid.unwrap_or(0),
            row.comm.as_deref().unwrap_or("?"),
            row.kind,
            format_utc(row.ts_ms),
            row.size_bytes
        )?;
    }
    Ok(())
}
