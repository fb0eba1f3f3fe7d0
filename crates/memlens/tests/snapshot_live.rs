//! `memlens snapshot --json` checked against independent sources: `go version -m`,
//! values the workloads plant (open files, mappings, environment), the cgroup
//! limit the harness set, and the process's own report of itself.

use memlens_testkit::{ChildGuard, GoToolchain, TestCgroup, WorkloadSpec};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "common/stat_rss.rs"]
mod stat_rss;
use stat_rss::stat_rss_slack_bytes;

const MIB: u64 = 1 << 20;

/// Runs `memlens snapshot --json` with `args` and returns the parsed output.
fn snapshot(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .arg("snapshot")
        .arg("--json")
        .args(args)
        .output()
        .expect("run memlens");
    assert!(
        out.status.success(),
        "memlens snapshot {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("snapshot --json is JSON")
}

/// The row of `pid` in a snapshot taken with `--pid pid`.
fn process_row(pid: i32) -> Value {
    let snap = snapshot(&["--pid", &pid.to_string()]);
    let rows = snap["processes"].as_array().expect("processes array");
    assert_eq!(rows.len(), 1, "one row for --pid {pid}: {snap}");
    rows[0].clone()
}

/// What `go version -m` says: (go version, main path).
fn go_version_m(toolchain: &GoToolchain, binary: &Path) -> (String, String) {
    let text = toolchain.version_m(binary);
    let version = text
        .lines()
        .next()
        .and_then(|l| l.rsplit(": ").next())
        .expect("first line names the version")
        .trim()
        .to_string();
    let path = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("path\t"))
        .expect("a path line")
        .trim()
        .to_string();
    (version, path)
}

#[test]
fn go_version_and_module_match_go_version_m() {
    for toolchain in GoToolchain::all() {
        let workload = WorkloadSpec::new(&toolchain, "steady")
            .arg("--live-mib=4")
            .arg("--duration=30s")
            .start();
        let (version, path) = go_version_m(&toolchain, workload.binary());
        let row = process_row(workload.pid());
        assert_eq!(row["go"]["version"], version.as_str(), "{}", toolchain.name);
        assert_eq!(row["go"]["module"], path.as_str(), "{}", toolchain.name);
        assert_eq!(row["start_time"].as_u64().map(|t| t > 0), Some(true));
    }
}

#[test]
fn debian_prometheus_is_recognised_as_go() {
    let binary = Path::new("/usr/bin/prometheus");
    assert!(
        binary.exists(),
        "Debian's prometheus is missing: ./scripts/test.sh installs it"
    );
    let toolchain = GoToolchain::go119();
    let (version, path) = go_version_m(&toolchain, binary);
    let data = tempdir("prometheus-data");
    let config = data.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let mut child = ChildGuard(
        Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.join("tsdb").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let pid = child.0.id() as i32;
    let row = process_row(pid);
    assert_eq!(row["go"]["version"], version.as_str());
    assert_eq!(row["go"]["module"], path.as_str());
    child.kill();
    std::fs::remove_dir_all(data).ok();
}

#[test]
fn non_go_processes_have_no_go_section() {
    let mut child = ChildGuard(Command::new("sleep").arg("30").spawn().unwrap());
    let row = process_row(child.0.id() as i32);
    assert_eq!(row["go"], Value::Null);
    assert_eq!(row["comm"], "sleep");
    child.kill();
}

#[test]
fn planted_open_files_show_in_fd_count() {
    const FDS: u64 = 250;
    let toolchain = GoToolchain::go127();
    let workload = WorkloadSpec::new(&toolchain, "fd-leak")
        .arg(format!("--fds={FDS}"))
        .arg("--setup-after=4s")
        .arg("--duration=60s")
        .start();
    workload.wait_for_line("READY", Duration::from_secs(20));
    let before = process_row(workload.pid())["fd_count"].as_u64().unwrap();
    assert!(
        !workload
            .stdout_lines()
            .iter()
            .any(|l| l.starts_with("FDS_OPEN")),
        "the first snapshot came after the setup: raise --setup-after"
    );
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(30));
    let after = process_row(workload.pid())["fd_count"].as_u64().unwrap();
    assert_eq!(after - before, FDS, "fd_count {before} -> {after}");
}

#[test]
fn planted_mappings_show_in_vma_count() {
    const MAPPINGS: u64 = 300;
    let toolchain = GoToolchain::go119();
    let workload = WorkloadSpec::new(&toolchain, "mmap")
        .arg(format!("--mappings={MAPPINGS}"))
        .arg("--setup-after=4s")
        .arg("--duration=60s")
        .start();
    workload.wait_for_line("READY", Duration::from_secs(20));
    let before = process_row(workload.pid());
    assert!(
        !workload
            .stdout_lines()
            .iter()
            .any(|l| l.starts_with("MAPPINGS")),
        "the first snapshot came after the setup: raise --setup-after"
    );
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(30));
    let after = process_row(workload.pid());
    let vmas = |row: &Value| row["vma_count"].as_u64().unwrap();
    let anon = |row: &Value| row["anon_vma_count"].as_u64().unwrap();
    // The Go runtime maps memory of its own now and then; the workload reports
    // its own count so a stray runtime mapping is told apart from ours.
    let line = workload.wait_for_line("MAPPINGS", Duration::from_secs(1));
    let own_delta = parse_field(&line, "vmas_after") - parse_field(&line, "vmas_before");
    // Its own two counts can take in a stray runtime mapping too.
    assert!(own_delta.abs_diff(MAPPINGS) <= 2, "{line}");
    let delta = vmas(&after) - vmas(&before);
    assert!(
        delta.abs_diff(MAPPINGS) <= 2,
        "vma_count {} -> {} (delta {delta}, planted {MAPPINGS})",
        vmas(&before),
        vmas(&after)
    );
    assert!(anon(&after) - anon(&before) >= MAPPINGS);
    // Holes between the mappings: the largest gap is a real number, not zero.
    assert!(after["largest_gap_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn go_environment_comes_back_and_nothing_else() {
    let toolchain = GoToolchain::go127();
    let workload = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=4")
        .arg("--duration=30s")
        .env("GOGC", "50")
        .env("GOMEMLIMIT", "96MiB")
        .env("GODEBUG", "madvdontneed=1")
        .env("GOMAXPROCS", "1")
        .env("MEMLENS_TEST_SECRET", "hunter2-do-not-keep")
        .start();
    let row = process_row(workload.pid());
    assert_eq!(row["go"]["gogc"], "50");
    assert_eq!(row["go"]["gomemlimit"], "96MiB");
    assert_eq!(row["go"]["godebug"], "madvdontneed=1");
    assert_eq!(row["go"]["gomaxprocs"], "1");
    let all = snapshot(&[]).to_string();
    assert!(
        !all.contains("hunter2"),
        "an environment value leaked into the output"
    );
}

#[test]
fn secrets_in_the_command_line_are_redacted() {
    // bash stays the process, and its command line carries the arguments
    // after the script. It waits in its builtin `read` on a pipe this test
    // holds open, so it has no child that would outlive it holding the
    // test's output (a `sleep` child did: nextest called the test leaky).
    let mut child = ChildGuard(
        Command::new("bash")
            .stdin(Stdio::piped())
            .args([
                "-c",
                "read -r -t 30 _ || :",
                "app",
                "--password=hunter2",
                "--token",
                "tok-secret",
                "postgres://app:dbsecret@127.0.0.1/db",
                "--listen=127.0.0.1:8080",
            ])
            .spawn()
            .unwrap(),
    );
    let pid = child.pid();
    let row = process_row(pid);
    let cmdline = row["cmdline"].to_string();
    for secret in ["hunter2", "tok-secret", "dbsecret"] {
        assert!(!cmdline.contains(secret), "{secret} in {cmdline}");
    }
    assert!(cmdline.contains("--listen=127.0.0.1:8080"), "{cmdline}");
    assert!(cmdline.contains("postgres://app:"), "{cmdline}");
    child.kill();
}

#[test]
fn cgroup_limit_set_by_the_harness_comes_back() {
    let toolchain = GoToolchain::go119();
    let cgroup = TestCgroup::with_limit(200 * MIB);
    let workload = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=8")
        .arg("--duration=30s")
        .start_in(&cgroup);
    workload.wait_for_line("LIVE_FILLED", Duration::from_secs(20));
    let row = process_row(workload.pid());
    let cg = &row["cgroup"];
    assert_eq!(cg["path"], cgroup.path_in_hierarchy().as_str());
    assert_eq!(cg["limit_bytes"], 200 * MIB);
    assert_eq!(cg["effective_limit_bytes"], 200 * MIB);
    assert_eq!(cg["oom_kill_count"], 0);
    let usage = cg["usage_bytes"].as_u64().unwrap();
    assert!((8 * MIB..200 * MIB).contains(&usage), "usage {usage}");
    // --cgroup selects exactly the processes in it.
    let snap = snapshot(&["--cgroup", &cgroup.path_in_hierarchy()]);
    let pids: Vec<i64> = snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids, vec![i64::from(workload.pid())]);
}

#[test]
fn rss_matches_what_the_process_says_of_itself() {
    // A quiet process (setup done, nothing allocating): compare with `ps`,
    // which reads the kernel through another path (procps).
    let toolchain = GoToolchain::go127();
    let workload = WorkloadSpec::new(&toolchain, "fd-leak")
        .arg("--fds=10")
        .arg("--duration=30s")
        .start();
    workload.wait_for_line("SETUP_DONE", Duration::from_secs(20));
    // rss (KiB), vsz (KiB), threads as ps reads them.
    let ps = || -> Vec<u64> {
        let out = Command::new("ps")
            .args(["-o", "rss=,vsz=,nlwp=", "-p", &workload.pid().to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect()
    };
    let before = ps();
    let row = process_row(workload.pid());
    let after = ps();
    // Between ps's readings before and after; RSS widened only by what
    // /proc/PID/stat, which ps reads, leaves unsummed (common/stat_rss.rs).
    let within = |what: &str, ours: u64, i: usize, unit: u64, slack: u64| {
        let (a, b) = (before[i] * unit, after[i] * unit);
        let (low, high) = (a.min(b).saturating_sub(slack), a.max(b) + slack);
        assert!(
            (low..=high).contains(&ours),
            "{what} {ours}: ps says {a} before and {b} after (slack {slack})"
        );
    };
    within(
        "rss",
        row["rss_bytes"].as_u64().unwrap(),
        0,
        1024,
        stat_rss_slack_bytes(),
    );
    within(
        "vsz",
        row["vm_size_bytes"].as_u64().unwrap() / 1024,
        1,
        1,
        0,
    );
    within("threads", row["threads"].as_u64().unwrap(), 2, 1, 0);
}

#[test]
fn bad_input_gets_one_clear_error() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .arg("snapshot")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--root", "/nonexistent-memlens-root"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent-memlens-root/proc/meminfo"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = run(&["--pid", "2147483647"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("process 2147483647 does not exist"), "{err}");

    let out = run(&["--sort", "size"]);
    assert!(!out.status.success());
}

fn parse_field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("memlens-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
/// Runs `command` as the unprivileged user `nobody`.
fn as_nobody(command: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", command]);
    cmd
}

#[test]
fn non_root_reads_its_own_processes_and_gets_partial_rows_for_others() {
    let mut own = ChildGuard(as_nobody("sleep").arg("30").spawn().unwrap());
    let mut roots = ChildGuard(Command::new("sleep").arg("30").spawn().unwrap());
    let (own_pid, root_pid) = (own.0.id().to_string(), roots.0.id().to_string());
    // Wait until setpriv has become sleep (its comm changes at exec).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{own_pid}/comm")).unwrap_or_default() != "sleep\n"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "setpriv never ran sleep"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = as_nobody(env!("CARGO_BIN_EXE_memlens"))
        .args(["snapshot", "--json", "--pid", &own_pid, "--pid", &root_pid])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |pid: &str| {
        snap["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"].as_u64().map(|n| n.to_string()).as_deref() == Some(pid))
            .unwrap_or_else(|| panic!("no row for {pid}: {snap}"))
            .clone()
    };
    let mine = row(&own_pid);
    assert!(mine["rss_bytes"].as_u64().unwrap() > 0);
    assert!(mine["vma_count"].as_u64().unwrap() > 0);
    assert!(mine["fd_count"].is_u64());
    assert_eq!(mine["unreadable"], serde_json::json!([]), "{mine}");
    // Root's process: what the kernel shows everyone, and the reasons for the rest.
    let theirs = row(&root_pid);
    assert!(theirs["rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(theirs["vma_count"], Value::Null);
    let reasons = theirs["unreadable"].to_string();
    assert!(reasons.contains("maps: permission denied"), "{reasons}");
    own.kill();
    roots.kill();
}
