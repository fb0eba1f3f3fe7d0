//! Process, host and agent alerts: FD exhaustion, VMA count near
//! `vm.max_map_count`, host memory pressure (PSI) and low MemAvailable,
//! the agent (or the exporters) stale or failing. All PromQL over raw series.

use crate::catalogue::{
    with_fixed_target, with_process_target, with_target, Alert, Basis, Naming, Recording, Severity,
    Spec,
};
use crate::thresholds::{prom_duration as d, Thresholds};

pub(crate) const FDS: Spec = Spec {
    name: "FDExhaustion",
    meaning: "Open file descriptors of a process at 80 % (warning) or 95 % (critical) of its soft RLIMIT_NOFILE: at the limit open, socket, accept and pipe fail with EMFILE.",
    runbook: "`memlens diagnose --cgroup CGROUP` (the alert's `cgroup`; the process is its `comm`, or its `pid` with `pid_label = true`) forecasts when it runs out; find the leak (`ls -l /proc/PID/fd`), or raise the limit (LimitNOFILE=).",
};

pub(crate) const VMAS: Spec = Spec {
    name: "VMACountNearLimit",
    meaning: "Memory mappings of a process at 80 % (warning) or 95 % (critical) of the host's vm.max_map_count: at the limit mmap, mprotect and brk fail with ENOMEM while memory is free, and a Go program dies.",
    runbook: "`memlens diagnose --cgroup CGROUP` (the alert's `cgroup`; the process is its `comm`, or its `pid` with `pid_label = true`) shows the anonymous mappings and the fragmentation; fix what maps many small regions, or raise vm.max_map_count.",
};

pub(crate) const HOST_PRESSURE: Spec = Spec {
    name: "HostMemoryPressure",
    meaning: "Some task of the host stalled on memory (PSI `some`) 10 % of the time or more over the window: reclaim and refaults are slowing the host.",
    runbook: "`memlens snapshot` shows who holds memory; look for MemoryThrashing on its cgroups, a neighbour's growth, or too little memory for the host's work.",
};

pub(crate) const HOST_LOW: Spec = Spec {
    name: "HostMemoryLow",
    meaning: "MemAvailable below 10 % of MemTotal: the host is close to reclaiming hard or to a host-wide OOM kill.",
    runbook: "`memlens snapshot` ranks processes by memory and `memlens diagnose` shows who the OOM killer would pick first.",
};

pub(crate) const AGENT_STALE: Spec = Spec {
    name: "MemlensAgentStale",
    meaning: "memlens has not finished a cycle for longer than the threshold (3 minutes: a 1-minute scrape sees a cycle up to a minute and an interval old), or is not answering; over standard names, a scrape of cAdvisor, the kubelet or node-exporter failed (`up` 0): no memory alert can fire meanwhile.",
    runbook: "Check the agent's service (`systemctl status memlens`, its log) and that Prometheus can scrape it.",
};

pub(crate) const AGENT_FAILING: Spec = Spec {
    name: "MemlensAgentFailing",
    meaning: "memlens failed to take a snapshot or to store one within the window (`memlens_agent_collector_errors_total` of the snapshot or store collector): its history and findings have holes.",
    runbook: "The agent's log names the failure (disk full, permissions, a damaged history moved aside).",
};

/// Appends the process, host and agent rules of `naming`.
pub(crate) fn rules(
    naming: Naming,
    t: &Thresholds,
    _rec: &mut [Recording],
    alerts: &mut Vec<Alert>,
) {
    let memlens = naming == Naming::Memlens;
    let (fds, max_fds) = if memlens {
        ("memlens_process_open_fds", "memlens_process_max_fds")
    } else {
        ("process_open_fds", "process_max_fds")
    };
    // A process's target: its identity (memlens), or the scrape target.
    let target = |expr: &str| {
        if memlens {
            with_process_target(expr)
        } else {
            with_target(expr, "", "instance")
        }
    };
    for (severity, ratio) in [
        (Severity::Critical, t.limit_critical_ratio),
        (Severity::Warning, t.limit_warning_ratio),
    ] {
        alerts.push(Alert {
            spec: FDS,
            severity,
            for_seconds: t.limit_for,
            expr: target(&format!("{fds} / {max_fds} >= {ratio}")),
            summary:
                "{{ $labels.target }}: {{ $value | humanizePercentage }} of its open files limit"
                    .to_string(),
            basis: Basis::Raw,
        });
        if memlens {
            alerts.push(Alert {
                spec: VMAS,
                severity,
                for_seconds: t.limit_for,
                expr: target(&format!(
                    "memlens_process_memory_maps / on (instance, job) group_left () memlens_host_max_memory_maps >= {ratio}"
                )),
                summary: "{{ $labels.target }}: {{ $value | humanizePercentage }} of vm.max_map_count".to_string(),
                basis: Basis::Raw,
            });
        }
    }
    let w = d(t.host_window);
    let (psi, available, total) = if memlens {
        (
            "memlens_host_memory_pressure_some_seconds_total",
            "memlens_host_memory_available_bytes",
            "memlens_host_memory_total_bytes",
        )
    } else {
        (
            "node_pressure_memory_waiting_seconds_total",
            "node_memory_MemAvailable_bytes",
            "node_memory_MemTotal_bytes",
        )
    };
    alerts.push(Alert {
        spec: HOST_PRESSURE,
        severity: Severity::Warning,
        for_seconds: t.host_for,
        expr: with_fixed_target(&format!("rate({psi}[{w}]) >= {}", t.host_pressure_ratio), "host"),
        summary: "{{ $labels.instance }}: tasks stalled on memory {{ $value | humanizePercentage }} of the time".to_string(),
        basis: Basis::Raw,
    });
    alerts.push(Alert {
        spec: HOST_LOW,
        severity: Severity::Warning,
        for_seconds: t.host_for,
        expr: with_fixed_target(
            &format!("{available} / {total} < {}", t.host_available_ratio),
            "host",
        ),
        summary:
            "{{ $labels.instance }}: MemAvailable {{ $value | humanizePercentage }} of MemTotal"
                .to_string(),
        basis: Basis::Raw,
    });
    let stale = if memlens {
        // The last value seen within the hour: a silent agent keeps its old
        // timestamp until then (an absent series would fire nothing).
        format!(
            "time() - max_over_time(memlens_agent_last_cycle_timestamp_seconds[1h]) > {}",
            t.agent_stale
        )
    } else {
        // Prometheus's own `up` says at once that a scrape failed.
        "up{job=~\".*(cadvisor|kubelet|node).*\"} == 0".to_string()
    };
    alerts.push(Alert {
        spec: AGENT_STALE,
        severity: Severity::Warning,
        for_seconds: t.agent_for,
        expr: with_target(&stale, "agent:", "instance"),
        summary: "{{ $labels.instance }}: no sample for {{ $value | humanizeDuration }}"
            .to_string(),
        basis: Basis::Raw,
    });
    if memlens {
        alerts.push(Alert {
            spec: AGENT_FAILING,
            severity: Severity::Warning,
            for_seconds: 0.0,
            expr: with_target(
                &format!(
                    "increase(memlens_agent_collector_errors_total{{collector=~\"snapshot|store\"}}[{}]) > 0",
                    d(t.agent_errors_window)
                ),
                "agent:",
                "instance",
            ),
            summary: "{{ $labels.instance }}: {{ $value }} {{ $labels.collector }}/{{ $labels.stage }} failures".to_string(),
            basis: Basis::Raw,
        });
    }
}
