//! File-descriptor exhaustion: a process's open fds against its soft `Max
//! open files` limit (`RLIMIT_NOFILE`), now and as forecast from the growth
//! over an observation window. Pure: two counts, the limit and the window's
//! length in, at most one [`Finding`] out (docs/findings.md, [`FD_EXHAUSTION`]).
//!
//! When the limit is reached, `open`, `socket`, `accept`, `pipe` and `epoll_create`
//! fail with `EMFILE`: a server stops accepting connections, a Go `net/http`
//! server logs `accept: too many open files` and retries every second.

use crate::finding::{Evidence, Finding, Layer, Severity, Target};

/// Stable id: open fds near the soft limit, or growing toward it.
pub const FD_EXHAUSTION: &str = "fd.exhaustion";

/// Thresholds of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Warning when open fds ≥ this share of the soft limit (0.8).
    pub warning_ratio: f64,
    /// Critical when open fds ≥ this share of the soft limit (0.95).
    pub critical_ratio: f64,
    /// Warning when the forecast reaches the limit within this many seconds (3600).
    pub warning_seconds: f64,
    /// Critical when the forecast reaches the limit within this many seconds (600).
    pub critical_seconds: f64,
    /// A forecast counts only while the time left is at most this many times
    /// the window it was measured over (60): ten seconds of growth may be a
    /// burst of connections, not a leak, and say nothing about the next day.
    pub max_extrapolation: f64,
    /// Growth below this many fds over the window is noise (8): connections
    /// come and go, memlens's own requests to the process among them.
    pub min_growth_fds: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            warning_ratio: 0.8,
            critical_ratio: 0.95,
            warning_seconds: 3600.0,
            critical_seconds: 600.0,
            max_extrapolation: 60.0,
            min_growth_fds: 8,
        }
    }
}

/// What was observed of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Open fds at the start of the window (entries of `/proc/PID/fd`).
    pub fds_start: u64,
    /// Open fds at the end.
    pub fds_end: u64,
    /// The soft `Max open files` limit at the end; `None` when unlimited.
    pub soft_limit: Option<u64>,
    /// Seconds between the two counts (0: one count, no forecast).
    pub window_seconds: f64,
}

/// The forecast part of a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Growth over the window, fds per second (> 0).
    pub fds_per_second: f64,
    /// Seconds until the limit at that rate.
    pub time_left_seconds: f64,
}

/// The growth forecast, when the fds grew by at least `min_growth_fds`
/// over a window of positive length under a limit.
pub fn forecast(obs: &Observation, config: &Config) -> Option<Forecast> {
    let limit = obs.soft_limit?;
    let grown = obs.fds_end.checked_sub(obs.fds_start)?;
    if grown < config.min_growth_fds.max(1)
        || !(obs.window_seconds.is_finite() && obs.window_seconds > 0.0)
    {
        return None;
    }
    let rate = grown as f64 / obs.window_seconds;
    let left = limit.saturating_sub(obs.fds_end) as f64;
    Some(Forecast {
        fds_per_second: rate,
        time_left_seconds: left / rate,
    })
}

/// The finding about one process, if any: critical when open fds ≥
/// `critical_ratio` of the soft limit or the forecast reaches it within
/// `critical_seconds`; warning likewise with the warning thresholds. A
/// forecast longer than `max_extrapolation` × the window is not trusted.
pub fn check(obs: &Observation, config: &Config, target: &Target, at_ms: i64) -> Option<Finding> {
    let limit = obs.soft_limit?;
    if limit == 0 {
        return None;
    }
    let ratio = obs.fds_end as f64 / limit as f64;
    let trusted = forecast(obs, config)
        .filter(|f| f.time_left_seconds <= config.max_extrapolation * obs.window_seconds);
    let left = trusted.map(|f| f.time_left_seconds);
    let severity = if ratio >= config.critical_ratio
        || left.is_some_and(|s| s <= config.critical_seconds)
    {
        Severity::Critical
    } else if ratio >= config.warning_ratio || left.is_some_and(|s| s <= config.warning_seconds) {
        Severity::Warning
    } else {
        return None;
    };
    let mut evidence = vec![
        Evidence::new("fds_start", obs.fds_start as f64, "count", Layer::Process),
        Evidence::new("fds", obs.fds_end as f64, "count", Layer::Process),
        Evidence::new("fd_soft_limit", limit as f64, "count", Layer::Process),
        Evidence::new("ratio", ratio, "ratio", Layer::Derived),
        Evidence::new(
            "window_seconds",
            obs.window_seconds,
            "seconds",
            Layer::Derived,
        ),
    ];
    let recommendation = match trusted {
        Some(f) => {
            evidence.push(Evidence::new(
                "fds_per_second",
                f.fds_per_second,
                "count/s",
                Layer::Derived,
            ));
            evidence.push(Evidence::new(
                "time_left_seconds",
                f.time_left_seconds,
                "seconds",
                Layer::Derived,
            ));
            evidence.push(Evidence::new(
                "predicted_exhaustion_at_ms",
                at_ms as f64 + f.time_left_seconds * 1000.0,
                "ms",
                Layer::Derived,
            ));
            format!(
                "open files grow by {:.1}/s and reach the soft limit of {limit} in about {:.0} s: \
                 find what opens them without closing (ls -l /proc/PID/fd: files, sockets, pipes; \
                 unclosed HTTP response bodies are a classic); raising the limit only delays it",
                f.fds_per_second, f.time_left_seconds
            )
        }
        None => format!(
            "{} of {limit} open files ({:.0} %): new files, sockets and accepts will fail with \
             EMFILE; raise the soft limit (LimitNOFILE= in the systemd unit, ulimit -n) if this \
             is the steady need, or find the files that are never closed",
            obs.fds_end,
            ratio * 100.0
        ),
    };
    Some(Finding::fired(
        FD_EXHAUSTION,
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

    fn obs(start: u64, end: u64, limit: Option<u64>, window: f64) -> Observation {
        Observation {
            fds_start: start,
            fds_end: end,
            soft_limit: limit,
            window_seconds: window,
        }
    }

    #[test]
    fn ratio_thresholds() {
        let c = Config::default();
        assert!(check(&obs(700, 700, Some(1000), 10.0), &c, &target(), 0).is_none());
        let w = check(&obs(800, 800, Some(1000), 10.0), &c, &target(), 0).unwrap();
        assert_eq!(w.severity, Severity::Warning);
        assert_eq!(w.evidence("ratio"), Some(0.8));
        assert!(w.evidence("time_left_seconds").is_none());
        let x = check(&obs(950, 950, Some(1000), 0.0), &c, &target(), 0).unwrap();
        assert_eq!(x.severity, Severity::Critical);
        assert!(check(&obs(10_000, 10_000, None, 10.0), &c, &target(), 0).is_none());
        assert!(check(&obs(1, 1, Some(0), 10.0), &c, &target(), 0).is_none());
    }

    #[test]
    fn forecast_by_time_left_within_the_extrapolation_bound() {
        let c = Config::default();
        // +50 fds in 10 s = 5/s; 500 left → 100 s: critical.
        let f = check(&obs(450, 500, Some(1000), 10.0), &c, &target(), 1_000).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.evidence("fds_per_second"), Some(5.0));
        assert_eq!(f.evidence("time_left_seconds"), Some(100.0));
        assert_eq!(f.evidence("predicted_exhaustion_at_ms"), Some(101_000.0));
        // +10 in 10 s = 1/s; 500 left → 500 s ≤ 600: critical (a 10 s window
        // trusts forecasts up to 600 s only, all of them critical).
        let f = check(&obs(90, 100, Some(600), 10.0), &c, &target(), 0).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        // 900 s left from 10 s: not trusted.
        assert!(check(&obs(90, 100, Some(1000), 10.0), &c, &target(), 0).is_none());
        // 1/s with 2000 left → 2000 s > 60 × 10 s: not trusted, no finding.
        assert!(check(&obs(90, 100, Some(2100), 10.0), &c, &target(), 0).is_none());
        // The same over a 60 s window is trusted: a warning.
        let f = check(&obs(40, 100, Some(2100), 60.0), &c, &target(), 0).unwrap();
        assert_eq!(f.severity, Severity::Warning);
    }

    #[test]
    fn small_or_negative_growth_is_noise() {
        let c = Config::default();
        assert!(check(&obs(95, 100, Some(200), 1.0), &c, &target(), 0).is_none());
        assert!(check(&obs(150, 100, Some(200), 1.0), &c, &target(), 0).is_none());
        assert!(forecast(&obs(0, 100, Some(200), f64::NAN), &c).is_none());
    }

    #[test]
    fn at_or_past_the_limit_is_critical() {
        let c = Config::default();
        let f = check(&obs(0, 1200, Some(1000), 1.0), &c, &target(), 0).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.evidence("time_left_seconds"), Some(0.0));
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_input_is_judged_without_panic(
            start in any::<u64>(), end in any::<u64>(), limit in any::<Option<u64>>(),
            window in any::<f64>(),
        ) {
            let f = check(&obs(start, end, limit, window), &Config::default(), &target(), 0);
            if let Some(f) = f {
                prop_assert!(f.evidence.iter().all(|e| !e.value.is_nan()));
            }
        }
    }
}
