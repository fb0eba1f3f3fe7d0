//! Issue 7's proof on real kills: one `memlens watch` at its default
//! interval and thresholds (GOMEMLIMIT unset) watches, side by side, each in
//! its own 256 MiB memory cgroup:
//!
//! - a fast heap leak (Go 1.19 and Go 1.27) killed after about six minutes;
//! - a slow heap leak under a 160 MiB sawtooth (a batch job's working set
//!   coming and going every 20 s) growing about 12 MiB/min, i.e. under 10% of
//!   its own sawtooth's height per minute (Go 1.19 and Go 1.27);
//! - steady and alloc-churn workloads (Go 1.19 and Go 1.27) for the whole
//!   run, start-up included.
//!
//! The kill time is the kernel's (the cgroup's oom_kill counter, polled every
//! 100 ms). Checked on what the live agent stored: the critical time-to-OOM
//! fired at least 60% of the leak's duration before the kill with a
//! predicted kill time within 25% of the time left; the kill is a finding
//! linked to a heap profile kept before it, whose top inuse_space site
//! (`go tool pprof`) is the leaking function; the healthy workloads have no
//! finding at all; and `memlens replay` of the same history fires the same
//! critical at the same instant.

use memlens_testkit::{ChildGuard, GoToolchain, TestCgroup, Workload, WorkloadSpec};
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/cli.rs"]
mod cli;
use cli::memlens;

const LIMIT_BYTES: u64 = 256 << 20;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One workload in its own cgroup.
struct Case {
    name: String,
    toolchain: GoToolchain,
    leaks: bool,
    cgroup: TestCgroup,
    workload: Workload,
    leak_start_ms: i64,
    kill_ms: Option<i64>,
}

fn start(toolchain: &GoToolchain, name: &str, mode: &str, args: &[&str], leaks: bool) -> Case {
    let cgroup = TestCgroup::with_limit(LIMIT_BYTES);
    let mut spec = WorkloadSpec::new(toolchain, mode).arg("--duration=0");
    for a in args {
        spec = spec.arg(*a);
    }
    let workload = spec.start_in(&cgroup);
    Case {
        name: format!("{name} ({})", toolchain.name),
        toolchain: toolchain.clone(),
        leaks,
        cgroup,
        workload,
        leak_start_ms: 0,
        kill_ms: None,
    }
}

/// The rows of `memlens query --json SQL`.
fn query(data: &str, sql: &str) -> Vec<Value> {
    let json: Value = serde_json::from_str(&memlens(&["query", "--data", data, "--json", sql]))
        .expect("query --json is JSON");
    json.as_array().expect("an array of rows").clone()
}

fn evidence(evidence: &Value, name: &str) -> Option<f64> {
    evidence
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?
        .get("value")?
        .as_f64()
}

/// Whether a finding's target key is this case's process or cgroup.
fn about(target: &str, case: &Case) -> bool {
    target.starts_with(&format!("process:{}:", case.workload.pid()))
        || target == format!("cgroup:{}", case.cgroup.path_in_hierarchy())
}

/// `go tool pprof -top` of a kept heap profile by inuse_space, with the
/// workload's chunk helper hidden so that its bytes count for its caller:
/// the function names, in order.
fn pprof_top_functions(toolchain: &GoToolchain, file: &Path) -> Vec<String> {
    let out = Command::new(&toolchain.go_binary)
        .env("GOTOOLCHAIN", "local")
        .args([
            "tool",
            "pprof",
            "-top",
            "-sample_index=inuse_space",
            "-hide=^main\\.newChunk$",
        ])
        .arg(file)
        .output()
        .expect("go tool pprof");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "go tool pprof: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows after the header: flat flat% sum% cum cum% NAME.
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .collect()
}

/// When a critical fired, its lead before the kill, the error of its
/// predicted kill as a share of that lead, and a line saying so.
fn lead_and_error(critical: &Value, kill_ms: i64, leak_ms: i64) -> (i64, i64, f64, String) {
    let fired = critical["fired_ms"].as_i64().unwrap();
    let evidence_list: Value =
        serde_json::from_str(critical["evidence"].as_str().unwrap()).unwrap();
    let predicted = evidence(&evidence_list, "predicted_kill_at_ms").unwrap() as i64;
    let lead_ms = kill_ms - fired;
    let error = (predicted - kill_ms).abs() as f64 / lead_ms.max(1) as f64;
    let line = format!(
        "leak {:.0} s, critical on {} {:.0} s before the kill ({:.0}% of the leak), \
         predicted kill {:+.0} s off (error {:.1}% of the time left)",
        leak_ms as f64 / 1000.0,
        critical["target"].as_str().unwrap(),
        lead_ms as f64 / 1000.0,
        lead_ms as f64 / leak_ms as f64 * 100.0,
        (predicted - kill_ms) as f64 / 1000.0,
        error * 100.0
    );
    (fired, lead_ms, error, line)
}

#[test]
fn real_oom_kills_are_forecast_early_with_evidence_and_healthy_workloads_stay_quiet() {
    let go119 = GoToolchain::go119();
    let go127 = GoToolchain::go127();
    // 32 KiB retained per 100 ms tick; RSS follows the GC goal (twice the
    // live heap): killed in about six minutes.
    // (Light garbage and light healthy workloads: eight processes share two
    // cores, and a workload slowed by the others leaks slower than it did
    // while the forecast was made — the test would then measure the
    // machine, not the forecast.)
    let fast = ["--leak-kib=32", "--garbage-kib=512"];
    // 20 KiB per tick (11.7 MiB/min) under a 160 MiB working set held 10 s
    // of every 20 s: growth per minute 7% of the sawtooth's height.
    let slow = [
        "--leak-kib=20",
        "--garbage-kib=64",
        "--spike-mib=160",
        "--spike-every=20s",
    ];
    let mut cases = Vec::new();
    for toolchain in [&go119, &go127] {
        cases.push(start(toolchain, "fast leak", "heap-leak", &fast, true));
        cases.push(start(toolchain, "slow leak", "heap-leak", &slow, true));
        cases.push(start(
            toolchain,
            "steady",
            "steady",
            &["--alloc-mib-per-tick=2"],
            false,
        ));
        cases.push(start(
            toolchain,
            "alloc-churn",
            "alloc-churn",
            &["--alloc-mib-per-tick=1"],
            false,
        ));
    }
    let data = std::env::temp_dir().join(format!("memlens-oom-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_str().unwrap().to_string();
    let log_path = data.with_extension("log");
    let mut args = vec!["watch".to_string(), "--data".to_string(), data_arg.clone()];
    for case in &cases {
        args.push("--pid".to_string());
        args.push(case.workload.pid().to_string());
    }
    let mut agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(&args)
            .stdout(std::fs::File::create(&log_path).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );
    for case in cases.iter_mut().filter(|c| c.leaks) {
        case.workload
            .wait_for_line("LEAK_START", Duration::from_secs(30));
        case.leak_start_ms = now_ms();
    }
    // Wait for the kernel's kills (deadline: 12 minutes).
    let deadline = Instant::now() + Duration::from_secs(720);
    while cases.iter().any(|c| c.leaks && c.kill_ms.is_none()) {
        for case in cases.iter_mut().filter(|c| c.leaks && c.kill_ms.is_none()) {
            if case.cgroup.oom_kill_count() > 0 {
                case.kill_ms = Some(now_ms());
            }
        }
        if Instant::now() > deadline {
            let waiting: Vec<String> = cases
                .iter()
                .filter(|c| c.leaks && c.kill_ms.is_none())
                .map(|c| format!("{} at {} bytes", c.name, c.cgroup.usage_bytes()))
                .collect();
            panic!("no OOM kill within 12 min: {waiting:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for case in &cases {
        if !case.leaks {
            assert_eq!(
                case.cgroup.oom_kill_count(),
                0,
                "{} was killed: raise its cgroup",
                case.name
            );
        }
    }
    // Three more cycles, so the kills are matched to their victims.
    std::thread::sleep(Duration::from_secs(16));
    // SAFETY: kill has no memory preconditions; the pid is our live child.
    unsafe { libc::kill(agent.pid(), libc::SIGTERM) };
    let _ = agent.0.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();

    let findings = query(
        &data_arg,
        "SELECT finding, severity, target, fired_ms, cleared_ms, evidence, links \
         FROM findings ORDER BY fired_ms, id",
    );
    let replayed: Value =
        serde_json::from_str(&memlens(&["replay", "--data", &data_arg, "--json"])).unwrap();
    let mut report = Vec::new();
    for case in &cases {
        let mine: Vec<&Value> = findings
            .iter()
            .filter(|f| about(f["target"].as_str().unwrap_or(""), case))
            .collect();
        if !case.leaks {
            assert!(
                mine.is_empty(),
                "{}: findings on a healthy workload: {mine:#?}",
                case.name
            );
            continue;
        }
        let kill_ms = case.kill_ms.unwrap();
        // The kill is the cgroup's (its limit is what the kernel enforces):
        // its critical is the one measured. The process's own critical must
        // fire too (its kill point adds the uncertainty of usage - RSS).
        let cgroup_key = format!("cgroup:{}", case.cgroup.path_in_hierarchy());
        let critical = mine
            .iter()
            .find(|f| {
                f["finding"] == "memory.time_to_oom"
                    && f["severity"] == "critical"
                    && f["target"] == cgroup_key.as_str()
            })
            .unwrap_or_else(|| panic!("{}: no critical time-to-OOM: {mine:#?}", case.name));
        let process_critical = mine
            .iter()
            .find(|f| {
                f["finding"] == "memory.time_to_oom"
                    && f["severity"] == "critical"
                    && f["target"].as_str().unwrap_or("").starts_with("process:")
            })
            .unwrap_or_else(|| panic!("{}: no critical on the process: {mine:#?}", case.name));
        let leak_ms = kill_ms - case.leak_start_ms;
        let (fired, lead_ms, error, line) = lead_and_error(critical, kill_ms, leak_ms);
        let line = format!("{}: {line}", case.name);
        println!("{line}");
        report.push(line);
        // Not bounded: the process's kill point is the limit minus what the
        // rest of the cgroup uses (usage - RSS), one more estimate.
        let (_, _, _, process_line) = lead_and_error(process_critical, kill_ms, leak_ms);
        report.push(format!("{}: {process_line}", case.name));
        // Why these bounds hold on a loaded 2-core machine: the leaks are
        // paced by the wall clock (workloads/pacer.go: a tick that comes late,
        // behind a GC, the 160 MiB spike's fill or the other processes, is
        // made up at once), so the leak grows at its rate from LEAK_START to
        // the kill whatever CPU the workload gets, and the kill instant is the
        // kernel's, polled every 100 ms; the agent's samples are stamped with
        // when they were read. Load moves only when each sample lands.
        // Known limit (measured with scripts/soak.sh, reported in issue 13):
        // the slow leaks' garbage (64 KiB a tick) piles up during each 10 s
        // hold of the spike (no GC runs: the heap goal is above the limit), a
        // ramp of about 4 MiB per 5 s inside each 20 s period, more than the
        // leak adds in a period; the 5 s samples drift through that ramp, and
        // the critical fires from a 70 s trend (3.5 periods): its slope came
        // out 34% above the leak's in a run that missed by 27%.
        assert!(
            lead_ms as f64 >= 0.6 * leak_ms as f64,
            "{}: lead {lead_ms} ms of a {leak_ms} ms leak",
            case.name
        );
        assert!(error <= 0.25, "{}: error {error}", case.name);
        // Replay of the same history fires the same critical at the same instant.
        let replay_fired = replayed
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["id"] == "memory.time_to_oom"
                    && f["severity"] == "critical"
                    && f["target"]["key"] == critical["target"]
            })
            .filter_map(|f| f["fired_at_ms"].as_i64())
            .min();
        assert_eq!(replay_fired, Some(fired), "{}: replay vs live", case.name);
        // The live view showed it as it fired.
        let pid_text = format!("process {}:", case.workload.pid());
        assert!(
            log.lines().any(|l| l.starts_with("FINDING")
                && l.contains("memory.time_to_oom")
                && (l.contains(&pid_text) || l.contains(&case.cgroup.path_in_hierarchy()))),
            "{}: not shown live:\n{log}",
            case.name
        );
        // Critical asked for the profiles at once: a heap and a goroutine
        // profile within a minute of it (the Go targets are read one after
        // the other, and the other leaks may ask at the same time; the
        // periodic ones come at the start and 300 s later).
        let captured = query(
            &data_arg,
            &format!(
                "SELECT p.kind, p.ts FROM profiles p JOIN entities e ON e.id = p.entity \
                 WHERE e.pid = {} AND p.ts BETWEEN {fired} AND {}",
                case.workload.pid(),
                fired + 60_000
            ),
        );
        for kind in ["heap", "goroutine"] {
            assert!(
                captured.iter().any(|p| p["kind"] == kind),
                "{}: no {kind} profile captured when critical fired: {captured:?}",
                case.name
            );
        }
        // The victim keeps its labels: its last Go runtime read may come
        // cycles after it left the snapshots, and a dying process reads back
        // with fields missing.
        let labels = query(
            &data_arg,
            &format!(
                "SELECT comm, cgroup FROM entities WHERE pid = {}",
                case.workload.pid()
            ),
        );
        assert_eq!(labels.len(), 1, "{}: {labels:?}", case.name);
        assert_eq!(labels[0]["comm"], "workload", "{}", case.name);
        assert_eq!(
            labels[0]["cgroup"],
            case.cgroup.path_in_hierarchy().as_str(),
            "{}",
            case.name
        );
        // The kill: a finding on the victim, linked to a heap profile kept before it.
        let kill = mine
            .iter()
            .find(|f| f["finding"] == "memory.oom_kill")
            .unwrap_or_else(|| panic!("{}: no kill finding: {mine:#?}", case.name));
        assert!(
            kill["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("process:{}:", case.workload.pid())),
            "{}: the victim: {kill:#}",
            case.name
        );
        let links: Value = serde_json::from_str(kill["links"].as_str().unwrap()).unwrap();
        let heap = links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["kind"] == "heap")
            .unwrap_or_else(|| panic!("{}: no heap profile linked: {kill:#}", case.name));
        assert!(heap["ts_ms"].as_i64().unwrap() < kill_ms, "{heap}");
        let file = data.with_extension(format!("heap-{}.pb.gz", case.workload.pid()));
        let id = heap["id"].as_i64().unwrap().to_string();
        memlens(&[
            "profiles",
            "--data",
            &data_arg,
            "--id",
            &id,
            "-o",
            file.to_str().unwrap(),
        ]);
        let top = pprof_top_functions(&case.toolchain, &file);
        let _ = std::fs::remove_file(&file);
        let line = format!(
            "{}: heap profile #{id} kept {:.0} s before the kill, top inuse_space: {:?}",
            case.name,
            (kill_ms - heap["ts_ms"].as_i64().unwrap()) as f64 / 1000.0,
            &top[..top.len().min(3)]
        );
        println!("{line}");
        report.push(line);
        if case.name.starts_with("fast") {
            assert_eq!(
                top.first().map(String::as_str),
                Some("main.retainLeakChunk"),
                "{}: {top:?}",
                case.name
            );
        } else {
            // Taken while the batch working set may be held: the leak is
            // there, maybe second.
            assert!(
                top.iter().take(2).any(|f| f == "main.retainLeakChunk"),
                "{}: {top:?}",
                case.name
            );
        }
    }
    // Straight to the process's stderr, past the harness's capture of the
    // print macros: the lead times and errors show in every CI log.
    let _ = writeln!(std::io::stderr(), "{}", report.join("\n"));
    drop(cases);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&log_path);
}
