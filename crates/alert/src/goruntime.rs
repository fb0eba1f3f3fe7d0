//! Go runtime alerts: GOMEMLIMIT against the cgroup limit (above it, too
//! close, unset), GOGC=off without a limit, a GC death spiral, goroutine
//! leaks. The settings come from the service's own `/metrics`
//! (runtime/metrics `/gc/gomemlimit:bytes`, `/gc/gogc:percent`): over
//! memlens names as memlens read them (`memlens_go_*`, by the process's
//! series identity: `comm`, `cgroup`, `instance_index`), over
//! standard names as client_golang serves them (`go_gc_*`), joined to
//! cAdvisor's limit on the Kubernetes labels `namespace`, `pod`, `container`
//! that service discovery gives both.

use crate::catalogue::{
    with_process_target, with_target, Alert, Basis, Naming, Recording, Severity, Spec,
};
use crate::memory::LIMIT;
use crate::thresholds::{prom_duration as d, Thresholds};

/// memlens names: each Go process's cgroup limit (`comm`, `cgroup`, `instance_index`).
pub const PROCESS_LIMIT: &str = "memlens:process_cgroup_limit_bytes";
/// memlens names: memory charged besides what the runtime counts against
/// its limit: RSS - (Sys - HeapReleased) (`comm`, `cgroup`, `instance_index`).
pub const OUTSIDE: &str = "memlens:go_outside_runtime_bytes";
/// Standard names: each container's limit (`namespace`, `pod`, `container`).
pub const CONTAINER_LIMIT: &str = "memlens:go_container_limit_bytes";

/// A GOMEMLIMIT at or above this is unset (math.MaxInt64 as a float).
const UNSET: &str = "9e18";

pub(crate) const ABOVE_LIMIT: Spec = Spec {
    name: "GoMemLimitAboveLimit",
    meaning: "GOMEMLIMIT is at or above the cgroup's limit: the kernel kills the process before the GC works harder to stay under its limit.",
    runbook: "Set GOMEMLIMIT below the limit by what the runtime does not count plus a margin (`memlens advise` computes it).",
};

pub(crate) const TOO_CLOSE: Spec = Spec {
    name: "GoMemLimitTooClose",
    meaning: "GOMEMLIMIT is below the cgroup's limit by less than the memory the runtime does not count (RSS - (Sys - HeapReleased), its most over the last hour) plus half of the margin (5 % of the limit, at least 16 MiB): outside memory can push the cgroup over its limit while the runtime keeps to GOMEMLIMIT.",
    runbook: "Lower GOMEMLIMIT to the limit minus the outside memory minus the margin (`memlens advise`).",
};

pub(crate) const MISSING: Spec = Spec {
    name: "GoMemLimitMissing",
    meaning: "A Go process in a memory-limited cgroup runs without GOMEMLIMIT: its heap grows to GOGC's goal (about (1 + GOGC/100) x the live heap) whatever the cgroup allows.",
    runbook: "Set GOMEMLIMIT (`memlens advise` gives the value); GOGC can stay.",
};

pub(crate) const GOGC_OFF: Spec = Spec {
    name: "GoGCOffWithoutLimit",
    meaning: "GOGC is off and there is no GOMEMLIMIT: the GC never runs and the heap grows until the kill.",
    runbook: "Set GOMEMLIMIT (GOGC=off with a GOMEMLIMIT is sound), or turn GOGC back on.",
};

pub(crate) const DEATH_SPIRAL: Spec = Spec {
    name: "GoGCDeathSpiral",
    meaning: "The GC used 25 % of the CPU or more over the last window (not since start) while the runtime's memory (Sys - HeapReleased, what GOMEMLIMIT bounds) is at 90 % of GOMEMLIMIT or more: the live heap nearly fills the limit and the GC runs back to back. Standard names: client_golang's /cpu/classes/gc and /cpu/classes/total runtime metrics (opt-in). memlens names: the runtime's since-start GCCPUFraction is at 25 % or more and rose over the window, which proves the window's own share is above it (a long-running process's average moves slowly, so this can come late).",
    runbook: "Shrink the live heap (`memlens heap`) or raise GOMEMLIMIT and the limit together; a GOMEMLIMIT set too close to the live heap trades memory for all of the CPU.",
};

pub(crate) const GOROUTINE_LEAK: Spec = Spec {
    name: "GoroutineLeak",
    meaning: "At least 1000 goroutines, and the fewest of the newest quarter of the last hour at least 1.5 x the most of its oldest quarter: goroutines accumulate rather than come and go.",
    runbook: "`memlens goroutines --pid PID` groups them by creation site (Go 1.26+ proves leaks with /debug/pprof/goroutineleak); `--diff` shows which sites grow.",
};

/// Appends the Go runtime rules of `naming`.
pub(crate) fn rules(
    naming: Naming,
    t: &Thresholds,
    rec: &mut Vec<Recording>,
    alerts: &mut Vec<Alert>,
) {
    let n = Names::of(naming);
    // `join`: a Go series to its cgroup's limit. `cmp_on`/`add_on`: the
    // matching that the outside memory and the margin need.
    let (limit, outside, join, cmp_on, add_on) = match naming {
        Naming::Memlens => {
            rec.push(Recording {
                record: PROCESS_LIMIT,
                expr: "max by (instance, job, comm, cgroup, instance_index) (0 * memlens_process_resident_memory_bytes) \
                       + on (instance, job, cgroup) group_left () memlens_cgroup_memory_effective_limit_bytes"
                    .to_string(),
            });
            rec.push(Recording {
                record: OUTSIDE,
                expr: "max by (instance, job, comm, cgroup, instance_index) (memlens_process_resident_memory_bytes) \
                       - on (instance, job, comm, cgroup, instance_index) group_left () (memlens_go_sys_bytes - memlens_go_heap_released_bytes)"
                    .to_string(),
            });
            let on = "on (instance, job, comm, cgroup, instance_index)";
            (
                PROCESS_LIMIT,
                format!("max_over_time({OUTSIDE}[1h])"),
                on,
                format!("{on} group_left ()"),
                String::new(),
            )
        }
        Naming::Standard => {
            rec.push(Recording {
                record: CONTAINER_LIMIT,
                expr: format!("max by (namespace, pod, container) ({LIMIT}{{container!=\"\"}})"),
            });
            let on = "on (namespace, pod, container)";
            (
                CONTAINER_LIMIT,
                "max_over_time((process_resident_memory_bytes - (go_memstats_sys_bytes - go_memstats_heap_released_bytes))[1h:1m])"
                    .to_string(),
                on,
                String::new(),
                format!("{on} group_left ()"),
            )
        }
    };
    let target = |expr: String| match naming {
        Naming::Memlens => with_process_target(&expr),
        Naming::Standard => with_target(&expr, n.target_prefix, n.target_label),
    };
    let set = format!("({} < {UNSET})", n.gomemlimit);
    let unset = format!("({} >= {UNSET})", n.gomemlimit);
    let settings = |spec: Spec, severity: Severity, expr: String, summary: &str| Alert {
        spec,
        severity,
        for_seconds: t.settings_for,
        expr: target(expr),
        summary: summary.to_string(),
        basis: Basis::Raw,
    };
    alerts.push(settings(
        ABOVE_LIMIT,
        Severity::Critical,
        format!("{set} >= {join} group_left () {limit}"),
        "{{ $labels.target }}: GOMEMLIMIT {{ $value | humanize1024 }}B is not below the cgroup limit",
    ));
    let margin = format!(
        "clamp_min({half} * {limit}, {min_half})",
        half = t.gomemlimit_margin_ratio / 2.0,
        min_half = t.gomemlimit_min_margin_bytes / 2.0
    );
    // Headroom = limit - GOMEMLIMIT, with the Go series' labels.
    let headroom = format!("({limit} - {join} group_right () {set})");
    alerts.push(settings(
        TOO_CLOSE,
        Severity::Warning,
        format!("({headroom} >= 0) < {cmp_on} ({outside} + {add_on} {margin})"),
        "{{ $labels.target }}: GOMEMLIMIT only {{ $value | humanize1024 }}B below the cgroup limit",
    ));
    alerts.push(settings(
        MISSING,
        Severity::Warning,
        format!("{unset} and {join} {limit}"),
        "{{ $labels.target }}: no GOMEMLIMIT in a memory-limited cgroup",
    ));
    alerts.push(settings(
        GOGC_OFF,
        Severity::Critical,
        format!("({} < 0) and {unset}", n.gogc),
        "{{ $labels.target }}: GOGC=off without GOMEMLIMIT",
    ));
    let w = d(t.gc_window);
    let gc_share = match naming {
        Naming::Memlens => format!(
            "memlens_go_gc_cpu_fraction >= {r} and deriv(memlens_go_gc_cpu_fraction[{w}]) > 0",
            r = t.gc_cpu_ratio
        ),
        Naming::Standard => format!(
            "rate(go_cpu_classes_gc_total_cpu_seconds_total[{w}]) / rate(go_cpu_classes_total_cpu_seconds_total[{w}]) >= {r}",
            r = t.gc_cpu_ratio
        ),
    };
    alerts.push(Alert {
        spec: DEATH_SPIRAL,
        severity: Severity::Critical,
        for_seconds: t.gc_for,
        expr: target(format!(
            "({gc_share}) and (({sys} - {released}) / {set} >= {m})",
            sys = n.sys,
            released = n.released,
            m = t.gc_memory_ratio
        )),
        summary: "{{ $labels.target }}: GC uses {{ $value | humanizePercentage }} of the CPU next to GOMEMLIMIT".to_string(),
        basis: Basis::Raw,
    });
    let quarter = t.goroutine_window / 4.0;
    alerts.push(Alert {
        spec: GOROUTINE_LEAK,
        severity: Severity::Warning,
        for_seconds: t.goroutine_for,
        expr: target(format!(
            "{g} >= {min} and min_over_time({g}[{q}]) >= {ratio} * max_over_time({g}[{q}] offset {older})",
            g = n.goroutines,
            min = t.goroutine_min,
            q = d(quarter),
            ratio = t.goroutine_growth_ratio,
            older = d(t.goroutine_window - quarter)
        )),
        summary: "{{ $labels.target }}: {{ $value }} goroutines and climbing".to_string(),
        basis: Basis::Raw,
    });
}

/// The series and join labels of one naming.
struct Names {
    gomemlimit: &'static str,
    gogc: &'static str,
    sys: &'static str,
    released: &'static str,
    goroutines: &'static str,
    target_prefix: &'static str,
    target_label: &'static str,
}

impl Names {
    fn of(naming: Naming) -> Names {
        match naming {
            Naming::Memlens => Names {
                gomemlimit: "memlens_go_gomemlimit_bytes",
                gogc: "memlens_go_gogc_percent",
                sys: "memlens_go_sys_bytes",
                released: "memlens_go_heap_released_bytes",
                goroutines: "memlens_go_goroutines",
                target_prefix: "process:",
                target_label: "comm",
            },
            Naming::Standard => Names {
                gomemlimit: "go_gc_gomemlimit_bytes",
                gogc: "go_gc_gogc_percent",
                sys: "go_memstats_sys_bytes",
                released: "go_memstats_heap_released_bytes",
                goroutines: "go_goroutines",
                target_prefix: "",
                target_label: "instance",
            },
        }
    }
}
