//! `memlens diagnose` taking the start of its window from the agent's
//! history (issue 8): Go 1.27 workloads, each in its own memory cgroup,
//! recorded by a real `memlens watch` into a temporary store, then diagnosed
//! at once — no live window — against sources memlens does not use:
//!
//! - `goroutine-leak` leaking goroutines in batches → `go.goroutine_leak`
//!   naming main.leakyWorker / main.leakyWorkerSpawner; the goroutine counts
//!   bracket the workload's own `GOROUTINES_LEAKED` reports around the call.
//! - `fd-leak` with its open-file limits lowered by `prlimit` → a critical
//!   `fd.exhaustion` forecast; the limit is `prlimit`'s, the count at the end
//!   brackets `/proc/PID/fd` counted by the test, the rate agrees with the
//!   test's own count over the recording.
//! - the report says `window_source: "history"` and a window longer than any
//!   live default, and answers within a few seconds; `--no-history
//!   --window 2` observes live.
//! - an explicit `--store` that does not exist fails with one line naming it.

use memlens_testkit::{ChildGuard, GoToolchain, TestCgroup, Workload, WorkloadSpec};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::{evidence, history_ready, memlens, memlens_json};

const FD_LIMIT: u64 = 300;

fn fd_count(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count() as u64
}

/// The workload's last `GOROUTINES_LEAKED <n>`.
fn leaked_so_far(w: &Workload) -> u64 {
    w.stdout_lines()
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("GOROUTINES_LEAKED ")?.trim().parse().ok())
        .expect("the workload reports GOROUTINES_LEAKED")
}

/// Seconds between the first and last stored `threads` sample of `pid`,
/// read through `memlens query`.
fn stored_span_seconds(data: &str, pid: i32) -> f64 {
    let csv = memlens(&[
        "query",
        "--data",
        data,
        "--csv",
        &format!(
            "SELECT coalesce(max(s.ts) - min(s.ts), 0) FROM samples s \
             JOIN entities e ON e.id = s.entity WHERE e.pid = {pid} AND s.metric = 'threads'"
        ),
    ]);
    csv.lines()
        .nth(1)
        .and_then(|l| l.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1000.0
}

/// Goroutine profiles of `pid` in the store.
fn stored_goroutine_profiles(data: &str, pid: i32) -> usize {
    let json = memlens_json(&[
        "profiles",
        "--data",
        data,
        "--pid",
        &pid.to_string(),
        "--kind",
        "goroutine",
        "--json",
    ]);
    json.as_array().map_or(0, Vec::len)
}

fn section<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no section {name} in {report:#}"))
}

fn finding_of<'a>(report: &'a Value, id: &str, pid: i32) -> &'a Value {
    let key = format!("process:{pid}:");
    report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(|s| s["findings"].as_array().into_iter().flatten())
        .find(|f| {
            f["id"] == id
                && f["target"]["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&key))
        })
        .unwrap_or_else(|| panic!("no {id} finding for {pid} in {report:#}"))
}

#[test]
fn diagnose_takes_its_window_from_the_agents_history() {
    let toolchain = GoToolchain::go127();
    let leak_cgroup = TestCgroup::with_limit(512 << 20);
    let leak = WorkloadSpec::new(&toolchain, "goroutine-leak")
        .arg("--goroutines=100000")
        .arg("--goroutine-rate=20")
        .arg("--tick=1s")
        .arg("--duration=300s")
        .start_in(&leak_cgroup);
    let fd_cgroup = TestCgroup::with_limit(512 << 20);
    let fds = WorkloadSpec::new(&toolchain, "fd-leak")
        .arg("--fds=100000")
        .arg("--fd-rate=2")
        .arg("--tick=1s")
        .arg("--setup-after=500ms")
        .arg("--duration=300s")
        .start_in(&fd_cgroup);
    fds.wait_for_line("READY", Duration::from_secs(30));
    // The Go runtime raised the soft limit to the hard one at start: lower both.
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &fds.pid().to_string(),
            &format!("--nofile={FD_LIMIT}:{FD_LIMIT}"),
        ])
        .status()
        .expect("run prlimit (package util-linux)");
    assert!(status.success(), "prlimit: {status}");
    fds.wait_for_line("FDS_OPEN", Duration::from_secs(30));
    leak.wait_for_line("GOROUTINES_LEAKED", Duration::from_secs(30));
    let (leak_pid, fd_pid) = (leak.pid(), fds.pid());

    let data = std::env::temp_dir().join(format!("memlens-diag-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_str().unwrap().to_string();
    let fds_at_agent_start = fd_count(fd_pid);
    let leaked_at_agent_start = leaked_so_far(&leak);
    let agent_started = Instant::now();
    let mut agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--interval", "1", "--runtime-interval", "1"])
            .args(["--profile-interval", "4", "--data", &data_arg])
            .args(["--pid", &leak_pid.to_string(), "--pid", &fd_pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );
    // Wait until the store holds 20 s of both and two goroutine profiles.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = history_ready(&data_arg)
            && stored_span_seconds(&data_arg, leak_pid) >= 20.0
            && stored_span_seconds(&data_arg, fd_pid) >= 20.0
            && stored_goroutine_profiles(&data_arg, leak_pid) >= 2;
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not store 20 s of samples and 2 profiles in 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let leaked_before = leaked_so_far(&leak);
    let started = Instant::now();
    let report = memlens_json(&[
        "diagnose",
        "--pid",
        &leak_pid.to_string(),
        "--pid",
        &fd_pid.to_string(),
        "--store",
        &data_arg,
        "--json",
    ]);
    let took = started.elapsed().as_secs_f64();
    let fds_after = fd_count(fd_pid);
    let recorded_seconds = agent_started.elapsed().as_secs_f64();
    // Let the workload report the batch that may have been under way.
    leak.wait_for_line(
        &format!("GOROUTINES_LEAKED {}", leaked_so_far(&leak) + 20),
        Duration::from_secs(10),
    );
    let leaked_after = leaked_so_far(&leak);

    assert_eq!(report["window_source"], "history", "{report:#}");
    assert_eq!(report["store_dir"], data_arg.as_str());
    let window = report["window_seconds"].as_f64().unwrap();
    assert!(window >= 15.0, "window {window} s: not from the history");
    assert!(took < 8.0, "diagnose took {took:.1} s: it must not wait");
    let windows = report["process_windows"]
        .as_array()
        .expect("process_windows");
    for pid in [leak_pid, fd_pid] {
        let w = windows
            .iter()
            .find(|w| w["pid"] == pid)
            .unwrap_or_else(|| panic!("no window of {pid}: {windows:#?}"));
        let s = w["window_seconds"].as_f64().unwrap();
        assert!(
            s >= 15.0 && s <= recorded_seconds + 1.0,
            "window of {pid}: {s} s, the agent recorded {recorded_seconds:.1} s"
        );
    }

    // The goroutine leak, by name, its counts bracketed by the workload's own.
    let f = finding_of(&report, "go.goroutine_leak", leak_pid);
    let row = section(&report, "goroutine_leak")["data"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == leak_pid)
        .expect("a goroutine row")
        .clone();
    assert!(row["window_seconds"].as_f64().unwrap() >= 15.0, "{row:#}");
    let site = row["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["blocking_function"] == "main.leakyWorker")
        .unwrap_or_else(|| panic!("no main.leakyWorker site: {row:#}"))
        .clone();
    assert_eq!(
        site["creation_function"], "main.leakyWorkerSpawner",
        "{site:#}"
    );
    assert!(
        ["growing", "proven_growing"].contains(&site["verdict"].as_str().unwrap()),
        "{site:#}"
    );
    let (start, end) = (
        site["blocked_start"].as_u64().unwrap(),
        site["blocked_end"].as_u64().unwrap(),
    );
    assert!(
        leaked_before <= end && end <= leaked_after,
        "memlens {end} blocked at the end, the workload leaked {leaked_before}..{leaked_after}"
    );
    // The start is the first stored profile, taken after the agent started.
    assert!(
        start >= leaked_at_agent_start && start < end,
        "memlens {start} blocked at the start, the workload had leaked {leaked_at_agent_start} \
         when the agent started"
    );
    // 20 a second over at least 15 s.
    assert!(end >= start + 15 * 20 - 40, "growth {start} → {end}");
    assert!(evidence(f, "leaking_goroutines") >= end as f64, "{f:#}");

    // The fd exhaustion forecast against prlimit's limit and /proc's counts.
    let f = finding_of(&report, "fd.exhaustion", fd_pid);
    assert_eq!(evidence(f, "fd_soft_limit"), FD_LIMIT as f64);
    let (fds_start, fds_end) = (evidence(f, "fds_start"), evidence(f, "fds"));
    assert!(
        fds_at_agent_start as f64 <= fds_start
            && fds_start < fds_end
            && fds_end <= fds_after as f64 + 4.0,
        "/proc {fds_at_agent_start}..{fds_after}, memlens {fds_start}..{fds_end}"
    );
    // Why these bounds hold on a loaded 2-core machine: the fd-leak and
    // goroutine-leak batches are paced by the wall clock (workloads/pacer.go:
    // a batch due while the workload was held up comes at once), so the rates
    // are 2 files and 20 goroutines per second whatever CPU the workloads get;
    // load moves only when the reads land, by a batch or two.
    let rate = evidence(f, "fds_per_second");
    let test_rate = (fds_after - fds_at_agent_start) as f64 / recorded_seconds;
    assert!(
        rate > 0.6 * test_rate && rate < 1.6 * test_rate,
        "memlens {rate:.2} fds/s, /proc {test_rate:.2} fds/s"
    );
    let left = evidence(f, "time_left_seconds");
    let expected_left = (FD_LIMIT - fds_after) as f64 / test_rate;
    assert!(
        (left - expected_left).abs() <= 0.5 * expected_left + 5.0,
        "{left:.0} s left by memlens, {expected_left:.0} s by /proc"
    );
    println!(
        "history window {window:.1} s, diagnose took {took:.2} s; goroutines {start} → {end} \
         (workload: {leaked_before}..{leaked_after}); fds {fds_start}..{fds_end} at {rate:.2}/s \
         (/proc {test_rate:.2}/s), {left:.0} s left"
    );

    // --no-history observes live, for --window.
    let live = memlens_json(&[
        "diagnose",
        "--pid",
        &leak_pid.to_string(),
        "--store",
        &data_arg,
        "--no-history",
        "--window",
        "2",
        "--json",
    ]);
    assert_eq!(live["window_source"], "live", "{live:#}");
    let w = live["window_seconds"].as_f64().unwrap();
    assert!((1.9..6.0).contains(&w), "live window {w} s");

    agent.kill();
    std::fs::remove_dir_all(&data).ok();
}

/// diagnose and advise: an explicit `--store` that holds no history is an
/// error naming it (one line, nothing on stdout).
#[test]
fn a_missing_explicit_store_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("memlens-no-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for command in ["diagnose", "advise"] {
        let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args([command, "--pid", &std::process::id().to_string()])
            .args(["--store", dir.to_str().unwrap(), "--json"])
            .output()
            .expect("run memlens");
        assert_eq!(out.status.code(), Some(1), "{command}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains(dir.to_str().unwrap()),
            "{command}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{command}: {out:?}");
    }
}
