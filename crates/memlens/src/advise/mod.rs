//! `memlens advise --pid N`: the GOMEMLIMIT, GOGC, cgroup `memory.high` /
//! `memory.max` and Kubernetes requests/limits for one Go process, as ready
//! snippets, with the reasoning in numbers (docs/advise.md).
//!
//! IO lives here and in [`observe`] (a short window of samples of the
//! process, its cgroup and its runtime); the decisions are
//! `memlens_analyze::gomemconfig`'s; [`render`] prints them.

pub(crate) mod observe;
mod render;

use anyhow::Context;
use memlens_analyze::gomemconfig::{
    self, resolve_gogc, resolve_gomemlimit, Config, Inputs, Recommendation,
};
use memlens_analyze::{Finding, Target};
use observe::Observation;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of `memlens advise`.
#[derive(Debug, clap::Args)]
pub struct AdviseArgs {
    /// The Go process to advise on.
    #[arg(long)]
    pub pid: i32,

    /// How long to observe it, in seconds (peak RSS, memory outside the Go runtime).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub window: f64,

    /// Print JSON (docs/advise.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Everything the output shows.
pub struct Advice {
    /// The process.
    pub pid: i32,
    /// The window actually observed, seconds.
    pub window_seconds: f64,
    /// What was seen.
    pub observation: Observation,
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
    if !(args.window.is_finite() && args.window >= 0.0 && args.window <= 3600.0) {
        anyhow::bail!("--window must be between 0 and 3600 seconds");
    }
    let window = Duration::from_secs_f64(args.window);
    // About ten samples, one every 0.2 to 1 s.
    let interval = (window / 10).clamp(Duration::from_millis(200), Duration::from_secs(1));
    let started = std::time::Instant::now();
    let observation = observe::observe(args.pid, window, interval)?;
    let advice = advise(args.pid, started.elapsed().as_secs_f64(), observation)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &render::json(&advice))?;
        writeln!(out)?;
    } else {
        render::text(&mut out, &advice)?;
    }
    out.flush()?;
    Ok(())
}

/// Turns an observation into the detector's inputs, the advice and findings.
pub(crate) fn advise(pid: i32, window_seconds: f64, obs: Observation) -> anyhow::Result<Advice> {
    if obs.go_version.is_none() {
        anyhow::bail!("process {pid} is not a Go program (no Go build info in /proc/{pid}/exe)");
    }
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
    // What the cgroup charges besides what the runtime counts against its limit.
    let outside = obs.peak(|s| {
        // The larger of the two: usage has the cgroup's other processes, page
        // cache and kernel memory; RSS has the binary's pages even when another
        // cgroup was charged for them (they are charged here once re-read).
        let charged = s.usage_bytes.max(s.rss_bytes)?;
        let counted = s
            .runtime
            .sys_bytes?
            .saturating_sub(s.runtime.heap_released_bytes?);
        Some(charged.saturating_sub(counted))
    });
    let non_heap = obs.peak(|s| Some(s.rss_bytes?.saturating_sub(s.runtime.heap_inuse_bytes?)));
    let peak_rss = obs.peak(|s| s.rss_bytes).max(obs.hwm_bytes);
    let peak_usage = match obs.cgroup_path {
        Some(_) => obs.peak(|s| s.usage_bytes),
        None => peak_rss,
    };
    let inputs = Inputs {
        cgroup_limit_bytes: obs.cgroup_limit_bytes,
        gomemlimit,
        gogc,
        outside_runtime_bytes: outside,
        non_heap_bytes: non_heap,
        peak_rss_bytes: peak_rss,
        peak_usage_bytes: peak_usage,
        live_heap_bytes: obs.trough(|s| s.runtime.heap_alloc_bytes),
    };
    let config = Config::default();
    let recommendation = gomemconfig::recommend(&inputs, &config);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis() as i64;
    let target = Target::Process {
        pid,
        start_time: obs.start_time,
    };
    let findings = gomemconfig::check(&inputs, &config, &target, now_ms);
    Ok(Advice {
        pid,
        window_seconds,
        observation: obs,
        inputs,
        recommendation,
        findings,
        setting_error,
    })
}
