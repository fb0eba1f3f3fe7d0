//! The Go processes the agent reads runtime metrics and profiles from: their
//! endpoints are discovered once (and again after a while when none answered),
//! and every fetch is bounded by the configured timeouts and size cap.

use crate::target::{self, http, Endpoint, FetchLimits, Resource};
use memlens_analyze::RUN_QUEUE_WAIT;
use memlens_goruntime::expvar::{parse_expvar, MemStats};
use memlens_goruntime::pprof::Profile;
use memlens_goruntime::promtext::{parse_promtext, Exposition};
use memlens_linux::fs::Root;
use memlens_model::series::{Entity, Point};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most bytes read from a target's /debug/vars or /metrics.
const MAX_RUNTIME_BODY_BYTES: u64 = 4 << 20;

/// The most bytes of a `?debug=2` goroutine dump read (and kept, gzipped):
/// a larger dump is not kept (the counting profile is), and the failure says so.
pub const MAX_DEBUG2_BYTES: u64 = 8 << 20;

/// The most goroutines (as the counting profile of the same round says) for
/// which the `?debug=2` dump is asked: the runtime stops the world while it
/// writes every stack, so a target with more is not asked.
pub const MAX_DEBUG2_GOROUTINES: u64 = 10_000;

/// The stored kind of a `?debug=2` dump (gzipped text, as read).
const DEBUG2_KIND: &str = memlens_store::GOROUTINE_DEBUG2_KIND;

/// How long a process with no endpoint is left alone before looking again.
const REDISCOVER_AFTER: Duration = Duration::from_secs(120);

/// A Go process known to the agent.
struct GoTarget {
    endpoints: Vec<Endpoint>,
    discovered_at: Instant,
    last_runtime: Option<Instant>,
    last_profile: Option<Instant>,
}

/// A profile fetched from a target, ready to be stored.
pub struct FetchedProfile {
    /// Whose.
    pub entity: Entity,
    /// `heap` or `goroutine` (protobuf, gzipped as served), or
    /// [`DEBUG2_KIND`] (the `?debug=2` text, gzipped here).
    pub kind: &'static str,
    /// The bytes as stored.
    pub bytes: Vec<u8>,
}

/// One failure to read a target, for the agent's error counters and status line.
#[derive(Debug, Clone)]
pub struct FetchFailure {
    /// Whose.
    pub pid: i32,
    /// `discover`, `runtime`, `profile`, `goroutine_dump` (a `?debug=2`
    /// dump not kept).
    pub stage: &'static str,
    /// What went wrong.
    pub message: String,
}

/// What a round over the Go targets yields, one item at a time (so that at
/// most one profile, or one goroutine profile with its `?debug=2` dump, is
/// held per item in flight).
pub enum GoEvent {
    /// Runtime metric points of one target.
    Points(Vec<Point>),
    /// Profiles fetched together: they are stored in the same cycle, with the
    /// same timestamp (a goroutine profile and its `?debug=2` dump pair that way).
    Profiles(Vec<FetchedProfile>),
    /// A failure (the round goes on past it).
    Failure(FetchFailure),
}

/// The Go targets and when each was last read.
pub struct GoTargets {
    targets: HashMap<(i32, u64), GoTarget>,
    limits: FetchLimits,
    runtime_every: Duration,
    profile_every: Option<Duration>,
}

impl GoTargets {
    /// Targets read every `runtime_every`, profiled every `profile_every`
    /// (`None`: never), each fetch within `limits`.
    pub fn new(
        limits: FetchLimits,
        runtime_every: Duration,
        profile_every: Option<Duration>,
    ) -> GoTargets {
        GoTargets {
            targets: HashMap::new(),
            limits,
            runtime_every,
            profile_every,
        }
    }

    /// Makes the profiles of target `id` due at once (when profiling is on):
    /// evidence wanted before a predicted kill.
    pub fn profile_now(&mut self, id: (i32, u64)) {
        if let Some(target) = self.targets.get_mut(&id) {
            target.last_profile = None;
        }
    }

    /// Reads what is due from the Go processes `alive` ((pid, start time) of the
    /// Go processes of this cycle); forgets the ones that are gone.
    pub fn round(
        &mut self,
        root: &Root,
        alive: &[(i32, u64)],
        now: Instant,
        emit: &mut dyn FnMut(GoEvent),
    ) {
        self.targets.retain(|id, _| alive.contains(id));
        for &(pid, start_time) in alive {
            let limits = self.limits;
            let target = match self.targets.entry((pid, start_time)) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(GoTarget::discover(root, pid, &limits, emit, now))
                }
            };
            if target.endpoints.is_empty() {
                if now.duration_since(target.discovered_at) >= REDISCOVER_AFTER {
                    *target = GoTarget::discover(root, pid, &limits, emit, now);
                }
                if target.endpoints.is_empty() {
                    continue;
                }
            }
            let entity = Entity::Process { pid, start_time };
            if due(target.last_runtime, self.runtime_every, now) {
                target.last_runtime = Some(now);
                match read_runtime(&target.endpoints, &limits) {
                    Ok(mut values) => {
                        // Read with the GC counters: how long the threads
                        // waited for a CPU tells a starved machine's pauses
                        // from the GC's own (the GC pressure check).
                        if let Some(s) = root.process_schedstat(pid) {
                            values.push((RUN_QUEUE_WAIT, s.run_queue_wait_ns as f64 / 1e9));
                        }
                        emit(GoEvent::Points(
                            values
                                .into_iter()
                                .map(|(metric, value)| Point {
                                    entity: entity.clone(),
                                    metric,
                                    value,
                                })
                                .collect(),
                        ))
                    }
                    Err(message) => emit(GoEvent::Failure(FetchFailure {
                        pid,
                        stage: "runtime",
                        message,
                    })),
                }
            }
            if let Some(every) = self.profile_every {
                if due(target.last_profile, every, now) {
                    target.last_profile = Some(now);
                    fetch_profiles(&target.endpoints, &limits, &entity, pid, emit);
                }
            }
        }
    }
}

impl GoTarget {
    fn discover(
        root: &Root,
        pid: i32,
        limits: &FetchLimits,
        emit: &mut dyn FnMut(GoEvent),
        now: Instant,
    ) -> GoTarget {
        let endpoints = match target::discover(root, pid, limits) {
            Ok(endpoints) => endpoints,
            Err(err) => {
                emit(GoEvent::Failure(FetchFailure {
                    pid,
                    stage: "discover",
                    message: err.to_string(),
                }));
                Vec::new()
            }
        };
        GoTarget {
            endpoints,
            discovered_at: now,
            last_runtime: None,
            last_profile: None,
        }
    }
}

/// The Go targets read on a thread of their own, so a slow or hanging target
/// never delays the sampling of everything else. The agent hands it the Go
/// processes of each cycle and drains what it produced.
pub struct GoWorker {
    alive_tx: std::sync::mpsc::SyncSender<Vec<(i32, u64)>>,
    capture_tx: std::sync::mpsc::SyncSender<(i32, u64)>,
    events_rx: std::sync::mpsc::Receiver<GoEvent>,
}

impl GoWorker {
    /// Starts the thread.
    pub fn start(mut targets: GoTargets, root: Root) -> std::io::Result<GoWorker> {
        let (alive_tx, alive_rx) = std::sync::mpsc::sync_channel::<Vec<(i32, u64)>>(1);
        let (capture_tx, capture_rx) = std::sync::mpsc::sync_channel::<(i32, u64)>(64);
        // Two events in flight at most: a profile body is held once, here or there.
        let (events_tx, events_rx) = std::sync::mpsc::sync_channel::<GoEvent>(2);
        std::thread::Builder::new()
            .name("go-targets".to_string())
            .spawn(move || {
                for alive in alive_rx {
                    for id in capture_rx.try_iter() {
                        targets.profile_now(id);
                    }
                    let mut closed = false;
                    targets.round(&root, &alive, Instant::now(), &mut |event| {
                        closed = closed || events_tx.send(event).is_err();
                    });
                    if closed {
                        return;
                    }
                }
            })?;
        Ok(GoWorker {
            alive_tx,
            capture_tx,
            events_rx,
        })
    }

    /// Hands over this cycle's Go processes; skipped while the previous round
    /// is still running (its targets are read again next time).
    pub fn offer(&self, alive: Vec<(i32, u64)>) {
        let _ = self.alive_tx.try_send(alive);
    }

    /// Asks for the heap and goroutine profiles of Go process `id` in the
    /// next round, whatever the profile interval (profiling must be on).
    pub fn profile_now(&self, id: (i32, u64)) {
        let _ = self.capture_tx.try_send(id);
    }

    /// What the thread produced since the last call, waiting for none.
    pub fn drain(&self) -> Vec<GoEvent> {
        self.events_rx.try_iter().collect()
    }
}

fn due(last: Option<Instant>, every: Duration, now: Instant) -> bool {
    last.is_none_or(|last| now.duration_since(last) >= every)
}

/// Runtime metrics from expvar (preferred: memstats has everything) or /metrics.
fn read_runtime(
    endpoints: &[Endpoint],
    limits: &FetchLimits,
) -> Result<Vec<(&'static str, f64)>, String> {
    // expvar and /metrics of a Go service are kilobytes to a few MiB: a
    // smaller cap than for profiles keeps the agent small whatever a target sends.
    let limits = &FetchLimits {
        max_body_bytes: limits.max_body_bytes.min(MAX_RUNTIME_BODY_BYTES),
        ..*limits
    };
    let metrics = endpoints.iter().find(|e| e.metrics).map(|endpoint| {
        let url = format!("{}{}", endpoint.base_url, Resource::Metrics.path());
        let body = http::get(&url, limits).map_err(|e| e.to_string())?;
        let exposition = parse_promtext(&url, &body).map_err(|e| e.to_string())?;
        Ok::<_, String>(metrics_values(&exposition))
    });
    if let Some(endpoint) = endpoints.iter().find(|e| e.expvar) {
        let url = format!("{}{}", endpoint.base_url, Resource::Vars.path());
        let body = http::get(&url, limits).map_err(|e| e.to_string())?;
        let vars = parse_expvar(&url, &body).map_err(|e| e.to_string())?;
        if let Some(memstats) = vars.memstats {
            // memstats has no goroutine count and no GC settings: those
            // come from /metrics when the service serves it too (the
            // GOMEMLIMIT alerts and the dashboard need them).
            let mut values = memstats_values(&memstats);
            if let Some(Ok(extra)) = &metrics {
                for &(name, value) in extra {
                    if !values.iter().any(|(n, _)| *n == name) {
                        values.push((name, value));
                    }
                }
            }
            return Ok(values);
        }
    }
    metrics.unwrap_or_else(|| Err("no endpoint serves /debug/vars or /metrics".to_string()))
}

/// The history's Go metrics from expvar's memstats.
pub fn memstats_values(m: &MemStats) -> Vec<(&'static str, f64)> {
    let pairs: [(&'static str, Option<u64>); 15] = [
        ("go_heap_alloc_bytes", m.heap_alloc_bytes),
        ("go_heap_inuse_bytes", m.heap_inuse_bytes),
        ("go_heap_idle_bytes", m.heap_idle_bytes),
        ("go_heap_released_bytes", m.heap_released_bytes),
        ("go_heap_sys_bytes", m.heap_sys_bytes),
        ("go_heap_objects", m.heap_objects),
        ("go_stack_inuse_bytes", m.stack_inuse_bytes),
        ("go_sys_bytes", m.sys_bytes),
        ("go_next_gc_bytes", m.next_gc_bytes),
        ("go_gc_cycles_total", m.num_gc),
        ("go_gc_forced_cycles_total", m.num_forced_gc),
        ("go_gc_pause_ns_total", m.pause_total_ns),
        ("go_alloc_bytes_total", m.total_alloc_bytes),
        ("go_mallocs_total", m.mallocs),
        ("go_frees_total", m.frees),
    ];
    let mut values: Vec<(&'static str, f64)> = pairs
        .into_iter()
        .filter_map(|(name, value)| Some((name, value? as f64)))
        .collect();
    if let Some(fraction) = m.gc_cpu_fraction {
        values.push(("go_gc_cpu_fraction", fraction));
    }
    values
}

/// The same metrics from client_golang's `go_*` families (what a service
/// without expvar exposes), plus the goroutine count and the GC settings.
pub fn metrics_values(e: &Exposition) -> Vec<(&'static str, f64)> {
    let names: [(&'static str, &str); 16] = [
        ("go_heap_alloc_bytes", "go_memstats_heap_alloc_bytes"),
        ("go_heap_inuse_bytes", "go_memstats_heap_inuse_bytes"),
        ("go_heap_idle_bytes", "go_memstats_heap_idle_bytes"),
        ("go_heap_released_bytes", "go_memstats_heap_released_bytes"),
        ("go_heap_sys_bytes", "go_memstats_heap_sys_bytes"),
        ("go_heap_objects", "go_memstats_heap_objects"),
        ("go_stack_inuse_bytes", "go_memstats_stack_inuse_bytes"),
        ("go_sys_bytes", "go_memstats_sys_bytes"),
        ("go_next_gc_bytes", "go_memstats_next_gc_bytes"),
        ("go_alloc_bytes_total", "go_memstats_alloc_bytes_total"),
        ("go_mallocs_total", "go_memstats_mallocs_total"),
        ("go_frees_total", "go_memstats_frees_total"),
        ("go_goroutines", "go_goroutines"),
        ("go_threads", "go_threads"),
        ("go_gogc_percent", "go_gc_gogc_percent"),
        ("go_gomemlimit_bytes", "go_gc_gomemlimit_bytes"),
    ];
    let mut values: Vec<(&'static str, f64)> = names
        .into_iter()
        .filter_map(|(ours, theirs)| Some((ours, e.value(theirs).filter(|v| v.is_finite())?)))
        .collect();
    // go_gc_duration_seconds is a summary: its _count is the GC cycles, its _sum the pauses.
    if let Some(count) = e.value("go_gc_duration_seconds_count") {
        values.push(("go_gc_cycles_total", count));
    }
    if let Some(sum) = e.value("go_gc_duration_seconds_sum") {
        values.push(("go_gc_pause_ns_total", (sum * 1e9).round()));
    }
    values
}

/// The heap and goroutine profiles (protobuf) of a target, and the
/// `?debug=2` goroutine dump (which names each goroutine's creation site) when
/// the goroutine profile counts at most [`MAX_DEBUG2_GOROUTINES`] goroutines.
fn fetch_profiles(
    endpoints: &[Endpoint],
    limits: &FetchLimits,
    entity: &Entity,
    pid: i32,
    emit: &mut dyn FnMut(GoEvent),
) {
    let Some(endpoint) = endpoints.iter().find(|e| e.pprof) else {
        return;
    };
    let failure = |stage, message: String| {
        GoEvent::Failure(FetchFailure {
            pid,
            stage,
            message,
        })
    };
    let profile = |kind, bytes| FetchedProfile {
        entity: entity.clone(),
        kind,
        bytes,
    };
    let url = format!("{}{}", endpoint.base_url, Resource::Heap.path());
    match http::get(&url, limits) {
        Ok(bytes) => emit(GoEvent::Profiles(vec![profile("heap", bytes)])),
        Err(err) => emit(failure("profile", err.to_string())),
    }
    let url = format!(
        "{}{}",
        endpoint.base_url,
        Resource::Goroutine { debug: 0 }.path()
    );
    let counts = match http::get(&url, limits) {
        Ok(bytes) => bytes,
        Err(err) => return emit(failure("profile", err.to_string())),
    };
    let mut fetched = Vec::with_capacity(2);
    match goroutine_total(&counts) {
        Some(total) if total <= MAX_DEBUG2_GOROUTINES => {
            match fetch_debug2(&endpoint.base_url, limits) {
                Ok(gzipped) => fetched.push(profile(DEBUG2_KIND, gzipped)),
                Err(message) => emit(failure("goroutine_dump", message)),
            }
        }
        Some(total) => emit(failure(
            "goroutine_dump",
            format!(
            "{url}: {total} goroutines, more than {MAX_DEBUG2_GOROUTINES}: the ?debug=2 dump \
             (which stops the world while it is written) is not asked for; groups are by start function"
            ),
        )),
        None => emit(failure(
            "goroutine_dump",
            format!("{url}: not a goroutine profile; the ?debug=2 dump is not asked for"),
        )),
    }
    fetched.insert(0, profile("goroutine", counts));
    emit(GoEvent::Profiles(fetched));
}

/// The `?debug=2` dump of the target at `base_url`, at most
/// [`MAX_DEBUG2_BYTES`] (and the fetch cap), gzipped for the store.
fn fetch_debug2(base_url: &str, limits: &FetchLimits) -> Result<Vec<u8>, String> {
    let url = format!("{base_url}{}", Resource::Goroutine { debug: 2 }.path());
    let limits = FetchLimits {
        max_body_bytes: limits.max_body_bytes.min(MAX_DEBUG2_BYTES),
        ..*limits
    };
    let text = http::get(&url, &limits).map_err(|e| {
        format!("{e} (the ?debug=2 dump is not kept; groups are by start function)")
    })?;
    gzip_fast(&text).map_err(|e| format!("{url}: gzip: {e}"))
}

/// `bytes` gzipped at the fastest level (a dump of many identical stacks
/// shrinks tenfold or more even so).
pub fn gzip_fast(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// The goroutines a protobuf goroutine profile counts (`None`: it is not one).
pub fn goroutine_total(bytes: &[u8]) -> Option<u64> {
    let profile = Profile::decode_any(bytes).ok()?;
    let index = profile
        .sample_types()
        .iter()
        .position(|(kind, unit)| kind == "goroutine" && unit == "count")?;
    Some(
        profile
            .stacks()
            .map(|(_, values, _)| values.get(index).copied().unwrap_or(0).max(0) as u64)
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../goruntime/testdata/captures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn expvar_and_metrics_give_the_same_names() {
        let dir = format!(
            "{}/../goruntime/testdata/captures",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let vars = names
            .iter()
            .find(|n| n.ends_with("expvar.json"))
            .expect("an expvar capture");
        let metrics = names
            .iter()
            .find(|n| n.starts_with("prometheus") && n.ends_with("metrics.txt"))
            .expect("a /metrics capture");
        let memstats = parse_expvar(vars, &capture(vars))
            .unwrap()
            .memstats
            .unwrap();
        let from_vars = memstats_values(&memstats);
        let exposition = parse_promtext(metrics, &capture(metrics)).unwrap();
        let from_metrics = metrics_values(&exposition);
        // The value read independently from the JSON text.
        let json: serde_json::Value = serde_json::from_slice(&capture(vars)).unwrap();
        let heap_inuse = from_vars
            .iter()
            .find(|(n, _)| *n == "go_heap_inuse_bytes")
            .unwrap()
            .1;
        assert_eq!(
            Some(heap_inuse as u64),
            json["memstats"]["HeapInuse"].as_u64()
        );
        let cycles = from_vars
            .iter()
            .find(|(n, _)| *n == "go_gc_cycles_total")
            .unwrap()
            .1;
        assert_eq!(Some(cycles as u64), json["memstats"]["NumGC"].as_u64());
        for wanted in ["go_heap_inuse_bytes", "go_gc_cycles_total", "go_goroutines"] {
            assert!(
                from_metrics.iter().any(|(n, _)| *n == wanted),
                "{metrics}: no {wanted}"
            );
        }
    }

    #[test]
    fn the_goroutine_total_is_what_the_runtime_declares_in_debug1() {
        for version in ["1.19.8", "1.27.3"] {
            let counts = capture(&format!("go{version}-goroutine-leak-goroutine.pb.gz"));
            let debug1 = capture(&format!("go{version}-goroutine-leak-goroutine-debug1.txt"));
            let declared: u64 = String::from_utf8_lossy(&debug1)
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("goroutine profile: total "))
                .and_then(|n| n.trim().parse().ok())
                .expect("the debug=1 header");
            assert_eq!(goroutine_total(&counts), Some(declared), "go{version}");
        }
        // A heap profile is not a goroutine profile.
        let heap = std::fs::read_dir(format!(
            "{}/../goruntime/testdata/captures",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with("-heap.pb.gz"))
        .expect("a heap capture");
        assert_eq!(goroutine_total(&capture(&heap)), None, "{heap}");
        assert_eq!(goroutine_total(b"goroutine 1 [running]:"), None);
    }

    #[test]
    fn a_gzipped_debug2_dump_reads_back_as_served() {
        use std::io::Read;
        let text = capture("go1.27.3-goroutine-leak-goroutine-debug2.txt");
        let gzipped = gzip_fast(&text).unwrap();
        assert!(
            gzipped.len() * 4 < text.len(),
            "{} of {}",
            gzipped.len(),
            text.len()
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
    }
}
