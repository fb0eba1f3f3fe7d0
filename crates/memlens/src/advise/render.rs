//! The advice as text for people and JSON for scripts (docs/advise.md), and
//! the snippets (environment, systemd unit, Kubernetes container).

use super::history::{Figure, Origin};
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
    if bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// A size as a Kubernetes quantity (`Mi` is 2^20).
fn k8s_size(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}Mi", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

fn gogc_text(percent: Option<u64>) -> String {
    percent.map_or_else(|| "off".to_string(), |p| p.to_string())
}

/// A span of time for people: `45 s`, `3m 20s`, `6h 12m`, `2d 3h`.
pub fn span_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `22,310`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize, one: &str) -> String {
    format!("{} {one}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// Where a figure came from, for the text: `over the last 6h 12m
/// (history, 22,310 samples; the peak 2h 3m ago)` or `over a 10.0 s window
/// (live, 11 samples)`.
pub fn figure_source(advice: &Advice, figure: &Figure) -> String {
    match (figure.origin, &advice.history) {
        (Origin::History, Some(h)) => {
            let now_ms = h.peaks.first_unix_ms as f64 + h.span_seconds * 1000.0;
            let ago = figure
                .at_unix_ms
                .map(|at| {
                    format!(
                        "; the peak {} ago",
                        span_text((now_ms - at as f64) / 1000.0)
                    )
                })
                .unwrap_or_default();
            format!(
                "over the last {} (history, {}{ago})",
                span_text(h.span_seconds),
                plural(figure.samples, "sample")
            )
        }
        _ => {
            let o = &advice.observation;
            if figure.bytes.is_some()
                && figure.bytes == o.hwm_bytes
                && figure.bytes > o.peak(|s| s.rss_bytes)
            {
                "since the process started (VmHWM, live)".to_string()
            } else if advice.window_seconds < 0.5 && figure.samples <= 1 {
                "in a single live read (live)".to_string()
            } else {
                format!(
                    "over a {:.1} s window (live, {})",
                    advice.window_seconds,
                    plural(figure.samples, "sample")
                )
            }
        }
    }
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
    let who = format!(
        "memlens advise: pid {} ({}, {})",
        advice.pid,
        o.comm,
        o.go_version.as_deref().unwrap_or("?")
    );
    match &advice.history {
        Some(h) => writeln!(
            out,
            "{who}, peaks over the last {} from the agent's history ({}, {}) and a live read ({} over {:.1} s)",
            span_text(h.span_seconds),
            h.dir.display(),
            plural(h.peaks.samples, "sample"),
            plural(o.samples.len(), "sample"),
            advice.window_seconds
        )?,
        None => writeln!(
            out,
            "{who}, {} over {:.1} s (live)",
            plural(o.samples.len(), "sample"),
            advice.window_seconds
        )?,
    }
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
    let f = &advice.figures;
    writeln!(
        out,
        "  peak RSS             {}  {}",
        opt_mib(i.peak_rss_bytes),
        figure_source(advice, &f.peak_rss)
    )?;
    writeln!(
        out,
        "  peak cgroup usage    {}  {}",
        opt_mib(i.peak_usage_bytes),
        figure_source(advice, &f.peak_usage)
    )?;
    writeln!(
        out,
        "  outside Go runtime   {}  (max(usage, RSS) - (Sys - HeapReleased), highest sample) {}",
        opt_mib(i.outside_runtime_bytes),
        figure_source(advice, &f.outside)
    )?;
    writeln!(
        out,
        "  peak non-heap        {}  (RSS - HeapInuse, highest sample) {}",
        opt_mib(i.non_heap_bytes),
        figure_source(advice, &f.non_heap)
    )?;
    writeln!(
        out,
        "  live heap            {}  (lowest HeapAlloc of the live read)",
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
        "  GOMEMLIMIT  = memory.max - outside Go runtime ({}{}) - margin ({}: 5 % of the limit, at least 16 MiB; GOMEMLIMIT is soft and outside memory can peak above what was seen) = {}",
        mib(r.outside_runtime_bytes),
        if r.outside_measured {
            format!(", measured {}", figure_source(advice, &advice.figures.outside))
        } else {
            ", assumed".to_string()
        },
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
    if let Some(note) = &advice.history_note {
        writeln!(out, "  note: history not used: {note}")?;
    }
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

fn figure_json(f: &Figure) -> Value {
    json!({ "source": f.origin.as_str(), "samples": f.samples, "at_unix_ms": f.at_unix_ms })
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
    let h = advice.history.as_ref();
    let f = &advice.figures;
    json!({
        "pid": advice.pid,
        "comm": o.comm,
        "go_version": o.go_version,
        "window_source": if h.is_some() { "history" } else { "live" },
        "window_seconds": h.map_or(advice.window_seconds, |h| h.span_seconds),
        "live_window_seconds": advice.window_seconds,
        "history_span_seconds": h.map(|h| h.span_seconds),
        "history_seconds": h.map(|h| h.lookback_seconds),
        "store_dir": h.map(|h| h.dir.display().to_string()),
        "history_note": advice.history_note,
        "samples": o.samples.len() + h.map_or(0, |h| h.peaks.samples),
        "live_samples": o.samples.len(),
        "history_samples": h.map(|h| h.peaks.samples),
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
            "sources": {
                "peak_rss_bytes": figure_json(&f.peak_rss),
                "peak_usage_bytes": figure_json(&f.peak_usage),
                "outside_runtime_bytes": figure_json(&f.outside),
                "non_heap_bytes": figure_json(&f.non_heap),
                "live_heap_bytes": { "source": "live", "samples": o.samples.len(), "at_unix_ms": null },
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_counts_for_people() {
        assert_eq!(span_text(0.4), "0 s");
        assert_eq!(span_text(45.0), "45 s");
        assert_eq!(span_text(200.0), "3m 20s");
        assert_eq!(span_text(6.0 * 3600.0 + 12.0 * 60.0 + 5.0), "6h 12m");
        assert_eq!(span_text(2.0 * 86400.0 + 3.0 * 3600.0), "2d 3h");
        assert_eq!(span_text(-3.0), "0 s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(22310), "22,310");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(plural(1, "sample"), "1 sample");
        assert_eq!(plural(2, "sample"), "2 samples");
    }
}
