//! The observation window of `memlens diagnose`: a snapshot of every process
//! at the start and at the end, and the Go runtime's numbers of the selected
//! Go processes read at both ends (memstats from expvar `/debug/vars`, else
//! the `go_*` series of `/metrics`; the GC settings in force as `memlens
//! advise` reads them). A one-line progress bar on stderr when it is a
//! terminal.
//!
//! With profiles on (not `--no-profiles`), each selected Go process serving
//! `/debug/pprof/` also gives at both ends ([`ProfileRead`]): its heap
//! profile (inuse_space per stack, and the map memory per owner with the
//! map calls read from `/proc/PID/exe`) and its goroutines (protobuf counts,
//! `?debug=2` for states, waits and creation sites, the goroutineleak profile
//! where Go 1.26+ serves it), as `memlens heap` and `memlens goroutines`
//! read them, each fetch bounded by [`profile_fetch_limits`].

use crate::advise::observe::{read_runtime, RuntimeSample};
use crate::collect::{self, CollectOptions};
use crate::target::{self, http, Endpoint, FetchLimits};
use anyhow::Context as _;
use memlens_analyze::gcpressure::Counters;
use memlens_goruntime::expvar::parse_expvar;
use memlens_goruntime::goroutine::Analysis;
use memlens_goruntime::pprof::{self, MapShare, Profile};
use memlens_goruntime::promtext::{parse_promtext, GoMetrics};
use memlens_linux::fs::Root;
use memlens_model::{ProcessSample, Snapshot};
use std::collections::HashMap;
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
    /// Its threads' run-queue wait since each started, summed (ns;
    /// `schedstat`, read just before the runtime).
    pub run_queue_wait_ns: Option<u64>,
}

/// The profiles of one Go process at one end of the window.
#[derive(Debug, Clone, Default)]
pub struct ProfileRead {
    /// Seconds since the window started (when the heap profile was asked for).
    pub at_seconds: f64,
    /// `inuse_space` of the heap profile as folded stacks (`root;...;leaf`).
    pub heap_stacks: Option<Vec<(String, u64)>>,
    /// The heap profile's sampling period in bytes (`MemProfileRate`).
    pub heap_sample_rate_bytes: i64,
    /// Map memory (`inuse_space`) per owner.
    pub map_share: Option<MapShare>,
    /// The goroutines: counts merged into `?debug=2`, proven leaks marked.
    pub goroutines: Option<Analysis>,
    /// How leaks were judged (`goroutineleak`, `leaked-marks`, `heuristics`).
    pub leak_method: Option<&'static str>,
    /// The URLs read.
    pub sources: Vec<String>,
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
    /// Its profiles at the start (`None`: profiles off or not served).
    pub profiles_start: Option<ProfileRead>,
    /// Its profiles at the end.
    pub profiles_end: Option<ProfileRead>,
    metrics: Option<Endpoint>,
    expvar: Option<Endpoint>,
    pprof: Option<Endpoint>,
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

/// Bounds of one profile fetch: 10 s, 32 MiB (a bigger `?debug=2` dump is
/// left out: the exact counts of the protobuf profile still answer).
pub fn profile_fetch_limits() -> FetchLimits {
    FetchLimits {
        total_timeout: Duration::from_secs(10),
        max_body_bytes: 32 << 20,
        ..FetchLimits::default()
    }
}

/// Observes for `window`: snapshots at both ends, the runtimes of the Go
/// processes `select` picks from the first snapshot at both ends, and their
/// profiles when `profiles` is set.
pub fn observe(
    root: &Root,
    options: &CollectOptions,
    window: Duration,
    profiles: bool,
    select: impl Fn(&ProcessSample) -> bool,
) -> anyhow::Result<Window> {
    let started = Instant::now();
    let first = collect::snapshot(root, options).context("reading the host's processes")?;
    // The window runs from the first snapshot's time (taken when its scan
    // ended) or the last Go runtime's first reading, whichever is later, so
    // that neither a slow scan nor a slow runtime (seen on a loaded machine:
    // 3 s asked, 0.96 s between a runtime's two readings) shortens it.
    let mut window_from = Instant::now();
    let limits = fetch_limits();
    let mut go = go_processes(root, &first, &limits, select);
    for g in &mut go {
        g.start = read(root, g, started, &limits);
        window_from = Instant::now();
        if profiles {
            g.profiles_start = read_profiles(root, g, started);
        }
    }
    if window.is_zero() {
        let last = first.clone();
        return Ok(Window { first, last, go });
    }
    wait(window_from, window, go.len());
    let last = collect::snapshot(root, options).context("reading the host's processes")?;
    read_ends(root, &mut go, started, &limits, profiles);
    Ok(Window { first, last, go })
}

/// The end of a window only, now: a snapshot of every process, and the
/// runtimes (and profiles when `profiles` is set) of the Go processes
/// `select` picks, read as [`observe`] reads the end of its window (the
/// `end` and `profiles_end` of each [`GoWindow`]; `first` is `last`).
/// Used when the start of the window comes from the agent's history.
pub fn observe_end(
    root: &Root,
    options: &CollectOptions,
    profiles: bool,
    select: impl Fn(&ProcessSample) -> bool,
) -> anyhow::Result<Window> {
    let started = Instant::now();
    let last = collect::snapshot(root, options).context("reading the host's processes")?;
    let limits = fetch_limits();
    let mut go = go_processes(root, &last, &limits, select);
    read_ends(root, &mut go, started, &limits, profiles);
    let first = last.clone();
    Ok(Window { first, last, go })
}

/// The Go processes of `snapshot` that `select` picks, with their endpoints.
fn go_processes(
    root: &Root,
    snapshot: &Snapshot,
    limits: &FetchLimits,
    select: impl Fn(&ProcessSample) -> bool,
) -> Vec<GoWindow> {
    snapshot
        .processes
        .iter()
        .filter(|p| p.go.is_some() && select(p))
        .map(|p| discover(root, p, limits))
        .collect()
}

/// Reads the end of the window of each of `go`.
fn read_ends(
    root: &Root,
    go: &mut [GoWindow],
    started: Instant,
    limits: &FetchLimits,
    profiles: bool,
) {
    for g in go {
        g.end = read(root, g, started, limits);
        if profiles {
            g.profiles_end = read_profiles(root, g, started);
        }
    }
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
            g.pprof = endpoints.iter().find(|e| e.pprof).cloned();
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
fn read(root: &Root, g: &mut GoWindow, started: Instant, limits: &FetchLimits) -> Option<GoRead> {
    if g.sources.is_empty() {
        return None;
    }
    let at_seconds = started.elapsed().as_secs_f64();
    let mut out = GoRead {
        at_seconds,
        run_queue_wait_ns: root.process_schedstat(g.pid).map(|s| s.run_queue_wait_ns),
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

/// Reads the heap and goroutine profiles of `g` now; `None` when it serves
/// no `/debug/pprof/` or neither answered.
fn read_profiles(root: &Root, g: &mut GoWindow, started: Instant) -> Option<ProfileRead> {
    let base = g.pprof.as_ref()?.base_url.clone();
    let limits = profile_fetch_limits();
    let mut out = ProfileRead {
        at_seconds: started.elapsed().as_secs_f64(),
        ..ProfileRead::default()
    };
    let heap_url = format!("{base}/debug/pprof/heap");
    match http::get(&heap_url, &limits)
        .map_err(|e| e.to_string())
        .and_then(|b| Profile::decode(&b).map_err(|e| format!("{heap_url}: {e}")))
    {
        Ok(profile) => {
            out.sources.push(heap_url);
            fill_heap(root, g.pid, &profile, &mut out, &mut g.notes);
        }
        Err(e) => push_once(&mut g.notes, e),
    }
    match crate::goroutines::load_live(&base, root, &limits) {
        Ok(loaded) => {
            out.sources
                .extend(loaded.sources.iter().map(|s| s.location.clone()));
            out.leak_method = Some(loaded.leak_method.name());
            out.goroutines = Some(loaded.analysis);
        }
        Err(e) => push_once(&mut g.notes, format!("goroutines of {base}: {e:#}")),
    }
    (out.heap_stacks.is_some() || out.goroutines.is_some()).then_some(out)
}

/// Takes the in-use stacks, the sampling period and the map memory per
/// owner of a decoded heap `profile` of process `pid` into `out`.
pub(super) fn fill_heap(
    root: &Root,
    pid: i32,
    profile: &Profile,
    out: &mut ProfileRead,
    notes: &mut Vec<String>,
) {
    out.heap_sample_rate_bytes = profile.period();
    match profile.require_sample_type("inuse_space") {
        Ok(index) => {
            out.heap_stacks = pprof::folded_stacks(profile, index).ok();
            let callees = map_callees(root, pid, profile, notes);
            out.map_share = pprof::map_share(profile, index, &callees).ok();
        }
        Err(e) => push_once(notes, e.to_string()),
    }
}

/// The calls of the heap profile's leaf locations, from the process's
/// executable (the map calls heap profiles hide); empty when unreadable.
fn map_callees(
    root: &Root,
    pid: i32,
    profile: &Profile,
    notes: &mut Vec<String>,
) -> HashMap<u64, String> {
    let path = root.path(format!("/proc/{pid}/exe"));
    let read = std::fs::File::open(&path)
        .map_err(|e| e.to_string())
        .and_then(|file| pprof::leaf_callees(&file, profile).map_err(|e| e.to_string()));
    match read {
        Ok(callees) => callees,
        Err(e) => {
            push_once(
                notes,
                format!(
                    "{}: {e} (map memory hidden by the runtime not seen)",
                    path.display()
                ),
            );
            HashMap::new()
        }
    }
}

pub(super) fn push_once(notes: &mut Vec<String>, note: String) {
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
