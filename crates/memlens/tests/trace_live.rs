//! `memlens trace` on real Go processes (the workload program, Go 1.19 and
//! 1.27, and a stripped build): their own functions head the fault and mmap
//! stacks, the faults counted match the kernel's own `minflt + majflt` of
//! /proc/PID/stat over the same window, the pprof output opens in `go tool
//! pprof`, and bad input is refused with one line and no BPF program left.
//!
//! The window: the workload is stopped (SIGSTOP, waited until its state is
//! `T`) before memlens attaches and again before memlens is told to stop
//! (SIGINT), and /proc/PID/stat is read while it is stopped, right after the
//! attach and before the detach. A stopped process takes no page fault, so
//! memlens's window and the test's hold the same faults whatever the load on
//! the machine. The remaining difference is faults the kernel counts in
//! `minflt` but that are not user-mode faults (a syscall writing to a page
//! not yet present, e.g. `read()` into a fresh buffer): the bound is 5 %.
//!
//! Needs root (BPF) and clang at build time; with CI=true nothing skips.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/trace.rs"]
mod trace;

use cli::memlens_refuses;
use memlens_testkit::{go_tool_pprof_top, GoToolchain, TempDir, Workload, WorkloadSpec};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use trace::{
    assert_no_orphaned_programs, can_run, event, faults, signal_and_wait, Trace, ONE_TRACE,
};

/// The `main.` frames of a stack, innermost first (the report lists frames
/// outermost first).
fn main_frames(stack: &Value) -> Vec<String> {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter_map(Value::as_str)
        .filter(|f| f.starts_with("main."))
        .map(str::to_string)
        .collect()
}

/// The innermost `main.` frame of a stack.
fn innermost_main(stack: &Value) -> Option<String> {
    main_frames(stack).into_iter().next()
}

/// The traced window: stop, attach, read the counter, run until `until`
/// returns, stop, read the counter, detach. Returns (report, faults by /proc).
fn traced_window(w: &Workload, dir: &TempDir, label: &str, until: impl FnOnce()) -> (Value, u64) {
    let pid = w.pid();
    signal_and_wait(pid, libc::SIGSTOP, true);
    let trace = Trace::attach(pid, dir);
    let before = faults(pid);
    signal_and_wait(pid, libc::SIGCONT, false);
    until();
    signal_and_wait(pid, libc::SIGSTOP, true);
    let after = faults(pid);
    let report = trace.finish(true, label);
    signal_and_wait(pid, libc::SIGCONT, false);
    (report, after - before)
}

fn assert_faults_match(report: &Value, pid: i32, kernel: u64, label: &str) {
    let counted = event(report, pid, "faults")["events"].as_u64().unwrap();
    let diff = counted.abs_diff(kernel) as f64;
    assert!(
        kernel > 1000,
        "{label}: only {kernel} faults in the window: too few to compare"
    );
    assert!(
        diff <= 0.05 * kernel as f64,
        "{label}: memlens counted {counted} faults, /proc/{pid}/stat {kernel}"
    );
    eprintln!(
        "{label}: faults memlens {counted}, /proc {kernel} ({:+.2} %)",
        100.0 * (counted as f64 - kernel as f64) / kernel as f64
    );
}

fn heap_leak(toolchain: GoToolchain, stripped: bool) {
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let label = format!(
        "{} heap-leak{}",
        toolchain.name,
        if stripped { " stripped" } else { "" }
    );
    let mut spec = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--garbage-kib=0")
        .arg("--leak-kib=1024")
        .arg("--tick=50ms");
    if stripped {
        spec = spec.stripped();
    }
    let w = spec.start();
    w.wait_for_line("LEAK_START", Duration::from_secs(30));
    let dir = TempDir::new("trace-live");
    // 48 ticks of 1 MiB: about 12,000 faults.
    let (report, kernel) = traced_window(&w, &dir, &label, || {
        let last_tick = w
            .stdout_lines()
            .iter()
            .rev()
            .find_map(|l| {
                l.strip_prefix("TICK ")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        w.wait_for_line(
            &format!("TICK {} ", last_tick + 48),
            Duration::from_secs(60),
        );
    });
    let pid = w.pid();
    assert_faults_match(&report, pid, kernel, &label);
    assert!(
        report["sampling"]
            .as_str()
            .unwrap()
            .contains("1 fault in 256"),
        "{}",
        report["sampling"]
    );
    assert_eq!(report["lost_events"], 0);
    let top_fault = &event(&report, pid, "faults")["stacks"][0];
    // newChunk and touchPages are inlined into retainLeakChunk: expanded.
    assert_eq!(
        main_frames(top_fault)[..3],
        ["main.touchPages", "main.newChunk", "main.retainLeakChunk"],
        "{label}: {top_fault:#}"
    );
    // The heap grows (mheap.grow maps or reserves) on behalf of the leak.
    let mmap = event(&report, pid, "mmap");
    let by_bytes = mmap["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["bytes_estimated"]
                .as_f64()
                .partial_cmp(&b["bytes_estimated"].as_f64())
                .unwrap()
        })
        .expect("mmap stacks");
    assert_eq!(
        main_frames(by_bytes)[..2],
        ["main.newChunk", "main.retainLeakChunk"],
        "{label}: {by_bytes:#}"
    );
    assert!(
        by_bytes["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "runtime.(*mheap).grow"),
        "{label}: {by_bytes:#}"
    );
    // go tool pprof reads the profile and finds the same top function.
    let top = go_tool_pprof_top(
        &toolchain,
        "faults",
        "none",
        &[],
        &[&dir.join("faults.pb.gz")],
    );
    assert_eq!(
        top.order.first().map(String::as_str),
        Some("main.touchPages"),
        "{label}: pprof -top {:?}",
        top.order
    );
    assert!(std::fs::read_to_string(dir.join("faults.folded"))
        .unwrap()
        .contains(";main.retainLeakChunk;main.newChunk;main.touchPages "));
    assert!(std::fs::read_to_string(dir.join("summary.txt"))
        .unwrap()
        .contains("1 fault in 256"));
    assert!(std::fs::read_to_string(dir.join("faults.svg"))
        .unwrap()
        .contains("<svg"));
}

fn mmap_mode(toolchain: GoToolchain) {
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let label = format!("{} mmap", toolchain.name);
    // 100 mappings of 256 KiB: 6,400 faults in its own code, 101 munmaps.
    let w = WorkloadSpec::new(&toolchain, "mmap")
        .arg("--mappings=100")
        .arg("--mapping-kib=256")
        .arg("--setup-after=1s")
        .start();
    w.wait_for_line("READY", Duration::from_secs(30));
    let dir = TempDir::new("trace-live");
    let (report, kernel) = traced_window(&w, &dir, &label, || {
        w.wait_for_line("SETUP_DONE", Duration::from_secs(60));
    });
    let pid = w.pid();
    assert_faults_match(&report, pid, kernel, &label);
    let faults = event(&report, pid, "faults");
    assert_eq!(
        main_frames(&faults["stacks"][0])[..2],
        ["main.touchPages", "main.runMmap"],
        "{label}: {:#}",
        faults["stacks"][0]
    );
    let mmap = event(&report, pid, "mmap");
    let own = mmap["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| innermost_main(s).as_deref() == Some("main.runMmap"))
        .unwrap_or_else(|| panic!("{label}: no mmap from main.runMmap: {mmap:#}"));
    // hole | piece | hole ... : 100 * (256 KiB + 4 KiB) + 4 KiB in one call.
    let region = 100.0 * (256.0 + 4.0) * 1024.0 + 4096.0;
    assert!(
        own["bytes_estimated"].as_f64().unwrap() >= region,
        "{label}: {own:#}"
    );
    let munmap = event(&report, pid, "munmap");
    let holes: f64 = munmap["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| innermost_main(s).as_deref() == Some("main.munmap"))
        .map(|s| s["events_estimated"].as_f64().unwrap())
        .sum();
    assert_eq!(holes, 101.0, "{label}: {munmap:#}");
}

#[test]
fn go119_heap_leak() {
    if can_run() {
        heap_leak(GoToolchain::go119(), false);
    }
}

#[test]
fn go127_heap_leak() {
    if can_run() {
        heap_leak(GoToolchain::go127(), false);
    }
}

#[test]
fn go127_heap_leak_stripped() {
    if can_run() {
        heap_leak(GoToolchain::go127(), true);
    }
}

#[test]
fn go119_mmap() {
    if can_run() {
        mmap_mode(GoToolchain::go119());
    }
}

#[test]
fn go127_mmap() {
    if can_run() {
        mmap_mode(GoToolchain::go127());
    }
}

#[test]
fn bad_input_is_one_line_and_leaves_no_program() {
    if !can_run() {
        return;
    }
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let line = memlens_refuses(&["trace", "--pid", "999999999", "--duration", "1s"]);
    assert!(line.contains("--pid 999999999: no such process"), "{line}");
    let me = std::process::id().to_string();
    let line = memlens_refuses(&["trace", "--pid", &me, "--duration", "0"]);
    assert!(line.contains("--duration 0"), "{line}");
    let line = memlens_refuses(&["trace", "--cold-start", "--", "/nonexistent/memlens-cmd"]);
    assert!(
        line.contains("/nonexistent/memlens-cmd: no such executable"),
        "{line}"
    );
    let line = memlens_refuses(&["trace", "--cgroup", "/nonexistent/memlens-none"]);
    assert!(
        line.contains("--cgroup /nonexistent/memlens-none: no cgroup"),
        "{line}"
    );
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_memlens"),
            "trace",
            "--pid",
            &me,
            "--duration",
            "1s",
        ])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    assert_no_orphaned_programs();
}

#[test]
fn a_process_exiting_mid_trace_keeps_what_was_collected() {
    if !can_run() {
        return;
    }
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let toolchain = GoToolchain::go127();
    let mut w = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--garbage-kib=0")
        .arg("--duration=3s")
        .start();
    w.wait_for_line("LEAK_START", Duration::from_secs(30));
    let pid = w.pid();
    let dir = TempDir::new("trace-live");
    let trace = Trace::attach(pid, &dir);
    w.wait_exit(Duration::from_secs(30))
        .expect("workload exited");
    // memlens ends on its own once the process is gone (its --duration is 120 s).
    let report = trace.finish(false, "exit mid-trace");
    let process = &report["processes"][0];
    assert!(
        process["note"].as_str().unwrap_or("").contains("exited"),
        "{process:#}"
    );
    assert!(
        report["duration_seconds"].as_f64().unwrap() < 60.0,
        "{report:#}"
    );
    assert!(event(&report, pid, "faults")["events"].as_u64().unwrap() > 0);
}
