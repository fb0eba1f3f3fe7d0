//! The goroutine-leak section: each selected Go process's goroutines at both
//! ends of the window, grouped by blocking function and creation site
//! (memlens_analyze::goroutine_leak): growth of blocked groups, and the
//! goroutineleak profile's proof where Go 1.26+ serves it.

use super::{sort_worst_first, Context, Section};
use memlens_analyze::goroutine_leak::{self, Site};
use memlens_analyze::{Finding, Target};

/// Sites listed per process in the terminal and in JSON (leaks first).
const MAX_SITES: usize = 10;

fn site_json(s: &Site) -> serde_json::Value {
    serde_json::json!({
        "blocking_function": s.blocking_function,
        "blocking_location": s.blocking_location,
        "creation_function": s.creation_function,
        "creation_location": s.creation_location,
        "state": s.state,
        "goroutines_start": s.start_count,
        "goroutines_end": s.end_count,
        "blocked_start": s.blocked_start,
        "blocked_end": s.blocked_end,
        "growth": s.growth(),
        "proven_leaked": s.proven,
        "wait_minutes_max": s.wait_minutes_max,
        "verdict": s.verdict.as_str(),
    })
}

/// Builds the `goroutine_leak` section.
pub fn section(context: &Context) -> Section {
    let config = goroutine_leak::Config::default();
    let mut findings: Vec<Finding> = Vec::new();
    let mut rows = Vec::new();
    let mut text = Vec::new();
    for g in context.go {
        let comm = context
            .at_end(g.pid, g.start_time)
            .map_or(String::new(), |p| p.comm.clone());
        let start = g.profiles_start.as_ref();
        let end_read = g.profiles_end.as_ref().or(start);
        let Some(end) = end_read.and_then(|p| p.goroutines.as_ref()) else {
            rows.push(serde_json::json!({
                "pid": g.pid, "comm": comm, "read": false, "notes": g.notes,
            }));
            continue;
        };
        // With one read only (zero window), there is no start to grow from.
        let start = if g.profiles_end.is_some() {
            start.and_then(|p| p.goroutines.as_ref())
        } else {
            None
        };
        let window_seconds = match (g.profiles_start.as_ref(), g.profiles_end.as_ref()) {
            (Some(s), Some(e)) => e.at_seconds - s.at_seconds,
            _ => 0.0,
        };
        let sites = goroutine_leak::sites(start, end, &config);
        let target = Target::Process {
            pid: g.pid,
            start_time: g.start_time,
        };
        let finding = goroutine_leak::check(&sites, window_seconds, &target, context.at_ms());
        let method = end_read.and_then(|p| p.leak_method).unwrap_or("heuristics");
        text.push(format!(
            "  {:>8}  {:<16} {:>10} {:>10}  {:<13} {}",
            g.pid,
            comm.chars().take(16).collect::<String>(),
            start.map_or("-".into(), |a| a.total_goroutines.to_string()),
            end.total_goroutines,
            method,
            finding.as_ref().map_or("ok", |f| f.severity.as_str()),
        ));
        for s in sites.iter().filter(|s| s.verdict.is_leak()).take(MAX_SITES) {
            text.push(format!(
                "      {} {} → {} in {} ({}), created by {}{}",
                s.verdict.as_str(),
                s.blocked_start,
                s.blocked_end,
                s.blocking_function,
                s.state,
                s.creation_function.as_deref().unwrap_or("?"),
                if s.proven > 0 {
                    format!(", {} proven leaked", s.proven)
                } else {
                    String::new()
                }
            ));
        }
        rows.push(serde_json::json!({
            "pid": g.pid,
            "comm": comm,
            "read": true,
            "leak_method": method,
            "window_seconds": window_seconds,
            "goroutines_start": start.map(|a| a.total_goroutines),
            "goroutines_end": end.total_goroutines,
            "sites": sites.iter().take(MAX_SITES).map(site_json).collect::<Vec<_>>(),
            "notes": g.notes,
        }));
        findings.extend(finding);
    }
    sort_worst_first(&mut findings, |f| f, "leaking_goroutines");
    Section::per_process(
        "goroutine_leak",
        "Goroutine leaks",
        format!(
            "{} Go processes observed, {} with goroutine profiles",
            context.go.len(),
            rows.iter().filter(|r| r["read"] == true).count()
        ),
        format!(
            "  {:>8}  {:<16} {:>10} {:>10}  {:<13} {}",
            "PID", "COMM", "START", "END", "METHOD", "VERDICT"
        ),
        text,
        findings,
        rows,
    )
}
