//! `memlens snapshot --root DIR` on a tree laid out from captured fixtures: the
//! whole path from files to JSON, with no live process involved.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn linux_testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../linux/testdata")
        .join(name)
}

fn copy(from: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(linux_testdata(from), to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
}

/// A tree with the host files, a v1 memory hierarchy, a Go process (pid 4242)
/// in a cgroup that saw an OOM kill, a kernel thread (pid 2) and a process
/// whose status file is cut short (pid 77).
fn fixture_tree() -> PathBuf {
    let root = std::env::temp_dir().join(format!("memlens-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let proc_dir = root.join("proc");
    copy("host/linux6.18-meminfo.txt", &proc_dir.join("meminfo"));
    copy("host/linux6.18-vmstat.txt", &proc_dir.join("vmstat"));
    copy(
        "host/linux6.18-pressure-memory.txt",
        &proc_dir.join("pressure/memory"),
    );
    copy(
        "linux6.18-mountinfo-hybrid-v1memory.txt",
        &proc_dir.join("self/mountinfo"),
    );
    std::fs::create_dir_all(proc_dir.join("sys/vm")).unwrap();
    std::fs::write(proc_dir.join("sys/vm/max_map_count"), "65530\n").unwrap();
    std::fs::write(proc_dir.join("sys/vm/overcommit_memory"), "0\n").unwrap();

    let memory = root.join("sys/fs/cgroup/memory");
    for entry in std::fs::read_dir(linux_testdata("linux6.18-v1-root")).unwrap() {
        let name = entry.unwrap().file_name();
        copy(
            &format!("linux6.18-v1-root/{}", name.to_string_lossy()),
            &memory.join(&name),
        );
    }
    let cgroup = memory.join("process_api/2c96a2c6b280a7bb3e6546a6633c3347");
    for entry in std::fs::read_dir(linux_testdata("linux6.18-v1-oomkilled")).unwrap() {
        let name = entry.unwrap().file_name();
        copy(
            &format!("linux6.18-v1-oomkilled/{}", name.to_string_lossy()),
            &cgroup.join(&name),
        );
    }

    let go = proc_dir.join("4242");
    for (from, to) in [
        ("proc/linux6.18-stat-go1.19.txt", "stat"),
        ("proc/linux6.18-status-go1.19.txt", "status"),
        ("proc/linux6.18-maps-go1.19-mmap1000.txt", "maps"),
        ("proc/linux6.18-smaps_rollup-go1.19.txt", "smaps_rollup"),
        ("proc/linux6.18-limits-go1.19.txt", "limits"),
        ("proc/linux6.18-io-go1.19.txt", "io"),
        ("proc/linux6.18-oom_score-adj0.txt", "oom_score"),
        ("proc/linux6.18-oom_score_adj-0.txt", "oom_score_adj"),
        ("proc/linux6.18-cgroup-hybrid.txt", "cgroup"),
        ("proc/linux6.18-cmdline-python-secrets.bin", "cmdline"),
    ] {
        copy(from, &go.join(to));
    }
    std::fs::create_dir_all(go.join("fd")).unwrap();
    for fd in 0..3 {
        std::fs::write(go.join(format!("fd/{fd}")), "").unwrap();
    }

    copy("proc/linux6.18-stat-kthread.txt", &proc_dir.join("2/stat"));
    copy(
        "proc/linux6.18-status-kthread.txt",
        &proc_dir.join("2/status"),
    );

    copy("proc/linux6.18-stat-bash.txt", &proc_dir.join("77/stat"));
    let status = std::fs::read_to_string(linux_testdata("proc/linux6.18-status-bash.txt")).unwrap();
    let cut = &status[..status.find("Threads").unwrap()];
    std::fs::write(proc_dir.join("77/status"), cut).unwrap();
    root
}

#[test]
fn snapshot_of_a_fixture_tree() {
    let root = fixture_tree();
    let out = Command::new(env!("CARGO_BIN_EXE_memlens"))
        .args(["snapshot", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["host"]["mem_total_bytes"], 24_684_092u64 * 1024);
    assert_eq!(snap["host"]["max_map_count"], 65530);
    let rows = snap["processes"].as_array().unwrap();
    let pids: Vec<i64> = rows.iter().map(|r| r["pid"].as_i64().unwrap()).collect();
    assert_eq!(
        pids,
        vec![4242, 77],
        "the kernel thread is left out: {pids:?}"
    );

    let go = &rows[0];
    // Values from the capture's status (VmRSS 14520 kB, VmSize 1169492 kB,
    // Threads 7), smaps_rollup (Pss 13693 kB) and maps (1065 lines, one of them
    // [vsyscall], which is not a VMA of the process).
    assert_eq!(go["rss_bytes"], 14_520u64 * 1024);
    assert_eq!(go["vm_size_bytes"], 1_169_492u64 * 1024);
    assert_eq!(go["threads"], 7);
    assert_eq!(go["pss_bytes"], 13_693u64 * 1024);
    assert_eq!(go["vma_count"], 1064);
    assert_eq!(go["fd_count"], 3);
    assert_eq!(go["fd_limit"], 20000);
    assert_eq!(go["cgroup"]["limit_bytes"], 128u64 << 20);
    assert_eq!(go["cgroup"]["effective_limit_bytes"], 128u64 << 20);
    assert_eq!(go["cgroup"]["oom_kill_count"], 1);
    assert_eq!(go["cgroup"]["high_bytes"], Value::Null);
    let cmdline = go["cmdline"].to_string();
    assert!(
        !cmdline.contains("hunter2") && !cmdline.contains("abc123"),
        "{cmdline}"
    );

    // The cut status file: a partial row naming the file, the rest still read.
    let cut = &rows[1];
    assert_eq!(cut["rss_bytes"], Value::Null);
    let reasons = cut["unreadable"].to_string();
    assert!(reasons.contains("/proc/77/status"), "{reasons}");
    assert!(cut["minor_faults"].as_u64().is_some());
    std::fs::remove_dir_all(root).unwrap();
}
