//! The checks `memlens diagnose` runs, live in `memlens watch`, each
//! raising its built-in alert on the real workload that has the problem
//! and not on a healthy one (docs/alerts.md, "Built-in alerting"). Go 1.27
//! workloads, each in its own memory cgroup:
//!
//! - `above`: `steady`, GOMEMLIMIT=512MiB in the environment in a 256 MiB
//!   cgroup (no /metrics: the setting comes from /proc/PID/environ) →
//!   GoMemLimitAboveLimit, also in a real Alertmanager (Debian's), with
//!   the agent's dashboard page of the process as `generatorURL` (fetched:
//!   it names the process);
//! - `goroutines`: `goroutine-leak`, 100 goroutines a second for 30 s
//!   (its /metrics gives the count) → GoroutineLeak;
//! - `fds`: `fd-leak`, 900 files at 100 a second under a soft and hard
//!   RLIMIT_NOFILE of 1024 (set with prlimit before the leak starts) →
//!   FDExhaustion;
//! - `mmaps`: `mmap`, 55 000 one-page mappings: 84 % of vm.max_map_count
//!   (65 530 by default; the test reads it and sizes the count) →
//!   VMACountNearLimit;
//! - `healthy`: `steady` with GOMEMLIMIT=200MiB and /metrics in a 256 MiB
//!   cgroup: no alert at all;
//! - a `heap-leak` of 4 MiB/s in a 64 MiB cgroup (killed some 12 s after its start), with a `sleep` (the OOM killer takes the largest: the leak) keeping the cgroup watched between two leaks, started again after
//!   each OOM kill, three times → MemoryOOMKilledRepeatedly of that cgroup
//!   (a second agent, `--cgroup`, follows the new pids).
//!
//! Windows and `for`s are shortened through the config (`[alerts]`,
//! `[alerting.for]`): the goroutine window to 40 s, the `for`s to 2 s.
//! Why the bounds hold on a loaded 2-core machine: every workload is paced
//! by the wall clock; the goroutine trend needs its samples to span three
//! quarters of the window (30 s) with the newest quarter's fewest at least
//! 1.5 × the oldest quarter's most, which a count rising 100/s for 30 s
//! from 100 meets from about 40 s after the agent starts; the others hold
//! from the first cycle that sees them; three leaks of ~12 s each take ~40 s. The deadline is 150 s after both agents serve /metrics. About 70-90 s.

use memlens_testkit::{free_loopback_port, http_get, ChildGuard, GoToolchain, TempDir};
use memlens_testkit::{TestCgroup, Workload, WorkloadSpec};
use serde_json::Value;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;

#[path = "common/alertmanager.rs"]
mod alertmanager;
use alertmanager::Alertmanager;

/// Webhook bodies received.
type Received = Arc<Mutex<Vec<Value>>>;

/// One workload in its own cgroup.
struct Case {
    cgroup: TestCgroup,
    workload: Workload,
}

fn start(mode: &str, args: &[&str], env: &[(&str, &str)], limit_bytes: u64) -> Case {
    let cgroup = TestCgroup::with_limit(limit_bytes);
    let mut spec = WorkloadSpec::new(&GoToolchain::go127(), mode).arg("--duration=0");
    for a in args {
        spec = spec.arg(*a);
    }
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    let workload = spec.start_in(&cgroup);
    Case { cgroup, workload }
}

/// Starts `memlens watch --interval 1` with `select` (`--pid`s or a
/// `--cgroup`) and `extra` config.
fn agent(dir: &TempDir, name: &str, select: &[String], extra: &str) -> (ChildGuard, String) {
    let config = dir.join(&format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[findings]\nhold = \"15s\"\n\
             [alerts]\ngoroutine_window = \"40s\"\ngoroutine_min = 200\n\
             {extra}\n\
             [alerting.for]\nGoMemLimitAboveLimit = \"2s\"\nGoMemLimitTooClose = \"2s\"\n\
             GoMemLimitMissing = \"2s\"\nGoGCOffWithoutLimit = \"2s\"\nGoroutineLeak = \"2s\"\n\
             FDExhaustion = \"2s\"\nVMACountNearLimit = \"2s\"\nGoGCDeathSpiral = \"2s\"\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let child = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["watch", "--quiet", "--interval", "1"])
        .args([
            "--runtime-interval",
            "2s",
            "--no-profiles",
            "--listen",
            &addr,
        ])
        .arg("--data")
        .arg(dir.join(name))
        .arg("--config")
        .arg(&config)
        .args(select)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start memlens watch");
    (ChildGuard(child), addr)
}

/// The webhook's firing alerts of `alertname` about `case` (its pid or
/// its cgroup).
fn firing(received: &Received, alertname: &str, case: &Case) -> Vec<Value> {
    let pid = case.workload.pid().to_string();
    let cgroup = case.cgroup.path_in_hierarchy();
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "firing")
        .map(|b| b["alert"].clone())
        .filter(|a| {
            let l = &a["labels"];
            l["alertname"] == alertname
                && (l["pid"] == pid.as_str() || l["cgroup"] == cgroup.as_str())
        })
        .collect()
}

/// Any alert about `case`, whatever its status.
fn any_about(received: &Received, case: &Case) -> Vec<Value> {
    let pid = case.workload.pid().to_string();
    let cgroup = case.cgroup.path_in_hierarchy();
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|b| {
            let l = &b["alert"]["labels"];
            l["pid"] == pid.as_str() || l["cgroup"] == cgroup.as_str()
        })
        .cloned()
        .collect()
}

/// An evidence number of a webhook alert, checking that it has a unit.
fn evidence(alert: &Value, name: &str) -> f64 {
    let e = alert["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {alert:#}"));
    assert!(
        !e["unit"].as_str().unwrap_or("").is_empty(),
        "{name} has no unit: {alert:#}"
    );
    e["value"].as_f64().unwrap()
}

#[test]
fn diagnose_checks_raise_their_alerts_live_on_the_workloads_that_have_the_problem() {
    let dir = TempDir::new("livedet-live");
    let am = Alertmanager::start(&dir);
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap().to_string();
    let received = alertmanager::receive_webhooks(hook, |body| body);
    let mib = 1u64 << 20;

    let above = start(
        "steady",
        &["--alloc-mib-per-tick=2"],
        &[("GOMEMLIMIT", "512MiB")],
        256 * mib,
    );
    let goroutines = start(
        "goroutine-leak",
        &["--goroutines=3000", "--goroutine-rate=10", "--metrics"],
        &[("GOMEMLIMIT", "200MiB")],
        256 * mib,
    );
    let fds = start(
        "fd-leak",
        &["--fds=900", "--fd-rate=10", "--setup-after=3s"],
        &[("GOMEMLIMIT", "200MiB")],
        256 * mib,
    );
    // Go raised its soft limit to the hard one at start; both go to 1024
    // before the leak starts (--setup-after), which stays below it.
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &fds.workload.pid().to_string(),
            "--nofile=1024:1024",
        ])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit failed");
    let max_map_count: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // 84 % of the limit: over the 80 % warning, under the limit itself.
    let mappings = (max_map_count * 84 / 100).to_string();
    let mmaps = start(
        "mmap",
        &[&format!("--mappings={mappings}"), "--mapping-kib=4"],
        &[("GOMEMLIMIT", "512MiB")],
        1024 * mib,
    );
    let healthy = start(
        "steady",
        &["--alloc-mib-per-tick=2", "--metrics"],
        &[("GOMEMLIMIT", "200MiB")],
        256 * mib,
    );
    let leaky_cgroup = TestCgroup::with_limit(64 * mib);
    // A `sleep` (under 1 MiB: the OOM killer takes the largest, the leak
    // near 64 MiB) keeps the cgroup selected by
    // the second agent between two leaks, so it reads the cgroup's kill
    // counter even when a loaded host makes it miss a victim's short life.
    let mut sentinel = ChildGuard(
        Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("start sleep"),
    );
    std::fs::write(leaky_cgroup.procs_file(), sentinel.pid().to_string()).unwrap();

    let cases = [&above, &goroutines, &fds, &mmaps, &healthy];
    let pids: Vec<String> = cases
        .iter()
        .flat_map(|c| ["--pid".to_string(), c.workload.pid().to_string()])
        .collect();
    let (_agent, listen) = agent(
        &dir,
        "a",
        &pids,
        &format!(
            "[alerting]\nhold = \"20s\"\nresend_interval = \"5s\"\n\
             alertmanager_url = \"http://{}\"\nwebhook_url = \"http://{hook_addr}/hook\"\n",
            am.addr
        ),
    );
    let (_killer_agent, killer_listen) = agent(
        &dir,
        "k",
        &["--cgroup".to_string(), leaky_cgroup.path_in_hierarchy()],
        &format!("[alerting]\nhold = \"20s\"\nwebhook_url = \"http://{hook_addr}/hook\"\n"),
    );
    // Both agents serve /metrics once they run their cycles.
    let ready = Instant::now() + Duration::from_secs(60);
    for addr in [&listen, &killer_listen] {
        while !http_get(addr, "/metrics").is_ok_and(|m| m.contains("memlens_agent_cycles_total")) {
            assert!(
                Instant::now() < ready,
                "agent on {addr} never served /metrics"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let started = Instant::now();

    // Three kills in a row of a leak restarted in the same cgroup.
    let mut kills = 0;
    let mut kernel_kills_at_alert = None;
    let mut leak: Option<Workload> = None;
    let leak_args = ["--leak-kib-per-second=4096", "--garbage-kib=512"];
    let deadline = started + Duration::from_secs(150);
    let wanted = [
        ("GoMemLimitAboveLimit", &above),
        ("GoroutineLeak", &goroutines),
        ("FDExhaustion", &fds),
        ("VMACountNearLimit", &mmaps),
    ];
    loop {
        if kills < 3 {
            match &mut leak {
                None => {
                    let mut spec =
                        WorkloadSpec::new(&GoToolchain::go127(), "heap-leak").arg("--duration=0");
                    for a in leak_args {
                        spec = spec.arg(a);
                    }
                    leak = Some(spec.start_in(&leaky_cgroup));
                }
                Some(w) => {
                    if w.try_exit().is_some() {
                        kills += 1;
                        leak = None;
                        // The agent sees each victim before its kill: a
                        // second's pause between two runs.
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
        let am_alerts = am.alerts();
        let am_above = am_alerts.iter().find(|a| {
            a["labels"]["alertname"] == "GoMemLimitAboveLimit"
                && a["labels"]["sender"] == "memlens-watch"
                && a["labels"]["pid"] == above.workload.pid().to_string().as_str()
        });
        let repeated = received.lock().unwrap().iter().any(|b| {
            b["status"] == "firing"
                && b["alert"]["labels"]["alertname"] == "MemoryOOMKilledRepeatedly"
                && b["alert"]["labels"]["cgroup"] == leaky_cgroup.path_in_hierarchy().as_str()
        });
        // The kernel's own count when the alert is first seen: the agent
        // read its kills before it sent it, so three must be there.
        if repeated && kernel_kills_at_alert.is_none() {
            kernel_kills_at_alert = Some(leaky_cgroup.oom_kill_count());
        }
        let all = wanted
            .iter()
            .all(|(name, case)| !firing(&received, name, case).is_empty());
        if all && am_above.is_some() && repeated {
            break;
        }
        if Instant::now() > deadline {
            let got: Vec<String> = received
                .lock()
                .unwrap()
                .iter()
                .map(|b| {
                    format!(
                        "{} {} {}",
                        b["status"], b["alert"]["labels"]["alertname"], b["alert"]["labels"]
                    )
                })
                .collect();
            panic!(
                "after {:?}: kills {kills}, Alertmanager has GoMemLimitAboveLimit: {}, \
                 repeated: {repeated}, webhook got:\n{}",
                started.elapsed(),
                am_above.is_some(),
                got.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("all alerts in {:?}", started.elapsed());
    for b in received.lock().unwrap().iter() {
        let a = &b["alert"];
        eprintln!(
            "{} {} {} {}: {}",
            b["status"],
            a["labels"]["alertname"],
            a["labels"]["severity"],
            a["labels"]["target"],
            a["annotations"]["summary"]
        );
    }
    if let Some(mut w) = leak {
        w.kill();
    }
    sentinel.kill();

    // Each with its evidence in numbers and units, and the dashboard page.
    let a = &firing(&received, "GoMemLimitAboveLimit", &above)[0];
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(evidence(a, "gomemlimit_bytes"), (512 * mib) as f64);
    assert_eq!(evidence(a, "cgroup_limit_bytes"), (256 * mib) as f64);
    let url = a["dashboard_url"].as_str().expect("a dashboard URL");
    let path = url
        .strip_prefix(&format!("http://{listen}"))
        .unwrap_or_else(|| panic!("{url} is not on {listen}"));
    assert!(path.starts_with("/process?id="), "{url}");
    let page = http_get(&listen, path).expect("the dashboard page answers");
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"));
    let id = path
        .trim_start_matches("/process?id=")
        .split('&')
        .next()
        .unwrap();
    let entity: Value =
        serde_json::from_str(&http_get(&listen, &format!("/api/v1/entity?id={id}")).unwrap())
            .unwrap();
    assert_eq!(entity["pid"], above.workload.pid(), "{entity:#}");
    let am_alerts = am.alerts();
    let in_am = am_alerts
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == "GoMemLimitAboveLimit"
                && a["labels"]["pid"] == above.workload.pid().to_string().as_str()
        })
        .unwrap();
    assert_eq!(in_am["generatorURL"], url, "{in_am:#}");
    assert!(in_am["annotations"]["evidence"]
        .as_str()
        .unwrap()
        .contains("gomemlimit_bytes=536870912 bytes"));

    let g = &firing(&received, "GoroutineLeak", &goroutines)[0];
    assert!(evidence(g, "goroutines") >= 200.0, "{g:#}");
    assert!(
        evidence(g, "newest_quarter_min_goroutines")
            >= 1.5 * evidence(g, "oldest_quarter_max_goroutines")
    );
    let f = &firing(&received, "FDExhaustion", &fds)[0];
    assert_eq!(evidence(f, "fd_soft_limit"), 1024.0, "{f:#}");
    let v = &firing(&received, "VMACountNearLimit", &mmaps)[0];
    assert_eq!(evidence(v, "max_map_count"), max_map_count as f64, "{v:#}");
    assert!(evidence(v, "vmas") >= 0.8 * max_map_count as f64, "{v:#}");
    let r = received
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["alert"]["labels"]["alertname"] == "MemoryOOMKilledRepeatedly")
        .cloned()
        .unwrap();
    assert!(evidence(&r["alert"], "oom_kills") >= 3.0, "{r:#}");
    assert!(
        kernel_kills_at_alert.is_some_and(|n| n >= 3),
        "MemoryOOMKilledRepeatedly with {kernel_kills_at_alert:?} kills in the cgroup's counter"
    );

    // Nothing about the healthy workload; and no detector fired on a
    // workload without its problem.
    assert!(
        any_about(&received, &healthy).is_empty(),
        "{:#?}",
        any_about(&received, &healthy)
    );
    for (name, case) in wanted {
        for other in cases.iter().filter(|c| !std::ptr::eq(**c, case)) {
            let wrong = firing(&received, name, other);
            assert!(wrong.is_empty(), "{name} on another workload: {wrong:#?}");
        }
    }
}
