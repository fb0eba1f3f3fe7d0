//! The rule tests over memlens's own names: the series `memlens watch
//! --listen` exports (docs/metrics.md), with the labels it gives them, and
//! the alert each must fire (or not).

use crate::ruletests::{flat, Check, Scenario};
use crate::series::{counter, join, step_at, steps, STEP_SECONDS};
use crate::thresholds::Thresholds;

const MIB: f64 = 1_048_576.0;
const SCRAPE: &str = "instance=\"host-1:9464\",job=\"memlens\"";
/// math.MaxInt64: GOMEMLIMIT unset.
const UNSET: f64 = 9_223_372_036_854_775_807.0;

fn firing(alert: &'static str, severity: &'static str, target: &str, at_seconds: f64) -> Check {
    Check::Firing {
        alert,
        severity,
        target: target.to_string(),
        at_seconds,
    }
}

fn quiet(target: &str, from_seconds: f64, to_seconds: f64) -> Check {
    Check::Quiet {
        target: target.to_string(),
        from_seconds,
        to_seconds,
    }
}

/// The scenarios over memlens names.
pub(crate) fn scenarios(t: &Thresholds) -> Vec<Scenario> {
    vec![findings(t), kills(t), settings(t), gc(t), limits(t)]
}

fn findings(t: &Thresholds) -> Scenario {
    let span = 1200.0;
    let at = t.finding_for + 300.0;
    let active = |finding: &str, severity: &str, target: &str, who: &str| {
        (
            format!("memlens_finding_active{{finding=\"{finding}\",severity=\"{severity}\",target=\"{target}\",{who},{SCRAPE}}}"),
            flat(1.0, span),
        )
    };
    let process = "comm=\"leaky\"";
    Scenario {
        name: "memlens names: each active finding fires its alert".to_string(),
        series: vec![
            active("memory.near_limit", "warning", "cgroup:/svc", "cgroup=\"/svc\""),
            active("memory.thrashing", "critical", "cgroup:/thrash", "cgroup=\"/thrash\""),
            active("memory.growth", "warning", "process:grower@/g", "comm=\"grower\""),
            active("memory.time_to_oom", "critical", "process:leaky@/svc", process),
            (
                format!("memlens_time_to_oom_seconds{{finding=\"memory.time_to_oom\",severity=\"critical\",target=\"process:leaky@/svc\",{process},{SCRAPE}}}"),
                join((0..steps(span)).map(|i| 500.0 - i as f64)),
            ),
            (
                format!("memlens_time_to_oom_seconds{{finding=\"memory.time_to_oom\",severity=\"warning\",target=\"process:slow@/s#1\",comm=\"slow\",instance_index=\"1\",{SCRAPE}}}"),
                flat(1500.0, span),
            ),
        ],
        checks: vec![
            firing("MemoryNearLimit", "warning", "cgroup:/svc", at),
            firing("MemoryThrashing", "critical", "cgroup:/thrash", at),
            firing("MemoryGrowing", "warning", "process:grower@/g", at),
            firing("MemoryFillingUp", "critical", "process:leaky@/svc", at),
            firing("MemoryFillingUp", "warning", "process:slow@/s#1", at),
        ],
    }
}

/// A series absent until `at_seconds`, then 1.
fn appearing(at_seconds: f64, span: f64) -> String {
    join((0..steps(span)).map(|i| {
        if (i as f64) * STEP_SECONDS < at_seconds {
            f64::NAN
        } else {
            1.0
        }
    }))
}

fn kills(t: &Thresholds) -> Scenario {
    let span = 3600.0;
    let appears_at = 1200.0;
    // The agent's counter of a victim appears at its first kill, at 1.
    let victim = appearing(appears_at, span);
    // Victims of cgroup /svc2 (incarnations of a restarted service), each
    // counter appearing at its kill, 10 minutes apart.
    let victims = (1..=t.repeated_oom_kills.ceil() as u32).map(|n| {
        (
            format!("memlens_oom_kills_observed_total{{target=\"process:svc2@/svc2#{n}\",comm=\"svc2\",instance_index=\"{n}\",cgroup=\"/svc2\",{SCRAPE}}}"),
            appearing(600.0 * n as f64, span),
        )
    });
    let repeated = join((0..steps(span)).map(|i| {
        ((i as f64 * STEP_SECONDS) / 600.0)
            .floor()
            .min(t.repeated_oom_kills)
    }));
    Scenario {
        name: "memlens names: a victim's kill counter fires OOM killed when it appears; a cgroup's repeated kills fire, by its own counter or its victims'; one kill is not repeated".to_string(),
        series: victims.chain([
            (
                format!("memlens_oom_kills_observed_total{{target=\"process:leaky@/svc\",comm=\"leaky\",cgroup=\"/svc\",{SCRAPE}}}"),
                victim,
            ),
            (format!("memlens_cgroup_memory_oom_kills_total{{cgroup=\"/loop\",{SCRAPE}}}"), repeated),
            (format!("memlens_cgroup_memory_oom_kills_total{{cgroup=\"/svc\",{SCRAPE}}}"), flat(0.0, span)),
            (format!("memlens_cgroup_memory_oom_kills_total{{cgroup=\"/calm\",{SCRAPE}}}"), flat(0.0, span)),
        ])
        .collect(),
        checks: vec![
            quiet("process:leaky@/svc", 0.0, appears_at - 60.0),
            firing(
                "MemoryOOMKilledRepeatedly",
                "critical",
                "cgroup:/svc2",
                600.0 * t.repeated_oom_kills + 60.0,
            ),
            quiet("cgroup:/svc", 0.0, span),
            firing("MemoryOOMKilled", "critical", "process:leaky@/svc", appears_at + 120.0),
            firing(
                "MemoryOOMKilledRepeatedly",
                "critical",
                "cgroup:/loop",
                600.0 * t.repeated_oom_kills + 60.0,
            ),
            quiet("cgroup:/calm", 0.0, span),
        ],
    }
}

/// A Go process of cgroup `/go` (limit 256 MiB): its RSS, runtime memory
/// and settings.
fn go_process(
    pid: u32,
    gomemlimit: f64,
    gogc: f64,
    rss: f64,
    sys: f64,
    span: f64,
) -> Vec<(String, String)> {
    // As the agent labels a Go process in cgroup /go: its identity.
    let who = format!("comm=\"svc{pid}\",cgroup=\"/go\",service=\"/go\"");
    let mut series = vec![
        (
            format!(
                "memlens_process_resident_memory_bytes{{{who},go_version=\"go1.27\",{SCRAPE}}}"
            ),
            flat(rss, span),
        ),
        (
            format!("memlens_go_gomemlimit_bytes{{{who},{SCRAPE}}}"),
            flat(gomemlimit, span),
        ),
        (
            format!("memlens_go_gogc_percent{{{who},{SCRAPE}}}"),
            flat(gogc, span),
        ),
    ];
    if sys > 0.0 {
        series.push((
            format!("memlens_go_sys_bytes{{{who},{SCRAPE}}}"),
            flat(sys, span),
        ));
        series.push((
            format!("memlens_go_heap_released_bytes{{{who},{SCRAPE}}}"),
            flat(10.0 * MIB, span),
        ));
    }
    series
}

fn settings(t: &Thresholds) -> Scenario {
    let span = t.settings_for + 900.0;
    let at = t.settings_for + 300.0;
    let mut series = vec![(
        format!("memlens_cgroup_memory_effective_limit_bytes{{cgroup=\"/go\",{SCRAPE}}}"),
        flat(256.0 * MIB, span),
    )];
    series.extend(go_process(10, 300.0 * MIB, 100.0, 100.0 * MIB, 0.0, span));
    series.extend(go_process(
        11,
        250.0 * MIB,
        100.0,
        100.0 * MIB,
        90.0 * MIB,
        span,
    ));
    series.extend(go_process(12, UNSET, 100.0, 100.0 * MIB, 0.0, span));
    series.extend(go_process(13, UNSET, -1.0, 100.0 * MIB, 0.0, span));
    series.extend(go_process(
        14,
        200.0 * MIB,
        100.0,
        100.0 * MIB,
        90.0 * MIB,
        span,
    ));
    Scenario {
        name: "memlens names: GOMEMLIMIT above the limit, too close, unset; GOGC=off without a limit; a sound GOMEMLIMIT fires nothing".to_string(),
        series,
        checks: vec![
            firing("GoMemLimitAboveLimit", "critical", "process:svc10@/go", at),
            firing("GoMemLimitTooClose", "warning", "process:svc11@/go", at),
            firing("GoMemLimitMissing", "warning", "process:svc12@/go", at),
            firing("GoGCOffWithoutLimit", "critical", "process:svc13@/go", at),
            quiet("process:svc14@/go", 0.0, span),
        ],
    }
}

fn gc(t: &Thresholds) -> Scenario {
    let span = t.gc_window + t.gc_for + 900.0;
    let mut series = Vec::new();
    for (pid, fraction) in [
        // The since-start fraction rising: the window's share is above it.
        (
            20,
            join((0..steps(span)).map(|i| t.gc_cpu_ratio + 0.01 + 1e-4 * i as f64)),
        ),
        // Flat at the same level: the window's share is not known to be.
        (21, flat(t.gc_cpu_ratio + 0.05, span)),
    ] {
        // Two processes of one name and cgroup, kept apart by instance_index.
        // (index 0 is not written).
        let index = match pid - 20 {
            0 => String::new(),
            n => format!("instance_index=\"{n}\","),
        };
        let who = format!("comm=\"svc\",cgroup=\"/gc\",service=\"/gc\",{index}{SCRAPE}");
        series.push((format!("memlens_go_gc_cpu_fraction{{{who}}}"), fraction));
        series.push((
            format!("memlens_go_gomemlimit_bytes{{{who}}}"),
            flat(200.0 * MIB, span),
        ));
        series.push((
            format!("memlens_go_sys_bytes{{{who}}}"),
            flat(200.0 * MIB, span),
        ));
        series.push((
            format!("memlens_go_heap_released_bytes{{{who}}}"),
            flat(5.0 * MIB, span),
        ));
    }
    Scenario {
        name: "memlens names: a GC death spiral next to GOMEMLIMIT fires; a high since-start GC fraction that does not rise does not".to_string(),
        series,
        checks: vec![
            firing("GoGCDeathSpiral", "critical", "process:svc@/gc", t.gc_window + t.gc_for + 180.0),
            quiet("process:svc@/gc#1", 0.0, span),
        ],
    }
}

fn limits(t: &Thresholds) -> Scenario {
    let span = 1800.0;
    let at = t.limit_for.max(t.host_for).max(t.agent_for) + 420.0;
    let host2 = "instance=\"host-2:9464\",job=\"memlens\"";
    let pressure = (t.host_pressure_ratio * 2.0).min(1.0);
    Scenario {
        name: "memlens names: FDs and VMAs near their limits, host memory pressure, a stale agent; a live agent is quiet".to_string(),
        series: vec![
            (format!("memlens_process_open_fds{{comm=\"fds\",cgroup=\"/f\",service=\"/f\",{SCRAPE}}}"), flat(990.0, span)),
            (format!("memlens_process_max_fds{{comm=\"fds\",cgroup=\"/f\",service=\"/f\",{SCRAPE}}}"), flat(1000.0, span)),
            (
                format!("memlens_process_memory_maps{{comm=\"maps\",instance_index=\"2\",pid=\"31\",{SCRAPE}}}"),
                flat((t.limit_warning_ratio + t.limit_critical_ratio) / 2.0 * 65530.0, span),
            ),
            (format!("memlens_host_max_memory_maps{{{SCRAPE}}}"), flat(65530.0, span)),
            (
                format!("memlens_host_memory_pressure_some_seconds_total{{{SCRAPE}}}"),
                counter(0.0, pressure, span),
            ),
            (format!("memlens_agent_last_cycle_timestamp_seconds{{{SCRAPE}}}"), flat(0.0, span)),
            // A live agent as a 1-minute scrape sees it: its last cycle
            // up to 70 s old.
            (
                format!("memlens_agent_last_cycle_timestamp_seconds{{{host2}}}"),
                counter(-70.0, 1.0, span),
            ),
            (
                format!("memlens_agent_collector_errors_total{{collector=\"store\",stage=\"write\",{host2}}}"),
                flat(0.0, span),
            ),
            (
                format!("memlens_agent_collector_errors_total{{collector=\"store\",stage=\"write\",{SCRAPE}}}"),
                step_at(0.0, 1.0, 600.0, span),
            ),
        ],
        checks: vec![
            firing("FDExhaustion", "critical", "process:fds@/f", at),
            firing("FDExhaustion", "warning", "process:fds@/f", at),
            firing("VMACountNearLimit", "warning", "process:maps@#2", at),
            firing("HostMemoryPressure", "warning", "host", at),
            firing("MemlensAgentStale", "warning", "agent:host-1:9464", at),
            firing("MemlensAgentFailing", "warning", "agent:host-1:9464", 720.0),
            quiet("agent:host-2:9464", 0.0, span),
        ],
    }
}
