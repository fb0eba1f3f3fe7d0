//! Test helper for the crash test (`tests/crash.rs`): appends to the store in
//! DIR forever, committing every tick and printing `C <last ts> <samples> E`
//! after each commit returned; every 5th tick it also stores a profile
//! ([`profile_bytes`]) and prints `P <ts> <id> E`, every 7th tick it runs
//! retention (limits that delete nothing) and a checkpoint, so kills also
//! land inside those. Values are a pure function of (entity,
//! metric, ts) ([`expected`], duplicated in the test), so a reader can check
//! every stored sample.
//!
//! Usage: `store-crash-writer DIR FRAMES_PER_GROUP`

use memlens_model::series::{Entity, Labels};
use memlens_store::{Retention, Store, StoreOptions};
use std::io::Write;

/// Entities written (processes with pids 1000..).
const ENTITIES: i32 = 20;
/// Metrics per entity.
const METRICS: u32 = 10;

/// The value of metric `m` of entity `e` at `ts`.
fn expected(e: i32, m: u32, ts: i64) -> f64 {
    let t = ts / 1000;
    match m % 4 {
        0 => ((t * (e as i64 + 1) * 4096) % 1_000_000_007) as f64,
        1 => (t as f64 * 0.37 + e as f64).sin(),
        2 => (t / 7) as f64 + m as f64,
        _ => (t % 100) as f64 / 100.0,
    }
}

/// The bytes of the profile stored at `ts`.
fn profile_bytes(ts: i64) -> Vec<u8> {
    (0..3000 + (ts / 1000 % 500))
        .map(|i| (i * 31 + ts / 1000) as u8)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .ok_or("usage: store-crash-writer DIR FRAMES_PER_GROUP")?;
    let frames_per_group: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(8);
    let mut store = Store::open_with(
        dir,
        StoreOptions {
            frames_per_group,
            ..StoreOptions::default()
        },
    )?;
    let mut ts = store.last_ts_ms().map_or(1_700_000_000_000, |t| t + 1000);
    let stdout = std::io::stdout();
    let mut batch = Vec::new();
    loop {
        batch.clear();
        for e in 0..ENTITIES {
            let mut labels = Labels::new();
            labels.insert("comm", format!("proc{e}"));
            let id = store.entity(
                &Entity::Process {
                    pid: 1000 + e,
                    start_time: 1,
                },
                &labels,
            )?;
            for m in 0..METRICS {
                // Entity 3 appears only every third tick: sparse series.
                if e == 3 && (ts / 1000) % 3 != 0 {
                    continue;
                }
                batch.push((store.series_id(id, &format!("m{m}"))?, expected(e, m, ts)));
            }
        }
        store.append(ts, &batch)?;
        let report = store.commit()?;
        let mut out = stdout.lock();
        writeln!(
            out,
            "C {} {} E",
            report.last_ts_ms().unwrap_or(ts),
            report.samples()
        )?;
        out.flush()?;
        drop(out);
        let tick = ts / 1000;
        if tick % 5 == 0 {
            let first = store.entity(
                &Entity::Process {
                    pid: 1000,
                    start_time: 1,
                },
                &{
                    let mut l = Labels::new();
                    l.insert("comm", "proc0".to_string());
                    l
                },
            )?;
            let id = store.put_profile(first, "heap", ts, &profile_bytes(ts))?;
            let mut out = stdout.lock();
            writeln!(out, "P {ts} {id} E")?;
            out.flush()?;
        }
        if tick % 7 == 0 {
            let keep_all = Retention {
                max_age_ms: Some(100 * 365 * 86_400_000),
                max_bytes: Some(1 << 40),
            };
            store.apply_retention(&keep_all, ts)?;
            store.checkpoint()?;
        }
        ts += 1000;
    }
}
