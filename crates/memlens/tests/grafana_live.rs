//! Every query of the dashboard of `memlens grafana` returns data from a
//! real Prometheus (Debian's) that scraped a real `memlens watch --listen`
//! recording a Go 1.27 heap leak in a 160 MiB memory cgroup (GOMEMLIMIT
//! set and served on its /metrics, so the GOMEMLIMIT line has data; the
//! leak makes a time-to-OOM finding, so the forecast, its range and the
//! active findings have data).
//!
//! Paced by conditions, not sleeps: the test polls Prometheus until every
//! query has returned a sample, within a deadline of 150 s: the fast rule
//! needs 30 s of the leak (docs/findings.md), Go runtime values come every
//! 2 s here, Prometheus scrapes every second; the leak is killed about two
//! minutes after it starts, and what Prometheus stored before stays queryable.
//! The same agent's exposition has every `memlens_*` family that `memlens
//! rules` reads.

use memlens_testkit::{
    free_loopback_port, http_get, ChildGuard, GoToolchain, TempDir, TestCgroup, WorkloadSpec,
};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/cli.rs"]
mod cli;

#[path = "common/grafana.rs"]
mod grafana;
use grafana::{dashboard, panel_queries};

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Percent-encodes a query for a URL.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether Prometheus has any sample for `query` between `start` and now.
fn has_data(prometheus: &str, query: &str, start: f64) -> bool {
    let path = format!(
        "/api/v1/query_range?query={}&start={start:.3}&end={:.3}&step=1",
        encode(query),
        unix_seconds()
    );
    let Ok(body) = http_get(prometheus, &path) else {
        return false;
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_ne!(
        json["status"], "error",
        "Prometheus refused {query}: {body}"
    );
    json["data"]["result"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
}

#[test]
fn every_dashboard_query_returns_data_from_prometheus_scraping_memlens_watch() {
    let queries = panel_queries(&dashboard());
    let cgroup = TestCgroup::with_limit(160 << 20);
    let _workload = WorkloadSpec::new(&GoToolchain::go127(), "heap-leak")
        .arg("--duration=0")
        .arg("--leak-kib-per-second=720")
        .arg("--garbage-kib=512")
        .arg("--metrics")
        .env("GOMEMLIMIT", "200MiB")
        .start_in(&cgroup);
    let dir = TempDir::new("grafana-live");
    let agent_addr = format!("127.0.0.1:{}", free_loopback_port());
    let _agent = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args([
                "watch",
                "--listen",
                &agent_addr,
                "--interval",
                "1",
                "--runtime-interval",
                "2",
            ])
            .args([
                "--cgroup",
                &cgroup.path_in_hierarchy(),
                "--no-profiles",
                "--quiet",
            ])
            .arg("--data")
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: memlens\n    \
             static_configs:\n      - targets: ['{agent_addr}']\n"
        ),
    )
    .unwrap();
    let prometheus = format!("127.0.0.1:{}", free_loopback_port());
    let _prometheus = ChildGuard(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prometheus}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/prometheus (Debian package prometheus)"),
    );
    let start = unix_seconds() - 5.0;
    let began = Instant::now();
    let deadline = began + Duration::from_secs(150);
    let mut missing: BTreeSet<&String> = queries.iter().collect();
    while !missing.is_empty() && Instant::now() < deadline {
        missing.retain(|q| !has_data(&prometheus, q, start));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        missing.is_empty(),
        "after {:?} these panel queries have no data: {missing:#?}",
        began.elapsed()
    );
    eprintln!(
        "all {} panel queries had data after {:.0?}",
        queries.len(),
        began.elapsed()
    );
    let exposition = http_get(&agent_addr, "/metrics").expect("the agent's /metrics");
    let rules = cli::memlens(&["rules"]);
    // Recorded names (`memlens:...`) are the rules' own.
    let used: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("memlens_"))
        .collect();
    let missing: Vec<&&str> = used
        .iter()
        .filter(|n| !exposition.contains(&format!("\n# TYPE {n} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "the rules read families the agent does not export: {missing:?}"
    );
}
