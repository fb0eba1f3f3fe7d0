//! Compiles `bpf/trace.bpf.c` with clang into `$OUT_DIR/trace.bpf.o`.
//!
//! Without clang (or when it fails) the crate still builds: the `memlens_bpf`
//! cfg stays unset and `Tracer::start` explains how to get clang.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(memlens_bpf)");
    println!("cargo::rerun-if-changed=bpf/trace.bpf.c");
    println!("cargo::rerun-if-env-changed=MEMLENS_CLANG");
    let clang = env::var("MEMLENS_CLANG").unwrap_or_else(|_| "clang".to_string());
    // Build again once clang is installed (a missing file always reruns).
    let installed = if clang.contains('/') {
        clang.clone()
    } else {
        format!("/usr/bin/{clang}")
    };
    println!("cargo::rerun-if-changed={installed}");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("trace.bpf.o");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .args(["-c", "bpf/trace.bpf.c", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => println!("cargo::rustc-cfg=memlens_bpf"),
        Ok(s) => println!("cargo::warning=clang failed on bpf/trace.bpf.c ({s}): memlens trace will be unavailable"),
        Err(e) => println!("cargo::warning={clang} not found ({e}): memlens trace will be unavailable (apt-get install clang)"),
    }
}
