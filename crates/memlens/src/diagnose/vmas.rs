//! The memory mappings section: every selected process's VMA count against
//! the host's `vm.max_map_count` (with a forecast from the window's growth)
//! and mmap fragmentation (memlens_analyze::vmas).

use super::{process_target, sort_worst_first, Context, Section};
use memlens_analyze::vmas::{self, Observation};
use memlens_analyze::Target;

/// Builds the `vmas` section.
pub fn section(context: &Context) -> Section {
    let max_map_count = context.snapshot.host.max_map_count;
    let mut findings = Vec::new();
    let mut checked = 0usize;
    for p in context.selected_processes() {
        let Some(vmas_end) = p.vma_count else {
            continue;
        };
        checked += 1;
        let vmas_start = context
            .at_start(p)
            .and_then(|s| s.vma_count)
            .unwrap_or(vmas_end);
        let obs = Observation {
            vmas_start,
            vmas_end,
            anon_vmas: p.anon_vma_count.unwrap_or(0),
            mapped_bytes: p.mapped_bytes.unwrap_or(0),
            // 0: fewer than two mappings below the stack, nothing to judge.
            largest_gap_bytes: p.largest_gap_bytes.filter(|g| *g > 0),
            max_map_count,
            window_seconds: context.window_seconds_of(p),
        };
        for f in vmas::check(
            &obs,
            &context.config.vmas,
            &process_target(p),
            context.at_ms(),
        ) {
            findings.push((f, p.comm.clone()));
        }
    }
    sort_worst_first(&mut findings, |(f, _)| f, "vmas");
    let mut text = vec![format!(
        "{checked} processes checked over {:.1} s against vm.max_map_count {}; {} findings",
        context.window_seconds,
        max_map_count.map_or("unknown".to_string(), |m| m.to_string()),
        findings.len()
    )];
    if !findings.is_empty() {
        text.push(format!(
            "  {:<8} {:<20} {:>8}  {:<16} {:>7} {:>7} {:>6}",
            "SEVERITY", "ID", "PID", "COMM", "VMAS", "ANON", "USED"
        ));
    }
    let mut rows = Vec::new();
    for (f, comm) in &findings {
        let Target::Process { pid, .. } = f.target else {
            continue;
        };
        let ev = |n: &str| f.evidence(n);
        text.push(format!(
            "  {:<8} {:<20} {:>8}  {:<16} {:>7} {:>7} {:>6}",
            f.severity.as_str(),
            f.id,
            pid,
            comm.chars().take(16).collect::<String>(),
            ev("vmas").unwrap_or(0.0),
            ev("anon_vmas").unwrap_or(0.0),
            ev("ratio").map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
        ));
        text.push(format!("    {}", f.recommendation));
        rows.push(serde_json::json!({
            "id": f.id,
            "pid": pid,
            "comm": comm,
            "vmas_start": ev("vmas_start"),
            "vmas": ev("vmas"),
            "anon_vmas": ev("anon_vmas"),
            "largest_gap_bytes": ev("largest_gap_bytes"),
        }));
    }
    Section {
        name: "vmas",
        title: "Memory mappings: VMA count and fragmentation".to_string(),
        findings: findings.into_iter().map(|(f, _)| f).collect(),
        text,
        data: serde_json::json!({
            "checked": checked,
            "max_map_count": max_map_count,
            "window_seconds": context.window_seconds,
            "processes": rows,
        }),
    }
}
