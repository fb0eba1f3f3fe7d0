//! `memlens watch --remote-write`: what the agent stores reaches real
//! receivers (Prometheus with its remote-write receiver, VictoriaMetrics),
//! sample for sample, across a receiver restart; a receiver answering 500 for
//! a while loses nothing; one answering 400 gets its batches dropped and
//! counted while the agent keeps running. The reference each time is the
//! agent's own history, read with `memlens query` after the agent stopped.

use memlens_testkit::{
    free_loopback_port, http_get, wait_for, ChildGuard, GoToolchain, WorkloadSpec,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "memlens-rw-{tag}-{}-{}",
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

/// Sends SIGTERM and waits (with a deadline) for the exit; true when it
/// exited successfully.
fn terminate(child: &mut ChildGuard, what: &str) -> bool {
    // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.pid(), libc::SIGTERM) };
    let status = wait_for(&format!("{what} to exit"), Duration::from_secs(60), || {
        child.0.try_wait().unwrap()
    });
    status.success()
}

/// The agent at a 0.5 s interval pushing process `pid` to `url`, with `extra` flags.
fn agent_with(data: &str, url: &str, pid: u32, extra: &[&str]) -> ChildGuard {
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--quiet", "--no-profiles", "--interval", "0.5"])
            .args(["--data", data, "--remote-write", url])
            .args(extra)
            .arg(format!("--pid={pid}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start memlens watch"),
    )
}

/// The sender's state file (created at start): its JSON.
fn state(data: &str) -> Option<serde_json::Value> {
    let entry = std::fs::read_dir(data).ok()?.find_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().to_string_lossy().to_string();
        (name.starts_with("remote_write-") && name.ends_with(".json")).then(|| e.path())
    })?;
    serde_json::from_str(&std::fs::read_to_string(entry).ok()?).ok()
}

fn state_u64(data: &str, key: &str) -> u64 {
    state(data).unwrap()[key].as_u64().unwrap()
}

/// The first watermark: samples after it are what the agent must send (kept
/// in the state file apart from the watermark, which moves on with each batch).
fn first_watermark(data: &str) -> i64 {
    wait_for("the state file", Duration::from_secs(30), || {
        state(data)?["started_at_ms"].as_i64()
    })
}

/// Rows of `memlens query --json`.
fn query(data: &str, sql: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["query", "--json", "--data", data, sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "memlens query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("an array of rows")
}

/// The (ts ms, value) RSS samples of `pid` the agent stored after `after_ms`.
fn stored_rss(data: &str, pid: u32, after_ms: i64) -> Vec<(i64, f64)> {
    query(
        data,
        &format!(
            "SELECT s.ts AS ts, s.value AS value FROM samples s JOIN entities e ON e.id = s.entity \
             WHERE e.pid = {pid} AND s.metric = 'rss_bytes' AND s.ts > {after_ms} ORDER BY s.ts"
        ),
    )
    .iter()
    .map(|row| (row["ts"].as_i64().unwrap(), row["value"].as_f64().unwrap()))
    .collect()
}

/// (timestamp ms, value) pairs.
type Samples = Vec<(i64, f64)>;

/// A receiver process on a fixed port and data directory, restartable.
struct Receiver {
    start: Box<dyn Fn() -> ChildGuard>,
    child: Option<ChildGuard>,
    addr: String,
    /// The raw RSS samples of `pid` the receiver holds, if it answers.
    samples: fn(&str, u32) -> Option<Samples>,
    ready_path: &'static str,
}

impl Receiver {
    fn up(&mut self) {
        self.child = Some((self.start)());
        let addr = self.addr.clone();
        let path = self.ready_path;
        wait_for("the receiver to be ready", Duration::from_secs(60), || {
            http_get(&addr, path).ok()
        });
    }
    fn down(&mut self) {
        let mut child = self.child.take().unwrap();
        assert!(terminate(&mut child, "the receiver"));
    }
}

fn prometheus(dir: &TempDir) -> Receiver {
    let binary = Path::new("/usr/bin/prometheus");
    assert!(
        binary.exists(),
        "/usr/bin/prometheus missing: install the Debian package prometheus"
    );
    let config = dir.path("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let (a, tsdb) = (addr.clone(), dir.path("tsdb"));
    Receiver {
        start: Box::new(move || {
            ChildGuard(
                Command::new(binary)
                    .arg(format!("--config.file={config}"))
                    .arg(format!("--storage.tsdb.path={tsdb}"))
                    .arg(format!("--web.listen-address={a}"))
                    .arg("--web.enable-remote-write-receiver")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start prometheus"),
            )
        }),
        child: None,
        addr,
        ready_path: "/-/ready",
        samples: |addr, pid| {
            let body = http_get(
                addr,
                &format!(
                    "/api/v1/query?query=memlens_process_resident_memory_bytes%7Bpid%3D%22{pid}%22%7D%5B10m%5D"
                ),
            )
            .ok()?;
            let json: serde_json::Value = serde_json::from_str(&body).ok()?;
            let result = json["data"]["result"].as_array()?;
            let mut out = Vec::new();
            for series in result {
                for pair in series["values"].as_array()? {
                    // [1795294247.269, "41943040"]: seconds with ms as a decimal.
                    let ts_ms = (pair[0].as_f64()? * 1000.0).round() as i64;
                    out.push((ts_ms, pair[1].as_str()?.parse().ok()?));
                }
            }
            out.sort_by_key(|s| s.0);
            Some(out)
        },
    }
}

fn victoria_metrics(dir: &TempDir) -> Receiver {
    let binary = Path::new("/usr/bin/victoria-metrics");
    assert!(
        binary.exists(),
        "/usr/bin/victoria-metrics missing: install the Debian package victoria-metrics"
    );
    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let (a, storage) = (addr.clone(), dir.path("vmdata"));
    Receiver {
        start: Box::new(move || {
            ChildGuard(
                Command::new(binary)
                    .arg(format!("-httpListenAddr={a}"))
                    .arg(format!("-storageDataPath={storage}"))
                    .arg("-retentionPeriod=1d")
                    .arg("-search.latencyOffset=0s")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start victoria-metrics"),
            )
        }),
        child: None,
        addr,
        ready_path: "/health",
        samples: |addr, pid| {
            let body = http_get(
                addr,
                &format!(
                    "/api/v1/export?match%5B%5D=memlens_process_resident_memory_bytes%7Bpid%3D%22{pid}%22%7D"
                ),
            )
            .ok()?;
            let mut out = Vec::new();
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let json: serde_json::Value = serde_json::from_str(line).ok()?;
                let values = json["values"].as_array()?;
                let stamps = json["timestamps"].as_array()?;
                for (v, t) in values.iter().zip(stamps) {
                    out.push((t.as_i64()?, v.as_f64()?));
                }
            }
            out.sort_by_key(|s| s.0);
            Some(out)
        },
    }
}

/// The agent pushes to `receiver` through a 4 s outage of it; afterwards the
/// receiver holds exactly the RSS samples the agent stored.
fn lossless_through_a_restart(mut receiver: Receiver, tag: &str) {
    let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--duration=300s")
        .start();
    workload.wait_for_line("TICK", Duration::from_secs(60));
    let pid = workload.pid() as u32;
    receiver.up();
    let dir = TempDir::new(tag);
    let data = dir.path("data");
    let url = format!("http://{}/api/v1/write", receiver.addr);
    // With pid labels (opt-in): the receiver's series of this incarnation.
    let mut agent = agent_with(&data, &url, pid, &["--pid-label"]);
    let start_ms = first_watermark(&data);
    let pause = |seconds| std::thread::sleep(Duration::from_secs(seconds));
    // Timed phases (not synchronisation): the outage must span several cycles.
    pause(6);
    receiver.down();
    let sent_before = state_u64(&data, "sent_samples_total");
    assert!(sent_before > 0, "nothing was sent before the outage");
    pause(4);
    receiver.up();
    pause(6);
    assert!(terminate(&mut agent, "memlens watch"), "the agent failed");
    let stored = stored_rss(&data, pid, start_ms);
    assert!(
        stored.len() >= 20,
        "too few samples stored: {}",
        stored.len()
    );
    let mut last = Vec::new();
    let got = (0..150).find_map(|_| {
        last = (receiver.samples)(&receiver.addr, pid).unwrap_or_default();
        if last.len() >= stored.len() {
            return Some(last.clone());
        }
        std::thread::sleep(Duration::from_millis(200));
        None
    });
    let got = got.unwrap_or_else(|| {
        panic!(
            "{tag} holds {} RSS samples of pid {pid}, the agent stored {}",
            last.len(),
            stored.len()
        )
    });
    assert_eq!(got, stored, "{tag} vs the agent's history");
    eprintln!(
        "{tag}: {} RSS samples of pid {pid} through a 4 s outage, all delivered",
        stored.len()
    );
    receiver.down();
}

#[test]
fn prometheus_gets_every_sample_through_its_restart() {
    let dir = TempDir::new("prometheus");
    lossless_through_a_restart(prometheus(&dir), "prometheus");
}

#[test]
fn victoria_metrics_gets_every_sample_through_its_restart() {
    let dir = TempDir::new("victoria");
    lossless_through_a_restart(victoria_metrics(&dir), "victoria-metrics");
}

/// The remote-write messages, decoded independently of the agent's own.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// (labels, timestamp) of every accepted sample, with its value.
type Accepted = BTreeMap<(Vec<(String, String)>, i64), f64>;

/// A status for [`FakeReceiver::start`]: accept the connection, never answer.
const HANG: u16 = 0;

/// A receiver in the test: answers request number `i` (from 0) with
/// `status(i)`, checks the protocol headers, and keeps the samples of the
/// requests it answered with a 2xx.
struct FakeReceiver {
    addr: String,
    requests: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Accepted>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeReceiver {
    fn start(status: fn(usize) -> u16) -> FakeReceiver {
        FakeReceiver::start_on("127.0.0.1:0", status)
    }

    /// The same on a given address (a port reserved earlier).
    fn start_on(addr: &str, status: fn(usize) -> u16) -> FakeReceiver {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let receiver = FakeReceiver {
            addr: listener.local_addr().unwrap().to_string(),
            requests: Arc::default(),
            accepted: Arc::default(),
            errors: Arc::default(),
            stop: Arc::default(),
        };
        let (requests, accepted, errors, stop) = (
            receiver.requests.clone(),
            receiver.accepted.clone(),
            receiver.errors.clone(),
            receiver.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let i = requests.load(Ordering::Relaxed);
                let code = status(i);
                if code == HANG {
                    // Take the connection and never answer: the agent's timeout must act.
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(5));
                        drop(stream);
                    });
                    requests.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                match serve(stream, code) {
                    Ok(request) => {
                        if (200..300).contains(&code) {
                            let mut accepted = accepted.lock().unwrap();
                            for series in request.timeseries {
                                let labels: Vec<(String, String)> = series
                                    .labels
                                    .into_iter()
                                    .map(|l| (l.name, l.value))
                                    .collect();
                                for s in series.samples {
                                    accepted.insert((labels.clone(), s.timestamp), s.value);
                                }
                            }
                        }
                    }
                    Err(err) => errors.lock().unwrap().push(err),
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
        });
        receiver
    }
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one POST, checks it, answers `code`.
fn serve(mut stream: TcpStream, code: u16) -> Result<WriteRequest, String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the headers ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or("no content-length")?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the body ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let reason = if code == 400 { "out of bounds" } else { "" };
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
        reason.len()
    );
    if !head.starts_with("post /api/v1/write http/1.1") {
        return Err(format!("request line: {:?}", head.lines().next()));
    }
    for (name, want) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ] {
        if header(name).as_deref() != Some(want) {
            return Err(format!("{name}: {:?}, expected {want}", header(name)));
        }
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&buf[head_end..head_end + length])
        .map_err(|e| format!("not snappy: {e}"))?;
    let request = <WriteRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| format!("not a WriteRequest: {e}"))?;
    for series in &request.timeseries {
        let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
        if names.first() != Some(&"__name__") || !names.is_sorted() {
            return Err(format!("labels not sorted with __name__ first: {names:?}"));
        }
        if !series.samples.is_sorted_by_key(|s| s.timestamp) {
            return Err("samples out of order".into());
        }
    }
    Ok(request)
}

fn toml_config(dir: &TempDir) -> String {
    let path = dir.path("watch.toml");
    std::fs::write(
        &path,
        "[remote_write]\nextra_labels = { host = \"test-host\" }\nmax_samples_per_request = 50\n",
    )
    .unwrap();
    path
}

/// Every stored (non-NaN) sample after `after_ms`.
fn stored_count(data: &str, after_ms: i64) -> u64 {
    query(
        data,
        &format!("SELECT count(*) AS n FROM samples WHERE ts > {after_ms} AND value IS NOT NULL"),
    )[0]["n"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_receiver_failing_with_500_for_a_while_loses_nothing() {
    // Three 500s: retried after 0.5, 1 and 2 s.
    let receiver = FakeReceiver::start(|i| if i < 3 { 500 } else { 204 });
    let dir = TempDir::new("r500");
    let data = dir.path("data");
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let config = toml_config(&dir);
    let mut agent = agent_with(&data, &url, std::process::id(), &["--config", &config]);
    let start_ms = first_watermark(&data);
    wait_for("6 requests", Duration::from_secs(60), || {
        (receiver.requests.load(Ordering::Relaxed) >= 6).then_some(())
    });
    assert!(terminate(&mut agent, "memlens watch"), "the agent failed");
    let errors = receiver.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "bad requests: {errors:?}");
    let accepted = receiver.accepted.lock().unwrap().clone();
    let stored = stored_count(&data, start_ms);
    assert!(stored > 0);
    assert_eq!(accepted.len() as u64, stored, "accepted vs stored samples");
    assert_eq!(state_u64(&data, "sent_samples_total"), stored);
    assert_eq!(state_u64(&data, "dropped_samples_total"), 0);
    assert!(state_u64(&data, "failed_requests_total") >= 3);
    // The RSS series of this process, as the history has it, labelled as on /metrics.
    // The agent watches this process alone (--pid): its series are the
    // ones of its comm (no pid label by default).
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let me = me.trim_end();
    let rss: Vec<(i64, f64)> = accepted
        .iter()
        .filter(|((labels, _), _)| {
            labels.iter().all(|(n, _)| n != "pid")
                && labels.iter().any(|(n, v)| n == "comm" && v == me)
                && labels
                    .iter()
                    .any(|(n, v)| n == "__name__" && v == "memlens_process_resident_memory_bytes")
                && labels.iter().any(|(n, v)| n == "host" && v == "test-host")
        })
        .map(|((_, ts), v)| (*ts, *v))
        .collect();
    assert_eq!(rss, stored_rss(&data, std::process::id(), start_ms));
    let names: BTreeSet<&str> = accepted
        .keys()
        .flat_map(|(labels, _)| labels.iter().filter(|l| l.0 == "__name__"))
        .map(|l| l.1.as_str())
        .collect();
    assert!(
        names.contains("memlens_host_memory_available_bytes"),
        "{names:?}"
    );
    eprintln!("500 then 204: {stored} samples, all delivered");
}

#[test]
fn a_receiver_refusing_with_400_gets_batches_dropped_and_counted() {
    let receiver = FakeReceiver::start(|_| 400);
    let dir = TempDir::new("r400");
    let data = dir.path("data");
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let listen = format!("127.0.0.1:{}", free_loopback_port());
    let mut agent = agent_with(&data, &url, std::process::id(), &["--listen", &listen]);
    let start_ms = first_watermark(&data);
    wait_for("4 requests", Duration::from_secs(60), || {
        (receiver.requests.load(Ordering::Relaxed) >= 4).then_some(())
    });
    // The agent's /metrics counts the drops.
    let dropped_metric = wait_for(
        "dropped samples on /metrics",
        Duration::from_secs(30),
        || {
            let text = http_get(&listen, "/metrics").ok()?;
            let value: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("memlens_agent_remote_write_dropped_samples_total "))?
                .parse()
                .ok()?;
            (value > 0.0).then_some(value)
        },
    );
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "the agent stopped on a 400"
    );
    assert!(terminate(&mut agent, "memlens watch"), "the agent failed");
    let errors = receiver.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "bad requests: {errors:?}");
    let stored = stored_count(&data, start_ms);
    assert!(stored > 0);
    assert_eq!(state_u64(&data, "dropped_samples_total"), stored);
    assert!(dropped_metric <= stored as f64);
    assert_eq!(state_u64(&data, "sent_samples_total"), 0);
    assert!(receiver.accepted.lock().unwrap().is_empty());
}

#[test]
fn a_receiver_that_never_answers_times_out_and_loses_nothing() {
    // Two connections taken and never answered (the agent gives up after 1 s
    // each), then 204s.
    let receiver = FakeReceiver::start(|i| if i < 2 { HANG } else { 204 });
    let dir = TempDir::new("hang");
    let data = dir.path("data");
    let config = dir.path("watch.toml");
    std::fs::write(&config, "[remote_write]\ntimeout_seconds = 1\n").unwrap();
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let mut agent = agent_with(&data, &url, std::process::id(), &["--config", &config]);
    let start_ms = first_watermark(&data);
    wait_for("4 requests", Duration::from_secs(60), || {
        (receiver.requests.load(Ordering::Relaxed) >= 4).then_some(())
    });
    // Sampling went on while the sender waited on the silent receiver.
    let stored_while_hanging = stored_count(&data, start_ms);
    assert!(stored_while_hanging > 0);
    assert!(terminate(&mut agent, "memlens watch"), "the agent failed");
    let errors = receiver.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "bad requests: {errors:?}");
    let accepted = receiver.accepted.lock().unwrap().len() as u64;
    let stored = stored_count(&data, start_ms);
    assert_eq!(accepted, stored, "accepted vs stored samples");
    assert!(state_u64(&data, "failed_requests_total") >= 2);
    assert_eq!(state_u64(&data, "dropped_samples_total"), 0);
    eprintln!("silent receiver then 204: {stored} samples, all delivered");
}

#[test]
fn an_outage_past_the_buffer_bound_drops_the_oldest_samples_counted() {
    // Nobody listens for the first 6 s; the buffer keeps 2 s: what passes the
    // bound unsent is dropped and counted, the rest arrives.
    let addr = format!("127.0.0.1:{}", memlens_testkit::free_loopback_port());
    let dir = TempDir::new("bound");
    let data = dir.path("data");
    let config = dir.path("watch.toml");
    std::fs::write(
        &config,
        "[remote_write]\nmax_buffer_age_seconds = 2\nmax_backoff_seconds = 1\n",
    )
    .unwrap();
    let url = format!("http://{addr}/api/v1/write");
    let mut agent = agent_with(&data, &url, std::process::id(), &["--config", &config]);
    let start_ms = first_watermark(&data);
    wait_for("a 6 s outage", Duration::from_secs(30), || {
        (state_u64(&data, "dropped_samples_total") > 0
            && std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                > start_ms + 6000)
            .then_some(())
    });
    let receiver = FakeReceiver::start_on(&addr, |_| 204);
    wait_for("2 accepted requests", Duration::from_secs(30), || {
        (receiver.requests.load(Ordering::Relaxed) >= 2).then_some(())
    });
    assert!(terminate(&mut agent, "memlens watch"), "the agent failed");
    let errors = receiver.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "bad requests: {errors:?}");
    let accepted = receiver.accepted.lock().unwrap().len() as u64;
    let dropped = state_u64(&data, "dropped_samples_total");
    let stored = stored_count(&data, start_ms);
    assert!(
        accepted > 0 && dropped > 0,
        "accepted {accepted}, dropped {dropped}"
    );
    assert_eq!(
        accepted + dropped,
        stored,
        "every stored sample is either delivered or counted as dropped"
    );
    eprintln!("outage past the bound: {stored} stored, {accepted} delivered, {dropped} dropped and counted");
}
