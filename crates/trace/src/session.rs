//! One trace from start to report: checks the inputs (root, pids, duration),
//! mounts tracefs when needed, attaches, waits for the window (or Ctrl-C, or
//! every traced process exiting), reads the kernel's counts, symbolizes and
//! detaches (dropping the [`Tracer`] unloads everything).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bpf::{TraceOptions, Tracer, MAX_PIDS};
use crate::error::TraceError;
use crate::report::{Report, ReportContext};
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
    if options.pids.is_empty() {
        return Err(TraceError::BadOption(
            "no --pid given: name at least one process to trace".into(),
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

/// Waits until `duration` has passed since `started`, Ctrl-C or SIGTERM came,
/// or every traced process exited (noted in `exited` with its time).
fn wait_window(
    options: &TraceOptions,
    duration: Duration,
    started: Instant,
    exited: &mut HashMap<u32, f64>,
) {
    while started.elapsed() < duration && !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(
            (duration - started.elapsed().min(duration)).min(Duration::from_millis(100)),
        );
        for &pid in &options.pids {
            if !exited.contains_key(&pid) && !alive(pid) {
                exited.insert(pid, started.elapsed().as_secs_f64());
            }
        }
        if exited.len() == options.pids.len() {
            break;
        }
    }
}

/// Runs one trace for `duration` (or until Ctrl-C, or until every traced
/// process has exited). `on_attached` runs once the programs are attached:
/// counting starts there.
pub fn run(
    options: &TraceOptions,
    duration: Duration,
    on_attached: &mut dyn FnMut(),
) -> Result<Report, TraceError> {
    validate(options, duration)?;
    ensure_tracefs()?;
    let start_maps: HashMap<u32, _> = options
        .pids
        .iter()
        .filter_map(|&p| ProcessSymbols::read_maps(p).map(|m| (p, m)))
        .collect();
    let names: HashMap<u32, String> = options
        .pids
        .iter()
        .map(|&p| {
            (
                p,
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            )
        })
        .collect();
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
    let mut exited: HashMap<u32, f64> = HashMap::new();
    let (raw, elapsed_seconds) = {
        // The tracer detaches and unloads everything when it goes out of scope.
        let tracer = Tracer::start(options)?;
        let started = Instant::now();
        on_attached();
        wait_window(options, duration, started, &mut exited);
        (tracer.read()?, started.elapsed().as_secs_f64())
    };

    let symbolizers: HashMap<u32, Symbolizer> = options
        .pids
        .iter()
        .filter_map(|&p| {
            // An exited process (a zombie) reads as no mappings: keep the start's.
            let maps = ProcessSymbols::read_maps(p)
                .filter(|m| !m.is_empty())
                .or_else(|| start_maps.get(&p).cloned())?;
            Some((p, ProcessSymbols::load(p, maps)))
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
        let note = exited.get(&pid).map(|at| {
            format!("the process exited about {at:.1} s into the trace: what it did until then is shown")
        });
        (names.get(&pid).cloned().unwrap_or_default(), note)
    };
    Ok(Report::build(
        &raw,
        &ReportContext {
            duration_seconds: elapsed_seconds,
            stack_every: options.stack_every,
            syscall_stack_every: options.syscall_stack_every,
            pids: &options.pids,
            process_info: &process_info,
            symbolize: &symbolize,
        },
    ))
}
