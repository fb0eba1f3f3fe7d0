//! `memlens heap` and `memlens flame` on heap profiles fetched live from the
//! workloads built with Go 1.19 and Go 1.27 and from Debian's prometheus.
//!
//! - Every function's flat and cum, for all four sample types, against
//!   `go tool pprof -top -nodefraction=0` of Go 1.27 on the same saved file
//!   (printed with `-unit=B` / `-unit=none`, so the comparison is exact).
//! - `--base`: two heap-leak profiles taken 30 ticks apart show growth in
//!   main.retainLeakChunk (cumulative: it allocates through main.newChunk), the
//!   function the workload leaks from; flat and cum growth equal what
//!   `go tool pprof -top -base` prints.
//! - map-bloat by PID: a map share above zero owned by main.runMapBloat, the
//!   function that grows the map.
//! - `flame`: the SVG names main.retainLeakChunk; with `--base` it is the
//!   differential graph (retainLeakChunk drawn red: it grew).

use memlens_testkit::{
    free_loopback_port, go_tool_pprof_top, http_get, http_get_bytes, ChildGuard, GoToolchain,
    TempDir, TestCgroup, Workload, WorkloadSpec,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const SAMPLES: [(&str, &str); 4] = [
    ("alloc_objects", "none"),
    ("alloc_space", "B"),
    ("inuse_objects", "none"),
    ("inuse_space", "B"),
];

/// Runs memlens with `args`, asserting success; returns stdout.
fn memlens(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(args)
        .output()
        .expect("run memlens");
    assert!(
        out.status.success(),
        "memlens {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn memlens_json(args: &[&str]) -> Value {
    serde_json::from_slice(&memlens(args)).expect("memlens --json is JSON")
}

/// `memlens heap FILE --sample S --top 0 --json` equals pprof for all four samples.
fn check_against_pprof(file: &Path, label: &str) {
    let path = file.to_str().unwrap();
    for (sample, unit) in SAMPLES {
        let top = go_tool_pprof_top(&GoToolchain::go127(), sample, unit, &[], &[file]);
        let (want_total, want) = (top.total, top.rows);
        let report = memlens_json(&["heap", path, "--sample", sample, "--top", "0", "--json"]);
        assert_eq!(report["sample_type"], sample, "{label}");
        assert_eq!(report["functions_omitted"], 0, "{label}");
        assert_eq!(
            report["total"].as_i64(),
            Some(want_total),
            "{label} {sample}: total"
        );
        let got: BTreeMap<String, (i64, i64)> = report["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["function"].as_str().unwrap().to_string(),
                    (f["flat"].as_i64().unwrap(), f["cum"].as_i64().unwrap()),
                )
            })
            .collect();
        assert!(
            !want.is_empty() || want_total == 0,
            "{label} {sample}: pprof printed no rows"
        );
        assert_eq!(got, want, "{label} {sample}: (flat, cum) per function");
    }
}

/// The number of the last `TICK n` line the workload printed.
fn current_tick(workload: &Workload) -> Option<u64> {
    workload.stdout_lines().iter().rev().find_map(|l| {
        l.strip_prefix("TICK ")?
            .split(' ')
            .next()?
            .parse::<u64>()
            .ok()
    })
}

/// Waits until the workload has printed a `TICK n` line with n >= `tick`.
fn wait_for_tick(workload: &Workload, tick: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if current_tick(workload).is_some_and(|n| n >= tick) {
            return;
        }
        assert!(Instant::now() < deadline, "no TICK {tick} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_heap_leak(toolchain: GoToolchain) {
    let label = format!("{} heap-leak", toolchain.version);
    let dir = TempDir::new(toolchain.name);
    let cgroup = TestCgroup::with_limit(512 * MIB);
    let workload = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--leak-kib=512")
        .arg("--garbage-kib=2048")
        .arg("--duration=0")
        .start_in(&cgroup);
    workload.wait_for_line("LEAK_START", Duration::from_secs(30));
    wait_for_tick(&workload, 10);
    let older = dir.join("older.pb.gz");
    std::fs::write(
        &older,
        http_get_bytes(workload.listen_addr(), "/debug/pprof/heap").unwrap(),
    )
    .unwrap();
    let first_tick = current_tick(&workload).expect("ticks after LEAK_START");
    wait_for_tick(&workload, first_tick + 30);
    let newer = dir.join("newer.pb.gz");
    std::fs::write(
        &newer,
        http_get_bytes(workload.listen_addr(), "/debug/pprof/heap").unwrap(),
    )
    .unwrap();
    drop(workload);

    check_against_pprof(&newer, &label);
    check_against_pprof(&older, &label);

    // Growth since the older profile, in the leaking function.
    let (newer_s, older_s) = (newer.to_str().unwrap(), older.to_str().unwrap());
    let report = memlens_json(&["heap", newer_s, "--base", older_s, "--top", "0", "--json"]);
    let growth = &report["base"];
    assert!(
        growth["total_delta"].as_i64().unwrap() > 0,
        "{label}: {growth:#}"
    );
    let leak = growth["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "main.retainLeakChunk")
        .unwrap_or_else(|| panic!("{label}: no growth row for main.retainLeakChunk: {growth:#}"));
    // It allocates through main.newChunk: the growth is in its cum.
    assert!(leak["cum_delta"].as_i64().unwrap() > 0, "{label}: {leak:#}");
    // The same growth as pprof's own -base.
    let base = format!("-base={}", older.display());
    let want = go_tool_pprof_top(
        &GoToolchain::go127(),
        "inuse_space",
        "B",
        &[&base],
        &[&newer],
    )
    .rows;
    assert_eq!(
        (leak["flat_delta"].as_i64(), leak["cum_delta"].as_i64()),
        want.get("main.retainLeakChunk")
            .map(|p| (Some(p.0), Some(p.1)))
            .unwrap_or_default(),
        "{label}: growth against go tool pprof -base"
    );

    // Flame graphs.
    let svg_path = dir.join("flame.svg");
    let svg_s = svg_path.to_str().unwrap();
    memlens(&["flame", newer_s, "-o", svg_s]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{label}");
    assert!(svg.contains("main.retainLeakChunk"), "{label}: flame graph");
    let diff_path = dir.join("diff.svg");
    let diff_s = diff_path.to_str().unwrap();
    memlens(&["flame", newer_s, "--base", older_s, "-o", diff_s]);
    let diff = std::fs::read_to_string(&diff_path).unwrap();
    assert!(
        diff.contains("main.retainLeakChunk"),
        "{label}: differential"
    );
    assert_ne!(
        diff, svg,
        "{label}: the differential graph is another drawing"
    );
    // Differential colours go to the leaf frames (the allocation sites):
    // main.newChunk called from main.retainLeakChunk grew, so it is red.
    let (title, fill) = frame_after(&diff, "main.retainLeakChunk", "main.newChunk");
    assert!(
        is_red(&fill) && title.contains("; +"),
        "{label}: the leaking frame should be red with a + delta: {title} {fill}"
    );
}

/// The title and `fill` of the first frame titled `function` drawn after the
/// frame titled `parent` (its child in an inferno SVG).
fn frame_after(svg: &str, parent: &str, function: &str) -> (String, String) {
    let at = svg
        .find(&format!("<title>{parent} "))
        .unwrap_or_else(|| panic!("no frame titled {parent}"));
    let rest = &svg[at..];
    let start = rest
        .find(&format!("<title>{function} "))
        .unwrap_or_else(|| panic!("no frame {function} after {parent}"));
    let rest = &rest[start + "<title>".len()..];
    let title = rest.split("</title>").next().unwrap().to_string();
    let fill = rest.find("fill=\"").expect("a fill after the title") + 6;
    (title, rest[fill..].split('"').next().unwrap().to_string())
}

/// `rgb(R,G,B)` with red dominant.
fn is_red(fill: &str) -> bool {
    let inner = fill.trim_start_matches("rgb(").trim_end_matches(')');
    let parts: Vec<u32> = inner
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    parts.len() == 3 && parts[0] > parts[1] && parts[0] > parts[2]
}

#[test]
fn heap_leak_go119_matches_pprof_and_shows_growth() {
    check_heap_leak(GoToolchain::go119());
}

#[test]
fn heap_leak_go127_matches_pprof_and_shows_growth() {
    check_heap_leak(GoToolchain::go127());
}

fn check_map_bloat(toolchain: GoToolchain) {
    let label = format!("{} map-bloat", toolchain.version);
    let cgroup = TestCgroup::with_limit(512 * MIB);
    let workload = WorkloadSpec::new(&toolchain, "map-bloat")
        .arg("--map-entries=300000")
        .arg("--duration=0")
        .start_in(&cgroup);
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(40));
    let report = memlens_json(&["heap", &workload.pid().to_string(), "--json"]);
    let share = &report["map_share"];
    assert!(share["value"].as_i64().unwrap() > 0, "{label}: {share:#}");
    assert!(share["percent"].as_f64().unwrap() > 0.0, "{label}");
    assert_eq!(share["binary_used"], true, "{label}: /proc/PID/exe read");
    let owners: Vec<&str> = share["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        owners.first(),
        Some(&"main.runMapBloat"),
        "{label}: owners {owners:?}"
    );
}

#[test]
fn map_bloat_go119_map_share_by_pid() {
    check_map_bloat(GoToolchain::go119());
}

#[test]
fn map_bloat_go127_map_share_by_pid() {
    check_map_bloat(GoToolchain::go127());
}

/// Debian's prometheus, on a free loopback port with a temp data dir.
#[test]
fn prometheus_heap_profile_matches_pprof() {
    let binary = "/usr/bin/prometheus";
    assert!(
        Path::new(binary).exists(),
        "{binary} is missing: ./scripts/test.sh installs the Debian package prometheus"
    );
    let dir = TempDir::new("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let mut guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&addr, "/-/ready").is_err() {
        assert!(Instant::now() < deadline, "prometheus never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = dir.join("prometheus-heap.pb.gz");
    std::fs::write(&file, http_get_bytes(&addr, "/debug/pprof/heap").unwrap()).unwrap();
    guard.kill();
    check_against_pprof(&file, "prometheus");
}
