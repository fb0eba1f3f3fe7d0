//! A fleet: four agents, each in its own network namespace with a veth pair
//! to the host namespace (10.X.I.0/30, created here and removed on drop,
//! also on failure), each recording its own Go workload started inside its
//! namespace (so the workload's sockets are in that namespace), each with its
//! own `host` label, all writing over https with basic auth to one real
//! VictoriaMetrics (Debian `victoria-metrics` with `-tls` and `-httpAuth.*`,
//! its certificate from a CA made at run time with the `openssl` CLI). One
//! agent's link goes down for 60 s and comes back. Afterwards the receiver
//! holds, for every agent, exactly the RSS samples of that agent's history
//! after its first watermark, timestamp by timestamp, and as many samples in
//! all as the agent stored; the catch-up rate is printed.

use memlens_testkit::{
    free_loopback_port, wait_for, ChildGuard, GoToolchain, TempDir, Workload, WorkloadSpec,
};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AGENTS: usize = 4;
const USER: &str = "memlens";
const PASSWORD: &str = "fleet-pw-7";
/// How long the first agent's link is down.
const OUTAGE: Duration = Duration::from_secs(60);

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// A network namespace with a veth pair to the host namespace: the host
/// end `host_addr`, the namespace end `ns_addr`. Deleted on drop (the veth
/// pair goes with it).
struct Netns {
    name: String,
    host_if: String,
}

/// The receiver's address: a /32 the test adds to the host's loopback
/// (removed on drop), reached from every namespace through its own veth, so
/// that no server of the test listens on an address it did not make.
struct ReceiverAddr(String);

impl ReceiverAddr {
    fn create(octet: u32) -> ReceiverAddr {
        let addr = ReceiverAddr(format!("10.{octet}.255.1"));
        ip(&["addr", "add", &format!("{}/32", addr.0), "dev", "lo"]);
        addr
    }
}

impl Drop for ReceiverAddr {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"])
            .output();
    }
}

impl Netns {
    /// The namespace `index`, routing `receiver` through its veth.
    fn create(index: usize, octet: u32, receiver: &str) -> Netns {
        let pid = std::process::id();
        let name = format!("memlens-fleet-{pid}-{index}");
        let host_if = format!("mlf{}h{index}", pid % 100_000);
        let ns_if = format!("mlf{}n{index}", pid % 100_000);
        let host_addr = format!("10.{octet}.{index}.1");
        let ns_addr = format!("10.{octet}.{index}.2");
        // The guard exists before the first command, so a failure half-way
        // still removes what was made.
        let netns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{ns_addr}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &name,
            "route",
            "add",
            &format!("{receiver}/32"),
            "via",
            &host_addr,
        ]);
        netns
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// A CA and a server certificate for `ips`, made with the openssl CLI.
fn make_certs(dir: &TempDir, ips: &[String]) {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir.path()));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-days",
        "2",
        "-subj",
        "/CN=memlens fleet test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&args);
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-subj",
        "/CN=victoria-metrics",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&args);
    let sans: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
    std::fs::write(
        dir.join("san.ext"),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            sans.join(",")
        ),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}

/// GET over https from the host namespace, with the CA and the password.
fn vm_get(ca: &str, addr: &str, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "--cacert", ca])
        .args(["-u", &format!("{USER}:{PASSWORD}")])
        .arg(format!("https://{addr}{path}"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Every (series, ts, value) VictoriaMetrics holds for `host`, as
/// (metric name + pid label, ts) -> value; a resend of a batch whose answer
/// was lost (documented) is the same value at the same timestamp, so
/// duplicates collapse, and a different value at one timestamp fails.
fn vm_samples(
    ca: &str,
    addr: &str,
    host: &str,
) -> std::collections::BTreeMap<(String, String, i64), f64> {
    let body = vm_get(
        ca,
        addr,
        &format!("/api/v1/export?match%5B%5D=%7Bhost%3D%22{host}%22%7D"),
    )
    .unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let metric = &json["metric"];
        let name = metric["__name__"].as_str().unwrap().to_string();
        let mut labels: Vec<String> = metric
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        labels.sort();
        let values = json["values"].as_array().unwrap();
        let stamps = json["timestamps"].as_array().unwrap();
        for (v, t) in values.iter().zip(stamps) {
            let key = (name.clone(), labels.join(","), t.as_i64().unwrap());
            let value = v.as_f64().unwrap_or(f64::NAN);
            if let Some(old) = out.insert(key.clone(), value) {
                assert!(old == value, "{key:?}: two values, {old} and {value}");
            }
        }
    }
    out
}

fn memlens_query(data: &str, sql: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["query", "--json", "--data", data, sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "memlens query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stored_rss(data: &str, pid: u32, after_ms: i64) -> Vec<(i64, f64)> {
    memlens_query(
        data,
        &format!(
            "SELECT s.ts AS ts, s.value AS value FROM samples s JOIN entities e ON e.id = s.entity \
             WHERE e.pid = {pid} AND s.metric = 'rss_bytes' AND s.ts > {after_ms} ORDER BY s.ts"
        ),
    )
    .iter()
    .map(|r| (r["ts"].as_i64().unwrap(), r["value"].as_f64().unwrap()))
    .collect()
}

fn stored_count(data: &str, after_ms: i64) -> u64 {
    memlens_query(
        data,
        &format!("SELECT count(*) AS n FROM samples WHERE ts > {after_ms} AND value IS NOT NULL"),
    )[0]["n"]
        .as_u64()
        .unwrap()
}

fn state(data: &str) -> Option<serde_json::Value> {
    let entry = std::fs::read_dir(data).ok()?.find_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().to_string_lossy().to_string();
        (name.starts_with("remote_write-") && name.ends_with(".json")).then(|| e.path())
    })?;
    serde_json::from_str(&std::fs::read_to_string(entry).ok()?).ok()
}

fn state_i64(data: &str, key: &str) -> i64 {
    state(data).unwrap()[key].as_i64().unwrap()
}

fn terminate(child: &mut ChildGuard) -> bool {
    // SAFETY: kill has no memory preconditions; the pid is our own child, not yet reaped.
    unsafe { libc::kill(child.pid(), libc::SIGTERM) };
    wait_for("an agent to exit", Duration::from_secs(60), || {
        child.0.try_wait().unwrap()
    })
    .success()
}

struct Member {
    host: String,
    netns: Netns,
    workload: Workload,
    data: String,
    agent: ChildGuard,
    first_ms: i64,
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn four_agents_in_their_own_netns_lose_nothing_through_a_link_outage() {
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the fleet test creates network namespaces: run it as root"
    );
    let dir = TempDir::new("fleet");
    // A /16 of 10/8 picked by pid, so two runs at once do not collide.
    let octet = 100 + std::process::id() % 100;
    let receiver = ReceiverAddr::create(octet);
    let mut nets = Vec::new();
    for i in 0..AGENTS {
        nets.push(Netns::create(i, octet, &receiver.0));
    }
    make_certs(&dir, std::slice::from_ref(&receiver.0));
    let ca = dir.file("ca.pem");
    // VictoriaMetrics listens on the receiver's address only, with TLS and
    // basic auth.
    let port = free_loopback_port();
    let _vm = ChildGuard(
        Command::new("/usr/bin/victoria-metrics")
            .arg(format!("-httpListenAddr={}:{port}", receiver.0))
            .arg(format!("-storageDataPath={}", dir.file("vmdata")))
            .arg("-retentionPeriod=1d")
            .arg("-search.latencyOffset=0s")
            .arg("-tls")
            .arg(format!("-tlsCertFile={}", dir.file("server.pem")))
            .arg(format!("-tlsKeyFile={}", dir.file("server.key")))
            .arg(format!("-httpAuth.username={USER}"))
            .arg(format!("-httpAuth.password={PASSWORD}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics: install the Debian package victoria-metrics"),
    );
    let vm_addr = format!("{}:{port}", receiver.0);
    wait_for("VictoriaMetrics on https", Duration::from_secs(60), || {
        vm_get(&ca, &vm_addr, "/health").filter(|b| b.trim() == "OK")
    });
    let password_file = dir.file("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();

    let mut fleet: Vec<Member> = Vec::new();
    for (i, netns) in nets.into_iter().enumerate() {
        let host = format!("fleet-{i}");
        let workload = WorkloadSpec::new(&GoToolchain::go127(), "steady")
            .arg("--duration=600s")
            .in_netns(netns.path())
            .start();
        workload.wait_for_line("TICK", Duration::from_secs(60));
        let data = dir.file(&format!("data-{i}"));
        let config = dir.file(&format!("agent-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[remote_write]]\nurl = \"https://{}:{port}/api/v1/write\"\n\
                 tls_ca_file = \"{ca}\"\nbasic_auth_username = \"{USER}\"\n\
                 basic_auth_password_file = \"{password_file}\"\n\
                 extra_labels = {{ host = \"{host}\" }}\ntimeout = \"3s\"\nmax_backoff = \"4s\"\n\
                 flush_timeout = \"30s\"\n",
                receiver.0
            ),
        )
        .unwrap();
        let ns_file = std::fs::File::open(netns.path()).unwrap();
        let ns_fd = std::os::fd::AsRawFd::as_raw_fd(&ns_file);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memlens"));
        cmd.args([
            "watch",
            "--quiet",
            "--interval",
            "1",
            "--data",
            &data,
            "--config",
            &config,
        ])
        .arg(format!("--pid={}", workload.pid()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        // SAFETY: setns and prctl are async-signal-safe syscalls; the fd stays
        // open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                    || libc::setns(ns_fd, libc::CLONE_NEWNET) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let agent = ChildGuard(cmd.spawn().expect("start memlens watch"));
        drop(ns_file);
        let first_ms = wait_for("the state file", Duration::from_secs(30), || {
            state(&data)?["started_at_ms"].as_i64()
        });
        fleet.push(Member {
            host,
            netns,
            workload,
            data,
            agent,
            first_ms,
        });
    }
    for m in &fleet {
        wait_for("every agent delivering", Duration::from_secs(60), || {
            (state(&m.data)?["sent_samples_total"].as_u64()? > 0).then_some(())
        });
        // The Go runtime came through the workload's own socket, inside the
        // namespace: its series are in the history.
        wait_for(
            "the Go runtime of the workload read in its netns",
            Duration::from_secs(60),
            || {
                let rows = memlens_query(
                    &m.data,
                    &format!(
                        "SELECT count(*) AS n FROM samples s JOIN entities e ON e.id = s.entity \
                     WHERE e.pid = {} AND s.metric LIKE 'go_%'",
                        m.workload.pid()
                    ),
                );
                (rows[0]["n"].as_u64()? > 0).then_some(())
            },
        );
    }

    // The outage: the first agent's link goes down (timed phase, not
    // synchronisation: the outage must last OUTAGE).
    let cut = &fleet[0];
    cut.netns.link(false);
    let down_at = Instant::now();
    let failed_before = state(&cut.data).unwrap()["failed_requests_total"]
        .as_u64()
        .unwrap();
    std::thread::sleep(OUTAGE);
    let during = state(&cut.data).unwrap();
    assert!(
        during["failed_requests_total"].as_u64().unwrap() > failed_before,
        "the cut agent never failed: is its link really down?"
    );
    let watermark_at_up = during["watermark_ms"].as_i64().unwrap();
    let sent_at_up = during["sent_samples_total"].as_u64().unwrap();
    cut.netns.link(true);
    let up_at = Instant::now();
    let up_ms = unix_ms();
    let outage = up_at - down_at;
    wait_for(
        "the cut agent to catch up",
        Duration::from_secs(120),
        || (state_i64(&cut.data, "watermark_ms") >= up_ms).then_some(()),
    );
    let catch_up = up_at.elapsed();
    let backlog = state(&cut.data).unwrap()["sent_samples_total"]
        .as_u64()
        .unwrap()
        - sent_at_up;
    assert!(
        watermark_at_up < up_ms - 30_000,
        "the watermark moved during the outage"
    );

    // Stop every agent (each flushes), then compare.
    for m in &mut fleet {
        assert!(terminate(&mut m.agent), "the agent of {} failed", m.host);
    }
    for m in &fleet {
        assert_eq!(
            state(&m.data).unwrap()["dropped_samples_total"].as_u64(),
            Some(0),
            "{}",
            m.host
        );
        let pid = m.workload.pid() as u32;
        // The agent watches the workload alone (--pid): its series are the
        // ones of its comm (no pid label by default).
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        let comm = comm.trim_end();
        let stored = stored_rss(&m.data, pid, m.first_ms);
        let stored_all = stored_count(&m.data, m.first_ms);
        let got = wait_for(
            "VictoriaMetrics to hold every sample",
            Duration::from_secs(60),
            || {
                let got = vm_samples(&ca, &vm_addr, &m.host);
                (got.len() as u64 >= stored_all).then_some(got)
            },
        );
        let rss: Vec<(i64, f64)> = got
            .iter()
            .filter(|((name, labels, _), _)| {
                name == "memlens_process_resident_memory_bytes"
                    && labels.split(',').any(|l| l == format!("comm={comm}"))
                    && !labels.split(',').any(|l| l.starts_with("pid="))
            })
            .map(|((_, _, ts), v)| (*ts, *v))
            .collect();
        assert_eq!(
            rss, stored,
            "{}: VictoriaMetrics vs the agent's RSS history",
            m.host
        );
        assert_eq!(
            got.len() as u64,
            stored_all,
            "{}: every sample, no more",
            m.host
        );
        eprintln!(
            "{}: {} samples ({} RSS) all in VictoriaMetrics",
            m.host,
            stored_all,
            stored.len()
        );
    }
    eprintln!(
        "link of {} down {:.0}s: a backlog of {backlog} samples caught up in {:.1}s \
         ({:.0} samples/s)",
        fleet[0].host,
        outage.as_secs_f64(),
        catch_up.as_secs_f64(),
        backlog as f64 / catch_up.as_secs_f64()
    );
}
