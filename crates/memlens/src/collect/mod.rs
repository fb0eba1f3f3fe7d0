//! Collect: reads the host, the memory cgroups and the processes under a root
//! directory into model samples. IO only; the parsing is in `memlens-linux`
//! and `memlens-goruntime`.

mod cgroup;
mod go;
mod host;
mod process;

pub use host::read_host;

use clap::ValueEnum;
use memlens_linux::fs::{CgroupReader, ReadError, Root};
use memlens_model::Snapshot;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When to read `/proc/PID/smaps_rollup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmapsPolicy {
    /// Read it unless the process is huge (many mappings or a huge RSS), and
    /// only until this snapshot's time budget for it is spent.
    Auto,
    /// Always read it, whatever it costs the targets.
    Always,
    /// Never read it (PSS and USS stay null).
    Never,
}

/// Which processes to collect.
#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    /// Only these pids (all when empty).
    pub pids: Vec<i32>,
    /// Only processes in this memory cgroup or below it.
    pub cgroup: Option<String>,
    /// Only Go programs.
    pub go_only: bool,
}

/// How to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Which processes.
    pub filter: ProcessFilter,
    /// When to read smaps_rollup.
    pub smaps: SmapsPolicy,
    /// Under [`SmapsPolicy::Auto`], the most time one snapshot spends in
    /// smaps_rollup ([`SMAPS_BUDGET`] for a one-off snapshot; the agent uses a
    /// share of its interval).
    pub smaps_budget: Duration,
}

/// Why a snapshot could not be taken at all (a single process failing never
/// fails the snapshot).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A host-wide file could not be read.
    #[error(transparent)]
    Host(#[from] ReadError),
    /// A process asked for with `--pid` does not exist.
    #[error("process {0} does not exist")]
    NoSuchProcess(i32),
    /// `/proc` could not be listed.
    #[error("cannot list {path}: {source}")]
    ListProcesses {
        /// The directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The smaps_rollup time budget of one snapshot under [`SmapsPolicy::Auto`].
pub const SMAPS_BUDGET: Duration = Duration::from_millis(500);

/// What is worth keeping from one snapshot to the next (the agent takes many):
/// each binary's Go build info.
#[derive(Debug, Default)]
pub struct Collector {
    go_cache: go::GoCache,
}

/// Takes a snapshot of the host and the selected processes, in pid order.
pub fn snapshot(root: &Root, options: &CollectOptions) -> Result<Snapshot, CollectError> {
    Collector::default().snapshot(root, options)
}

impl Collector {
    /// Takes a snapshot of the host and the selected processes, in pid order.
    pub fn snapshot(
        &mut self,
        root: &Root,
        options: &CollectOptions,
    ) -> Result<Snapshot, CollectError> {
        take_snapshot(root, options, &mut self.go_cache)
    }
}

fn take_snapshot(
    root: &Root,
    options: &CollectOptions,
    go_cache: &mut go::GoCache,
) -> Result<Snapshot, CollectError> {
    let host = read_host(root)?;
    let cgroups = CgroupReader::new(root).ok().flatten();
    let mut context = process::Context::new(
        root,
        cgroups.as_ref(),
        go_cache,
        options.smaps,
        options.smaps_budget,
    );
    let pids = if options.filter.pids.is_empty() {
        list_pids(root)?
    } else {
        options.filter.pids.clone()
    };
    let mut processes = Vec::with_capacity(pids.len());
    for pid in pids {
        match context.read_process(pid) {
            Some(sample) => processes.push(sample),
            // It exited between the listing and the read: normal.
            None if options.filter.pids.is_empty() => {}
            None => return Err(CollectError::NoSuchProcess(pid)),
        }
    }
    if let Some(wanted) = &options.filter.cgroup {
        let wanted = wanted.trim_end_matches('/');
        processes.retain(|p| {
            p.cgroup.as_ref().is_some_and(|c| {
                wanted.is_empty()
                    || c.path == wanted
                    || c.path
                        .strip_prefix(wanted)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        });
    }
    if options.filter.go_only {
        processes.retain(|p| p.go.is_some());
    }
    let taken_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Snapshot {
        taken_at_unix_ms,
        host,
        processes,
    })
}

/// The numeric entries of `/proc`, ascending.
fn list_pids(root: &Root) -> Result<Vec<i32>, CollectError> {
    let dir = root.path("/proc");
    let entries = std::fs::read_dir(&dir).map_err(|source| CollectError::ListProcesses {
        path: dir.display().to_string(),
        source,
    })?;
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}
