//! Memory mappings: a process's VMA count against the host's
//! `vm.max_map_count` (now and as forecast from the growth over a window),
//! and mmap fragmentation. Pure: counts from `/proc/PID/maps` and the sysctl
//! in, findings out (docs/findings.md, [`VMA_COUNT`], [`VMA_FRAGMENTED`]).
//!
//! At `vm.max_map_count` mappings `mmap`, `mprotect` and `brk` fail with
//! `ENOMEM` although memory is free; the Go runtime then dies with `fatal
//! error: runtime: cannot allocate memory` (or `out of memory`), malloc returns
//! NULL. The kernel counts every VMA (`mm->map_count`): what `/proc/PID/maps`
//! lists, except the `[vsyscall]` page, which is no VMA.

use crate::fds;
use crate::finding::{Evidence, Finding, Layer, Severity, Target};

/// Stable id: the VMA count is near `vm.max_map_count`, or grows toward it.
pub const VMA_COUNT: &str = "vma.count_near_limit";
/// Stable id: many anonymous mappings (mmap fragmentation), or a largest
/// free address range too small for a large mapping.
pub const VMA_FRAGMENTED: &str = "vma.fragmented";

/// Thresholds of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Warning when VMAs ≥ this share of `vm.max_map_count` (0.8).
    pub warning_ratio: f64,
    /// Critical when VMAs ≥ this share of `vm.max_map_count` (0.95).
    pub critical_ratio: f64,
    /// The growth forecast, as [`fds::Config`] (its ratios are not used):
    /// warning / critical when the count reaches the limit within 3600 / 600 s,
    /// trusted up to 60 × the window, growth below 8 mappings ignored.
    pub forecast: fds::Config,
    /// `vma.fragmented` (info) from this many anonymous mappings (10 000): a
    /// mapping per object (cgo allocators, mmap-per-buffer code, thread stacks
    /// with guard pages) instead of a few large regions. A Go program has a
    /// few dozen anonymous VMAs of its own.
    pub fragmented_min_anon_vmas: u64,
    /// `vma.fragmented` (warning) when the largest free address range below
    /// the stack is under this many bytes (1 GiB): a large `mmap` (a 64 MiB
    /// Go heap arena, a big file) may find no room although the sum is free.
    /// On 64-bit Linux a process normally has terabytes free.
    pub min_largest_gap_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            warning_ratio: 0.8,
            critical_ratio: 0.95,
            forecast: fds::Config::default(),
            fragmented_min_anon_vmas: 10_000,
            min_largest_gap_bytes: 1 << 30,
        }
    }
}

/// What was observed of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Mappings at the start of the window (lines of `/proc/PID/maps`
    /// without `[vsyscall]`).
    pub vmas_start: u64,
    /// Mappings at the end.
    pub vmas_end: u64,
    /// Anonymous mappings at the end.
    pub anon_vmas: u64,
    /// Sum of the mapping sizes at the end.
    pub mapped_bytes: u64,
    /// Largest free range between mappings below the stack at the end
    /// (`None`: unknown or fewer than two mappings).
    pub largest_gap_bytes: Option<u64>,
    /// The host's `vm.max_map_count` (`None`: unread).
    pub max_map_count: Option<u64>,
    /// Seconds between the two counts (0: no forecast).
    pub window_seconds: f64,
}

/// The findings about one process: at most one [`VMA_COUNT`] and one
/// [`VMA_FRAGMENTED`].
pub fn check(obs: &Observation, config: &Config, target: &Target, at_ms: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(check_count(obs, config, target, at_ms));
    out.extend(check_fragmented(obs, config, target, at_ms));
    out
}

fn check_count(obs: &Observation, config: &Config, target: &Target, at_ms: i64) -> Option<Finding> {
    let limit = obs.max_map_count.filter(|l| *l > 0)?;
    let ratio = obs.vmas_end as f64 / limit as f64;
    let growth = fds::Observation {
        fds_start: obs.vmas_start,
        fds_end: obs.vmas_end,
        soft_limit: Some(limit),
        window_seconds: obs.window_seconds,
    };
    let f = &config.forecast;
    let trusted = fds::forecast(&growth, f)
        .filter(|x| x.time_left_seconds <= f.max_extrapolation * obs.window_seconds);
    let left = trusted.map(|x| x.time_left_seconds);
    let severity =
        if ratio >= config.critical_ratio || left.is_some_and(|s| s <= f.critical_seconds) {
            Severity::Critical
        } else if ratio >= config.warning_ratio || left.is_some_and(|s| s <= f.warning_seconds) {
            Severity::Warning
        } else {
            return None;
        };
    let mut evidence = vec![
        Evidence::new("vmas_start", obs.vmas_start as f64, "count", Layer::Process),
        Evidence::new("vmas", obs.vmas_end as f64, "count", Layer::Process),
        Evidence::new("anon_vmas", obs.anon_vmas as f64, "count", Layer::Process),
        Evidence::new("max_map_count", limit as f64, "count", Layer::Kernel),
        Evidence::new("ratio", ratio, "ratio", Layer::Derived),
        Evidence::new(
            "window_seconds",
            obs.window_seconds,
            "seconds",
            Layer::Derived,
        ),
    ];
    if let Some(x) = trusted {
        evidence.push(Evidence::new(
            "vmas_per_second",
            x.fds_per_second,
            "count/s",
            Layer::Derived,
        ));
        evidence.push(Evidence::new(
            "time_left_seconds",
            x.time_left_seconds,
            "seconds",
            Layer::Derived,
        ));
    }
    let recommendation = format!(
        "{} mappings of vm.max_map_count {limit} ({:.0} %){}: at the limit mmap fails with ENOMEM \
         and a Go program dies (fatal error: runtime: cannot allocate memory) with memory free. \
         Find who maps so many small regions (/proc/PID/maps: anonymous runs of one size); raise \
         vm.max_map_count (sysctl -w vm.max_map_count=262144) if the need is real",
        obs.vmas_end,
        ratio * 100.0,
        left.map_or(String::new(), |s| format!(
            ", reached in about {s:.0} s at the window's growth"
        )),
    );
    Some(Finding::fired(
        VMA_COUNT,
        severity,
        target.clone(),
        evidence,
        recommendation,
        at_ms,
    ))
}

fn check_fragmented(
    obs: &Observation,
    config: &Config,
    target: &Target,
    at_ms: i64,
) -> Option<Finding> {
    let small_gap = obs
        .largest_gap_bytes
        .filter(|g| *g < config.min_largest_gap_bytes);
    let many = obs.anon_vmas >= config.fragmented_min_anon_vmas;
    if small_gap.is_none() && !many {
        return None;
    }
    let mut evidence = vec![
        Evidence::new("anon_vmas", obs.anon_vmas as f64, "count", Layer::Process),
        Evidence::new("vmas", obs.vmas_end as f64, "count", Layer::Process),
        Evidence::new(
            "mean_mapping_bytes",
            obs.mapped_bytes as f64 / obs.vmas_end.max(1) as f64,
            "bytes",
            Layer::Derived,
        ),
    ];
    if let Some(g) = obs.largest_gap_bytes {
        evidence.push(Evidence::new(
            "largest_gap_bytes",
            g as f64,
            "bytes",
            Layer::Process,
        ));
    }
    let (severity, recommendation) = match small_gap {
        Some(g) => (
            Severity::Warning,
            format!(
                "the largest free address range is {:.1} MiB: a large mmap (a 64 MiB Go heap \
                 arena, a big file) can fail although the total is free; look for many \
                 mappings scattered over the address space",
                g as f64 / (1u64 << 20) as f64
            ),
        ),
        None => (
            Severity::Info,
            format!(
                "{} anonymous mappings: memory mapped in many small pieces (one mmap per \
                 object or buffer) costs kernel memory and page-table walks and counts \
                 against vm.max_map_count; pool the buffers or map larger regions",
                obs.anon_vmas
            ),
        ),
    };
    Some(Finding::fired(
        VMA_FRAGMENTED,
        severity,
        target.clone(),
        evidence,
        recommendation,
        at_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::Process {
            pid: 1,
            start_time: 2,
        }
    }

    fn obs(start: u64, end: u64, anon: u64) -> Observation {
        Observation {
            vmas_start: start,
            vmas_end: end,
            anon_vmas: anon,
            mapped_bytes: end * 4096,
            largest_gap_bytes: Some(1 << 40),
            max_map_count: Some(65_530),
            window_seconds: 10.0,
        }
    }

    fn ids(f: &[Finding]) -> Vec<(&str, Severity)> {
        f.iter().map(|f| (f.id, f.severity)).collect()
    }

    #[test]
    fn count_ratio_thresholds() {
        let c = Config::default();
        assert!(check(&obs(100, 100, 50), &c, &target(), 0).is_empty());
        let f = check(&obs(52_424, 52_424, 50), &c, &target(), 0);
        assert_eq!(ids(&f), vec![(VMA_COUNT, Severity::Warning)]);
        assert_eq!(f[0].evidence("max_map_count"), Some(65_530.0));
        let f = check(&obs(62_254, 62_254, 50), &c, &target(), 0);
        assert_eq!(ids(&f), vec![(VMA_COUNT, Severity::Critical)]);
        let mut unknown = obs(62_254, 62_254, 50);
        unknown.max_map_count = None;
        assert!(check(&unknown, &c, &target(), 0).is_empty());
    }

    #[test]
    fn growth_forecast_and_lowered_ratio() {
        let c = Config::default();
        // +5000 in 10 s: 500/s, 45 530 left → 91 s: critical.
        let f = check(&obs(15_000, 20_000, 50), &c, &target(), 0);
        assert_eq!(ids(&f), vec![(VMA_COUNT, Severity::Critical)]);
        assert_eq!(f[0].evidence("vmas_per_second"), Some(500.0));
        let lowered = Config {
            warning_ratio: 0.01,
            ..Config::default()
        };
        let f = check(&obs(1000, 1000, 50), &lowered, &target(), 0);
        assert_eq!(ids(&f), vec![(VMA_COUNT, Severity::Warning)]);
    }

    #[test]
    fn fragmentation() {
        let c = Config::default();
        let f = check(&obs(12_000, 12_000, 11_000), &c, &target(), 0);
        assert_eq!(ids(&f), vec![(VMA_FRAGMENTED, Severity::Info)]);
        let mut gap = obs(100, 100, 50);
        gap.largest_gap_bytes = Some(100 << 20);
        let f = check(&gap, &c, &target(), 0);
        assert_eq!(ids(&f), vec![(VMA_FRAGMENTED, Severity::Warning)]);
        assert_eq!(f[0].evidence("largest_gap_bytes"), Some((100 << 20) as f64));
        assert!(
            f[0].recommendation.contains("is 100.0 MiB"),
            "{}",
            f[0].recommendation
        );
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_input_is_judged_without_panic(
            start in any::<u64>(), end in any::<u64>(), anon in any::<u64>(),
            mapped in any::<u64>(), gap in any::<Option<u64>>(), max in any::<Option<u64>>(),
            window in any::<f64>(),
        ) {
            let o = Observation {
                vmas_start: start, vmas_end: end, anon_vmas: anon, mapped_bytes: mapped,
                largest_gap_bytes: gap, max_map_count: max, window_seconds: window,
            };
            prop_assert!(check(&o, &Config::default(), &target(), 0).len() <= 2);
        }
    }
}
