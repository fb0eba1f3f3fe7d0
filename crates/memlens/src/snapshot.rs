//! `memlens snapshot`: one look at every process's memory, with the host and
//! the cgroups they are in.

use crate::collect::{self, CollectOptions, ProcessFilter, SmapsPolicy};
use crate::show;
use anyhow::Context;
use clap::{Args, ValueEnum};
use memlens_linux::fs::Root;
use memlens_model::ProcessSample;
use std::io::Write;
use std::path::PathBuf;

/// Options of `memlens snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Only this process (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<i32>,
    /// Only processes in this memory cgroup or below it (path as in /proc/PID/cgroup).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// Only Go programs.
    #[arg(long)]
    pub go: bool,
    /// Order of the rows (largest first).
    #[arg(long, value_enum, default_value_t = SortKey::Rss)]
    pub sort: SortKey,
    /// Print JSON (the format is documented in docs/snapshot-json.md).
    #[arg(long)]
    pub json: bool,
    /// When to read /proc/PID/smaps_rollup (PSS, USS). Reading it holds the
    /// process's mmap lock while the kernel walks its page tables, which can stall
    /// a huge process for seconds; `auto` skips processes with very many
    /// mappings or a huge RSS and stops reading once the snapshot's time budget
    /// for it is spent.
    #[arg(long, value_enum, default_value_t = SmapsPolicy::Auto)]
    pub smaps: SmapsPolicy,
    /// Read /proc and /sys under this directory instead of / (a captured tree).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

/// What `--sort` orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Resident set size.
    Rss,
    /// Proportional set size (falls back to RSS where PSS was not read).
    Pss,
    /// Swapped-out memory.
    Swap,
    /// Page faults, major first, then minor.
    Faults,
    /// Open file descriptors.
    Fds,
}

/// Runs `memlens snapshot`.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<()> {
    let root = Root::at(&args.root);
    let options = CollectOptions {
        filter: ProcessFilter {
            pids: args.pids.clone(),
            cgroup: args.cgroup.clone(),
            go_only: args.go,
            skip_missing: false,
        },
        smaps: args.smaps,
        smaps_budget: collect::SMAPS_BUDGET,
    };
    let mut snapshot = collect::snapshot(&root, &options)
        .with_context(|| format!("reading the host under {}", args.root.display()))?;
    sort(&mut snapshot.processes, args.sort);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &snapshot)?;
        writeln!(out)?;
    } else {
        show::snapshot_table(&mut out, &snapshot)?;
    }
    out.flush()?;
    Ok(())
}

/// Sorts largest first by `key`; ties by pid for a stable order.
fn sort(processes: &mut [ProcessSample], key: SortKey) {
    let value = |p: &ProcessSample| -> (u64, u64) {
        match key {
            SortKey::Rss => (p.rss_bytes.unwrap_or(0), 0),
            SortKey::Pss => (p.pss_bytes.or(p.rss_bytes).unwrap_or(0), 0),
            SortKey::Swap => (p.swap_bytes.unwrap_or(0), 0),
            SortKey::Faults => (p.major_faults, p.minor_faults),
            SortKey::Fds => (p.fd_count.unwrap_or(0), 0),
        }
    };
    processes.sort_by(|a, b| value(b).cmp(&value(a)).then(a.pid.cmp(&b.pid)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_largest_first_with_missing_values_last() {
        let p = |pid, rss: Option<u64>, major, minor| ProcessSample {
            pid,
            rss_bytes: rss,
            major_faults: major,
            minor_faults: minor,
            ..ProcessSample::default()
        };
        let mut rows = vec![p(1, Some(10), 0, 5), p(2, None, 1, 0), p(3, Some(30), 0, 9)];
        sort(&mut rows, SortKey::Rss);
        assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), [3, 1, 2]);
        sort(&mut rows, SortKey::Faults);
        assert_eq!(rows.iter().map(|r| r.pid).collect::<Vec<_>>(), [2, 3, 1]);
    }
}
