//! What the `memlens trace` live tests share: running a trace and reading
//! its JSON, the BPF objects it holds and that none is left behind, and the
//! kernel's own fault counter of a process.
#![allow(dead_code)]

use memlens_testkit::{in_ci, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One trace at a time (each is its own window on the machine).
pub static ONE_TRACE: Mutex<()> = Mutex::new(());

/// Our BPF program names as `bpftool prog list` shows them.
pub const PROGRAM_NAMES: [&str; 8] = [
    "page_fault_user",
    "sys_enter_mmap",
    "sys_enter_munmap",
    "sys_enter_brk",
    "sys_enter_madvise",
    "sys_enter_mremap",
    // With --cgroup: new processes join the filter at their fork, ended ones leave.
    "task_newtask",
    "sched_process_e", // sched_process_exit, cut to 15 bytes by the kernel
];

pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && !in_ci() {
        eprintln!("skipped: memlens trace needs root");
        return false;
    }
    assert!(root, "CI=true: trace_live must run as root");
    true
}

/// The BPF program and map ids the kernel lists (`bpftool -j`).
pub fn kernel_bpf_ids(kind: &str) -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["-j", kind, "list"])
        .output()
        .expect("run bpftool (apt-get install bpftool)");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// The ids of the BPF objects process `pid` holds (`prog_id:`/`map_id:` in
/// the fdinfo of its descriptors): (programs, maps).
pub fn bpf_ids_held_by(pid: u32) -> (Vec<u64>, Vec<u64>) {
    let (mut progs, mut maps) = (Vec::new(), Vec::new());
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for line in std::fs::read_to_string(fd.path())
            .unwrap_or_default()
            .lines()
        {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next().and_then(|v| v.parse().ok())) {
                (Some("prog_id:"), Some(id)) => progs.push(id),
                (Some("map_id:"), Some(id)) => maps.push(id),
                _ => {}
            }
        }
    }
    progs.sort_unstable();
    progs.dedup();
    maps.sort_unstable();
    maps.dedup();
    (progs, maps)
}

/// Programs with our names that no process holds (a leak: none expected;
/// another memlens tracing at the same time holds its own).
pub fn orphaned_programs() -> Vec<String> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "list"])
        .output()
        .expect("run bpftool");
    let list: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    let mut held = Vec::new();
    for pid in std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
    {
        held.extend(bpf_ids_held_by(pid).0);
    }
    list.as_array()
        .unwrap()
        .iter()
        .filter(|p| PROGRAM_NAMES.iter().any(|n| p["name"] == *n))
        .filter(|p| !held.contains(&p["id"].as_u64().unwrap_or(0)))
        .map(|p| p.to_string())
        .collect()
}

/// Asserts no program with our names is loaded but unheld. A program of a
/// memlens that just exited is freed in deferred work: only one still
/// unheld after 10 s is left behind.
pub fn assert_no_orphaned_programs() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !orphaned_programs().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(orphaned_programs(), Vec::<String>::new(), "left behind");
}

/// Asserts none of `held` (ids memlens held while tracing) is still loaded.
/// The kernel frees a program or map after its last reference goes, in
/// deferred work (RCU, a workqueue): it may be listed for a moment after
/// memlens exited, so this waits up to 10 s for the lists to drop them.
pub fn assert_unloaded(held: &(Vec<u64>, Vec<u64>), label: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let progs = kernel_bpf_ids("prog");
        let maps = kernel_bpf_ids("map");
        let left_progs: Vec<_> = held.0.iter().filter(|id| progs.contains(id)).collect();
        let left_maps: Vec<_> = held.1.iter().filter(|id| maps.contains(id)).collect();
        if left_progs.is_empty() && left_maps.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: left behind 10 s after memlens exited: programs {left_progs:?}, maps {left_maps:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `minflt + majflt` of /proc/PID/stat (fields 10 and 12).
pub fn faults(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    // fields[0] is the state (field 3): minflt is field 10, majflt field 12.
    fields[7].parse::<u64>().unwrap() + fields[9].parse::<u64>().unwrap()
}

pub fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    stat.rsplit_once(')')
        .expect("comm")
        .1
        .trim_start()
        .chars()
        .next()
        .unwrap()
}

/// Sends `signal` and waits (deadline 10 s) until the process is stopped or running.
pub fn signal_and_wait(pid: i32, signal: libc::c_int, stopped: bool) {
    // SAFETY: kill on our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (state(pid) == 'T') != stopped {
        assert!(
            Instant::now() < deadline,
            "pid {pid} did not {} in 10 s",
            if stopped { "stop" } else { "resume" }
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running `memlens trace`, killed on drop.
pub struct Trace {
    child: Child,
    stderr: mpsc::Receiver<String>,
    /// The BPF programs and maps it held once attached.
    held: (Vec<u64>, Vec<u64>),
}

impl Trace {
    /// Starts `memlens trace --pid PID --duration 120s --json -o DIR` and
    /// waits (deadline 60 s) for its "attached" line.
    pub fn attach(pid: i32, dir: &TempDir) -> Trace {
        Trace::start(&["--pid", &pid.to_string()], dir).0
    }

    /// Starts `memlens trace TARGET --duration 120s --json -o DIR` (TARGET:
    /// `--pid N` or `--cgroup PATH`), waits (deadline 60 s) for its
    /// "attached" line and returns it too.
    pub fn start(target: &[&str], dir: &TempDir) -> (Trace, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memlens"))
            .arg("trace")
            .args(target)
            .args(["--duration", "120s", "--json", "-o"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start memlens trace");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut trace = Trace {
            child,
            stderr: rx,
            held: (Vec::new(), Vec::new()),
        };
        let attached = match trace.stderr.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("memlens trace: attached") => line,
            Ok(line) => panic!("memlens trace: {line}"),
            Err(e) => panic!("memlens trace did not attach in 60 s: {e}"),
        };
        // One program per default event, and its maps, held by memlens;
        // with --cgroup two more follow forks and exits.
        trace.held = bpf_ids_held_by(trace.child.id());
        let expected = if target.contains(&"--cgroup") { 8 } else { 6 };
        assert_eq!(
            trace.held.0.len(),
            expected,
            "programs held by memlens: {:?}",
            trace.held
        );
        assert!(!trace.held.1.is_empty(), "no map held by memlens");
        (trace, attached)
    }

    /// Stops it with SIGINT (as Ctrl-C) when `interrupt`, else waits for it to
    /// end on its own; returns its JSON report after checking that every BPF
    /// program and map it held is gone from the kernel.
    pub fn finish(mut self, interrupt: bool, label: &str) -> Value {
        if interrupt {
            // SAFETY: kill on our own child.
            assert_eq!(
                unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) },
                0
            );
        }
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.stderr.try_iter().collect();
        assert!(status.success(), "memlens trace: {status}: {rest:?}");
        assert_unloaded(&self.held, label);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON: {e}: {stdout}"))
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn event<'a>(report: &'a Value, pid: i32, name: &str) -> &'a Value {
    let process = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .expect("pid in report");
    process["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| {
            panic!("no {name} for pid {pid}: {process:#}");
        })
}
