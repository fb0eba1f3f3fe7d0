//! The summary table of `memlens trace`: per process and event, the exact
//! totals and rate, the size classes, and the top stacks (by events, and by
//! bytes for events with a length).

use memlens_trace::report::{EventReport, StackReport};
use memlens_trace::Report;
use std::io::{self, Write};

/// Frames shown per stack, innermost first.
const FRAMES_SHOWN: usize = 8;

/// Writes the table.
pub fn write(out: &mut impl Write, report: &Report, top: usize) -> io::Result<()> {
    writeln!(
        out,
        "memlens trace: {:.1} s; {}",
        report.duration_seconds, report.sampling
    )?;
    if report.lost_events > 0 || report.lost_stacks > 0 {
        writeln!(
            out,
            "LOST: {} events not counted, {} sampled stacks dropped (kernel maps full)",
            report.lost_events, report.lost_stacks
        )?;
    }
    if let Some(cold) = &report.cold_start {
        match cold.time_to_listen_seconds {
            Some(t) => writeln!(
                out,
                "cold start: first listening socket {t:.3} s after exec"
            )?,
            None => writeln!(out, "cold start: no listening socket within the trace")?,
        }
        for p in &cold.until_listen {
            writeln!(
                out,
                "  until then: {} {} events, {} bytes",
                p.event.name(),
                p.events,
                p.bytes
            )?;
        }
    }
    if report.untraced_processes > 0 {
        writeln!(
            out,
            "NOT TRACED: {} processes of the cgroup (the pid filter holds 64)",
            report.untraced_processes
        )?;
    }
    for p in &report.processes {
        writeln!(out)?;
        writeln!(out, "pid {} ({})", p.pid, p.name)?;
        if let Some(note) = &p.note {
            writeln!(out, "  note: {note}")?;
        }
        if p.events.is_empty() {
            writeln!(out, "  no traced event")?;
        }
        for e in &p.events {
            write_event(out, e, top)?;
        }
    }
    Ok(())
}

fn write_event(out: &mut impl Write, e: &EventReport, top: usize) -> io::Result<()> {
    let bytes = if e.event.has_bytes() {
        format!(", {}", human_bytes(e.bytes as f64))
    } else {
        String::new()
    };
    writeln!(
        out,
        "  {}: {} ({:.1}/s){bytes}",
        e.event.name(),
        e.events,
        e.events_per_second
    )?;
    for c in e.classes.iter().take(top) {
        let size = if e.event.has_bytes() {
            format!(
                "[{}, {}) ",
                human_bytes(c.min_bytes as f64),
                human_bytes(c.max_bytes as f64)
            )
        } else {
            String::new()
        };
        let bytes = if e.event.has_bytes() {
            format!(", {}", human_bytes(c.bytes as f64))
        } else {
            String::new()
        };
        writeln!(out, "    {size}{}: {}{bytes}", c.detail, c.events)?;
    }
    if e.samples == 0 {
        writeln!(out, "    (no stack sampled)")?;
        return Ok(());
    }
    writeln!(
        out,
        "    top stacks by {} ({} sampled):",
        e.event.name(),
        e.samples
    )?;
    for s in e.stacks.iter().take(top) {
        let share = 100.0 * s.events_estimated / e.events.max(1) as f64;
        writeln!(
            out,
            "      {share:5.1}% {:>10.0}  {}",
            s.events_estimated,
            innermost(s)
        )?;
    }
    if e.event.has_bytes() && e.bytes > 0 {
        let mut by_bytes: Vec<&StackReport> = e.stacks.iter().collect();
        by_bytes.sort_by(|a, b| b.bytes_estimated.total_cmp(&a.bytes_estimated));
        writeln!(out, "    top stacks by bytes:")?;
        for s in by_bytes
            .into_iter()
            .take(top)
            .filter(|s| s.bytes_estimated > 0.0)
        {
            writeln!(
                out,
                "      {:>10}  {}",
                human_bytes(s.bytes_estimated),
                innermost(s)
            )?;
        }
    }
    Ok(())
}

/// The stack innermost first, joined by " < ". A long one keeps its
/// innermost frames and, after "...", the first frame outside the language
/// runtime and its callers: the code that asked for the memory.
fn innermost(s: &StackReport) -> String {
    let frames: Vec<&str> = s.frames.iter().rev().map(String::as_str).collect();
    if frames.len() <= FRAMES_SHOWN {
        return frames.join(" < ");
    }
    let culprit = frames.iter().position(|f| !is_runtime(f)).unwrap_or(0);
    if culprit < FRAMES_SHOWN - 3 {
        return format!("{} < ...", frames[..FRAMES_SHOWN].join(" < "));
    }
    let end = (culprit + 3).min(frames.len());
    let more = if end < frames.len() { " < ..." } else { "" };
    format!(
        "{} < ... < {}{more}",
        frames[..3].join(" < "),
        frames[culprit..end].join(" < ")
    )
}

/// Frames of the Go runtime and the system-call layer under it.
fn is_runtime(frame: &str) -> bool {
    [
        "runtime.",
        "runtime/",
        "internal/",
        "syscall.",
        "[stack not walked]",
    ]
    .iter()
    .any(|p| frame.starts_with(p))
}

fn human_bytes(bytes: f64) -> String {
    crate::show::human_bytes(bytes.round() as u64)
}
