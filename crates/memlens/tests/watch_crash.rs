//! `memlens watch` killed with SIGKILL at random moments while it records real
//! workloads: after every kill the store passes SQLite's integrity check and
//! our own decode check, and every cycle the agent reported as stored reads
//! back with exactly the number of values it reported.

mod common;

use common::{stored_cycle, values_per_instant};
use memlens_store::Store;
use memlens_testkit::{ChildGuard, GoToolchain, TestCgroup, WorkloadSpec};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MIB: u64 = 1 << 20;
const KILLS: usize = 50;

/// A small deterministic generator (xorshift64*), seeded per run and printed,
/// so a failing sequence of kill moments can be replayed with MEMLENS_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_reported() {
    let seed = std::env::var("MEMLENS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("MEMLENS_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    // Real workloads to record: a GC sawtooth on Go 1.19 and a slow leak on
    // Go 1.27 (profiles and runtime metrics are fetched from both).
    let steady_cgroup = TestCgroup::with_limit(256 * MIB);
    let leak_cgroup = TestCgroup::with_limit(512 * MIB);
    let steady = WorkloadSpec::new(&GoToolchain::go119(), "steady")
        .arg("--live-mib=16")
        .arg("--alloc-mib-per-tick=4")
        .arg("--duration=600s")
        .start_in(&steady_cgroup);
    let leak = WorkloadSpec::new(&GoToolchain::go127(), "heap-leak")
        .arg("--leak-kib=64")
        .arg("--garbage-kib=512")
        .arg("--duration=600s")
        .start_in(&leak_cgroup);
    steady.wait_for_line("TICK", Duration::from_secs(30));
    leak.wait_for_line("TICK", Duration::from_secs(30));

    let data = std::env::temp_dir().join(format!("memlens-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut reported: Vec<(i64, usize)> = Vec::new();
    let started = Instant::now();
    for round in 0..KILLS {
        let child = Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--interval", "0.2", "--runtime-interval", "0.4"])
            .args(["--profile-interval", "1"])
            .args(["--pid", &steady.pid().to_string()])
            .args(["--pid", &leak.pid().to_string()])
            .arg("--data")
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start memlens watch");
        let mut agent = ChildGuard(child);
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let stdout = agent.0.stdout.take().unwrap();
        let reader = {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Kill at a random moment: before the first cycle, mid-cycle, mid-commit.
        let kill_after = Duration::from_millis(150 + rng.next_below(1200));
        std::thread::sleep(kill_after);
        if let Ok(Some(status)) = agent.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = agent.0.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).ok();
            }
            panic!("round {round}: the agent exited by itself ({status}): {err}");
        }
        // SAFETY: kill has no memory preconditions; the pid is our live child.
        unsafe { libc::kill(agent.pid(), libc::SIGKILL) };
        let _ = agent.0.wait();
        reader.join().unwrap();
        let round_cycles: Vec<(i64, usize)> = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| stored_cycle(l))
            .collect();
        reported.extend(&round_cycles);

        let store = Store::open_read_only(&data)
            .unwrap_or_else(|e| panic!("round {round} (killed after {kill_after:?}): {e}"));
        let report = store.integrity_check().unwrap();
        assert!(
            report.is_ok(),
            "round {round} (killed after {kill_after:?}): {report:?}"
        );
        let counts = values_per_instant(&store);
        for &(ts, values) in &reported {
            let found = counts.get(&ts).copied().unwrap_or(0);
            assert_eq!(
                found, values,
                "round {round} (killed after {kill_after:?}): cycle {ts} reported {values} values, reads back {found}"
            );
        }
    }
    let cycles = reported.len();
    println!(
        "{KILLS} kills in {:.1} s; {cycles} reported cycles, {} values, all read back",
        started.elapsed().as_secs_f64(),
        reported.iter().map(|c| c.1).sum::<usize>()
    );
    assert!(
        cycles >= KILLS,
        "the agent reported only {cycles} cycles in {KILLS} runs"
    );
    // Timestamps ascend across restarts: no cycle was stored twice.
    let mut seen: Vec<i64> = reported.iter().map(|c| c.0).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), cycles, "a timestamp was reported twice");
    std::fs::remove_dir_all(&data).ok();
}
