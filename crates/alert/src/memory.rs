//! Memory alerts: near limit, thrashing, filling up (time to OOM), OOM
//! killed, repeated OOM kills, growth. Over memlens names they rest on the
//! engine's findings (docs/findings.md); over standard names they are
//! PromQL over cAdvisor's working set and limit, with the same definitions
//! where PromQL can state them.

use crate::catalogue::{
    with_fixed_target, with_target, Alert, Basis, Naming, Recording, Severity, Spec,
};
use crate::thresholds::{prom_duration as d, Thresholds};

/// cAdvisor's limit, only where one is set (0 is none; v1's "unlimited" is ~9.2e18).
pub const LIMIT: &str = "memlens:container_memory_limit_bytes";
/// The working set's peak over the sawtooth window.
pub const PEAK: &str = "memlens:container_working_set_peak_bytes";
/// The working set's trough over the sawtooth window (a GC sawtooth's floor).
pub const TROUGH: &str = "memlens:container_working_set_trough_bytes";
/// The troughs' slope where it rises steadily over the trend window.
pub const SLOPE: &str = "memlens:container_working_set_slope_bytes_per_second";
/// Time left until the peak reaches the limit at that slope.
pub const TIME_TO_OOM: &str = "memlens:container_time_to_oom_seconds";

const WS: &str = "container_memory_working_set_bytes";

pub(crate) const NEAR_LIMIT: Spec = Spec {
    name: "MemoryNearLimit",
    meaning: "The working set's peak is at 90 % of its kill point or more, with less headroom than one GC cycle's growth (memlens; over standard names: the working set's swing over the sawtooth window) and never less than 5 % of the limit. Nothing has to grow: a service levelled off at 95 % of its limit gets this.",
    runbook: "Set GOMEMLIMIT below the limit (`memlens advise`) so the GC collects before the kernel reclaims or kills; or raise the limit; or find what holds memory (`memlens heap`).",
};

pub(crate) const THRASHING: Spec = Spec {
    name: "MemoryThrashing",
    meaning: "The cgroup is pinned at its limit while the kernel evicts pages it still needs and it reads them back, with threads waiting on those reads (major faults, or memory PSI on memlens): the service stalls instead of being killed, which is worse than a kill.",
    runbook: "Give the service memory for its file pages: GOMEMLIMIT below the limit so Go's GC frees heap before the kernel evicts file pages, memory.high below memory.max (cgroup v2), or a higher limit. `memlens diagnose` names the process faulting most.",
};

pub(crate) const FILLING_UP: Spec = Spec {
    name: "MemoryFillingUp",
    meaning: "The working set (a cgroup's) or RSS (a process's) grows steadily and will reach its kill point: warning within 30 minutes, critical within 10. memlens: the `memory.time_to_oom` finding with its range (start-up skipped, GC sawtooth and one-off steps are no growth). Standard names: the troughs of the working set over the sawtooth window rise in each third of the trend window, the newest third at least half as fast as the whole, and time left = (limit - peak) / slope; a series younger than two thirds of the trend window (a start-up) has no forecast.",
    runbook: "Find what grows (`memlens heap --base`, `memlens goroutines --diff`) and take evidence before the kill (memlens keeps heap and goroutine profiles when the critical fires); restart or raise the limit only to buy time.",
};

pub(crate) const OOM_KILLED: Spec = Spec {
    name: "MemoryOOMKilled",
    meaning: "The kernel's OOM killer killed a process of the target (memlens: the `memory.oom_kill` finding's counter, labelled with the victim and its cgroup; standard names: cAdvisor's container_oom_events_total, which reads 0 on many hosts, see HostOOMKill). No `for`: a kill is a fact.",
    runbook: "`memlens replay` shows the findings before the kill; `memlens profiles` the heap and goroutine profiles memlens kept before it. Fix what grew, then the limit.",
};

pub(crate) const HOST_OOM_KILL: Spec = Spec {
    name: "HostOOMKill",
    meaning: "The host's OOM kill counter (/proc/vmstat oom_kill) moved: a process somewhere on the host was OOM-killed, whether or not a container counter saw it.",
    runbook: "`dmesg | grep -i 'killed process'` names the victim and its cgroup; check the MemoryOOMKilled alerts of that cgroup.",
};

pub(crate) const OOM_REPEATED: Spec = Spec {
    name: "MemoryOOMKilledRepeatedly",
    meaning: "The same cgroup (memlens) or container (standard names: namespace, pod, container) had 3 OOM kills or more within the last hour: a restart loop that a restart policy hides.",
    runbook: "Stop the loop before it hides the cause: compare the kills' last heap profiles (`memlens profiles`), raise the limit temporarily, fix the leak or the GOMEMLIMIT.",
};

pub(crate) const GROWTH: Spec = Spec {
    name: "MemoryGrowing",
    meaning: "The `memory.growth` finding: a sustained growth trend of RSS, Go heap in use or cgroup usage, at least 10 %/h and 256 KiB/min over 5 minutes or more.",
    runbook: "Compare two heap profiles (`memlens heap --base`) to find the allocation sites that grow.",
};

/// Appends the memory rules of `naming`.
pub(crate) fn rules(
    naming: Naming,
    t: &Thresholds,
    rec: &mut Vec<Recording>,
    alerts: &mut Vec<Alert>,
) {
    match naming {
        Naming::Memlens => memlens(t, alerts),
        Naming::Standard => standard(t, rec, alerts),
    }
}

fn finding(
    spec: Spec,
    severity: Severity,
    t: &Thresholds,
    id: &'static str,
    expr: String,
    summary: &str,
) -> Alert {
    Alert {
        spec,
        severity,
        for_seconds: t.finding_for,
        expr,
        summary: summary.to_string(),
        basis: Basis::Finding(id),
    }
}

/// A template part that reads one end of the forecast's range of the
/// alert's target (`earliest`, `latest`) with Prometheus's `query`.
fn range_end(end: &str) -> String {
    format!(
        "{{{{ with printf \"memlens_time_to_oom_{end}_seconds{{target=%q}}\" $labels.target | query }}}}, \
         at the {end} in {{{{ . | first | value | humanizeDuration }}}}{{{{ end }}}}"
    )
}

fn memlens(t: &Thresholds, alerts: &mut Vec<Alert>) {
    let active = |id: &str| format!("memlens_finding_active{{finding=\"{id}\"}} == 1");
    alerts.push(finding(
        NEAR_LIMIT,
        Severity::Warning,
        t,
        "memory.near_limit",
        active("memory.near_limit"),
        "{{ $labels.target }}: working set at its limit with less headroom than a GC cycle",
    ));
    alerts.push(finding(
        THRASHING,
        Severity::Critical,
        t,
        "memory.thrashing",
        active("memory.thrashing"),
        "{{ $labels.target }}: pinned at its memory limit, re-reading evicted pages (stalls, not killed)",
    ));
    for severity in [Severity::Critical, Severity::Warning] {
        alerts.push(finding(
            FILLING_UP,
            severity,
            t,
            "memory.time_to_oom",
            format!(
                "memlens_time_to_oom_seconds{{severity=\"{}\"}}",
                severity.as_str()
            ),
            &format!(
                "{{{{ $labels.target }}}}: OOM kill forecast in {{{{ $value | humanizeDuration }}}}{}{}",
                range_end("earliest"),
                range_end("latest")
            ),
        ));
    }
    let kills = "memlens_oom_kills_observed_total";
    let window = d(t.oom_window);
    // A counter series appears at its first kill with the value 1, which
    // increase() cannot see: a series new within the window is a kill too.
    let killed =
        format!("(increase({kills}[{window}]) > 0) or ({kills} unless {kills} offset {window})");
    alerts.push(Alert {
        spec: OOM_KILLED,
        severity: Severity::Critical,
        for_seconds: 0.0,
        expr: format!("label_replace({killed}, \"target\", \"host\", \"target\", \"\")"),
        summary:
            "{{ $labels.target }} ({{ $labels.comm }}, cgroup {{ $labels.cgroup }}): OOM-killed"
                .to_string(),
        basis: Basis::Finding("memory.oom_kill"),
    });
    alerts.push(Alert {
        spec: OOM_REPEATED,
        severity: Severity::Critical,
        for_seconds: 0.0,
        expr: with_target(&repeated_kills(t), "cgroup:", "cgroup"),
        summary: "{{ $labels.target }}: {{ $value }} OOM kills within the window".to_string(),
        basis: Basis::Finding("memory.oom_kill"),
    });
    alerts.push(finding(
        GROWTH,
        Severity::Warning,
        t,
        "memory.growth",
        active("memory.growth"),
        "{{ $labels.target }}: memory growing steadily",
    ));
}

/// Kills of a cgroup within the window, by `instance` and `cgroup`: the
/// cgroup's own counter, or else the agent's kill counter of the victims it
/// labelled with that cgroup (each victim's series appears at its first
/// kill, at 1, so it counts as the difference with an hour ago, absent
/// counted as 0; an agent restart resets it and counts nothing).
fn repeated_kills(t: &Thresholds) -> String {
    let w = d(t.repeated_oom_window);
    let n = t.repeated_oom_kills;
    let k = "memlens_oom_kills_observed_total{cgroup!=\"\"}";
    format!(
        "sum by (instance, cgroup) (increase(memlens_cgroup_memory_oom_kills_total[{w}])) >= {n} \
         or (sum by (instance, cgroup) ({k}) - (sum by (instance, cgroup) ({k} offset {w}) \
         or 0 * sum by (instance, cgroup) ({k}))) >= {n}"
    )
}

/// A container alert's labels: `cgroup` (cAdvisor's `id`, the cgroup path)
/// and `target` (`cgroup:PATH`, as memlens names a cgroup).
fn container(expr: &str) -> String {
    let with_cgroup = format!("label_replace({expr}, \"cgroup\", \"$1\", \"id\", \"(.+)\")");
    with_target(&with_cgroup, "cgroup:", "id")
}

fn standard(t: &Thresholds, rec: &mut Vec<Recording>, alerts: &mut Vec<Alert>) {
    let saw = d(t.sawtooth_window);
    let trend = d(t.trend_window);
    let third = d(t.trend_window / 3.0);
    let two_thirds = d(t.trend_window * 2.0 / 3.0);
    rec.push(Recording {
        record: LIMIT,
        expr: "(container_spec_memory_limit_bytes > 0) < 1e18".to_string(),
    });
    rec.push(Recording {
        record: PEAK,
        expr: format!("max_over_time({WS}[{saw}]) and {LIMIT}"),
    });
    rec.push(Recording {
        record: TROUGH,
        expr: format!("min_over_time({WS}[{saw}]) and {LIMIT}"),
    });
    rec.push(Recording {
        record: SLOPE,
        expr: format!(
            "deriv({TROUGH}[{trend}]) > 0 \
             and deriv({TROUGH}[{third}] offset {two_thirds}) > 0 \
             and deriv({TROUGH}[{third}] offset {third}) > 0 \
             and deriv({TROUGH}[{third}]) >= {p} * deriv({TROUGH}[{trend}])",
            p = t.persistence_ratio
        ),
    });
    rec.push(Recording {
        record: TIME_TO_OOM,
        expr: format!("clamp_min({LIMIT} - {PEAK}, 0) / {SLOPE}"),
    });
    alerts.push(Alert {
        spec: NEAR_LIMIT,
        severity: Severity::Warning,
        for_seconds: t.near_limit_for,
        expr: container(&format!(
            "{PEAK} / {LIMIT} >= {r} and ({LIMIT} - {PEAK} < {PEAK} - {TROUGH} or {LIMIT} - {PEAK} < {m} * {LIMIT})",
            r = t.near_limit_ratio,
            m = t.min_headroom_ratio
        )),
        summary: "{{ $labels.target }}: working set peaks at {{ $value | humanizePercentage }} of its limit".to_string(),
        basis: Basis::Raw,
    });
    let tw = d(t.thrashing_window);
    alerts.push(Alert {
        spec: THRASHING,
        severity: Severity::Critical,
        for_seconds: t.thrashing_for,
        expr: container(&format!(
            "quantile_over_time(0.5, container_memory_usage_bytes[{tw}]) / {LIMIT} >= {pin} \
             and ignoring (failure_type, scope) \
             rate(container_memory_failures_total{{failure_type=\"pgmajfault\",scope=\"container\"}}[{tw}]) >= {maj}",
            pin = t.pinned_ratio,
            maj = t.min_major_faults_per_second
        )),
        summary: "{{ $labels.target }}: pinned at its memory limit with major faults (stalls, not killed)".to_string(),
        basis: Basis::Raw,
    });
    for (severity, left, reach) in [
        (
            Severity::Critical,
            t.critical_time_left,
            t.max_extrapolation,
        ),
        (
            Severity::Warning,
            t.warning_time_left,
            t.warning_max_extrapolation,
        ),
    ] {
        let bound = left.min(reach * t.trend_window);
        alerts.push(Alert {
            spec: FILLING_UP,
            severity,
            for_seconds: t.filling_up_for,
            expr: container(&format!("{TIME_TO_OOM} <= {bound}")),
            summary: "{{ $labels.target }}: OOM kill forecast in {{ $value | humanizeDuration }}"
                .to_string(),
            basis: Basis::Raw,
        });
    }
    let ow = d(t.oom_window);
    alerts.push(Alert {
        spec: OOM_KILLED,
        severity: Severity::Critical,
        for_seconds: 0.0,
        expr: container(&format!("increase(container_oom_events_total[{ow}]) > 0")),
        summary: "{{ $labels.target }}: OOM-killed".to_string(),
        basis: Basis::Raw,
    });
    alerts.push(Alert {
        spec: HOST_OOM_KILL,
        severity: Severity::Critical,
        for_seconds: 0.0,
        expr: with_fixed_target(&format!("increase(node_vmstat_oom_kill[{ow}]) > 0"), "host"),
        summary: "{{ $labels.instance }}: {{ $value }} OOM kills on the host".to_string(),
        basis: Basis::Raw,
    });
    let repeated = format!(
        "sum by (namespace, pod, container) (increase(container_oom_events_total[{}])) >= {}",
        d(t.repeated_oom_window),
        t.repeated_oom_kills
    );
    alerts.push(Alert {
        spec: OOM_REPEATED,
        severity: Severity::Critical,
        for_seconds: 0.0,
        expr: with_target(
            &format!("label_join({repeated}, \"container_key\", \"/\", \"namespace\", \"pod\", \"container\")"),
            "container:",
            "container_key",
        ),
        summary: "{{ $labels.target }}: {{ $value }} OOM kills within the window".to_string(),
        basis: Basis::Raw,
    });
}
