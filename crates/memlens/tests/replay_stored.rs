//! `memlens replay` over a history written through the real store with a
//! known leak (the kill time is arithmetic). Real kills recorded by `memlens
//! watch`, replayed and compared with what the agent found live, are in
//! `oom_live.rs`.

use memlens_model::series::{Entity, Labels};
use memlens_store::Store;
use serde_json::Value;

#[path = "common/cli.rs"]
mod cli;
use cli::memlens;

const MIB: f64 = 1048576.0;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("memlens-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
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
    // The first 20 s of a new process are no part of a forecast, then a
    // trend needs 5 buckets of 15 s: critical by t = 100 s.
    assert!(
        kill - fired >= 100_000,
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
