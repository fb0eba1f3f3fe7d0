//! From raw kernel counts to a report: exact totals per process and event,
//! by size class and detail; sampled stacks named and scaled so that their
//! counts add up to the exact totals. Pure: symbol names come in through a
//! closure, process names and the window length as values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{size_class_range, Event};
use crate::raw::RawTrace;

/// A whole trace.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Length of the traced window.
    pub duration_seconds: f64,
    /// A user stack was taken on 1 page fault in this many (per CPU).
    pub stack_every: u64,
    /// A user stack was taken on 1 syscall in this many (per CPU and syscall).
    pub syscall_stack_every: u64,
    /// How the stack counts were obtained, for every output to state.
    pub sampling: String,
    /// Events not counted because the kernel's count map was full (0 expected).
    pub lost_events: u64,
    /// Sampled stacks dropped because the kernel's stack-count map was full.
    pub lost_stacks: u64,
    /// Processes of a `--cgroup` not traced because the kernel's pid filter
    /// was full (it holds `MAX_PIDS`); 0 expected.
    pub untraced_processes: u64,
    /// One entry per traced process.
    pub processes: Vec<ProcessReport>,
    /// With `--cold-start`: the command's start and first listening socket.
    pub cold_start: Option<ColdStartReport>,
}

/// A command traced from its first instruction (`--cold-start`).
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartReport {
    /// When the held command was released to exec (Unix time, ns; read just
    /// before the release).
    pub released_at_unix_ns: u64,
    /// When its first successful `listen()` returned, read by the kernel
    /// (Unix time, ns); for a listening socket that came with no `listen()`
    /// of its own (inherited), when memlens first saw it in /proc (polled
    /// every 5 ms). None if it never listened within the window.
    pub first_listen_unix_ns: Option<u64>,
    /// From the release to that socket.
    pub time_to_listen_seconds: Option<f64>,
    /// Exact counts until the first listening socket (the start-up phase),
    /// per event; the rest of the report covers the whole window.
    pub until_listen: Vec<PhaseCount>,
}

/// Exact counts of one event over a phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCount {
    /// The event.
    pub event: Event,
    /// Exact number of events.
    pub events: u64,
    /// Exact bytes (0 for events without a length).
    pub bytes: u64,
}

/// The exact totals per event of `raw` (all processes).
pub fn phase_counts(raw: &RawTrace) -> Vec<PhaseCount> {
    let mut out: Vec<PhaseCount> = Vec::new();
    for row in &raw.counts {
        match out.iter_mut().find(|p| p.event == row.event) {
            Some(p) => {
                p.events += row.events;
                p.bytes += row.bytes;
            }
            None => out.push(PhaseCount {
                event: row.event,
                events: row.events,
                bytes: row.bytes,
            }),
        }
    }
    out.sort_by_key(|p| p.event as u32);
    out
}

/// One traced process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`comm`), when it was read.
    pub name: String,
    /// A remark, e.g. that it exited during the trace.
    pub note: Option<String>,
    /// One entry per event with at least one count.
    pub events: Vec<EventReport>,
}

/// One event of one process.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    /// The event.
    pub event: Event,
    /// Exact number of events.
    pub events: u64,
    /// Exact bytes (0 for events without a length).
    pub bytes: u64,
    /// Exact events per second over the window.
    pub events_per_second: f64,
    /// Exact counts by size class and detail.
    pub classes: Vec<ClassReport>,
    /// Sampled stacks, most events first, counts scaled to the exact totals.
    pub stacks: Vec<StackReport>,
    /// Sampled events whose user stack could not be walked.
    pub unwalked_samples: u64,
    /// Sampled events in all.
    pub samples: u64,
}

/// Exact counts of one size class and detail.
#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    /// Smallest size of the class.
    pub min_bytes: u64,
    /// One past the largest size of the class.
    pub max_bytes: u64,
    /// The detail in words (`anon,populate rw-`, `DONTNEED`).
    pub detail: String,
    /// Events.
    pub events: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One user stack.
#[derive(Debug, Clone, Serialize)]
pub struct StackReport {
    /// Function names, outermost first (`main.main` before `runtime.mallocgc`).
    pub frames: Vec<String>,
    /// Sampled events with this stack.
    pub samples: u64,
    /// Events estimated for it: samples times total events / total samples.
    pub events_estimated: f64,
    /// Bytes estimated: its sampled bytes times total bytes / sampled bytes.
    pub bytes_estimated: f64,
}

/// Inputs besides the raw counts.
pub struct ReportContext<'a> {
    /// Window length.
    pub duration_seconds: f64,
    /// The `--stack-every` in force (faults).
    pub stack_every: u64,
    /// The `--syscall-stack-every` in force.
    pub syscall_stack_every: u64,
    /// The traced pids, in command-line order.
    pub pids: &'a [u32],
    /// A name and an optional note per pid.
    pub process_info: &'a dyn Fn(u32) -> (String, Option<String>),
    /// Names the frames of one process's stack (innermost first in, same order out).
    pub symbolize: &'a dyn Fn(u32, &[u64]) -> Vec<String>,
}

/// The sentence every output carries about the stacks' sampling.
pub fn sampling_statement(stack_every: u64, syscall_stack_every: u64) -> String {
    let one_in = |n: u64, what: &str| {
        if n <= 1 {
            format!("every {what}")
        } else {
            format!("1 {what} in {n}")
        }
    };
    format!(
        "counts exact; user stacks on {} and {} (per CPU), stack counts scaled to the exact totals",
        one_in(stack_every, "fault"),
        one_in(syscall_stack_every, "syscall")
    )
}

impl Report {
    /// Builds the report.
    pub fn build(raw: &RawTrace, ctx: &ReportContext<'_>) -> Report {
        let mut processes = Vec::new();
        for &pid in ctx.pids {
            let (name, note) = (ctx.process_info)(pid);
            let mut events = Vec::new();
            for event in Event::ALL {
                let rows: Vec<_> = raw
                    .counts
                    .iter()
                    .filter(|r| r.pid == pid && r.event == event)
                    .collect();
                let stacks: Vec<_> = raw
                    .stacks
                    .iter()
                    .filter(|r| r.pid == pid && r.event == event)
                    .collect();
                if rows.is_empty() && stacks.is_empty() {
                    continue;
                }
                let total_events: u64 = rows.iter().map(|r| r.events).sum();
                let total_bytes: u64 = rows.iter().map(|r| r.bytes).sum();
                let mut classes: Vec<ClassReport> = rows
                    .iter()
                    .map(|r| {
                        let (min_bytes, max_bytes) = size_class_range(r.size_class);
                        let detail = event.describe_detail(r.detail);
                        ClassReport {
                            min_bytes,
                            max_bytes,
                            detail,
                            events: r.events,
                            bytes: r.bytes,
                        }
                    })
                    .collect();
                classes.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.events.cmp(&a.events)));
                let samples: u64 = stacks.iter().map(|s| s.events).sum();
                let sampled_bytes: u64 = stacks.iter().map(|s| s.bytes).sum();
                let unwalked_samples = stacks
                    .iter()
                    .filter(|s| s.stack_error.is_some())
                    .map(|s| s.events)
                    .sum();
                let event_scale = if samples > 0 {
                    total_events as f64 / samples as f64
                } else {
                    0.0
                };
                let byte_scale = if sampled_bytes > 0 {
                    total_bytes as f64 / sampled_bytes as f64
                } else {
                    0.0
                };
                // Stacks that differ only in addresses of one function merge.
                let mut merged: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
                for s in &stacks {
                    let mut frames = if s.stack_error.is_some() {
                        vec!["[stack not walked]".to_string()]
                    } else {
                        (ctx.symbolize)(pid, &s.frames)
                    };
                    frames.reverse();
                    let e = merged.entry(frames).or_default();
                    e.0 += s.events;
                    e.1 += s.bytes;
                }
                let mut stacks: Vec<StackReport> = merged
                    .into_iter()
                    .map(|(frames, (n, bytes))| StackReport {
                        frames,
                        samples: n,
                        events_estimated: n as f64 * event_scale,
                        bytes_estimated: bytes as f64 * byte_scale,
                    })
                    .collect();
                stacks.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.frames.cmp(&b.frames)));
                events.push(EventReport {
                    event,
                    events: total_events,
                    bytes: total_bytes,
                    events_per_second: if ctx.duration_seconds > 0.0 {
                        total_events as f64 / ctx.duration_seconds
                    } else {
                        0.0
                    },
                    classes,
                    stacks,
                    unwalked_samples,
                    samples,
                });
            }
            processes.push(ProcessReport {
                pid,
                name,
                note,
                events,
            });
        }
        Report {
            duration_seconds: ctx.duration_seconds,
            stack_every: ctx.stack_every,
            syscall_stack_every: ctx.syscall_stack_every,
            sampling: sampling_statement(ctx.stack_every, ctx.syscall_stack_every),
            lost_events: raw.lost_counts,
            lost_stacks: raw.lost_stacks,
            untraced_processes: 0,
            processes,
            cold_start: None,
        }
    }

    /// Folded stacks of one event (`comm-pid;outer;...;inner COUNT`), the
    /// input of flame graph tools; by estimated events, or by estimated bytes
    /// when `by_bytes`. Stacks that round to 0 are left out.
    pub fn folded(&self, event: Event, by_bytes: bool) -> Vec<String> {
        let mut lines = Vec::new();
        for p in &self.processes {
            for e in p.events.iter().filter(|e| e.event == event) {
                for s in &e.stacks {
                    let value = if by_bytes {
                        s.bytes_estimated
                    } else {
                        s.events_estimated
                    }
                    .round() as u64;
                    if value == 0 {
                        continue;
                    }
                    let frames: Vec<String> = s
                        .frames
                        .iter()
                        .map(|f| f.replace([';', ' '], "_"))
                        .collect();
                    lines.push(format!("{}-{};{} {value}", p.name, p.pid, frames.join(";")));
                }
            }
        }
        lines
    }
}
