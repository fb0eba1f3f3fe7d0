//! The harness against the real thing: Go workloads built with both toolchains,
//! run inside real memory cgroups, killed by the real OOM killer.

use memlens_testkit::{Exit, GoToolchain, TestCgroup, WorkloadSpec};
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1 << 20;

#[test]
fn workloads_build_and_serve_with_go119_and_go127() {
    for toolchain in GoToolchain::all() {
        let workload = WorkloadSpec::new(&toolchain, "steady")
            .arg("--duration=20s")
            .arg("--live-mib=4")
            .start();
        let info = toolchain.version_m(workload.binary());
        let first_line = info.lines().next().unwrap_or_default();
        assert!(
            first_line.ends_with(&format!(": {}", toolchain.version)),
            "{} built a binary that says {first_line:?}",
            toolchain.name
        );
        assert!(
            info.contains("memlens.dev/workload"),
            "module path missing:\n{info}"
        );
        workload.wait_for_line("READY", Duration::from_secs(20));
        // The debug endpoints answer on the loopback port the workload printed.
        let body = http_get(workload.listen_addr(), "/debug/vars");
        assert!(
            body.contains("\"memstats\""),
            "expvar without memstats: {body:.200}"
        );
        let pprof = http_get(workload.listen_addr(), "/debug/pprof/goroutine?debug=1");
        assert!(
            pprof.starts_with("goroutine profile: total"),
            "{pprof:.200}"
        );
    }
}

#[test]
fn heap_leak_is_oom_killed_in_a_128mib_cgroup() {
    for toolchain in GoToolchain::all() {
        let cgroup = TestCgroup::with_limit(128 * MIB);
        assert_eq!(cgroup.oom_kill_count(), 0, "a fresh cgroup has no kills");
        let mut workload = WorkloadSpec::new(&toolchain, "heap-leak")
            .arg("--leak-kib=4096")
            .arg("--tick=50ms")
            .arg("--duration=120s")
            .start_in(&cgroup);
        assert!(
            cgroup.pids().contains(&workload.pid()),
            "the workload did not join its cgroup"
        );
        let exit = workload.wait_exit(Duration::from_secs(90));
        let retained = last_retained_bytes(&workload.stdout_lines());
        assert_eq!(
            exit,
            Some(Exit::Signal(libc::SIGKILL)),
            "{}: heap-leak should be SIGKILLed by the OOM killer; retained {retained} bytes; stderr tail:\n{}",
            toolchain.name,
            tail(&workload.stderr(), 2000)
        );
        assert_eq!(
            cgroup.oom_kill_count(),
            1,
            "{}: the cgroup counts one OOM kill",
            toolchain.name
        );
        // It died of the leak: it had retained most of the limit by then.
        assert!(
            retained > 64 * MIB,
            "{}: killed after retaining only {retained} bytes",
            toolchain.name
        );
        println!(
            "{}: OOM-killed after retaining {} MiB in a 128 MiB cgroup",
            toolchain.name,
            retained / MIB
        );
    }
}

#[test]
fn steady_survives_a_bounded_run_in_a_128mib_cgroup() {
    for toolchain in GoToolchain::all() {
        let cgroup = TestCgroup::with_limit(128 * MIB);
        let mut workload = WorkloadSpec::new(&toolchain, "steady")
            .arg("--live-mib=32")
            .arg("--duration=8s")
            .env("GODEBUG", "gctrace=1")
            .start_in(&cgroup);
        let exit = workload.wait_exit(Duration::from_secs(60));
        assert_eq!(
            exit,
            Some(Exit::Code(0)),
            "{}: steady should finish its run; stderr tail:\n{}",
            toolchain.name,
            tail(&workload.stderr(), 2000)
        );
        assert_eq!(cgroup.oom_kill_count(), 0);
        workload.wait_for_line("DONE", Duration::from_secs(5));
        // The runtime's own stderr is kept: many GC cycles ran (a sawtooth, not a leak).
        let gc_lines = workload
            .stderr()
            .lines()
            .filter(|l| l.starts_with("gc "))
            .count();
        assert!(
            gc_lines >= 5,
            "{}: only {gc_lines} gctrace lines",
            toolchain.name
        );
    }
}

#[test]
fn dropping_a_cgroup_kills_what_is_inside_and_removes_it() {
    let toolchain = GoToolchain::go119();
    let cgroup = TestCgroup::with_limit(256 * MIB);
    let dir = cgroup.dir().to_path_buf();
    let workload = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=4")
        .arg("--duration=60s")
        .start_in(&cgroup);
    let pid = workload.pid();
    // Forget the handle so only the cgroup's cleanup can stop the process.
    std::mem::forget(workload);
    drop(cgroup);
    assert!(!dir.exists(), "{} still exists", dir.display());
    // The process was killed; reap it (it is our child) and check how it ended.
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );
}

#[test]
fn a_failing_test_still_cleans_up() {
    let toolchain = GoToolchain::go119();
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cgroup = TestCgroup::with_limit(256 * MIB);
        let workload = WorkloadSpec::new(&toolchain, "steady")
            .arg("--live-mib=4")
            .arg("--duration=60s")
            .start_in(&cgroup);
        seen = Some((cgroup.dir().to_path_buf(), workload.pid()));
        panic!("an assertion fails mid-test");
    }));
    assert!(result.is_err());
    let (dir, pid) = seen.expect("the test body ran");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "workload {pid} left running"
    );
}

fn last_retained_bytes(lines: &[String]) -> u64 {
    lines
        .iter()
        .rev()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("retained_bytes="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn http_get(addr: &str, path: &str) -> String {
    memlens_testkit::http_get(addr, path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_child_cgroups_path_is_the_one_its_processes_show() {
    // The kernel's own view: /proc/PID/cgroup of a process placed in a
    // child (its memory line on v1, the unified line on v2).
    let toolchain = GoToolchain::go119();
    let parent = TestCgroup::with_limit(256 * MIB);
    let child = parent.child("inner", None);
    let workload = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=4")
        .arg("--duration=60s")
        .start_in(&child);
    let lines = std::fs::read_to_string(format!("/proc/{}/cgroup", workload.pid())).unwrap();
    let shown: Vec<&str> = lines
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            (controllers.split(',').any(|c| c == "memory") || controllers.is_empty())
                .then_some(path)
        })
        .collect();
    assert!(
        shown.contains(&child.path_in_hierarchy().as_str()),
        "{} not among {shown:?}",
        child.path_in_hierarchy()
    );
    assert!(child
        .path_in_hierarchy()
        .starts_with(&parent.path_in_hierarchy()));
    drop(workload);
}
