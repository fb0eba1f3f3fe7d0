//! `memlens watch --listen`: the /metrics endpoint checked by `promtool check
//! metrics`, its RSS values compared with /proc/PID/status read by the test,
//! scraped by a real Prometheus whose stored value must be exactly one the
//! agent stored; the bearer-token rules and the series cap.

use memlens_testkit::{
    free_loopback_port, http_get, ChildGuard, GoToolchain, TestCgroup, WorkloadSpec,
};

#[path = "common/metrics.rs"]
mod metrics;
use metrics::{promtool_check, sample};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::memlens_json;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "memlens-metrics-{tag}-{}-{}",
            std::process::id(),
            free_loopback_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn agent(args: &[&str]) -> ChildGuard {
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .arg("watch")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    )
}

/// Polls `probe` until it gives a value (`None` once `timeout` passed).
fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls `probe` until it gives a value; fails after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll(timeout, probe).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

fn vm_rss_bytes(pid: i32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib * 1024.0
}

/// Within 10%.
fn close(got: f64, want: f64) -> bool {
    (0.9..=1.1).contains(&(got / want))
}

/// Status and body of a GET, with an optional bearer token.
fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

#[test]
fn metrics_pass_promtool_and_match_vmrss_and_prometheus_scrapes_them() {
    // In a cgroup of its own: its series are named by that cgroup and its
    // comm (the default identity, no pid label), and no other process has
    // them.
    let cgroup = TestCgroup::with_limit(1 << 30);
    let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--duration=300s")
        .start_in(&cgroup);
    workload.wait_for_line("TICK", Duration::from_secs(60));
    let pid = workload.pid();
    let path = cgroup.path_in_hierarchy();
    let data = TempDir::new("promtool");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let data_dir = data.path("data");
    let mut agent = agent(&["--listen", &addr, "--data", &data_dir, "--interval", "0.5"]);
    let rss_label = format!("cgroup=\"{path}\"");
    // The workload's RSS still grows as it starts: wait until the agent's
    // value agrees with VmRSS (a wrong value never does, and times out).
    let mut seen = None;
    let text = poll(Duration::from_secs(60), || {
        let text = http_get(&addr, "/metrics").ok()?;
        let got = sample(&text, "memlens_process_resident_memory_bytes", &rss_label)?;
        seen = Some((got, vm_rss_bytes(pid)));
        close(got, vm_rss_bytes(pid)).then_some(text)
    });
    let text = text.unwrap_or_else(|| {
        panic!("/metrics never agreed with VmRSS within 10%; last (value, VmRSS): {seen:?}")
    });
    eprintln!("/metrics RSS vs VmRSS: {seen:?}");
    promtool_check(&text);
    // The default labels name no incarnation.
    assert!(!text.contains(&format!("pid=\"{pid}\"")), "{text}");
    assert!(text.contains("# TYPE memlens_agent_cycles_total counter"));

    // A real Prometheus scraping the agent every second.
    let prometheus = Path::new("/usr/bin/prometheus");
    assert!(
        prometheus.exists(),
        "/usr/bin/prometheus missing: install the Debian package prometheus"
    );
    let dir = TempDir::new("prometheus");
    let config = dir.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: memlens\n    \
             static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let prom_addr = format!("127.0.0.1:{}", free_loopback_port());
    let _prometheus = ChildGuard(
        Command::new(prometheus)
            .arg(format!("--config.file={config}"))
            .arg(format!("--storage.tsdb.path={}", dir.path("tsdb")))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    // What Prometheus stored is what it scraped from the agent: one of the
    // values the agent exported, each of which the agent also stored in its
    // history (one per cycle). Compared exactly, after the agent stopped, so
    // nothing races: no tolerance, no timing.
    let query = format!(
        "/api/v1/query?query=memlens_process_resident_memory_bytes%7Bcgroup%3D%22{path}%22%7D"
    );
    let scraped = poll(Duration::from_secs(90), || {
        let body = http_get(&prom_addr, &query).ok()?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = json["data"]["result"].as_array()?.first()?.clone();
        result["value"][1].as_str()?.parse::<f64>().ok()
    })
    .expect("Prometheus never stored the agent's RSS of the workload");
    // SAFETY: kill has no memory-safety preconditions; the pid is our child.
    unsafe { libc::kill(agent.pid(), libc::SIGTERM) };
    let _ = agent.0.wait();
    let stored: Vec<f64> = memlens_json(&[
        "query",
        "--data",
        &data_dir,
        "--json",
        &format!(
            "SELECT s.value AS value FROM samples s JOIN entities e ON e.id = s.entity \
             WHERE e.pid = {pid} AND s.metric = 'rss_bytes'"
        ),
    ])
    .as_array()
    .expect("rows")
    .iter()
    .filter_map(|row| row["value"].as_f64())
    .collect();
    assert!(
        stored.contains(&scraped),
        "Prometheus has {scraped} for the workload's RSS; the agent stored {stored:?}"
    );
    eprintln!(
        "Prometheus RSS {scraped} is one of the agent's {} stored values",
        stored.len()
    );
}

/// A non-loopback address the test adds to the host's `lo` (a /32 of
/// 10/8 picked by pid), removed on drop: the agent listens there, never on
/// an address the test did not make.
struct LoAlias(String);

impl LoAlias {
    fn create() -> LoAlias {
        let alias = LoAlias(format!("10.{}.254.1", 100 + std::process::id() % 100));
        let out = Command::new("ip")
            .args(["addr", "add", &format!("{}/32", alias.0), "dev", "lo"])
            .output()
            .expect("run ip (iproute2)");
        assert!(out.status.success(), "ip addr add: {out:?}");
        alias
    }
}

impl Drop for LoAlias {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"])
            .output();
    }
}

#[test]
fn non_loopback_needs_a_token_and_the_token_is_checked() {
    let data = TempDir::new("token");
    let alias = LoAlias::create();
    let port = free_loopback_port();
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["watch", "--listen", &format!("{}:{port}", alias.0)])
        .args(["--data", &data.path("data"), "--cycles", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a token");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("bearer_token_file"),
        "{stderr}"
    );

    let token = "s3cret-token";
    std::fs::write(data.path("token"), format!("{token}\n")).unwrap();
    std::fs::write(
        data.path("config.toml"),
        format!("bearer_token_file = {:?}\n", data.path("token")),
    )
    .unwrap();
    let listen = format!("{}:{port}", alias.0);
    let _agent = agent(&[
        "--config",
        &data.path("config.toml"),
        "--listen",
        &listen,
        "--data",
        &data.path("data"),
        "--interval",
        "0.5",
    ]);
    let addr = listen.clone();
    let body = wait_for("/metrics with the token", Duration::from_secs(30), || {
        TcpStream::connect(&addr).ok()?;
        let (status, body) = get(&addr, "/metrics", Some(token));
        (status == 200 && body.contains("memlens_host_memory_available_bytes ")).then_some(body)
    });
    promtool_check(&body);
    assert_eq!(get(&addr, "/metrics", None).0, 401);
    assert_eq!(get(&addr, "/metrics", Some("wrong")).0, 401);
    assert_eq!(get(&addr, "/nothing", Some(token)).0, 404);
}

#[test]
fn the_series_cap_keeps_the_largest_and_counts_the_rest() {
    let data = TempDir::new("cap");
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let _agent = agent(&[
        "--listen",
        &addr,
        "--data",
        &data.path("data"),
        "--interval",
        "0.5",
        "--max-series",
        "50",
    ]);
    let text = wait_for("a cycle in /metrics", Duration::from_secs(30), || {
        let text = http_get(&addr, "/metrics").ok()?;
        (sample(&text, "memlens_agent_cycles_total", "")? >= 1.0).then_some(text)
    });
    promtool_check(&text);
    // The cap is on the host, cgroup, process and Go series; the agent's own
    // families (docs/metrics.md: memlens_agent_*, the findings, the OOM kills
    // it saw) come on top. Counted without them: at most the cap, and what
    // the agent says it kept. (Counting every line failed whenever the
    // host's cgroups filled the cap exactly, e.g. beside other tests'.)
    const AGENT_FAMILIES: [&str; 5] = [
        "memlens_finding_active",
        "memlens_time_to_oom_seconds",
        "memlens_time_to_oom_earliest_seconds",
        "memlens_time_to_oom_latest_seconds",
        "memlens_oom_kills_observed_total",
    ];
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("memlens_agent_"))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            !AGENT_FAMILIES.contains(&name)
        })
        .count();
    assert!(series <= 50, "{series} series:\n{text}");
    assert!(series > 0, "{text}");
    assert_eq!(
        Some(series as f64),
        sample(&text, "memlens_agent_series", ""),
        "{text}"
    );
    let dropped = sample(&text, "memlens_agent_series_dropped_total", "").unwrap();
    assert!(dropped > 0.0, "nothing dropped:\n{text}");
    assert!(
        text.contains("memlens_host_memory_available_bytes "),
        "the host goes first"
    );
}
