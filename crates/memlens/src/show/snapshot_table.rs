//! The `snapshot` table: host on top, then cgroups, then processes.

use super::human_bytes;
use memlens_linux::cgroup::Limit;
use memlens_model::{CgroupSample, ProcessSample, Snapshot};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Writes the snapshot as text for a terminal.
pub fn snapshot_table(out: &mut impl Write, snapshot: &Snapshot) -> io::Result<()> {
    let host = &snapshot.host;
    writeln!(
        out,
        "host  memory {} total, {} available ({:.0}% used)  swap {} of {} used",
        human_bytes(host.mem_total_bytes),
        human_bytes(host.mem_available_bytes),
        percent(
            host.mem_total_bytes
                .saturating_sub(host.mem_available_bytes),
            host.mem_total_bytes
        ),
        human_bytes(host.swap_total_bytes.saturating_sub(host.swap_free_bytes)),
        human_bytes(host.swap_total_bytes),
    )?;
    let psi = match (
        host.pressure_some_avg10_percent,
        host.pressure_full_avg10_percent,
    ) {
        (Some(some), Some(full)) => format!("PSI avg10 some {some:.2}% full {full:.2}%"),
        (Some(some), None) => format!("PSI avg10 some {some:.2}%"),
        _ => "PSI off".to_string(),
    };
    writeln!(
        out,
        "      {psi}  OOM kills since boot {}  max_map_count {}  overcommit {}",
        opt(host.oom_kills),
        opt(host.max_map_count),
        host.overcommit.unwrap_or("-"),
    )?;

    cgroup_table(out, &snapshot.processes)?;

    writeln!(out)?;
    writeln!(
        out,
        "{:>7} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>11} {:>5} {:<9} CGROUP",
        "PID", "COMM", "RSS", "PSS", "USS", "SWAP", "ANON", "MAJFLT", "VMAS", "FDS", "OOM", "GO"
    )?;
    for p in &snapshot.processes {
        writeln!(
            out,
            "{:>7} {:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>11} {:>5} {:<9} {}",
            p.pid,
            truncate(&p.comm, 16),
            opt_bytes(p.rss_bytes),
            opt_bytes(p.pss_bytes),
            opt_bytes(p.uss_bytes),
            opt_bytes(p.swap_bytes),
            opt_bytes(p.anon_bytes),
            p.major_faults,
            opt(p.vma_count),
            fds(p),
            opt(p.oom_score),
            p.go.as_ref().map_or("-", |g| g.version.as_str()),
            p.cgroup.as_ref().map_or("-", |c| c.path.as_str()),
        )?;
        if !p.unreadable.is_empty() {
            writeln!(out, "{:>7} partial: {}", "", p.unreadable.join("; "))?;
        }
    }
    super::mysql_table(out, &snapshot.mysql)
}

/// One line per memory cgroup that has a limit or holds a listed process.
fn cgroup_table(out: &mut impl Write, processes: &[ProcessSample]) -> io::Result<()> {
    let mut cgroups: BTreeMap<&str, (&CgroupSample, usize)> = BTreeMap::new();
    for cgroup in processes.iter().filter_map(|p| p.cgroup.as_ref()) {
        cgroups.entry(cgroup.path.as_str()).or_insert((cgroup, 0)).1 += 1;
    }
    if cgroups.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<48} {:>9} {:>9} {:>6} {:>5} {:>5}  NAME",
        "CGROUP", "USAGE", "LIMIT", "USED", "PROCS", "OOMS"
    )?;
    for (path, (cgroup, count)) in cgroups {
        let limit = cgroup.effective_limit_bytes.or(cgroup.limit_bytes);
        let used = match (cgroup.usage_bytes, limit) {
            (Some(usage), Some(Limit::Bytes(limit))) => format!("{:.0}%", percent(usage, limit)),
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<48} {:>9} {:>9} {:>6} {:>5} {:>5}  {}",
            truncate(path, 48),
            opt_bytes(cgroup.usage_bytes),
            match limit {
                Some(Limit::Bytes(b)) => human_bytes(b),
                Some(Limit::Max) => "max".to_string(),
                None => "-".to_string(),
            },
            used,
            count,
            opt(cgroup.oom_kill_count),
            cgroup.name.as_deref().unwrap_or(""),
        )?;
    }
    Ok(())
}

fn fds(p: &ProcessSample) -> String {
    match (p.fd_count, p.fd_limit) {
        (Some(count), Some(limit)) => format!("{count}/{limit}"),
        (Some(count), None) => count.to_string(),
        _ => "-".to_string(),
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn opt_bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), human_bytes)
}

/// Cuts `text` to `width` characters, marking the cut with `~`.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('~');
    cut
}
