//! The advice as text for people and JSON for scripts (docs/advise.md), and
//! the snippets (environment, systemd unit, Kubernetes container).

use super::Advice;
use memlens_analyze::gomemconfig::{format_gomemlimit, Source};
use memlens_analyze::Finding;
use serde_json::{json, Value};
use std::io::{self, Write};

const MIB: u64 = 1 << 20;

/// `123.4 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

fn opt_mib(bytes: Option<u64>) -> String {
    bytes.map(mib).unwrap_or_else(|| "unknown".to_string())
}

/// A size as systemd reads it (`K`/`M`/`G` are powers of 1024).
fn systemd_size(bytes: u64) -> String {
    if bytes % MIB == 0 {
        format!("{}M", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// A size as a Kubernetes quantity (`Mi` is 2^20).
fn k8s_size(bytes: u64) -> String {
    if bytes % MIB == 0 {
        format!("{}Mi", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

fn gogc_text(percent: Option<u64>) -> String {
    percent.map_or_else(|| "off".to_string(), |p| p.to_string())
}

/// What to say about the GOMEMLIMIT in force: `fine`, `missing`,
/// `above_limit`, `too_close`, `none_needed` (no cgroup limit) or `gc_off`.
pub fn verdict(advice: &Advice) -> &'static str {
    if let Some(f) = advice.findings.first() {
        return match f.id {
            memlens_analyze::gomemconfig::GOMEMLIMIT_MISSING => "missing",
            memlens_analyze::gomemconfig::GOMEMLIMIT_ABOVE_LIMIT => "above_limit",
            memlens_analyze::gomemconfig::GOMEMLIMIT_TOO_CLOSE => "too_close",
            _ => "gc_off_without_limit",
        };
    }
    match (
        advice.inputs.cgroup_limit_bytes,
        advice.inputs.gomemlimit.bytes,
    ) {
        (None, None) => "none_needed",
        _ => "fine",
    }
}

/// The three snippets: environment lines, a systemd drop-in, a Kubernetes
/// container fragment.
pub fn snippets(advice: &Advice) -> (String, String, String) {
    let r = &advice.recommendation;
    let limit = format_gomemlimit(r.gomemlimit_bytes);
    let gogc = gogc_text(r.gogc_percent);
    let env = format!("GOMEMLIMIT={limit}\nGOGC={gogc}\n");
    let systemd = format!(
        "[Service]\nEnvironment=GOMEMLIMIT={limit} GOGC={gogc}\nMemoryHigh={}\nMemoryMax={}\n",
        systemd_size(r.memory_high_bytes),
        systemd_size(r.memory_max_bytes)
    );
    let k8s = format!(
        "resources:\n  requests:\n    memory: {}\n  limits:\n    memory: {}\nenv:\n  - name: GOMEMLIMIT\n    value: \"{limit}\"\n  - name: GOGC\n    value: \"{gogc}\"\n",
        k8s_size(r.k8s_request_bytes),
        k8s_size(r.k8s_limit_bytes)
    );
    (env, systemd, k8s)
}

fn source_text(source: Source) -> &'static str {
    match source {
        Source::Runtime => "read from the running program",
        Source::Environment => "from the environment",
        Source::Default => "not in the environment; the runtime does not expose its settings",
    }
}

/// The text report.
pub fn text(out: &mut impl Write, advice: &Advice) -> io::Result<()> {
    let o = &advice.observation;
    let i = &advice.inputs;
    let r = &advice.recommendation;
    writeln!(
        out,
        "memlens advise: pid {} ({}, {}), {} samples over {:.1} s",
        advice.pid,
        o.comm,
        o.go_version.as_deref().unwrap_or("?"),
        o.samples.len(),
        advice.window_seconds
    )?;
    writeln!(out, "\nIn force")?;
    let cgroup = o.cgroup_path.as_deref().unwrap_or("none");
    writeln!(
        out,
        "  cgroup limit         {} ({cgroup})",
        i.cgroup_limit_bytes.map_or("none".to_string(), mib)
    )?;
    writeln!(
        out,
        "  GOMEMLIMIT           {} ({})",
        i.gomemlimit.bytes.map_or("none".to_string(), mib),
        source_text(i.gomemlimit.source)
    )?;
    writeln!(
        out,
        "  GOGC                 {} ({})",
        gogc_text(i.gogc.percent),
        source_text(i.gogc.source)
    )?;
    if let Some(e) = &advice.setting_error {
        writeln!(out, "  invalid setting      {e}")?;
    }
    writeln!(out, "\nObserved")?;
    writeln!(out, "  peak RSS             {}", opt_mib(i.peak_rss_bytes))?;
    writeln!(
        out,
        "  peak cgroup usage    {}",
        opt_mib(i.peak_usage_bytes)
    )?;
    writeln!(
        out,
        "  outside Go runtime   {}  (max(usage, RSS) - (Sys - HeapReleased), highest sample)",
        opt_mib(i.outside_runtime_bytes)
    )?;
    writeln!(
        out,
        "  non-heap             {}  (RSS - HeapInuse, highest sample)",
        opt_mib(i.non_heap_bytes)
    )?;
    writeln!(
        out,
        "  live heap            {}  (lowest HeapAlloc)",
        opt_mib(i.live_heap_bytes)
    )?;
    writeln!(out, "\nFindings")?;
    if advice.findings.is_empty() {
        writeln!(out, "  none: GOMEMLIMIT is {}", verdict(advice))?;
    }
    for f in &advice.findings {
        writeln!(
            out,
            "  {} {}: {}",
            f.severity.as_str().to_uppercase(),
            f.id,
            f.recommendation
        )?;
    }
    writeln!(out, "\nReasoning")?;
    writeln!(
        out,
        "  memory.max  = {}{}",
        mib(r.memory_max_bytes),
        if r.memory_max_proposed {
            " (proposed: the cgroup has none)"
        } else {
            " (the cgroup's limit, kept)"
        }
    )?;
    writeln!(
        out,
        "  GOMEMLIMIT  = memory.max - outside Go runtime ({}{}) - margin ({}: 5 % of the limit, at least 16 MiB; GOMEMLIMIT is soft and outside memory can peak above what the window saw) = {}",
        mib(r.outside_runtime_bytes),
        if r.outside_measured { ", measured" } else { ", assumed" },
        mib(r.margin_bytes),
        mib(r.gomemlimit_bytes)
    )?;
    writeln!(
        out,
        "  memory.high = memory.max - margin/2 = {} (a burst past the expected ceiling is throttled and reclaimed before the kill)",
        mib(r.memory_high_bytes)
    )?;
    writeln!(
        out,
        "  GOGC        = {} (with GOMEMLIMIT set, GOGC={} keeps the heap small while there is room; the limit takes over near it)",
        gogc_text(r.gogc_percent),
        gogc_text(r.gogc_percent)
    )?;
    writeln!(
        out,
        "  Kubernetes  requests = peak usage seen ({}), limits = memory.max ({})",
        mib(r.k8s_request_bytes),
        mib(r.k8s_limit_bytes)
    )?;
    for note in r.notes.iter().chain(&o.notes) {
        writeln!(out, "  note: {note}")?;
    }
    let (env, systemd, k8s) = snippets(advice);
    writeln!(out, "\n# environment\n{env}")?;
    writeln!(out, "# systemd unit (drop-in)\n{systemd}")?;
    write!(out, "# Kubernetes container\n{k8s}")?;
    Ok(())
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "id": f.id,
        "severity": f.severity.as_str(),
        "target": f.target.key(),
        "evidence": f.evidence.iter().map(|e| json!({
            "name": e.name, "value": e.value, "unit": e.unit, "layer": e.layer.as_str(),
        })).collect::<Vec<_>>(),
        "recommendation": f.recommendation,
        "fired_at_ms": f.fired_at_ms,
    })
}

fn gogc_json(percent: Option<u64>) -> Value {
    percent.map_or_else(|| json!("off"), |p| json!(p))
}

/// The JSON document (docs/advise.md).
pub fn json(advice: &Advice) -> Value {
    let o = &advice.observation;
    let i = &advice.inputs;
    let r = &advice.recommendation;
    let (env, systemd, k8s) = snippets(advice);
    json!({
        "pid": advice.pid,
        "comm": o.comm,
        "go_version": o.go_version,
        "window_seconds": advice.window_seconds,
        "samples": o.samples.len(),
        "runtime_sources": o.runtime_sources,
        "cgroup": {
            "path": o.cgroup_path,
            "limit_bytes": i.cgroup_limit_bytes,
            "high_bytes": o.cgroup_high_bytes,
        },
        "in_force": {
            "gomemlimit_bytes": i.gomemlimit.bytes,
            "gomemlimit_source": i.gomemlimit.source.as_str(),
            "gomemlimit_env": o.env_gomemlimit,
            "gomemlimit_error": advice.setting_error,
            "gogc_percent": gogc_json(i.gogc.percent),
            "gogc_source": i.gogc.source.as_str(),
            "gogc_env": o.env_gogc,
        },
        "observed": {
            "peak_rss_bytes": i.peak_rss_bytes,
            "peak_usage_bytes": i.peak_usage_bytes,
            "outside_runtime_bytes": i.outside_runtime_bytes,
            "non_heap_bytes": i.non_heap_bytes,
            "live_heap_bytes": i.live_heap_bytes,
        },
        "gomemlimit_verdict": verdict(advice),
        "findings": advice.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "recommendation": {
            "gomemlimit_bytes": r.gomemlimit_bytes,
            "gomemlimit": format_gomemlimit(r.gomemlimit_bytes),
            "gogc_percent": gogc_json(r.gogc_percent),
            "memory_max_bytes": r.memory_max_bytes,
            "memory_max_proposed": r.memory_max_proposed,
            "memory_high_bytes": r.memory_high_bytes,
            "margin_bytes": r.margin_bytes,
            "outside_runtime_bytes": r.outside_runtime_bytes,
            "outside_measured": r.outside_measured,
            "k8s_request_bytes": r.k8s_request_bytes,
            "k8s_limit_bytes": r.k8s_limit_bytes,
            "notes": r.notes,
        },
        "snippets": { "env": env, "systemd": systemd, "kubernetes": k8s },
        "notes": o.notes,
    })
}
