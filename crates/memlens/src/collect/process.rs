//! One process's `/proc/PID/*` files into a [`ProcessSample`].
//!
//! A process may exit between any two reads: when a file is missing and the
//! process is gone (or replaced by another with the same pid), the sample is
//! dropped silently. A file we may not read (another user's process) leaves a
//! partial row that says which file and why.

use super::cgroup::CgroupCache;
use super::go::GoCache;
use super::pss::{Fingerprint, ProcessKey, PssCache, PssValues};
use super::SmapsPolicy;
use memlens_linux::cgroup::CgroupVersion;
use memlens_linux::fs::{CgroupReader, Dir, FileReader, ReadError, Root};
use memlens_linux::process::{
    parse_cmdline, parse_oom_score, parse_oom_score_adj, redact_args, CgroupMembership, GoEnv, Io,
    Limits, MapsSummary, SmapsRollup, Stat, Status,
};
use memlens_model::{GoInfo, ProcessSample};
use std::time::{Duration, Instant};

/// Under `--smaps auto`, processes with more mappings than this are not walked.
const SMAPS_AUTO_MAX_VMAS: u64 = 20_000;
/// Under `--smaps auto`, processes with a larger RSS than this are not walked.
const SMAPS_AUTO_MAX_RSS_BYTES: u64 = 16 << 30;

/// The skip reason of a process whose smaps_rollup the time budget left out.
pub const BUDGET_SPENT: &str = "snapshot time budget spent (--smaps auto)";

/// What stays the same across the processes of one snapshot.
pub struct Context<'a> {
    root: &'a Root,
    cgroups: Option<&'a CgroupReader>,
    cgroup_cache: CgroupCache,
    go_cache: &'a mut GoCache,
    pss_cache: &'a mut PssCache,
    /// When this snapshot started: the time of its smaps_rollup readings.
    started: Instant,
    smaps: SmapsPolicy,
    smaps_budget_left: Duration,
    ticks_per_second: f64,
    files: FileReader,
    /// Whether `root/proc` is a real procfs (where a `fd/` directory's size is
    /// its number of entries), rather than a fixture tree on a disk.
    real_procfs: bool,
}

impl<'a> Context<'a> {
    /// A context reading under `root`; `smaps_budget` bounds the time spent in
    /// smaps_rollup under [`SmapsPolicy::Auto`]; `pss_cache` may stand for a
    /// smaps_rollup reading (see [`super::pss`]).
    pub fn new(
        root: &'a Root,
        cgroups: Option<&'a CgroupReader>,
        go_cache: &'a mut GoCache,
        pss_cache: &'a mut PssCache,
        smaps: SmapsPolicy,
        smaps_budget: Duration,
    ) -> Context<'a> {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Context {
            root,
            cgroups,
            cgroup_cache: CgroupCache::default(),
            go_cache,
            pss_cache,
            started: Instant::now(),
            smaps,
            smaps_budget_left: smaps_budget,
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            files: FileReader::new(),
            real_procfs: is_procfs(&root.path("/proc")),
        }
    }

    /// Reads process `pid`; `None` when it does not exist (any more), or is a
    /// kernel thread (no user memory).
    pub fn read_process(&mut self, pid: i32) -> Option<ProcessSample> {
        let dir = format!("/proc/{pid}");
        // Every file below is opened relative to this directory, which also pins
        // the process: a reused pid cannot slip in between two reads.
        let proc_dir = Dir::open(&self.root.path(&dir)).ok()?;
        let stat = self
            .files
            .parse_record_in(&proc_dir, "stat", Stat::parse)
            .ok()?;
        if stat.is_kernel_thread() {
            return None;
        }
        let mut sample = ProcessSample {
            pid,
            start_time: stat.start_time_ticks,
            comm: stat.comm.clone(),
            ppid: stat.ppid as i32,
            state: stat.state.to_string(),
            minor_faults: stat.minor_faults,
            major_faults: stat.major_faults,
            threads: u64::from(stat.num_threads),
            cpu_user_seconds: stat.utime_ticks as f64 / self.ticks_per_second,
            cpu_system_seconds: stat.stime_ticks as f64 / self.ticks_per_second,
            ..ProcessSample::default()
        };
        let missing = std::cell::Cell::new(false);
        let note = |sample: &mut ProcessSample, file: &str, err: ReadError| {
            if err.is_not_found() {
                missing.set(true);
            } else {
                sample.unreadable.push(format!("{file}: {}", reason(&err)));
            }
        };

        match self
            .files
            .parse_record_in(&proc_dir, "status", Status::parse)
        {
            Ok(status) if status.is_kernel_thread() => return None,
            Ok(status) => {
                sample.rss_bytes = status.rss_bytes;
                sample.page_tables_bytes = status.page_tables_bytes;
                sample.vm_size_bytes = status.vm_size_bytes;
                sample.swap_bytes = status.swap_bytes;
                sample.anon_bytes = status.anon_bytes;
                sample.file_bytes = status.file_bytes;
                sample.shmem_bytes = status.shmem_bytes;
                sample.voluntary_ctxt_switches = Some(status.voluntary_ctxt_switches);
                sample.nonvoluntary_ctxt_switches = Some(status.nonvoluntary_ctxt_switches);
            }
            Err(e) => note(&mut sample, "status", e),
        }
        match self.files.read_record_in(&proc_dir, "cmdline") {
            Ok(bytes) => sample.cmdline = redact_args(&parse_cmdline(bytes)),
            Err(e) => note(&mut sample, "cmdline", e),
        }
        match self.files.parse_in(&proc_dir, "maps", MapsSummary::parse) {
            Ok(maps) => {
                sample.vma_count = Some(maps.vma_count);
                sample.anon_vma_count = Some(maps.anon_vma_count);
                sample.mapped_bytes = Some(maps.total_mapped_bytes);
                sample.largest_gap_bytes = Some(maps.largest_gap_bytes);
            }
            Err(e) => note(&mut sample, "maps", e),
        }
        self.read_pss(&proc_dir, &mut sample, &note);
        match count_fds(&self.root.path(format!("{dir}/fd")), self.real_procfs) {
            Ok(count) => sample.fd_count = Some(count),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.set(true),
            Err(e) => sample.unreadable.push(format!("fd: {e}")),
        }
        match self
            .files
            .parse_record_in(&proc_dir, "limits", Limits::parse)
        {
            Ok(limits) => sample.fd_limit = limits.open_files_soft.value(),
            Err(e) => note(&mut sample, "limits", e),
        }
        match self
            .files
            .parse_record_in(&proc_dir, "oom_score", parse_oom_score)
        {
            Ok(score) => sample.oom_score = Some(score),
            Err(e) => note(&mut sample, "oom_score", e),
        }
        match self
            .files
            .parse_record_in(&proc_dir, "oom_score_adj", parse_oom_score_adj)
        {
            Ok(adj) => sample.oom_score_adj = Some(adj),
            Err(e) => note(&mut sample, "oom_score_adj", e),
        }
        match self.files.parse_record_in(&proc_dir, "io", Io::parse) {
            Ok(io) => {
                sample.read_bytes = Some(io.read_bytes);
                sample.write_bytes = Some(io.write_bytes);
            }
            Err(e) => note(&mut sample, "io", e),
        }
        if let Some(reader) = self.cgroups {
            match self
                .files
                .parse_record_in(&proc_dir, "cgroup", CgroupMembership::parse)
            {
                Ok(membership) => {
                    let path = match reader.version() {
                        CgroupVersion::V1 => membership.memory_v1_path(),
                        CgroupVersion::V2 => membership.unified_path(),
                    };
                    sample.cgroup = path.and_then(|p| self.cgroup_cache.sample(reader, p));
                }
                Err(e) => note(&mut sample, "cgroup", e),
            }
        }
        match self
            .go_cache
            .build_info(&self.root.path(format!("{dir}/exe")))
        {
            Ok(Some(info)) => {
                let env = match self.files.read_record_in(&proc_dir, "environ") {
                    Ok(bytes) => GoEnv::parse(bytes),
                    Err(e) => {
                        note(&mut sample, "environ", e);
                        GoEnv::default()
                    }
                };
                sample.go = Some(GoInfo {
                    version: info.go_version,
                    module: info.main_module,
                    gogc: env.gogc,
                    gomemlimit: env.gomemlimit,
                    godebug: env.godebug,
                    gomaxprocs: env.gomaxprocs,
                });
            }
            Ok(None) => {}
            Err(e) => sample.unreadable.push(e),
        }

        if missing.get() && !self.still_running(&proc_dir) {
            return None;
        }
        // A task leaves its memory before its cgroup as it exits (exit_mm,
        // then cgroup_exit, which moves it to the root: a zombie's v1
        // memory line reads `/`). A root path read while it still had
        // memory, and no memory left once read, is its exit, not its
        // cgroup: unknown (its history keeps the cgroup it had).
        if sample.cgroup.as_ref().is_some_and(|c| c.path == "/")
            && left_its_memory(&mut self.files, &proc_dir)
        {
            sample.cgroup = None;
        }
        Some(sample)
    }

    /// PSS, USS and SwapPss: the last reading while it may stand (see
    /// [`super::pss`]), else smaps_rollup read now unless the policy skips it.
    fn read_pss(
        &mut self,
        proc_dir: &Dir,
        sample: &mut ProcessSample,
        note: &dyn Fn(&mut ProcessSample, &str, ReadError),
    ) {
        if self.smaps == SmapsPolicy::Never {
            sample
                .unreadable
                .push("smaps_rollup: skipped, --smaps never".to_string());
            return;
        }
        let key = ProcessKey {
            pid: sample.pid,
            start: sample.start_time,
        };
        let fingerprint = fingerprint(sample);
        let now = self.started;
        let set = |sample: &mut ProcessSample, values: PssValues, age: Duration| {
            sample.pss_bytes = Some(values.pss_bytes);
            sample.uss_bytes = Some(values.uss_bytes);
            sample.swap_pss_bytes = Some(values.swap_pss_bytes);
            sample.pss_age_seconds = Some(age.as_secs_f64());
        };
        if let Some((values, age)) = self.pss_cache.reusable(key, fingerprint.as_ref(), now) {
            set(sample, values, age);
            return;
        }
        if let Some(skip) = self.smaps_skip_reason(sample) {
            sample
                .unreadable
                .push(format!("smaps_rollup: skipped, {skip}"));
            return;
        }
        let started = Instant::now();
        let rollup = self
            .files
            .parse_record_in(proc_dir, "smaps_rollup", SmapsRollup::parse);
        self.smaps_budget_left = self.smaps_budget_left.saturating_sub(started.elapsed());
        let values = match rollup {
            Ok(rollup) => {
                let values = PssValues {
                    pss_bytes: rollup.pss_bytes,
                    uss_bytes: rollup.uss_bytes(),
                    swap_pss_bytes: rollup.swap_pss_bytes,
                };
                set(sample, values, Duration::ZERO);
                Some(values)
            }
            Err(e) => {
                note(sample, "smaps_rollup", e);
                None
            }
        };
        self.pss_cache.store(key, fingerprint, values, now);
    }

    /// Why smaps_rollup is not read for this process, if it is not.
    fn smaps_skip_reason(&self, sample: &ProcessSample) -> Option<String> {
        match self.smaps {
            SmapsPolicy::Always => None,
            SmapsPolicy::Never => Some("--smaps never".to_string()),
            SmapsPolicy::Auto => {
                let vmas = sample.vma_count.unwrap_or(0);
                let rss = sample.rss_bytes.unwrap_or(0);
                if vmas > SMAPS_AUTO_MAX_VMAS {
                    Some(format!("{vmas} mappings (--smaps auto)"))
                } else if rss > SMAPS_AUTO_MAX_RSS_BYTES {
                    Some(format!("RSS {} bytes (--smaps auto)", rss))
                } else if self.smaps_budget_left.is_zero() {
                    Some(BUDGET_SPENT.to_string())
                } else {
                    None
                }
            }
        }
    }

    /// Whether the process behind `proc_dir` still exists (its files read).
    fn still_running(&mut self, proc_dir: &Dir) -> bool {
        self.files.read_record_in(proc_dir, "stat").is_ok()
    }
}

/// Whether the process whose `/proc/PID` is `proc_dir` has no memory of
/// its own any more: exited (a zombie: no `VmRSS` line), gone, or its
/// `status` unreadable.
pub(super) fn left_its_memory(files: &mut FileReader, proc_dir: &Dir) -> bool {
    files
        .parse_record_in(proc_dir, "status", Status::parse)
        .map_or(true, |status| status.is_kernel_thread())
}

/// The fingerprint of a sample's `stat` and `status` counters; `None` when
/// `status` was not read (then nothing may be reused).
pub(super) fn fingerprint(sample: &ProcessSample) -> Option<Fingerprint> {
    Some(Fingerprint {
        minor_faults: sample.minor_faults,
        major_faults: sample.major_faults,
        anon_bytes: sample.anon_bytes?,
        file_bytes: sample.file_bytes?,
        shmem_bytes: sample.shmem_bytes?,
        swap_bytes: sample.swap_bytes?,
        page_tables_bytes: sample.page_tables_bytes?,
    })
}

/// Open file descriptors of a process, from its `/proc/PID/fd` directory.
///
/// On procfs since Linux 6.2 the directory's size is the number of open
/// descriptors, so one stat() answers; older kernels report 0 there, and then
/// (and on any other filesystem) the entries are counted.
fn count_fds(fd_dir: &std::path::Path, real_procfs: bool) -> std::io::Result<u64> {
    if real_procfs {
        let size = std::fs::metadata(fd_dir)?.len();
        if size > 0 {
            return Ok(size);
        }
    }
    Ok(std::fs::read_dir(fd_dir)?.count() as u64)
}

/// Whether `dir` is on a procfs mount (`PROC_SUPER_MAGIC`).
fn is_procfs(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path and a zeroed statfs buffer the call fills.
    unsafe {
        let mut info: libc::statfs = std::mem::zeroed();
        libc::statfs(path.as_ptr(), &mut info) == 0 && info.f_type == libc::PROC_SUPER_MAGIC
    }
}

/// A short reason for a partial row.
fn reason(err: &ReadError) -> String {
    match err {
        ReadError::PermissionDenied { .. } => "permission denied".to_string(),
        other => other.to_string(),
    }
}
