//! Running the `memlens` binary from tests: one place for "run it, fail the
//! test with its stderr when it fails, hand back its stdout".
//!
//! Each test binary includes this file and uses a part of it.
#![allow(dead_code)]

use serde_json::Value;
use std::process::Command;

/// Runs `memlens ARGS`, asserts it succeeded (the message names the
/// arguments and carries stderr) and returns stdout as text.
pub fn memlens(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(args)
        .output()
        .expect("run memlens");
    assert!(
        out.status.success(),
        "memlens {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("memlens prints UTF-8")
}

/// Whether the agent's history in `data` answers a query yet: the file
/// appears before the agent's tables are committed, and until then a reader
/// finds no history (not an error of the test's to fail on).
pub fn history_ready(data: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["query", "--data", data, "--csv", "SELECT 1"])
        .output()
        .expect("run memlens")
        .status
        .success()
}

/// Runs `memlens ARGS` (which must print JSON) and parses stdout.
pub fn memlens_json(args: &[&str]) -> Value {
    let text = memlens(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("memlens {args:?}: not JSON: {e}"))
}

/// The rows of `memlens query --data DATA --json SQL`.
pub fn query(data: &str, sql: &str) -> Vec<Value> {
    match memlens_json(&["query", "--data", data, "--json", sql]) {
        Value::Array(rows) => rows,
        other => panic!("query --json is not an array of rows: {other}"),
    }
}

/// `memlens diagnose --pid PID --window SECONDS --json EXTRA...`.
pub fn diagnose(pid: i32, window_seconds: &str, extra: &[&str]) -> Value {
    let pid = pid.to_string();
    let mut args = vec![
        "diagnose",
        "--pid",
        &pid,
        "--window",
        window_seconds,
        "--json",
    ];
    args.extend_from_slice(extra);
    memlens_json(&args)
}

/// The value of evidence `name` of a finding in JSON (panics naming it when
/// the finding has none).
pub fn evidence(f: &Value, name: &str) -> f64 {
    f["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["name"] == name))
        .and_then(|x| x["value"].as_f64())
        .unwrap_or_else(|| panic!("no evidence {name} in {f:#}"))
}

/// Every finding of a `diagnose --json` report about process `pid`.
pub fn findings_of(report: &Value, pid: i32) -> Vec<Value> {
    let key = format!("process:{pid}:");
    report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| {
            f["target"]["key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&key))
        })
        .collect()
}

/// The finding `id` among `findings` (panics listing them when absent).
pub fn finding<'a>(findings: &'a [Value], id: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} finding in {findings:#?}"))
}

/// Runs `memlens ARGS`, asserts it refused them the way every bad input is
/// refused (exit 1, nothing on stdout, one line on stderr starting with
/// `memlens: `) and returns that line.
pub fn memlens_refuses(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(args)
        .output()
        .expect("run memlens");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "memlens {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "memlens {args:?}: nothing on stdout");
    assert_eq!(
        stderr.lines().count(),
        1,
        "memlens {args:?}: one line: {stderr}"
    );
    assert!(
        stderr.starts_with("memlens: "),
        "memlens {args:?}: {stderr}"
    );
    stderr.trim_end().to_string()
}

/// Starts `memlens watch --listen ADDR --data DATA --interval 1 EXTRA...`
/// (its stdout dropped), the dashboard tests' agent; the guard ends it.
pub fn spawn_listening_agent(
    addr: &str,
    data: &str,
    extra: &[&str],
) -> memlens_testkit::ChildGuard {
    memlens_testkit::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_memlens"))
            .args(["watch", "--listen", addr, "--data", data, "--interval", "1"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start memlens watch"),
    )
}
