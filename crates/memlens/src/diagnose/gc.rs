//! The GC pressure section: each selected Go process's GC cycles, pauses and
//! allocation rate over the window, from its runtime's counters at both ends
//! (memlens_analyze::gcpressure).

use super::window::GoWindow;
use super::{sort_worst_first, Context, Section};
use memlens_analyze::gcpressure::{self, Observation};
use memlens_analyze::gomemconfig::resolve_gomemlimit;
use memlens_analyze::{Finding, Target};

/// The GOMEMLIMIT in force for `g`: the runtime's, else the environment's.
pub fn gomemlimit_bytes(context: &Context, g: &GoWindow) -> Option<u64> {
    let runtime = g.end.as_ref().and_then(|e| e.runtime.gomemlimit_bytes);
    let env = context
        .at_end(g.pid, g.start_time)
        .and_then(|p| p.go.as_ref())
        .and_then(|go| go.gomemlimit.clone());
    resolve_gomemlimit(runtime, env.as_deref()).ok()?.bytes
}

/// Builds the `gc_pressure` section.
pub fn section(context: &Context) -> Section {
    let mut findings: Vec<Finding> = Vec::new();
    let mut rows = Vec::new();
    let mut text = Vec::new();
    for g in context.go {
        let comm = context
            .at_end(g.pid, g.start_time)
            .map_or(String::new(), |p| p.comm.clone());
        let (Some(start), Some(end), Some(window_seconds)) = (&g.start, &g.end, g.window_seconds())
        else {
            rows.push(serde_json::json!({
                "pid": g.pid, "comm": comm, "sources": g.sources, "notes": g.notes,
            }));
            continue;
        };
        let obs = Observation {
            start: start.gc,
            end: end.gc,
            window_seconds,
            gomemlimit_bytes: gomemlimit_bytes(context, g),
            run_queue_wait_seconds: match (start.run_queue_wait_ns, end.run_queue_wait_ns) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
                _ => None,
            },
        };
        let r = gcpressure::rates(&obs, &context.config.gc).unwrap_or_default();
        let target = Target::Process {
            pid: g.pid,
            start_time: g.start_time,
        };
        let finding = gcpressure::check(&obs, &context.config.gc, &target, context.at_ms());
        text.push(format!(
            "  {:>8}  {:<16} {:>9} {:>8} {:>10} {:>8}  {}",
            g.pid,
            comm.chars().take(16).collect::<String>(),
            r.cycles_per_minute
                .map_or("-".into(), |v| format!("{v:.0}")),
            r.pause_fraction
                .map_or("-".into(), |v| format!("{:.2}%", v * 100.0)),
            r.alloc_bytes_per_second
                .map_or("-".into(), |v| format!("{:.1}", v / 1e6)),
            r.gc_cpu_fraction
                .map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
            finding.as_ref().map_or("ok", |f| f.severity.as_str()),
        ));
        rows.push(serde_json::json!({
            "pid": g.pid,
            "comm": comm,
            "sources": g.sources,
            "from_expvar": end.from_expvar,
            "window_seconds": window_seconds,
            "num_gc_start": start.gc.num_gc,
            "num_gc_end": end.gc.num_gc,
            "gc_cycles": r.cycles,
            "cycles_per_minute": r.cycles_per_minute,
            "pause_fraction": r.pause_fraction,
            "mean_pause_seconds": r.mean_pause_seconds,
            "alloc_bytes_per_second": r.alloc_bytes_per_second,
            "mallocs_per_second": r.mallocs_per_second,
            "gc_cpu_fraction": r.gc_cpu_fraction,
            "heap_to_gomemlimit_ratio": r.heap_to_limit_ratio,
            "run_queue_wait_ratio": r.run_queue_wait_ratio,
            "notes": g.notes,
        }));
        findings.extend(finding);
    }
    sort_worst_first(&mut findings, |f| f, "cycles_per_minute");
    Section::per_process(
        "gc_pressure",
        "Go GC pressure",
        format!(
            "{} Go processes observed, {} read at both ends",
            context.go.len(),
            text.len()
        ),
        format!(
            "  {:>8}  {:<16} {:>9} {:>8} {:>10} {:>8}  {}",
            "PID", "COMM", "GC/MIN", "PAUSED", "ALLOC MB/s", "GC CPU", "VERDICT"
        ),
        text,
        findings,
        rows,
    )
}
