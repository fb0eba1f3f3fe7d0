//! `memlens watch`: the agent. Samples processes, cgroups and the host every
//! interval, the Go runtime of discovered Go targets at a slower cadence, their
//! heap and goroutine profiles slower still, and keeps it all in the local
//! history (`memlens-store`). Ends cleanly on SIGINT / SIGTERM.
//!
//! - `config.rs`: the TOML config and its defaults; CLI flags override it.
//! - `alerts_config.rs`: its `[alerts]` table (thresholds of `memlens rules`).
//! - `alerting_config.rs`, `alerting.rs`: `[alerting]`, built-in alerting:
//!   findings become alerts sent to Alertmanager and a webhook.
//! - `evidence.rs`: a short trace of a target whose time-to-OOM turns
//!   critical, kept as `trace-faults` profiles.
//! - `findings.rs`: the detectors, live: findings shown, stored, and
//!   profiles captured when a kill is near.
//! - `gotargets.rs`: endpoint discovery and bounded fetches from Go processes.
//! - `history.rs`: what a cycle writes to the store.
//! - `remote_write_config.rs`: the `[[remote_write]]` tables.
//!
//! `--listen` (the Prometheus `/metrics` endpoint) and `--remote-write`
//! (pushing the history to remote-write receivers) are `memlens-export`;
//! this module only wires them.
//! - `status.rs`: the terminal view.
//! - `signals.rs`: the stop flag.

mod alerting;
mod alerting_config;
mod alerts_config;
mod config;
mod evidence;
pub mod findings;
mod gotargets;
mod history;
mod remote_write_config;
pub(crate) mod signals;
mod status;

pub use config::{default_data_dir, WatchConfig};

use crate::collect::{CollectOptions, Collector, ProcessFilter};
use crate::duration;
use crate::show::findings::{event_word, finding_summary, finding_text};
use crate::target::FetchLimits;
use anyhow::Context;
use memlens_analyze::Finding;
use memlens_export::exporter::{Exporter, ExporterConfig};
use memlens_export::remote_write::{AgentContext, RemoteWriter};
use memlens_linux::fs::Root;
use memlens_model::series::snapshot_points;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Options of `memlens watch` (each overrides the config file's value).
#[derive(Debug, clap::Args)]
#[command(after_help = duration::HELP)]
pub struct WatchArgs {
    /// A TOML config file (`--print-config` shows every key and its default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the effective config (file + flags) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// The history's directory [default: /var/lib/memlens for root,
    /// ~/.local/state/memlens otherwise].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Time between two samples (at least 100ms) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub interval: Option<Duration>,

    /// Time between two reads of Go runtime metrics [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub runtime_interval: Option<Duration>,

    /// Time between two heap + goroutine profiles (and ?debug=2 goroutine dumps) of a Go target [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub profile_interval: Option<Duration>,

    /// Fetch no profiles.
    #[arg(long)]
    pub no_profiles: bool,

    /// Do not trace a target whose time-to-OOM turns critical (config
    /// `[trace_on_critical] enabled`).
    #[arg(long)]
    pub no_trace_on_critical: bool,

    /// Only this process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,

    /// Only Go programs.
    #[arg(long)]
    pub go: bool,

    /// Only processes in this memory cgroup or below it.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// When to read smaps_rollup (PSS, USS): auto skips huge processes and
    /// spends at most 5% of the interval (0.5 s at most) per cycle on it, since
    /// the kernel holds the target's mmap lock while it walks [default: auto].
    #[arg(long, value_name = "auto|always|never")]
    pub smaps: Option<String>,

    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,

    /// Serve Prometheus /metrics and the web dashboard (GET /) on PORT
    /// (loopback) or HOST:PORT (a non-loopback address needs
    /// bearer_token_file in the config).
    #[arg(long, value_name = "[HOST:]PORT")]
    pub listen: Option<String>,

    /// Label process series with `pid` too (config `[series] pid_label`):
    /// each restart of a service then makes new series.
    #[arg(long)]
    pub pid_label: bool,

    /// The most series /metrics shows [default: 20000].
    #[arg(long, value_name = "N")]
    pub max_series: Option<usize>,

    /// Push every stored sample to this Prometheus remote-write receiver
    /// (`http://` or `https://HOST:PORT/api/v1/write`; the URL of the first
    /// `[[remote_write]]` table, which sets the rest: TLS, auth, labels,
    /// back-off; docs/fleet.md).
    #[arg(long, value_name = "URL")]
    pub remote_write: Option<String>,

    /// Stop after this many cycles (for scripts and tests; default: run until stopped).
    #[arg(long, value_name = "N")]
    pub cycles: Option<u64>,

    /// Read /proc and /sys under this directory instead of / (fixture trees).
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// The config file (if any) with the flags on top.
pub fn effective_config(args: &WatchArgs) -> anyhow::Result<WatchConfig> {
    let mut config = match &args.config {
        Some(path) => WatchConfig::load(path)?,
        None => WatchConfig::default(),
    };
    if let Some(dir) = &args.data {
        config.data_dir = dir.clone();
    }
    if let Some(interval) = args.interval {
        config.interval = interval;
    }
    if let Some(interval) = args.runtime_interval {
        config.runtime_interval = interval;
    }
    if let Some(interval) = args.profile_interval {
        config.profile_interval = interval;
    }
    if args.no_profiles {
        config.profiling = false;
    }
    if args.no_trace_on_critical {
        config.trace_on_critical.enabled = false;
    }
    if !args.pids.is_empty() {
        config.select.pids = args.pids.clone();
    }
    if args.go {
        config.select.go_only = true;
    }
    if args.cgroup.is_some() {
        config.select.cgroup = args.cgroup.clone();
    }
    if let Some(smaps) = &args.smaps {
        config.smaps = smaps.clone();
    }
    if args.quiet {
        config.quiet = true;
    }
    if args.listen.is_some() {
        config.listen = args.listen.clone();
    }
    if args.pid_label {
        config.series.pid_label = true;
    }
    if let Some(n) = args.max_series {
        config.max_series = n;
    }
    if let Some(url) = &args.remote_write {
        // The flag sets the first receiver's URL (adds one when none).
        match config.remote_write.first_mut() {
            Some(first) => first.url = url.clone(),
            None => config
                .remote_write
                .push(remote_write_config::RemoteWriteConfig {
                    url: url.clone(),
                    ..Default::default()
                }),
        }
    }
    if let Err(err) = config.validate() {
        return Err(name_the_flag(err, args));
    }
    Ok(config)
}

/// A bad value that came from a flag is named by the flag, not the key.
fn name_the_flag(err: config::ConfigError, args: &WatchArgs) -> anyhow::Error {
    let config::ConfigError::Invalid { field, reason } = &err else {
        return err.into();
    };
    let flag = match *field {
        "interval" if args.interval.is_some() => "--interval",
        "runtime_interval" if args.runtime_interval.is_some() => "--runtime-interval",
        "profile_interval" if args.profile_interval.is_some() => "--profile-interval",
        "smaps" if args.smaps.is_some() => "--smaps",
        "max_series" if args.max_series.is_some() => "--max-series",
        "remote_write.url" if args.remote_write.is_some() => "--remote-write",
        _ => return err.into(),
    };
    anyhow::anyhow!("{flag}: {reason}")
}

/// Runs `memlens watch`.
pub fn run(args: &WatchArgs) -> anyhow::Result<()> {
    let config = effective_config(args)?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    signals::install().context("cannot install the SIGINT/SIGTERM handler")?;
    let root = match &args.root {
        Some(dir) => Root::at(dir),
        None => Root::host(),
    };
    let series = config.series.options()?;
    // A bad --listen is refused before the history is touched.
    let mut exporter = Exporter::start(&ExporterConfig {
        listen: config.listen.clone(),
        bearer_token_file: config.bearer_token_file.clone(),
        max_series: config.max_series,
        data_dir: config.data_dir.clone(),
        series: series.clone(),
    })?;
    let mut history = history::History::open(&config)?;
    let agent = AgentContext {
        data_dir: config.data_dir.clone(),
        history_max_age: config.retention.max_age,
        interval: config.interval,
        quiet: config.quiet,
        series,
    };
    let remote_writers = config
        .remote_write
        .iter()
        .map(|rw| RemoteWriter::start(&rw.target(), &agent))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut alerting = alerting::Alerting::start(&config, exporter.addr())?;
    let mut status = status::Status::new(config.quiet);
    if let Some(addr) = exporter.addr() {
        status.info(&format!(
            "memlens watch: serving http://{addr}/metrics and the dashboard at http://{addr}/"
        ));
    }
    status.info(&format!(
        "memlens watch: history in {}, every {} (Go runtime every {}, profiles {})",
        config.data_dir.display(),
        duration::format(config.interval),
        duration::format(config.runtime_interval),
        if config.profiling {
            format!("every {}", duration::format(config.profile_interval))
        } else {
            "off".to_string()
        }
    ));
    let options = CollectOptions {
        filter: ProcessFilter {
            pids: config.select.pids.clone(),
            cgroup: config.select.cgroup.clone(),
            go_only: config.select.go_only,
            // A watched pid that died is a normal event, not a reason to stop.
            skip_missing: true,
        },
        smaps: config.smaps_policy()?,
        // At most 5% of the interval walking page tables (and never more
        // than a one-off snapshot would), so the agent's cost stays small and
        // the targets' mmap locks are held briefly.
        smaps_budget: (config.interval / 20).min(crate::collect::SMAPS_BUDGET),
    };
    let limits = FetchLimits {
        connect_timeout: config.fetch.connect_timeout,
        total_timeout: config.fetch.timeout,
        max_body_bytes: config.fetch.max_body_bytes,
    };
    let go_worker = gotargets::GoWorker::start(
        gotargets::GoTargets::new(
            limits,
            config.runtime_interval,
            config.profiling.then_some(config.profile_interval),
        ),
        root.clone(),
    )
    .context("cannot start the Go-targets thread")?;
    let engine_config = memlens_analyze::Config {
        checks: findings::checks_config(&config.alerts.0),
        ..config.findings.engine_config()
    };
    let (mut live, kernel_log) = findings::LiveFindings::new(&root, engine_config);
    if let Err(why) = kernel_log {
        status.info(&format!(
            "memlens watch: OOM kills from the cgroup and host counters only ({why})"
        ));
    }
    // Tracing reads the live kernel: never on a fixture tree (--root).
    let mut evidence = match &args.root {
        Some(_) => None,
        None => evidence::TraceEvidence::new(&config.trace_on_critical),
    };
    let mut collector = Collector::default();
    // The instance_index of every live process (docs/metrics.md, "Series
    // identity"), stored with its labels so remote write sends what
    // /metrics shows.
    let mut identities = memlens_cardinality::Identities::default();
    let mut mysql = match &config.mysql {
        Some(c) => Some(
            crate::collect::mysql::MysqlCollector::new(c.clone())
                .map_err(|e| anyhow::anyhow!("[mysql]: {e}"))?,
        ),
        None => None,
    };
    let interval = config.interval;
    let mut next_cycle = Instant::now();
    let mut cycles_done = 0u64;
    loop {
        let started = Instant::now();
        match collector.snapshot(&root, &options) {
            Ok(mut snapshot) => {
                if let Some(mysql) = &mut mysql {
                    for failure in mysql.collect(&root, &mut snapshot) {
                        exporter.error("mysql", failure.stage);
                        status.error(&failure.message);
                    }
                }
                let mut points = snapshot_points(&snapshot);
                points.extend(findings::settings_points(&snapshot));
                let go_alive: Vec<(i32, u64)> = snapshot
                    .processes
                    .iter()
                    .filter(|p| p.go.is_some())
                    .map(|p| (p.pid, p.start_time))
                    .collect();
                let go_processes = go_alive.len();
                go_worker.offer(go_alive);
                // What the Go thread read since the last cycle joins this cycle.
                let mut profiles = Vec::new();
                for event in go_worker.drain() {
                    match event {
                        gotargets::GoEvent::Points(go_points) => points.extend(go_points),
                        gotargets::GoEvent::Profiles(fetched) => profiles.extend(fetched),
                        gotargets::GoEvent::Failure(failure) => {
                            exporter.error("go", failure.stage);
                            status.target_failure(failure.pid, failure.stage, &failure.message)
                        }
                    }
                }
                if let Some(evidence) = &mut evidence {
                    let collected = evidence.poll();
                    profiles.extend(collected.profiles);
                    for note in &collected.notes {
                        status.info(note);
                    }
                }
                let live_processes: Vec<memlens_cardinality::identity::Live> = snapshot
                    .processes
                    .iter()
                    .map(|p| memlens_cardinality::identity::Live {
                        pid: p.pid,
                        start_time: p.start_time,
                        comm: &p.comm,
                        cgroup: p.cgroup.as_ref().map(|c| c.path.as_str()),
                    })
                    .collect();
                let indexes = identities.assign(&live_processes);
                let written = history.record_cycle(&snapshot, &points, &profiles, &indexes);
                exporter.cycle(&snapshot, &points, &indexes);
                // The detectors see the instant as stored, so replay agrees.
                let ts_ms = match &written {
                    Ok(w) => w.ts_ms,
                    Err(_) => snapshot.taken_at_unix_ms as i64,
                };
                let events = live.observe(ts_ms, &snapshot, &points);
                if config.profiling {
                    for id in findings::LiveFindings::captures(&events, &snapshot) {
                        go_worker.profile_now(id);
                    }
                }
                if let Some(evidence) = &mut evidence {
                    evidence.request(&events, &snapshot);
                }
                if !events.is_empty() && written.is_ok() {
                    if let Err(err) = live.store(history.store_mut(), &events) {
                        exporter.error("store", "findings");
                        status.error(&format!("{err:#}"));
                    }
                }
                if let Some(alerting) = &mut alerting {
                    alerting.cycle(ts_ms, &live, &events, &snapshot, history.store_mut());
                    exporter.alerting(alerting.totals(), alerting.counts());
                }
                show_findings(&mut status, &live, &events);
                exporter.findings(&live.active(), &events, |e| {
                    live.name(e).map(str::to_string)
                });
                match written {
                    Ok(written) => status.cycle(&status::CycleReport {
                        snapshot: &snapshot,
                        go_processes,
                        stored_values: written.values,
                        stored_ts_ms: written.ts_ms,
                        stored_profiles: written.profiles,
                        store_bytes: history.size_bytes(),
                        cycle_seconds: started.elapsed().as_secs_f64(),
                    }),
                    Err(err) => {
                        exporter.error("store", "write");
                        status.error(&format!("{err:#}"))
                    }
                }
            }
            Err(err) => {
                exporter.error("snapshot", "collect");
                status.error(&format!("cannot take a snapshot: {err}"))
            }
        }
        if let Err(err) = history.maintain(unix_ms()) {
            exporter.error("store", "maintain");
            status.error(&format!("{err:#}"));
        }
        if !remote_writers.is_empty() {
            exporter.remote_write(remote_writers.iter().map(RemoteWriter::totals).collect());
        }
        exporter.finish_cycle(started.elapsed().as_secs_f64(), history.size_bytes());
        cycles_done += 1;
        if args.cycles.is_some_and(|n| cycles_done >= n) {
            break;
        }
        next_cycle += interval;
        // After a stall (suspend, an overloaded host) start again from now
        // rather than firing the missed cycles back to back.
        if next_cycle < Instant::now() {
            next_cycle = Instant::now();
        }
        if !signals::sleep_until(next_cycle) {
            break;
        }
    }
    if let Some(evidence) = evidence {
        evidence.stop();
    }
    let closed = history
        .close()
        .context("closing the history cleanly failed");
    // What the last cycles stored is sent before the agent ends.
    // They flush side by side, each within its flush_timeout.
    for writer in &remote_writers {
        writer.request_stop();
    }
    for writer in remote_writers {
        writer.join();
    }
    closed?;
    if let Some(signal) = signals::stop_signal_name() {
        status.info(&format!("memlens watch: stopped by {signal}"));
    }
    Ok(())
}

/// Hands the cycle's finding events and the active findings to the status.
fn show_findings(status: &mut status::Status, live: &findings::LiveFindings, events: &[Finding]) {
    let texts: Vec<(String, String)> = events
        .iter()
        .map(|f| {
            let word = event_word(f);
            let ts = f.cleared_at_ms.unwrap_or(f.fired_at_ms);
            let comm = live.name(&f.target);
            (
                finding_text(ts, word, f, comm),
                finding_summary(ts, word, f, comm),
            )
        })
        .collect();
    let active: Vec<String> = live
        .active()
        .iter()
        .map(|f| finding_summary(f.fired_at_ms, "ACTIVE", f, live.name(&f.target)))
        .collect();
    status.findings(&texts, active);
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
