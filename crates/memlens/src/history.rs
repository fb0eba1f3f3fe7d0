//! `memlens history`: a process's recorded series, read from the agent's store
//! (also while the agent writes). Values are stored raw; counters are shown as
//! rates per second, derived here, so what a replay shows is what live showed.

use crate::timearg::{format_utc, parse_time_ms};
use crate::watch::{default_data_dir, unix_ms};
use anyhow::{bail, Context};
use memlens_model::series::is_counter;
use memlens_store::{EntityInfo, Store};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// The metrics shown when `--metric` is not given, in this order (those with data).
const DEFAULT_METRICS: [&str; 12] = [
    "rss_bytes",
    "pss_bytes",
    "swap_bytes",
    "anon_bytes",
    "go_heap_inuse_bytes",
    "go_goroutines",
    "threads",
    "fd_count",
    "vma_count",
    "minor_faults",
    "major_faults",
    "cpu_user_seconds",
];

/// Options of `memlens history`.
#[derive(Debug, clap::Args)]
#[command(after_help = crate::duration::HELP)]
pub struct HistoryArgs {
    /// The process id (every process that had it, each incarnation apart).
    #[arg(
        long,
        value_name = "PID",
        required_unless_present = "name",
        conflicts_with = "name"
    )]
    pub pid: Option<i64>,

    /// The command name (`comm`), e.g. prometheus.
    #[arg(long, value_name = "COMM")]
    pub name: Option<String>,

    /// Start of the range: now, -DURATION ago (-2h, -1h30m, -7d), 03:12 (UTC),
    /// Unix seconds/ms, or 2026-11-21T03:12:00Z.
    #[arg(
        long,
        value_name = "TIME",
        default_value = "-1h",
        allow_hyphen_values = true
    )]
    pub from: String,

    /// End of the range (same forms).
    #[arg(
        long,
        value_name = "TIME",
        default_value = "now",
        allow_hyphen_values = true
    )]
    pub to: String,

    /// Metrics to show (repeatable; default: memory, Go heap, threads, fds, faults, CPU).
    #[arg(long = "metric", value_name = "NAME")]
    pub metrics: Vec<String>,

    /// The history's directory (as given to `memlens watch --data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// JSON (documented in docs/history.md) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// One series of one process, raw and (for counters) as a rate.
#[derive(Debug, Serialize)]
struct SeriesOut {
    metric: String,
    counter: bool,
    /// `[ts_ms, value]` as stored.
    points: Vec<(i64, f64)>,
    /// Counters: `[ts_ms, per_second]` between consecutive points (none across a reset).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_per_second: Option<Vec<(i64, f64)>>,
}

/// One process incarnation and its series.
#[derive(Debug, Serialize)]
struct ProcessOut {
    pid: Option<i64>,
    start_ticks: Option<i64>,
    key: String,
    labels: BTreeMap<String, String>,
    series: Vec<SeriesOut>,
}

/// Runs `memlens history`.
pub fn run(args: &HistoryArgs) -> anyhow::Result<()> {
    let now = unix_ms();
    let from_ms = parse_time_ms(&args.from, now).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to_ms = parse_time_ms(&args.to, now).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if from_ms > to_ms {
        bail!("--from ({}) is after --to ({})", args.from, args.to);
    }
    let dir = args.data.clone().unwrap_or_else(default_data_dir);
    let store = Store::open_read_only(&dir)
        .with_context(|| format!("cannot read the history in {}", dir.display()))?;
    let entities: Vec<EntityInfo> = match (&args.pid, &args.name) {
        (Some(pid), _) => store.entities_by_pid(*pid)?,
        (None, Some(name)) => store.entities_by_comm(name)?,
        (None, None) => unreachable!("clap requires --pid or --name"),
    };
    let entities: Vec<EntityInfo> = entities
        .into_iter()
        .filter(|e| e.kind == "process")
        .collect();
    if entities.is_empty() {
        let what = match (&args.pid, &args.name) {
            (Some(pid), _) => format!("pid {pid}"),
            (_, Some(name)) => format!("a process named {name:?}"),
            _ => String::new(),
        };
        bail!("{} has no history of {what}", dir.display());
    }
    let mut processes = Vec::new();
    for entity in &entities {
        let available = store.metrics(entity.id)?;
        let wanted: Vec<&str> = if args.metrics.is_empty() {
            DEFAULT_METRICS
                .iter()
                .copied()
                .filter(|m| available.iter().any(|(name, _)| name == m))
                .collect()
        } else {
            args.metrics.iter().map(String::as_str).collect()
        };
        let mut series = Vec::new();
        for metric in wanted {
            let Some((_, id)) = available.iter().find(|(name, _)| name == metric) else {
                if !args.metrics.is_empty() {
                    let names: Vec<&str> = available.iter().map(|(n, _)| n.as_str()).collect();
                    bail!(
                        "process {} has no metric {metric:?}; it has: {}",
                        entity.key,
                        names.join(", ")
                    );
                }
                continue;
            };
            let points = store.series_by_id(*id, from_ms, to_ms)?;
            let counter = is_counter(metric);
            series.push(SeriesOut {
                metric: metric.to_string(),
                counter,
                rate_per_second: counter.then(|| rates(&points)),
                points,
            });
        }
        if series.iter().all(|s| s.points.is_empty()) && !args.json {
            continue;
        }
        processes.push(ProcessOut {
            pid: entity.pid,
            start_ticks: entity.start_ticks,
            key: entity.key.clone(),
            labels: entity.labels.clone(),
            series,
        });
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &processes)?;
        writeln!(out)?;
        return Ok(());
    }
    if processes.is_empty() {
        writeln!(
            out,
            "no samples between {} and {} UTC",
            format_utc(from_ms),
            format_utc(to_ms)
        )?;
    }
    for process in &processes {
        write_table(&mut out, process)?;
    }
    out.flush()?;
    Ok(())
}

/// Per-second rates between consecutive points; a decrease (a counter reset)
/// gives no rate.
fn rates(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .filter_map(|w| {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            (t1 > t0 && v1 >= v0).then(|| (t1, (v1 - v0) * 1000.0 / (t1 - t0) as f64))
        })
        .collect()
}

/// A value for a table cell: bytes in binary units, rates with `/s`.
fn cell(metric: &str, value: f64, is_rate: bool) -> String {
    let suffix = if is_rate { "/s" } else { "" };
    if metric.ends_with("_bytes") {
        return format!(
            "{}{suffix}",
            crate::show::human_bytes(value.max(0.0) as u64)
        );
    }
    if metric.ends_with("_seconds") && is_rate {
        return format!("{:.1}%", value * 100.0);
    }
    if is_rate || value.fract() != 0.0 {
        return format!("{value:.1}{suffix}");
    }
    format!("{value:.0}")
}

fn write_table(out: &mut impl Write, process: &ProcessOut) -> std::io::Result<()> {
    let label = |k: &str| process.labels.get(k).map(String::as_str).unwrap_or("");
    writeln!(
        out,
        "pid {} ({}) {}{}",
        process.pid.unwrap_or(0),
        label("comm"),
        label("cmdline"),
        match process.labels.get("go_version") {
            Some(v) => format!("  [{v}]"),
            None => String::new(),
        }
    )?;
    // One row per timestamp; counters as rates (cpu seconds as a CPU %).
    let mut rows: BTreeMap<i64, Vec<Option<f64>>> = BTreeMap::new();
    let columns = process.series.len();
    for (i, series) in process.series.iter().enumerate() {
        let values = series.rate_per_second.as_ref().unwrap_or(&series.points);
        for &(ts, value) in values {
            rows.entry(ts).or_insert_with(|| vec![None; columns])[i] = Some(value);
        }
    }
    let headers: Vec<String> = process
        .series
        .iter()
        .map(|s| {
            let short = s
                .metric
                .trim_end_matches("_bytes")
                .trim_end_matches("_seconds");
            if s.counter {
                format!("{short}/s")
            } else {
                short.to_string()
            }
        })
        .collect();
    // Milliseconds only when two rows fall in the same second (sub-second intervals).
    let same_second = rows
        .keys()
        .zip(rows.keys().skip(1))
        .any(|(a, b)| a.div_euclid(1000) == b.div_euclid(1000));
    let time = |ts: i64| {
        if same_second {
            format!("{}.{:03}", format_utc(ts), ts.rem_euclid(1000))
        } else {
            format_utc(ts)
        }
    };
    let width = if same_second { 23 } else { 19 };
    write!(out, "{:<width$}", "TIME (UTC)")?;
    for header in &headers {
        write!(out, " {header:>12}")?;
    }
    writeln!(out)?;
    for (ts, values) in &rows {
        write!(out, "{:<width$}", time(*ts))?;
        for (series, value) in process.series.iter().zip(values) {
            let text = value.map_or("-".to_string(), |v| cell(&series.metric, v, series.counter));
            write!(out, " {text:>12}")?;
        }
        writeln!(out)?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_skip_resets_and_use_real_intervals() {
        let points = [(0, 10.0), (2000, 30.0), (3000, 5.0), (5000, 9.0)];
        assert_eq!(rates(&points), vec![(2000, 10.0), (5000, 2.0)]);
        assert!(rates(&points[..1]).is_empty());
    }
}
