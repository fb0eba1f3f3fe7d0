//! The FD exhaustion section: every selected process's open files against
//! its soft `Max open files` limit, with a forecast from the window's growth
//! (memlens_analyze::fds).

use super::{process_target, sort_worst_first, Context, Section};
use memlens_analyze::fds::{self, Observation};

/// Builds the `fd_exhaustion` section.
pub fn section(context: &Context) -> Section {
    let mut findings = Vec::new();
    let mut checked = 0usize;
    for p in context.selected_processes() {
        let Some(fds_end) = p.fd_count else {
            continue;
        };
        checked += 1;
        // A process born during the window: its growth is its start-up.
        let fds_start = context
            .at_start(p)
            .and_then(|s| s.fd_count)
            .unwrap_or(fds_end);
        let obs = Observation {
            fds_start,
            fds_end,
            soft_limit: p.fd_limit,
            window_seconds: context.window_seconds_of(p),
        };
        if let Some(mut f) = fds::check(
            &obs,
            &context.config.fds,
            &process_target(p),
            context.at_ms(),
        ) {
            f.recommendation = f.recommendation.replace("PID", &p.pid.to_string());
            findings.push((f, p.comm.clone()));
        }
    }
    sort_worst_first(&mut findings, |(f, _)| f, "ratio");
    let mut text = vec![format!(
        "{checked} processes checked over {:.1} s; {} near or heading for their limit",
        context.window_seconds,
        findings.len()
    )];
    let mut rows = Vec::new();
    if !findings.is_empty() {
        text.push(format!(
            "  {:<8} {:>8}  {:<16} {:>7} {:>7} {:>6} {:>8} {:>10}",
            "SEVERITY", "PID", "COMM", "FDS", "LIMIT", "USED", "FDS/S", "TIME LEFT"
        ));
    }
    for (f, comm) in &findings {
        let memlens_analyze::Target::Process { pid, .. } = f.target else {
            continue;
        };
        let ev = |n: &str| f.evidence(n);
        text.push(format!(
            "  {:<8} {:>8}  {:<16} {:>7} {:>7} {:>5.0}% {:>8} {:>10}",
            f.severity.as_str(),
            pid,
            comm.chars().take(16).collect::<String>(),
            ev("fds").unwrap_or(0.0),
            ev("fd_soft_limit").unwrap_or(0.0),
            ev("ratio").unwrap_or(0.0) * 100.0,
            ev("fds_per_second").map_or("-".into(), |r| format!("{r:.1}")),
            ev("time_left_seconds").map_or("-".into(), |s| format!("{s:.0} s")),
        ));
        text.push(format!("    {}", f.recommendation));
        rows.push(serde_json::json!({
            "pid": pid,
            "comm": comm,
            "fds_start": ev("fds_start"),
            "fds": ev("fds"),
            "fd_soft_limit": ev("fd_soft_limit"),
            "fds_per_second": ev("fds_per_second"),
            "time_left_seconds": ev("time_left_seconds"),
        }));
    }
    Section {
        name: "fd_exhaustion",
        title: "Open files: FD exhaustion".to_string(),
        findings: findings.into_iter().map(|(f, _)| f).collect(),
        text,
        data: serde_json::json!({
            "checked": checked,
            "window_seconds": context.window_seconds,
            "processes": rows,
        }),
    }
}
