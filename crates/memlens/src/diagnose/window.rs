//! The observation window of `memlens diagnose`: a snapshot of every process
//! at the start and at the end, and the Go runtime's numbers of the selected
//! Go processes read at both ends (memstats from expvar `/debug/vars`, else
//! the `go_*` series of `/metrics`; the GC settings in force as `memlens
//! advise` reads them). A one-line progress bar on stderr when it is a
//! terminal.

use crate::advise::observe::{read_runtime, RuntimeSample};
use crate::collect::{self, CollectOptions};
use crate::target::{self, http, Endpoint, FetchLimits};
use anyhow::Context as _;
use memlens_analyze::gcpressure::Counters;
use memlens_goruntime::expvar::parse_expvar;
use memlens_goruntime::promtext::{parse_promtext, GoMetrics};
use memlens_linux::fs::Root;
use memlens_model::{ProcessSample, Snapshot};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The runtime's heap numbers at one instant (memstats names).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeapNumbers {
    /// `Sys`.
    pub sys_bytes: Option<u64>,
    /// `HeapSys`.
    pub heap_sys_bytes: Option<u64>,
    /// `HeapInuse`.
    pub heap_inuse_bytes: Option<u64>,
    /// `HeapIdle`.
    pub heap_idle_bytes: Option<u64>,
    /// `HeapReleased`.
    pub heap_released_bytes: Option<u64>,
    /// `StackSys`.
    pub stack_sys_bytes: Option<u64>,
}

/// What was read of one Go process's runtime at one end of the window.
#[derive(Debug, Clone, Default)]
pub struct GoRead {
    /// Seconds since the window started.
    pub at_seconds: f64,
    /// The GC counters.
    pub gc: Counters,
    /// The heap's parts.
    pub heap: HeapNumbers,
    /// What `memlens advise` reads (GOMEMLIMIT and GOGC in force, ...).
    pub runtime: RuntimeSample,
    /// `true` when memstats came from expvar, `false` from /metrics.
    pub from_expvar: bool,
}

/// One selected Go process observed over the window.
#[derive(Debug, Clone, Default)]
pub struct GoWindow {
    /// Its pid.
    pub pid: i32,
    /// Its start time (clock ticks after boot).
    pub start_time: u64,
    /// The URLs the runtime's numbers came from.
    pub sources: Vec<String>,
    /// At the start (`None`: nothing answered).
    pub start: Option<GoRead>,
    /// At the end.
    pub end: Option<GoRead>,
    /// What could not be read.
    pub notes: Vec<String>,
    metrics: Option<Endpoint>,
    expvar: Option<Endpoint>,
}

impl GoWindow {
    /// Seconds between the two reads of the runtime.
    pub fn window_seconds(&self) -> Option<f64> {
        Some(self.end.as_ref()?.at_seconds - self.start.as_ref()?.at_seconds)
    }
}

/// What the window saw.
pub struct Window {
    /// The snapshot at the start.
    pub first: Snapshot,
    /// The snapshot at the end (the same as `first` for a zero window).
    pub last: Snapshot,
    /// The selected Go processes of the first snapshot.
    pub go: Vec<GoWindow>,
}

fn fetch_limits() -> FetchLimits {
    FetchLimits {
        total_timeout: Duration::from_secs(5),
        max_body_bytes: 64 << 20,
        ..FetchLimits::default()
    }
}

/// Observes for `window`: snapshots at both ends, the runtimes of the Go
/// processes `select` picks from the first snapshot at both ends.
pub fn observe(
    root: &Root,
    options: &CollectOptions,
    window: Duration,
    select: impl Fn(&ProcessSample) -> bool,
) -> anyhow::Result<Window> {
    let started = Instant::now();
    let first = collect::snapshot(root, options).context("reading the host's processes")?;
    let limits = fetch_limits();
    let mut go: Vec<GoWindow> = first
        .processes
        .iter()
        .filter(|p| p.go.is_some() && select(p))
        .map(|p| discover(root, p, &limits))
        .collect();
    for g in &mut go {
        g.start = read(g, started, &limits);
    }
    if window.is_zero() {
        let last = first.clone();
        return Ok(Window { first, last, go });
    }
    wait(started, window, go.len());
    let last = collect::snapshot(root, options).context("reading the host's processes")?;
    for g in &mut go {
        g.end = read(g, started, &limits);
    }
    Ok(Window { first, last, go })
}

fn discover(root: &Root, p: &ProcessSample, limits: &FetchLimits) -> GoWindow {
    let mut g = GoWindow {
        pid: p.pid,
        start_time: p.start_time,
        ..GoWindow::default()
    };
    match target::discover(root, p.pid, limits) {
        Ok(endpoints) => {
            g.metrics = endpoints.iter().find(|e| e.metrics).cloned();
            g.expvar = endpoints.iter().find(|e| e.expvar).cloned();
        }
        Err(e) => g.notes.push(e.to_string()),
    }
    if let Some(e) = &g.expvar {
        g.sources.push(format!("{}/debug/vars", e.base_url));
    }
    if let Some(e) = &g.metrics {
        g.sources.push(format!("{}/metrics", e.base_url));
    }
    if g.sources.is_empty() {
        g.notes.push(format!(
            "process {} serves neither /debug/vars nor /metrics: no Go runtime numbers",
            p.pid
        ));
    }
    g
}

/// Reads the runtime of `g` now; `None` when nothing answered.
fn read(g: &mut GoWindow, started: Instant, limits: &FetchLimits) -> Option<GoRead> {
    if g.sources.is_empty() {
        return None;
    }
    let at_seconds = started.elapsed().as_secs_f64();
    let mut out = GoRead {
        at_seconds,
        ..GoRead::default()
    };
    let mut ok = false;
    if let Some(e) = &g.expvar {
        let url = format!("{}/debug/vars", e.base_url);
        match http::get(&url, limits)
            .map_err(|e| e.to_string())
            .and_then(|b| parse_expvar(&url, &b).map_err(|e| e.to_string()))
        {
            Ok(vars) => {
                if let Some(m) = vars.memstats {
                    out.gc = Counters {
                        num_gc: m.num_gc,
                        pause_total_ns: m.pause_total_ns,
                        total_alloc_bytes: m.total_alloc_bytes,
                        mallocs: m.mallocs,
                        gc_cpu_fraction: m.gc_cpu_fraction,
                        heap_alloc_bytes: m.heap_alloc_bytes,
                    };
                    out.heap = HeapNumbers {
                        sys_bytes: m.sys_bytes,
                        heap_sys_bytes: m.heap_sys_bytes,
                        heap_inuse_bytes: m.heap_inuse_bytes,
                        heap_idle_bytes: m.heap_idle_bytes,
                        heap_released_bytes: m.heap_released_bytes,
                        stack_sys_bytes: m.stack_sys_bytes,
                    };
                    out.from_expvar = true;
                    ok = true;
                }
            }
            Err(e) => push_once(&mut g.notes, e),
        }
    }
    if !ok {
        if let Some(e) = &g.metrics {
            let url = format!("{}/metrics", e.base_url);
            match http::get(&url, limits)
                .map_err(|e| e.to_string())
                .and_then(|b| parse_promtext(&url, &b).map_err(|e| e.to_string()))
            {
                Ok(exposition) => {
                    let m = GoMetrics::from_exposition(&exposition);
                    let gc = m.gc_duration.as_ref();
                    out.gc = Counters {
                        num_gc: gc.and_then(|d| d.count),
                        pause_total_ns: gc
                            .and_then(|d| d.sum_seconds)
                            .filter(|s| s.is_finite() && *s >= 0.0)
                            .map(|s| (s * 1e9) as u64),
                        total_alloc_bytes: m.alloc_bytes_total,
                        mallocs: m.mallocs_total,
                        gc_cpu_fraction: None,
                        heap_alloc_bytes: m.heap_alloc_bytes,
                    };
                    out.heap = HeapNumbers {
                        sys_bytes: m.sys_bytes,
                        heap_sys_bytes: m.heap_sys_bytes,
                        heap_inuse_bytes: m.heap_inuse_bytes,
                        heap_idle_bytes: m.heap_idle_bytes,
                        heap_released_bytes: m.heap_released_bytes,
                        stack_sys_bytes: m.stack_sys_bytes,
                    };
                    ok = true;
                }
                Err(e) => push_once(&mut g.notes, e),
            }
        }
    }
    out.runtime = read_runtime(g.metrics.as_ref(), g.expvar.as_ref(), limits, &mut g.notes);
    ok.then_some(out)
}

fn push_once(notes: &mut Vec<String>, note: String) {
    if !notes.contains(&note) {
        notes.push(note);
    }
}

/// Sleeps until `window` after `started`, drawing a progress bar on a
/// terminal's stderr.
fn wait(started: Instant, window: Duration, go_processes: usize) {
    let terminal = std::io::stderr().is_terminal();
    let step = Duration::from_millis(if terminal { 200 } else { 1000 });
    loop {
        let elapsed = started.elapsed();
        if elapsed >= window {
            break;
        }
        if terminal {
            let done = (elapsed.as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0);
            let filled = (done * 30.0).round() as usize;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\rdiagnose: observing ({go_processes} Go processes) [{}{}] {:.0}/{:.0} s ",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                elapsed.as_secs_f64(),
                window.as_secs_f64()
            );
            let _ = err.flush();
        }
        std::thread::sleep(step.min(window - elapsed));
    }
    if terminal {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}\r", " ".repeat(78));
        let _ = err.flush();
    }
}
