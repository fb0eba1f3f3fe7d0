//! `memlens goroutines` against live Go processes, checked against independent
//! sources: the goroutine count the workload was told to leak (and printed), the
//! runtime's own total (`goroutine profile: total N` of `?debug=1`), the
//! `go_goroutines` gauge of Debian's Prometheus, node-exporter and Alertmanager,
//! and the 64 MiB size at which the runtime cuts `?debug=2`.

use memlens_testkit::{
    free_loopback_port, http_get, ChildGuard, GoToolchain, TestCgroup, Workload, WorkloadSpec,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "common/goroutines.rs"]
mod goroutine_counts;
use goroutine_counts::{assert_between_runtime_counts, runtime_total, DISCOVERY_PROBES_PER_PORT};

const MIB: u64 = 1 << 20;

fn memlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memlens"))
        .arg("goroutines")
        .args(args)
        .output()
        .expect("run memlens")
}

/// Runs `memlens goroutines ARGS --json` and returns the parsed output.
fn goroutines_json(args: &[&str]) -> Value {
    let out = memlens(&[args, &["--json", "--top", "0"]].concat());
    assert!(
        out.status.success(),
        "memlens goroutines {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("goroutines --json is JSON")
}

/// The group whose leaf frame is `function`.
fn group_with_leaf<'a>(report: &'a Value, function: &str) -> Option<&'a Value> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["frames"][0]["function"] == function)
}

/// Checks the leaked group of a goroutine-leak workload in `report`.
fn check_leak_report(report: &Value, leaked: u64, proven: bool, what: &str) {
    let first = &report["groups"][0];
    assert_eq!(
        first["frames"][0]["function"], "main.leakyWorker",
        "{what}: the leak is not ranked first: {report:#}"
    );
    assert_eq!(first["count"], leaked, "{what}: {first:#}");
    assert_eq!(
        first["created_by"][0]["function"], "main.leakyWorkerSpawner",
        "{what}: {first:#}"
    );
    assert_eq!(first["created_by"][0]["count"], leaked, "{what}");
    let detection = &report["leak_detection"];
    if proven {
        assert_eq!(detection["method"], "goroutineleak", "{what}: {detection}");
        assert_eq!(detection["proven_leaked_goroutines"], leaked, "{what}");
        assert_eq!(first["verdict"], "proven", "{what}: {first:#}");
        assert_eq!(first["leaked"], leaked, "{what}");
        let proven_groups = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["verdict"] == "proven")
            .count();
        assert_eq!(proven_groups, 1, "{what}: only the leak is proven");
    } else {
        assert_eq!(detection["method"], "heuristics", "{what}: {detection}");
        assert!(
            detection["note"].as_str().unwrap().contains("heuristics"),
            "{what}: {detection}"
        );
        assert_eq!(detection["proven_leaked_goroutines"], 0, "{what}");
        assert_eq!(first["verdict"], "suspected", "{what}: {first:#}");
        assert_eq!(first["states"][0]["state"], "chan receive", "{what}");
    }
    // The creation-site view has the spawner with every leaked goroutine.
    let site = report["by_creation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["site"]["function"] == "main.leakyWorkerSpawner")
        .unwrap_or_else(|| panic!("{what}: no creation site row: {report:#}"));
    assert_eq!(site["site"]["count"], leaked, "{what}");
    assert_eq!(site["leaked"], if proven { leaked } else { 0 }, "{what}");
    // Every goroutine is in exactly one group.
    let grouped: u64 = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(grouped, report["total_goroutines"], "{what}");
}

#[test]
fn leaked_group_is_found_on_go119_and_go127_by_pid_and_url() {
    const LEAKED: u64 = 321;
    let started: Vec<(GoToolchain, TestCgroup, Workload)> = GoToolchain::all()
        .into_iter()
        .map(|toolchain| {
            let cgroup = TestCgroup::with_limit(512 * MIB);
            let workload = WorkloadSpec::new(&toolchain, "goroutine-leak")
                .arg(format!("--goroutines={LEAKED}"))
                .arg("--duration=60s")
                .start_in(&cgroup);
            (toolchain, cgroup, workload)
        })
        .collect();
    for (toolchain, _cgroup, workload) in &started {
        workload.wait_for_line("SETUP_DONE", Duration::from_secs(30));
        let proven = toolchain.name == "go1.27";
        let runtime_before = runtime_total(workload.listen_addr());
        let by_pid = goroutines_json(&[&workload.pid().to_string()]);
        let runtime_between = runtime_total(workload.listen_addr());
        check_leak_report(
            &by_pid,
            LEAKED,
            proven,
            &format!("{} by PID", toolchain.name),
        );
        let formats: Vec<&str> = by_pid["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["format"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if proven {
            &["protobuf", "debug2", "protobuf"]
        } else {
            &["protobuf", "debug2"]
        };
        assert_eq!(formats, expected, "{}", toolchain.name);
        let total = by_pid["total_goroutines"].as_u64().unwrap();
        assert!(total >= LEAKED, "{}: memlens total {total}", toolchain.name);
        // By PID memlens probes the workload's one port before it reads.
        assert_between_runtime_counts(
            &format!("{} by PID", toolchain.name),
            total,
            runtime_before,
            runtime_between,
            DISCOVERY_PROBES_PER_PORT,
        );
        let url = format!("http://{}", workload.listen_addr());
        let by_url = goroutines_json(&[&url]);
        let runtime_after = runtime_total(workload.listen_addr());
        // By URL the counting profile is memlens's first request.
        assert_between_runtime_counts(
            &format!("{} by URL", toolchain.name),
            by_url["total_goroutines"].as_u64().unwrap(),
            runtime_between,
            runtime_after,
            0,
        );
        check_leak_report(
            &by_url,
            LEAKED,
            proven,
            &format!("{} by URL", toolchain.name),
        );
        // The table for people says the same.
        let out = memlens(&[&url]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(text.contains("main.leakyWorkerSpawner"), "{text}");
        let leaks_line = text.lines().find(|l| l.contains("leaks:")).unwrap();
        let method = if proven {
            "goroutineleak"
        } else {
            "heuristics"
        };
        assert!(leaks_line.contains(method), "{leaks_line}");
    }
}

/// A Debian service started on a free loopback port, killed on drop.
struct Service {
    child: ChildGuard,
    addr: String,
    dir: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.child.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn start_service(
    binary: &str,
    package: &str,
    args: impl Fn(&str, &Path) -> Vec<String>,
) -> Service {
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: install the Debian package {package} (./scripts/test.sh does)"
    );
    let dir = std::env::temp_dir().join(format!(
        "memlens-goroutines-{package}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let child = ChildGuard(
        Command::new(binary)
            .args(args(&addr, &dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}")),
    );
    Service { child, addr, dir }
}

/// Waits until `ready_path` and the pprof index answer.
fn wait_ready(service: &mut Service, name: &str, ready_path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http_get(&service.addr, ready_path).is_ok()
            && http_get(&service.addr, "/debug/pprof/").is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = service.child.0.try_wait() {
            panic!("{name} exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not answer on {} within 30 s",
            service.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn go_goroutines_gauge(addr: &str) -> u64 {
    let text = http_get(addr, "/metrics").expect("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("go_goroutines "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no go_goroutines gauge on {addr}")) as u64
}

#[test]
fn debian_services_totals_match_their_go_goroutines_gauge() {
    let mut services = vec![
        (
            "prometheus",
            start_service("/usr/bin/prometheus", "prometheus", |addr, dir| {
                let config = dir.join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
                vec![
                    format!("--config.file={}", config.display()),
                    format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
                    format!("--web.listen-address={addr}"),
                ]
            }),
        ),
        (
            "node-exporter",
            start_service(
                "/usr/bin/prometheus-node-exporter",
                "prometheus-node-exporter",
                |addr, _| vec![format!("--web.listen-address={addr}")],
            ),
        ),
        (
            "alertmanager",
            start_service(
                "/usr/bin/prometheus-alertmanager",
                "prometheus-alertmanager",
                |addr, dir| {
                    let config = dir.join("alertmanager.yml");
                    std::fs::write(
                        &config,
                        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
                    )
                    .unwrap();
                    vec![
                        format!("--config.file={}", config.display()),
                        format!("--storage.path={}", dir.join("data").display()),
                        format!("--web.listen-address={addr}"),
                        "--cluster.listen-address=".to_string(),
                    ]
                },
            ),
        ),
    ];
    for (name, service) in &mut services {
        let ready_path = if *name == "node-exporter" {
            "/metrics"
        } else {
            "/-/ready"
        };
        wait_ready(service, name, ready_path);
    }
    for (name, service) in &services {
        // The runtime's own count (`?debug=1`) before and after memlens, and
        // the service's go_goroutines gauge around both. The gauge is taken
        // inside the test's /metrics request, by client_golang's Gather: on top
        // of the service's own goroutines it counts that request's connection
        // and reader (2), the collect worker running the Go collector (1), and
        // 0..1 goroutine closing the metric channels and 0..(collectors - 1)
        // more collect workers, which Gather starts whenever no metric is
        // ready: how many depends on scheduling (prometheus: 3 to 5 above the
        // runtime's count on a loaded host). So the gauge bounds memlens from
        // above only: memlens's count (the service's own + 2 + what its
        // requests leave, see goroutine_counts) is at most the gauge - 3 + 2
        // + 1 (the test's request before memlens) + the discovery probes.
        let gauge_before = go_goroutines_gauge(&service.addr);
        let runtime_before = runtime_total(&service.addr);
        let report = goroutines_json(&[&service.child.pid().to_string()]);
        let runtime_after = runtime_total(&service.addr);
        let gauge_after = go_goroutines_gauge(&service.addr);
        let total = report["total_goroutines"].as_u64().unwrap();
        assert_between_runtime_counts(
            name,
            total,
            runtime_before,
            runtime_after,
            DISCOVERY_PROBES_PER_PORT,
        );
        let gauge_bound = gauge_before.max(gauge_after) + DISCOVERY_PROBES_PER_PORT;
        assert!(
            total <= gauge_bound,
            "{name}: memlens counts {total} goroutines, go_goroutines said {gauge_before} \
             before and {gauge_after} after (at most {gauge_bound})"
        );
        let grouped: u64 = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["count"].as_u64().unwrap())
            .sum::<u64>()
            + report["ungrouped_goroutines"].as_u64().unwrap();
        assert_eq!(grouped, total, "{name}: groups add up to the total");
        assert_eq!(
            report["leak_detection"]["proven_leaked_goroutines"], 0,
            "{name}"
        );
        assert_ne!(
            report["leak_detection"]["method"], "goroutineleak",
            "{name}"
        );
        assert!(
            report["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["verdict"] != "proven"),
            "{name}: no proven leak"
        );
        assert!(report["truncation"].is_null(), "{name}");
    }
}

#[test]
fn cut_debug2_dump_of_200k_goroutines_is_flagged_and_counted_exactly() {
    // With a two-frame stack a leaked goroutine takes 181 bytes of `?debug=2`
    // (200,000 of them: 36 MB, never cut); with --leak-depth=4 (six frames,
    // closer to a real service's stacks) 200,000 pass the runtime's 64 MiB cut
    // at about 120,000.
    const LEAKED: u64 = 200_000;
    let toolchain = GoToolchain::go119();
    let cgroup = TestCgroup::with_limit(2048 * MIB);
    let workload = WorkloadSpec::new(&toolchain, "goroutine-leak")
        .arg(format!("--goroutines={LEAKED}"))
        .arg("--leak-depth=4")
        .arg("--duration=120s")
        .start_in(&cgroup);
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(60));
    let runtime_before = runtime_total(workload.listen_addr());
    let report = goroutines_json(&[&workload.pid().to_string()]);
    let cut = &report["truncation"];
    // The sources say whether the dump was read at all (a fetch past its
    // timeout is "NOT READ", and then nothing was cut): once at load 44 the
    // cut was not flagged and the cause was not kept.
    assert!(
        cut.is_object(),
        "the 64 MiB cut was not flagged: {cut}; sources: {:#}",
        report["sources"]
    );
    let shown = cut["goroutines_read"].as_u64().unwrap();
    assert!(
        shown > 1000 && shown < LEAKED,
        "the cut dump shows {shown} goroutines"
    );
    let leak = group_with_leaf(&report, "main.leakyWorker").expect("the leaked group");
    assert_eq!(
        leak["count"], LEAKED,
        "exact count from the protobuf profile"
    );
    assert_eq!(
        report["groups"][0]["frames"][0]["function"],
        "main.leakyWorker"
    );
    let total = report["total_goroutines"].as_u64().unwrap();
    let runtime_after = runtime_total(workload.listen_addr());
    assert!(
        (LEAKED..LEAKED + 20).contains(&total),
        "memlens total {total}"
    );
    assert_between_runtime_counts(
        "200k goroutines",
        total,
        runtime_before,
        runtime_after,
        DISCOVERY_PROBES_PER_PORT,
    );

    // The same dump saved to a file: flagged as cut, still exit 0.
    let dump = http_get(workload.listen_addr(), "/debug/pprof/goroutine?debug=2").unwrap();
    assert_eq!(dump.len() as u64, 64 * MIB, "the runtime's cut");
    let path = std::env::temp_dir().join(format!("memlens-cut-{}.txt", std::process::id()));
    std::fs::write(&path, &dump).unwrap();
    drop(dump);
    let out = memlens(&[path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let from_file = goroutines_json(&[path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("WARNING: the goroutine dump is cut"),
        "{text}"
    );
    assert!(from_file["truncation"].is_object());
    let read = from_file["total_goroutines"].as_u64().unwrap();
    assert!(
        read < LEAKED,
        "a cut file cannot hold every goroutine: {read}"
    );
}

#[test]
fn diff_shows_the_growth_of_the_leaked_group() {
    // 100 goroutines at once, 100 more every 1.5 s up to 300: the first batch
    // is saved, the last is read live.
    let toolchain = GoToolchain::go127();
    let cgroup = TestCgroup::with_limit(512 * MIB);
    let workload = WorkloadSpec::new(&toolchain, "goroutine-leak")
        .arg("--goroutines=300")
        .arg("--goroutine-rate=100")
        .arg("--tick=1500ms")
        .arg("--duration=60s")
        .start_in(&cgroup);
    let first = workload.wait_for_line("GOROUTINES_LEAKED", Duration::from_secs(30));
    let older_count: u64 = first.split_whitespace().nth(1).unwrap().parse().unwrap();
    let older = std::env::temp_dir().join(format!("memlens-older-{}.txt", std::process::id()));
    // The batch is announced when its goroutines are started, not when each
    // one has parked on its channel: a goroutine still on its way shows another
    // stack. Save the first dump in which the whole batch is parked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let older_text =
            http_get(workload.listen_addr(), "/debug/pprof/goroutine?debug=2").unwrap();
        std::fs::write(&older, older_text).unwrap();
        let saved = goroutines_json(&[older.to_str().unwrap()]);
        let parked = group_with_leaf(&saved, "main.leakyWorker").map(|g| g["count"].clone());
        if parked == Some(older_count.into()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first batch of {older_count} never showed parked: {parked:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(30));
    let report = goroutines_json(&[
        &workload.pid().to_string(),
        "--diff",
        older.to_str().unwrap(),
    ]);
    let out = memlens(&[
        &format!("http://{}", workload.listen_addr()),
        "--diff",
        older.to_str().unwrap(),
    ]);
    std::fs::remove_file(&older).ok();
    let diff = &report["diff"];
    let top = &diff["groups"][0];
    assert_eq!(top["frames"][0]["function"], "main.leakyWorker", "{diff:#}");
    assert_eq!(
        top["older"], older_count,
        "the saved dump came after the next batch: raise --tick"
    );
    assert_eq!(top["newer"], 300);
    assert_eq!(top["growth"], 300 - older_count as i64);
    assert_eq!(top["created_by"]["function"], "main.leakyWorkerSpawner");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.lines().any(|l| l
            .trim_start()
            .starts_with(&format!("+{}", 300 - older_count))
            && l.contains("main.leakyWorker")),
        "{text}"
    );
}

#[test]
fn bad_input_gets_one_line_naming_it_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("memlens-bad-goroutines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.join("random.bin");
    // Deterministic bytes no format accepts (a fixed LCG).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let truncated = dir.join("truncated.pb.gz");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../goruntime/testdata/captures/go1.27.3-goroutine-leak-goroutine.pb.gz");
    let whole = std::fs::read(&capture).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello\nthis is not a goroutine dump\n").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (empty.display().to_string(), "empty"),
        (random.display().to_string(), "decoded"),
        (truncated.display().to_string(), "truncated"),
        (text.display().to_string(), "not a goroutine dump"),
        ("2147483646".to_string(), "process 2147483646"),
    ];
    for (arg, expected) in &cases {
        let out = memlens(&[arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{arg}: {err}");
        assert_eq!(err.lines().count(), 1, "{arg}: {err}");
        assert!(err.starts_with("memlens: "), "{err}");
        assert!(err.contains(arg.as_str()), "{arg} not named: {err}");
        assert!(err.contains(expected), "{arg}: {err}");
        assert!(out.stdout.is_empty(), "{arg}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
