//! Evidence of a critical forecast: when a time-to-OOM turns critical, a
//! short trace of the target's page faults by user stack (the
//! `memlens-trace` crate, as `memlens trace --events faults`), run on a
//! thread of its own so the agent's cycles never wait for it. Each traced
//! process's faults profile (gzipped pprof) is kept in the history as a
//! profile of kind [`KIND`], next to its heap and goroutine profiles.
//!
//! Bounded: one trace at a time covering every target that turned critical
//! in one cycle (a request while one runs waits in a queue), a process traced
//! at most once per `min_interval`, each trace `duration` long, at most
//! [`MAX_PIDS`] processes (the largest by RSS).
//! When tracing cannot work here (not root, a memlens built without clang)
//! the first failure says why and no trace is tried again.

use super::config::TraceOnCriticalConfig;
use super::findings::is_of;
use super::gotargets::FetchedProfile;
use memlens_analyze::finding::TIME_TO_OOM;
use memlens_analyze::{Finding, Severity};
use memlens_model::series::Entity;
use memlens_model::Snapshot;
use memlens_trace::bpf::MAX_PIDS;
use memlens_trace::{session, Event, Report, TraceError, TraceOptions};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// The profile kind of a trace's faults profile in the history.
pub const KIND: &str = "trace-faults";

/// A trace asked for: the critical targets' keys and their processes then.
struct Request {
    target: String,
    processes: Vec<(u32, Entity)>,
}

/// The trace that runs.
struct Running {
    request: Request,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Report, TraceError>>,
}

/// What a finished trace gave.
#[derive(Default)]
pub struct Collected {
    /// The faults profile of each traced process with sampled stacks.
    pub profiles: Vec<FetchedProfile>,
    /// Lines for the terminal.
    pub notes: Vec<String>,
}

/// The agent's traces of critical forecasts.
pub struct TraceEvidence {
    config: TraceOnCriticalConfig,
    queue: VecDeque<Request>,
    running: Option<Running>,
    /// When each process's last trace started.
    last_started: HashMap<Entity, Instant>,
    /// Why tracing cannot work here, once known: nothing more is tried.
    unavailable: Option<String>,
}

impl TraceEvidence {
    /// The traces of `config`, or None when it is turned off.
    pub fn new(config: &TraceOnCriticalConfig) -> Option<TraceEvidence> {
        config.enabled.then(|| TraceEvidence {
            config: config.clone(),
            queue: VecDeque::new(),
            running: None,
            last_started: HashMap::new(),
            unavailable: None,
        })
    }

    /// Asks for one trace of the processes of every target whose time-to-OOM
    /// just turned critical in `events` (as in `snapshot`; a process and its
    /// cgroup critical together are one process), and starts it when none
    /// runs. A process traced less than `min_interval` ago, or waiting for
    /// its trace, is left out.
    pub fn request(&mut self, events: &[Finding], snapshot: &Snapshot) {
        if self.unavailable.is_some() {
            return;
        }
        let mut targets = Vec::new();
        let mut processes: Vec<(u32, Entity, u64)> = Vec::new();
        for f in events {
            if f.id != TIME_TO_OOM || f.severity != Severity::Critical || f.cleared_at_ms.is_some()
            {
                continue;
            }
            let mut any = false;
            for p in snapshot.processes.iter().filter(|p| is_of(p, &f.target)) {
                let entity = Entity::Process {
                    pid: p.pid,
                    start_time: p.start_time,
                };
                any = true;
                if self.wanted(&entity) && !processes.iter().any(|(_, e, _)| *e == entity) {
                    processes.push((p.pid as u32, entity, p.rss_bytes.unwrap_or(0)));
                }
            }
            if any {
                targets.push(f.target.key());
            }
        }
        if !processes.is_empty() {
            // The largest first, when there are more than the filter holds.
            processes.sort_by_key(|p| std::cmp::Reverse(p.2));
            processes.truncate(MAX_PIDS);
            self.queue.push_back(Request {
                target: targets.join(", "),
                processes: processes.into_iter().map(|(pid, e, _)| (pid, e)).collect(),
            });
        }
        self.start_next();
    }

    /// Whether process `entity` is neither traced recently nor waiting.
    fn wanted(&self, entity: &Entity) -> bool {
        let waiting = self
            .queue
            .iter()
            .chain(self.running.as_ref().map(|r| &r.request))
            .any(|r| r.processes.iter().any(|(_, e)| e == entity));
        let recent = self
            .last_started
            .get(entity)
            .is_some_and(|t| t.elapsed() < self.config.min_interval);
        !waiting && !recent
    }

    /// Starts the next queued trace when none runs (its processes that are
    /// gone are left out; a request with none left is dropped).
    fn start_next(&mut self) {
        while self.running.is_none() && self.unavailable.is_none() {
            let Some(mut request) = self.queue.pop_front() else {
                return;
            };
            request.processes.retain(|(pid, _)| session::alive(*pid));
            if request.processes.is_empty() {
                continue;
            }
            let options = TraceOptions {
                pids: request.processes.iter().map(|(pid, _)| *pid).collect(),
                cgroup: None,
                cold_start: false,
                events: vec![Event::Faults],
                stack_every: self.config.stack_every,
                syscall_stack_every: 1,
            };
            let stop = Arc::new(AtomicBool::new(false));
            let duration = self.config.duration;
            let thread_stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name("memlens-trace".to_string())
                .spawn(move || session::run_until(&options, duration, &thread_stop));
            match spawned {
                Ok(handle) => {
                    for (_, entity) in &request.processes {
                        self.last_started.insert(entity.clone(), Instant::now());
                    }
                    self.running = Some(Running {
                        request,
                        stop,
                        handle,
                    });
                }
                Err(err) => {
                    self.unavailable = Some(format!("cannot start a thread: {err}"));
                }
            }
        }
    }

    /// Collects a finished trace (its profiles, a line saying what it was)
    /// and starts the next queued one. Never waits.
    pub fn poll(&mut self) -> Collected {
        let mut collected = Collected::default();
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.handle.is_finished())
        {
            let running = self.running.take().expect("checked");
            let outcome = running
                .handle
                .join()
                .unwrap_or_else(|_| Err(TraceError::BadOption("the trace thread panicked".into())));
            self.collect(&running.request, outcome, &mut collected);
        }
        self.start_next();
        collected
    }

    fn collect(
        &mut self,
        request: &Request,
        outcome: Result<Report, TraceError>,
        collected: &mut Collected,
    ) {
        let report = match outcome {
            Ok(report) => report,
            Err(err) => {
                let permanent = matches!(err, TraceError::NotRoot | TraceError::NoBpfProgram);
                collected.notes.push(format!(
                    "memlens watch: no trace of the critical {}: {err}{}",
                    request.target,
                    if permanent {
                        " (no more traces of critical forecasts: [trace_on_critical] enabled = false silences this)"
                    } else {
                        ""
                    }
                ));
                if permanent {
                    self.unavailable = Some(err.to_string());
                    self.queue.clear();
                }
                return;
            }
        };
        let mut stored = Vec::new();
        for (pid, entity) in &request.processes {
            let mut one = report.clone();
            one.processes.retain(|p| p.pid == *pid);
            let has_stacks = one
                .processes
                .iter()
                .flat_map(|p| &p.events)
                .any(|e| e.event == Event::Faults && !e.stacks.is_empty());
            if !has_stacks {
                continue;
            }
            collected.profiles.push(FetchedProfile {
                entity: entity.clone(),
                kind: KIND,
                bytes: memlens_trace::pprof::gzipped(&one, Event::Faults),
            });
            stored.push(pid.to_string());
        }
        let faults: u64 = report
            .processes
            .iter()
            .flat_map(|p| &p.events)
            .filter(|e| e.event == Event::Faults)
            .map(|e| e.events)
            .sum();
        collected.notes.push(format!(
            "memlens watch: traced the critical {} for {:.1} s: {faults} page faults; {} profile of pid {}",
            request.target,
            report.duration_seconds,
            KIND,
            if stored.is_empty() {
                "none (no stack sampled)".to_string()
            } else {
                stored.join(", ")
            }
        ));
    }

    /// Ends a running trace now (the agent stops) and waits for its thread,
    /// which sees the stop within 100 ms.
    pub fn stop(mut self) {
        self.queue.clear();
        if let Some(running) = self.running.take() {
            running.stop.store(true, Ordering::SeqCst);
            let _ = running.handle.join();
        }
    }
}
