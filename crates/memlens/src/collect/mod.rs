//! Collect: reads the host, the memory cgroups and the processes under a root
//! directory into model samples. IO only; the parsing is in `memlens-linux`
//! and `memlens-goruntime`.

mod cgroup;
mod go;
mod host;
pub mod kmsg;
pub mod mysql;
mod process;
pub mod pss;

pub use host::read_host;

use clap::ValueEnum;
use memlens_linux::fs::{CgroupReader, ReadError, Root};
use memlens_model::Snapshot;
use std::collections::HashMap;
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
    /// A pid of `pids` that does not exist is left out instead of being an
    /// error (the agent goes on when a watched process dies).
    pub skip_missing: bool,
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

/// What is worth keeping from one snapshot to the next (the agent and
/// `snapshot --every` take many): each binary's Go build info, and each
/// process's last smaps_rollup reading, reused while the process's cheap
/// counters do not move and the reading is younger than a max age
/// ([`pss`]; [`pss::DEFAULT_PSS_MAX_AGE`] for a default collector).
#[derive(Debug, Default)]
pub struct Collector {
    go_cache: go::GoCache,
    pss_cache: pss::PssCache,
    /// Where the next snapshot starts reading smaps_rollup: the first process
    /// the last one's time budget left out, so that under a budget every
    /// process gets its turn.
    smaps_resume_pid: i32,
    /// Memory cgroups of recent snapshots' processes and when (ms) they last
    /// held one: see [`Snapshot::emptied_cgroups`].
    recent_cgroups: HashMap<String, u64>,
}

/// How long a cgroup emptied of selected processes is still read.
const EMPTIED_CGROUP_KEEP_MS: u64 = 60_000;

/// Takes a snapshot of the host and the selected processes, in pid order.
pub fn snapshot(root: &Root, options: &CollectOptions) -> Result<Snapshot, CollectError> {
    Collector::default().snapshot(root, options)
}

/// A one-record smaps note says the time budget left the process out.
fn left_out_by_budget(sample: &memlens_model::ProcessSample) -> bool {
    sample
        .unreadable
        .iter()
        .any(|note| note.ends_with(process::BUDGET_SPENT))
}

impl Collector {
    /// A collector that reuses a smaps_rollup reading for at most `max_age`
    /// (zero: reads it every snapshot, as a one-off snapshot does).
    pub fn with_pss_max_age(max_age: Duration) -> Collector {
        Collector {
            pss_cache: pss::PssCache::new(max_age),
            ..Collector::default()
        }
    }

    /// Takes a snapshot of the host and the selected processes, in pid order.
    pub fn snapshot(
        &mut self,
        root: &Root,
        options: &CollectOptions,
    ) -> Result<Snapshot, CollectError> {
        let taken = take_snapshot(
            root,
            options,
            &mut self.go_cache,
            &mut self.pss_cache,
            self.smaps_resume_pid,
        );
        self.pss_cache.end_snapshot();
        let (mut snapshot, resume) = taken?;
        self.smaps_resume_pid = resume;
        self.read_emptied_cgroups(root, &mut snapshot);
        Ok(snapshot)
    }

    /// Keeps reading, for [`EMPTIED_CGROUP_KEEP_MS`], the cgroups that held
    /// processes a moment ago and hold none of this snapshot's.
    fn read_emptied_cgroups(&mut self, root: &Root, snapshot: &mut Snapshot) {
        let now_ms = snapshot.taken_at_unix_ms;
        for process in &snapshot.processes {
            if let Some(cgroup) = &process.cgroup {
                self.recent_cgroups.insert(cgroup.path.clone(), now_ms);
            }
        }
        self.recent_cgroups
            .retain(|_, seen_ms| now_ms.saturating_sub(*seen_ms) <= EMPTIED_CGROUP_KEEP_MS);
        let emptied: Vec<String> = self
            .recent_cgroups
            .iter()
            .filter(|(_, seen_ms)| **seen_ms < now_ms)
            .map(|(path, _)| path.clone())
            .collect();
        if emptied.is_empty() {
            return;
        }
        let Some(reader) = CgroupReader::new(root).ok().flatten() else {
            return;
        };
        for path in emptied {
            match cgroup::read_sample(&reader, &path) {
                Some(sample) => snapshot.emptied_cgroups.push(sample),
                // Removed: nothing more to read there.
                None => {
                    self.recent_cgroups.remove(&path);
                }
            }
        }
        snapshot.emptied_cgroups.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

fn take_snapshot(
    root: &Root,
    options: &CollectOptions,
    go_cache: &mut go::GoCache,
    pss_cache: &mut pss::PssCache,
    smaps_resume_pid: i32,
) -> Result<(Snapshot, i32), CollectError> {
    let host = read_host(root)?;
    let cgroups = CgroupReader::new(root).ok().flatten();
    let mut context = process::Context::new(
        root,
        cgroups.as_ref(),
        go_cache,
        pss_cache,
        options.smaps,
        options.smaps_budget,
    );
    let mut pids = if options.filter.pids.is_empty() {
        list_pids(root)?
    } else {
        options.filter.pids.clone()
    };
    pids.sort_unstable();
    pids.dedup();
    // Start where the last snapshot's smaps budget ran out.
    let start = pids.partition_point(|&pid| pid < smaps_resume_pid);
    pids.rotate_left(start);
    let mut processes = Vec::with_capacity(pids.len());
    let mut resume_pid = 0;
    for pid in pids {
        match context.read_process(pid) {
            Some(sample) => {
                if resume_pid == 0 && left_out_by_budget(&sample) {
                    resume_pid = sample.pid;
                }
                processes.push(sample)
            }
            // It exited between the listing and the read: normal.
            None if options.filter.pids.is_empty() || options.filter.skip_missing => {}
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
    processes.sort_unstable_by_key(|p| p.pid);
    let taken_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let snapshot = Snapshot {
        taken_at_unix_ms,
        host,
        processes,
        emptied_cgroups: Vec::new(),
        mysql: Vec::new(),
    };
    Ok((snapshot, resume_pid))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One test with sleeps at a time: sleeps share pages, so one test's
    /// sleeps coming and going moves the PSS of the other's.
    static SLEEPS_SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// `sleep 30` processes, killed and reaped on drop (also when a test fails).
    struct Sleeps(Vec<std::process::Child>);

    impl Sleeps {
        fn start(count: usize) -> Sleeps {
            Sleeps(
                (0..count)
                    .map(|_| {
                        std::process::Command::new("sleep")
                            .arg("30")
                            .spawn()
                            .expect("start sleep")
                    })
                    .collect(),
            )
        }

        fn pids(&self) -> Vec<i32> {
            self.0.iter().map(|c| c.id() as i32).collect()
        }
    }

    impl Drop for Sleeps {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    #[test]
    fn a_smaps_budget_gives_every_process_its_turn() {
        let _serial = SLEEPS_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let sleeps = Sleeps::start(2);
        let pids = sleeps.pids();
        let options = CollectOptions {
            filter: ProcessFilter {
                pids: pids.clone(),
                ..ProcessFilter::default()
            },
            smaps: SmapsPolicy::Auto,
            // Spent by the first read: each snapshot walks one process.
            smaps_budget: Duration::from_nanos(1),
        };
        // Without the PSS cache, which would let the first process skip its turn.
        let mut collector = Collector::with_pss_max_age(Duration::ZERO);
        let has_pss = |snapshot: &Snapshot| -> Vec<bool> {
            snapshot
                .processes
                .iter()
                .map(|p| p.pss_bytes.is_some())
                .collect()
        };
        let first = collector.snapshot(&Root::host(), &options).unwrap();
        let second = collector.snapshot(&Root::host(), &options).unwrap();
        let third = collector.snapshot(&Root::host(), &options).unwrap();
        drop(sleeps);
        assert_eq!(has_pss(&first), vec![true, false]);
        assert_eq!(
            has_pss(&second),
            vec![false, true],
            "the one left out goes first"
        );
        assert_eq!(has_pss(&third), vec![true, false], "and round again");
        assert!(second.processes.windows(2).all(|w| w[0].pid < w[1].pid));
    }

    #[test]
    fn a_killed_process_not_yet_reaped_has_left_its_memory() {
        use memlens_linux::fs::{Dir, FileReader};
        let _serial = SLEEPS_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut sleeps = Sleeps::start(1);
        let pid = sleeps.pids()[0];
        let proc_dir = Dir::open(std::path::Path::new(&format!("/proc/{pid}"))).unwrap();
        let mut files = FileReader::new();
        assert!(!process::left_its_memory(&mut files, &proc_dir));
        // Killed and not reaped: a zombie (its memory and, on v1, its
        // memory cgroup gone: its line reads `/`).
        sleeps.0[0].kill().expect("kill the sleep");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !process::left_its_memory(&mut files, &proc_dir) {
            assert!(
                std::time::Instant::now() < deadline,
                "pid {pid} kept its memory"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        assert!(stat.contains(") Z "), "{stat}");
        // Reaped: gone.
        sleeps.0[0].wait().unwrap();
        assert!(process::left_its_memory(&mut files, &proc_dir));
    }

    /// Waits until `pid` sleeps in nanosleep (its start-up is over, so its
    /// counters stay still).
    fn wait_asleep(pid: i32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            if wchan.contains("nanosleep") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} never went to sleep (wchan {wchan:?})"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_pss_cache_and_the_smaps_budget_work_together() {
        let _serial = SLEEPS_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let sleeps = Sleeps::start(2);
        let pids = sleeps.pids();
        pids.iter().for_each(|&pid| wait_asleep(pid));
        let options = CollectOptions {
            filter: ProcessFilter {
                pids: pids.clone(),
                ..ProcessFilter::default()
            },
            smaps: SmapsPolicy::Auto,
            // Spent by the first read: each snapshot walks one process.
            smaps_budget: Duration::from_nanos(1),
        };
        let mut collector = Collector::with_pss_max_age(Duration::from_secs(3600));
        let ages = |snapshot: &Snapshot| -> Vec<Option<bool>> {
            snapshot
                .processes
                .iter()
                .map(|p| p.pss_age_seconds.map(|age| age > 0.0))
                .collect()
        };
        // The kernel's PSS of each sleep right after each snapshot (parsed
        // here, not by memlens's parser: "Pss:  123 kB"). A reused reading
        // is compared with the kernel's at the snapshot that walked it: PSS
        // itself moves when other processes sharing the sleeps' pages come
        // and go, which is what the max age bounds.
        let kernel_pss = || -> Vec<u64> {
            pids.iter()
                .map(|pid| {
                    let text =
                        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
                    let kib: u64 = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Pss:"))
                        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                        .expect("a Pss line");
                    kib * 1024
                })
                .collect()
        };
        let first = collector.snapshot(&Root::host(), &options).unwrap();
        let after_first = kernel_pss();
        let second = collector.snapshot(&Root::host(), &options).unwrap();
        let after_second = kernel_pss();
        let third = collector.snapshot(&Root::host(), &options).unwrap();
        drop(sleeps);
        // Read now (false), left out by the budget (None), reused (true).
        assert_eq!(ages(&first), vec![Some(false), None]);
        // The sleeps' counters stay still, unless memory pressure elsewhere
        // on the host reclaims a page they map (RssFile moves): then the
        // reading is rightly walked again, and the budget is spent on it.
        let still = |a: &Snapshot, b: &Snapshot, i: usize| {
            process::fingerprint(&a.processes[i]) == process::fingerprint(&b.processes[i])
        };
        if still(&first, &second, 0) {
            assert_eq!(
                ages(&second),
                vec![Some(true), Some(false)],
                "the reused reading costs no budget: the second gets its turn"
            );
            if still(&second, &third, 0) && still(&second, &third, 1) {
                assert_eq!(ages(&third), vec![Some(true), Some(true)]);
            }
        } else {
            assert_eq!(ages(&second), vec![Some(false), None]);
        }
        for (i, p) in third.processes.iter().enumerate() {
            if p.pss_age_seconds.is_none_or(|age| age == 0.0) {
                continue;
            }
            // Reused: walked by the second snapshot, else by the first.
            let walked = if second.processes[i].pss_age_seconds == Some(0.0) {
                after_second[i]
            } else {
                after_first[i]
            };
            let cached = p.pss_bytes.unwrap();
            assert!(
                cached.abs_diff(walked) <= 64 << 10,
                "cached {cached}, the kernel's right after the walk {walked}"
            );
        }
    }
}
