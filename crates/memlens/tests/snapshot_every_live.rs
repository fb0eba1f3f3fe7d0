//! `memlens snapshot --every`: one process taking a snapshot every interval,
//! one JSON document per line, reusing an unchanged process's PSS for at most
//! `--pss-max-age`. Checked on real workloads: an idle one (its counters stay
//! still: its PSS is reused, then walked again once the max age is reached)
//! and a leaking one (its PSS is walked every cycle and grows); the cached PSS
//! is compared with the kernel's own smaps_rollup read by the test.

use memlens_testkit::{ChildGuard, GoToolchain, WorkloadSpec};
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const INTERVAL_SECONDS: f64 = 0.5;
const MAX_AGE_SECONDS: f64 = 2.0;
const CYCLES: usize = 16;

/// Runs memlens with `args` to its end (at most `deadline`): (exit code, stdout, stderr).
fn run_memlens(args: &[String], deadline: Duration) -> (Option<i32>, String, String) {
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run memlens"),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let ends = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waitpid memlens") {
            break status;
        }
        assert!(
            Instant::now() < ends,
            "memlens {args:?} still running after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        out.join().unwrap().expect("memlens stdout"),
        err.join().unwrap().expect("memlens stderr"),
    )
}

/// The row of `pid` in one snapshot.
fn row(snapshot: &Value, pid: i32) -> &Value {
    snapshot["processes"]
        .as_array()
        .expect("processes array")
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no row for pid {pid}: {snapshot}"))
}

/// The counters that must not have moved for a PSS to be reused.
fn fingerprint(row: &Value) -> Vec<Value> {
    [
        "minor_faults",
        "major_faults",
        "anon_bytes",
        "file_bytes",
        "shmem_bytes",
        "swap_bytes",
        "page_tables_bytes",
    ]
    .iter()
    .map(|key| row[*key].clone())
    .collect()
}

/// `Pss:` of /proc/PID/smaps_rollup, parsed here (not by memlens).
fn kernel_pss_bytes(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Pss line in {text}"));
    kib * 1024
}

#[test]
fn every_reuses_an_idle_process_pss_until_the_max_age_and_walks_a_growing_one() {
    let toolchain = GoToolchain::go127();
    // Idle: its live ring filled once, then nothing allocates.
    let idle = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=4")
        .arg("--alloc-mib-per-tick=0")
        .arg("--tick=1h")
        .arg("--duration=120s")
        .start();
    // Growing: 2 MiB kept every 100 ms tick, every page written.
    let leak = WorkloadSpec::new(&toolchain, "heap-leak")
        .arg("--leak-kib=2048")
        .arg("--garbage-kib=0")
        .arg("--duration=120s")
        .start();
    idle.wait_for_line("LIVE_FILLED", Duration::from_secs(20));
    leak.wait_for_line("LEAK_START", Duration::from_secs(20));
    let (a, b) = (idle.pid(), leak.pid());
    let args: Vec<String> = [
        "snapshot",
        "--every",
        &INTERVAL_SECONDS.to_string(),
        "--count",
        &CYCLES.to_string(),
        "--json",
        "--pid",
        &a.to_string(),
        "--pid",
        &b.to_string(),
        "--smaps",
        "always",
        "--pss-max-age",
        &MAX_AGE_SECONDS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, stdout, stderr) = run_memlens(&args, Duration::from_secs(60));
    assert_eq!(code, Some(0), "memlens {args:?}: {stderr}");
    // The cached PSS of the idle process against the kernel's now.
    let idle_pss_now = kernel_pss_bytes(a);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), CYCLES, "one JSON line per snapshot");
    let snapshots: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect();
    for s in &snapshots {
        assert_eq!(s["processes"].as_array().unwrap().len(), 2, "{s}");
    }
    let taken = |i: usize| snapshots[i]["taken_at_unix_ms"].as_u64().unwrap();

    // The growing process: walked every cycle, its PSS moving.
    let pss = |i: usize, pid| row(&snapshots[i], pid)["pss_bytes"].as_u64().unwrap();
    let age = |i: usize, pid| row(&snapshots[i], pid)["pss_age_seconds"].as_f64().unwrap();
    for i in 0..CYCLES {
        assert_eq!(age(i, b), 0.0, "the leaking process is walked in cycle {i}");
        if i > 0 {
            assert_ne!(pss(i, b), pss(i - 1, b), "cycle {i}: a fresh PSS");
        }
    }
    let grown = pss(CYCLES - 1, b).saturating_sub(pss(0, b));
    assert!(grown >= 40 * MIB, "leaking PSS grew by {grown} bytes only");

    // The idle process: read first, then reused while unchanged, with an
    // age that follows the clock, never reaching the max age.
    assert_eq!(age(0, a), 0.0, "first snapshot reads every process");
    let mut refreshed_by_age = 0;
    for i in 1..CYCLES {
        let (now, before) = (row(&snapshots[i], a), row(&snapshots[i - 1], a));
        let elapsed = (taken(i) - taken(i - 1)) as f64 / 1000.0;
        if age(i, a) > 0.0 {
            assert_eq!(
                fingerprint(now),
                fingerprint(before),
                "cycle {i}: reused only while the counters stay still"
            );
            assert_eq!(now["pss_bytes"], before["pss_bytes"], "cycle {i}");
            assert_eq!(now["uss_bytes"], before["uss_bytes"], "cycle {i}");
            assert!(age(i, a) < MAX_AGE_SECONDS, "cycle {i}: age {}", age(i, a));
            // The age counts from snapshot start to snapshot start, the
            // `taken_at` times are each scan's end: the two differ by how
            // much longer one scan took than the other (0.19 s once at load
            // 33). An age that skipped or counted twice a cycle would be off
            // by the whole interval.
            assert!(
                (age(i, a) - (age(i - 1, a) + elapsed)).abs() < INTERVAL_SECONDS / 2.0,
                "cycle {i}: age {} after {} + {elapsed} s",
                age(i, a),
                age(i - 1, a)
            );
        } else if age(i - 1, a) > 0.0 && fingerprint(now) == fingerprint(before) {
            // Walked again with nothing changed: the reading was too old.
            assert!(
                age(i - 1, a) + elapsed >= MAX_AGE_SECONDS - 0.1,
                "cycle {i}: walked again at age {} + {elapsed} s",
                age(i - 1, a)
            );
            refreshed_by_age += 1;
        }
    }
    let ages: Vec<f64> = (0..CYCLES).map(|i| age(i, a)).collect();
    assert!(
        ages.iter().any(|&x| x >= 1.0),
        "the idle process's PSS was reused for a second or more: {ages:?}"
    );
    assert!(
        refreshed_by_age >= 1,
        "its PSS was walked again once the max age was reached: {ages:?}"
    );
    let idle_pss = pss(CYCLES - 1, a);
    assert!(
        idle_pss.abs_diff(idle_pss_now) <= (idle_pss_now / 20).max(256 << 10),
        "cached PSS {idle_pss} vs the kernel's {idle_pss_now} now"
    );
}

#[test]
fn bad_repeat_values_are_refused_naming_the_flag() {
    let cases: [(&[&str], &str); 7] = [
        (&["--every", "0"], "--every"),
        (&["--every", "-1"], "--every"),
        (&["--every", "soon"], "--every"),
        (&["--every", "1", "--count", "0"], "--count"),
        (&["--every", "1", "--count", "-3"], "--count"),
        (&["--every", "1", "--pss-max-age", "-1"], "--pss-max-age"),
        (&["--count", "2"], "--count"),
    ];
    for (flags, flag) in cases {
        let mut args = vec!["snapshot".to_string(), "--json".to_string()];
        args.extend(flags.iter().map(|s| s.to_string()));
        let (code, stdout, stderr) = run_memlens(&args, Duration::from_secs(30));
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert!(stdout.is_empty(), "{flags:?}: nothing on stdout: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{flags:?}: one line: {stderr}");
        assert!(stderr.contains(flag), "{flags:?}: names {flag}: {stderr}");
    }
}
