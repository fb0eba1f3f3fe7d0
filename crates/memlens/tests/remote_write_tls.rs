//! `[[remote_write]]` to a receiver a real deployment runs: a real
//! VictoriaMetrics (Debian `victoria-metrics`) serving https with basic auth
//! (`-tls`, `-httpAuth.*`), its certificate signed by a CA made here with the
//! `openssl` CLI at run time (no key is committed). A wrong password is
//! counted and backed off and loses nothing: after a restart with the right
//! one, the receiver holds exactly the samples the agent stored after its
//! first watermark, timestamp by timestamp. A certificate the configured CA
//! did not sign is one clear error. A 429 with `Retry-After` is waited for.
//! A real Prometheus with TLS and basic auth (`--web.config.file`) takes two
//! agents. Two receivers, one unreachable, keep their own watermarks.

use memlens_testkit::{
    free_loopback_port, http_get, wait_for, ChildGuard, GoToolchain, RefusingLoopbackPort, TempDir,
    WorkloadSpec,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn terminate(child: &mut ChildGuard, what: &str) -> bool {
    // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.pid(), libc::SIGTERM) };
    let status = wait_for(&format!("{what} to exit"), Duration::from_secs(60), || {
        child.0.try_wait().unwrap()
    });
    status.success()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.pem`) and a server certificate for 127.0.0.1 signed by
/// it (`NAME-server.pem`, `NAME-server.key`), made with the openssl CLI.
fn make_ca_and_server_cert(dir: &TempDir, name: &str) {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir.path()));
    let (ca_key, ca) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    let (key, csr, cert) = (
        format!("{name}-server.key"),
        format!("{name}-server.csr"),
        format!("{name}-server.pem"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN=memlens test CA {name}"),
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        &cert,
    ]);
}

const USER: &str = "memlens";
const PASSWORD: &str = "s3cret-pw";

/// VictoriaMetrics on https with basic auth, its certificate from `NAME`.
struct Vm {
    _child: ChildGuard,
    addr: String,
    ca: String,
}

impl Vm {
    fn start(dir: &TempDir, name: &str) -> Vm {
        let binary = Path::new("/usr/bin/victoria-metrics");
        assert!(
            binary.exists(),
            "/usr/bin/victoria-metrics missing: install the Debian package victoria-metrics"
        );
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let child = ChildGuard(
            Command::new(binary)
                .arg(format!("-httpListenAddr={addr}"))
                .arg(format!("-storageDataPath={}", dir.file("vmdata")))
                .arg("-retentionPeriod=1d")
                .arg("-search.latencyOffset=0s")
                .arg("-tls")
                .arg(format!(
                    "-tlsCertFile={}",
                    dir.file(&format!("{name}-server.pem"))
                ))
                .arg(format!(
                    "-tlsKeyFile={}",
                    dir.file(&format!("{name}-server.key"))
                ))
                .arg(format!("-httpAuth.username={USER}"))
                .arg(format!("-httpAuth.password={PASSWORD}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start victoria-metrics"),
        );
        let vm = Vm {
            _child: child,
            addr,
            ca: dir.file(&format!("{name}-ca.pem")),
        };
        wait_for("VictoriaMetrics on https", Duration::from_secs(60), || {
            vm.get("/health").filter(|b| b.trim() == "OK")
        });
        vm
    }

    /// GET over https with the CA and the right password (curl: a client
    /// independent of the agent's).
    fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert", &self.ca])
            .args(["-u", &format!("{USER}:{PASSWORD}")])
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The raw RSS samples of `pid` VictoriaMetrics holds, by timestamp.
    fn rss(&self, pid: u32) -> Vec<(i64, f64)> {
        let body = self
            .get(&format!(
                "/api/v1/export?match%5B%5D=memlens_process_resident_memory_bytes%7Bpid%3D%22{pid}%22%7D"
            ))
            .unwrap_or_default();
        let mut out = Vec::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            let values = json["values"].as_array().unwrap();
            let stamps = json["timestamps"].as_array().unwrap();
            for (v, t) in values.iter().zip(stamps) {
                out.push((t.as_i64().unwrap(), v.as_f64().unwrap()));
            }
        }
        out.sort_by_key(|s| s.0);
        out
    }
}

/// The sender's state file: its JSON.
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

/// The (ts ms, value) RSS samples of `pid` the agent stored after `after_ms`.
fn stored_rss(data: &str, pid: u32, after_ms: i64) -> Vec<(i64, f64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["query", "--json", "--data", data])
        .arg(format!(
            "SELECT s.ts AS ts, s.value AS value FROM samples s JOIN entities e ON e.id = s.entity \
             WHERE e.pid = {pid} AND s.metric = 'rss_bytes' AND s.ts > {after_ms} ORDER BY s.ts"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "memlens query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|row| (row["ts"].as_i64().unwrap(), row["value"].as_f64().unwrap()))
        .collect()
}

/// The agent at a 0.5 s interval watching `pid` with `config`, stderr kept;
/// with pid labels (opt-in), so the receivers' series of `pid` are found by it.
fn agent(
    data: &str,
    config: &str,
    pid: u32,
    listen: Option<&str>,
) -> (ChildGuard, Arc<Mutex<Vec<String>>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memlens"));
    cmd.args(["watch", "--quiet", "--no-profiles", "--interval", "0.5"])
        .args(["--data", data, "--config", config])
        .arg(format!("--pid={pid}"))
        .arg("--pid-label")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(listen) = listen {
        cmd.args(["--listen", listen]);
    }
    let mut child = cmd.spawn().expect("start memlens watch");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("agent: {line}");
            sink.lock().unwrap().push(line);
        }
    });
    (ChildGuard(child), lines)
}

fn write_config(dir: &TempDir, name: &str, vm: &Vm, ca: &str, password_file: &str) -> String {
    let path = dir.file(name);
    std::fs::write(
        &path,
        format!(
            "[remote_write]\nurl = \"https://{}/api/v1/write\"\ntls_ca_file = \"{ca}\"\n\
             basic_auth_username = \"{USER}\"\nbasic_auth_password_file = \"{password_file}\"\n\
             max_backoff = \"2s\"\ntimeout = \"5s\"\n",
            vm.addr
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_wrong_password_is_counted_and_backed_off_and_loses_nothing_over_https() {
    let dir = TempDir::new("auth");
    make_ca_and_server_cert(&dir, "good");
    let vm = Vm::start(&dir, "good");
    let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--duration=300s")
        .start();
    workload.wait_for_line("TICK", Duration::from_secs(60));
    let pid = workload.pid() as u32;
    let data = dir.file("data");
    let password_file = dir.file("password");
    std::fs::write(&password_file, "wrong-pw\n").unwrap();
    let config = write_config(&dir, "watch.toml", &vm, &vm.ca, &password_file);
    let listen = format!("127.0.0.1:{}", free_loopback_port());
    let (mut agent1, _) = agent(&data, &config, pid, Some(&listen));
    let started = Instant::now();
    let first = wait_for("the state file", Duration::from_secs(30), || {
        state(&data)?["started_at_ms"].as_i64()
    });
    let failures = wait_for("401s counted", Duration::from_secs(60), || {
        let n = state(&data)?["auth_failures_total"].as_u64()?;
        (n >= 3).then_some(n)
    });
    let elapsed = started.elapsed().as_secs_f64();
    // Backed off: the first retry waits 0.5 s, the next ones 1 s, then 2 s
    // (max_backoff), so in `elapsed` seconds there are at most 2 per second
    // plus the first try, even on a machine that runs the agent at once.
    assert!(
        (failures as f64) <= elapsed * 2.0 + 1.0,
        "{failures} refused requests in {elapsed:.1}s: not backed off"
    );
    assert_eq!(state_u64(&data, "sent_samples_total"), 0);
    assert_eq!(
        state_u64(&data, "dropped_samples_total"),
        0,
        "a 401 drops nothing"
    );
    assert_eq!(
        state(&data).unwrap()["watermark_ms"].as_i64(),
        Some(first),
        "a 401 never moves the watermark"
    );
    let metrics = wait_for(
        "/metrics with the per-url counters",
        Duration::from_secs(30),
        || {
            let text = http_get(&listen, "/metrics").ok()?;
            let line = text
                .lines()
                .find(|l| l.starts_with("memlens_remote_write_auth_failures_total{url=\"https://"))?
                .to_string();
            (line.rsplit(' ').next()?.parse::<f64>().ok()? >= 1.0).then_some(text)
        },
    );
    assert!(
        metrics.contains("memlens_remote_write_samples_sent_total{url=\"https://"),
        "{metrics}"
    );
    assert!(terminate(&mut agent1, "memlens watch"), "the agent failed");
    assert!(
        vm.rss(pid).is_empty(),
        "VictoriaMetrics took samples with a wrong password"
    );

    // Fixed by a restart with the right password: everything since the first
    // watermark arrives, the samples of the 401 phase included.
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let caught_up = Instant::now();
    let (mut agent2, _) = agent(&data, &config, pid, None);
    wait_for("delivery after the fix", Duration::from_secs(60), || {
        (state_u64(&data, "sent_samples_total") > 0).then_some(())
    });
    let catch_up_seconds = caught_up.elapsed().as_secs_f64();
    // A few more cycles delivered live, then a clean stop flushes the rest.
    let live = state_u64(&data, "sent_samples_total");
    wait_for("20 RSS samples stored", Duration::from_secs(90), || {
        (stored_rss(&data, pid, first).len() >= 20).then_some(())
    });
    assert!(
        state_u64(&data, "sent_samples_total") > live,
        "no live delivery"
    );
    assert!(terminate(&mut agent2, "memlens watch"), "the agent failed");
    assert_eq!(state_u64(&data, "dropped_samples_total"), 0);
    let stored = stored_rss(&data, pid, first);
    assert!(
        stored.len() >= 10,
        "too few samples stored: {}",
        stored.len()
    );
    let got = wait_for(
        "VictoriaMetrics to hold every sample",
        Duration::from_secs(30),
        || {
            let got = vm.rss(pid);
            (got.len() >= stored.len()).then_some(got)
        },
    );
    assert_eq!(got, stored, "VictoriaMetrics vs the agent's history");
    eprintln!(
        "{} RSS samples over https + basic auth, {} refused with 401 first; the backlog \
         went out {catch_up_seconds:.1}s after the restart",
        stored.len(),
        failures
    );
}

#[test]
fn a_certificate_the_ca_did_not_sign_is_one_clear_error() {
    let dir = TempDir::new("ca");
    make_ca_and_server_cert(&dir, "good");
    make_ca_and_server_cert(&dir, "rogue");
    // The receiver presents the rogue CA's certificate; the agent trusts only
    // the good CA.
    let vm = Vm::start(&dir, "rogue");
    let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--duration=120s")
        .start();
    workload.wait_for_line("TICK", Duration::from_secs(60));
    let data = dir.file("data");
    let password_file = dir.file("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let good_ca = dir.file("good-ca.pem");
    let config = write_config(&dir, "watch.toml", &vm, &good_ca, &password_file);
    let (mut child, lines) = agent(&data, &config, workload.pid() as u32, None);
    let line = wait_for("the TLS error", Duration::from_secs(60), || {
        lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("not signed by a CA in tls_ca_file"))
            .cloned()
    });
    assert!(line.contains(&format!("https://{}", vm.addr)), "{line}");
    assert!(terminate(&mut child, "memlens watch"), "the agent failed");
    let same = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("not signed by a CA"))
        .count();
    // Said on the first failure, then once every 20 attempts (and once at
    // the stop): not once a retry.
    assert!(same <= 3, "the TLS error repeated {same} times");
    assert_eq!(state_u64(&data, "sent_samples_total"), 0);
    assert_eq!(state_u64(&data, "dropped_samples_total"), 0);
}

#[test]
fn a_429_with_retry_after_is_waited_for() {
    // A loopback receiver: the first request gets 429 with Retry-After: 3,
    // the others 204. Without Retry-After the first retry would come after
    // 0.5 s.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = times.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || loop {
                // One request per loop: headers, then Content-Length bytes.
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => buf.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).is_err() {
                    return;
                }
                let n = {
                    let mut t = seen.lock().unwrap();
                    t.push(Instant::now());
                    t.len()
                };
                let answer = if n == 1 {
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nslow"
                } else {
                    "HTTP/1.1 204 No Content\r\n\r\n"
                };
                if stream.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            });
        }
    });
    let dir = TempDir::new("429");
    let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--duration=120s")
        .start();
    workload.wait_for_line("TICK", Duration::from_secs(60));
    let data = dir.file("data");
    let config = dir.file("watch.toml");
    std::fs::write(
        &config,
        format!("[[remote_write]]\nurl = \"http://{addr}/api/v1/write\"\nmax_backoff = \"30s\"\n"),
    )
    .unwrap();
    let (mut child, lines) = agent(&data, &config, workload.pid() as u32, None);
    wait_for("a second request", Duration::from_secs(60), || {
        (times.lock().unwrap().len() >= 2).then_some(())
    });
    let gap = {
        let t = times.lock().unwrap();
        t[1] - t[0]
    };
    // The retry came no earlier than asked (3 s; 0.1 s for timer slack).
    assert!(gap >= Duration::from_millis(2_900), "retried after {gap:?}");
    wait_for("delivery", Duration::from_secs(30), || {
        (state(&data)?["sent_samples_total"].as_u64()? > 0).then_some(())
    });
    assert!(terminate(&mut child, "memlens watch"), "the agent failed");
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("HTTP 429 (Retry-After: 3s)")),
        "the 429 was not reported with its Retry-After"
    );
    assert_eq!(state_u64(&data, "dropped_samples_total"), 0);
    eprintln!("429 with Retry-After: 3 -> retried after {gap:?}");
}

#[test]
fn two_receivers_have_their_own_watermarks() {
    // A receiver that takes everything, and a URL nothing listens on: the
    // first gets the samples while the second keeps its first watermark.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || loop {
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => buf.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).is_err()
                    || stream
                        .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                        .is_err()
                {
                    return;
                }
            });
        }
    });
    // Held bound (not listening) for the whole test: no other server can be
    // given the port and answer for the receiver that is down.
    let refusing = RefusingLoopbackPort::bind();
    let down = refusing.addr();
    let dir = TempDir::new("two");
    let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
        .arg("--duration=120s")
        .start();
    workload.wait_for_line("TICK", Duration::from_secs(60));
    let data = dir.file("data");
    let config = dir.file("watch.toml");
    std::fs::write(
        &config,
        format!(
            "[[remote_write]]\nurl = \"http://{up}/api/v1/write\"\n\
             [[remote_write]]\nurl = \"http://{down}/api/v1/write\"\ntimeout = \"1s\"\n"
        ),
    )
    .unwrap();
    let (mut child, _) = agent(&data, &config, workload.pid() as u32, None);
    let states = || -> Option<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&data).ok()? {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_string_lossy().to_string();
            if name.starts_with("remote_write-") && name.ends_with(".json") {
                out.push(serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?);
            }
        }
        (out.len() == 2).then_some(out)
    };
    let by_url = |url: &str| -> Option<serde_json::Value> {
        states()?
            .into_iter()
            .find(|s| s["url"].as_str().is_some_and(|u| u.contains(url)))
    };
    wait_for(
        "delivery to one, failures on the other",
        Duration::from_secs(60),
        || {
            let a = by_url(&up.to_string())?;
            let b = by_url(&down)?;
            (a["sent_samples_total"].as_u64()? > 0
                && a["watermark_ms"].as_i64()? > a["started_at_ms"].as_i64()?
                && b["failed_requests_total"].as_u64()? >= 2)
                .then_some(())
        },
    );
    assert!(terminate(&mut child, "memlens watch"), "the agent failed");
    let b = by_url(&down).unwrap();
    assert_eq!(b["sent_samples_total"].as_u64(), Some(0));
    assert_eq!(b["dropped_samples_total"].as_u64(), Some(0));
    assert_eq!(
        b["watermark_ms"].as_i64(),
        b["started_at_ms"].as_i64(),
        "the unreachable receiver's watermark moved"
    );
}

/// Prometheus with its remote-write receiver, TLS and basic auth through
/// `--web.config.file` (the password as a bcrypt hash).
struct Prom {
    _child: ChildGuard,
    addr: String,
    ca: String,
}

impl Prom {
    fn start(dir: &TempDir, name: &str) -> Prom {
        let binary = Path::new("/usr/bin/prometheus");
        assert!(
            binary.exists(),
            "/usr/bin/prometheus missing: install the Debian package prometheus"
        );
        let addr = format!("127.0.0.1:{}", free_loopback_port());
        let config = dir.file("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
        let web = dir.file("web.yml");
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {USER}: {hash}\n",
                dir.file(&format!("{name}-server.pem")),
                dir.file(&format!("{name}-server.key"))
            ),
        )
        .unwrap();
        let child = ChildGuard(
            Command::new(binary)
                .arg(format!("--config.file={config}"))
                .arg(format!("--storage.tsdb.path={}", dir.file("tsdb")))
                .arg(format!("--web.listen-address={addr}"))
                .arg(format!("--web.config.file={web}"))
                .arg("--web.enable-remote-write-receiver")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus"),
        );
        let prom = Prom {
            _child: child,
            addr,
            ca: dir.file(&format!("{name}-ca.pem")),
        };
        wait_for("Prometheus on https", Duration::from_secs(60), || {
            prom.get("/-/ready")
        });
        prom
    }

    fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert", &self.ca])
            .args(["-u", &format!("{USER}:{PASSWORD}")])
            .arg(format!("https://{}{path}", self.addr))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The raw RSS samples of `pid` labelled `host`, by timestamp.
    fn rss(&self, pid: u32, host: &str) -> Vec<(i64, f64)> {
        let Some(body) = self.get(&format!(
            "/api/v1/query?query=memlens_process_resident_memory_bytes%7Bpid%3D%22{pid}%22%2Chost%3D%22{host}%22%7D%5B10m%5D"
        )) else {
            return Vec::new();
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut out = Vec::new();
        for series in json["data"]["result"].as_array().unwrap() {
            for pair in series["values"].as_array().unwrap() {
                // [1795294247.269, "41943040"]: seconds with ms as a decimal.
                let ts_ms = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
                out.push((ts_ms, pair[1].as_str().unwrap().parse().unwrap()));
            }
        }
        out.sort_by_key(|s| s.0);
        out
    }
}

#[test]
fn prometheus_over_tls_with_basic_auth_takes_two_agents() {
    let dir = TempDir::new("prom");
    make_ca_and_server_cert(&dir, "good");
    let prom = Prom::start(&dir, "good");
    let password_file = dir.file("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let mut agents = Vec::new();
    for host in ["agent-a", "agent-b"] {
        let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
            .arg("--duration=300s")
            .start();
        workload.wait_for_line("TICK", Duration::from_secs(60));
        let pid = workload.pid() as u32;
        let data = dir.file(&format!("data-{host}"));
        let config = dir.file(&format!("{host}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[remote_write]]\nurl = \"https://{}/api/v1/write\"\ntls_ca_file = \"{}\"\n\
                 basic_auth_username = \"{USER}\"\nbasic_auth_password_file = \"{password_file}\"\n\
                 extra_labels = {{ host = \"{host}\" }}\n",
                prom.addr, prom.ca
            ),
        )
        .unwrap();
        let (child, _) = agent(&data, &config, pid, None);
        let first = wait_for("the state file", Duration::from_secs(30), || {
            state(&data)?["started_at_ms"].as_i64()
        });
        agents.push((host, workload, pid, data, child, first));
    }
    for (_, _, pid, data, _, first) in &agents {
        wait_for("20 RSS samples stored", Duration::from_secs(90), || {
            (stored_rss(data, *pid, *first).len() >= 20).then_some(())
        });
    }
    for (host, _, pid, data, child, first) in &mut agents {
        assert!(
            terminate(child, "memlens watch"),
            "the agent of {host} failed"
        );
        assert_eq!(state_u64(data, "dropped_samples_total"), 0, "{host}");
        let stored = stored_rss(data, *pid, *first);
        let got = wait_for(
            "Prometheus to hold every sample",
            Duration::from_secs(30),
            || {
                let got = prom.rss(*pid, host);
                (got.len() >= stored.len()).then_some(got)
            },
        );
        assert_eq!(got, stored, "Prometheus vs the history of {host}");
        eprintln!(
            "{host}: {} RSS samples over https + basic auth into Prometheus",
            stored.len()
        );
    }
}
