//! `memlens advise` and the GOMEMLIMIT detector on real Go processes in real
//! memory cgroups (issue 8's "Done when"):
//!
//! - GOMEMLIMIT unset in a limited cgroup → a warning with a recommended
//!   value; the same program under a load whose GOGC=100 heap goal passes the
//!   limit (checked: its peak usage in a cgroup twice as large) then stays
//!   within the limit with that value (no OOM kill, the cgroup's own peak
//!   below the limit).
//! - GOMEMLIMIT above the limit → critical.
//! - A limit set in code (`debug.SetMemoryLimit`, no environment variable) is
//!   seen and not reported missing.
//!
//! The independent sources: the kernel's cgroup counters (`oom_kill`, the
//! peak usage file), and the Go runtime's own reading of its settings
//! (`/metrics` of the workload, from runtime/metrics or
//! `debug.SetMemoryLimit(-1)`).

use memlens_testkit::{GoToolchain, TestCgroup, Workload, WorkloadSpec};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The cgroup limit of every test.
const LIMIT: u64 = 160 * MIB;
/// The live heap of the observed program: its GOGC=100 goal fits the limit.
const LIGHT_LIVE_MIB: u64 = 32;
/// The live heap of the load: fits under the recommended GOMEMLIMIT, but its
/// GOGC=100 goal (about twice the live heap) passes the limit.
const HEAVY_LIVE_MIB: u64 = 80;

fn advise(pid: i32) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args([
            "advise",
            "--pid",
            &pid.to_string(),
            "--json",
            "--window",
            "3",
        ])
        .output()
        .expect("run memlens advise");
    assert!(
        out.status.success(),
        "memlens advise --pid {pid} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "memlens advise printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A metric of the workload's /metrics (the runtime's own view).
fn runtime_metric(workload: &Workload, name: &str) -> f64 {
    let body = memlens_testkit::http_get(workload.listen_addr(), "/metrics")
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("/metrics has no {name}:\n{body}"))
}

fn finding_ids(advice: &Value) -> Vec<(String, String)> {
    advice["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn steady(toolchain: &GoToolchain, live_mib: u64) -> WorkloadSpec {
    WorkloadSpec::new(toolchain, "steady")
        .arg(format!("--live-mib={live_mib}"))
        .arg("--duration=180s")
        .arg("--metrics")
}

/// Runs the heavy load in `cgroup` until `ticks` ticks have passed (or the
/// process died) and returns how it ended: alive or not.
fn run_load(workload: &mut Workload, ticks: u64) -> bool {
    workload.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(120);
    let wanted = format!("TICK {ticks} ");
    loop {
        if workload
            .stdout_lines()
            .iter()
            .any(|l| l.starts_with(&wanted))
        {
            return true;
        }
        if workload.try_exit().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "no {wanted:?} line within 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn missing_gomemlimit_is_warned_and_the_recommendation_holds_under_load() {
    for toolchain in GoToolchain::all() {
        let name = toolchain.name.to_string();
        // 1. Observe the program with no GOMEMLIMIT in a limited cgroup.
        let cgroup = TestCgroup::with_limit(LIMIT);
        let workload = steady(&toolchain, LIGHT_LIVE_MIB).start_in(&cgroup);
        workload.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
        workload.wait_for_line("TICK 10 ", Duration::from_secs(60));
        let advice = advise(workload.pid());
        assert_eq!(advice["cgroup"]["limit_bytes"], LIMIT, "{name}: {advice:#}");
        assert_eq!(
            advice["in_force"]["gomemlimit_bytes"],
            Value::Null,
            "{name}"
        );
        // The workload serves /metrics: the runtime itself said "no limit".
        assert_eq!(advice["in_force"]["gomemlimit_source"], "runtime", "{name}");
        assert_eq!(
            runtime_metric(&workload, "go_gc_gomemlimit_bytes"),
            i64::MAX as f64,
            "{name}: the runtime has a limit"
        );
        assert_eq!(advice["gomemlimit_verdict"], "missing", "{name}");
        assert_eq!(
            finding_ids(&advice),
            [("go.gomemlimit_missing".to_string(), "warning".to_string())],
            "{name}: {advice:#}"
        );
        let recommended = advice["recommendation"]["gomemlimit_bytes"]
            .as_u64()
            .unwrap();
        let evidence = advice["findings"][0]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "recommended_gomemlimit_bytes")
            .expect("recommended value in the evidence")["value"]
            .as_f64()
            .unwrap();
        assert_eq!(evidence, recommended as f64, "{name}");
        let outside = advice["recommendation"]["outside_runtime_bytes"]
            .as_u64()
            .unwrap();
        let margin = advice["recommendation"]["margin_bytes"].as_u64().unwrap();
        assert_eq!(
            recommended,
            (LIMIT - outside - margin) / MIB * MIB,
            "{name}"
        );
        assert!(
            recommended > HEAVY_LIVE_MIB * MIB * 5 / 4 && recommended < LIMIT,
            "{name}: recommended {recommended} is not a usable limit: {advice:#}"
        );
        let value = advice["recommendation"]["gomemlimit"]
            .as_str()
            .unwrap()
            .to_string();
        drop(workload);
        drop(cgroup);

        // 2. Control: the heavy load without GOMEMLIMIT passes the limit (measured
        //    in a cgroup twice as large, so that it is not killed).
        let roomy = TestCgroup::with_limit(2 * LIMIT);
        let mut control = steady(&toolchain, HEAVY_LIVE_MIB).start_in(&roomy);
        assert!(run_load(&mut control, 60), "{name}: control died");
        let control_peak = roomy.peak_usage_bytes();
        drop(control);
        assert!(
            control_peak > LIMIT,
            "{name}: the load without GOMEMLIMIT peaked at {} MiB, under the {} MiB limit: \
             it proves nothing",
            control_peak / MIB,
            LIMIT / MIB
        );

        // 3. The same load with the recommended GOMEMLIMIT stays within the limit.
        let cgroup = TestCgroup::with_limit(LIMIT);
        let mut load = steady(&toolchain, HEAVY_LIVE_MIB)
            .env("GOMEMLIMIT", &value)
            .start_in(&cgroup);
        let alive = run_load(&mut load, 60);
        let peak = cgroup.peak_usage_bytes();
        let kills = cgroup.oom_kill_count();
        eprintln!(
            "{name}: recommended GOMEMLIMIT={value}; peak usage without it {} MiB, with it {} \
             MiB (limit {} MiB), oom kills {kills}",
            control_peak / MIB,
            peak / MIB,
            LIMIT / MIB
        );
        assert!(
            alive && kills == 0,
            "{name}: killed under GOMEMLIMIT={value}"
        );
        assert!(peak < LIMIT, "{name}: peak {peak} reached the limit");
        // The runtime read the value as memlens wrote it.
        assert_eq!(
            runtime_metric(&load, "go_gc_gomemlimit_bytes"),
            recommended as f64,
            "{name}"
        );
        // And memlens now finds nothing wrong with it.
        let advice = advise(load.pid());
        assert_eq!(advice["gomemlimit_verdict"], "fine", "{name}: {advice:#}");
        assert_eq!(cgroup.oom_kill_count(), 0, "{name}");
    }
}

#[test]
fn gomemlimit_above_the_limit_is_critical() {
    for (toolchain, metrics) in GoToolchain::all().into_iter().zip([true, false]) {
        let name = toolchain.name.to_string();
        let cgroup = TestCgroup::with_limit(LIMIT);
        let mut spec = WorkloadSpec::new(&toolchain, "steady")
            .arg("--live-mib=16")
            .arg("--alloc-mib-per-tick=4")
            .arg("--duration=120s")
            .env("GOMEMLIMIT", "200MiB");
        if metrics {
            spec = spec.arg("--metrics");
        }
        let workload = spec.start_in(&cgroup);
        workload.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
        let advice = advise(workload.pid());
        assert_eq!(advice["in_force"]["gomemlimit_bytes"], 200 * MIB, "{name}");
        let source = if metrics { "runtime" } else { "environment" };
        assert_eq!(advice["in_force"]["gomemlimit_source"], source, "{name}");
        if metrics {
            assert_eq!(
                runtime_metric(&workload, "go_gc_gomemlimit_bytes"),
                (200 * MIB) as f64
            );
        }
        assert_eq!(
            finding_ids(&advice),
            [(
                "go.gomemlimit_above_limit".to_string(),
                "critical".to_string()
            )],
            "{name}: {advice:#}"
        );
        assert_eq!(advice["gomemlimit_verdict"], "above_limit", "{name}");
    }
}

#[test]
fn a_limit_set_in_code_is_seen() {
    for toolchain in GoToolchain::all() {
        let name = toolchain.name.to_string();
        let cgroup = TestCgroup::with_limit(LIMIT);
        let workload = WorkloadSpec::new(&toolchain, "steady")
            .arg("--live-mib=16")
            .arg("--alloc-mib-per-tick=4")
            .arg("--duration=120s")
            .arg("--memory-limit-mib=100")
            .arg("--metrics")
            .start_in(&cgroup);
        workload.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
        let advice = advise(workload.pid());
        assert_eq!(advice["in_force"]["gomemlimit_env"], Value::Null, "{name}");
        assert_eq!(
            advice["in_force"]["gomemlimit_bytes"],
            100 * MIB,
            "{name}: {advice:#}"
        );
        assert_eq!(advice["in_force"]["gomemlimit_source"], "runtime", "{name}");
        assert!(finding_ids(&advice).is_empty(), "{name}: {advice:#}");
        assert_eq!(advice["gomemlimit_verdict"], "fine", "{name}");
    }
}
