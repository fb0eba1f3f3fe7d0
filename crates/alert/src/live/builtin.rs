//! Which alerts of the catalogue the agent raises itself, and from what:
//! the finding-based ones from their finding; the Go settings, goroutine,
//! GC, FD and VMA alerts (PromQL over raw series for Prometheus) from the
//! findings of the same checks run live in the agent's engine; and
//! MemoryOOMKilledRepeatedly from the agent's own count of kills
//! ([`RepeatedKills`]). Pure.

use crate::catalogue::{Alert, Basis, Severity};
use crate::thresholds::Thresholds;
use std::collections::{BTreeMap, VecDeque};

/// Alerts over raw series that the agent raises from a finding of its own
/// engine with the same meaning (alert name, finding id).
pub const FROM_FINDINGS: &[(&str, &str)] = &[
    ("GoMemLimitAboveLimit", "go.gomemlimit_above_limit"),
    ("GoMemLimitTooClose", "go.gomemlimit_too_close"),
    ("GoMemLimitMissing", "go.gomemlimit_missing"),
    ("GoGCOffWithoutLimit", "go.gogc_off_without_limit"),
    ("GoGCDeathSpiral", "go.gc_pressure"),
    ("GoroutineLeak", "go.goroutine_leak"),
    ("FDExhaustion", "fd.exhaustion"),
    ("VMACountNearLimit", "vma.count_near_limit"),
];

/// The alert counted from the agent's kills, not from one finding.
pub const REPEATED_KILLS: &str = "MemoryOOMKilledRepeatedly";

/// The finding an alert of the catalogue rests on in the agent, if the
/// agent raises it from one.
pub fn finding_of(alert: &Alert) -> Option<&'static str> {
    if alert.spec.name == REPEATED_KILLS {
        return None;
    }
    match alert.basis {
        Basis::Finding(id) => Some(id),
        Basis::Raw => FROM_FINDINGS
            .iter()
            .find(|(name, _)| *name == alert.spec.name)
            .map(|(_, id)| *id),
    }
}

/// Whether the agent raises `alert` itself.
pub fn is_builtin(alert: &Alert) -> bool {
    finding_of(alert).is_some() || alert.spec.name == REPEATED_KILLS
}

/// Whether a finding of `alert`'s finding id, with `evidence` (by name),
/// meets the alert's own condition where it is narrower than the finding:
/// GoGCDeathSpiral is GC pressure by CPU (`gc_cpu_fraction` at
/// `gc_cpu_ratio` or more) next to GOMEMLIMIT (`go_memory_to_gomemlimit_ratio`
/// at `gc_memory_ratio` or more); FDExhaustion and VMACountNearLimit are
/// the count's `ratio` to its limit at the rule's severity's ratio or more
/// (the finding also fires on a forecast, which the rule does not); every
/// other alert is its finding.
pub fn holds(alert: &Alert, evidence: impl Fn(&str) -> Option<f64>, t: &Thresholds) -> bool {
    match alert.spec.name {
        "GoGCDeathSpiral" => {
            evidence("gc_cpu_fraction").is_some_and(|v| v >= t.gc_cpu_ratio)
                && evidence("go_memory_to_gomemlimit_ratio").is_some_and(|v| v >= t.gc_memory_ratio)
        }
        "FDExhaustion" | "VMACountNearLimit" => {
            let at_least = match alert.severity {
                Severity::Critical => t.limit_critical_ratio,
                Severity::Warning => t.limit_warning_ratio,
            };
            evidence("ratio").is_some_and(|v| v >= at_least)
        }
        _ => true,
    }
}

/// The agent's kills by cgroup over a sliding window: MemoryOOMKilledRepeatedly
/// holds for a cgroup with at least `kills` kills within `window_ms`, as the
/// catalogue's rule counts them over the kill counters.
#[derive(Debug, Clone, Default)]
pub struct RepeatedKills {
    kills: BTreeMap<String, VecDeque<i64>>,
}

/// One cgroup killed repeatedly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated {
    /// The cgroup's path.
    pub cgroup: String,
    /// Kills within the window.
    pub kills: usize,
    /// The first and the last of them (ms since the Unix epoch).
    pub first_ms: i64,
    /// The last one.
    pub last_ms: i64,
}

impl RepeatedKills {
    /// Notes a kill in `cgroup` at `ts_ms`.
    pub fn note(&mut self, cgroup: &str, ts_ms: i64) {
        self.kills
            .entry(cgroup.to_string())
            .or_default()
            .push_back(ts_ms);
    }

    /// The cgroups with at least `kills` kills in the `window_ms` before
    /// `now_ms`; older kills are forgotten.
    pub fn over(&mut self, now_ms: i64, window_ms: i64, kills: usize) -> Vec<Repeated> {
        let mut out = Vec::new();
        self.kills.retain(|cgroup, at| {
            while at.front().is_some_and(|t| *t < now_ms - window_ms) {
                at.pop_front();
            }
            if at.len() >= kills.max(1) {
                out.push(Repeated {
                    cgroup: cgroup.clone(),
                    kills: at.len(),
                    first_ms: at[0],
                    last_ms: at[at.len() - 1],
                });
            }
            !at.is_empty()
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{catalogue, Naming};

    #[test]
    fn every_alert_of_the_mapping_is_in_the_catalogue() {
        let c = catalogue(Naming::Memlens, &Thresholds::default());
        for (name, _) in FROM_FINDINGS {
            let a = c.alerts.iter().find(|a| a.spec.name == *name).unwrap();
            assert!(is_builtin(a));
        }
        let repeated = c.alerts.iter().find(|a| a.spec.name == REPEATED_KILLS);
        assert_eq!(repeated.map(finding_of), Some(None));
        // Host and agent alerts stay Prometheus's.
        let host = c.alerts.iter().find(|a| a.spec.name == "HostMemoryLow");
        assert!(!is_builtin(host.unwrap()));
    }

    #[test]
    fn the_death_spiral_needs_both_the_cpu_and_the_limit() {
        let c = catalogue(Naming::Memlens, &Thresholds::default());
        let a = c
            .alerts
            .iter()
            .find(|a| a.spec.name == "GoGCDeathSpiral")
            .unwrap();
        let t = Thresholds::default();
        let ev = |cpu: f64, mem: f64| {
            move |n: &str| match n {
                "gc_cpu_fraction" => Some(cpu),
                "go_memory_to_gomemlimit_ratio" => Some(mem),
                _ => None,
            }
        };
        assert!(holds(a, ev(0.3, 0.95), &t));
        assert!(!holds(a, ev(0.3, 0.5), &t));
        assert!(!holds(a, ev(0.1, 0.95), &t));
        let fds = |severity: Severity| {
            c.alerts
                .iter()
                .find(|a| a.spec.name == "FDExhaustion" && a.severity == severity)
                .unwrap()
        };
        let ratio = |r: f64| move |n: &str| (n == "ratio").then_some(r);
        assert!(holds(fds(Severity::Warning), ratio(0.85), &t));
        assert!(!holds(fds(Severity::Critical), ratio(0.85), &t));
        assert!(holds(fds(Severity::Critical), ratio(0.96), &t));
        // A forecast alone (the count far from its limit) is no alert.
        assert!(!holds(fds(Severity::Warning), ratio(0.3), &t));
    }

    #[test]
    fn kills_count_within_the_window_only() {
        let mut r = RepeatedKills::default();
        for t in [0, 10_000, 20_000] {
            r.note("/a", t);
        }
        r.note("/b", 15_000);
        let over = r.over(20_000, 60_000, 3);
        assert_eq!(over.len(), 1);
        assert_eq!((over[0].cgroup.as_str(), over[0].kills), ("/a", 3));
        assert_eq!((over[0].first_ms, over[0].last_ms), (0, 20_000));
        // The first kill leaves the window: two are no longer repeated.
        assert!(r.over(60_001, 60_000, 3).is_empty());
        assert!(r.over(200_000, 60_000, 3).is_empty());
        assert!(r.kills.is_empty());
    }
}
