//! `memlens diagnose`: findings about the selected processes, one
//! [`Section`] per detector family, worst first inside each.
//!
//! Today it takes one snapshot of every process (the kernel weighs them all
//! in an OOM, not only the selected ones) and runs:
//!
//! - [`victims`]: the OOM victim ranking of every limited memory cgroup that
//!   holds a selected process, and of the host.
//!
//! A new detector family adds a module here that turns a [`Context`] into a
//! [`Section`], and one line in [`sections`].

mod victims;

use crate::collect::{self, CollectOptions, ProcessFilter, SmapsPolicy};
use crate::show::findings::{evidence_json, target_json};
use anyhow::Context as _;
use clap::Args;
use memlens_analyze::Finding;
use memlens_linux::fs::Root;
use memlens_model::{ProcessSample, Snapshot};
use std::io::Write;

/// Options of `memlens diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Only this process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Only Go programs.
    #[arg(long)]
    pub go: bool,
    /// Every process (the default when no other selection is given).
    #[arg(long)]
    pub all: bool,
    /// Only processes in this memory cgroup or below it (path as in /proc/PID/cgroup).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Rows shown per ranking in the terminal (selected processes further
    /// down are shown too); JSON always has them all.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Print JSON (the format is documented in docs/diagnose-json.md).
    #[arg(long)]
    pub json: bool,
}

/// What every detector family sees.
pub struct Context<'a> {
    /// One snapshot of every process on the host.
    pub snapshot: &'a Snapshot,
    /// Whether each process of `snapshot.processes` was selected.
    pub selected: Vec<bool>,
    /// Where /proc and /sys are.
    pub root: &'a Root,
    /// The kernel's page size.
    pub page_size_bytes: u64,
    /// Rows per table in the terminal.
    pub top: usize,
}

impl Context<'_> {
    /// The selected processes.
    pub fn selected_processes(&self) -> impl Iterator<Item = &ProcessSample> {
        self.snapshot
            .processes
            .iter()
            .zip(&self.selected)
            .filter(|(_, s)| **s)
            .map(|(p, _)| p)
    }
}

/// One detector family's result.
pub struct Section {
    /// Stable name (`oom_victims`), the key in JSON.
    pub name: &'static str,
    /// Heading for people.
    pub title: String,
    /// Its findings, worst first.
    pub findings: Vec<Finding>,
    /// The section's body for a terminal (lines without trailing newline).
    pub text: Vec<String>,
    /// The section's own data for JSON (documented in docs/diagnose-json.md).
    pub data: serde_json::Value,
}

/// Every detector family, in the order they are shown.
fn sections(context: &Context) -> anyhow::Result<Vec<Section>> {
    Ok(vec![victims::section(context)?])
}

/// Runs `memlens diagnose`.
pub fn run(args: &DiagnoseArgs) -> anyhow::Result<()> {
    let root = Root::host();
    for &pid in &args.pids {
        if !root.path(format!("/proc/{pid}")).exists() {
            anyhow::bail!("process {pid} does not exist");
        }
    }
    let options = CollectOptions {
        filter: ProcessFilter::default(),
        // PSS/USS are not needed, and reading smaps_rollup of every process
        // would stall the big ones.
        smaps: SmapsPolicy::Never,
        smaps_budget: collect::SMAPS_BUDGET,
    };
    let snapshot = collect::snapshot(&root, &options).context("reading the host's processes")?;
    let selected = snapshot
        .processes
        .iter()
        .map(|p| is_selected(args, p))
        .collect();
    let context = Context {
        snapshot: &snapshot,
        selected,
        root: &root,
        page_size_bytes: page_size_bytes(),
        top: args.top,
    };
    let sections = sections(&context)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        // As an io::Error, so that a closed pipe is not reported as a failure.
        serde_json::to_writer_pretty(&mut out, &to_json(&snapshot, &sections))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &sections)?;
    }
    out.flush()?;
    Ok(())
}

/// Whether `p` passes every selection flag given (no flag: all).
fn is_selected(args: &DiagnoseArgs, p: &ProcessSample) -> bool {
    if !args.pids.is_empty() && !args.pids.contains(&p.pid) {
        return false;
    }
    if args.go && p.go.is_none() {
        return false;
    }
    if let Some(wanted) = &args.cgroup {
        let wanted = wanted.trim_end_matches('/');
        let inside = p.cgroup.as_ref().is_some_and(|c| {
            wanted.is_empty()
                || c.path == wanted
                || c.path
                    .strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !inside {
            return false;
        }
    }
    true
}

/// The kernel's page size (4096 when it cannot be asked).
fn page_size_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// A finding as JSON (the same fields as `memlens replay --json`).
pub fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "id": f.id,
        "severity": f.severity.as_str(),
        "target": target_json(&f.target, None),
        "evidence": evidence_json(&f.evidence),
        "recommendation": f.recommendation,
        "at_ms": f.fired_at_ms,
    })
}

fn to_json(snapshot: &Snapshot, sections: &[Section]) -> serde_json::Value {
    serde_json::json!({
        "taken_at_unix_ms": snapshot.taken_at_unix_ms,
        "sections": sections.iter().map(|s| serde_json::json!({
            "name": s.name,
            "title": s.title,
            "findings": s.findings.iter().map(finding_json).collect::<Vec<_>>(),
            "data": s.data,
        })).collect::<Vec<_>>(),
    })
}

fn write_text(out: &mut impl Write, sections: &[Section]) -> std::io::Result<()> {
    for (i, section) in sections.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", section.title)?;
        writeln!(out, "{}", "=".repeat(section.title.chars().count()))?;
        for line in &section.text {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_model::CgroupSample;

    #[test]
    fn selection_flags_intersect() {
        let args = |pids: Vec<i32>, cgroup: Option<&str>| DiagnoseArgs {
            pids,
            go: false,
            all: false,
            cgroup: cgroup.map(str::to_string),
            top: 10,
            json: false,
        };
        let p = ProcessSample {
            pid: 7,
            cgroup: Some(CgroupSample {
                path: "/a/b".into(),
                ..CgroupSample::default()
            }),
            ..ProcessSample::default()
        };
        assert!(is_selected(&args(vec![], None), &p));
        assert!(is_selected(&args(vec![7], Some("/a")), &p));
        assert!(!is_selected(&args(vec![7], Some("/a/bc")), &p));
        assert!(!is_selected(&args(vec![8], None), &p));
    }
}
