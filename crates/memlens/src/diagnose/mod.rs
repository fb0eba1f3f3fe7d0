//! `memlens diagnose`: findings about the selected processes, one
//! [`Section`] per detector family, worst first inside each.
//!
//! Its window: when the agent's history (`memlens watch`) holds the
//! selected processes, the start comes from it and the end is read now
//! ([`history`]: no waiting); otherwise it observes for a window
//! ([`window`]: a snapshot of every process at both ends — the kernel
//! weighs them all in an OOM, not only the selected ones — and the Go
//! runtime's numbers of the selected Go processes at both ends). Then it
//! runs:
//!
//! - [`victims`]: the OOM victim ranking of every limited memory cgroup that
//!   holds a selected process, and of the host (the last snapshot).
//! - [`fds`]: open files against the soft limit, with a forecast.
//! - [`vmas`]: the VMA count against `vm.max_map_count`, mmap fragmentation.
//! - [`gc`]: Go GC pressure over the window.
//! - [`heapgap`]: RSS far above the Go heap, and where the rest is.
//! - [`gomemconfig`]: GOMEMLIMIT and GOGC against the cgroup limit (what
//!   `memlens advise` checks).
//! - [`goroutines`]: goroutine leaks by creation site and blocking function.
//! - [`heapgrowth`]: in-use heap growth per allocation site.
//! - [`mapbloat`]: maps holding memory after they stopped growing.
//! - [`contention`]: with history, which neighbour took whose memory (the
//!   engine's `memory.contention` over the stored lookback).
//!
//! A new detector family adds a module here that turns a [`Context`] into a
//! [`Section`], and one line in [`sections`].

mod contention;
mod fds;
mod fromstore;
mod gc;
mod gomemconfig;
mod goroutines;
mod heapgap;
mod heapgrowth;
pub mod history;
mod mapbloat;
mod mysql;
mod victims;
mod vmas;
pub mod window;

use crate::collect::{self, CollectOptions, ProcessFilter, SmapsPolicy};
use crate::duration;
use crate::show::findings::{evidence_json, target_json};
use clap::Args;
use history::{HistoryInfo, Outcome};
use memlens_analyze::{fds as fd_detector, gcpressure, heapgap as gap_detector};
use memlens_analyze::{vmas as vma_detector, Finding, Target};
use memlens_linux::fs::Root;
use memlens_model::{ProcessSample, Snapshot};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use window::{GoWindow, Window};

/// Options of `memlens diagnose`.
#[derive(Debug, Args)]
#[command(after_help = duration::HELP)]
pub struct DiagnoseArgs {
    /// Only this process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Only Go programs.
    #[arg(long)]
    pub go: bool,
    /// Every process (the default when no other selection is given).
    #[arg(long)]
    pub all: bool,
    /// Only processes in this memory cgroup or below it (path as in /proc/PID/cgroup).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Rows shown per ranking in the terminal (selected processes further
    /// down are shown too); JSON always has them all.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Print JSON (the format is documented in docs/diagnose-json.md).
    #[arg(long)]
    pub json: bool,
    /// How long to observe (snapshots and Go runtime numbers at both ends;
    /// 0: one snapshot, no rates or forecasts; at most 1h).
    #[arg(long, default_value = "10s", value_name = "DURATION",
          value_parser = duration::parse, allow_hyphen_values = true)]
    pub window: Duration,
    /// `vma.count_near_limit` warning from this share of vm.max_map_count.
    #[arg(long, default_value_t = 0.8, value_name = "RATIO")]
    pub vma_warning_ratio: f64,
    /// `vma.count_near_limit` critical from this share of vm.max_map_count.
    #[arg(long, default_value_t = 0.95, value_name = "RATIO")]
    pub vma_critical_ratio: f64,
    /// Do not fetch heap and goroutine profiles from the Go processes (they
    /// cost the target a little): no goroutine-leak, heap-growth or map-bloat
    /// findings.
    #[arg(long)]
    pub no_profiles: bool,
    /// The agent's history (`memlens watch --data DIR`) to take the start of
    /// the window from [default: the agent's default data directory]; given
    /// explicitly, a store that cannot be read is an error.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// How far back the history is looked at: the start of each process's
    /// window is its oldest stored sample within it.
    #[arg(long, default_value = "15m", value_name = "DURATION",
          value_parser = duration::parse, allow_hyphen_values = true)]
    pub history: Duration,
    /// Always observe a live window (`--window`), even with a history.
    #[arg(long)]
    pub no_history: bool,
    /// Also read the MySQL/MariaDB servers (credentials from ~/.my.cnf's
    /// `[client]` or --mysql-option-file): pool, hit ratio over a live
    /// window, memory ledger.
    #[arg(long)]
    pub mysql: bool,
    /// The client option file for --mysql (implies it).
    #[arg(long, value_name = "FILE")]
    pub mysql_option_file: Option<PathBuf>,
}

/// The detectors' thresholds.
#[derive(Debug, Clone, Default)]
pub struct DetectorConfig {
    /// `fd.exhaustion`.
    pub fds: fd_detector::Config,
    /// `vma.count_near_limit`, `vma.fragmented`.
    pub vmas: vma_detector::Config,
    /// `go.gc_pressure`.
    pub gc: gcpressure::Config,
    /// `memory.rss_above_heap`.
    pub heapgap: gap_detector::Config,
}

/// What every detector family sees.
pub struct Context<'a> {
    /// The snapshot of every process at the start of the window.
    pub first: &'a Snapshot,
    /// The snapshot of every process at the end of the window (the latest).
    pub snapshot: &'a Snapshot,
    /// Seconds between the two snapshots (0 for a zero window); with a
    /// window from the history, the shortest of the selected processes'
    /// windows (see [`Context::window_seconds_of`]).
    pub window_seconds: f64,
    /// Set when the start of the window came from the agent's history.
    pub history: Option<HistoryInfo>,
    /// Why the history was not used, when it was tried.
    pub history_note: Option<String>,
    /// Whether each process of `snapshot.processes` was selected.
    pub selected: Vec<bool>,
    /// The selected Go processes (of the first snapshot) and their runtime's
    /// numbers at both ends.
    pub go: &'a [GoWindow],
    /// The detectors' thresholds.
    pub config: &'a DetectorConfig,
    /// Index of each process of `first` by (pid, start_time).
    pub first_index: HashMap<(i32, u64), usize>,
    /// Where /proc and /sys are.
    pub root: &'a Root,
    /// The kernel's page size.
    pub page_size_bytes: u64,
    /// Rows per table in the terminal.
    pub top: usize,
}

impl Context<'_> {
    /// The selected processes.
    pub fn selected_processes(&self) -> impl Iterator<Item = &ProcessSample> {
        self.snapshot
            .processes
            .iter()
            .zip(&self.selected)
            .filter(|(_, s)| **s)
            .map(|(p, _)| p)
    }

    /// The same process (pid and start time) in the first snapshot.
    pub fn at_start(&self, p: &ProcessSample) -> Option<&ProcessSample> {
        self.first_index
            .get(&(p.pid, p.start_time))
            .map(|&i| &self.first.processes[i])
    }

    /// The window of process `p`: from its own stored start to the last
    /// snapshot with a history, else [`Context::window_seconds`].
    pub fn window_seconds_of(&self, p: &ProcessSample) -> f64 {
        self.history
            .as_ref()
            .and_then(|h| h.starts_ms.get(&(p.pid, p.start_time)))
            .map_or(self.window_seconds, |&start_ms| {
                (self.at_ms() - start_ms).max(0) as f64 / 1000.0
            })
    }

    /// The same process in the last snapshot.
    pub fn at_end(&self, pid: i32, start_time: u64) -> Option<&ProcessSample> {
        self.snapshot
            .processes
            .iter()
            .find(|p| p.pid == pid && p.start_time == start_time)
    }

    /// When the last snapshot was taken, ms since the Unix epoch.
    pub fn at_ms(&self) -> i64 {
        self.snapshot.taken_at_unix_ms as i64
    }
}

/// A process as a finding's target.
pub fn process_target(p: &ProcessSample) -> Target {
    Target::Process {
        pid: p.pid,
        start_time: p.start_time,
    }
}

/// Sorts items holding a finding worst first: severity, then the evidence
/// `key` (descending).
pub fn sort_worst_first<T>(items: &mut [T], finding: impl Fn(&T) -> &Finding, key: &str) {
    items.sort_by(|a, b| {
        let (a, b) = (finding(a), finding(b));
        b.severity.cmp(&a.severity).then(
            b.evidence(key)
                .unwrap_or(0.0)
                .total_cmp(&a.evidence(key).unwrap_or(0.0)),
        )
    });
}

/// One detector family's result.
pub struct Section {
    /// Stable name (`oom_victims`), the key in JSON.
    pub name: &'static str,
    /// Heading for people.
    pub title: String,
    /// Its findings, worst first.
    pub findings: Vec<Finding>,
    /// The section's body for a terminal (lines without trailing newline).
    pub text: Vec<String>,
    /// The section's own data for JSON (documented in docs/diagnose-json.md).
    pub data: serde_json::Value,
}

impl Section {
    /// A section with one table row per process: the `summary` line, then
    /// `header` and the rows' `text` when there are rows, then each
    /// finding's recommendation; `rows` are its JSON data (`processes`).
    pub fn per_process(
        name: &'static str,
        title: &str,
        summary: String,
        header: String,
        text: Vec<String>,
        findings: Vec<Finding>,
        rows: Vec<serde_json::Value>,
    ) -> Section {
        let mut lines = vec![summary];
        if !text.is_empty() {
            lines.push(header);
            lines.extend(text);
        }
        for f in &findings {
            lines.push(format!("  {}: {}", f.target.key(), f.recommendation));
        }
        Section {
            name,
            title: title.to_string(),
            findings,
            text: lines,
            data: serde_json::json!({ "processes": rows }),
        }
    }
}

/// Every detector family, in the order they are shown.
fn sections(context: &Context) -> anyhow::Result<Vec<Section>> {
    let mut all = vec![
        fds::section(context),
        vmas::section(context),
        gc::section(context),
        heapgap::section(context),
        gomemconfig::section(context),
        goroutines::section(context),
        heapgrowth::section(context),
        mapbloat::section(context),
        victims::section(context)?,
    ];
    // With the agent's history: which neighbour took whose memory.
    if context.history.is_some() {
        all.push(contention::section(context)?);
    }
    // With --mysql and a server among the processes.
    if !context.snapshot.mysql.is_empty() {
        all.push(mysql::section(context));
    }
    Ok(all)
}

/// The longest live window of `diagnose` and `advise`.
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// A `--window` of `diagnose` or `advise`: 0 (one read) up to an hour.
pub(crate) fn check_window(window: Duration) -> anyhow::Result<()> {
    if window > MAX_WINDOW {
        anyhow::bail!(
            "--window: {} is longer than the most, {}",
            duration::format(window),
            duration::format(MAX_WINDOW)
        );
    }
    Ok(())
}

/// Runs `memlens diagnose`.
pub fn run(args: &DiagnoseArgs) -> anyhow::Result<()> {
    let root = Root::host();
    check_window(args.window)?;
    if args.history.is_zero() {
        anyhow::bail!("--history: must be more than 0s");
    }
    for (name, v) in [
        ("--vma-warning-ratio", args.vma_warning_ratio),
        ("--vma-critical-ratio", args.vma_critical_ratio),
    ] {
        if !(v.is_finite() && v > 0.0) {
            anyhow::bail!("{name} must be a positive number");
        }
    }
    for &pid in &args.pids {
        if !root.path(format!("/proc/{pid}")).exists() {
            anyhow::bail!("process {pid} does not exist");
        }
    }
    let options = CollectOptions {
        filter: ProcessFilter::default(),
        // PSS/USS are not needed, and reading smaps_rollup of every process
        // would stall the big ones.
        smaps: SmapsPolicy::Never,
        smaps_budget: collect::SMAPS_BUDGET,
    };
    let mut mysql =
        collect::mysql::MysqlCollector::from_flags(args.mysql, args.mysql_option_file.as_ref())?;
    // The servers' reading at the window's start, taken just before it.
    let mut mysql_start = None;
    if let Some(mysql) = &mut mysql {
        let mut start = collect::snapshot(&root, &options)
            .map_err(|e| anyhow::anyhow!("reading the host's processes: {e}"))?;
        for failure in mysql.collect_where(&root, &mut start, |p| is_selected(args, p)) {
            eprintln!("diagnose: {}", failure.message);
        }
        mysql_start = Some(start.mysql);
    }
    let (mut observed, history, history_note) = observe(args, &root, &options)?;
    if let Some(mysql) = &mut mysql {
        for failure in mysql.collect_where(&root, &mut observed.last, |p| is_selected(args, p)) {
            eprintln!("diagnose: {}", failure.message);
        }
        // A window from the history did not start now: no start reading.
        if history.is_none() {
            observed.first.mysql = mysql_start.unwrap_or_default();
        }
    }
    let snapshot = &observed.last;
    let first = &observed.first;
    let config = DetectorConfig {
        vmas: vma_detector::Config {
            warning_ratio: args.vma_warning_ratio,
            critical_ratio: args.vma_critical_ratio,
            ..vma_detector::Config::default()
        },
        ..DetectorConfig::default()
    };
    let selected = snapshot
        .processes
        .iter()
        .map(|p| is_selected(args, p))
        .collect();
    let span_seconds =
        |from_ms: u64| snapshot.taken_at_unix_ms.saturating_sub(from_ms) as f64 / 1000.0;
    let window_seconds = match &history {
        Some(h) => h
            .starts_ms
            .values()
            .map(|&ms| span_seconds(ms.max(0) as u64))
            .fold(f64::INFINITY, f64::min),
        None => span_seconds(first.taken_at_unix_ms),
    };
    let context = Context {
        first,
        snapshot,
        window_seconds,
        history,
        history_note,
        selected,
        go: &observed.go,
        config: &config,
        first_index: first
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.pid, p.start_time), i))
            .collect(),
        root: &root,
        page_size_bytes: page_size_bytes(),
        top: args.top,
    };
    let sections = sections(&context)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        // As an io::Error, so that a closed pipe is not reported as a failure.
        serde_json::to_writer_pretty(&mut out, &to_json(&context, &sections))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &context, &sections)?;
    }
    out.flush()?;
    Ok(())
}

/// The window: its start from the agent's history when it holds the
/// selected processes (see [`history`]), else observed live for
/// `--window`; with why the history was not used when it was tried.
fn observe(
    args: &DiagnoseArgs,
    root: &Root,
    options: &CollectOptions,
) -> anyhow::Result<(Window, Option<HistoryInfo>, Option<String>)> {
    let live = |note: Option<String>| -> anyhow::Result<_> {
        if let Some(note) = &note {
            eprintln!(
                "diagnose: {note}; observing {} live",
                duration::format(args.window)
            );
        }
        let window = window::observe(root, options, args.window, !args.no_profiles, |p| {
            is_selected(args, p)
        })?;
        Ok((window, None, note))
    };
    if args.no_history {
        return live(None);
    }
    let explicit = args.store.is_some();
    let (store, dir) = match history::open_chosen(args.store.as_deref())? {
        Ok(opened) => opened,
        Err(why) => return live(Some(why)),
    };
    let now = window::observe_end(root, options, !args.no_profiles, |p| is_selected(args, p))?;
    let request = history::Request {
        dir: &dir,
        lookback_seconds: args.history.as_secs_f64(),
        pids: &args.pids,
        profiles: !args.no_profiles,
    };
    let outcome = history::window(&store, &request, root, now, |p| is_selected(args, p));
    match outcome {
        Ok(Outcome::History(window, info)) => Ok((*window, Some(info), None)),
        Ok(Outcome::Live(why)) => live(Some(why)),
        Err(e) if explicit => Err(e.context(format!("reading the history in {}", dir.display()))),
        Err(e) => live(Some(format!(
            "reading the history in {}: {e:#}",
            dir.display()
        ))),
    }
}

/// Whether `p` passes every selection flag given (no flag: all).
fn is_selected(args: &DiagnoseArgs, p: &ProcessSample) -> bool {
    if !args.pids.is_empty() && !args.pids.contains(&p.pid) {
        return false;
    }
    if args.go && p.go.is_none() {
        return false;
    }
    if let Some(wanted) = &args.cgroup {
        let wanted = wanted.trim_end_matches('/');
        let inside = p.cgroup.as_ref().is_some_and(|c| {
            wanted.is_empty()
                || c.path == wanted
                || c.path
                    .strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !inside {
            return false;
        }
    }
    true
}

/// The kernel's page size (4096 when it cannot be asked).
fn page_size_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// A finding as JSON (the same fields as `memlens replay --json`).
pub fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "severity": f.severity.as_str(),
        "target": target_json(&f.target, None),
        "evidence": evidence_json(&f.evidence),
        "recommendation": f.recommendation,
        "at_ms": f.fired_at_ms,
    })
}

/// With a history: each selected process's own window (`pid`,
/// `start_time`, `start_unix_ms`, `window_seconds`), oldest start first;
/// `null` for a live window (one window for all).
fn process_windows_json(context: &Context) -> serde_json::Value {
    let Some(h) = &context.history else {
        return serde_json::Value::Null;
    };
    let mut starts: Vec<(&(i32, u64), &i64)> = h.starts_ms.iter().collect();
    starts.sort_by_key(|(key, ms)| (**ms, **key));
    starts
        .into_iter()
        .map(|(&(pid, start_time), &ms)| {
            serde_json::json!({
                "pid": pid,
                "start_time": start_time,
                "start_unix_ms": ms,
                "window_seconds": (context.at_ms() - ms).max(0) as f64 / 1000.0,
            })
        })
        .collect()
}

/// `14m 40s`, `9.5 s`.
fn human_seconds(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = seconds.round() as u64;
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

fn to_json(context: &Context, sections: &[Section]) -> serde_json::Value {
    serde_json::json!({
        "taken_at_unix_ms": context.snapshot.taken_at_unix_ms,
        "first_taken_at_unix_ms": context.first.taken_at_unix_ms,
        "window_seconds": context.window_seconds,
        "window_source": if context.history.is_some() { "history" } else { "live" },
        "store_dir": context.history.as_ref().map(|h| h.dir.display().to_string()),
        "history_seconds": context.history.as_ref().map(|h| h.lookback_seconds),
        "history_note": context.history_note,
        "process_windows": process_windows_json(context),
        "without_history": context.history.as_ref().map(|h| h.without_history.iter()
            .map(|(pid, start_time)| serde_json::json!({"pid": pid, "start_time": start_time}))
            .collect::<Vec<_>>()),
        "sections": sections.iter().map(|s| serde_json::json!({
            "name": s.name,
            "title": s.title,
            "findings": s.findings.iter().map(finding_json).collect::<Vec<_>>(),
            "data": s.data,
        })).collect::<Vec<_>>(),
    })
}

/// A summary of every finding, worst first (victim orders, which are
/// always there, left out), then each section.
fn write_text(
    out: &mut impl Write,
    context: &Context,
    sections: &[Section],
) -> std::io::Result<()> {
    let mut all: Vec<&Finding> = sections
        .iter()
        .filter(|s| s.name != "oom_victims")
        .flat_map(|s| &s.findings)
        .collect();
    all.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let source = match &context.history {
        Some(h) => {
            let longest = h
                .starts_ms
                .values()
                .map(|&ms| (context.at_ms() - ms).max(0) as f64 / 1000.0)
                .fold(0.0, f64::max);
            let span = if longest - context.window_seconds >= 1.0 {
                format!(
                    "{} to {} (each process from its oldest sample)",
                    human_seconds(context.window_seconds),
                    human_seconds(longest)
                )
            } else {
                human_seconds(context.window_seconds)
            };
            let without = if h.without_history.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} without history, judged on the live snapshot)",
                    h.without_history.len()
                )
            };
            format!(
                "From the history (agent store {}): {span}{without}",
                h.dir.display()
            )
        }
        None => format!("Observed {:.1} s", context.window_seconds),
    };
    writeln!(
        out,
        "{source}, {} processes selected, {} Go processes read: {} findings{}",
        context.selected.iter().filter(|s| **s).count(),
        context
            .go
            .iter()
            .filter(|g| g.end.is_some() || g.start.is_some())
            .count(),
        all.len(),
        if all.is_empty() { "" } else { ", worst first:" }
    )?;
    for f in &all {
        writeln!(
            out,
            "  {:<8} {:<26} {}",
            f.severity.as_str(),
            f.id,
            f.target.key()
        )?;
    }
    for section in sections {
        writeln!(out)?;
        writeln!(out, "{}", section.title)?;
        writeln!(out, "{}", "=".repeat(section.title.chars().count()))?;
        for line in &section.text {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_model::CgroupSample;

    #[test]
    fn selection_flags_intersect() {
        let args = |pids: Vec<i32>, cgroup: Option<&str>| DiagnoseArgs {
            pids,
            go: false,
            all: false,
            cgroup: cgroup.map(str::to_string),
            top: 10,
            json: false,
            window: Duration::ZERO,
            vma_warning_ratio: 0.8,
            vma_critical_ratio: 0.95,
            no_profiles: false,
            store: None,
            history: Duration::from_secs(900),
            no_history: false,
            mysql: false,
            mysql_option_file: None,
        };
        let p = ProcessSample {
            pid: 7,
            cgroup: Some(CgroupSample {
                path: "/a/b".into(),
                ..CgroupSample::default()
            }),
            ..ProcessSample::default()
        };
        assert!(is_selected(&args(vec![], None), &p));
        assert!(is_selected(&args(vec![7], Some("/a")), &p));
        assert!(!is_selected(&args(vec![7], Some("/a/bc")), &p));
        assert!(!is_selected(&args(vec![8], None), &p));
    }
}
