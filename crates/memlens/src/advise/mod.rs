//! `memlens advise --pid N`: the GOMEMLIMIT, GOGC, cgroup `memory.high` /
//! `memory.max` and Kubernetes requests/limits for one Go process, as ready
//! snippets, with the reasoning in numbers (docs/advise.md).
//!
//! IO lives here, in [`observe`] (a short window of samples of the
//! process, its cgroup and its runtime) and in [`history`] (the peaks of
//! the agent's store, when it holds the process: pid AND start time;
//! then the live read is a single one unless `--window` is given); the
//! decisions are `memlens_analyze::gomemconfig`'s; [`render`] prints them.

pub(crate) mod history;
pub(crate) mod observe;
mod render;

use crate::duration;
use anyhow::Context;
use history::{Figure, Peaks};
use memlens_analyze::gomemconfig::{
    self, resolve_gogc, resolve_gomemlimit, Config, Inputs, Recommendation,
};
use memlens_analyze::{Finding, Target};
use observe::Observation;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The live window without a history.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Options of `memlens advise`.
#[derive(Debug, clap::Args)]
#[command(after_help = duration::HELP)]
pub struct AdviseArgs {
    /// The Go process to advise on.
    #[arg(long)]
    pub pid: i32,

    /// How long to observe it live (peak RSS, memory outside the Go runtime;
    /// at most 1h) [default: 10s without a history; a single read with one].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse, allow_hyphen_values = true)]
    pub window: Option<Duration>,

    /// Print JSON (docs/advise.md) instead of text.
    #[arg(long)]
    pub json: bool,

    /// The agent's history (`memlens watch --data DIR`) to take the peaks
    /// from [default: the agent's default data directory]; given
    /// explicitly, a store that cannot be read is an error.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// How far back the history is looked at (the store's retention bounds
    /// it anyway).
    #[arg(long, default_value = "1d", value_name = "DURATION",
          value_parser = duration::parse, allow_hyphen_values = true)]
    pub history: Duration,

    /// Observe a live window only (`--window`), even with a history.
    #[arg(long)]
    pub no_history: bool,
}

/// The history the peaks were merged with.
#[derive(Debug, Clone)]
pub struct HistoryUsed {
    /// The store's directory.
    pub dir: PathBuf,
    /// How far back it was looked at, seconds (`--history`).
    pub lookback_seconds: f64,
    /// From the oldest stored sample of the process to the live read, seconds.
    pub span_seconds: f64,
    /// The stored peaks.
    pub peaks: Peaks,
}

/// The peaks the advice rests on, each with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// The process's peak RSS.
    pub peak_rss: Figure,
    /// The cgroup's peak usage (the peak RSS without a cgroup).
    pub peak_usage: Figure,
    /// The most memory charged outside what the Go runtime counts.
    pub outside: Figure,
    /// The most RSS minus Go heap in use.
    pub non_heap: Figure,
}

/// Everything the output shows.
pub struct Advice {
    /// The process.
    pub pid: i32,
    /// The live window actually observed, seconds.
    pub window_seconds: f64,
    /// What was seen live.
    pub observation: Observation,
    /// The peaks and their sources.
    pub figures: Figures,
    /// Set when the peaks were merged with the agent's history.
    pub history: Option<HistoryUsed>,
    /// Why the history was not used, when it was tried.
    pub history_note: Option<String>,
    /// The detector's inputs.
    pub inputs: Inputs,
    /// The advice.
    pub recommendation: Recommendation,
    /// The findings about the settings in force.
    pub findings: Vec<Finding>,
    /// The raw GOMEMLIMIT of the environment could not be parsed (the runtime
    /// would have refused to start with it).
    pub setting_error: Option<String>,
}

/// Runs `memlens advise`.
pub fn run(args: &AdviseArgs) -> anyhow::Result<()> {
    if let Some(window) = args.window {
        crate::diagnose::check_window(window)?;
    }
    if args.history.is_zero() {
        anyhow::bail!("--history: must be more than 0s");
    }
    let advice = gather(args)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        // As an io::Error, so that a closed pipe is not reported as a failure.
        serde_json::to_writer_pretty(&mut out, &render::json(&advice))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        render::text(&mut out, &advice)?;
    }
    out.flush()?;
    Ok(())
}

/// Observes `pid` live for `window`: about ten samples, one every
/// 0.2 to 1 s (a single read for 0); with the seconds it took.
fn observe_live(pid: i32, window: Duration) -> anyhow::Result<(Observation, f64)> {
    let interval = (window / 10).clamp(Duration::from_millis(200), Duration::from_secs(1));
    let started = Instant::now();
    let obs = observe::observe(pid, window, interval)?;
    ensure_go(pid, &obs)?;
    Ok((obs, started.elapsed().as_secs_f64()))
}

fn ensure_go(pid: i32, obs: &Observation) -> anyhow::Result<()> {
    if obs.go_version.is_none() {
        anyhow::bail!("process {pid} is not a Go program (no Go build info in /proc/{pid}/exe)");
    }
    Ok(())
}

fn now_unix_ms() -> anyhow::Result<i64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis() as i64)
}

/// The advice: peaks from the agent's history merged with a short live
/// read when the store holds the process, else from a live window; a
/// default store that cannot be read, or that does not hold the process,
/// is one note on stderr and a live window.
fn gather(args: &AdviseArgs) -> anyhow::Result<Advice> {
    let pid = args.pid;
    let live = |note: Option<String>| -> anyhow::Result<Advice> {
        let window = args.window.unwrap_or(DEFAULT_WINDOW);
        if let Some(note) = &note {
            eprintln!(
                "advise: {note}; observing {} live",
                duration::format(window)
            );
        }
        let (obs, took) = observe_live(pid, window)?;
        let mut advice = advise_with(pid, took, obs, None)?;
        advice.history_note = note;
        Ok(advice)
    };
    if args.no_history {
        return live(None);
    }
    let explicit = args.store.is_some();
    let (store, dir) = match crate::diagnose::history::open_chosen(args.store.as_deref())? {
        Ok(opened) => opened,
        Err(why) => return live(Some(why)),
    };
    // The live read: what the store does not hold (settings, the
    // environment, VmHWM) and the process's identity.
    let (obs, took) = observe_live(pid, args.window.unwrap_or(Duration::ZERO))?;
    let now_ms = now_unix_ms()?;
    let from_ms = now_ms.saturating_sub(duration::millis_i64(args.history));
    let read = history::read(
        &store,
        pid,
        obs.start_time,
        obs.cgroup_path.as_deref(),
        from_ms,
        now_ms,
    );
    match read {
        Ok(Some(peaks)) => {
            let used = HistoryUsed {
                dir,
                lookback_seconds: args.history.as_secs_f64(),
                span_seconds: (now_ms - peaks.first_unix_ms).max(0) as f64 / 1000.0,
                peaks,
            };
            advise_with(pid, took, obs, Some(used))
        }
        Ok(None) => live(Some(format!(
            "{} holds no sample of process {pid} (start time {}) within the last {}",
            dir.display(),
            obs.start_time,
            duration::format(args.history)
        ))),
        Err(e) if explicit => Err(e.context(format!("reading the history in {}", dir.display()))),
        Err(e) => live(Some(format!(
            "reading the history in {}: {e:#}",
            dir.display()
        ))),
    }
}

/// Turns an observation (a live window) into the detector's inputs, the
/// advice and findings.
pub(crate) fn advise(pid: i32, window_seconds: f64, obs: Observation) -> anyhow::Result<Advice> {
    advise_with(pid, window_seconds, obs, None)
}

/// [`advise`] with the peaks of the agent's history merged in: each figure
/// is the higher of the live and the stored peak.
fn advise_with(
    pid: i32,
    window_seconds: f64,
    obs: Observation,
    history: Option<HistoryUsed>,
) -> anyhow::Result<Advice> {
    ensure_go(pid, &obs)?;
    let (runtime_limit, runtime_gogc) = obs.runtime_settings();
    let mut setting_error = None;
    let gomemlimit = resolve_gomemlimit(runtime_limit, obs.env_gomemlimit.as_deref())
        .unwrap_or_else(|e| {
            setting_error = Some(e.to_string());
            gomemconfig::MemoryLimit {
                bytes: None,
                source: gomemconfig::Source::Default,
            }
        });
    let gogc = resolve_gogc(runtime_gogc, obs.env_gogc.as_deref());
    let stored = history.as_ref().map(|h| &h.peaks);
    let count = |f: fn(&observe::Sample) -> Option<u64>| {
        obs.samples.iter().filter(|s| f(s).is_some()).count()
    };
    let live_rss = obs.peak(|s| s.rss_bytes).max(obs.hwm_bytes);
    let peak_rss = history::merge(live_rss, count(|s| s.rss_bytes), stored.and_then(|p| p.rss));
    let peak_usage = match obs.cgroup_path {
        Some(_) => history::merge(
            obs.peak(|s| s.usage_bytes),
            count(|s| s.usage_bytes),
            stored.and_then(|p| p.usage),
        ),
        None => peak_rss,
    };
    let figures = Figures {
        peak_rss,
        peak_usage,
        outside: history::merge(
            obs.peak(observe::Sample::outside_runtime_bytes),
            count(observe::Sample::outside_runtime_bytes),
            stored.and_then(|p| p.outside),
        ),
        non_heap: history::merge(
            obs.peak(observe::Sample::non_heap_bytes),
            count(observe::Sample::non_heap_bytes),
            stored.and_then(|p| p.non_heap),
        ),
    };
    let inputs = Inputs {
        cgroup_limit_bytes: obs.cgroup_limit_bytes,
        gomemlimit,
        gogc,
        outside_runtime_bytes: figures.outside.bytes,
        non_heap_bytes: figures.non_heap.bytes,
        peak_rss_bytes: figures.peak_rss.bytes,
        peak_usage_bytes: figures.peak_usage.bytes,
        live_heap_bytes: obs.trough(|s| s.runtime.heap_alloc_bytes),
    };
    let config = Config::default();
    let recommendation = gomemconfig::recommend(&inputs, &config);
    let now_ms = now_unix_ms()?;
    let target = Target::Process {
        pid,
        start_time: obs.start_time,
    };
    let findings = gomemconfig::check(&inputs, &config, &target, now_ms);
    Ok(Advice {
        pid,
        window_seconds,
        observation: obs,
        figures,
        history,
        history_note: None,
        inputs,
        recommendation,
        findings,
        setting_error,
    })
}
