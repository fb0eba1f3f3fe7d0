//! Records real per-process values of this host into a store and prints the
//! bytes per stored sample, the figure of the issue's ≤ 2 bytes/sample goal.
//!
//! `cargo run --release -p memlens-store --example record_proc -- DIR SAMPLES INTERVAL_MS`
//! (defaults: a temporary directory, 300 samples, 1000 ms). Every tick reads
//! /proc/PID/stat, /proc/PID/status and /proc/PID/io of every process (about
//! 20 values each) plus /proc/meminfo, appends them and commits, like
//! `memlens watch` does. At the end it prints the data directory's bytes
//! after `PRAGMA wal_checkpoint(TRUNCATE)` divided by the values stored, once
//! as the store is (head not sealed) and once after sealing the head.

use memlens_model::series::{Entity, Labels};
use memlens_store::{SeriesId, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STATUS_KEYS: &[(&str, &str)] = &[
    ("VmRSS:", "rss_bytes"),
    ("VmHWM:", "rss_peak_bytes"),
    ("VmSize:", "vm_size_bytes"),
    ("VmData:", "vm_data_bytes"),
    ("VmSwap:", "swap_bytes"),
    ("RssAnon:", "rss_anon_bytes"),
    ("RssFile:", "rss_file_bytes"),
    ("RssShmem:", "rss_shmem_bytes"),
    ("VmPTE:", "page_tables_bytes"),
    ("Threads:", "threads"),
    ("voluntary_ctxt_switches:", "voluntary_ctxt_switches"),
    ("nonvoluntary_ctxt_switches:", "nonvoluntary_ctxt_switches"),
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// (metric, value) pairs.
type Metrics = Vec<(&'static str, f64)>;

/// (comm, start ticks, metrics) of one process, `None` when it is gone or a
/// kernel thread.
fn read_process(pid: i32) -> Option<(String, u64, Metrics)> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(base.join("stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    // Fields after the comm, 0-based: state=0, minflt=7, majflt=9,
    // utime=11, stime=12, starttime=19.
    let start: u64 = f.get(19)?.parse().ok()?;
    let status = std::fs::read_to_string(base.join("status")).ok()?;
    if !status.contains("VmRSS:") {
        return None; // kernel thread
    }
    let mut metrics = vec![
        ("minor_faults", num(7)?),
        ("major_faults", num(9)?),
        ("cpu_user_seconds", num(11)? / 100.0),
        ("cpu_system_seconds", num(12)? / 100.0),
    ];
    for line in status.lines() {
        for (key, name) in STATUS_KEYS {
            if let Some(rest) = line.strip_prefix(key) {
                let mut parts = rest.split_whitespace();
                if let Some(v) = parts.next().and_then(|v| v.parse::<f64>().ok()) {
                    let v = if parts.next() == Some("kB") {
                        v * 1024.0
                    } else {
                        v
                    };
                    metrics.push((name, v));
                }
            }
        }
    }
    if let Ok(io) = std::fs::read_to_string(base.join("io")) {
        for line in io.lines() {
            for (key, name) in [
                ("rchar: ", "read_chars"),
                ("wchar: ", "write_chars"),
                ("read_bytes: ", "read_bytes"),
                ("write_bytes: ", "write_bytes"),
            ] {
                if let Some(v) = line
                    .strip_prefix(key)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                {
                    metrics.push((name, v));
                }
            }
        }
    }
    Some((comm, start, metrics))
}

fn host_metrics() -> Vec<(String, f64)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let v: f64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((
                format!("meminfo_{}", k.to_lowercase().replace(['(', ')'], "_")),
                v * 1024.0,
            ))
        })
        .collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match args.first() {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("memlens-record-{}", std::process::id())),
    };
    let samples: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(300);
    let interval =
        Duration::from_millis(args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000));
    let mut store = Store::open(&dir)?;
    let mut stored = 0u64;
    let started = Instant::now();
    let mut batch: Vec<(SeriesId, f64)> = Vec::new();
    for tick in 0..samples {
        let deadline = started + interval * tick as u32;
        if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait); // pacing the recording, not synchronisation
        }
        batch.clear();
        let host = store.entity(&Entity::Host, &Labels::new())?;
        for (name, v) in host_metrics() {
            batch.push((store.series_id(host, &name)?, v));
        }
        let pids: Vec<i32> = std::fs::read_dir("/proc")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for pid in pids {
            let Some((comm, start_time, metrics)) = read_process(pid) else {
                continue;
            };
            let mut labels = Labels::new();
            labels.insert("comm", comm);
            let e = store.entity(&Entity::Process { pid, start_time }, &labels)?;
            for (name, v) in metrics {
                batch.push((store.series_id(e, name)?, v));
            }
        }
        store.append(now_ms(), &batch)?;
        stored += store.commit()?.samples() as u64;
        if (tick + 1) % 300 == 0 {
            store.checkpoint()?;
            let bytes = dir_bytes(&dir);
            println!(
                "after {} ticks: {stored} values, {bytes} bytes, {:.3} bytes/sample",
                tick + 1,
                bytes as f64 / stored as f64
            );
        }
    }
    store.checkpoint()?;
    let as_is = dir_bytes(&dir);
    store.flush()?;
    store.checkpoint()?;
    let sealed = dir_bytes(&dir);
    let report = store.integrity_check()?;
    println!("dir: {}", dir.display());
    println!(
        "ticks: {samples}, interval: {} ms, values stored: {stored}",
        interval.as_millis()
    );
    println!("values per tick: {:.0}", stored as f64 / samples as f64);
    println!(
        "bytes (head as is): {as_is}  -> {:.3} bytes/sample",
        as_is as f64 / stored as f64
    );
    println!(
        "bytes (head sealed): {sealed}  -> {:.3} bytes/sample",
        sealed as f64 / stored as f64
    );
    println!(
        "integrity: {}",
        if report.is_ok() {
            "ok".to_string()
        } else {
            format!("{:?}", report.problems)
        }
    );
    println!(
        "goal <= 2 bytes/sample: {}",
        if as_is as f64 / stored as f64 <= 2.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
