//! What `memlens watch` records reads back through `history`, `query` and
//! `profiles`, checked against the agent's own report of what it stored, the
//! workload's own report of what it leaked, and `go tool pprof` on a kept profile.

use memlens_testkit::{ChildGuard, GoToolchain, WorkloadSpec};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::memlens;

#[test]
fn recorded_series_and_profiles_read_back() {
    let toolchain = GoToolchain::go127();
    let workload = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--leak-kib=512")
        .arg("--garbage-kib=1024")
        .arg("--duration=120s")
        .start();
    workload.wait_for_line("TICK", Duration::from_secs(30));
    let pid = workload.pid().to_string();
    let data = std::env::temp_dir().join(format!("memlens-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_str().unwrap().to_string();
    let wait_before_seconds = run_queue_wait_seconds(workload.pid());

    let mut agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--interval", "0.5", "--runtime-interval", "0.5"])
            .args([
                "--profile-interval",
                "1",
                "--pid",
                &pid,
                "--data",
                &data_arg,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );
    // Read the agent's status lines until 12 cycles are stored.
    let mut stored = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(agent.0.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if let Some(ts) = line.split("ts_ms=").nth(1) {
            stored.push(ts.split_whitespace().next().unwrap().to_string());
        }
        if stored.len() >= 12 || Instant::now() > deadline {
            break;
        }
    }
    assert!(stored.len() >= 12, "only {} cycles stored", stored.len());
    // SAFETY: kill has no memory preconditions; the pid is our live child.
    unsafe { libc::kill(agent.pid(), libc::SIGTERM) };
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "clean stop on SIGTERM: {status}");
    let wait_after_seconds = run_queue_wait_seconds(workload.pid());
    let leaked_by_now: u64 = workload
        .stdout_lines()
        .iter()
        .rev()
        .find_map(|l| {
            l.split("retained_bytes=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("the workload reports retained_bytes");

    // history: one rss point per stored cycle, growing with the leak.
    let json: Value = serde_json::from_str(&memlens(&[
        "history", "--data", &data_arg, "--pid", &pid, "--json", "--from", "-1h",
    ]))
    .unwrap();
    let process = &json.as_array().unwrap()[0];
    assert_eq!(process["labels"]["go_version"], "go1.27.3");
    let series = |metric: &str| -> Vec<(i64, f64)> {
        process["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["metric"] == metric)
            .unwrap_or_else(|| panic!("no {metric} in {process}"))["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect()
    };
    let rss = series("rss_bytes");
    let stored_ts: Vec<i64> = stored.iter().map(|t| t.parse().unwrap()).collect();
    let rss_ts: Vec<i64> = rss.iter().map(|p| p.0).collect();
    for ts in &stored_ts {
        assert!(rss_ts.contains(ts), "cycle {ts} has no rss point");
    }
    let heap = series("go_heap_inuse_bytes");
    assert!(!heap.is_empty(), "Go runtime metrics were recorded");
    let last_heap = heap.last().unwrap().1 as u64;
    assert!(
        last_heap <= leaked_by_now + (64 << 20),
        "heap in use {last_heap} vs leaked {leaked_by_now}"
    );
    assert!(
        rss.last().unwrap().1 > rss.first().unwrap().1,
        "RSS grows with the leak"
    );
    // The run-queue wait stored with the runtime's counters: the kernel's
    // sum over the workload's threads, between the test's own reads of it
    // before the agent started and after it stopped, never going back (the
    // workload's threads live as long as it does).
    // `memlens query` as CSV over the agent's history.
    let query_csv = |sql: &str| memlens(&["query", "--data", &data_arg, "--csv", sql]);
    let csv = query_csv(&format!(
        "SELECT s.ts, s.value FROM samples s JOIN entities e ON e.id = s.entity \
         WHERE e.pid = {pid} AND s.metric = 'run_queue_wait_seconds' ORDER BY s.ts"
    ));
    let wait: Vec<(i64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (ts, value) = l.split_once(',').unwrap();
            (ts.parse().unwrap(), value.parse().unwrap())
        })
        .collect();
    assert!(wait.len() >= 2, "{csv}");
    for (i, &(ts, seconds)) in wait.iter().enumerate() {
        assert!(
            (wait_before_seconds..=wait_after_seconds).contains(&seconds),
            "{seconds} s at {ts} outside {wait_before_seconds} ..= {wait_after_seconds}"
        );
        assert!(i == 0 || seconds >= wait[i - 1].1, "{wait:?}");
    }

    // query: the same count through SQL, as CSV.
    let csv = query_csv(&format!(
        "SELECT count(*) FROM samples s JOIN entities e ON e.id = s.entity \
         WHERE e.pid = {pid} AND s.metric = 'rss_bytes'"
    ));
    let count: usize = csv.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(count, rss.len());

    // profiles: a kept heap profile that go tool pprof reads, naming the leak.
    let file = data.join("heap.pb.gz");
    memlens(&[
        "profiles",
        "--data",
        &data_arg,
        "--pid",
        &pid,
        "--kind",
        "heap",
        "--at",
        "now",
        "-o",
        file.to_str().unwrap(),
    ]);
    let top = Command::new(&toolchain.go_binary)
        .env("GOTOOLCHAIN", "local")
        .args(["tool", "pprof", "-top", "-sample_index=inuse_space"])
        .arg(&file)
        .output()
        .expect("go tool pprof");
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert!(
        text.contains("main.newChunk") || text.contains("main.retainLeakChunk"),
        "{text}"
    );
    std::fs::remove_dir_all(&data).ok();
}

/// The run-queue wait of `pid`'s threads, summed (seconds): the second
/// field of each `/proc/PID/task/TID/schedstat`.
fn run_queue_wait_seconds(pid: i32) -> f64 {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the workload's threads") {
        let text = std::fs::read_to_string(task.unwrap().path().join("schedstat"))
            .expect("a thread's schedstat");
        total_ns += text
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("schedstat {text:?}"));
    }
    total_ns as f64 / 1e9
}
