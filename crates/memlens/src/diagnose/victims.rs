//! The OOM victim section: for every limited memory cgroup that holds a
//! selected process, and for the host, the order in which the kernel's OOM
//! killer would pick the processes (memlens_analyze::victims).
//!
//! IO here: finding the cgroup whose limit is the one in force, and how much
//! swap it may use. The ranking itself is pure.

use super::{Context, Section};
use crate::show::human_bytes;
use memlens_analyze::victims::{self, Candidate, Ranking, Scope, ScopeKind};
use memlens_linux::cgroup::{CgroupVersion, Limit};
use memlens_linux::fs::CgroupReader;
use memlens_model::{CgroupSample, ProcessSample};
use std::collections::{BTreeMap, HashMap};

/// A limited cgroup an OOM can happen in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupScope {
    /// The cgroup whose own limit is the one in force.
    path: String,
    /// Its hard limit.
    limit_bytes: u64,
    /// The swap its processes may use on top (counts in `totalpages`).
    swap_bytes: u64,
}

/// Builds the `oom_victims` section.
pub fn section(context: &Context) -> anyhow::Result<Section> {
    let snapshot = context.snapshot;
    let reader = CgroupReader::new(context.root).ok().flatten();
    let host_swap = snapshot.host.swap_total_bytes;
    let mut scopes: BTreeMap<String, CgroupScope> = BTreeMap::new();
    let mut resolved: HashMap<String, Option<CgroupScope>> = HashMap::new();
    for process in context.selected_processes() {
        let Some(cgroup) = &process.cgroup else {
            continue;
        };
        let scope = resolved
            .entry(cgroup.path.clone())
            .or_insert_with(|| limiting_cgroup(reader.as_ref(), cgroup, host_swap))
            .clone();
        if let Some(scope) = scope {
            scopes.insert(scope.path.clone(), scope);
        }
    }
    let at_ms = snapshot.taken_at_unix_ms as i64;
    let mut rankings = Vec::new();
    for scope in scopes.values() {
        let members: Vec<&ProcessSample> = snapshot
            .processes
            .iter()
            .filter(|p| {
                p.cgroup
                    .as_ref()
                    .is_some_and(|c| is_at_or_below(&c.path, &scope.path))
            })
            .collect();
        let kind = ScopeKind::Cgroup {
            path: scope.path.clone(),
        };
        let total_bytes = scope.limit_bytes.saturating_add(scope.swap_bytes);
        rankings.push((
            Some(scope.clone()),
            rank(kind, total_bytes, &members, context)?,
        ));
    }
    let host_total = snapshot
        .host
        .mem_total_bytes
        .saturating_add(snapshot.host.swap_total_bytes);
    let everyone: Vec<&ProcessSample> = snapshot.processes.iter().collect();
    rankings.push((None, rank(ScopeKind::Host, host_total, &everyone, context)?));

    let by_pid: HashMap<i32, (&ProcessSample, bool)> = snapshot
        .processes
        .iter()
        .zip(&context.selected)
        .map(|(p, s)| (p.pid, (p, *s)))
        .collect();
    let mut text = Vec::new();
    let mut findings = Vec::new();
    let mut json_scopes = Vec::new();
    for (cgroup, ranking) in &rankings {
        if !text.is_empty() {
            text.push(String::new());
        }
        render_text(&mut text, cgroup.as_ref(), ranking, &by_pid, context);
        json_scopes.push(scope_json(cgroup.as_ref(), ranking, &by_pid));
        findings.extend(ranking.finding(at_ms));
    }
    Ok(Section {
        name: "oom_victims",
        title: "OOM victims: who the kernel kills first".to_string(),
        findings,
        text,
        data: serde_json::json!({ "scopes": json_scopes }),
    })
}

fn rank(
    kind: ScopeKind,
    total_bytes: u64,
    members: &[&ProcessSample],
    context: &Context,
) -> anyhow::Result<Ranking> {
    let candidates: Vec<Candidate> = members.iter().map(|p| candidate(p)).collect();
    let scope = Scope { kind, total_bytes };
    Ok(victims::rank(&scope, &candidates, context.page_size_bytes)?)
}

/// The kernel's view of a process; an unread `oom_score_adj` counts as 0.
fn candidate(p: &ProcessSample) -> Candidate {
    Candidate {
        pid: p.pid,
        start_time: p.start_time,
        comm: p.comm.clone(),
        // A zombie keeps no memory; a kernel thread has no VmRSS line.
        rss_bytes: if p.state == "Z" { None } else { p.rss_bytes },
        swap_bytes: p.swap_bytes.unwrap_or(0),
        page_tables_bytes: p.page_tables_bytes.unwrap_or(0),
        oom_score_adj: p
            .oom_score_adj
            .unwrap_or(0)
            .clamp(victims::OOM_SCORE_ADJ_MIN, victims::OOM_SCORE_ADJ_MAX),
    }
}

/// Whether cgroup `path` is `scope` or below it.
fn is_at_or_below(path: &str, scope: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    scope.is_empty()
        || path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The cgroup whose limit is `cgroup`'s effective limit: the lowest of it
/// and its ancestors with that limit. `None` when no limit is in force.
fn limiting_cgroup(
    reader: Option<&CgroupReader>,
    cgroup: &CgroupSample,
    host_swap_bytes: u64,
) -> Option<CgroupScope> {
    let Some(Limit::Bytes(limit_bytes)) = cgroup.effective_limit_bytes else {
        return None;
    };
    let mut path = cgroup.path.clone();
    let mut found = None;
    if let Some(reader) = reader {
        loop {
            if let Some(resolved) = reader.resolve(&path) {
                let own = reader.read_memory(&resolved).ok().and_then(|m| m.limit);
                if own == Some(Limit::Bytes(limit_bytes)) {
                    found = Some(resolved);
                    break;
                }
            }
            match path.rfind('/') {
                Some(0) if path.len() > 1 => path = "/".to_string(),
                Some(i) if i > 0 => path.truncate(i),
                _ => break,
            }
        }
    }
    let swap_bytes = match &found {
        None => 0,
        Some(_) if host_swap_bytes == 0 => 0,
        Some(resolved) => swap_allowance(resolved, limit_bytes, host_swap_bytes),
    };
    Some(CgroupScope {
        path: found.map_or_else(|| cgroup.path.clone(), |r| r.path),
        limit_bytes,
        swap_bytes,
    })
}

/// The swap a cgroup's OOM counts on top of its limit, as the kernel's
/// `mem_cgroup_get_max()`: v2 `min(memory.swap.max, host swap)`; v1
/// `min(memsw limit - limit, host swap)`; host swap when the file is absent.
fn swap_allowance(
    resolved: &memlens_linux::fs::ResolvedCgroup,
    limit_bytes: u64,
    host_swap_bytes: u64,
) -> u64 {
    let (file, v1) = match resolved.version {
        CgroupVersion::V1 => ("memory.memsw.limit_in_bytes", true),
        CgroupVersion::V2 => ("memory.swap.max", false),
    };
    let Ok(text) = std::fs::read_to_string(resolved.dir.join(file)) else {
        return host_swap_bytes;
    };
    let parsed = if v1 {
        Limit::parse_v1(file, &text)
    } else {
        Limit::parse_v2(file, &text)
    };
    let swap = match parsed {
        Ok(Limit::Bytes(b)) if v1 => b.saturating_sub(limit_bytes),
        Ok(Limit::Bytes(b)) => b,
        Ok(Limit::Max) | Err(_) => host_swap_bytes,
    };
    swap.min(host_swap_bytes)
}

fn scope_heading(cgroup: Option<&CgroupScope>, ranking: &Ranking) -> String {
    let pages = format!(
        "totalpages {} ({} pages)",
        ranking.total_pages,
        human_bytes(ranking.page_size_bytes)
    );
    match cgroup {
        Some(c) => format!(
            "cgroup {}: limit {} + swap {}, {pages}",
            c.path,
            human_bytes(c.limit_bytes),
            human_bytes(c.swap_bytes)
        ),
        None => format!(
            "host: RAM + swap {}, {pages}",
            human_bytes(ranking.scope.total_bytes)
        ),
    }
}

fn render_text(
    text: &mut Vec<String>,
    cgroup: Option<&CgroupScope>,
    ranking: &Ranking,
    by_pid: &HashMap<i32, (&ProcessSample, bool)>,
    context: &Context,
) {
    let page = ranking.page_size_bytes as i64;
    text.push(scope_heading(cgroup, ranking));
    text.push(format!("  {}", ranking.explanation()));
    if ranking.ranked.is_empty() {
        return;
    }
    text.push(format!(
        "  {:>4} {:>8}  {:<16} {:>12} {:>5} {:>12} {:>7} {:>9}",
        "#", "PID", "COMM", "RSS+SWAP+PT", "ADJ", "POINTS", "SHARE", "oom_score"
    ));
    let mut skipped = 0usize;
    for (i, r) in ranking.ranked.iter().enumerate() {
        let c = &r.candidate;
        let (kernel_score, selected) = by_pid
            .get(&c.pid)
            .map_or((None, false), |(p, s)| (p.oom_score, *s));
        if i >= context.top && !selected {
            skipped += 1;
            continue;
        }
        text.push(format!(
            "{} {:>4} {:>8}  {:<16} {:>12} {:>5} {:>12} {:>6.1}% {:>9}",
            if selected { "*" } else { " " },
            i + 1,
            c.pid,
            truncate(&c.comm, 16),
            victims::human_bytes(r.base_pages.saturating_mul(page)),
            c.oom_score_adj,
            victims::human_bytes(r.points_bytes),
            r.share_of_scope * 100.0,
            kernel_score.map_or("-".to_string(), |s| s.to_string()),
        ));
    }
    if skipped > 0 {
        text.push(format!("  ... {skipped} more (--top, --json)"));
    }
    let mut hidden = 0usize;
    for (c, why) in &ranking.exempt {
        let selected = by_pid.get(&c.pid).is_some_and(|(_, s)| *s);
        if selected || cgroup.is_some() {
            text.push(format!(
                "  never killed: PID {} ({}): {}",
                c.pid,
                c.comm,
                why.as_str()
            ));
        } else {
            hidden += 1;
        }
    }
    if hidden > 0 {
        text.push(format!(
            "  never killed: {hidden} more (kernel threads, init, oom_score_adj=-1000)"
        ));
    }
    text.push("  (* selected; oom_score: the kernel's /proc/PID/oom_score, host scope)".into());
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn scope_json(
    cgroup: Option<&CgroupScope>,
    ranking: &Ranking,
    by_pid: &HashMap<i32, (&ProcessSample, bool)>,
) -> serde_json::Value {
    let page = ranking.page_size_bytes;
    let ranked: Vec<serde_json::Value> = ranking
        .ranked
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let c = &r.candidate;
            let (kernel_score, selected) = by_pid
                .get(&c.pid)
                .map_or((None, false), |(p, s)| (p.oom_score, *s));
            serde_json::json!({
                "rank": i + 1,
                "pid": c.pid,
                "start_time": c.start_time,
                "comm": c.comm,
                "selected": selected,
                "rss_bytes": c.rss_bytes,
                "swap_bytes": c.swap_bytes,
                "page_tables_bytes": c.page_tables_bytes,
                "oom_score_adj": c.oom_score_adj,
                "base_pages": r.base_pages,
                "adj_pages": r.adj_pages,
                "points": r.points,
                "points_bytes": r.points_bytes,
                "share_of_scope": r.share_of_scope,
                "kernel_oom_score": kernel_score,
            })
        })
        .collect();
    let exempt: Vec<serde_json::Value> = ranking
        .exempt
        .iter()
        .map(|(c, why)| {
            serde_json::json!({
                "pid": c.pid,
                "comm": c.comm,
                "selected": by_pid.get(&c.pid).is_some_and(|(_, s)| *s),
                "reason": why.as_str(),
            })
        })
        .collect();
    serde_json::json!({
        "kind": if cgroup.is_some() { "cgroup" } else { "host" },
        "path": cgroup.map(|c| c.path.clone()),
        "limit_bytes": cgroup.map(|c| c.limit_bytes),
        "swap_bytes": cgroup.map(|c| c.swap_bytes),
        "total_bytes": ranking.scope.total_bytes,
        "total_pages": ranking.total_pages,
        "page_size_bytes": page,
        "explanation": ranking.explanation(),
        "first_victim_pid": ranking.first().map(|r| r.candidate.pid),
        "ranked": ranked,
        "exempt": exempt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_membership_is_by_path_prefix_at_a_slash() {
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/x", "/"));
    }
}
