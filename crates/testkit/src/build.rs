//! Building the Go workload program once per test run and toolchain.

use crate::GoToolchain;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The repository's top directory (where `workloads/` and `Cargo.toml` are).
pub fn repo_root() -> PathBuf {
    // crates/testkit -> the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives two levels below the workspace root")
        .to_path_buf()
}

/// Builds (once per process and toolchain) the workload program and returns its path.
///
/// The binary goes to `target/workloads/<toolchain>/workload`. Each test process
/// builds at most once per toolchain; Go's own build cache makes the builds of
/// later test processes cheap. Panics with the compiler's output when the build fails.
pub fn workload_binary(toolchain: &GoToolchain) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    build_once(&BUILT, toolchain, "workload", &[])
}

/// Builds (once per process and toolchain) a position-independent workload
/// (`-buildmode=pie`, as distributions build Go programs) as
/// `target/workloads/<toolchain>/workload-pie`.
pub fn pie_workload_binary(toolchain: &GoToolchain) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    build_once(&BUILT, toolchain, "workload-pie", &["-buildmode=pie"])
}

/// [`build`] once per process and toolchain, remembered in `cache`.
fn build_once(
    cache: &OnceLock<Mutex<HashMap<PathBuf, PathBuf>>>,
    toolchain: &GoToolchain,
    name: &str,
    flags: &[&str],
) -> PathBuf {
    let built = cache.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(&toolchain.go_binary) {
        return path.clone();
    }
    let path = build(toolchain, name, flags);
    built.insert(toolchain.go_binary.clone(), path.clone());
    path
}

/// A stripped copy (`strip`, binutils) of [`workload_binary`], next to it as
/// `workload-stripped`; made once per test process and toolchain.
pub fn stripped_workload_binary(toolchain: &GoToolchain) -> PathBuf {
    static STRIPPED: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let binary = workload_binary(toolchain);
    let stripped = STRIPPED.get_or_init(|| Mutex::new(HashMap::new()));
    let mut stripped = stripped.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = stripped.get(&binary) {
        return path.clone();
    }
    let final_path = binary.with_file_name("workload-stripped");
    let tmp_path = binary.with_file_name(format!("workload-stripped.tmp.{}", std::process::id()));
    let status = Command::new("strip")
        .arg("-o")
        .arg(&tmp_path)
        .arg(&binary)
        .status()
        .unwrap_or_else(|e| panic!("run strip (apt-get install binutils): {e}"));
    assert!(status.success(), "strip {} failed", binary.display());
    std::fs::rename(&tmp_path, &final_path)
        .unwrap_or_else(|e| panic!("rename to {}: {e}", final_path.display()));
    stripped.insert(binary, final_path.clone());
    final_path
}

fn build(toolchain: &GoToolchain, name: &str, flags: &[&str]) -> PathBuf {
    let root = repo_root();
    let out_dir = root.join("target").join("workloads").join(toolchain.name);
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| panic!("create {}: {e}", out_dir.display()));
    let final_path = out_dir.join(name);
    // Build to a unique name and rename, so concurrent test processes never run a
    // half-written binary.
    let tmp_path = out_dir.join(format!("{name}.tmp.{}", std::process::id()));
    let output = Command::new(&toolchain.go_binary)
        .args(["build", "-trimpath"])
        .args(flags)
        .arg("-o")
        .arg(&tmp_path)
        .arg(".")
        .current_dir(root.join("workloads"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", toolchain.go_binary.display()));
    if !output.status.success() {
        panic!(
            "building workloads with {} ({}) failed:\n{}",
            toolchain.name,
            toolchain.version,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&tmp_path, &final_path)
        .unwrap_or_else(|e| panic!("rename to {}: {e}", final_path.display()));
    final_path
}
