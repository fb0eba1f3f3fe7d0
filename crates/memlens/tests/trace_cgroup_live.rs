//! `memlens trace --cgroup` on a memory cgroup of the testkit holding two Go
//! workloads: one (Go 1.27) there before memlens attaches, one (Go 1.19)
//! started in it after: both are traced, each apart in the report with its
//! own leak function heading its fault stacks, and the combined folded
//! stacks carry both.
//!
//! The late one joins when memlens re-reads `cgroup.procs` (every 100 ms); the
//! test waits for 40 of its ticks (1 MiB each, every page written) after it
//! printed LEAK_START, so whatever it did before memlens saw it, thousands of
//! its leak faults fall in the window, loaded machine or not: the ticks are
//! paced by the wall clock and caught up when late (workloads/pacer.go).
//!
//! A process forked in the cgroup while tracing is traced from its fork
//! (the kernel adds it to the filter in `task:task_newtask`, before it runs):
//! the C faulter, started by a shell of the cgroup, writes 2,048 pages and
//! exits within milliseconds, long before a 100 ms re-read of `cgroup.procs`
//! could see it; every one of its faults is counted.
//!
//! Needs root (BPF, cgroups) and clang at build time; with CI=true nothing skips.

#[path = "common/trace.rs"]
mod trace;

use memlens_testkit::{
    dwarf_c_program, ChildGuard, GoToolchain, TempDir, TestCgroup, Workload, WorkloadSpec,
};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use std::time::Instant;
use trace::{can_run, event, Trace, ONE_TRACE};

fn leak(toolchain: &GoToolchain, cgroup: &TestCgroup) -> Workload {
    let w = WorkloadSpec::new(toolchain, "heap-leak")
        .arg("--garbage-kib=0")
        .arg("--leak-kib=1024")
        .arg("--tick=50ms")
        .start_in(cgroup);
    w.wait_for_line("LEAK_START", Duration::from_secs(60));
    w
}

/// The tick number of the last `TICK n` line so far.
fn last_tick(w: &Workload) -> u64 {
    w.stdout_lines()
        .iter()
        .rev()
        .find_map(|l| {
            l.strip_prefix("TICK ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn frames(stack: &Value) -> Vec<&str> {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn every_process_of_a_cgroup_is_traced_and_new_ones_join() {
    if !can_run() {
        return;
    }
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let cgroup = TestCgroup::with_limit(1 << 30);
    let first = leak(&GoToolchain::go127(), &cgroup);
    let dir = TempDir::new("trace-cgroup");
    let cgroup_dir = cgroup.dir().to_str().unwrap().to_string();
    let (trace, attached) = Trace::start(&["--cgroup", &cgroup_dir], &dir);
    assert!(
        attached.contains(&first.pid().to_string()),
        "attached line names the cgroup's process: {attached}"
    );
    let second = leak(&GoToolchain::go119(), &cgroup);
    let until = last_tick(&second) + 40;
    second.wait_for_line(&format!("TICK {until} "), Duration::from_secs(120));
    let report = trace.finish(true, "cgroup");

    assert_eq!(report["untraced_processes"], 0, "{report:#}");
    for (w, label) in [(&first, "before attach"), (&second, "joined")] {
        let faults = event(&report, w.pid(), "faults");
        let top = frames(&faults["stacks"][0]);
        assert!(
            top.contains(&"main.retainLeakChunk"),
            "{label} pid {}: top fault stack {top:?}",
            w.pid()
        );
        // 40 ticks of 1 MiB written: 10,240 faults at least.
        assert!(
            faults["events"].as_u64().unwrap() >= 40 * 256,
            "{label}: {faults:#}"
        );
    }
    let folded = std::fs::read_to_string(dir.path().join("faults.folded")).expect("faults.folded");
    for w in [&first, &second] {
        assert!(
            folded
                .lines()
                .any(|l| l.contains(&format!("-{};", w.pid()))),
            "pid {} missing from the combined folded stacks",
            w.pid()
        );
    }
}

#[test]
fn a_process_forked_in_the_cgroup_is_traced_from_its_fork() {
    if !can_run() {
        return;
    }
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let cgroup = TestCgroup::with_limit(1 << 30);
    let program = dwarf_c_program();
    let dir = TempDir::new("trace-fork");
    let out = dir.join("faulter.out");
    // A shell of the cgroup waits for a line, then runs the faulter (8 MiB,
    // one round: 2,048 pages written) with its go-ahead line piped in.
    let script = format!(
        "read line; echo go | {} 8 1 > {}",
        program.with_symtab.display(),
        out.display()
    );
    let mut shell = ChildGuard(
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start sh"),
    );
    std::fs::write(cgroup.procs_file(), shell.pid().to_string()).expect("move sh into the cgroup");
    let cgroup_dir = cgroup.dir().to_str().unwrap().to_string();
    let (trace, attached) = Trace::start(&["--cgroup", &cgroup_dir], &dir);
    assert!(attached.contains(&shell.pid().to_string()), "{attached}");
    writeln!(shell.0.stdin.as_mut().unwrap()).unwrap();
    // The faulter prints READY <pid>, then DONE faults=N when it has written.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("DONE") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the faulter did not finish: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = shell.0.wait();
    let pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("READY "))
        .and_then(|p| p.trim().parse().ok())
        .expect("READY <pid>");
    let written: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("DONE faults="))
        .and_then(|n| n.trim().parse().ok())
        .expect("DONE faults=N");
    let report = trace.finish(true, "fork");
    // Its exact count holds every page it wrote (exec and ld.so add more).
    let faults = event(&report, pid, "faults");
    assert!(
        faults["events"].as_u64().unwrap() >= written,
        "pid {pid} wrote {written} pages: {faults:#}"
    );
}
