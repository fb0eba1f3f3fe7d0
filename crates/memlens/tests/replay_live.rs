//! `memlens replay` over histories: one written through the real store with
//! a known leak (the kill time is arithmetic), and one recorded by `memlens
//! watch` of the real heap-leak workload OOM-killed in a 256 MiB cgroup
//! (the kill time is the kernel's). Prints lead time and error.

use memlens_model::series::{Entity, Labels};
use memlens_store::Store;
use memlens_testkit::{ChildGuard, GoToolchain, TestCgroup, WorkloadSpec};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MIB: f64 = 1048576.0;

fn memlens(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(args)
        .output()
        .expect("run memlens");
    assert!(
        out.status.success(),
        "memlens {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("memlens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The first critical time-to-OOM finding in `memlens replay --json`.
fn first_critical(findings: &Value) -> Option<&Value> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "memory.time_to_oom" && f["severity"] == "critical")
        .min_by_key(|f| f["fired_at_ms"].as_i64().unwrap())
}

fn evidence(finding: &Value, name: &str) -> f64 {
    finding["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {finding}"))["value"]
        .as_f64()
        .unwrap()
}

#[test]
fn replay_of_a_stored_leak_fires_before_the_kill_and_clears_when_the_process_is_gone() {
    let data = temp_dir("replay-stored");
    let t0: i64 = 1_795_000_000_000;
    let process = Entity::Process {
        pid: 4242,
        start_time: 777,
    };
    let cgroup = Entity::Cgroup {
        path: "/leaky".to_string(),
    };
    {
        let mut store = Store::open(&data).unwrap();
        let mut labels = Labels::new();
        labels.insert("comm", "leaky".to_string());
        labels.insert("cgroup", "/leaky".to_string());
        let p = store.entity(&process, &labels).unwrap();
        let c = store.entity(&cgroup, &Labels::new()).unwrap();
        let rss = store.series_id(p, "rss_bytes").unwrap();
        let usage = store.series_id(c, "usage_bytes").unwrap();
        let limit = store.series_id(c, "effective_limit_bytes").unwrap();
        // 56 MiB + 1 MiB/s; the kill at 256 MiB comes at t = 200 s. After it
        // the cgroup is empty for two more minutes.
        for i in 0..64 {
            let t = i * 5;
            let ts = t0 + t * 1000;
            if t < 200 {
                let r = 56.0 * MIB + MIB * t as f64;
                store
                    .append(ts, &[(rss, r), (usage, r), (limit, 256.0 * MIB)])
                    .unwrap();
            } else {
                store
                    .append(ts, &[(usage, 1.0 * MIB), (limit, 256.0 * MIB)])
                    .unwrap();
            }
            store.commit().unwrap();
        }
        store.flush().unwrap();
    }
    let dir = data.to_str().unwrap();
    let json: Value = serde_json::from_str(&memlens(&["replay", "--data", dir, "--json"])).unwrap();
    let critical = json
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["id"] == "memory.time_to_oom"
                && f["severity"] == "critical"
                && f["target"]["kind"] == "process"
        })
        .unwrap_or_else(|| panic!("no critical for the process: {json:#}"));
    assert_eq!(critical["target"]["pid"], 4242);
    assert_eq!(critical["target"]["comm"], "leaky");
    let fired = critical["fired_at_ms"].as_i64().unwrap();
    let kill = t0 + 200_000;
    assert!(
        kill - fired >= 120_000,
        "fired {} s before",
        (kill - fired) / 1000
    );
    let predicted = evidence(critical, "predicted_kill_at_ms") as i64;
    assert!(
        (predicted - kill).abs() <= 5_000,
        "predicted {predicted} vs {kill}"
    );
    // Cleared once the process is gone for the forget delay (60 s).
    let cleared = critical["cleared_at_ms"].as_i64().expect("cleared");
    assert!(
        (kill + 60_000..=kill + 70_000).contains(&cleared),
        "cleared at {cleared}"
    );
    assert!(critical["fired_at"].as_str().unwrap().ends_with('Z'));
    let text = memlens(&["replay", "--data", dir]);
    assert!(
        text.contains("FIRED") && text.contains("CLEARED") && text.contains("memory.time_to_oom"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The real thing at the agent's default interval: Go 1.27 heap-leak in a
/// 256 MiB cgroup, leaking 48 KiB per 100 ms tick (its RSS, which follows
/// the GC goal of twice the live heap, reaches the limit in about four
/// minutes), recorded by `memlens watch`, then replayed.
#[test]
fn replay_of_a_real_oom_kill_recorded_by_watch() {
    let toolchain = GoToolchain::go127();
    let cgroup = TestCgroup::with_limit(256 << 20);
    let workload = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--leak-kib=48")
        .arg("--garbage-kib=1024")
        .arg("--duration=0")
        .start_in(&cgroup);
    let pid = workload.pid().to_string();
    let data = temp_dir("replay-live");
    let data_arg = data.to_str().unwrap().to_string();
    let mut agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--pid", &pid, "--data", &data_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );
    workload.wait_for_line("LEAK_START", Duration::from_secs(30));
    let leak_start_ms = now_ms();
    // Wait for the kernel's kill (deadline: 8 minutes).
    let deadline = Instant::now() + Duration::from_secs(480);
    let kill_ms = loop {
        if cgroup.oom_kill_count() > 0 {
            break now_ms();
        }
        assert!(
            Instant::now() < deadline,
            "no OOM kill within 8 min (usage {} bytes)",
            cgroup.usage_bytes()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Every cycle is committed when the agent reports it: the history holds
    // all samples up to the kill. (`watch --pid` of a dead process stores
    // nothing more.)
    // SAFETY: kill has no memory preconditions; the pid is our live child.
    unsafe { libc::kill(agent.pid(), libc::SIGTERM) };
    let _ = agent.0.wait();
    drop(workload);

    let json: Value =
        serde_json::from_str(&memlens(&["replay", "--data", &data_arg, "--json"])).unwrap();
    let critical = first_critical(&json)
        .unwrap_or_else(|| panic!("no critical time-to-OOM finding: {json:#}"));
    let fired = critical["fired_at_ms"].as_i64().unwrap();
    let predicted = evidence(critical, "predicted_kill_at_ms") as i64;
    let leak_ms = kill_ms - leak_start_ms;
    let lead_ms = kill_ms - fired;
    let error = (predicted - kill_ms).abs() as f64 / lead_ms.max(1) as f64;
    println!(
        "real OOM kill (Go 1.27, 256 MiB): leak {:.0} s, critical on {} {:.0} s before the kill \
         ({:.0}% of the leak), predicted kill {:+.0} s off (error {:.1}% of the time left)",
        leak_ms as f64 / 1000.0,
        critical["target"]["kind"],
        lead_ms as f64 / 1000.0,
        lead_ms as f64 / leak_ms as f64 * 100.0,
        (predicted - kill_ms) as f64 / 1000.0,
        error * 100.0
    );
    let noisy: Vec<&Value> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["fired_at_ms"].as_i64().unwrap() < leak_start_ms)
        .collect();
    assert!(noisy.is_empty(), "findings before the leak: {noisy:#?}");
    assert!(
        lead_ms as f64 >= 0.6 * leak_ms as f64,
        "lead {lead_ms} ms of {leak_ms}"
    );
    assert!(error <= 0.25, "error {error}");
    let _ = std::fs::remove_dir_all(&data);
}
