//! Issue 8's profile-based detectors of `memlens diagnose` on real Go
//! processes, each checked against a source memlens does not use:
//!
//! - `goroutine-leak` leaking a batch every tick during the window →
//!   `go.goroutine_leak` naming `main.leakyWorker` (blocking function) and
//!   `main.leakyWorkerSpawner` (creation site); the counts at both ends are
//!   bracketed by the workload's own `GOROUTINES_LEAKED n` lines printed
//!   before and after the run. Go 1.19 by heuristics (growth), Go 1.27 proven
//!   by the goroutineleak profile.
//! - `map-bloat` after its deletes (Go 1.19 and 1.27) → `go.map_bloat` naming
//!   `main.runMapBloat`, the function that makes and fills the map; the bytes
//!   agree with `go tool pprof -top -sample_index=inuse_space` of the same
//!   (unchanging) heap profile, whose top function it must be.
//! - `heap-leak` → `go.heap_growth_site` whose stack holds
//!   `main.retainLeakChunk`; the growth is bracketed by the workload's own
//!   `retained_bytes` before and after the run.
//! - `steady` → none of the three, though its profiles were read; and
//!   `--no-profiles` reads none.
//!
//! The tests run one at a time (two shared cores).

use memlens_testkit::{GoToolchain, Workload, WorkloadSpec};
use serde_json::Value;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::{diagnose, evidence};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const MIB: f64 = 1048576.0;
const IDS: [&str; 3] = ["go.goroutine_leak", "go.heap_growth_site", "go.map_bloat"];

fn section<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// The section's finding about `pid`, if any.
fn finding_in<'a>(report: &'a Value, name: &str, pid: i32) -> Option<&'a Value> {
    let key = format!("process:{pid}:");
    section(report, name)["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| {
            f["target"]["key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&key))
        })
}

/// The section's data row of `pid`.
fn row<'a>(report: &'a Value, name: &str, pid: i32) -> &'a Value {
    section(report, name)["data"]["processes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["pid"] == pid))
        .unwrap_or_else(|| panic!("no {name} row for {pid}"))
}

/// The number of the last stdout line starting with `prefix` (`PREFIX n`, or
/// `key=n` when `key` is given).
fn last_number(w: &Workload, prefix: &str, key: Option<&str>) -> u64 {
    let lines = w.stdout_lines();
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} line"));
    number_in(line, key)
}

/// The largest number of the `prefix` lines the workload prints until two
/// more of them have come after this call: a count it had reached by the
/// call. (Its newest line may still be in the pipe when a diagnosis
/// returns: a soak once saw a dump of 440 parked goroutines while the last
/// line read said 420. A line printed before the dump can arrive after the
/// call, but the second new one was printed a whole tick after the first.)
fn number_two_lines_on(w: &Workload, prefix: &str, key: Option<&str>) -> u64 {
    let seen = w.stdout_lines().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = w.stdout_lines();
        let new: Vec<&String> = lines[seen..]
            .iter()
            .filter(|l| l.starts_with(prefix))
            .collect();
        if new.len() >= 2 {
            return new.iter().map(|l| number_in(l, key)).max().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no two new {prefix} lines within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number after `key` in `line`, or its second word.
fn number_in(line: &str, key: Option<&str>) -> u64 {
    let word = match key {
        Some(k) => line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line}")),
        None => line.split_whitespace().nth(1).expect("a number"),
    };
    word.parse()
        .unwrap_or_else(|_| panic!("a number in {line}"))
}

fn goroutine_leak(toolchain: GoToolchain, proven: bool) {
    let _serial = serial();
    let w = WorkloadSpec::new(&toolchain, "goroutine-leak")
        .arg("--goroutines=2000")
        .arg("--goroutine-rate=20")
        .arg("--tick=200ms")
        .arg("--duration=60s")
        .start();
    let pid = w.pid();
    w.wait_for_line("GOROUTINES_LEAKED", Duration::from_secs(30));
    let before = last_number(&w, "GOROUTINES_LEAKED", None);
    let report = diagnose(pid, "4", &[]);
    let after = number_two_lines_on(&w, "GOROUTINES_LEAKED", None);
    assert!(
        after < 2000,
        "the leak must still run at the window's end ({after})"
    );
    let f = finding_in(&report, "goroutine_leak", pid).unwrap_or_else(|| {
        panic!(
            "no goroutine leak finding: {:#}",
            row(&report, "goroutine_leak", pid)
        )
    });
    let text = f["recommendation"].as_str().unwrap();
    assert!(
        text.contains("main.leakyWorker ") && text.contains("main.leakyWorkerSpawner"),
        "{text}"
    );
    let r = row(&report, "goroutine_leak", pid);
    let site = &r["sites"][0];
    assert_eq!(site["blocking_function"], "main.leakyWorker", "{r:#}");
    assert_eq!(
        site["creation_function"], "main.leakyWorkerSpawner",
        "{r:#}"
    );
    assert_eq!(site["state"], "chan receive", "{r:#}");
    let (start, end) = (
        site["blocked_start"].as_u64().unwrap(),
        site["blocked_end"].as_u64().unwrap(),
    );
    // The workload prints after a batch is parked: `before` were all there
    // at the start; no more than `after` existed at the end.
    assert!(
        before <= start && end <= after,
        "{before} ≤ {start}, {end} ≤ {after}"
    );
    assert!(end >= start + 20, "grew within the window: {start} → {end}");
    assert_eq!(evidence(f, "growth_goroutines"), (end - start) as f64);
    if proven {
        assert_eq!(r["leak_method"], "goroutineleak", "{r:#}");
        assert_eq!(site["verdict"], "proven_growing", "{r:#}");
        assert_eq!(f["severity"], "critical");
        let p = site["proven_leaked"].as_u64().unwrap();
        assert!(before <= p && p <= after, "{before} ≤ {p} ≤ {after}");
    } else {
        assert_eq!(r["leak_method"], "heuristics", "{r:#}");
        assert_eq!(site["verdict"], "growing", "{r:#}");
        assert_eq!(f["severity"], "warning");
        assert_eq!(site["proven_leaked"], 0);
    }
    eprintln!(
        "{}: leaked {before} → {after} around the run; window {start} → {end}, {}",
        toolchain.name, site["verdict"]
    );
}

#[test]
fn goroutine_leak_go119_by_growth() {
    goroutine_leak(GoToolchain::go119(), false);
}

#[test]
fn goroutine_leak_go127_proven() {
    goroutine_leak(GoToolchain::go127(), true);
}

/// `go tool pprof -top -sample_index=inuse_space URL`: (function, flat bytes), top first.
fn pprof_top(toolchain: &GoToolchain, url: &str) -> Vec<(String, f64)> {
    let out = Command::new(&toolchain.go_binary)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .args([
            "tool",
            "pprof",
            "-top",
            "-unit=B",
            "-sample_index=inuse_space",
            url,
        ])
        .output()
        .expect("run go tool pprof");
    assert!(out.status.success(), "go tool pprof: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            Some((cols.get(5)?.to_string(), bytes(cols.first()?)?))
        })
        .collect()
}

/// `41280.62kB`, `40.31MB`, `512B` in bytes (pprof's units are powers of 1024).
fn bytes(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => MIB,
        "GB" => MIB * 1024.0,
        _ => return None,
    };
    Some(n.parse::<f64>().ok()? * scale)
}

fn map_bloat(toolchain: GoToolchain) {
    let _serial = serial();
    let w = WorkloadSpec::new(&toolchain, "map-bloat")
        .arg("--map-entries=300000")
        .arg("--map-keep=1000")
        .arg("--duration=60s")
        .start();
    let pid = w.pid();
    w.wait_for_line("MAP_SHRUNK", Duration::from_secs(60));
    w.wait_for_line("SETUP_DONE", Duration::from_secs(10));
    let report = diagnose(pid, "2", &[]);
    let f = finding_in(&report, "map_bloat", pid)
        .unwrap_or_else(|| panic!("no map bloat finding: {:#}", row(&report, "map_bloat", pid)));
    let r = row(&report, "map_bloat", pid);
    assert_eq!(r["binary_used"], true, "{r:#}");
    assert_eq!(r["owners"][0]["function"], "main.runMapBloat", "{r:#}");
    assert!(f["recommendation"]
        .as_str()
        .unwrap()
        .contains("main.runMapBloat"));
    // The variable is named from a live read of the maps (memlens maps): the
    // bloated one holds the most; its length and slots are the workload's own
    // header read after the deletes.
    let prefix = "MAP_HEADER var=main.bloatedMap ";
    let largest = &r["largest_map"];
    assert_eq!(largest["path"], "main.bloatedMap", "{r:#}");
    assert_eq!(
        largest["length"],
        last_number(&w, prefix, Some("len=")),
        "{r:#}"
    );
    assert_eq!(
        largest["capacity_slots"],
        last_number(&w, prefix, Some("capacity=")),
        "{r:#}"
    );
    assert!(
        f["recommendation"]
            .as_str()
            .unwrap()
            .contains("variable main.bloatedMap"),
        "{f:#}"
    );
    let ours = evidence(f, "map_bytes");
    let url = format!("http://{}/debug/pprof/heap", w.listen_addr());
    let top = pprof_top(&toolchain, &url);
    assert_eq!(top[0].0, "main.runMapBloat", "pprof's top: {top:?}");
    let rel = (ours - top[0].1).abs() / top[0].1;
    assert!(
        rel < 0.03,
        "map bytes {ours} vs pprof's flat {} of main.runMapBloat",
        top[0].1
    );
    eprintln!(
        "{}: map memory of main.runMapBloat {:.2} MiB, pprof {:.2} MiB",
        toolchain.name,
        ours / MIB,
        top[0].1 / MIB
    );
}

#[test]
fn map_bloat_go119() {
    map_bloat(GoToolchain::go119());
}

#[test]
fn map_bloat_go127() {
    map_bloat(GoToolchain::go127());
}

fn heap_leak_names_the_growing_site(toolchain: GoToolchain) {
    let _serial = serial();
    let w = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--leak-kib=1024")
        .arg("--garbage-kib=4096")
        .arg("--duration=60s")
        .start();
    let pid = w.pid();
    w.wait_for_line("LEAK_START", Duration::from_secs(30));
    w.wait_for_line("TICK 3 ", Duration::from_secs(30));
    let before = last_number(&w, "TICK", Some("retained_bytes=")) as f64;
    let report = diagnose(pid, "6", &[]);
    let after = last_number(&w, "TICK", Some("retained_bytes=")) as f64;
    drop(w);
    let f = finding_in(&report, "heap_growth", pid).unwrap_or_else(|| {
        panic!(
            "no heap growth finding: {:#}",
            row(&report, "heap_growth", pid)
        )
    });
    let r = row(&report, "heap_growth", pid);
    let site = &r["sites"][0];
    let stack: Vec<&str> = site["stack"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(stack.contains(&"main.retainLeakChunk"), "{r:#}");
    assert!(f["recommendation"]
        .as_str()
        .unwrap()
        .contains("main.retainLeakChunk"));
    let growth = evidence(f, "growth_bytes");
    // The profile is as of the last GC cycles, so it lags; it cannot see more
    // than was retained around the run (plus sampling noise).
    let retained = after - before;
    let noise = evidence(f, "noise_bytes");
    assert!(
        growth <= retained + 3.0 * noise && growth >= 0.3 * retained,
        "growth {:.1} MiB vs retained {:.1} MiB around the run",
        growth / MIB,
        retained / MIB
    );
    assert!(evidence(f, "share_of_growth") > 0.5);
    eprintln!(
        "heap-leak ({}): site growth {:.1} MiB (noise {:.1}), retained {:.1} MiB around the run",
        toolchain.name,
        growth / MIB,
        noise / MIB,
        retained / MIB
    );
}

#[test]
fn heap_leak_names_the_growing_site_go119() {
    heap_leak_names_the_growing_site(GoToolchain::go119());
}

#[test]
fn heap_leak_names_the_growing_site_go127() {
    heap_leak_names_the_growing_site(GoToolchain::go127());
}

#[test]
fn steady_gives_none_and_no_profiles_reads_none() {
    let _serial = serial();
    let w = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--live-mib=32")
        .arg("--alloc-mib-per-tick=8")
        .arg("--duration=60s")
        .start();
    let pid = w.pid();
    w.wait_for_line("LIVE_FILLED", Duration::from_secs(30));
    // A heap profile is as of the last GC cycles: right after the fill it may
    // still show the ring half built (a start-up ramp is growth). Ten ticks
    // of 8 MiB on a 32 MiB heap run several cycles.
    w.wait_for_line("TICK 10 ", Duration::from_secs(30));
    let report = diagnose(pid, "4", &[]);
    for (name, id) in [
        ("goroutine_leak", IDS[0]),
        ("heap_growth", IDS[1]),
        ("map_bloat", IDS[2]),
    ] {
        assert_eq!(row(&report, name, pid)["read"], true, "{name}");
        assert!(
            finding_in(&report, name, pid).is_none(),
            "{id} on steady: {:#}",
            row(&report, name, pid)
        );
    }
    let site = &row(&report, "heap_growth", pid)["sites"][0];
    eprintln!(
        "steady: largest growing stack {} by {:.1} MiB (noise {:.1} MiB)",
        site["function"],
        site["growth_bytes"].as_f64().unwrap_or(0.0) / MIB,
        site["noise_bytes"].as_f64().unwrap_or(0.0) / MIB
    );
    let off = diagnose(pid, "1", &["--no-profiles"]);
    for name in ["goroutine_leak", "heap_growth", "map_bloat"] {
        assert_eq!(row(&off, name, pid)["read"], false, "{name}");
    }
}
