//! Loading, attaching and reading the BPF program of `bpf/trace.bpf.c` with
//! aya. Dropping a [`Tracer`] detaches and unloads every program and map (aya
//! closes their file descriptors), so nothing is left in the kernel.

use crate::error::TraceError;
use crate::event::Event;
use crate::raw::RawTrace;

/// What to trace.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// The processes (tgids) to trace.
    pub pids: Vec<u32>,
    /// A cgroup directory (v1 or v2) whose processes (`cgroup.procs`) are
    /// traced too, re-read every 100 ms while tracing.
    pub cgroup: Option<std::path::PathBuf>,
    /// The first pid is a command held before exec (`--cold-start`): the
    /// caller's `on_attached` releases it; the trace then watches for its
    /// first listening socket.
    pub cold_start: bool,
    /// The events to attach to.
    pub events: Vec<Event>,
    /// Take a user stack on 1 page fault in this many (per CPU).
    pub stack_every: u64,
    /// Take a user stack on 1 syscall (mmap, munmap, ...) in this many (per CPU
    /// and syscall).
    pub syscall_stack_every: u64,
}

impl TraceOptions {
    /// The 1-in-N stack sampling of `event` (at least 1).
    pub fn stack_every_for(&self, event: Event) -> u64 {
        match event {
            Event::Faults => self.stack_every,
            _ => self.syscall_stack_every,
        }
        .max(1)
    }
}

/// The most processes one trace follows (the size of the kernel's pid filter).
pub const MAX_PIDS: usize = 64;

#[cfg(memlens_bpf)]
mod loaded {
    use super::*;
    use crate::raw::{CountRow, StackRow};
    use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, StackTraceMap};
    use aya::programs::TracePoint;
    use aya::{Ebpf, Pod};

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CountKey {
        tgid: u32,
        event: u32,
        size_class: u32,
        detail: u32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct StackKey {
        tgid: u32,
        event: u32,
        stack_id: i32,
        pad: u32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Value {
        events: u64,
        bytes: u64,
    }
    // SAFETY: plain #[repr(C)] integers without padding, as in trace.bpf.c.
    unsafe impl Pod for CountKey {}
    // SAFETY: as above.
    unsafe impl Pod for StackKey {}
    // SAFETY: as above.
    unsafe impl Pod for Value {}

    static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trace.bpf.o"));

    fn bpf_err(what: impl Into<String>) -> impl FnOnce(Box<dyn std::error::Error>) -> TraceError {
        let what = what.into();
        move |e| {
            let mut detail = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            TraceError::Bpf { what, detail }
        }
    }

    fn sum(per_cpu: &[Value]) -> Value {
        per_cpu.iter().fold(
            Value {
                events: 0,
                bytes: 0,
            },
            |a, v| Value {
                events: a.events + v.events,
                bytes: a.bytes + v.bytes,
            },
        )
    }

    /// A running trace: the loaded programs, attached, and their maps.
    pub struct Tracer {
        ebpf: Ebpf,
    }

    impl Tracer {
        /// Loads the program, fills the pid filter and attaches to the events.
        pub fn start(options: &TraceOptions) -> Result<Tracer, TraceError> {
            let mut ebpf =
                Ebpf::load(OBJECT).map_err(|e| bpf_err("loading the object")(e.into()))?;
            {
                let mut pids: HashMap<&mut MapData, u32, u8> =
                    HashMap::try_from(ebpf.map_mut("pids").expect("pids map"))
                        .map_err(|e| bpf_err("pids map")(e.into()))?;
                for &pid in &options.pids {
                    pids.insert(pid, 1, 0)
                        .map_err(|e| bpf_err(format!("adding pid {pid}"))(e.into()))?;
                }
                let mut config: Array<&mut MapData, u64> =
                    Array::try_from(ebpf.map_mut("config").expect("config map"))
                        .map_err(|e| bpf_err("config map")(e.into()))?;
                for event in Event::ALL {
                    config
                        .set(event as u32, options.stack_every_for(event), 0)
                        .map_err(|e| bpf_err("setting --stack-every")(e.into()))?;
                }
            }
            let listen =
                options
                    .cold_start
                    .then_some(("sys_exit_listen", "syscalls", "sys_exit_listen"));
            for (program, category, name) in
                options.events.iter().map(|e| e.tracepoint()).chain(listen)
            {
                let tp: &mut TracePoint = ebpf
                    .program_mut(program)
                    .expect("program in the object")
                    .try_into()
                    .map_err(|e: aya::programs::ProgramError| bpf_err(program)(e.into()))?;
                tp.load()
                    .map_err(|e| bpf_err(format!("loading {program}"))(e.into()))?;
                tp.attach(category, name)
                    .map_err(|e| bpf_err(format!("attaching to {category}:{name}"))(e.into()))?;
            }
            if options.cgroup.is_some() {
                // New processes of traced ones join the filter in the kernel
                // (their first instruction on); ended ones leave it.
                for (program, category, name) in [
                    ("task_newtask", "task", "task_newtask"),
                    ("sched_process_exit", "sched", "sched_process_exit"),
                ] {
                    let tp: &mut TracePoint = ebpf
                        .program_mut(program)
                        .expect("program in the object")
                        .try_into()
                        .map_err(|e: aya::programs::ProgramError| bpf_err(program)(e.into()))?;
                    tp.load()
                        .map_err(|e| bpf_err(format!("loading {program}"))(e.into()))?;
                    tp.attach(category, name).map_err(|e| {
                        bpf_err(format!("attaching to {category}:{name}"))(e.into())
                    })?;
                }
            }
            Ok(Tracer { ebpf })
        }

        /// Adds a process to the kernel's pid filter while tracing.
        pub fn add_pid(&mut self, pid: u32) -> Result<(), TraceError> {
            let mut pids: HashMap<&mut MapData, u32, u8> =
                HashMap::try_from(self.ebpf.map_mut("pids").expect("pids map"))
                    .map_err(|e| bpf_err("pids map")(e.into()))?;
            pids.insert(pid, 1, 0)
                .map_err(|e| bpf_err(format!("adding pid {pid}"))(e.into()))
        }

        /// When `pid`'s first successful `listen()` returned, on the kernel's
        /// CLOCK_MONOTONIC (ns); None before it (or without `cold_start`).
        pub fn first_listen_monotonic_ns(&self, pid: u32) -> Result<Option<u64>, TraceError> {
            let Some(map) = self.ebpf.map("first_listen") else {
                return Ok(None);
            };
            let first: HashMap<_, u32, u64> =
                HashMap::try_from(map).map_err(|e| bpf_err("first_listen map")(e.into()))?;
            match first.get(&pid, 0) {
                Ok(ns) => Ok(Some(ns)),
                Err(aya::maps::MapError::KeyNotFound) => Ok(None),
                Err(e) => Err(bpf_err("reading first_listen")(e.into())),
            }
        }

        /// Reads the counts and sampled stacks collected so far.
        pub fn read(&self) -> Result<RawTrace, TraceError> {
            let map = |name: &str| self.ebpf.map(name).expect("map in the object");
            let counts: PerCpuHashMap<_, CountKey, Value> = PerCpuHashMap::try_from(map("counts"))
                .map_err(|e| bpf_err("counts map")(e.into()))?;
            let stack_counts: PerCpuHashMap<_, StackKey, Value> =
                PerCpuHashMap::try_from(map("stack_counts"))
                    .map_err(|e| bpf_err("stack_counts map")(e.into()))?;
            let stacks = StackTraceMap::try_from(map("stacks"))
                .map_err(|e| bpf_err("stacks map")(e.into()))?;
            let lost: PerCpuArray<_, u64> =
                PerCpuArray::try_from(map("lost")).map_err(|e| bpf_err("lost map")(e.into()))?;
            let mut raw = RawTrace::default();
            for item in counts.iter() {
                let (k, per_cpu) = item.map_err(|e| bpf_err("reading counts")(e.into()))?;
                let v = sum(&per_cpu);
                let Some(event) = Event::from_number(k.event) else {
                    continue;
                };
                raw.counts.push(CountRow {
                    pid: k.tgid,
                    event,
                    size_class: k.size_class,
                    detail: k.detail,
                    events: v.events,
                    bytes: v.bytes,
                });
            }
            for item in stack_counts.iter() {
                let (k, per_cpu) = item.map_err(|e| bpf_err("reading stack counts")(e.into()))?;
                let v = sum(&per_cpu);
                let Some(event) = Event::from_number(k.event) else {
                    continue;
                };
                let frames = if k.stack_id >= 0 {
                    stacks
                        .get(&(k.stack_id as u32), 0)
                        .map(|s| s.frames().iter().map(|f| f.ip).collect())
                        .map_err(|e| bpf_err(format!("reading stack {}", k.stack_id))(e.into()))?
                } else {
                    Vec::new()
                };
                raw.stacks.push(StackRow {
                    pid: k.tgid,
                    event,
                    stack_error: (k.stack_id < 0).then_some(k.stack_id),
                    frames,
                    events: v.events,
                    bytes: v.bytes,
                });
            }
            for (i, slot) in [&mut raw.lost_counts, &mut raw.lost_stacks]
                .into_iter()
                .enumerate()
            {
                let per_cpu = lost
                    .get(&(i as u32), 0)
                    .map_err(|e| bpf_err("lost map")(e.into()))?;
                *slot = per_cpu.iter().sum();
            }
            Ok(raw)
        }
    }
}

#[cfg(memlens_bpf)]
pub use loaded::Tracer;

/// Without clang at build time there is no BPF program: starting says so.
#[cfg(not(memlens_bpf))]
pub struct Tracer;

#[cfg(not(memlens_bpf))]
impl Tracer {
    /// Always fails: this build has no BPF program.
    pub fn start(_options: &TraceOptions) -> Result<Tracer, TraceError> {
        Err(TraceError::NoBpfProgram)
    }

    /// Never reached (no tracer can exist).
    pub fn add_pid(&mut self, _pid: u32) -> Result<(), TraceError> {
        Err(TraceError::NoBpfProgram)
    }

    /// Never reached (no tracer can exist).
    pub fn first_listen_monotonic_ns(&self, _pid: u32) -> Result<Option<u64>, TraceError> {
        Err(TraceError::NoBpfProgram)
    }

    /// Never reached (no tracer can exist).
    pub fn read(&self) -> Result<RawTrace, TraceError> {
        Err(TraceError::NoBpfProgram)
    }
}
