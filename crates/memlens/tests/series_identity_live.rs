//! Bounded cardinality, counted by a real VictoriaMetrics through its own
//! series API: two agents watch the same cgroups and push to it, one with
//! the default labels (and two relabel rules), one with `--pid-label`.
//!
//! - A Go workload restarted 20 times in one cgroup: the default agent's
//!   series of it are one identity (one series per metric name); the pid
//!   agent's are 20 incarnations apart.
//! - Two workloads of the same name in one cgroup, both alive: two RSS
//!   series (`instance_index` absent and `1`), each with its own process's
//!   VmRSS, never merged.
//! - A rule dropping `memlens_process_oom_score_adj` and one renaming
//!   `go_version` to `go` take effect at the receiver and on `/metrics`.
//! - The default agent's `new_series_total` (its state file) equals the
//!   series the receiver holds of it.

use memlens_testkit::{
    free_loopback_port, http_get, wait_for, ChildGuard, GoToolchain, TempDir, TestCgroup, Workload,
    WorkloadSpec,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RESTARTS: usize = 20;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The value of the first sample of `name` whose line contains every one
/// of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn vm_rss_bytes(pid: i32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024.0
}

struct Agent {
    child: ChildGuard,
    addr: String,
    data: String,
}

impl Agent {
    fn start(dir: &TempDir, name: &str, config: &str, cgroup: &str, extra: &[&str]) -> Agent {
        let config_file = dir.file(&format!("{name}.toml"));
        std::fs::write(&config_file, config).unwrap();
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let data = dir.file(&format!("data-{name}"));
        let child = ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_memlens"))
                .args(["watch", "--quiet", "--no-profiles", "--interval", "0.5"])
                .args(["--config", &config_file, "--data", &data, "--listen", &addr])
                .args(["--cgroup", cgroup])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start memlens watch"),
        );
        wait_for("the agent's /metrics", Duration::from_secs(30), || {
            http_get(&addr, "/metrics").ok()
        });
        Agent { child, addr, data }
    }

    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics").unwrap_or_default()
    }

    /// `memlens_agent_cycles_total`: cycles finished.
    fn cycles(&self) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("memlens_agent_cycles_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// SIGTERM (the last cycles are flushed to the receiver) and the exit.
    fn stop(mut self) -> String {
        // SAFETY: kill has no memory preconditions; the pid is our child.
        unsafe { libc::kill(self.child.pid(), libc::SIGTERM) };
        let status = wait_for("the agent to exit", Duration::from_secs(60), || {
            self.child.0.try_wait().unwrap()
        });
        assert!(status.success(), "memlens watch failed: {status}");
        self.data.clone()
    }
}

/// The sender's state file of the only remote-write URL.
fn state(data: &str) -> Value {
    let path = std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("remote_write-") && name.ends_with(".json")
        })
        .expect("a remote_write state file");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The label sets of every series VictoriaMetrics holds matching `selector`
/// since `start_ms` (its /api/v1/series).
fn vm_series(vm: &str, selector: &str, start_ms: i64) -> Vec<BTreeMap<String, String>> {
    let encoded: String = selector
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = http_get(
        vm,
        &format!(
            "/api/v1/series?match%5B%5D={encoded}&start={}",
            start_ms / 1000 - 60
        ),
    )
    .unwrap_or_default();
    let Ok(json) = serde_json::from_str::<Value>(&body) else {
        return Vec::new();
    };
    json["data"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|s| {
                    s.as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn workload(live_mib: u32, cgroup: &TestCgroup) -> Workload {
    let w = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg(format!("--live-mib={live_mib}"))
        .arg("--alloc-mib-per-tick=1")
        .arg("--duration=300s")
        .start_in(cgroup);
    w.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
    w
}

#[test]
fn restarts_keep_one_identity_pids_opt_in_collisions_stay_apart_and_relabel_rules_apply() {
    let vm_binary = std::path::Path::new("/usr/bin/victoria-metrics");
    assert!(
        vm_binary.exists(),
        "/usr/bin/victoria-metrics missing: install the Debian package victoria-metrics"
    );
    let dir = TempDir::new("series-identity");
    let vm = format!("127.0.0.1:{}", free_loopback_port());
    let _vm = ChildGuard(
        Command::new(vm_binary)
            .arg(format!("-httpListenAddr={vm}"))
            .arg(format!("-storageDataPath={}", dir.file("vmdata")))
            .arg("-retentionPeriod=1d")
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics"),
    );
    wait_for("VictoriaMetrics", Duration::from_secs(60), || {
        http_get(&vm, "/health").ok().filter(|b| b.trim() == "OK")
    });
    let start_ms = now_ms();
    let parent = TestCgroup::with_limit(2 << 30);
    let restarted = parent.child("restarted", None);
    let pair = parent.child("pair", None);
    let url = format!("http://{vm}/api/v1/write");
    let default_config = format!(
        "[series]\n\
         [[series.relabel]]\nsource_labels = [\"__name__\"]\nregex = \"memlens_process_oom_score_adj\"\naction = \"drop\"\n\
         [[series.relabel]]\nsource_labels = [\"go_version\"]\nregex = \"(.+)\"\ntarget_label = \"go\"\n\
         [[series.relabel]]\nregex = \"go_version\"\naction = \"labeldrop\"\n\
         [[remote_write]]\nurl = \"{url}\"\nextra_labels = {{ agent = \"default\" }}\n"
    );
    let pid_config =
        format!("[[remote_write]]\nurl = \"{url}\"\nextra_labels = {{ agent = \"pids\" }}\n");
    let watched = parent.path_in_hierarchy();
    let default_agent = Agent::start(&dir, "default", &default_config, &watched, &[]);
    let pid_agent = Agent::start(&dir, "pids", &pid_config, &watched, &["--pid-label"]);

    // 20 incarnations, one after the other, each sampled by both agents.
    let mut pids = Vec::new();
    let mut comm = String::new();
    let restarts_started = Instant::now();
    for _ in 0..RESTARTS {
        let mut w = workload(4, &restarted);
        let pid = w.pid();
        comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim_end()
            .to_string();
        let first = default_agent.cycles();
        let pid_label = format!("pid=\"{pid}\"");
        wait_for(
            "the pid agent to show the incarnation",
            Duration::from_secs(30),
            || {
                sample(
                    &pid_agent.metrics(),
                    "memlens_process_resident_memory_bytes",
                    &[&pid_label],
                )
            },
        );
        // Two more finished cycles: the second began after the spawn.
        wait_for(
            "two cycles of the default agent",
            Duration::from_secs(30),
            || (default_agent.cycles() >= first + 2.0).then_some(()),
        );
        w.kill();
        pids.push(pid);
    }
    println!(
        "{RESTARTS} incarnations of {comm} in {:.1} s",
        restarts_started.elapsed().as_secs_f64()
    );

    // Two of the same name in one cgroup, both alive: the older (larger)
    // takes index 0, the younger 1.
    let big = workload(96, &pair);
    let small = workload(8, &pair);
    let pair_path = pair.path_in_hierarchy();
    let cgroup_label = format!("cgroup=\"{pair_path}\"");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let found = (|| {
            let before = (vm_rss_bytes(big.pid()), vm_rss_bytes(small.pid()));
            let text = default_agent.metrics();
            let after = (vm_rss_bytes(big.pid()), vm_rss_bytes(small.pid()));
            let rss = "memlens_process_resident_memory_bytes";
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{rss}{{")) && l.contains(&cgroup_label))
                .collect();
            let all: Vec<&str> = text.lines().filter(|l| l.starts_with(rss)).collect();
            seen = format!("{lines:#?} VmRSS before {before:?} after {after:?}; all: {all:#?}");
            let first = lines.iter().find(|l| !l.contains("instance_index="))?;
            let second = lines.iter().find(|l| l.contains("instance_index=\"1\""))?;
            let value = |l: &str| l.rsplit(' ').next()?.parse::<f64>().ok();
            // Bracketed by VmRSS before and after the scrape, 10 % slack
            // for the agent's cycle being up to 0.5 s older than both.
            let within = |v: f64, (a, b): (f64, f64)| v >= a.min(b) * 0.9 && v <= a.max(b) * 1.1;
            (lines.len() == 2
                && within(value(first)?, (before.0, after.0))
                && within(value(second)?, (before.1, after.1)))
            .then_some(text)
        })();
        if let Some(text) = found {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics never showed each of the pair with its own VmRSS: {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!text.contains("pid=\""), "a pid label by default: {text}");
    assert!(
        !text.contains("memlens_process_oom_score_adj{"),
        "the drop rule did not apply to /metrics"
    );
    assert!(
        text.contains(",go=\"go1."),
        "go_version not renamed to go: {text}"
    );
    assert!(!text.contains("go_version="), "go_version left: {text}");
    // What the agent sent to the URL, counted on /metrics.
    let url_label = format!("url=\"{url}\"");
    for name in [
        "memlens_remote_write_series_sent_total",
        "memlens_remote_write_new_series_total",
        "memlens_remote_write_samples_sent_total",
        "memlens_remote_write_sent_bytes_total",
    ] {
        let value = sample(&text, name, &[&url_label]);
        assert!(value.is_some_and(|v| v > 0.0), "{name}: {value:?}");
    }
    // Both agents sample the pair a little longer, then flush and stop.
    let last = default_agent.cycles();
    wait_for("two more cycles", Duration::from_secs(30), || {
        (default_agent.cycles() >= last + 2.0).then_some(())
    });
    let default_data = default_agent.stop();
    let pid_data = pid_agent.stop();
    drop((big, small));

    // What the default agent counted as new series is what the receiver
    // holds of it (everything it sent went to a fresh receiver).
    let counted = state(&default_data)["new_series_total"].as_u64().unwrap();
    let held = wait_for(
        "VictoriaMetrics to list the default agent's series",
        Duration::from_secs(30),
        || {
            let n = vm_series(&vm, "{agent=\"default\"}", start_ms).len() as u64;
            (n == counted).then_some(n)
        },
    );
    // The receiver: what the default agent made of the 20 incarnations.
    let restarted_path = restarted.path_in_hierarchy();
    let of_restarts = |agent: &str| {
        let selector = format!(
            "{{__name__=~\"memlens_(process|go)_.*\",agent=\"{agent}\",cgroup=\"{restarted_path}\"}}"
        );
        vm_series(&vm, &selector, start_ms)
    };
    let pid_series = wait_for(
        "VictoriaMetrics to list every incarnation of the pid agent",
        Duration::from_secs(60),
        || {
            let series = of_restarts("pids");
            let seen: BTreeSet<String> = series
                .iter()
                .filter(|s| s["__name__"] == "memlens_process_resident_memory_bytes")
                .filter_map(|s| s.get("pid").cloned())
                .collect();
            (seen.len() == RESTARTS).then_some(series)
        },
    );
    let pids_seen: BTreeSet<String> = pid_series
        .iter()
        .filter_map(|s| s.get("pid").cloned())
        .collect();
    let pids_spawned: BTreeSet<String> = pids.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        pids_seen, pids_spawned,
        "pid agent: one set of series per incarnation"
    );
    let names = |series: &[BTreeMap<String, String>]| -> BTreeSet<String> {
        series.iter().map(|s| s["__name__"].clone()).collect()
    };
    // A restart the agent caught between the test's fork and its exec (the
    // child joins the cgroup before it execs; seen once, at load 10) still
    // bears the forking thread's name: a process image that is not the
    // workload yet, so not one of its identities. Any other name counts.
    let forking_comm = std::fs::read_to_string("/proc/thread-self/comm")
        .expect("this thread's comm")
        .trim_end()
        .to_string();
    let (pre_exec, default_series): (Vec<_>, Vec<_>) = of_restarts("default")
        .into_iter()
        .partition(|s| s.get("comm") == Some(&forking_comm));
    if !pre_exec.is_empty() {
        println!(
            "{} series of a restart caught before its exec (comm {forking_comm})",
            pre_exec.len()
        );
    }
    let identities: BTreeSet<Vec<(String, String)>> = default_series
        .iter()
        .map(|s| {
            // Process series also carry the build's Go version (renamed
            // `go` here), Go runtime series do not: the identity is the rest.
            s.iter()
                .filter(|(k, _)| *k != "__name__" && *k != "go")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect();
    println!(
        "series of the restarted workload at the receiver: default {} ({} identity), \
         pid labels {} ({} incarnations); metric names: default {}, pid labels {}",
        default_series.len(),
        identities.len(),
        pid_series.len(),
        pids_seen.len(),
        names(&default_series).len(),
        names(&pid_series).len()
    );
    // The bound: one identity (comm, cgroup, service, go, agent), so at
    // most one series per metric name, and no more names than the
    // incarnations had with pid labels (minus the one the rule drops).
    assert_eq!(identities.len(), 1, "default agent: {identities:#?}");
    assert_eq!(default_series.len(), names(&default_series).len());
    assert!(
        default_series.len() < names(&pid_series).len(),
        "default {} vs one incarnation's names {}",
        default_series.len(),
        names(&pid_series).len()
    );
    assert!(pid_series.len() >= RESTARTS * default_series.len() / 2);
    let identity = identities.iter().next().unwrap();
    let get = |k: &str| {
        identity
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("comm"), Some(comm.as_str()));
    assert_eq!(get("service"), Some(restarted_path.as_str()));
    assert!(default_series
        .iter()
        .filter(|s| s["__name__"].starts_with("memlens_process_"))
        .all(|s| s.get("go").is_some_and(|v| v.starts_with("go1."))));
    assert_eq!(get("go_version"), None);
    assert_eq!(get("pid"), None);

    // The relabel rules at the receiver: the dropped family exists in the
    // pid agent's series and not in the default agent's.
    let dropped = "memlens_process_oom_score_adj";
    assert!(
        names(&pid_series).contains(dropped),
        "{:?}",
        names(&pid_series)
    );
    assert!(!names(&default_series).contains(dropped));
    assert!(pid_series
        .iter()
        .all(|s| s.contains_key("go_version") || !s["__name__"].starts_with("memlens_process_")));

    // The pair at the receiver: two RSS series, one per process.
    let pair_rss = vm_series(
        &vm,
        &format!(
            "memlens_process_resident_memory_bytes{{agent=\"default\",cgroup=\"{pair_path}\"}}"
        ),
        start_ms,
    );
    let indexes: BTreeSet<Option<String>> = pair_rss
        .iter()
        .map(|s| s.get("instance_index").cloned())
        .collect();
    assert_eq!(
        indexes,
        BTreeSet::from([None, Some("1".to_string())]),
        "{pair_rss:#?}"
    );

    let pid_counted = state(&pid_data)["new_series_total"].as_u64().unwrap();
    println!(
        "new_series_total: default {counted} (receiver holds {held}), pid labels {pid_counted}; \
         bytes sent: default {}, pid labels {}",
        state(&default_data)["sent_bytes_total"],
        state(&pid_data)["sent_bytes_total"]
    );
    assert!(pid_counted > counted);
}
