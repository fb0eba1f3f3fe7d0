//! Heap growth by allocation site over an observation window: the
//! `inuse_space` difference per allocation stack between a heap profile at
//! the start and one at the end (`go tool pprof -traces -base START END`).
//! Pure: the two profiles' folded stacks (from
//! [`memlens_goruntime::pprof::folded_stacks`]) in, the growing sites and at
//! most one [`Finding`] out ([`HEAP_GROWTH_SITE`], docs/findings.md).
//!
//! A site is a whole stack, not a function: the leaf is often a helper that
//! every caller shares (`main.newChunk` allocates both the leak and the
//! garbage of the heap-leak workload); the caller that keeps the memory
//! (`main.retainLeakChunk`) is only told apart by the stack. A site is named
//! by its leaf and its callers, innermost first.
//!
//! A heap profile is sampled: the runtime records an allocation with
//! probability `1 - exp(-size / rate)` (rate 512 KiB by default) and scales
//! it back up, so a site's bytes are an estimate whose variance is at most
//! `bytes × rate`. A site grows only when its flat growth passes
//! [`Config::noise_z`] standard deviations of that noise (both ends), as well
//! as [`Config::min_growth_bytes`]: two profiles of a steady 32 MiB ring of
//! 64 KiB chunks differ by ~4 MiB from sampling alone.

use crate::finding::{Evidence, Finding, Layer, Severity, Target};
use std::collections::HashMap;

/// Stable id: the in-use heap of an allocation site grew over the window.
pub const HEAP_GROWTH_SITE: &str = "go.heap_growth_site";

/// Thresholds of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// A site must grow by at least this much (4 MiB).
    pub min_growth_bytes: u64,
    /// ... and by this many standard deviations of the sampling noise (4).
    pub noise_z: f64,
    /// Growing sites listed in the finding's data (5).
    pub top_sites: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_growth_bytes: 4 << 20,
            noise_z: 4.0,
            top_sites: 5,
        }
    }
}

/// Frames of a site kept in [`SiteGrowth::stack`].
pub const MAX_SITE_FRAMES: usize = 8;

/// One allocation site's in-use bytes at both ends.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteGrowth {
    /// The function allocating (the leaf frame of the stack).
    pub function: String,
    /// The stack, leaf first, at most [`MAX_SITE_FRAMES`] frames
    /// (`main.newChunk`, `main.retainLeakChunk`, `main.runHeapLeak`, ...).
    pub stack: Vec<String>,
    /// In-use bytes at the start.
    pub start_bytes: i64,
    /// In-use bytes at the end.
    pub end_bytes: i64,
    /// `end_bytes - start_bytes`.
    pub growth_bytes: i64,
    /// Its share of the growth of every growing site.
    pub share_of_growth: f64,
    /// Standard deviation of `growth_bytes` from sampling alone.
    pub noise_bytes: f64,
    /// Whether the growth passes the thresholds.
    pub significant: bool,
}

/// What [`sites`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Growth {
    /// In-use bytes of the whole profile at the start.
    pub start_total_bytes: i64,
    /// At the end.
    pub end_total_bytes: i64,
    /// The growing sites, largest growth first (at most `top_sites`).
    pub sites: Vec<SiteGrowth>,
}

/// The growing sites between `start` and `end`: folded `inuse_space`
/// stacks (`root;...;leaf`, bytes); `sample_rate_bytes` is the profile's
/// period (the runtime's `MemProfileRate`, 524288 by default).
pub fn sites(
    start: &[(String, u64)],
    end: &[(String, u64)],
    sample_rate_bytes: i64,
    config: &Config,
) -> Growth {
    let rate = sample_rate_bytes.max(1) as f64;
    let mut by_stack: HashMap<&str, (i64, i64)> = HashMap::new();
    for (stack, v) in start {
        let e = by_stack.entry(stack).or_default();
        e.0 = e.0.saturating_add(clamp(*v));
    }
    for (stack, v) in end {
        let e = by_stack.entry(stack).or_default();
        e.1 = e.1.saturating_add(clamp(*v));
    }
    let mut growing: Vec<(&str, i64, i64)> = by_stack
        .into_iter()
        .filter(|(_, (a, b))| b > a)
        .map(|(k, (a, b))| (k, a, b))
        .collect();
    growing.sort_by(|x, y| (y.2 - y.1).cmp(&(x.2 - x.1)).then(x.0.cmp(y.0)));
    let positive = growing
        .iter()
        .fold(0i64, |sum, (_, a, b)| sum.saturating_add(b - a));
    let sites = growing
        .into_iter()
        .take(config.top_sites)
        .map(|(stack, a, b)| {
            let growth = b - a;
            let noise = ((a as f64 + b as f64) * rate).sqrt();
            let frames: Vec<String> = stack
                .rsplit(';')
                .take(MAX_SITE_FRAMES)
                .map(str::to_string)
                .collect();
            SiteGrowth {
                function: frames.first().cloned().unwrap_or_default(),
                stack: frames,
                start_bytes: a,
                end_bytes: b,
                growth_bytes: growth,
                share_of_growth: if positive > 0 {
                    growth as f64 / positive as f64
                } else {
                    0.0
                },
                noise_bytes: noise,
                significant: growth >= config.min_growth_bytes as i64
                    && growth as f64 >= config.noise_z * noise,
            }
        })
        .collect();
    Growth {
        start_total_bytes: start.iter().fold(0, |t, s| t.saturating_add(clamp(s.1))),
        end_total_bytes: end.iter().fold(0, |t, s| t.saturating_add(clamp(s.1))),
        sites,
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A site's stack for people: `leaf ← caller ← ...` (at most four frames).
pub fn describe(site: &SiteGrowth) -> String {
    site.stack
        .iter()
        .take(4)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ← ")
}

/// A warning naming the largest significant growing site, `None` when no
/// site grew significantly.
pub fn check(growth: &Growth, window_seconds: f64, target: &Target, at_ms: i64) -> Option<Finding> {
    let top = growth.sites.iter().find(|s| s.significant)?;
    let significant = growth.sites.iter().filter(|s| s.significant).count();
    let mut evidence = vec![
        Evidence::new(
            "growth_bytes",
            top.growth_bytes as f64,
            "bytes",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "site_start_bytes",
            top.start_bytes as f64,
            "bytes",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "site_end_bytes",
            top.end_bytes as f64,
            "bytes",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "share_of_growth",
            top.share_of_growth,
            "ratio",
            Layer::Derived,
        ),
        Evidence::new("noise_bytes", top.noise_bytes, "bytes", Layer::Derived),
        Evidence::new(
            "heap_profile_start_bytes",
            growth.start_total_bytes as f64,
            "bytes",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "heap_profile_end_bytes",
            growth.end_total_bytes as f64,
            "bytes",
            Layer::GoRuntime,
        ),
        Evidence::new("growing_sites", significant as f64, "count", Layer::Derived),
    ];
    if window_seconds.is_finite() && window_seconds > 0.0 {
        evidence.push(Evidence::new(
            "growth_bytes_per_second",
            top.growth_bytes as f64 / window_seconds,
            "bytes/s",
            Layer::Derived,
        ));
    }
    let recommendation = format!(
        "the in-use heap allocated at {} grew by {:.1} MiB in {:.0} s ({:.1} → {:.1} MiB, \
         {:.0} % of the growth): find what keeps those objects reachable (a cache or \
         slice without eviction, a map never deleted from); compare later with \
         `memlens heap PID --base OLDER`.",
        describe(top),
        top.growth_bytes as f64 / 1048576.0,
        window_seconds,
        top.start_bytes as f64 / 1048576.0,
        top.end_bytes as f64 / 1048576.0,
        top.share_of_growth * 100.0,
    );
    Some(Finding::fired(
        HEAP_GROWTH_SITE,
        Severity::Warning,
        target.clone(),
        evidence,
        recommendation,
        at_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(rows: &[(&str, i64)]) -> Vec<(String, u64)> {
        rows.iter()
            .map(|(f, v)| (f.to_string(), *v as u64))
            .collect()
    }

    const MIB: i64 = 1 << 20;
    const TARGET: Target = Target::Process {
        pid: 1,
        start_time: 2,
    };

    #[test]
    fn names_the_growing_site() {
        let g = sites(
            &top(&[
                ("main.main;main.retainLeakChunk;main.newChunk", 4 * MIB),
                ("main.main;main.garbage;main.newChunk", 8 * MIB),
            ]),
            &top(&[
                ("main.main;main.retainLeakChunk;main.newChunk", 44 * MIB),
                ("main.main;main.garbage;main.newChunk", 9 * MIB),
            ]),
            512 * 1024,
            &Config::default(),
        );
        assert_eq!(g.sites[0].function, "main.newChunk");
        assert_eq!(g.sites[0].stack[1], "main.retainLeakChunk");
        assert!(g.sites[0].significant);
        assert!(!g.sites[1].significant, "1 MiB is noise");
        let f = check(&g, 5.0, &TARGET, 1).unwrap();
        assert!(f
            .recommendation
            .contains("main.newChunk ← main.retainLeakChunk ← main.main"));
        assert_eq!(f.evidence("growth_bytes"), Some(40.0 * MIB as f64));
        assert!((f.evidence("share_of_growth").unwrap() - 40.0 / 41.0).abs() < 1e-9);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_stacks_never_panic(
            start in proptest::collection::vec(("[a-c;]{0,6}", proptest::prelude::any::<u64>()), 0..8),
            end in proptest::collection::vec(("[a-c;]{0,6}", proptest::prelude::any::<u64>()), 0..8),
            rate in proptest::prelude::any::<i64>(),
            window in proptest::prelude::any::<f64>(),
        ) {
            let g = sites(&start, &end, rate, &Config::default());
            let _ = check(&g, window, &TARGET, 0);
        }
    }

    #[test]
    fn sampling_noise_of_a_steady_ring_is_not_growth() {
        // 32 MiB ring: 6 MiB apart is within 4 sigma of sampling noise.
        let g = sites(
            &top(&[("main.fill", 30 * MIB)]),
            &top(&[("main.fill", 36 * MIB)]),
            512 * 1024,
            &Config::default(),
        );
        assert!(check(&g, 5.0, &TARGET, 1).is_none(), "{g:?}");
    }
}
