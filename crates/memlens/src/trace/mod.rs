//! `memlens trace`: who faults pages and who maps memory in chosen processes,
//! by user stack, from kernel tracepoints (eBPF; the work is in the
//! `memlens-trace` crate). This module parses the options, runs the trace and
//! writes the outputs: the summary table (`table.rs`), JSON, and with `-o DIR`
//! folded stacks, SVG flame graphs and gzipped pprof profiles (`files.rs`).

mod files;
mod table;

use crate::duration;
use anyhow::Context;
use memlens_trace::cold_start::HeldCommand;
use memlens_trace::{session, Event, TraceOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The default 1-in-N stack sampling of faults, chosen by the overhead
/// benchmark (scripts/bench_trace.sh, docs/trace.md) against issue 15's goal
/// of at most 1.10x on a loop that does nothing but fault: counting alone
/// costs 1.09x, a stack on every fault 1.48x (a walk is ~0.9 us); 1 in 256
/// measured 1.09x (within noise of counting alone), 1 in 64 1.11x (over the
/// goal). 1 in 256 still keeps ~20 stacks a second of a process faulting
/// 5,000 pages a second: enough for the top stacks of a 10 s trace.
pub const DEFAULT_STACK_EVERY: u64 = 256;

/// Options of `memlens trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// A process to trace (repeat for several, at most 64).
    #[arg(
        long = "pid",
        value_name = "PID",
        required_unless_present_any = ["cgroup", "cold_start"]
    )]
    pub pids: Vec<u32>,

    /// Trace every process of this cgroup (a directory, or a path under the v1
    /// memory hierarchy or v2's): its processes' children from their fork,
    /// others moved in within 100 ms; each process apart in the outputs, the
    /// flame graphs combined. At most 64 processes at once.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Start the command after `--` held before its exec, attach, then let it
    /// run: traced from its first instruction, with its time to the first
    /// listening TCP socket and its counts until then. The command is ended
    /// (SIGTERM, then SIGKILL after 5 s) when the trace ends.
    #[arg(long, requires = "command", conflicts_with_all = ["pids", "cgroup"])]
    pub cold_start: bool,

    /// The command of `--cold-start`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    /// How long to trace (Ctrl-C stops earlier; so does every traced process exiting).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub duration: Duration,

    /// Events to trace, comma-separated: faults, mmap, munmap, brk, madvise, mremap.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "faults,mmap,munmap,brk,madvise,mremap"
    )]
    pub events: String,

    /// Walk the user stack on 1 page fault in N per CPU (1: every event). Counts stay
    /// exact; stack counts are scaled to them. The walk is the costly part.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_STACK_EVERY)]
    pub stack_every: u64,

    /// Walk the user stack on 1 syscall (mmap, munmap, brk, madvise, mremap) in
    /// N per CPU. Syscalls are rarer and dearer than faults, so every one by default.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub syscall_stack_every: u64,

    /// Write folded stacks, SVG flame graphs and gzipped pprof profiles here
    /// (one of each per event with stacks).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Print the report as JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Stacks shown per event in the table.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
}

fn parse_events(list: &str) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let event = Event::parse(name).with_context(|| {
            format!("--events: unknown event {name:?} (known: faults, mmap, munmap, brk, madvise, mremap)")
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

/// Runs `memlens trace`.
pub fn run(args: &TraceArgs) -> anyhow::Result<()> {
    let mut held = if args.cold_start {
        Some(HeldCommand::spawn(&args.command)?)
    } else {
        None
    };
    let options = TraceOptions {
        pids: match &held {
            Some(h) => vec![h.pid],
            None => args.pids.clone(),
        },
        cgroup: args.cgroup.clone(),
        cold_start: held.is_some(),
        events: parse_events(&args.events)?,
        stack_every: args.stack_every,
        syscall_stack_every: args.syscall_stack_every,
    };
    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("-o {}: cannot create the directory", dir.display()))?;
    }
    let mut on_attached = |pids: &[u32]| {
        eprintln!(
            "memlens trace: attached to {}pid {} for {} ({})",
            args.cgroup
                .as_ref()
                .map(|c| format!("cgroup {}: ", c.display()))
                .unwrap_or_default(),
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            duration::format(args.duration),
            memlens_trace::report::sampling_statement(args.stack_every, args.syscall_stack_every)
        );
        if let Some(h) = held.as_mut() {
            h.release();
        }
    };
    let report = session::run(&options, args.duration, &mut on_attached);
    if let Some(mut h) = held {
        h.stop(Duration::from_secs(5));
    }
    let report = report?;
    if let Some(dir) = &args.output {
        let mut summary = Vec::new();
        table::write(&mut summary, &report, args.top)?;
        files::write_all(&report, &summary, dir)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        table::write(&mut out, &report, args.top)?;
    }
    Ok(())
}
