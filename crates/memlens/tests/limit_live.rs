//! Issue 14 item 3 on real cgroups: near limit and thrashing, live in
//! `memlens watch --interval 1` and in `memlens replay` of its history.
//!
//! One agent watches, side by side, each in its own 256 MiB v1 memory
//! cgroup (Go 1.19 and Go 1.27 each):
//!
//! - `level-off`: a heap that climbs for 90 s to 120 MiB live and stays
//!   there, GOMEMLIMIT=250MiB: Go's scavenger holds the runtime's memory at
//!   95 % of GOMEMLIMIT, ~238 MiB, 93 % of the limit — whatever the Go
//!   version's overheads (without GOMEMLIMIT, 112 MiB live sat at 88.6 %
//!   of the limit on Go 1.27 and 92.4 % on Go 1.19). Exactly one near-limit
//!   finding on the cgroup, at most one time-to-OOM critical per target, no
//!   finding fired twice, and no kill.
//! - `file-thrash`: a 176 MiB heap beside a 96 MiB file read in a
//!   scattered order with no readahead for 75 s: about 76 MiB of the limit
//!   is left for the file, so the kernel keeps evicting its pages and each
//!   touch of one is a refault and a major fault (~4,000 a second measured
//!   here). A thrashing finding while it lasts, checked against the
//!   cgroup's own counters read by the test; cleared after it stops.
//! - `steady` (healthy): neither finding.
//!
//! The /metrics endpoint shows the thrashing finding while it lasts and the
//! cgroup's refault and major fault counters (bracketed by the test's own
//! reads), and `promtool check metrics` accepts it.
//!
//! Why the bounds hold on a loaded 2-core machine: every phase is paced by
//! the wall clock (the climb catches up on a late tick; the thrash touches
//! what is due by now), the plateau is set by GOMEMLIMIT, not by timing,
//! and the thrash refaults ~6 times the rate that fires (a slowed workload
//! still refaults far above it). The deadlines are the detectors' own spans
//! (a 30 s rate window, the 20 s hold the test's config sets before a
//! clear) with a minute of slack for late agent cycles.

use memlens_testkit::{
    free_loopback_port, http_get, ChildGuard, GoToolchain, TestCgroup, Workload, WorkloadSpec,
};
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/metrics.rs"]
mod metrics;
use cli::{memlens, query};
use metrics::promtool_check;

const LIMIT_BYTES: u64 = 256 << 20;
const NEAR_LIMIT: &str = "memory.near_limit";
const THRASHING: &str = "memory.thrashing";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    LevelOff,
    Thrash,
    Healthy,
}

/// The cgroup's own counters at one moment, as the test reads them.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at_ms: i64,
    file_refaults: f64,
    major_faults: f64,
    working_set_bytes: f64,
}

/// One workload in its own cgroup.
struct Case {
    name: String,
    kind: Kind,
    cgroup: TestCgroup,
    workload: Workload,
    dir: PathBuf,
    thrash: Option<(i64, i64)>,
    counters: Vec<Counters>,
}

impl Case {
    fn read(&self) -> Counters {
        let stat = self.cgroup.read("memory.stat");
        let key = |k: &str| -> f64 {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{}: no {k} in memory.stat", self.name))
        };
        Counters {
            at_ms: now_ms(),
            file_refaults: key("total_workingset_refault_file"),
            major_faults: key("total_pgmajfault"),
            working_set_bytes: self.cgroup.usage_bytes() as f64 - key("total_inactive_file"),
        }
    }

    fn key(&self) -> String {
        format!("cgroup:{}", self.cgroup.path_in_hierarchy())
    }

    fn about(&self, target: &str) -> bool {
        target == self.key() || target.starts_with(&format!("process:{}:", self.workload.pid()))
    }

    /// The counters' rate per second between `from_ms` and `to_ms`, from the
    /// test's own reads nearest inside them.
    fn rate(&self, from_ms: i64, to_ms: i64, of: fn(&Counters) -> f64) -> f64 {
        let inside: Vec<&Counters> = self
            .counters
            .iter()
            .filter(|c| c.at_ms >= from_ms && c.at_ms <= to_ms)
            .collect();
        let (a, b) = (inside.first().unwrap(), inside.last().unwrap());
        (of(b) - of(a)) / ((b.at_ms - a.at_ms) as f64 / 1000.0)
    }
}

fn start(toolchain: &GoToolchain, kind: Kind) -> Case {
    let cgroup = TestCgroup::with_limit(LIMIT_BYTES);
    let dir = std::env::temp_dir().join(format!(
        "memlens-limit-live-{}-{}",
        std::process::id(),
        cgroup.path_in_hierarchy().trim_start_matches('/')
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = WorkloadSpec::new(toolchain, "steady").arg("--duration=0");
    let spec = match kind {
        Kind::LevelOff => WorkloadSpec::new(toolchain, "level-off")
            .arg("--duration=0")
            .arg("--plateau-mib=120")
            .arg("--climb-for=90s")
            .arg("--garbage-kib=2048")
            .env("GOMEMLIMIT", "250MiB"),
        Kind::Thrash => WorkloadSpec::new(toolchain, "file-thrash")
            .arg("--duration=0")
            .arg("--heap-mib=176")
            .arg("--file-mib=96")
            .arg("--thrash-for=75s")
            .arg("--thrash-mib-per-second=32")
            .arg(format!("--file-dir={}", dir.display())),
        Kind::Healthy => spec.arg("--alloc-mib-per-tick=2"),
    };
    let workload = spec.start_in(&cgroup);
    Case {
        name: format!("{kind:?} ({})", toolchain.name),
        kind,
        cgroup,
        workload,
        dir,
        thrash: None,
        counters: Vec::new(),
    }
}

fn evidence(finding: &Value, column: &str, name: &str) -> f64 {
    let list: Value = serde_json::from_str(finding[column].as_str().unwrap()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_f64())
        .unwrap_or_else(|| panic!("no evidence {name} in {finding:#}"))
}

#[test]
fn near_limit_and_thrashing_fire_once_per_episode_and_clear_after() {
    let go119 = GoToolchain::go119();
    let go127 = GoToolchain::go127();
    let mut cases = Vec::new();
    for toolchain in [&go119, &go127] {
        for kind in [Kind::LevelOff, Kind::Thrash, Kind::Healthy] {
            cases.push(start(toolchain, kind));
        }
    }
    let data = std::env::temp_dir().join(format!("memlens-limit-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_str().unwrap().to_string();
    std::fs::create_dir_all(&data).unwrap();
    // A 20 s hold (the default is 5 minutes) so that the clear after the
    // thrash is seen within the test's time; replay reads the same file.
    let config = data.join("memlens.toml");
    std::fs::write(&config, "[findings]\nhold = \"20s\"\n").unwrap();
    let config_arg = config.to_str().unwrap().to_string();
    let port = free_loopback_port();
    let mut args = vec![
        "watch".to_string(),
        "--config".to_string(),
        config_arg.clone(),
        "--data".to_string(),
        data_arg.clone(),
        "--interval".to_string(),
        "1".to_string(),
        "--no-profiles".to_string(),
        "--quiet".to_string(),
        "--listen".to_string(),
        port.to_string(),
    ];
    for case in &cases {
        args.push("--pid".to_string());
        args.push(case.workload.pid().to_string());
    }
    let mut agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );
    let addr = format!("127.0.0.1:{port}");
    let scrape = || http_get(&addr, "/metrics").unwrap_or_default();

    for case in cases.iter_mut().filter(|c| c.kind == Kind::Thrash) {
        case.workload
            .wait_for_line("THRASH_START", Duration::from_secs(60));
        case.thrash = Some((now_ms(), 0));
    }
    // Read the cgroups' counters every second until the thrash is over and
    // its finding cleared on /metrics; scrape once while it lasts.
    let mut scraped: Option<(String, Vec<Counters>, Vec<Counters>)> = None;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut thrash_cleared_ms: Option<i64> = None;
    loop {
        for case in cases.iter_mut() {
            let c = case.read();
            case.counters.push(c);
            if case.kind == Kind::Thrash
                && case.thrash.is_some_and(|t| t.1 == 0)
                && case
                    .workload
                    .stdout_lines()
                    .iter()
                    .any(|l| l.starts_with("THRASH_END"))
            {
                case.thrash.as_mut().unwrap().1 = now_ms();
            }
        }
        let thrashing_now = |text: &str| {
            cases.iter().filter(|c| c.kind == Kind::Thrash).all(|c| {
                text.lines().any(|l| {
                    l.starts_with("memlens_finding_active{")
                        && l.contains(&format!("finding=\"{THRASHING}\""))
                        && l.contains(&format!("cgroup=\"{}\"", c.cgroup.path_in_hierarchy()))
                })
            })
        };
        let thrash_over = cases
            .iter()
            .filter(|c| c.kind == Kind::Thrash)
            .all(|c| c.thrash.is_some_and(|t| t.1 > 0));
        if scraped.is_none() && !thrash_over {
            // The test's reads, then a scrape of a cycle that started after
            // them (its end minus its duration), then the test's reads again:
            // the exported counters lie between.
            let before: Vec<Counters> = cases.iter().map(Case::read).collect();
            let text = (0..50)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(200));
                    scrape()
                })
                .find(|text| {
                    let end =
                        metrics::sample(text, "memlens_agent_last_cycle_timestamp_seconds", "");
                    let took = metrics::sample(text, "memlens_agent_cycle_duration_seconds", "");
                    end.zip(took).is_some_and(|(end, took)| {
                        ((end - took) * 1000.0) as i64
                            > before.iter().map(|c| c.at_ms).max().unwrap()
                    })
                })
                .expect("a cycle within 10 s");
            if thrashing_now(&text) {
                let after: Vec<Counters> = cases.iter().map(Case::read).collect();
                scraped = Some((text, before, after));
            }
        }
        if thrash_over && thrash_cleared_ms.is_none() && !thrashing_now(&scrape()) {
            thrash_cleared_ms = Some(now_ms());
        }
        let plateau_for = cases.iter().filter(|c| c.kind == Kind::LevelOff).all(|c| {
            c.workload
                .stdout_lines()
                .iter()
                .any(|l| l.starts_with("PLATEAU"))
        });
        if thrash_cleared_ms.is_some() && plateau_for {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deadline: thrash over {thrash_over}, cleared {thrash_cleared_ms:?}, plateau {plateau_for}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // A minute of plateau after the last of them reached it, so a flap of
    // near limit would show.
    for _ in 0..60 {
        for case in cases.iter_mut() {
            let c = case.read();
            case.counters.push(c);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // SAFETY: kill has no memory preconditions; the pid is our live child.
    unsafe { libc::kill(agent.pid(), libc::SIGTERM) };
    let _ = agent.0.wait();

    let findings = query(
        &data_arg,
        "SELECT finding, severity, target, fired_ms, cleared_ms, evidence, evidence_at_clear \
         FROM findings ORDER BY fired_ms, id",
    );
    let replayed: Value = serde_json::from_str(&memlens(&[
        "replay",
        "--data",
        &data_arg,
        "--config",
        &config_arg,
        "--json",
    ]))
    .unwrap();
    let mut report = Vec::new();

    // /metrics while thrashing: promtool-clean, the cgroups' counters
    // between the test's reads just before and just after the scrape.
    let (text, before, after) = scraped.expect("the thrashing finding on /metrics while it lasted");
    promtool_check(&text);
    for (i, case) in cases.iter().enumerate() {
        let label = format!("cgroup=\"{}\"", case.cgroup.path_in_hierarchy());
        for (family, of) in [
            (
                "memlens_cgroup_memory_file_refaults_total",
                (|c: &Counters| c.file_refaults) as fn(&Counters) -> f64,
            ),
            (
                "memlens_cgroup_memory_major_faults_total",
                |c: &Counters| c.major_faults,
            ),
        ] {
            let value = metrics::sample(&text, family, &label)
                .unwrap_or_else(|| panic!("{}: no {family} on /metrics", case.name));
            assert!(
                (of(&before[i])..=of(&after[i])).contains(&value),
                "{}: {family} {value} not between the test's reads {} and {}",
                case.name,
                of(&before[i]),
                of(&after[i])
            );
        }
    }

    for case in &cases {
        let mine: Vec<&Value> = findings
            .iter()
            .filter(|f| case.about(f["target"].as_str().unwrap_or("")))
            .collect();
        let of = |id: &str, target: &str| -> Vec<&Value> {
            mine.iter()
                .copied()
                .filter(|f| f["finding"] == id && f["target"] == target)
                .collect()
        };
        // No finding fires twice on one target (no flapping).
        let mut fires: Vec<(String, String, String)> = mine
            .iter()
            .map(|f| {
                (
                    f["finding"].as_str().unwrap().to_string(),
                    f["severity"].as_str().unwrap().to_string(),
                    f["target"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        fires.sort();
        let fired_count = fires.len();
        fires.dedup();
        assert_eq!(
            fires.len(),
            fired_count,
            "{}: a finding fired twice: {mine:#?}",
            case.name
        );
        assert_eq!(case.cgroup.oom_kill_count(), 0, "{}: killed", case.name);
        match case.kind {
            Kind::Healthy => {
                let noisy: Vec<&&Value> = mine
                    .iter()
                    .filter(|f| f["finding"] == NEAR_LIMIT || f["finding"] == THRASHING)
                    .collect();
                assert!(noisy.is_empty(), "{}: {noisy:#?}", case.name);
            }
            Kind::LevelOff => {
                let near = of(NEAR_LIMIT, &case.key());
                assert_eq!(near.len(), 1, "{}: {mine:#?}", case.name);
                let near = near[0];
                assert!(
                    near["cleared_ms"].is_null(),
                    "{}: cleared on the plateau: {near:#}",
                    case.name
                );
                // Its working set is the cgroup's, as the test read it
                // around then (within 4 MiB: a GC cycle moves it).
                let fired = near["fired_ms"].as_i64().unwrap();
                let ws = evidence(near, "evidence", "working_set_bytes");
                let seen: Vec<f64> = case
                    .counters
                    .iter()
                    .filter(|c| (c.at_ms - fired).abs() <= 15_000)
                    .map(|c| c.working_set_bytes)
                    .collect();
                let (lo, hi) = seen
                    .iter()
                    .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
                assert!(
                    ws >= lo - 4.0 * 1048576.0 && ws <= hi + 4.0 * 1048576.0,
                    "{}: evidence {ws} vs the test's reads {lo}..{hi}",
                    case.name
                );
                // The plateau, as the test read it over its last minute:
                // its peaks at 90 % of the limit or more (the detector
                // compares a 15 s peak: the scavenger's releases dip it).
                let end_ms = case.counters.last().unwrap().at_ms;
                let plateau: Vec<f64> = case
                    .counters
                    .iter()
                    .filter(|c| c.at_ms >= end_ms - 60_000)
                    .map(|c| c.working_set_bytes / LIMIT_BYTES as f64)
                    .collect();
                let low = plateau.iter().copied().fold(f64::MAX, f64::min);
                let last = plateau.iter().copied().fold(0.0, f64::max);
                assert!(
                    last >= 0.9,
                    "{}: the plateau peaks at {last:.3} of the limit",
                    case.name
                );
                for target in mine.iter().map(|f| f["target"].as_str().unwrap()) {
                    let criticals = mine
                        .iter()
                        .filter(|f| {
                            f["finding"] == "memory.time_to_oom"
                                && f["severity"] == "critical"
                                && f["target"] == target
                        })
                        .count();
                    assert!(
                        criticals <= 1,
                        "{}: {criticals} criticals on {target}",
                        case.name
                    );
                }
                let line = format!(
                    "{}: near limit fired {:.0} s after the climb started at {:.1}% of the limit \
                     (headroom {:.1} MiB, needed {:.1} MiB); plateau {:.1}-{:.1}%; time-to-OOM \
                     criticals (cgroup and process together): {}",
                    case.name,
                    (fired - case.counters[0].at_ms) as f64 / 1000.0,
                    evidence(near, "evidence", "kill_point_share") * 100.0,
                    evidence(near, "evidence", "headroom_bytes") / 1048576.0,
                    evidence(near, "evidence", "needed_headroom_bytes") / 1048576.0,
                    low * 100.0,
                    last * 100.0,
                    mine.iter()
                        .filter(
                            |f| f["finding"] == "memory.time_to_oom" && f["severity"] == "critical"
                        )
                        .count()
                );
                report.push(line);
                check_replay(&replayed, near, NEAR_LIMIT, &case.name);
            }
            Kind::Thrash => {
                let (start_ms, end_ms) = case.thrash.unwrap();
                let thrash = of(THRASHING, &case.key());
                assert_eq!(thrash.len(), 1, "{}: {mine:#?}", case.name);
                let thrash = thrash[0];
                let fired = thrash["fired_ms"].as_i64().unwrap();
                let cleared = thrash["cleared_ms"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{}: never cleared: {thrash:#}", case.name));
                // The cgroup's own counters: it did thrash, far above the
                // rate that fires (1% of the limit a second: 640 pages/s).
                let refaults = case.rate(start_ms, end_ms, |c| c.file_refaults);
                let majors = case.rate(start_ms, end_ms, |c| c.major_faults);
                assert!(
                    refaults > 2.0 * 640.0,
                    "{}: {refaults:.0} refaults/s",
                    case.name
                );
                assert!(
                    fired > start_ms && fired < end_ms,
                    "{}: fired {fired} outside {start_ms}..{end_ms}",
                    case.name
                );
                assert!(
                    cleared > end_ms && cleared < end_ms + 90_000,
                    "{}: cleared {} s after the thrash ended",
                    case.name,
                    (cleared - end_ms) as f64 / 1000.0
                );
                // The evidence at firing against the test's own reads over
                // the same window (the agent's reads are a moment apart).
                let window_ms = (evidence(thrash, "evidence", "window_seconds") * 1000.0) as i64;
                let seen = case.rate(fired - window_ms, fired, |c| c.file_refaults);
                let said = evidence(thrash, "evidence", "refaults_per_second");
                assert!(
                    (said - seen).abs() <= 0.3 * seen.max(said),
                    "{}: evidence {said:.0} refaults/s, the cgroup's counter {seen:.0}",
                    case.name
                );
                let line = format!(
                    "{}: thrash {:.0} s at {refaults:.0} refaults/s and {majors:.0} major faults/s \
                     (the cgroup's counters); thrashing fired {:.0} s after it started with \
                     {said:.0} refaults/s, host PSI some {:.1}%, cleared {:.0} s after it ended",
                    case.name,
                    (end_ms - start_ms) as f64 / 1000.0,
                    (fired - start_ms) as f64 / 1000.0,
                    evidence(thrash, "evidence", "pressure_some_percent"),
                    (cleared - end_ms) as f64 / 1000.0
                );
                report.push(line);
                check_replay(&replayed, thrash, THRASHING, &case.name);
            }
        }
    }
    if let Some(cleared) = thrash_cleared_ms {
        report.push(format!(
            "/metrics: thrashing gone {:.0} s after the last thrash ended",
            (cleared
                - cases
                    .iter()
                    .filter_map(|c| c.thrash.map(|t| t.1))
                    .max()
                    .unwrap()) as f64
                / 1000.0
        ));
    }
    // Straight to stderr, past the harness's capture: every CI log shows it.
    let _ = writeln!(std::io::stderr(), "{}", report.join("\n"));
    for case in &cases {
        let _ = std::fs::remove_dir_all(&case.dir);
    }
    drop(cases);
    let _ = std::fs::remove_dir_all(&data);
}

/// `memlens replay` of the same history fires the live finding at the same
/// instant (and clears it at the same one when it cleared).
fn check_replay(replayed: &Value, live: &Value, id: &str, name: &str) {
    let same = replayed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["id"] == id
                && f["target"]["key"] == live["target"]
                && f["fired_at_ms"] == live["fired_ms"]
        })
        .unwrap_or_else(|| panic!("{name}: replay has no {id} fired at {}", live["fired_ms"]));
    if let Some(cleared) = live["cleared_ms"].as_i64() {
        assert_eq!(
            same["cleared_at_ms"].as_i64(),
            Some(cleared),
            "{name}: replay's clear"
        );
    }
}
