//! The heap-growth section: for each selected Go process, the in-use heap
//! growth per allocation site between its heap profiles at the start and the
//! end of the window (memlens_analyze::heap_growth).

use super::{sort_worst_first, Context, Section};
use memlens_analyze::heap_growth;
use memlens_analyze::{Finding, Target};

/// Builds the `heap_growth` section.
pub fn section(context: &Context) -> Section {
    let config = heap_growth::Config::default();
    let mut findings: Vec<Finding> = Vec::new();
    let mut rows = Vec::new();
    let mut text = Vec::new();
    for g in context.go {
        let comm = context
            .at_end(g.pid, g.start_time)
            .map_or(String::new(), |p| p.comm.clone());
        let (Some(start), Some(end)) = (g.profiles_start.as_ref(), g.profiles_end.as_ref()) else {
            rows.push(serde_json::json!({
                "pid": g.pid, "comm": comm, "read": false, "notes": g.notes,
            }));
            continue;
        };
        let (Some(start_top), Some(end_top)) = (&start.heap_stacks, &end.heap_stacks) else {
            rows.push(serde_json::json!({
                "pid": g.pid, "comm": comm, "read": false, "notes": g.notes,
            }));
            continue;
        };
        let window_seconds = end.at_seconds - start.at_seconds;
        let rate = end.heap_sample_rate_bytes;
        let growth = heap_growth::sites(start_top, end_top, rate, &config);
        let target = Target::Process {
            pid: g.pid,
            start_time: g.start_time,
        };
        let finding = heap_growth::check(&growth, window_seconds, &target, context.at_ms());
        text.push(format!(
            "  {:>8}  {:<16} {:>10.1} {:>10.1}  {}",
            g.pid,
            comm.chars().take(16).collect::<String>(),
            growth.start_total_bytes as f64 / 1048576.0,
            growth.end_total_bytes as f64 / 1048576.0,
            finding.as_ref().map_or("ok", |f| f.severity.as_str()),
        ));
        for s in growth.sites.iter().filter(|s| s.significant) {
            text.push(format!(
                "      +{:.1} MiB ({:.0} %) {}",
                s.growth_bytes as f64 / 1048576.0,
                s.share_of_growth * 100.0,
                heap_growth::describe(s)
            ));
        }
        rows.push(serde_json::json!({
            "pid": g.pid,
            "comm": comm,
            "read": true,
            "window_seconds": window_seconds,
            "sample_rate_bytes": rate,
            "inuse_start_bytes": growth.start_total_bytes,
            "inuse_end_bytes": growth.end_total_bytes,
            "sites": growth.sites.iter().map(|s| serde_json::json!({
                "function": s.function,
                "stack": s.stack,
                "start_bytes": s.start_bytes,
                "end_bytes": s.end_bytes,
                "growth_bytes": s.growth_bytes,
                "share_of_growth": s.share_of_growth,
                "noise_bytes": s.noise_bytes,
                "significant": s.significant,
            })).collect::<Vec<_>>(),
            "notes": g.notes,
        }));
        findings.extend(finding);
    }
    sort_worst_first(&mut findings, |f| f, "growth_bytes");
    Section::per_process(
        "heap_growth",
        "Heap growth by allocation site",
        format!(
            "{} Go processes observed, {} with heap profiles at both ends",
            context.go.len(),
            text.iter().filter(|l| !l.starts_with("      ")).count()
        ),
        format!(
            "  {:>8}  {:<16} {:>10} {:>10}  {}",
            "PID", "COMM", "START MiB", "END MiB", "VERDICT"
        ),
        text,
        findings,
        rows,
    )
}
