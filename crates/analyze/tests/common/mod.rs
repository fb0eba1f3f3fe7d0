//! A simulated Go service in a memory cgroup, shaped like the real ones:
//! a GC sawtooth (the heap grows from the live size to GOGC's goal, then a
//! GC brings it back), a start-up ramp, an optional linear leak of live
//! memory, an RSS that follows the heap's peaks (Go's scavenger keeps about
//! the heap goal mapped) and a cgroup usage of RSS plus some page cache.
//! Sampled at the agent's default interval. Deterministic (seeded).

#![allow(dead_code)]

use memlens_analyze::{Engine, Finding};
use memlens_model::series::{Entity, Point};

pub const MIB: f64 = 1048576.0;

/// xorshift64*: deterministic noise without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-1, 1).
    pub fn sym(&mut self) -> f64 {
        self.unit() * 2.0 - 1.0
    }
}

/// The shape of one simulated service.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Live heap after start-up.
    pub live_bytes: f64,
    /// GOGC (heap goal = live × (1 + GOGC/100)).
    pub gogc: f64,
    /// Mean time between GCs (jittered ±30%) at `live_bytes`; as in Go,
    /// whose pacer starts a cycle when the heap has grown by GOGC % of the
    /// live heap, a cycle lasts longer in proportion as a leak grows the
    /// live heap (measured on a real Go 1.27 leak in a 160 MiB cgroup: its
    /// RSS's flat stretches were 3 s at 40 MiB, 10 s at 140 MiB).
    pub gc_period_seconds: f64,
    /// Start-up: the live heap ramps from 0 over this long.
    pub ramp_seconds: f64,
    /// Leak of live memory, bytes per second (0 = none).
    pub leak_bytes_per_second: f64,
    /// When the leak starts.
    pub leak_start_seconds: f64,
    /// Memory outside the Go heap (stacks, runtime, binary).
    pub overhead_bytes: f64,
    /// Page cache charged to the cgroup.
    pub page_cache_bytes: f64,
    /// Noise added to each sample (uniform ±).
    pub noise_bytes: f64,
    /// How far RSS falls back after a GC, as a share of the sawtooth height
    /// (0: RSS holds the peaks, as Go's scavenger mostly does; 1: it follows
    /// the heap down).
    pub rss_release_share: f64,
    /// One-off RSS steps (time, bytes) such as a new heap arena.
    pub rss_steps: Vec<(f64, f64)>,
    /// The cgroup's limit (the kill point).
    pub limit_bytes: f64,
    /// Sampling interval.
    pub interval_seconds: f64,
    /// The Go runtime is sampled every this many ticks.
    pub runtime_every: u32,
    /// How long to run (stops earlier at the kill).
    pub duration_seconds: f64,
    pub seed: u64,
}

impl Shape {
    pub fn go(live_mib: f64) -> Shape {
        Shape {
            live_bytes: live_mib * MIB,
            gogc: 100.0,
            gc_period_seconds: 2.0,
            ramp_seconds: 5.0,
            leak_bytes_per_second: 0.0,
            leak_start_seconds: 0.0,
            overhead_bytes: 8.0 * MIB,
            page_cache_bytes: 2.0 * MIB,
            noise_bytes: 0.25 * MIB,
            rss_release_share: 0.0,
            rss_steps: Vec::new(),
            limit_bytes: 256.0 * MIB,
            interval_seconds: 5.0,
            runtime_every: 6,
            duration_seconds: 1200.0,
            seed: 1,
        }
    }
}

/// One simulated instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub t_seconds: f64,
    pub heap_bytes: f64,
    pub rss_bytes: f64,
    pub usage_bytes: f64,
}

/// The continuous simulation on a 50 ms grid: the samples at the interval and
/// the kill time (first instant the cgroup usage reaches the limit), if any.
pub fn simulate(shape: &Shape) -> (Vec<Sample>, Option<f64>) {
    let mut rng = Rng::new(shape.seed);
    let dt = 0.05;
    let mut t = 0.0;
    let live_at = |t: f64| {
        let ramp = if shape.ramp_seconds > 0.0 {
            (t / shape.ramp_seconds).min(1.0)
        } else {
            1.0
        };
        shape.live_bytes * ramp
            + shape.leak_bytes_per_second * (t - shape.leak_start_seconds).max(0.0)
    };
    let mut cycle_start = 0.0;
    let mut cycle_len = shape.gc_period_seconds;
    let mut cycle_live = live_at(0.0);
    let mut rss_heap = 0.0_f64;
    let mut next_sample = 0.0;
    let mut samples = Vec::new();
    let mut kill = None;
    let factor = shape.gogc / 100.0;
    while t <= shape.duration_seconds {
        if t - cycle_start >= cycle_len {
            cycle_start = t;
            cycle_live = live_at(t);
            let growth = if shape.live_bytes > 0.0 {
                (cycle_live / shape.live_bytes).max(1.0)
            } else {
                1.0
            };
            cycle_len = shape.gc_period_seconds * growth * (1.0 + 0.3 * rng.sym());
            // After a GC the scavenger returns part of what was freed.
            let height = rss_heap - cycle_live;
            rss_heap -= height.max(0.0) * shape.rss_release_share;
        }
        let phase = (t - cycle_start) / cycle_len;
        let live_now = live_at(t);
        let heap = live_now.max(cycle_live * (1.0 + factor * phase));
        rss_heap = rss_heap.max(heap);
        let step: f64 = shape
            .rss_steps
            .iter()
            .filter(|s| s.0 <= t)
            .map(|s| s.1)
            .sum();
        let rss = rss_heap + shape.overhead_bytes + step;
        let usage = rss + shape.page_cache_bytes;
        if usage >= shape.limit_bytes {
            kill = Some(t);
            break;
        }
        if t >= next_sample - 1e-9 {
            let mut noisy = |v: f64| v + shape.noise_bytes * rng.sym();
            samples.push(Sample {
                t_seconds: t,
                heap_bytes: noisy(heap),
                rss_bytes: noisy(rss),
                usage_bytes: noisy(usage),
            });
            next_sample += shape.interval_seconds;
        }
        t += dt;
    }
    (samples, kill)
}

pub const EPOCH_MS: i64 = 1_795_000_000_000;

pub fn process() -> Entity {
    Entity::Process {
        pid: 4242,
        start_time: 1000,
    }
}

pub fn cgroup() -> Entity {
    Entity::Cgroup {
        path: "/sim".to_string(),
    }
}

/// Points of sample `i` as the agent would store them.
pub fn points(shape: &Shape, i: usize, s: &Sample) -> Vec<Point> {
    let p = |entity: Entity, metric: &'static str, value: f64| Point {
        entity,
        metric,
        value,
    };
    let mut out = vec![
        p(process(), "rss_bytes", s.rss_bytes),
        p(cgroup(), "usage_bytes", s.usage_bytes),
        p(cgroup(), "effective_limit_bytes", shape.limit_bytes),
        p(cgroup(), "limit_bytes", shape.limit_bytes),
    ];
    if i.is_multiple_of(shape.runtime_every.max(1) as usize) {
        out.push(p(process(), "go_heap_inuse_bytes", s.heap_bytes));
    }
    out
}

/// Runs the engine with default config over the samples; every finding
/// that fired or cleared, in order, with its instant (seconds).
pub fn run(shape: &Shape, samples: &[Sample]) -> Vec<(f64, Finding)> {
    let mut engine = Engine::new(memlens_analyze::Config::default());
    engine.set_process_cgroup(&process(), "/sim");
    let mut out = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let ts = EPOCH_MS + (s.t_seconds * 1000.0).round() as i64;
        for f in engine.observe(ts, &points(shape, i, s)) {
            out.push((s.t_seconds, f));
        }
    }
    out
}
