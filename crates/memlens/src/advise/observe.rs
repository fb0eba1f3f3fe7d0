//! Watching one Go process for a short window: its RSS, its cgroup's usage
//! and limit, and its runtime's memory and GC settings, sampled together.

use crate::collect::{self, CollectOptions, ProcessFilter, SmapsPolicy};
use crate::target::{self, http, Endpoint, FetchLimits};
use anyhow::Context;
use memlens_goruntime::expvar::parse_expvar;
use memlens_goruntime::promtext::{parse_promtext, GoMetrics};
use memlens_linux::fs::Root;
use memlens_linux::process::Status;
use std::time::{Duration, Instant};

/// The Go runtime's numbers of one sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeSample {
    /// `HeapAlloc`.
    pub heap_alloc_bytes: Option<u64>,
    /// `HeapInuse`.
    pub heap_inuse_bytes: Option<u64>,
    /// `Sys`.
    pub sys_bytes: Option<u64>,
    /// `HeapReleased`.
    pub heap_released_bytes: Option<u64>,
    /// `go_gc_gomemlimit_bytes` (`Some(None)`: exposed, no limit).
    pub gomemlimit_bytes: Option<Option<u64>>,
    /// `go_gc_gogc_percent` (`Some(None)`: exposed, GC off).
    pub gogc_percent: Option<Option<u64>>,
}

/// One sample of the process, its cgroup and its runtime.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// `VmRSS`.
    pub rss_bytes: Option<u64>,
    /// The cgroup's usage.
    pub usage_bytes: Option<u64>,
    /// The runtime's numbers (none when no endpoint answered).
    pub runtime: RuntimeSample,
}

/// What the window saw, and the process's identity.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// `comm`.
    pub comm: String,
    /// Start time in clock ticks after boot: (pid, start_time) names it.
    pub start_time: u64,
    /// The Go version from the build info.
    pub go_version: Option<String>,
    /// `GOMEMLIMIT` of the environment, raw.
    pub env_gomemlimit: Option<String>,
    /// `GOGC` of the environment, raw.
    pub env_gogc: Option<String>,
    /// The cgroup path.
    pub cgroup_path: Option<String>,
    /// The cgroup's effective limit (`None`: unlimited or no cgroup).
    pub cgroup_limit_bytes: Option<u64>,
    /// `memory.high` of the cgroup itself (v2), when set.
    pub cgroup_high_bytes: Option<u64>,
    /// `VmHWM` at the end of the window.
    pub hwm_bytes: Option<u64>,
    /// Where the runtime's numbers came from (URLs).
    pub runtime_sources: Vec<String>,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
    /// What could not be read.
    pub notes: Vec<String>,
}

/// Samples process `pid` every `interval` for `window` (at least once).
pub fn observe(pid: i32, window: Duration, interval: Duration) -> anyhow::Result<Observation> {
    let root = Root::host();
    let limits = FetchLimits {
        total_timeout: Duration::from_secs(5),
        max_body_bytes: 64 << 20,
        ..FetchLimits::default()
    };
    let endpoints = target::discover(&root, pid, &limits)
        .with_context(|| format!("finding the HTTP endpoints of process {pid}"))?;
    let mut obs = Observation::default();
    let metrics = endpoints.iter().find(|e| e.metrics).cloned();
    let expvar = endpoints.iter().find(|e| e.expvar).cloned();
    if let Some(e) = &metrics {
        obs.runtime_sources.push(format!("{}/metrics", e.base_url));
    }
    if let Some(e) = &expvar {
        obs.runtime_sources
            .push(format!("{}/debug/vars", e.base_url));
    }
    if metrics.is_none() && expvar.is_none() {
        obs.notes.push(format!(
            "process {pid} serves neither /metrics nor /debug/vars: the Go runtime's memory \
             and the limit set in code cannot be read"
        ));
    }
    let options = CollectOptions {
        filter: ProcessFilter {
            pids: vec![pid],
            ..ProcessFilter::default()
        },
        smaps: SmapsPolicy::Never,
        smaps_budget: Duration::ZERO,
    };
    let mut collector = collect::Collector::default();
    let start = Instant::now();
    let mut next = start;
    loop {
        let runtime = read_runtime(metrics.as_ref(), expvar.as_ref(), &limits, &mut obs.notes);
        let snapshot = collector
            .snapshot(&root, &options)
            .with_context(|| format!("reading process {pid}"))?;
        let process = snapshot
            .processes
            .into_iter()
            .next()
            .with_context(|| format!("process {pid} exited during the window"))?;
        if obs.samples.is_empty() {
            obs.comm = process.comm.clone();
            obs.start_time = process.start_time;
            if let Some(go) = &process.go {
                obs.go_version = Some(go.version.clone());
                obs.env_gomemlimit = go.gomemlimit.clone();
                obs.env_gogc = go.gogc.clone();
            }
        }
        if let Some(cg) = &process.cgroup {
            obs.cgroup_path = Some(cg.path.clone());
            obs.cgroup_limit_bytes = cg.effective_limit_bytes.and_then(|l| l.bytes());
            obs.cgroup_high_bytes = cg.high_bytes.and_then(|l| l.bytes());
        }
        obs.samples.push(Sample {
            rss_bytes: process.rss_bytes,
            usage_bytes: process.cgroup.as_ref().and_then(|c| c.usage_bytes),
            runtime,
        });
        next += interval;
        if next.duration_since(start) > window {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let status_path = format!("/proc/{pid}/status");
    match root.read_bytes(&status_path) {
        Ok(bytes) => match Status::parse(&status_path, &String::from_utf8_lossy(&bytes)) {
            Ok(status) => obs.hwm_bytes = status.vm_hwm_bytes,
            Err(e) => obs.notes.push(e.to_string()),
        },
        Err(e) => obs.notes.push(format!("{status_path}: {e}")),
    }
    Ok(obs)
}

/// Reads the runtime's numbers: memstats from expvar when served (every field
/// there), the GC settings in force from /metrics when served.
pub(crate) fn read_runtime(
    metrics: Option<&Endpoint>,
    expvar: Option<&Endpoint>,
    limits: &FetchLimits,
    notes: &mut Vec<String>,
) -> RuntimeSample {
    let mut sample = RuntimeSample::default();
    if let Some(endpoint) = metrics {
        let url = format!("{}/metrics", endpoint.base_url);
        match http::get(&url, limits)
            .map_err(|e| e.to_string())
            .and_then(|b| parse_promtext(&url, &b).map_err(|e| e.to_string()))
        {
            Ok(exposition) => {
                let g = GoMetrics::from_exposition(&exposition);
                sample = RuntimeSample {
                    heap_alloc_bytes: g.heap_alloc_bytes,
                    heap_inuse_bytes: g.heap_inuse_bytes,
                    sys_bytes: g.sys_bytes,
                    heap_released_bytes: g.heap_released_bytes,
                    gomemlimit_bytes: g.gomemlimit_bytes,
                    gogc_percent: g.gogc_percent,
                };
            }
            Err(e) => push_once(notes, e),
        }
    }
    if let Some(endpoint) = expvar {
        let url = format!("{}/debug/vars", endpoint.base_url);
        match http::get(&url, limits)
            .map_err(|e| e.to_string())
            .and_then(|b| parse_expvar(&url, &b).map_err(|e| e.to_string()))
        {
            Ok(vars) => {
                if let Some(m) = vars.memstats {
                    sample.heap_alloc_bytes = m.heap_alloc_bytes.or(sample.heap_alloc_bytes);
                    sample.heap_inuse_bytes = m.heap_inuse_bytes.or(sample.heap_inuse_bytes);
                    sample.sys_bytes = m.sys_bytes.or(sample.sys_bytes);
                    sample.heap_released_bytes =
                        m.heap_released_bytes.or(sample.heap_released_bytes);
                }
            }
            Err(e) => push_once(notes, e),
        }
    }
    sample
}

fn push_once(notes: &mut Vec<String>, note: String) {
    if !notes.contains(&note) {
        notes.push(note);
    }
}

impl Sample {
    /// What the cgroup charges besides what the Go runtime counts against
    /// its limit: `max(usage, RSS) - (Sys - HeapReleased)`, floored at 0.
    /// The larger of the two charges: usage has the cgroup's other
    /// processes, page cache and kernel memory; RSS has the binary's pages
    /// even when another cgroup was charged for them (they are charged here
    /// once re-read). `None` without the runtime's numbers or either charge.
    pub fn outside_runtime_bytes(&self) -> Option<u64> {
        memlens_analyze::gomemconfig::outside_runtime_bytes(
            self.usage_bytes,
            self.rss_bytes,
            self.runtime.sys_bytes,
            self.runtime.heap_released_bytes,
        )
    }

    /// RSS minus the Go heap in use (stacks, runtime metadata, idle heap
    /// not yet returned, non-Go memory), floored at 0.
    pub fn non_heap_bytes(&self) -> Option<u64> {
        Some(
            self.rss_bytes?
                .saturating_sub(self.runtime.heap_inuse_bytes?),
        )
    }
}

impl Observation {
    /// The highest of `f` over the samples.
    pub fn peak(&self, f: impl Fn(&Sample) -> Option<u64>) -> Option<u64> {
        self.samples.iter().filter_map(f).max()
    }

    /// The lowest of `f` over the samples.
    pub fn trough(&self, f: impl Fn(&Sample) -> Option<u64>) -> Option<u64> {
        self.samples.iter().filter_map(f).min()
    }

    /// The runtime's exposed GOMEMLIMIT and GOGC (the last sample that had them).
    pub fn runtime_settings(&self) -> (Option<Option<u64>>, Option<Option<u64>>) {
        let last = |f: fn(&RuntimeSample) -> Option<Option<u64>>| {
            self.samples.iter().rev().find_map(|s| f(&s.runtime))
        };
        (last(|r| r.gomemlimit_bytes), last(|r| r.gogc_percent))
    }
}
