//! `memlens maps` on a real third-party Go server with DWARF: `cmd/pprof` from
//! the Go 1.27 distribution, built here, serving its web UI on loopback over a
//! heap profile of the workload. Every map must be listed without errors, read
//! consistently, hold no more entries than slots, and `time.unitMap` must hold
//! as many entries as the literal in the toolchain's own `time/format.go` has
//! keys (the source that built the server, parsed here independently).

use memlens_testkit::{
    free_loopback_port, http_get, http_get_bytes, repo_root, ChildGuard, GoToolchain, TempDir,
    WorkloadSpec,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/cli.rs"]
mod cli;
use cli::memlens_json;

/// `go env GOROOT` of `toolchain`.
fn goroot(toolchain: &GoToolchain) -> PathBuf {
    let out = Command::new(&toolchain.go_binary)
        .args(["env", "GOROOT"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go env GOROOT");
    assert!(out.status.success(), "go env GOROOT failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Builds `cmd/pprof` (with DWARF: no -w/-s) into target/workloads/.
fn build_pprof(toolchain: &GoToolchain) -> PathBuf {
    let dir = repo_root().join("target/workloads").join(toolchain.name);
    std::fs::create_dir_all(&dir).expect("create target/workloads");
    let path = dir.join("pprof");
    let tmp = dir.join(format!("pprof.tmp.{}", std::process::id()));
    let out = Command::new(&toolchain.go_binary)
        .args(["build", "-o"])
        .arg(&tmp)
        .arg("cmd/pprof")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("run go build cmd/pprof");
    assert!(
        out.status.success(),
        "go build cmd/pprof: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).expect("rename pprof");
    path
}

/// Keys of `var unitMap = map[string]uint64{...}` in `time/format.go`.
fn unit_map_keys(goroot: &Path) -> u64 {
    let src = std::fs::read_to_string(goroot.join("src/time/format.go")).expect("read format.go");
    let body = src
        .split("var unitMap = map[string]uint64{")
        .nth(1)
        .expect("unitMap literal in time/format.go");
    let body = &body[..body.find("\n}").expect("end of unitMap literal")];
    body.lines()
        .filter(|l| l.trim_start().starts_with('"'))
        .count() as u64
}

#[test]
fn pprof_web_ui_maps_are_listed_without_errors() {
    let toolchain = GoToolchain::go127();
    let pprof = build_pprof(&toolchain);
    let want_units = unit_map_keys(&goroot(&toolchain));

    let w = WorkloadSpec::new(&toolchain, "steady")
        .arg("--live-mib=4")
        .arg("--duration=120s")
        .start();
    w.wait_for_line("READY", Duration::from_secs(60));
    let profile = http_get_bytes(w.listen_addr(), "/debug/pprof/heap").expect("heap profile");
    let dir = TempDir::new("maps-pprof");
    let profile_path = dir.join("heap.pb.gz");
    std::fs::write(&profile_path, profile).expect("write profile");

    let addr = format!("127.0.0.1:{}", free_loopback_port());
    let server = ChildGuard(
        Command::new(&pprof)
            .arg(format!("-http={addr}"))
            .arg("-no_browser")
            .arg(&profile_path)
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pprof"),
    );
    // Ready when the UI answers (a Go build and a loaded machine: a minute).
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&addr, "/ui/top").is_err() {
        assert!(
            Instant::now() < deadline,
            "pprof -http never answered on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let report = memlens_json(&["maps", "--pid", &server.pid().to_string(), "--json"]);
    assert_eq!(report["skipped"], Value::Array(vec![]), "{report:#}");
    let maps = report["maps"].as_array().expect("maps array");
    assert!(maps.len() >= 10, "few maps in pprof: {report:#}");
    for m in maps {
        let (len, cap) = (
            m["length"].as_u64().unwrap(),
            m["capacity_slots"].as_u64().unwrap(),
        );
        assert!(len <= cap, "more entries than slots: {m:#}");
        assert_eq!(m["consistent"], true, "{m:#}");
    }
    let units = maps
        .iter()
        .find(|m| m["path"] == "time.unitMap")
        .unwrap_or_else(|| panic!("no time.unitMap: {report:#}"));
    assert_eq!(units["length"], want_units, "{units:#}");
}
