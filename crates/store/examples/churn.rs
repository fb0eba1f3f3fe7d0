//! What process churn costs the history: records a synthetic hour shaped like
//! this dev host (a few long-lived processes, a host entity, a few cgroups,
//! and many short-lived processes such as rustc, cc, ld, go and test
//! binaries with long command lines), once without and once with the
//! short-lived ones, and prints bytes per sample of each and the bytes each
//! short-lived entity adds, with the make-up of the file per table (SQLite's
//! `dbstat`).
//!
//! `cargo run --release -p memlens-store --example churn -- [CYCLES] [STEADY] [CHURN] [LIFE]`
//! (defaults: 3600 cycles at 1 s, 17 long-lived processes, 1058 short-lived
//! ones spread over the run, each living 1..=LIFE cycles with LIFE = 6).
//! Values follow deterministic random walks (RSS in pages, counters that
//! grow, CPU seconds in 1/100 s), so runs are comparable.

use memlens_model::series::{Entity, Labels};
use memlens_store::{SeriesId, Store, Value};
use std::path::Path;

const PROCESS_METRICS: &[&str] = &[
    "rss_bytes",
    "swap_bytes",
    "anon_bytes",
    "file_bytes",
    "shmem_bytes",
    "page_tables_bytes",
    "vm_size_bytes",
    "minor_faults",
    "major_faults",
    "threads",
    "cpu_user_seconds",
    "cpu_system_seconds",
    "fd_count",
    "fd_limit",
    "oom_score",
    "oom_score_adj",
    "read_bytes",
    "write_bytes",
];

const COMMS: &[&str] = &["rustc", "cc", "ld", "go", "cargo", "memlens-abc123", "sh"];

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One simulated process: its entity, labels and current values.
struct Proc {
    entity: Entity,
    labels: Labels,
    values: Vec<f64>,
    dies_at: u64,
}

fn new_proc(rng: &mut Rng, pid: i32, start: u64, dies_at: u64) -> Proc {
    let comm = COMMS[rng.below(COMMS.len() as u64) as usize];
    let krate = format!("crate_{}", rng.below(300));
    let cmdline = format!(
        "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/{comm} --crate-name {krate} \
         --edition=2021 /root/.cargo/registry/src/index.crates.io-6f17d22bba15001f/{krate}-1.0.{}/src/lib.rs \
         --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat \
         --crate-type lib --emit=dep-info,metadata,link -C opt-level=3 -C embed-bitcode=no \
         -C metadata={:016x} -C extra-filename=-{:016x} --out-dir /work/main/target/release/deps \
         -L dependency=/work/main/target/release/deps --cap-lints allow",
        rng.below(50),
        rng.next(),
        rng.next()
    );
    let mut cmdline = cmdline;
    cmdline.truncate(509);
    let mut labels = Labels::new();
    labels.insert("comm", comm.to_string());
    labels.insert("cmdline", cmdline);
    labels.insert(
        "cgroup",
        "/system.slice/session-12.scope/build.service".to_string(),
    );
    let rss = (1 + rng.below(50_000)) as f64 * 4096.0;
    let values = vec![
        rss,
        0.0,
        rss * 0.7,
        rss * 0.3,
        0.0,
        (rng.below(200) * 4096) as f64,
        rss * 3.0 + (rng.below(1000) * 4096) as f64,
        rng.below(10_000) as f64,
        rng.below(5) as f64,
        (1 + rng.below(8)) as f64,
        rng.below(500) as f64 / 100.0,
        rng.below(100) as f64 / 100.0,
        (3 + rng.below(20)) as f64,
        1_048_576.0,
        rng.below(1000) as f64,
        0.0,
        (rng.below(1_000_000) * 512) as f64,
        (rng.below(1_000_000) * 512) as f64,
    ];
    Proc {
        entity: Entity::Process {
            pid,
            start_time: start,
        },
        labels,
        values,
        dies_at,
    }
}

fn step(rng: &mut Rng, p: &mut Proc) {
    // rss-like values wander by pages; counters grow.
    for i in [0usize, 2, 3, 6] {
        if rng.below(3) == 0 {
            p.values[i] = (p.values[i] + (rng.below(64) as f64 - 30.0) * 4096.0).max(4096.0);
        }
    }
    p.values[7] += rng.below(400) as f64;
    p.values[10] = ((p.values[10] * 100.0).round() + rng.below(90) as f64) / 100.0;
    p.values[11] = ((p.values[11] * 100.0).round() + rng.below(10) as f64) / 100.0;
    p.values[16] += (rng.below(4) * 4096) as f64;
}

/// Records the synthetic run into `dir`; returns (values stored, bytes, short-lived entities).
fn record(dir: &Path, cycles: u64, steady: usize, churn: u64, life: u64) -> (u64, u64, u64) {
    let mut store = Store::open(dir).expect("open");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut procs: Vec<Proc> = (0..steady)
        .map(|i| new_proc(&mut rng, 100 + i as i32, 5 + i as u64, u64::MAX))
        .collect();
    let mut next_pid = 10_000;
    let mut born = 0u64;
    let mut values = 0u64;
    let t0 = 1_763_000_000_000i64;
    let mut host = [8.0e9, 4.0e9, 2.0e9, 0.0, 0.0, 1.0e9, 2.0e9, 1.0e7];
    for cycle in 0..cycles {
        // Spread `churn` births evenly over the run.
        let due = churn * (cycle + 1) / cycles;
        while born < due {
            let lives = 1 + rng.below(life);
            procs.push(new_proc(
                &mut rng,
                next_pid,
                1000 + cycle * 100,
                cycle + lives,
            ));
            next_pid += 1 + rng.below(40) as i32;
            born += 1;
        }
        procs.retain(|p| p.dies_at > cycle);
        let mut samples: Vec<(SeriesId, f64)> = Vec::new();
        let h = store.entity(&Entity::Host, &Labels::new()).expect("host");
        for (i, v) in host.iter_mut().enumerate() {
            *v += (rng.below(100) * 4096) as f64 - 200.0 * 4096.0 * (i % 2) as f64;
            let name = [
                "mem_available_bytes",
                "mem_free_bytes",
                "anon_bytes",
                "swap_bytes",
                "shmem_bytes",
                "page_cache_bytes",
                "committed_bytes",
                "page_faults",
            ][i];
            samples.push((store.series_id(h, name).expect("series"), *v));
        }
        for p in procs.iter_mut() {
            step(&mut rng, p);
            let e = store.entity(&p.entity, &p.labels).expect("entity");
            for (m, v) in PROCESS_METRICS.iter().zip(&p.values) {
                samples.push((store.series_id(e, m).expect("series"), *v));
            }
        }
        for c in 0..3 {
            let mut labels = Labels::new();
            labels.insert("cgroup_version", "2".to_string());
            let e = store
                .entity(
                    &Entity::Cgroup {
                        path: format!("/system.slice/s{c}"),
                    },
                    &labels,
                )
                .expect("cgroup");
            let usage = 1.0e8 + (rng.below(1000) * 4096) as f64;
            samples.push((store.series_id(e, "usage_bytes").expect("series"), usage));
            samples.push((store.series_id(e, "oom_kill_count").expect("series"), 0.0));
        }
        store
            .append(t0 + cycle as i64 * 1000, &samples)
            .expect("append");
        values += store.commit().expect("commit").samples() as u64;
    }
    store.flush().expect("flush");
    store.checkpoint().expect("checkpoint");
    breakdown(&store);
    let bytes = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    (values, bytes, born)
}

fn breakdown(store: &Store) {
    match store.query(
        "SELECT name, count(*), sum(pgsize), sum(payload), sum(unused) FROM dbstat \
         GROUP BY name ORDER BY sum(pgsize) DESC",
    ) {
        Ok(r) => {
            println!(
                "  {:<28} {:>6} {:>9} {:>9} {:>9}",
                "table/index", "pages", "bytes", "payload", "unused"
            );
            for row in r.rows {
                let s = |v: &Value| match v {
                    Value::Integer(i) => i.to_string(),
                    Value::Text(t) => t.clone(),
                    other => format!("{other:?}"),
                };
                println!(
                    "  {:<28} {:>6} {:>9} {:>9} {:>9}",
                    s(&row[0]),
                    s(&row[1]),
                    s(&row[2]),
                    s(&row[3]),
                    s(&row[4])
                );
            }
        }
        Err(e) => println!("  (no dbstat: {e})"),
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: CYCLES STEADY CHURN LIFE"))
        .collect();
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (cycles, steady, churn, life) =
        (arg(0, 3600), arg(1, 17) as usize, arg(2, 1058), arg(3, 6));
    let base = std::env::temp_dir().join(format!("memlens-churn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    println!("{cycles} cycles, {steady} long-lived processes, {churn} short-lived (1..={life} cycles each)");
    println!("without the short-lived processes:");
    let (v0, b0, _) = record(&base.join("steady"), cycles, steady, 0, life);
    println!(
        "  {v0} values in {b0} bytes = {:.3} bytes/sample",
        b0 as f64 / v0 as f64
    );
    println!("with them:");
    let (v1, b1, n) = record(&base.join("churn"), cycles, steady, churn, life);
    println!(
        "  {v1} values in {b1} bytes = {:.3} bytes/sample",
        b1 as f64 / v1 as f64
    );
    let extra_values = v1 - v0;
    let extra_bytes = b1 as f64 - b0 as f64;
    println!(
        "short-lived: {n} entities, {extra_values} values, {extra_bytes:.0} bytes = {:.0} bytes/entity, {:.2} bytes/sample",
        extra_bytes / n.max(1) as f64,
        extra_bytes / extra_values.max(1) as f64
    );
    let _ = std::fs::remove_dir_all(&base);
}
