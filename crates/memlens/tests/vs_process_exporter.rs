//! `snapshot --json` against Debian's `prometheus-process-exporter` reading the
//! same process: memlens's value must lie between the exporter's readings
//! taken just before and just after it.
//!
//! Widening: none for what both read the same way (threads, open files,
//! virtual size, swap, major faults, PSS from `smaps_rollup`). Resident size
//! only: process-exporter takes it from `/proc/PID/stat`, whose RSS may be
//! off from `VmRSS` by what the kernel's per-CPU counters hold unsummed
//! (common/stat_rss.rs).

use memlens_testkit::{free_loopback_port, http_get, GoToolchain, WorkloadSpec};
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/stat_rss.rs"]
mod stat_rss;
use stat_rss::stat_rss_slack_bytes;

const EXPORTER: &str = "/usr/bin/prometheus-process-exporter";

/// A process-exporter that tracks one pid as group `target`, stopped on drop.
struct Exporter {
    child: Child,
    addr: String,
    config: std::path::PathBuf,
}

impl Exporter {
    /// Tracks the one process whose command line has `marker` (other
    /// `workload` processes may run on the host at the same time).
    fn start(marker: &str) -> Exporter {
        assert!(
            std::path::Path::new(EXPORTER).exists(),
            "{EXPORTER} is missing: ./scripts/test.sh installs prometheus-process-exporter"
        );
        let config = std::env::temp_dir().join(format!("memlens-pe-{}.yml", std::process::id()));
        std::fs::write(
            &config,
            format!("process_names:\n  - name: target\n    cmdline:\n    - '{marker}'\n"),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let child = Command::new(EXPORTER)
            .arg(format!("-config.path={}", config.display()))
            .arg(format!("-web.listen-address={addr}"))
            .arg("-threads=false")
            .arg("-gather-smaps=true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start process-exporter");
        Exporter {
            child,
            addr,
            config,
        }
    }

    /// The `namedprocess_namegroup_*` samples of group `target`, once it reports one process.
    fn scrape(&self) -> HashMap<String, f64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(body) = http_get(&self.addr, "/metrics") {
                let samples = group_samples(&body);
                if samples.get("num_procs") == Some(&1.0) {
                    return samples;
                }
            }
            assert!(
                Instant::now() < deadline,
                "process-exporter never reported the target"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// `namedprocess_namegroup_NAME{groupname="target",memtype="X"} V` → `NAME:X` (or `NAME`) → V.
fn group_samples(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("namedprocess_namegroup_") else {
            continue;
        };
        let Some((series, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        if !series.contains("groupname=\"target\"") {
            continue;
        }
        let name = series.split('{').next().unwrap_or_default();
        let kind = ["memtype", "mode"].iter().find_map(|label| {
            let start = series.find(&format!("{label}=\""))? + label.len() + 2;
            Some(series[start..].split('"').next()?.to_string())
        });
        let key = match kind {
            Some(kind) => format!("{name}:{kind}"),
            None => name.to_string(),
        };
        if let Ok(value) = value.parse() {
            out.insert(key, value);
        }
    }
    out
}

#[test]
fn snapshot_agrees_with_process_exporter() {
    let toolchain = GoToolchain::go127();
    // A seed only this test uses marks the process for process-exporter.
    let seed = format!("--seed={}", 1_000_000 + std::process::id());
    let workload = WorkloadSpec::new(&toolchain, "fd-leak")
        .arg(seed.clone())
        .arg("--fds=37")
        .arg("--duration=60s")
        .start();
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(20));
    let exporter = Exporter::start(&format!("{seed}( |$)"));
    let snapshot = || -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["snapshot", "--json", "--smaps", "always", "--pid"])
            .arg(workload.pid().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
        snap["processes"][0].clone()
    };
    let before = exporter.scrape();
    let ours = &snapshot();
    let after = exporter.scrape();
    let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    let theirs_of = |scrape: &HashMap<String, f64>, key: &str| {
        *scrape
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {scrape:?}"))
    };
    let rss_slack = stat_rss_slack_bytes() as f64;
    let pairs = [
        ("rss_bytes", "memory_bytes:resident", rss_slack),
        ("pss_bytes", "memory_bytes:proportionalResident", 0.0),
        ("vm_size_bytes", "memory_bytes:virtual", 0.0),
        ("swap_bytes", "memory_bytes:swapped", 0.0),
        ("threads", "num_threads", 0.0),
        ("fd_count", "open_filedesc", 0.0),
        ("major_faults", "major_page_faults_total", 0.0),
    ];
    for (our_key, their_key, slack) in pairs {
        let a = num(&ours[our_key]);
        let (b0, b1) = (theirs_of(&before, their_key), theirs_of(&after, their_key));
        let (low, high) = (b0.min(b1) - slack, b0.max(b1) + slack);
        assert!(
            (low..=high).contains(&a),
            "{our_key} = {a} but process-exporter's {their_key} = {b0} before and {b1} after \
             (slack {slack})"
        );
        println!("{our_key:>14} {a:>14} | {their_key:<36} {b0:>14} {b1:>14}");
    }
    let theirs = after;
    let theirs_of = |key: &str| theirs_of(&theirs, key);
    // worst_fd_ratio = open / soft limit.
    let ratio = num(&ours["fd_count"]) / num(&ours["fd_limit"]);
    let their_ratio = theirs_of("worst_fd_ratio");
    assert!(
        (ratio - their_ratio).abs() <= their_ratio * 1e-9,
        "fd ratio {ratio} vs {their_ratio}"
    );
    // Start time: theirs in Unix seconds, ours in ticks after boot; both name the same process.
    assert!(theirs_of("oldest_start_time_seconds") > 0.0);
}
