//! `kill -9` the writer (src/bin/store-crash-writer.rs) at random moments,
//! 60 times, on one data directory; after each kill the store must open,
//! pass `integrity_check`, and hold every batch the writer reported as
//! committed, with exactly the values it wrote.

use memlens_store::Store;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Same function as the writer's.
fn expected(e: i32, m: u32, ts: i64) -> f64 {
    let t = ts / 1000;
    match m % 4 {
        0 => ((t * (e as i64 + 1) * 4096) % 1_000_000_007) as f64,
        1 => (t as f64 * 0.37 + e as f64).sin(),
        2 => (t / 7) as f64 + m as f64,
        _ => (t % 100) as f64 / 100.0,
    }
}

/// Same function as the writer's.
fn profile_bytes(ts: i64) -> Vec<u8> {
    (0..3000 + (ts / 1000 % 500))
        .map(|i| (i * 31 + ts / 1000) as u8)
        .collect()
}

/// One line of the writer: a commit (last ts, samples) or a profile (ts, id).
enum Report {
    Commit(i64, usize),
    Profile(i64, i64),
}

/// Kills the child when dropped (also when an assertion fails).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_minus_9_at_random_moments_loses_nothing_reported() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = std::env::temp_dir().join(format!("memlens-crash-{}-{seed}", std::process::id()));
    let mut reported: Vec<(i64, usize)> = Vec::new();
    let mut profiles: Vec<(i64, i64)> = Vec::new();
    let started = Instant::now();
    for round in 0..60 {
        let mut child = Guard(
            Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
                .arg(&dir)
                .arg("8")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn store-crash-writer"),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill after a random number of reported commits (1..=25), sometimes
        // a few hundred microseconds later, so kills land anywhere: inside a
        // commit, inside a seal, between commits.
        let wanted = 1 + rng.next() % 25;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = 0;
        while seen < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => match parse(&line) {
                    Report::Commit(ts, n) => {
                        seen += 1;
                        reported.push((ts, n));
                    }
                    Report::Profile(ts, id) => profiles.push((ts, id)),
                },
                Err(_) => {
                    let _ = child.0.kill();
                    let mut err = String::new();
                    use std::io::Read;
                    let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
                    panic!(
                        "round {round}: writer gave {seen} lines, wanted {wanted}; stderr: {err}"
                    );
                }
            }
        }
        let extra_us = rng.next() % 600;
        std::thread::sleep(Duration::from_micros(extra_us)); // random kill moment
        child.0.kill().expect("kill -9");
        child.0.wait().unwrap();
        reader.join().unwrap();
        // Lines printed before the kill are reports too.
        while let Ok(line) = rx.try_recv() {
            match parse(&line) {
                Report::Commit(ts, n) => reported.push((ts, n)),
                Report::Profile(ts, id) => profiles.push((ts, id)),
            }
        }
        drop(child);
        check(&dir, &reported, &profiles, round);
    }
    eprintln!(
        "60 kills, {} reported commits and {} profiles checked, {:?}",
        reported.len(),
        profiles.len(),
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn parse(line: &str) -> Report {
    let parts: Vec<&str> = line.split(' ').collect();
    assert!(parts.len() == 4 && parts[3] == "E", "bad line {line:?}");
    let (a, b) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
    match parts[0] {
        "C" => Report::Commit(a, b as usize),
        "P" => Report::Profile(a, b),
        _ => panic!("bad line {line:?}"),
    }
}

fn check(dir: &std::path::Path, reported: &[(i64, usize)], profiles: &[(i64, i64)], round: usize) {
    let store = Store::open_read_only(dir).unwrap_or_else(|e| panic!("round {round}: {e}"));
    let report = store.integrity_check().unwrap();
    assert!(report.is_ok(), "round {round}: {:?}", report.problems);
    let entities = store.entities().unwrap();
    assert_eq!(entities.len(), 20, "round {round}");
    let last_reported = reported.last().unwrap().0;
    let mut stored_at: std::collections::HashMap<i64, usize> = Default::default();
    for info in &entities {
        let e = info.pid.unwrap() as i32 - 1000;
        assert_eq!(info.comm.as_deref(), Some(format!("proc{e}").as_str()));
        for m in 0..10u32 {
            let points = store
                .series(info.id, &format!("m{m}"), i64::MIN, i64::MAX)
                .unwrap();
            assert!(
                points.windows(2).all(|w| w[0].0 < w[1].0),
                "round {round}: not ascending"
            );
            for &(ts, v) in &points {
                assert_eq!(
                    v.to_bits(),
                    expected(e, m, ts).to_bits(),
                    "round {round}: entity {e} m{m} at {ts}"
                );
                *stored_at.entry(ts).or_default() += 1;
            }
        }
    }
    // Every reported commit is there in full.
    for &(ts, n) in reported {
        assert_eq!(
            stored_at.get(&ts).copied().unwrap_or(0),
            n,
            "round {round}: commit at {ts} reported {n} samples"
        );
    }
    for &(ts, id) in profiles {
        assert_eq!(
            store.profile_data(id).unwrap(),
            Some(profile_bytes(ts)),
            "round {round}: profile {id} of {ts}"
        );
    }
    // At most one unreported commit (the one being reported at the kill).
    let unreported = stored_at.keys().filter(|&&t| t > last_reported).count();
    assert!(
        unreported <= 1,
        "round {round}: {unreported} unreported commits"
    );
}
