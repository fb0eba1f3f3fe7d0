//! The dashboard's benchmark (issue 19; run by `scripts/bench_web.sh`, not
//! CI): a generated history of one Go process, its cgroup and the host,
//! 24 h at 1 s (86,400 instants, ~25 series), then
//!
//! - the API's series request of the process page's memory chart over the
//!   whole day (6 series, 1,240 columns): latency, 20 requests, each on a
//!   fresh read-only connection as the server does;
//! - the process page in headless Chromium, span 24 h: navigation start to
//!   every chart drawn (`window.memlens.readyMs`), 5 loads.
//!
//! Usage: `bench_web [DIR]` (default `target/bench-web-history`; generated
//! when missing, reused otherwise).

use memlens_model::series::{Entity, Labels};
use memlens_store::Store;
use memlens_testkit::Browser;
use memlens_web::server::{start, ServerConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DAY_S: i64 = 86_400;
const T0: i64 = 1_790_000_000_000;
const MIB: f64 = 1048576.0;

fn generate(dir: &PathBuf) -> (i64, i64) {
    let started = Instant::now();
    let mut store = Store::open(dir).unwrap();
    let mut labels = Labels::new();
    labels.insert("comm", "api-server".to_string());
    labels.insert("cmdline", "/usr/bin/api-server --listen :8080".to_string());
    labels.insert("cgroup", "/bench".to_string());
    labels.insert("go_version", "go1.27.3".to_string());
    let p = store
        .entity(
            &Entity::Process {
                pid: 4242,
                start_time: 1,
            },
            &labels,
        )
        .unwrap();
    let c = store
        .entity(
            &Entity::Cgroup {
                path: "/bench".to_string(),
            },
            &Labels::new(),
        )
        .unwrap();
    let h = store.entity(&Entity::Host, &Labels::new()).unwrap();
    let process_metrics = [
        "rss_bytes",
        "go_heap_inuse_bytes",
        "go_heap_idle_bytes",
        "go_heap_released_bytes",
        "go_heap_sys_bytes",
        "go_stack_inuse_bytes",
        "go_sys_bytes",
        "go_next_gc_bytes",
        "go_gomemlimit_bytes",
        "go_goroutines",
        "go_gc_cycles_total",
        "go_gc_pause_ns_total",
        "minor_faults",
        "major_faults",
        "fd_count",
        "vma_count",
    ];
    let ids: Vec<u64> = process_metrics
        .iter()
        .map(|m| store.series_id(p, m).unwrap())
        .collect();
    let cg: Vec<u64> = [
        "usage_bytes",
        "inactive_file_bytes",
        "active_file_bytes",
        "effective_limit_bytes",
    ]
    .iter()
    .map(|m| store.series_id(c, m).unwrap())
    .collect();
    let host: Vec<u64> = ["mem_total_bytes", "mem_available_bytes"]
        .iter()
        .map(|m| store.series_id(h, m).unwrap())
        .collect();
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut noise = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1000) as f64 / 1000.0
    };
    let (mut gcs, mut pause, mut minor) = (0.0, 0.0, 0.0);
    for i in 0..DAY_S {
        // A GC sawtooth of 30 s on a slow daily swell, with noise.
        let swell = 200.0 + 100.0 * ((i as f64) / DAY_S as f64 * std::f64::consts::TAU).sin();
        let heap = (swell + 40.0 * ((i % 30) as f64 / 30.0) + 4.0 * noise()) * MIB;
        if i % 30 == 0 {
            gcs += 1.0;
            pause += 200_000.0 + 50_000.0 * noise();
        }
        minor += 500.0 * noise();
        let rss = heap * 1.3 + 20.0 * MIB;
        let values = [
            rss,
            heap,
            0.3 * heap,
            0.1 * heap,
            1.3 * heap,
            2.0 * MIB,
            1.4 * heap + 8.0 * MIB,
            (swell + 40.0) * MIB * 2.0,
            900.0 * MIB,
            200.0 + (50.0 * noise()).round(),
            gcs,
            pause,
            minor,
            (i / 600) as f64,
            40.0 + (noise() * 3.0).round(),
            300.0 + (noise() * 10.0).round(),
        ];
        let mut row: Vec<(u64, f64)> = ids.iter().copied().zip(values).collect();
        row.extend([
            (cg[0], rss + 100.0 * MIB),
            (cg[1], 60.0 * MIB),
            (cg[2], 40.0 * MIB),
            (cg[3], 1024.0 * MIB),
        ]);
        row.extend([
            (host[0], 16384.0 * MIB),
            (host[1], 9000.0 * MIB + noise() * MIB),
        ]);
        store.append(T0 + i * 1000, &row).unwrap();
        if i % 120 == 119 {
            store.commit().unwrap();
        }
    }
    store.commit().unwrap();
    store.flush().unwrap();
    store.checkpoint().unwrap();
    println!(
        "generated 24 h at 1 s ({} instants, {} series) in {:.1} s",
        DAY_S,
        ids.len() + cg.len() + host.len(),
        started.elapsed().as_secs_f64()
    );
    (p, c)
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-web-history"));
    let (p, c) = if dir.join(memlens_store::DB_FILE).exists() {
        let store = Store::open_read_only(&dir).unwrap();
        let e = store.entities().unwrap();
        let id = |kind: &str| e.iter().find(|x| x.kind == kind).unwrap().id;
        (id("process"), id("cgroup"))
    } else {
        generate(&dir)
    };
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|f| f.metadata().unwrap().len())
        .sum();
    println!("history {} ({:.1} MiB)", dir.display(), size as f64 / MIB);
    let addr = start(ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: None,
        metrics: None,
        data_dir: Some(dir.clone()),
    })
    .unwrap();
    let to = T0 + (DAY_S - 1) * 1000;
    let series = format!(
        "/api/v1/series?from={T0}&to={to}&width=1240&s={p}:rss_bytes&s={c}:working_set_bytes&s={p}:go_heap_inuse_bytes&s={p}:go_next_gc_bytes&s={p}:go_gomemlimit_bytes&s={c}:effective_limit_bytes"
    );
    let mut api_ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let body = memlens_testkit::http_get(&addr.to_string(), &series).unwrap();
        api_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    println!(
        "API series, 24 h x 6 series -> 1240 columns ({} KiB): median {:.0} ms, max {:.0} ms (goal: 200 ms)",
        bytes / 1024,
        percentile(api_ms.clone(), 0.5),
        percentile(api_ms, 1.0)
    );
    for (name, path) in [
        (
            "entities at the last instant",
            format!("/api/v1/entities?at={to}"),
        ),
        (
            "findings over the day",
            format!("/api/v1/findings?entity={p}&from={T0}&to={to}"),
        ),
        (
            "entity at the last instant",
            format!("/api/v1/entity?id={p}&at={to}"),
        ),
    ] {
        let ms: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                memlens_testkit::http_get(&addr.to_string(), &path).unwrap();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        println!(
            "API {name}: median {:.0} ms, max {:.0} ms",
            percentile(ms.clone(), 0.5),
            percentile(ms, 1.0)
        );
    }
    let mut browser = Browser::launch(1300, 1000);
    let mut page_ms = Vec::new();
    for _ in 0..5 {
        let url = format!("http://{addr}/process?id={p}&at={to}&span={}", DAY_S * 1000);
        browser.open(
            &url,
            "window.memlens && (window.memlens.ready || window.memlens.errors.length > 0)",
            Duration::from_secs(60),
        );
        let errors = browser.eval("window.memlens.errors");
        assert_eq!(errors, serde_json::json!([]), "page errors");
        page_ms.push(browser.eval("window.memlens.readyMs").as_f64().unwrap());
    }
    println!(
        "process page, 24 h at 1 s: navigation start to charts drawn: median {:.0} ms, max {:.0} ms (goal: 1000 ms)",
        percentile(page_ms.clone(), 0.5),
        percentile(page_ms, 1.0)
    );
}
