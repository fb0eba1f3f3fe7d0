//! `memlens runtime --json` on live processes, checked against what the test
//! reads itself from the same endpoints at about the same moment:
//!
//! - the `steady` workload built with Go 1.19 and Go 1.27 (each in its own
//!   cgroup), started with GOGC=50 and GOMEMLIMIT=300MiB: the settings and their
//!   source (the environment), heap in use against expvar's `HeapInuse`, the
//!   goroutine count against the goroutine profile's `total` line;
//! - Debian's prometheus-node-exporter (by PID) and prometheus (by URL), which
//!   serve only `/metrics`: go_memstats numbers against the test's own scrape;
//!   and `memlens diagnose` on prometheus, whose GC counters can only come
//!   from `/metrics`: its GC cycle counts inside the test's own bracket.
//!
//! Moving values are bracketed: the test reads its own value before and after
//! memlens runs and accepts memlens's value between the two. Goroutine counts
//! are widened only by the goroutines the requests themselves create (counted
//! in common/goroutines.rs); heap in use, which a GC can lower and any request
//! raises, by a tolerance (10% or 2 MiB; 10% or 1 MiB for the services).

use memlens_testkit::WorkloadSpec;
use memlens_testkit::{free_loopback_port, http_get, ChildGuard, GoToolchain, TestCgroup};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/goroutines.rs"]
mod goroutine_counts;
use goroutine_counts::{assert_between_runtime_counts, runtime_total, DISCOVERY_PROBES_PER_PORT};

const MIB: u64 = 1 << 20;

/// Runs `memlens runtime TARGET --json`.
fn memlens_runtime(target: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["runtime", target, "--json"])
        .output()
        .expect("run memlens");
    assert!(
        out.status.success(),
        "memlens runtime {target} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("runtime --json is JSON")
}

/// `summary[field]` as (value, source).
fn field(summary: &Value, name: &str) -> (u64, String) {
    let f = &summary[name];
    let value = f["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} has no numeric value in {summary:#}"));
    let source = f["source"].as_str().unwrap_or_default().to_string();
    (value, source)
}

/// Asserts `got` lies within [min(a, b) - tol, max(a, b) + tol].
fn assert_bracketed(what: &str, got: u64, a: u64, b: u64, tol: u64) {
    let low = a.min(b).saturating_sub(tol);
    let high = a.max(b) + tol;
    assert!(
        (low..=high).contains(&got),
        "{what}: memlens says {got}, the test read {a} before and {b} after (tolerance {tol})"
    );
}

/// expvar's `memstats.HeapInuse`, read by the test.
fn expvar_heap_inuse(addr: &str) -> u64 {
    let body = http_get(addr, "/debug/vars").expect("GET /debug/vars");
    let vars: Value = serde_json::from_str(&body).expect("expvar is JSON");
    vars["memstats"]["HeapInuse"]
        .as_u64()
        .expect("memstats.HeapInuse")
}

fn check_steady(toolchain: GoToolchain) {
    let cgroup = TestCgroup::with_limit(512 * MIB);
    let workload = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=32")
        .arg("--alloc-mib-per-tick=1")
        .arg("--tick=500ms")
        .arg("--duration=0")
        .env("GOGC", "50")
        .env("GOMEMLIMIT", "300MiB")
        .start_in(&cgroup);
    workload.wait_for_line("LIVE_FILLED", Duration::from_secs(30));
    let addr = workload.listen_addr().to_string();
    let label = format!("{} steady", toolchain.version);

    let heap_before = expvar_heap_inuse(&addr);
    let goroutines_before = runtime_total(&addr);
    let summary = memlens_runtime(&workload.pid().to_string());
    let heap_after = expvar_heap_inuse(&addr);
    let goroutines_after = runtime_total(&addr);

    assert_eq!(summary["gogc"]["value"], 50, "{label}: {summary:#}");
    assert_eq!(summary["gogc"]["source"], "environment", "{label}");
    assert_eq!(summary["gogc"]["raw"], "50", "{label}");
    assert_eq!(
        summary["gomemlimit"]["value"], 314_572_800u64,
        "{label}: {summary:#}"
    );
    assert_eq!(summary["gomemlimit"]["source"], "environment", "{label}");
    assert_eq!(summary["gomemlimit"]["raw"], "300MiB", "{label}");

    let (heap, source) = field(&summary, "heap_inuse_bytes");
    assert_eq!(source, "expvar", "{label}");
    let tol = (heap_before.max(heap_after) / 10).max(2 * MIB);
    assert_bracketed(
        &format!("{label}: heap in use"),
        heap,
        heap_before,
        heap_after,
        tol,
    );
    // The live ring is 32 MiB: heap in use cannot be below it.
    assert!(heap >= 32 * MIB, "{label}: heap in use {heap}");

    let (goroutines, source) = field(&summary, "goroutines");
    assert_eq!(source, "goroutine_profile", "{label}");
    // By PID memlens probes the one port, then reads /debug/vars, then the
    // goroutine profile's first line.
    assert_between_runtime_counts(
        &format!("{label}: goroutines"),
        goroutines,
        goroutines_before,
        goroutines_after,
        DISCOVERY_PROBES_PER_PORT + 1,
    );

    // Go version from the build info, as `go version -m` prints it.
    let version_m = toolchain.version_m(workload.binary());
    let want_version = version_m
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .unwrap()
        .trim();
    assert_eq!(summary["go_version"]["value"], want_version, "{label}");
    assert_eq!(summary["go_version"]["source"], "build_info", "{label}");

    let sources: Vec<&str> = summary["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    for want in ["expvar", "goroutine_profile", "environment", "build_info"] {
        assert!(sources.contains(&want), "{label}: inputs {sources:?}");
    }
    // The workload serves no /metrics: skipped quietly, and said so.
    let skipped = summary["skipped"].to_string();
    assert!(skipped.contains("/metrics"), "{label}: skipped {skipped}");
}

#[test]
fn steady_go119_settings_heap_and_goroutines() {
    check_steady(GoToolchain::go119());
}

#[test]
fn steady_go127_settings_heap_and_goroutines() {
    check_steady(GoToolchain::go127());
}

/// A Debian service on a free loopback port, killed on drop, with a temp dir
/// removed on drop.
struct Service {
    child: ChildGuard,
    addr: String,
    dir: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Service {
    fn start(binary: &str, package: &str, args: impl Fn(&str, &Path) -> Vec<String>) -> Service {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: ./scripts/test.sh installs the Debian package {package}"
        );
        let dir = std::env::temp_dir().join(format!(
            "memlens-runtime-live-{}-{}",
            package,
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let child = Command::new(binary)
            .args(args(&addr, &dir))
            .current_dir(&dir)
            .env("GOGC", "75")
            .env_remove("GOMEMLIMIT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let service = Service {
            child: ChildGuard(child),
            addr,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&service.addr, "/metrics").is_err() {
            assert!(
                Instant::now() < deadline,
                "{binary} never served /metrics on {}",
                service.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        service
    }

    /// The unlabelled samples of one scrape by the test (name → value), and
    /// how many metric families it has.
    fn scrape(&self) -> (HashMap<String, u64>, u64) {
        let body = http_get(&self.addr, "/metrics").expect("GET /metrics");
        let families = body.lines().filter(|l| l.starts_with("# TYPE ")).count() as u64;
        let samples = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_string(), value.trim().parse::<f64>().ok()? as u64))
            })
            .collect();
        (samples, families)
    }

    /// A `go_*` gauge from the test's own scrape.
    fn gauge(&self, name: &str) -> u64 {
        *self
            .scrape()
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in /metrics of {}", self.addr))
    }

    fn go_version(&self) -> String {
        let body = http_get(&self.addr, "/metrics").expect("GET /metrics");
        let line = body
            .lines()
            .find(|l| l.starts_with("go_info{"))
            .expect("go_info");
        line.split('"').nth(1).unwrap().to_string()
    }
}

/// The go_memstats numbers of a service against its /metrics, its goroutine
/// count against the runtime's own (`?debug=1`). `sources`: where memlens may
/// take them from (expvar and /metrics read the same MemStats);
/// `earlier_requests`: the requests memlens makes to the service before it
/// reads /metrics.
fn check_metrics_service(
    service: &Service,
    target: &str,
    label: &str,
    sources: &[&str],
    earlier_requests: u64,
) -> Value {
    // One scrape each side: the numbers of one scrape are of one moment.
    let (before, families) = service.scrape();
    let goroutines_before = runtime_total(&service.addr);
    let summary = memlens_runtime(target);
    let goroutines_after = runtime_total(&service.addr);
    let (after, _) = service.scrape();
    let gauge = |scrape: &HashMap<String, u64>, name: &str| -> u64 {
        *scrape
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in /metrics of {}", service.addr))
    };
    let heap_before = gauge(&before, "go_memstats_heap_inuse_bytes");
    let heap_after = gauge(&after, "go_memstats_heap_inuse_bytes");
    let sys_before = gauge(&before, "go_memstats_sys_bytes");
    let sys_after = gauge(&after, "go_memstats_sys_bytes");

    let (heap, source) = field(&summary, "heap_inuse_bytes");
    assert!(sources.contains(&source.as_str()), "{label}: {summary:#}");
    // A small service's heap moves by several hundred KiB with each scrape
    // (the test's own and memlens's requests allocate): 10% or 1 MiB.
    let tol = (heap_before.max(heap_after) / 10).max(1 << 20);
    assert_bracketed(
        &format!("{label}: heap in use"),
        heap,
        heap_before,
        heap_after,
        tol,
    );
    // Sys, the bytes obtained from the OS, never decreases: no widening.
    let (sys, _) = field(&summary, "sys_bytes");
    assert_bracketed(&format!("{label}: sys"), sys, sys_before, sys_after, 0);
    // memlens takes go_goroutines from its own /metrics request. client_golang
    // reads it during that request's Gather: on top of the service's own
    // goroutines it counts the connection and its reader (2) and the collect
    // worker running the Go collector (1), always; then 0..1 goroutine that
    // closes the metric channels and 0..(collectors - 1) more collect workers,
    // which Gather starts whenever no metric is ready (scheduling decides how
    // many). The runtime's own count read by the test counts the service's
    // goroutines + 2 (its own request) and maybe the goroutine of the request
    // just before it (+1). So, exactly: gauge >= the runtime's smaller count
    // - 2 - 1 + 3. Above: + 1 (closer) + the extra workers + what memlens's
    // earlier requests and the test's leave (1 each). The collectors are not
    // visible from outside; the extra workers are bounded by the metric
    // families of the scrape minus one (a worker holds a collector that has
    // something to collect; one that has nothing returns at once).
    let (goroutines, source) = field(&summary, "goroutines");
    assert_eq!(source, "metrics", "{label}");
    let low = goroutines_before.min(goroutines_after);
    let high = goroutines_before.max(goroutines_after) - 2
        + 3
        + 1
        + families.saturating_sub(1)
        + 1
        + earlier_requests;
    assert!(
        (low..=high).contains(&goroutines),
        "{label}: memlens says {goroutines} goroutines (go_goroutines), the runtime counted \
         {goroutines_before} before and {goroutines_after} after; allowed {low}..={high} \
         ({families} metric families)"
    );
    assert_eq!(
        summary["go_version"]["value"].as_str(),
        Some(service.go_version().as_str()),
        "{label}"
    );
    summary
}

#[test]
fn node_exporter_by_pid() {
    let service = Service::start(
        "/usr/bin/prometheus-node-exporter",
        "prometheus-node-exporter",
        |addr, _| vec![format!("--web.listen-address={addr}")],
    );
    let pid = service.child.pid().to_string();
    // By PID: the discovery probes, then /debug/vars where it is served.
    let summary = check_metrics_service(
        &service,
        &pid,
        "node-exporter by PID",
        &["expvar", "metrics"],
        DISCOVERY_PROBES_PER_PORT + 1,
    );
    // Started with GOGC=75: the environment says so (client_golang of this
    // version publishes no go_gc_gogc_percent).
    assert_eq!(summary["gogc"]["value"], 75, "{summary:#}");
    assert_eq!(summary["gogc"]["source"], "environment");
    assert_eq!(summary["gomemlimit"]["value"], "off");
    assert_eq!(summary["gomemlimit"]["source"], "default");

    // Its /metrics alone, as a full URL: every number from /metrics.
    let url = format!("http://{}/metrics", service.addr);
    let summary = check_metrics_service(&service, &url, "node-exporter /metrics", &["metrics"], 0);
    let inputs = summary["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1, "{summary:#}");
    assert_eq!(inputs[0]["source"], "metrics");
    assert!(summary["gogc"].is_null(), "no environment from a URL");
}

/// Debian's prometheus with a config that scrapes nothing in a test's time.
fn start_prometheus() -> Service {
    Service::start("/usr/bin/prometheus", "prometheus", |addr, dir| {
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={addr}"),
        ]
    })
}

#[test]
fn prometheus_by_url() {
    let service = start_prometheus();
    let url = format!("http://{}", service.addr);
    // A base URL: /debug/vars (404 here) is read first.
    let summary = check_metrics_service(&service, &url, "prometheus", &["expvar", "metrics"], 1);
    // A URL has no environment: GOGC is not known unless /metrics says it.
    assert!(summary["gogc"].is_null(), "{summary:#}");
    // Prometheus answers 404 on /debug/vars: skipped, the rest still read.
    let skipped = summary["skipped"].to_string();
    assert!(skipped.contains("/debug/vars"), "skipped {skipped}");
    let gc_cycles = summary["gc_cycles"]["value"].as_u64().expect("gc cycles");
    assert!(gc_cycles <= service.gauge("go_gc_duration_seconds_count"));
}

/// `memlens diagnose` reads GC pressure from `/metrics` where a service serves
/// no expvar (prometheus answers 404 on /debug/vars): the cycle counts at both
/// ends of its window lie inside the test's own scrapes around it, while a
/// bounded load of scrapes makes the service allocate (and collect).
#[test]
fn diagnose_reads_gc_pressure_from_metrics() {
    let service = start_prometheus();
    let pid_number = u64::from(service.child.0.id());
    let pid = pid_number.to_string();
    let before = service.gauge("go_gc_duration_seconds_count");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (report, scrapes) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut scrapes = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && scrapes < 5_000 {
                http_get(&service.addr, "/metrics").expect("GET /metrics");
                scrapes += 1;
            }
            scrapes
        });
        let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["diagnose", "--pid", &pid, "--window", "4", "--json"])
            .args(["--no-profiles"])
            .output()
            .expect("run memlens");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let scrapes = load.join().expect("load thread");
        assert!(
            out.status.success(),
            "memlens diagnose: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("diagnose --json");
        (report, scrapes)
    });
    let after = service.gauge("go_gc_duration_seconds_count");
    let section = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gc_pressure")
        .expect("a gc_pressure section");
    let row = section["data"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"].as_u64() == Some(pid_number))
        .unwrap_or_else(|| panic!("no row for prometheus: {section:#}"));
    assert_eq!(row["from_expvar"], false, "{row:#}");
    let start = row["num_gc_start"].as_u64().expect("num_gc_start");
    let end = row["num_gc_end"].as_u64().expect("num_gc_end");
    assert!(
        before <= start && start <= end && end <= after,
        "prometheus GC count: test {before}, memlens {start}..{end}, test {after}"
    );
    assert_eq!(row["gc_cycles"].as_u64(), Some(end - start), "{row:#}");
    assert!(
        row["alloc_bytes_per_second"].as_f64().unwrap_or(0.0) > 0.0,
        "{scrapes} scrapes allocate: {row:#}"
    );
    eprintln!(
        "prometheus under {scrapes} scrapes: {} GC cycles in the window ({before}..{after} around it), {:.1} MB/s allocated",
        end - start,
        row["alloc_bytes_per_second"].as_f64().unwrap_or(0.0) / 1e6
    );
}
