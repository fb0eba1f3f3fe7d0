//! `memlens advise` taking its peaks from the agent's history: a Go 1.27
//! service (`steady`) in a limited memory cgroup is recorded by a real
//! `memlens watch` (1 s interval, runtime read every second) while a
//! sidecar (a second `steady` holding 64 MiB, in the same cgroup) runs
//! next to it: memory the cgroup charges outside the service's Go runtime,
//! which GOMEMLIMIT must leave room for. The sidecar is killed before
//! `memlens advise` runs, so a live window no longer sees that peak; the
//! history must.
//!
//! Independent sources: `/proc/PID/status` (`VmRSS`, `RssAnon`) of both
//! processes read by the test during the recording, and the kernel's peak
//! usage counter of the cgroup (`memory.peak` / `memory.max_usage_in_bytes`).
//!
//! - `window_source` is `history`, the memory outside the Go runtime and the
//!   peak usage come from it, and the outside memory exceeds the live
//!   window's (`--no-history --window 2`, run right after) by most of what
//!   the sidecar held (its `RssAnon`, read by the test);
//! - the recommended GOMEMLIMIT is lower than the live one by as much, and
//!   not below `limit - margin - the cgroup's peak usage` (the kernel's);
//! - the peak RSS is at least every `VmRSS` the test read and at most its
//!   high-water mark, within the slack of the kernel's per-CPU RSS counters.
//!
//! And an explicit `--store` that cannot be read fails naming the directory.

use memlens_testkit::{ChildGuard, GoToolchain, TestCgroup, WorkloadSpec};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/stat_rss.rs"]
mod stat_rss;
use cli::{history_ready, memlens, memlens_json};

const MIB: u64 = 1 << 20;
const LIMIT: u64 = 320 * MIB;

/// A `/proc/PID/status` field in bytes (the file says kB).
fn status_bytes(pid: i32, key: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{path} has no {key}"))
        * 1024
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Stored Go runtime reads (`go_sys_bytes`) of `pid` after `after_ms`.
fn stored_go_reads_after(data: &str, pid: i32, after_ms: i64) -> u64 {
    let csv = memlens(&[
        "query",
        "--data",
        data,
        "--csv",
        &format!(
            "SELECT count(*) FROM samples s JOIN entities e ON e.id = s.entity \
             WHERE e.pid = {pid} AND s.metric = 'go_sys_bytes' AND s.ts > {after_ms}"
        ),
    ]);
    csv.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

fn bytes(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {path} in {v:#}"))
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

#[test]
fn advise_takes_the_peaks_a_live_window_missed_from_the_history() {
    let toolchain = GoToolchain::go127();
    let cgroup = TestCgroup::with_limit(LIMIT);
    let service = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=16")
        .arg("--alloc-mib-per-tick=1")
        .arg("--duration=300s")
        .arg("--metrics")
        .start_in(&cgroup);
    service.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
    let pid = service.pid();

    let data = std::env::temp_dir().join(format!("memlens-advise-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_str().unwrap().to_string();
    let mut agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--interval", "1", "--runtime-interval", "1"])
            .args(["--no-profiles", "--quiet", "--data", &data_arg])
            .args(["--pid", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );

    // The sidecar: 64 MiB of live heap in the same cgroup, outside the
    // service's Go runtime.
    let mut sidecar = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=64")
        .arg("--alloc-mib-per-tick=1")
        .arg("--duration=300s")
        .start_in(&cgroup);
    sidecar.wait_for_line("LIVE_FILLED", Duration::from_secs(60));
    let filled_ms = now_ms();

    // Until the agent stored 3 runtime reads of the service with the
    // sidecar in place; meanwhile the test's own readings of /proc.
    let mut max_service_rss = 0u64;
    let mut min_sidecar_anon = u64::MAX;
    let mut min_charged_anon = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let service_rss = status_bytes(pid, "VmRSS");
        let service_anon = status_bytes(pid, "RssAnon");
        let sidecar_anon = status_bytes(sidecar.pid(), "RssAnon");
        max_service_rss = max_service_rss.max(service_rss);
        min_sidecar_anon = min_sidecar_anon.min(sidecar_anon);
        min_charged_anon = min_charged_anon.min(service_anon + sidecar_anon);
        if history_ready(&data_arg) && stored_go_reads_after(&data_arg, pid, filled_ms) >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not store 3 Go runtime reads of {pid} within 90 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        min_sidecar_anon >= 60 * MIB,
        "the sidecar holds {:.1} MiB",
        mib(min_sidecar_anon)
    );

    // The peak passes: the sidecar goes, the cgroup is uncharged.
    let with_sidecar = cgroup.usage_bytes();
    sidecar.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cgroup.usage_bytes() + min_sidecar_anon * 3 / 4 > with_sidecar {
        assert!(
            Instant::now() < deadline,
            "the cgroup still charges {:.1} MiB 10 s after the sidecar was killed ({:.1} MiB with it)",
            mib(cgroup.usage_bytes()),
            mib(with_sidecar)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let started = Instant::now();
    let history = memlens_json(&[
        "advise",
        "--pid",
        &pid.to_string(),
        "--store",
        &data_arg,
        "--json",
    ]);
    let took = started.elapsed().as_secs_f64();
    let live = memlens_json(&[
        "advise",
        "--pid",
        &pid.to_string(),
        "--store",
        &data_arg,
        "--no-history",
        "--window",
        "2",
        "--json",
    ]);
    let kernel_peak = cgroup.peak_usage_bytes();
    let service_hwm = status_bytes(pid, "VmHWM");
    agent.kill();

    // Where the figures came from.
    assert_eq!(history["window_source"], "history", "{history:#}");
    assert_eq!(history["store_dir"], data_arg.as_str());
    assert!(took < 8.0, "advise with a history took {took:.1} s");
    let samples = history["history_samples"].as_u64().unwrap();
    assert!(samples >= 3, "{samples} stored samples");
    let span = history["history_span_seconds"].as_f64().unwrap();
    assert!(span >= 2.0, "history span {span} s");
    for figure in ["outside_runtime_bytes", "peak_usage_bytes"] {
        assert_eq!(
            history["observed"]["sources"][figure]["source"], "history",
            "{figure}: {history:#}"
        );
    }
    assert_eq!(live["window_source"], "live", "{live:#}");
    assert_eq!(
        live["observed"]["sources"]["outside_runtime_bytes"]["source"],
        "live"
    );
    assert_eq!(bytes(&history, "/cgroup/limit_bytes"), LIMIT);

    // The peaks against the test's own readings of /proc and the kernel's.
    let outside_history = bytes(&history, "/observed/outside_runtime_bytes");
    let outside_live = bytes(&live, "/observed/outside_runtime_bytes");
    assert!(
        outside_history >= outside_live + min_sidecar_anon * 3 / 4,
        "outside the Go runtime: {:.1} MiB from the history, {:.1} MiB live; the sidecar held \
         at least {:.1} MiB",
        mib(outside_history),
        mib(outside_live),
        mib(min_sidecar_anon)
    );
    let usage_history = bytes(&history, "/observed/peak_usage_bytes");
    assert!(
        usage_history >= min_charged_anon && usage_history <= kernel_peak,
        "peak usage {:.1} MiB from the history; the two processes' anonymous memory was never \
         below {:.1} MiB; the kernel's peak {:.1} MiB",
        mib(usage_history),
        mib(min_charged_anon),
        mib(kernel_peak)
    );
    let rss_history = bytes(&history, "/observed/peak_rss_bytes");
    // VmHWM is the high-water mark the kernel keeps from its per-CPU RSS
    // counters read without summing them (common/stat_rss.rs), so it can
    // lie below a VmRSS read earlier by up to their slack: once 42.5 MiB
    // from the history against readings of at most 42.5 and a VmHWM of 42.4.
    let slack = stat_rss::stat_rss_slack_bytes();
    assert!(
        rss_history + slack >= max_service_rss
            && rss_history <= service_hwm.max(max_service_rss) + slack,
        "peak RSS {:.2} MiB; VmRSS up to {:.2} MiB, VmHWM {:.2} MiB, each reading within {:.2} MiB",
        mib(rss_history),
        mib(max_service_rss),
        mib(service_hwm),
        mib(slack)
    );

    // The advice: lower by what the sidecar held, above a sane floor.
    let rec_history = bytes(&history, "/recommendation/gomemlimit_bytes");
    let rec_live = bytes(&live, "/recommendation/gomemlimit_bytes");
    let margin = bytes(&history, "/recommendation/margin_bytes");
    assert_eq!(margin, bytes(&live, "/recommendation/margin_bytes"));
    assert!(
        rec_history + min_sidecar_anon * 3 / 4 <= rec_live + MIB,
        "GOMEMLIMIT {:.0} MiB with the history, {:.0} MiB live",
        mib(rec_history),
        mib(rec_live)
    );
    let floor = LIMIT - margin - kernel_peak.max(service_hwm) - MIB;
    assert!(
        rec_history >= floor,
        "GOMEMLIMIT {:.1} MiB is below limit - margin - peak usage = {:.1} MiB",
        mib(rec_history),
        mib(floor)
    );
    println!(
        "GOMEMLIMIT {:.0} MiB with {samples} stored samples over {span:.0} s, {:.0} MiB live; \
         outside {:.1} vs {:.1} MiB (sidecar >= {:.1} MiB); peak usage {:.1} MiB (kernel {:.1})",
        mib(rec_history),
        mib(rec_live),
        mib(outside_history),
        mib(outside_live),
        mib(min_sidecar_anon),
        mib(usage_history),
        mib(kernel_peak)
    );
    std::fs::remove_dir_all(&data).ok();
}
