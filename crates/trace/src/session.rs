//! One trace from start to report: checks the inputs (root, pids, duration),
//! mounts tracefs when needed, attaches, waits for the window (or Ctrl-C, or
//! every traced process exiting), reads the kernel's counts, symbolizes and
//! detaches (dropping the [`Tracer`] unloads everything).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bpf::{TraceOptions, Tracer, MAX_PIDS};
use crate::error::TraceError;
use crate::report::{ColdStartReport, Report, ReportContext};
use crate::symbolize::{ProcessSymbols, Symbolizer};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Checks what can be checked before loading anything: options, processes,
/// privileges. Each failure is one clear message.
pub fn validate(options: &TraceOptions, duration: Duration) -> Result<(), TraceError> {
    if duration.is_zero() {
        return Err(TraceError::BadOption(
            "--duration 0: the trace window must be longer than 0 s".into(),
        ));
    }
    if options.pids.is_empty() && options.cgroup.is_none() {
        return Err(TraceError::BadOption(
            "no --pid or --cgroup given: name at least one process to trace".into(),
        ));
    }
    if options.pids.len() > MAX_PIDS {
        return Err(TraceError::BadOption(format!(
            "{} pids given: at most {MAX_PIDS}",
            options.pids.len()
        )));
    }
    if options.events.is_empty() {
        return Err(TraceError::BadOption(
            "--events is empty: name at least one event".into(),
        ));
    }
    if options.stack_every == 0 || options.syscall_stack_every == 0 {
        return Err(TraceError::BadOption(
            "--stack-every/--syscall-stack-every 0: use 1 for a stack on every event".into(),
        ));
    }
    for &pid in &options.pids {
        if !alive(pid) {
            return Err(TraceError::NoSuchPid(pid));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(TraceError::NotRoot);
    }
    Ok(())
}

/// Whether `pid` is a running (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().as_bytes().first()),
            Some(Some(b'Z' | b'X'))
        ),
        Err(_) => false,
    }
}

fn ensure_tracefs() -> Result<(), TraceError> {
    if std::path::Path::new("/sys/kernel/tracing/events").exists() {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .status()
        .map_err(TraceError::Tracefs)?;
    if !status.success() {
        return Err(TraceError::Tracefs(std::io::Error::other(format!(
            "mount exited with {status}"
        ))));
    }
    Ok(())
}

/// The processes a trace follows: their names and mappings as first seen
/// (the mappings name the frames of a process that exited before the end).
#[derive(Default)]
struct Followed {
    pids: Vec<u32>,
    names: HashMap<u32, String>,
    start_maps: HashMap<u32, Vec<crate::symbolize::Mapping>>,
    /// The binaries of those mappings, open (read after the process exits,
    /// whatever became of their paths).
    start_binaries: HashMap<u32, HashMap<String, std::fs::File>>,
    /// Processes of the cgroup left out: the pid filter was full.
    left_out: usize,
}

impl Followed {
    fn add(&mut self, pid: u32) {
        if self.pids.contains(&pid) {
            return;
        }
        self.pids.push(pid);
        self.refresh(pid);
    }

    /// Re-reads a live process's name and mappings (an exec changes both).
    fn refresh(&mut self, pid: u32) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        self.names.insert(pid, comm.trim().to_string());
        if let Some(maps) = ProcessSymbols::read_maps(pid).filter(|m| !m.is_empty()) {
            // The files are opened again only when the mappings changed.
            if self.start_maps.get(&pid) != Some(&maps) {
                self.start_binaries
                    .insert(pid, ProcessSymbols::open_binaries(pid, &maps));
                self.start_maps.insert(pid, maps);
            }
        }
    }
}

/// The window of a trace: it lasts `duration` from `started`, or until
/// `stop` is set.
struct Window<'a> {
    duration: Duration,
    started: Instant,
    stop: &'a AtomicBool,
}

/// Waits until `duration` has passed since `started`, `stop` was set (by
/// Ctrl-C or SIGTERM, or by the caller), or every traced process exited (noted in `exited` with its time). With a
/// cgroup, its new processes join the trace every 100 ms and the trace does
/// not end when the processes exit (new ones may come) unless the cgroup is
/// removed.
fn wait_window(
    options: &TraceOptions,
    tracer: &mut Tracer,
    followed: &mut Followed,
    window: Window<'_>,
    exited: &mut HashMap<u32, f64>,
    mut cold: Option<&mut ColdStartReport>,
) -> Result<(), TraceError> {
    let Window {
        duration,
        started,
        stop,
    } = window;
    let mut last_refresh = Instant::now();
    // A listening socket seen in /proc with no listen() recorded by the
    // kernel yet: when it was seen (the syscall may not have returned; a
    // socket inherited from a parent never has one).
    let mut listen_seen_in_proc_at: Option<u64> = None;
    while started.elapsed() < duration && !stop.load(Ordering::SeqCst) {
        // Watching for the first listening socket: poll every 5 ms.
        let watching = cold
            .as_ref()
            .is_some_and(|c| c.first_listen_unix_ns.is_none());
        let step = Duration::from_millis(if watching { 5 } else { 100 });
        std::thread::sleep((duration - started.elapsed().min(duration)).min(step));
        if let Some(c) = cold.as_deref_mut().filter(|_| watching) {
            // During start-up the mappings change fast (exec, ld.so): keep
            // the latest, for a command that exits before the next 100 ms.
            if alive(followed.pids[0]) {
                followed.refresh(followed.pids[0]);
            }
            let first_listen = match tracer.first_listen_monotonic_ns(followed.pids[0])? {
                Some(monotonic_ns) => Some(monotonic_to_unix_ns(monotonic_ns)),
                // Seen in /proc: wait one more poll for the kernel's own time.
                None if crate::cold_start::listening(followed.pids[0]) => {
                    match listen_seen_in_proc_at {
                        Some(at) => Some(at),
                        None => {
                            listen_seen_in_proc_at = Some(unix_ns());
                            None
                        }
                    }
                }
                None => None,
            };
            if let Some(at) = first_listen {
                c.first_listen_unix_ns = Some(at);
                c.time_to_listen_seconds =
                    Some(at.saturating_sub(c.released_at_unix_ns) as f64 / 1e9);
                c.until_listen = crate::report::phase_counts(&tracer.read()?);
            }
        }
        if last_refresh.elapsed() < Duration::from_millis(100) {
            continue;
        }
        last_refresh = Instant::now();
        for pid in followed.pids.clone() {
            if alive(pid) {
                followed.refresh(pid);
            }
        }
        let mut cgroup_gone = false;
        if let Some(dir) = &options.cgroup {
            match crate::cgroup::read_pids(dir) {
                Some(now) => {
                    let new: Vec<u32> = now
                        .into_iter()
                        .filter(|p| !followed.pids.contains(p))
                        .collect();
                    for pid in new {
                        // The kernel's filter holds MAX_PIDS processes; the
                        // ended ones have left it (sched_process_exit), and
                        // those the kernel added at their fork are there.
                        let live = followed
                            .pids
                            .iter()
                            .filter(|p| !exited.contains_key(p))
                            .count();
                        if live >= MAX_PIDS || tracer.add_pid(pid).is_err() {
                            followed.left_out += 1;
                            continue;
                        }
                        followed.add(pid);
                    }
                }
                None => cgroup_gone = true,
            }
        }
        for &pid in &followed.pids {
            if !exited.contains_key(&pid) && !alive(pid) {
                exited.insert(pid, started.elapsed().as_secs_f64());
            }
        }
        let all_exited = exited.len() == followed.pids.len();
        if (options.cgroup.is_none() && all_exited) || cgroup_gone {
            break;
        }
    }
    Ok(())
}

/// A CLOCK_MONOTONIC reading (the clock of the BPF program's
/// `bpf_ktime_get_ns`) as Unix time, by the clocks' offset now.
fn monotonic_to_unix_ns(monotonic_ns: u64) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let monotonic_now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let unix_now = unix_ns();
    (unix_now as i128 - monotonic_now as i128 + monotonic_ns as i128).max(0) as u64
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs one trace for `duration` (or until Ctrl-C, or until every traced
/// process has exited). `on_attached` runs once the programs are attached:
/// counting starts there. Installs handlers for SIGINT and SIGTERM (they end
/// the trace early): for a command-line tool.
pub fn run(
    options: &TraceOptions,
    duration: Duration,
    on_attached: &mut dyn FnMut(&[u32]),
) -> Result<Report, TraceError> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
    trace(options, duration, on_attached, &INTERRUPTED)
}

/// Runs one trace for `duration`, or until `stop` is set, or every traced
/// process has exited, leaving the process's signal handlers alone: for a
/// trace inside a long-running program (the agent's evidence of a critical
/// forecast), on a thread of its own.
pub fn run_until(
    options: &TraceOptions,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<Report, TraceError> {
    trace(options, duration, &mut |_| {}, stop)
}

fn trace(
    options: &TraceOptions,
    duration: Duration,
    on_attached: &mut dyn FnMut(&[u32]),
    stop: &AtomicBool,
) -> Result<Report, TraceError> {
    validate(options, duration)?;
    ensure_tracefs()?;
    let mut followed = Followed::default();
    let mut options = options.clone();
    if let Some(given) = &options.cgroup {
        let dir = crate::cgroup::resolve(given)?;
        for pid in crate::cgroup::read_pids(&dir).unwrap_or_default() {
            if !options.pids.contains(&pid) {
                options.pids.push(pid);
            }
        }
        options.cgroup = Some(dir);
    }
    if options.pids.len() > MAX_PIDS {
        followed.left_out = options.pids.len() - MAX_PIDS;
        options.pids.truncate(MAX_PIDS);
    }
    for &pid in &options.pids {
        followed.add(pid);
    }
    let mut exited: HashMap<u32, f64> = HashMap::new();
    let mut cold: Option<ColdStartReport> = None;
    let (raw, elapsed_seconds) = {
        // The tracer detaches and unloads everything when it goes out of scope.
        let mut tracer = Tracer::start(&options)?;
        let started = Instant::now();
        // Read before the release: once released, the command may exec and
        // listen before this thread runs again on a busy machine.
        let released_at_unix_ns = unix_ns();
        on_attached(&options.pids);
        if options.cold_start {
            // The held child's mappings were memlens's own until its exec:
            // never name its frames from them.
            followed.start_maps.remove(&options.pids[0]);
            followed.start_binaries.remove(&options.pids[0]);
            cold = Some(ColdStartReport {
                released_at_unix_ns,
                first_listen_unix_ns: None,
                time_to_listen_seconds: None,
                until_listen: Vec::new(),
            });
        }
        wait_window(
            &options,
            &mut tracer,
            &mut followed,
            Window {
                duration,
                started,
                stop,
            },
            &mut exited,
            cold.as_mut(),
        )?;
        (tracer.read()?, started.elapsed().as_secs_f64())
    };
    // With --cgroup, processes the kernel followed from their fork that
    // ended before a re-read of cgroup.procs saw them: counted all the same
    // (their mappings were never read: frames print as addresses).
    let mut unseen = std::collections::HashSet::new();
    for row in &raw.counts {
        if !followed.pids.contains(&row.pid) {
            followed.pids.push(row.pid);
            unseen.insert(row.pid);
        }
    }

    let symbolizers: HashMap<u32, Symbolizer> = followed
        .pids
        .iter()
        .filter_map(|&p| {
            // An exited process (a zombie) reads as no mappings: keep the start's.
            let maps = ProcessSymbols::read_maps(p)
                .filter(|m| !m.is_empty())
                .or_else(|| followed.start_maps.get(&p).cloned())?;
            let no_files = HashMap::new();
            let opened = followed.start_binaries.get(&p).unwrap_or(&no_files);
            Some((p, ProcessSymbols::load(p, maps, opened)))
        })
        .collect();
    let symbolize = |pid: u32, frames: &[u64]| -> Vec<String> {
        match symbolizers.get(&pid) {
            Some(s) => frames
                .iter()
                .enumerate()
                .flat_map(|(i, &a)| s.frame(i, a))
                .collect(),
            None => frames.iter().map(|a| format!("[unknown]+{a:#x}")).collect(),
        }
    };
    let process_info = |pid: u32| {
        if unseen.contains(&pid) {
            let note = "followed from its fork (its parent was traced); it ended before memlens read its name and mappings";
            return (String::new(), Some(note.to_string()));
        }
        let note = exited.get(&pid).map(|at| {
            format!("the process exited about {at:.1} s into the trace: what it did until then is shown")
        });
        (followed.names.get(&pid).cloned().unwrap_or_default(), note)
    };
    let mut report = Report::build(
        &raw,
        &ReportContext {
            duration_seconds: elapsed_seconds,
            stack_every: options.stack_every,
            syscall_stack_every: options.syscall_stack_every,
            pids: &followed.pids,
            process_info: &process_info,
            symbolize: &symbolize,
        },
    );
    report.untraced_processes = followed.left_out as u64;
    report.cold_start = cold;
    Ok(report)
}
