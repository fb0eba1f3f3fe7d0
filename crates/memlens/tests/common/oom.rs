//! What the real-kill tests (oom_live.rs, oom_fast_live.rs) share: one
//! workload per memory cgroup, the agent's stored findings, and a first
//! critical's lead and error.

#![allow(dead_code, unused_imports)]

use memlens_testkit::{GoToolchain, TestCgroup, Workload, WorkloadSpec};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

pub use super::cli::query;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One workload in its own cgroup.
pub struct Case {
    pub name: String,
    pub toolchain: GoToolchain,
    pub leaks: bool,
    pub cgroup: TestCgroup,
    pub workload: Workload,
    pub leak_start_ms: i64,
    pub kill_ms: Option<i64>,
}

/// Starts `mode` with `args` in a new cgroup of `limit_bytes`; its leak is
/// taken to start when it is spawned (a leak measured from then is never
/// shorter than the real one). A healthy workload is also configured as a
/// healthy service is: GOMEMLIMIT at 3/4 of its cgroup's limit (without one,
/// `go.gomemlimit_missing` rightly warns about it; docs/findings.md).
pub fn start(
    toolchain: &GoToolchain,
    name: &str,
    mode: &str,
    args: &[&str],
    leaks: bool,
    limit_bytes: u64,
) -> Case {
    let cgroup = TestCgroup::with_limit(limit_bytes);
    let spawned_ms = now_ms();
    let mut spec = WorkloadSpec::new(toolchain, mode).arg("--duration=0");
    for a in args {
        spec = spec.arg(*a);
    }
    if !leaks {
        spec = spec.env("GOMEMLIMIT", &format!("{}MiB", (limit_bytes * 3 / 4) >> 20));
    }
    let workload = spec.start_in(&cgroup);
    Case {
        name: format!("{name} ({})", toolchain.name),
        toolchain: toolchain.clone(),
        leaks,
        cgroup,
        workload,
        leak_start_ms: spawned_ms,
        kill_ms: None,
    }
}

pub fn evidence(evidence: &Value, name: &str) -> Option<f64> {
    evidence
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?
        .get("value")?
        .as_f64()
}

/// Whether a finding's target key is this case's process or cgroup.
pub fn about(target: &str, case: &Case) -> bool {
    target.starts_with(&format!("process:{}:", case.workload.pid()))
        || target == format!("cgroup:{}", case.cgroup.path_in_hierarchy())
}

/// The stored findings (rows of the `findings` view) about `case`; a
/// healthy case must have none, which this asserts.
pub fn findings_about<'a>(findings: &'a [Value], case: &Case) -> Vec<&'a Value> {
    let mine: Vec<&Value> = findings
        .iter()
        .filter(|f| about(f["target"].as_str().unwrap_or(""), case))
        .collect();
    assert!(
        case.leaks || mine.is_empty(),
        "{}: findings on a healthy workload: {mine:#?}",
        case.name
    );
    mine
}

/// The first critical time-to-OOM among `mine` whose target key starts with
/// `target` (a cgroup's whole key, or `process:`); panics naming `case`.
pub fn first_critical<'a>(mine: &[&'a Value], target: &str, case: &Case) -> &'a Value {
    mine.iter()
        .copied()
        .find(|f| {
            f["finding"] == "memory.time_to_oom"
                && f["severity"] == "critical"
                && f["target"].as_str().unwrap_or("").starts_with(target)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: no critical time-to-OOM on {target}: {mine:#?}",
                case.name
            )
        })
}

/// A first critical measured against the kill.
pub struct Measured {
    /// When it fired (ms).
    pub fired_ms: i64,
    /// The kill minus that.
    pub lead_ms: i64,
    /// |predicted kill - kill| / lead.
    pub error: f64,
    /// Whether the kill lies inside its range (earliest .. latest).
    pub inside_range: bool,
    /// Whether the kill came no earlier than the range's earliest end (the
    /// range never promised more time than there was).
    pub not_before_earliest: bool,
    /// All of it in words.
    pub line: String,
}

/// When a critical fired, its lead before the kill, the error of its
/// predicted kill as a share of that lead, whether the kill is inside its
/// range, and a line saying so.
pub fn measure(critical: &Value, kill_ms: i64, leak_ms: i64) -> Measured {
    let fired_ms = critical["fired_ms"].as_i64().unwrap();
    let list: Value = serde_json::from_str(critical["evidence"].as_str().unwrap()).unwrap();
    let predicted = evidence(&list, "predicted_kill_at_ms").unwrap() as i64;
    let earliest = evidence(&list, "predicted_kill_earliest_at_ms").unwrap() as i64;
    let latest = evidence(&list, "predicted_kill_latest_at_ms").map(|v| v as i64);
    let coverage = evidence(&list, "range_coverage").unwrap_or(f64::NAN);
    let lead_ms = kill_ms - fired_ms;
    let error = (predicted - kill_ms).abs() as f64 / lead_ms.max(1) as f64;
    let off = |ms: i64| format!("{:+.0} s", (ms - kill_ms) as f64 / 1000.0);
    let line = format!(
        "leak {:.0} s, critical on {} {:.0} s before the kill ({:.0}% of the leak), \
         predicted kill {} off (error {:.1}% of the time left), {:.0} % range {} .. {} \
         (fast rule: {})",
        leak_ms as f64 / 1000.0,
        critical["target"].as_str().unwrap(),
        lead_ms as f64 / 1000.0,
        lead_ms as f64 / leak_ms as f64 * 100.0,
        off(predicted),
        error * 100.0,
        coverage * 100.0,
        off(earliest),
        latest.map_or("unbounded".to_string(), off),
        evidence(&list, "trend_fast") == Some(1.0)
    );
    Measured {
        fired_ms,
        lead_ms,
        error,
        inside_range: earliest <= kill_ms && latest.is_none_or(|l| kill_ms <= l),
        not_before_earliest: earliest <= kill_ms,
        line,
    }
}

/// The earliest `memory.time_to_oom` critical on `target_key` among the
/// findings of `memlens replay --json`, with when it fired (ms).
pub fn first_replayed_critical<'a>(
    replay: &'a Value,
    target_key: &str,
) -> Option<(i64, &'a Value)> {
    replay
        .as_array()?
        .iter()
        .filter(|f| {
            f["id"] == "memory.time_to_oom"
                && f["severity"] == "critical"
                && f["target"]["key"] == target_key
        })
        .filter_map(|f| Some((f["fired_at_ms"].as_i64()?, f)))
        .min_by_key(|(ms, _)| *ms)
}

/// The agent's files of one real-kill run (its history directory, its log
/// and `extra` files such as its config) and the test's report lines.
/// Dropped, also when the test fails, it first keeps them with
/// `MEMLENS_KEEP_RECORDING=DIR` in the environment: copied into
/// `DIR/NAME-PID/` with the report (`report.txt`, ending in "test failed"
/// when it did), so that a run (a soak round whose lead came near its
/// bound, or one that failed) can be replayed offline with any build
/// (`memlens replay --data DIR/NAME-PID/history --json`). Then it removes
/// them.
pub struct Recording {
    pub name: &'static str,
    pub data: std::path::PathBuf,
    pub log: std::path::PathBuf,
    pub extra: Vec<std::path::PathBuf>,
    pub report: Vec<String>,
}

impl Recording {
    fn keep(&self, keep: &std::ffi::OsStr) -> Result<std::path::PathBuf, String> {
        let dest = std::path::Path::new(keep).join(format!("{}-{}", self.name, std::process::id()));
        std::fs::create_dir_all(&dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(&self.data)
            .arg(dest.join("history"))
            .status()
            .map_err(|e| format!("run cp: {e}"))?;
        if !copied.success() {
            return Err(format!(
                "cp -a {} {}: {copied}",
                self.data.display(),
                dest.display()
            ));
        }
        let _ = std::fs::copy(&self.log, dest.join("agent.log"));
        for file in &self.extra {
            if let Some(name) = file.file_name() {
                let _ = std::fs::copy(file, dest.join(name));
            }
        }
        let mut report = self.report.join("\n");
        if std::thread::panicking() {
            report.push_str("\ntest failed\n");
        }
        std::fs::write(dest.join("report.txt"), report)
            .map_err(|e| format!("write report.txt: {e}"))?;
        Ok(dest)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(keep) = std::env::var_os("MEMLENS_KEEP_RECORDING") {
            match self.keep(&keep) {
                Ok(dest) => eprintln!("{}: recording kept in {}", self.name, dest.display()),
                Err(e) => eprintln!("{}: MEMLENS_KEEP_RECORDING: {e}", self.name),
            }
        }
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_file(&self.log);
        for file in &self.extra {
            let _ = std::fs::remove_file(file);
        }
    }
}
