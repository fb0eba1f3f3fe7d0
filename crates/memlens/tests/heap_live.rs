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

use memlens_testkit::{free_loopback_port, http_get, ChildGuard, GoToolchain, TestCgroup};
use memlens_testkit::{Workload, WorkloadSpec};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const SAMPLES: [(&str, &str); 4] = [
    ("alloc_objects", "none"),
    ("alloc_space", "B"),
    ("inuse_objects", "none"),
    ("inuse_space", "B"),
];

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("memlens-heap-live-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// GET `path` from `addr` as bytes (profiles are binary), 200 only.
fn fetch_bytes(addr: &str, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {addr}{path}: not an HTTP response"));
    let head = String::from_utf8_lossy(&response[..split]);
    assert!(
        head.lines().next().unwrap_or_default().contains(" 200"),
        "GET {addr}{path}: {head}"
    );
    response[split + 4..].to_vec()
}

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

fn number(text: &str) -> i64 {
    let digits = text.trim_end_matches("none").trim_end_matches('B');
    digits
        .parse()
        .unwrap_or_else(|e| panic!("pprof printed {text:?}, not an exact number: {e}"))
}

/// What `go tool pprof -top` printed: total and (flat, cum) per function.
fn go_tool_top(file: &Path, sample: &str, unit: &str) -> (i64, BTreeMap<String, (i64, i64)>) {
    let go = GoToolchain::go127();
    let out = Command::new(&go.go_binary)
        .args([
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-edgefraction=0",
        ])
        .arg(format!("-sample_index={sample}"))
        .arg(format!("-unit={unit}"))
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("run go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut total = 0;
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Showing nodes accounting for ") {
            let of = rest.split(" of ").nth(1).expect("'of' in the Showing line");
            total = number(of.split_whitespace().next().unwrap());
            continue;
        }
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() >= 6, "pprof line {line:?}");
        let name = fields[5..]
            .join(" ")
            .trim_end_matches(" (partial-inline)")
            .trim_end_matches(" (inline)")
            .to_string();
        let pair = (number(fields[0]), number(fields[3]));
        assert!(rows.insert(name.clone(), pair).is_none(), "{name} twice");
    }
    (total, rows)
}

/// `memlens heap FILE --sample S --top 0 --json` equals pprof for all four samples.
fn check_against_pprof(file: &Path, label: &str) {
    let path = file.to_str().unwrap();
    for (sample, unit) in SAMPLES {
        let (want_total, want) = go_tool_top(file, sample, unit);
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
        fetch_bytes(workload.listen_addr(), "/debug/pprof/heap"),
    )
    .unwrap();
    let first_tick = current_tick(&workload).expect("ticks after LEAK_START");
    wait_for_tick(&workload, first_tick + 30);
    let newer = dir.join("newer.pb.gz");
    std::fs::write(
        &newer,
        fetch_bytes(workload.listen_addr(), "/debug/pprof/heap"),
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
    let (_, want) = go_tool_top_base(&newer, &older);
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

/// `go tool pprof -top -base OLDER NEWER` (inuse_space, exact bytes).
fn go_tool_top_base(newer: &Path, older: &Path) -> (i64, BTreeMap<String, (i64, i64)>) {
    let go = GoToolchain::go127();
    let out = Command::new(&go.go_binary)
        .args(["tool", "pprof", "-top", "-nodefraction=0", "-unit=B"])
        .arg(format!("-base={}", older.display()))
        .arg(newer)
        .env("GOTOOLCHAIN", "local")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("run go tool pprof -base");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !in_table || fields.len() < 6 {
            continue;
        }
        rows.insert(
            fields[5..].join(" "),
            (number(fields[0]), number(fields[3])),
        );
    }
    (0, rows)
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
        .current_dir(&dir.0)
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
    std::fs::write(&file, fetch_bytes(&addr, "/debug/pprof/heap")).unwrap();
    guard.kill();
    check_against_pprof(&file, "prometheus");
}
