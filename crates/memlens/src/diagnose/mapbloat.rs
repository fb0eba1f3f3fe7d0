//! The map-bloat section: for each selected Go process, the map memory of its
//! heap profile per owner (the allocation site in the user's code) at the end
//! of the window, against the start (memlens_analyze::map_bloat).

use super::{sort_worst_first, Context, Section};
use memlens_analyze::map_bloat;
use memlens_analyze::{Finding, Target};

/// Owners listed per process in JSON.
const MAX_OWNERS: usize = 10;

/// Builds the `map_bloat` section.
pub fn section(context: &Context) -> Section {
    let config = map_bloat::Config::default();
    let mut findings: Vec<Finding> = Vec::new();
    let mut rows = Vec::new();
    let mut text = Vec::new();
    for g in context.go {
        let comm = context
            .at_end(g.pid, g.start_time)
            .map_or(String::new(), |p| p.comm.clone());
        let end_read = g.profiles_end.as_ref().or(g.profiles_start.as_ref());
        let Some(end) = end_read.and_then(|p| p.map_share.as_ref()) else {
            rows.push(serde_json::json!({
                "pid": g.pid, "comm": comm, "read": false, "notes": g.notes,
            }));
            continue;
        };
        let start = if g.profiles_end.is_some() {
            g.profiles_start.as_ref().and_then(|p| p.map_share.as_ref())
        } else {
            None
        };
        let sites = map_bloat::sites(start, end, &config);
        let target = Target::Process {
            pid: g.pid,
            start_time: g.start_time,
        };
        let mut finding = map_bloat::check(&sites, end, &target, context.at_ms());
        // Name the variable: the live map holding the most (DWARF + memory).
        let mut largest = serde_json::Value::Null;
        let mut largest_line = None;
        if let Some(f) = finding.as_mut() {
            match u32::try_from(g.pid).map(crate::maps::largest_map) {
                Ok(Ok(Some(m))) => {
                    map_bloat::name_variable(f, &m.path, m.length, m.capacity_slots, m.held_bytes);
                    largest_line = Some(format!(
                        "      largest map: {} (len {}, {} slots)",
                        m.path, m.length, m.capacity_slots
                    ));
                    largest = serde_json::json!({
                        "path": m.path, "length": m.length, "capacity_slots": m.capacity_slots,
                        "held_bytes": m.held_bytes, "waste_bytes": m.waste_bytes,
                    });
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => largest = serde_json::json!({ "error": format!("{e:#}") }),
                Err(_) => {}
            }
        }
        text.push(format!(
            "  {:>8}  {:<16} {:>10.1} {:>6.1}%  {}",
            g.pid,
            comm.chars().take(16).collect::<String>(),
            end.map_value as f64 / 1048576.0,
            end.fraction() * 100.0,
            finding.as_ref().map_or("ok", |f| f.severity.as_str()),
        ));
        for s in sites.iter().filter(|s| s.bloated) {
            text.push(format!(
                "      {:.1} MiB ({:.0} % of the heap) in maps allocated by {}",
                s.end_bytes as f64 / 1048576.0,
                s.share_of_heap * 100.0,
                s.function
            ));
        }
        text.extend(largest_line);
        rows.push(serde_json::json!({
            "pid": g.pid,
            "comm": comm,
            "read": true,
            "binary_used": end.used_callees,
            "heap_inuse_bytes": end.total,
            "map_bytes": end.map_value,
            "map_bytes_start": start.map(|s| s.map_value),
            "owners": sites.iter().take(MAX_OWNERS).map(|s| serde_json::json!({
                "function": s.function,
                "map_bytes": s.end_bytes,
                "map_bytes_start": s.start_bytes,
                "share_of_heap": s.share_of_heap,
                "bloated": s.bloated,
            })).collect::<Vec<_>>(),
            "largest_map": largest,
            "notes": g.notes,
        }));
        findings.extend(finding);
    }
    sort_worst_first(&mut findings, |f| f, "map_bytes");
    Section::per_process(
        "map_bloat",
        "Map bloat",
        format!(
            "{} Go processes observed, {} with a heap profile",
            context.go.len(),
            rows.iter().filter(|r| r["read"] == true).count()
        ),
        format!(
            "  {:>8}  {:<16} {:>10} {:>7}  {}",
            "PID", "COMM", "MAPS MiB", "SHARE", "VERDICT"
        ),
        text,
        findings,
        rows,
    )
}
