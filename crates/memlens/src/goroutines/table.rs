//! The text view of `memlens goroutines`: a header (total, sources, how leaks
//! were judged, the cut warning), the ranked stacks, the creation sites, and the
//! growth since `--diff`.

use super::report::{FrameRow, GoroutinesReport, GroupRow, SiteRow, StateRow};
use crate::show::human_bytes;
use std::io::{self, Write};

/// Frames shown per group, leaf first.
const FRAMES_SHOWN: usize = 4;

/// Writes the report as text.
pub fn write_text(out: &mut impl Write, report: &GoroutinesReport) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} goroutines in {} distinct stacks",
        report.target, report.total_goroutines, report.groups_total
    )?;
    if let Some(declared) = report.declared_total {
        if declared != report.total_goroutines {
            writeln!(out, "  the dump's header declares {declared}")?;
        }
    }
    for (i, source) in report.sources.iter().enumerate() {
        writeln!(
            out,
            "  {} {} ({}, {}): {}",
            if i == 0 { "read" } else { "    " },
            source.location,
            source.format,
            human_bytes(source.bytes),
            source.role
        )?;
    }
    writeln!(
        out,
        "  leaks: {}: {}",
        report.leak_detection.method, report.leak_detection.note
    )?;
    if let Some(cut) = &report.truncation {
        let exact = report.sources.iter().any(|s| s.format == "protobuf");
        writeln!(
            out,
            "WARNING: the goroutine dump is cut: {}; it shows {} goroutines{}",
            cut.reason,
            cut.goroutines_read,
            if exact {
                "; totals and counts come from the protobuf profile (exact), states only \
                 from the goroutines before the cut"
            } else {
                "; goroutines after the cut are missing (read the target live, by PID or \
                 URL, for exact counts from the protobuf profile)"
            }
        )?;
    }
    if report.ungrouped_goroutines > 0 {
        writeln!(
            out,
            "  {} goroutines counted but not grouped (too many distinct stacks)",
            report.ungrouped_goroutines
        )?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "STACKS (proven leaks first, then suspected; {} of {})",
        report.groups.len(),
        report.groups_total
    )?;
    for group in &report.groups {
        write_group(out, group)?;
    }

    writeln!(out)?;
    writeln!(out, "BY CREATION SITE")?;
    writeln!(
        out,
        "{:>10} {:>8} {:>6} {:>9}  SITE",
        "GOROUTINES", "LEAKED", "STACKS", "MAX WAIT"
    )?;
    for row in &report.by_creation {
        writeln!(
            out,
            "{:>10} {:>8} {:>6} {:>9}  {}   [{}]",
            row.site.count,
            row.leaked,
            row.stacks,
            wait(row.wait_minutes_max),
            site(&row.site),
            states(&row.states)
        )?;
    }
    if report.by_creation_omitted > 0 {
        writeln!(
            out,
            "{:>10} more sites (--top 0 shows all)",
            report.by_creation_omitted
        )?;
    }

    if let Some(diff) = &report.diff {
        writeln!(out)?;
        writeln!(
            out,
            "GROWTH SINCE {} ({:+} goroutines: {} -> {})",
            diff.older_target, diff.total_growth, diff.older_total, report.total_goroutines
        )?;
        writeln!(
            out,
            "{:>8} {:>8} {:>8}  STACK (leaf frame) / CREATED BY",
            "GROWTH", "OLDER", "NEWER"
        )?;
        for row in &diff.groups {
            writeln!(
                out,
                "{:>+8} {:>8} {:>8}  {} / {}",
                row.growth,
                row.older,
                row.newer,
                row.frames
                    .first()
                    .map(frame)
                    .unwrap_or_else(|| "(no frames)".to_string()),
                row.created_by
                    .as_ref()
                    .map(site)
                    .unwrap_or_else(|| "-".to_string())
            )?;
        }
        if diff.groups.is_empty() {
            writeln!(out, "  no stack changed")?;
        }
        if diff.groups_omitted > 0 {
            writeln!(
                out,
                "{:>8} more changed stacks (--top 0 shows all)",
                diff.groups_omitted
            )?;
        }
    }
    Ok(())
}

fn write_group(out: &mut impl Write, group: &GroupRow) -> io::Result<()> {
    let label = match group.verdict.as_str() {
        "proven" => "PROVEN LEAK",
        "suspected" => "SUSPECTED",
        _ => "",
    };
    writeln!(
        out,
        "#{:<3} {:<11} {} goroutines  [{}{}]  wait {}",
        group.rank,
        label,
        group.count,
        states(&group.states),
        if group.states_inferred {
            " (inferred from frames)"
        } else {
            ""
        },
        wait_range(group.wait_minutes_min, group.wait_minutes_max)
    )?;
    let with_state: u64 = group.states.iter().map(|s| s.count).sum();
    if !group.states.is_empty() && with_state < group.count {
        writeln!(
            out,
            "      states of {with_state} of them (the others were past the dump's cut or \
             started after it)"
        )?;
    }
    if !group.reason.is_empty() {
        writeln!(out, "      why: {}", group.reason)?;
    }
    for f in group.frames.iter().take(FRAMES_SHOWN) {
        writeln!(out, "      {}", frame(f))?;
    }
    let hidden = group.frames.len().saturating_sub(FRAMES_SHOWN);
    if hidden > 0 || group.frames_elided {
        writeln!(out, "      ... {hidden} more frames")?;
    }
    match group.created_by.first() {
        Some(first) if first.function.is_some() => {
            let others = group.created_by.len() - 1;
            writeln!(
                out,
                "      created by {}{}",
                site(first),
                if others > 0 {
                    format!(" (and {others} other sites)")
                } else {
                    String::new()
                }
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn frame(f: &FrameRow) -> String {
    if f.file.is_empty() {
        f.function.clone()
    } else {
        format!("{}  {}:{}", f.function, short_file(&f.file), f.line)
    }
}

fn site(s: &SiteRow) -> String {
    match (&s.function, &s.file) {
        (Some(function), Some(file)) if !file.is_empty() => {
            format!("{function} ({}:{})", short_file(file), s.line.unwrap_or(0))
        }
        (Some(function), _) => function.clone(),
        _ => "(no creator: main goroutine or not in the dump)".to_string(),
    }
}

/// The last two path components: `http/server.go`.
fn short_file(file: &str) -> &str {
    let mut cut = file.len();
    for _ in 0..2 {
        match file[..cut].rfind('/') {
            Some(i) => cut = i,
            None => return file,
        }
    }
    &file[cut + 1..]
}

fn states(states: &[StateRow]) -> String {
    if states.is_empty() {
        return "state unknown".to_string();
    }
    states
        .iter()
        .take(3)
        .map(|s| format!("{} {}", s.state, s.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn wait(minutes: Option<u64>) -> String {
    match minutes {
        Some(m) => format!("{m} min"),
        None => "<1 min".to_string(),
    }
}

fn wait_range(min: Option<u64>, max: Option<u64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) if a != b => format!("{a}-{b} min"),
        (_, Some(b)) => format!("{b} min"),
        _ => "<1 min".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_shortened_to_two_components() {
        assert_eq!(
            short_file("/usr/lib/go/src/net/http/server.go"),
            "http/server.go"
        );
        assert_eq!(short_file("main.go"), "main.go");
        assert_eq!(short_file("a/b.go"), "a/b.go");
    }
}
