//! `memlens trace --cgroup` on one memory cgroup holding a MariaDB server
//! (Debian `mariadbd`: no `.symtab`, no DWARF, a `.dynsym` of ~29,000
//! server-layer symbols and none for InnoDB) and a Go workload, both started
//! in it by the test before memlens attaches.
//!
//! The server's load is bounded: one `INSERT ... SELECT` of 150,000 rows of
//! 255 bytes (~45 MiB of pages) into a 16 MiB buffer pool, two full scans
//! of the table, and one query whose derived table (~40 MiB) goes to an
//! on-disk Aria temporary table. Most of the insert's first touches happen
//! in InnoDB's background tasks, whose stacks have few names, and too few in
//! the connection thread to be sampled every run (CI once saw none); the
//! temporary table's writes fault ~10,000 times in Aria's page cache, in
//! code `.dynsym` does not name, called from the SQL layer: with a stack on
//! 1 fault in 16 that is hundreds of sampled stacks. So mariadbd's fault
//! stacks must carry `.dynsym` names of the server layer
//! (`mysql_execute_command`, `dispatch_command`: checked against `nm -D` of
//! the binary) with `mariadbd+0xOFFSET` frames (Aria) inside them, each
//! at code no `.dynsym` function holds (`nm -D -S`); libc's frames are named
//! from its separate debug file (Debian libc6-dbg, found by build id): the
//! threads' `start_thread`, and no libc frame unnamed that `nm` names. The
//! Go workload's stacks must carry its own leak function.
//!
//! Needs root (BPF, cgroups), clang at build time, Debian mariadb-server and
//! libc6-dbg; with CI=true nothing skips.

#[path = "common/trace.rs"]
mod trace;

use memlens_testkit::{
    GoToolchain, MariaDb, MariaDbSpec, TempDir, TestCgroup, Workload, WorkloadSpec,
};
use serde_json::Value;
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;
use trace::{can_run, event, Trace, ONE_TRACE};

fn frames(stack: &Value) -> Vec<&str> {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The defined function names of `binary`'s `.dynsym`, as `nm -D` lists them.
fn dynsym_names(binary: &str) -> HashSet<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", binary])
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success(), "nm -D {binary}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
            matches!(kind, "T" | "t" | "W" | "i").then(|| name.to_string())
        })
        .collect()
}

/// The executable `PT_LOAD` segments of `binary` as `readelf -lW` lists
/// them: (file offset, virtual address, file size).
fn text_segments(binary: &str) -> Vec<(u64, u64, u64)> {
    let out = Command::new("readelf")
        .args(["-lW", binary])
        .output()
        .expect("run readelf (binutils)");
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD") && l.contains(" R E "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (hex(f[1]), hex(f[2]), hex(f[4]))
        })
        .collect()
}

/// The `.dynsym` functions of `binary` with their sizes (`nm -D -S`):
/// (address, size, name).
fn dynsym_functions(binary: &str) -> Vec<(u64, u64, String)> {
    functions_nm(binary, true)
}

/// The functions `nm -S` lists with their sizes, from `.dynsym` (`-D`) or
/// `.symtab`: (address, size, name).
fn functions_nm(binary: &str, dynamic: bool) -> Vec<(u64, u64, String)> {
    let out = Command::new("nm")
        .args(if dynamic { &["-D"][..] } else { &[][..] })
        .args(["-S", "--defined-only", binary])
        .output()
        .expect("run nm (binutils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [addr, size, kind, name] = f[..] else {
                return None;
            };
            matches!(kind, "T" | "t" | "W" | "i").then(|| {
                (
                    u64::from_str_radix(addr, 16).unwrap(),
                    u64::from_str_radix(size, 16).unwrap(),
                    name.to_string(),
                )
            })
        })
        .collect()
}

/// The `.dynsym` function (of `functions`) that holds the code at file
/// offset `offset` of a binary with text `segments`.
fn dynsym_function_at<'a>(
    segments: &[(u64, u64, u64)],
    functions: &'a [(u64, u64, String)],
    offset: u64,
) -> Option<&'a str> {
    let &(seg_off, vaddr, _) = segments
        .iter()
        .find(|&&(o, _, size)| offset >= o && offset - o < size)?;
    let pc = offset - seg_off + vaddr;
    functions
        .iter()
        .find(|(a, size, _)| pc >= *a && pc - a < *size)
        .map(|(_, _, name)| name.as_str())
}

/// The libc `pid` maps (its path in /proc/PID/maps).
fn libc_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("read maps")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libc.so.6"))
        .expect("libc.so.6 in the server's maps")
        .to_string()
}

/// The separate debug file of `binary` by its build id (`readelf -n`):
/// `/usr/lib/debug/.build-id/ab/cdef....debug` (Debian libc6-dbg).
fn build_id_debug_file(binary: &str) -> String {
    let out = Command::new("readelf")
        .args(["-n", binary])
        .output()
        .expect("run readelf");
    let id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .expect("a build id");
    let file = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
    assert!(
        std::path::Path::new(&file).exists(),
        "{file} missing: apt-get install libc6-dbg (scripts/env.sh)"
    );
    file
}

/// The frames `base+0xOFFSET` of `stacks` that a function of `functions`
/// (of a binary with text `segments`) holds: named by `nm` but not by
/// memlens. The innermost frame (last) is the faulting pc; the others are
/// return addresses, whose call is the byte before. Also returns how many
/// such frames there were.
fn wrongly_unnamed(
    stacks: &[Vec<&str>],
    base: &str,
    segments: &[(u64, u64, u64)],
    functions: &[(u64, u64, String)],
) -> (Vec<String>, usize) {
    let mut wrong = Vec::new();
    let mut seen = 0;
    for stack in stacks {
        for (i, f) in stack.iter().enumerate() {
            let Some(hex) = f.strip_prefix(&format!("{base}+0x")) else {
                continue;
            };
            seen += 1;
            let offset = u64::from_str_radix(hex, 16).unwrap();
            let lookup = if i + 1 == stack.len() {
                offset
            } else {
                offset - 1
            };
            if let Some(name) = dynsym_function_at(segments, functions, lookup) {
                wrong.push(format!("{f} is in {name}"));
            }
        }
    }
    (wrong, seen)
}

/// The server binary of `pid` (`/proc/PID/exe`).
fn exe(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .expect("read /proc/PID/exe")
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn mariadb_and_go_in_one_cgroup_are_named_each_from_its_own_tables() {
    if !can_run() {
        return;
    }
    let _one = ONE_TRACE.lock().unwrap_or_else(|e| e.into_inner());
    // Declared first: dropped last, after the server and the workload ended.
    let cgroup = TestCgroup::with_limit(1 << 30);
    let db = MariaDb::start(&MariaDbSpec {
        buffer_pool_bytes: 16 << 20,
        cgroup: Some(cgroup.dir().to_path_buf()),
        ..MariaDbSpec::default()
    });
    let go: Workload = WorkloadSpec::new(&GoToolchain::go127(), "heap-leak")
        .arg("--garbage-kib=0")
        .arg("--leak-kib=1024")
        .arg("--tick=50ms")
        .start_in(&cgroup);
    go.wait_for_line("LEAK_START", Duration::from_secs(60));
    let in_cgroup = cgroup.pids();
    assert!(
        in_cgroup.contains(&db.pid()) && in_cgroup.contains(&go.pid()),
        "both in the cgroup: {in_cgroup:?}"
    );
    db.sql(
        "CREATE DATABASE t; CREATE TABLE t.big (id INT PRIMARY KEY AUTO_INCREMENT, pad CHAR(255)) ENGINE=InnoDB;",
    )
    .expect("create table");

    let dir = TempDir::new("trace-mysql");
    let cgroup_dir = cgroup.dir().to_str().unwrap().to_string();
    let (trace, attached) = Trace::start(&["--cgroup", &cgroup_dir, "--stack-every", "16"], &dir);
    assert!(
        attached.contains(&db.pid().to_string()) && attached.contains(&go.pid().to_string()),
        "attached line names both processes: {attached}"
    );
    // The bounded load: one insert that fills the pool, two scans.
    db.sql("USE t; INSERT INTO big (pad) SELECT REPEAT('x', 255) FROM seq_1_to_150000")
        .expect("insert");
    for _ in 0..2 {
        db.sql("SELECT COUNT(*), SUM(LENGTH(pad)) FROM t.big")
            .expect("scan");
    }
    // A derived table past a 16 KiB in-memory limit: the server writes it
    // to an Aria temporary table, whose page cache (128 MiB, touched lazily)
    // faults in Aria's unnamed code under the SQL layer's named frames.
    db.sql(
        "SET SESSION tmp_table_size=16384, max_heap_table_size=16384; \
         SELECT COUNT(*) FROM (SELECT DISTINCT id, pad FROM t.big) d",
    )
    .expect("a query through an on-disk temporary table");
    // The Go workload leaks 1 MiB a tick: 20 more ticks are 5,120 faults at least.
    let tick: u64 = go
        .stdout_lines()
        .iter()
        .rev()
        .find_map(|l| {
            l.strip_prefix("TICK ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    go.wait_for_line(&format!("TICK {} ", tick + 20), Duration::from_secs(60));
    let report = trace.finish(true, "mysql");
    assert_eq!(report["untraced_processes"], 0, "{report:#}");

    let server = exe(db.pid());
    let base = server.rsplit('/').next().unwrap().to_string();
    let dynsym = dynsym_names(&server);
    let faults = event(&report, db.pid(), "faults");
    let stacks: Vec<Vec<&str>> = faults["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(frames)
        .collect();
    let offset_frame = |f: &str| {
        f.strip_prefix(&format!("{base}+0x"))
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
    };
    // A stack from the SQL layer down into InnoDB: named server-layer frames
    // above `mariadbd+0x...` ones.
    let layered = stacks.iter().find(|s| {
        s.iter().any(|f| f.contains("mysql_execute_command"))
            && s.iter().any(|f| f.contains("dispatch_command"))
            && s.iter().any(|f| offset_frame(f))
    });
    let Some(layered) = layered else {
        panic!(
            "no {base} fault stack with dispatch_command, mysql_execute_command and {base}+0x frames: {:#?}",
            &stacks[..stacks.len().min(10)]
        );
    };
    for name in layered.iter().filter(|f| f.contains("_command")) {
        assert!(
            dynsym.contains(*name),
            "{name} is not a .dynsym function of {server} (nm -D)"
        );
    }
    // Every `mariadbd+0x...` frame is code no `.dynsym` function holds (by
    // nm and readelf): memlens left unnamed only what has no name.
    let (wrong, unnamed) = wrongly_unnamed(
        &stacks,
        &base,
        &text_segments(&server),
        &dynsym_functions(&server),
    );
    assert_eq!(wrong, Vec::<String>::new(), "named by nm -D -S");
    assert!(unnamed > 0);
    // libc, a shared library: named from its separate debug file (found by
    // build id): its threads start in start_thread, which only that file's
    // .symtab names; no libc frame left unnamed that it or .dynsym names.
    let libc = libc_of(db.pid());
    let libc_debug = build_id_debug_file(&libc);
    let mut libc_functions = functions_nm(&libc_debug, false);
    libc_functions.extend(functions_nm(&libc, true));
    assert!(libc_functions.iter().any(|f| f.2 == "start_thread"));
    assert!(
        stacks.iter().any(|s| s.contains(&"start_thread")),
        "no start_thread frame: {stacks:#?}"
    );
    let (wrong, _) = wrongly_unnamed(&stacks, "libc.so.6", &text_segments(&libc), &libc_functions);
    assert_eq!(
        wrong,
        Vec::<String>::new(),
        "named by nm -S of {libc_debug}"
    );
    let go_faults = event(&report, go.pid(), "faults");
    let top = frames(&go_faults["stacks"][0]);
    assert!(
        top.contains(&"main.retainLeakChunk"),
        "Go workload's top fault stack: {top:?}"
    );
    // The combined folded stacks carry both, each under its `comm-pid` root.
    let folded = std::fs::read_to_string(dir.path().join("faults.folded")).expect("faults.folded");
    for pid in [db.pid(), go.pid()] {
        assert!(
            folded.lines().any(|l| l.contains(&format!("-{pid};"))),
            "pid {pid} missing from the combined folded stacks"
        );
    }
    eprintln!(
        "{base}: {} fault events, {} stacks; layered stack: {layered:?}",
        faults["events"],
        stacks.len()
    );
}
