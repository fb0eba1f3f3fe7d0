//! Issue 7's proof on real kills: one `memlens watch` at its default
//! interval and thresholds (GOMEMLIMIT unset) watches, side by side, each in
//! its own 256 MiB memory cgroup:
//!
//! - a fast heap leak (Go 1.19 and Go 1.27) killed after about six minutes;
//! - a slow heap leak under a 160 MiB sawtooth (a batch job's working set
//!   coming and going every 20 s) growing about 9 MiB/min, i.e. under 6% of
//!   its own sawtooth's height per minute, from 30 s after its start (Go
//!   1.19 and Go 1.27), killed after about nine minutes;
//! - steady and alloc-churn workloads (Go 1.19 and Go 1.27) for the whole
//!   run, start-up included.
//!
//! The kill time is the kernel's (the cgroup's oom_kill counter, polled every
//! 100 ms). Checked on what the live agent stored: the critical time-to-OOM
//! fired at least 60% (slow leaks: 70%) of the leak's duration before the
//! kill with a predicted kill time within 25% (slow leaks: 20%) of the
//! time left; the kill is a finding
//! linked to a heap profile kept before it, whose top inuse_space site
//! (`go tool pprof`) is the leaking function; the healthy workloads have no
//! finding at all; and `memlens replay` of the same history fires the same
//! critical at the same instant. The same history replayed at 99 %
//! coverage (`[findings] forecast_coverage = 0.99`, as an agent so
//! configured would have run) must fire a critical for each leak; its range
//! is reported with the 90 % one.

use memlens_testkit::{ChildGuard, GoToolchain};
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::memlens;

const LIMIT_BYTES: u64 = 256 << 20;

#[path = "common/oom.rs"]
mod oom;
use oom::{findings_about, first_critical, measure, now_ms, query, start};

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

#[test]
fn real_oom_kills_are_forecast_early_with_evidence_and_healthy_workloads_stay_quiet() {
    let go119 = GoToolchain::go119();
    let go127 = GoToolchain::go127();
    // 320 KiB/s retained (32 KiB per 100 ms tick), paced by the wall clock
    // (a tick delayed by a busy CPU retains what was due at the next: the
    // slow leak's 160 MiB batch allocations delay its own ticks, which
    // Go's ticker then drops: a leak slowed after its forecast is killed
    // later than predicted, as in CI's 36.7 % error, a kill 113 s after
    // the predicted one); RSS follows the GC goal (twice the live heap):
    // killed in about six minutes.
    // (Light garbage and light healthy workloads: eight processes share two
    // cores, and a workload slowed by the others leaks slower than it did
    // while the forecast was made — the test would then measure the
    // machine, not the forecast.)
    let fast = ["--leak-kib-per-second=320", "--garbage-kib=512"];
    // 150 KiB/s (8.8 MiB/min), wall-clock paced, under a 160 MiB working set held 10 s
    // of every 20 s: growth per minute 5.5% of the sawtooth's height; killed
    // after about nine minutes.
    // The leak starts 30 s after the workload does, its sawtooth running:
    // the lead is measured from the leak's own start (LEAK_START), not from
    // a process start-up that every forecast leaves out (the agent skips a
    // new process's first 20 s; from spawn, that skip and the trend's first
    // minute alone held the lead to 67-79 % of a 407 s leak). Why nine
    // minutes and not seven: the trend's first minute and a critical that
    // looks ahead at most four times its span put the first critical about
    // 100-120 s into any such leak (that is 71-76 % of a 400 s one, as
    // measured under load; 78-82 % of this one).
    let slow = [
        "--leak-after=30s",
        "--leak-kib-per-second=150",
        "--garbage-kib=64",
        "--spike-mib=160",
        "--spike-every=20s",
    ];
    let mut cases = Vec::new();
    for toolchain in [&go119, &go127] {
        cases.push(start(
            toolchain,
            "fast leak",
            "heap-leak",
            &fast,
            true,
            LIMIT_BYTES,
        ));
        cases.push(start(
            toolchain,
            "slow leak",
            "heap-leak",
            &slow,
            true,
            LIMIT_BYTES,
        ));
        cases.push(start(
            toolchain,
            "steady",
            "steady",
            &["--alloc-mib-per-tick=2"],
            false,
            LIMIT_BYTES,
        ));
        cases.push(start(
            toolchain,
            "alloc-churn",
            "alloc-churn",
            &["--alloc-mib-per-tick=1"],
            false,
            LIMIT_BYTES,
        ));
    }
    let data = std::env::temp_dir().join(format!("memlens-oom-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_str().unwrap().to_string();
    let log_path = data.with_extension("log");
    // Declared before the agent: dropped after it, also on failure.
    let mut recording = oom::Recording {
        name: "oom_live",
        data: data.clone(),
        log: log_path.clone(),
        extra: Vec::new(),
        report: Vec::new(),
    };
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
            .wait_for_line("LEAK_START", Duration::from_secs(90));
        case.leak_start_ms = now_ms();
    }
    // Wait for the kernel's kills (deadline: 15 minutes).
    let deadline = Instant::now() + Duration::from_secs(900);
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
            panic!("no OOM kill within 15 min: {waiting:?}");
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
    // Issue 14's wide range: the same history replayed as an agent with
    // `forecast_coverage = 0.99` would have run (replay fires as the live
    // agent does: checked below at the default coverage).
    let wide_config = data.with_extension("99.toml");
    std::fs::write(&wide_config, "[findings]\nforecast_coverage = 0.99\n").unwrap();
    recording.extra.push(wide_config.clone());
    let wide: Value = serde_json::from_str(&memlens(&[
        "replay",
        "--data",
        &data_arg,
        "--config",
        wide_config.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    for case in &cases {
        let mine = findings_about(&findings, case);
        if !case.leaks {
            continue;
        }
        let kill_ms = case.kill_ms.unwrap();
        // The kill is the cgroup's (its limit is what the kernel enforces):
        // its critical is the one measured. The process's own critical must
        // fire too (its kill point adds the uncertainty of usage - RSS).
        let cgroup_key = format!("cgroup:{}", case.cgroup.path_in_hierarchy());
        let critical = first_critical(&mine, &cgroup_key, case);
        let process_critical = first_critical(&mine, "process:", case);
        let leak_ms = kill_ms - case.leak_start_ms;
        let m = measure(critical, kill_ms, leak_ms);
        let (fired, lead_ms, error) = (m.fired_ms, m.lead_ms, m.error);
        // The range is reported, not bounded, at the default 90 % (one kill
        // per case) and at 99 %.
        let line = format!("{}: {}", case.name, m.line);
        println!("{line}");
        recording.report.push(line);
        let (wide_fired_ms, wide_critical) = oom::first_replayed_critical(&wide, &cgroup_key)
            .unwrap_or_else(|| panic!("{}: no critical replayed at 99 %", case.name));
        let wide_earliest =
            oom::evidence(&wide_critical["evidence"], "predicted_kill_earliest_at_ms")
                .expect("the earliest kill") as i64;
        let wide_latest = oom::evidence(&wide_critical["evidence"], "predicted_kill_latest_at_ms")
            .map(|v| v as i64);
        let off = |ms: i64| format!("{:+.0} s", (ms - kill_ms) as f64 / 1000.0);
        let wide_line = format!(
            "{}: replayed at 99 %: critical {:.0} s before the kill, range {} .. {}",
            case.name,
            (kill_ms - wide_fired_ms) as f64 / 1000.0,
            off(wide_earliest),
            wide_latest.map_or("unbounded".to_string(), off)
        );
        println!("{wide_line}");
        recording.report.push(wide_line.clone());
        // Reported, not bounded: in one of 12 leaks recorded in issue 14's
        // soak, Go 1.27's fast leak (5 s samples), the kill came 7 s after
        // the 90 % range's latest end and 0.5 s inside the 99 % one.
        if !(wide_earliest <= kill_ms && wide_latest.is_none_or(|l| kill_ms <= l)) {
            eprintln!("{wide_line}: the kill outside the 99 % range");
        }
        // Not bounded: the process's kill point is the limit minus what the
        // rest of the cgroup uses (usage - RSS), one more estimate.
        let process = measure(process_critical, kill_ms, leak_ms);
        recording
            .report
            .push(format!("{}: {}", case.name, process.line));
        // Issue 14: a slow sawtooth leak is critical for 70 % of it, within
        // 20 % of the time left (was 60 % and 25 %; CI once saw 36.7 %).
        let (min_lead, max_error) = if case.name.starts_with("slow") {
            (0.7, 0.2)
        } else {
            (0.6, 0.25)
        };
        // Why these bounds hold on a loaded 2-core machine: the leaks are
        // paced by the wall clock (workloads/pacer.go: a tick that comes late,
        // behind a GC, the 160 MiB spike's fill or the other processes, is
        // made up at once), so the leak grows at its rate from LEAK_START to
        // the kill whatever CPU the workload gets, and the kill instant is the
        // kernel's, polled every 100 ms; the agent's samples are stamped with
        // when they were read. Load moves only when each sample lands.
        // Known limit of the old forecast (measured with scripts/soak.sh,
        // reported in issue 13): the slow leaks' garbage (64 KiB a tick)
        // piles up during each 10 s hold of the spike (no GC runs: the heap
        // goal is above the limit), a ramp of about 4 MiB per 5 s inside each
        // 20 s period, more than the leak adds in a period; the 5 s samples
        // drift through that ramp, and a critical from a 70 s trend (3.5
        // periods) once had a slope 34% above the leak's (27% error).
        // And a stall that the pacer makes up at once lifts the series by a
        // step (the sawtooth's phase slips against the 5 s samples): in a
        // soak with five tests at once ~4 MiB steps inside 85-90 s trends gave two first
        // criticals 28-29% early, until the forecast took such one-off
        // steps out of its slope (trend::step_free_share) and a critical
        // waited for 100 s of trend (ForecastConfig::
        // critical_min_span_seconds; replayed: 11% and 14% off, 76% and
        // 73% of the leak ahead).
        assert!(
            lead_ms as f64 >= min_lead * leak_ms as f64,
            "{}: lead {lead_ms} ms of a {leak_ms} ms leak",
            case.name
        );
        assert!(error <= max_error, "{}: error {error}", case.name);
        // Replay of the same history fires the same critical at the same instant.
        let replay_fired =
            oom::first_replayed_critical(&replayed, critical["target"].as_str().unwrap())
                .map(|(ms, _)| ms);
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
        recording.report.push(line);
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
    let _ = writeln!(std::io::stderr(), "{}", recording.report.join("\n"));
    drop(cases);
}
