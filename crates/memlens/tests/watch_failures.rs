//! `memlens watch` under bad conditions: an unusable data directory, a corrupt
//! store file, a full disk, and a Go target whose endpoints hang or send 500 MB.
//! Each gets a clear message; the agent keeps running where it can; nothing
//! already stored is lost; its memory stays bounded.

mod common;

use common::{stored_cycle, values_per_instant};
use memlens_store::Store;
use memlens_testkit::{ChildGuard, GoToolchain, WorkloadSpec};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("memlens-{name}-{}", std::process::id()))
}

fn watch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_memlens"))
        .arg("watch")
        .args(args)
        .output()
        .expect("run memlens watch")
}

/// An agent whose stdout lines and stderr are collected as it runs.
struct Agent {
    child: ChildGuard,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<String>>,
}

impl Agent {
    fn start(args: &[&str]) -> Agent {
        let mut child = ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_memlens"))
                .arg("watch")
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start memlens watch"),
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(String::new()));
        let stdout = child.0.stdout.take().unwrap();
        let stderr = child.0.stderr.take().unwrap();
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        {
            let errors = Arc::clone(&errors);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut e = errors.lock().unwrap();
                    e.push_str(&line);
                    e.push('\n');
                }
            });
        }
        Agent {
            child,
            lines,
            errors,
        }
    }

    fn cycles(&self) -> Vec<(i64, usize)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| stored_cycle(l))
            .collect()
    }

    fn stderr(&self) -> String {
        self.errors.lock().unwrap().clone()
    }

    /// Waits until `done` holds, failing with the agent's output after `timeout`.
    fn wait_until(&mut self, what: &str, timeout: Duration, done: impl Fn(&Agent) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!(
                    "waiting for {what}: the agent exited ({status}): {}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill has no memory preconditions; the pid is our live child.
        unsafe { libc::kill(self.child.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }
}

#[test]
fn a_data_dir_that_is_a_file_is_named_in_one_error() {
    let file = temp_path("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = watch(&["--data", file.to_str().unwrap(), "--cycles", "1"]);
    std::fs::remove_file(&file).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn an_unwritable_data_dir_is_named_for_a_non_root_user() {
    // Root may write anywhere: drop to nobody (uid 65534) for this run.
    let dir = temp_path("root-only");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_memlens"))
        .args(["watch", "--cycles", "1", "--data"])
        .arg(dir.join("history"))
        .output()
        .expect("setpriv (util-linux)");
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("history") && err.contains(dir.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn a_corrupt_store_is_reported_and_left_untouched() {
    let dir = temp_path("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("history.db");
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let out = watch(&["--data", dir.to_str().unwrap(), "--cycles", "1"]);
    let after = std::fs::read(&db).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("history.db"), "names the file: {err}");
    assert!(
        err.to_lowercase().contains("corrupt") || err.contains("not a database"),
        "says what is wrong: {err}"
    );
    assert!(after == garbage, "the file must not be rewritten");
}

/// A tmpfs of a few MiB mounted for the test, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = temp_path("small-disk");
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "memlens-test"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs (needs root)");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn used_percent(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=pcent"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().trim_end_matches('%').parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_full_disk_is_reported_the_agent_goes_on_and_stored_data_stays() {
    let disk = SmallDisk::mount("3m");
    let data = disk.0.join("history");
    let mut agent = Agent::start(&[
        "--data",
        data.to_str().unwrap(),
        "--interval",
        "0.1",
        "--smaps",
        "never",
        "--no-profiles",
    ]);
    agent.wait_until("a first stored cycle", Duration::from_secs(30), |a| {
        !a.cycles().is_empty()
    });
    // Fill what is left of the disk, so the next commits cannot be written.
    let filler = disk.0.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0x5au8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);
    assert!(used_percent(&disk.0) >= 99);
    agent.wait_until("a disk-full message", Duration::from_secs(60), |a| {
        let e = a.stderr().to_lowercase();
        e.contains("full") || e.contains("no space")
    });
    // Still running, and still trying every interval.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        agent.child.0.try_wait().unwrap().is_none(),
        "the agent must keep running"
    );
    let reported = agent.cycles();
    // Room again: the agent stores again without a restart.
    std::fs::remove_file(&filler).unwrap();
    let before = reported.len();
    agent.wait_until(
        "storing again after space came back",
        Duration::from_secs(60),
        |a| a.cycles().len() > before + 2,
    );
    let status = agent.stop();
    assert!(status.success(), "clean stop: {}", agent.stderr());
    let store = Store::open_read_only(&data).unwrap();
    assert!(store.integrity_check().unwrap().is_ok());
    let counts = values_per_instant(&store);
    for (ts, values) in agent.cycles() {
        assert_eq!(counts.get(&ts).copied(), Some(values), "cycle {ts}");
    }
}

#[test]
fn a_hostile_target_neither_stalls_sampling_nor_grows_the_agent() {
    let target = WorkloadSpec::new(&GoToolchain::go127(), "hostile")
        .arg("--hostile-mib=500")
        .arg("--duration=120s")
        .start();
    target.wait_for_line("SETUP_DONE", Duration::from_secs(30));
    let dir = temp_path("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("watch.toml");
    std::fs::write(&config, "[fetch]\ntimeout_seconds = 2\n").unwrap();
    let started = Instant::now();
    let mut agent = Agent::start(&[
        "--config",
        config.to_str().unwrap(),
        "--data",
        dir.join("history").to_str().unwrap(),
        "--pid",
        &target.pid().to_string(),
        "--interval",
        "0.25",
        "--runtime-interval",
        "0.25",
        "--profile-interval",
        "0.25",
    ]);
    // 40 cycles at 0.25 s while every runtime read is 500 MB and every
    // profile fetch hangs: sampling must stay on time.
    agent.wait_until("40 stored cycles", Duration::from_secs(40), |a| {
        a.cycles().len() >= 40
    });
    let elapsed = started.elapsed();
    let cycles = agent.cycles();
    let span_ms = cycles.last().unwrap().0 - cycles.first().unwrap().0;
    assert!(
        span_ms < 39 * 250 * 2,
        "40 cycles took {span_ms} ms: sampling waited for the target"
    );
    let errors = agent.stderr();
    assert!(
        errors.contains("larger than"),
        "the 500 MB answer is named: {errors}"
    );
    assert!(
        errors.contains("/debug/pprof/heap") || errors.contains("/debug/pprof/goroutine"),
        "the hanging profile is named: {errors}"
    );
    let peak_kib = agent.peak_rss_kib();
    let status = agent.stop();
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "{errors}");
    println!(
        "40 cycles in {:.1} s with a hostile target; agent peak RSS {} KiB",
        elapsed.as_secs_f64(),
        peak_kib
    );
    assert!(
        peak_kib > 0 && peak_kib < 40 * 1024,
        "peak RSS {peak_kib} KiB"
    );
    let mut rest = String::new();
    let _ = agent
        .child
        .0
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut rest));
}

#[test]
fn a_watched_process_that_dies_is_no_error() {
    let mut child = ChildGuard(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = child.pid().to_string();
    let dir = temp_path("dies");
    let mut agent = Agent::start(&[
        "--data",
        dir.to_str().unwrap(),
        "--interval",
        "0.2",
        "--pid",
        &pid,
    ]);
    agent.wait_until("3 stored cycles", Duration::from_secs(30), |a| {
        a.cycles().len() >= 3
    });
    let with_process = agent.cycles().last().unwrap().1;
    child.kill();
    let before = agent.cycles().len();
    agent.wait_until("5 more cycles", Duration::from_secs(30), |a| {
        a.cycles().len() >= before + 5
    });
    let status = agent.stop();
    let errors = agent.stderr();
    std::fs::remove_dir_all(&dir).ok();
    assert!(status.success(), "{errors}");
    assert!(
        errors.trim().is_empty(),
        "no error for a process that ended: {errors}"
    );
    let after = agent.cycles().last().unwrap().1;
    assert!(
        after > 0 && after < with_process,
        "host values go on ({after}), the process's stop ({with_process} before)"
    );
}
