//! Building the C test program `workloads/c/dwarf_faulter.c` once per test
//! process: with `-g` and frame pointers, and a copy stripped of `.symtab`
//! that keeps its DWARF.

use crate::repo_root;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The two builds of `dwarf_faulter`.
#[derive(Debug, Clone)]
pub struct DwarfCProgram {
    /// Built with `-g`: `.symtab` and DWARF (what `nm` reads).
    pub with_symtab: PathBuf,
    /// The same, `strip --strip-all --keep-section=.debug_*`: no `.symtab`,
    /// DWARF kept.
    pub without_symtab: PathBuf,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {what} (apt-get install gcc binutils): {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds (once per process) both variants under `target/workloads/c/`.
/// Panics with the compiler's output when a step fails.
pub fn dwarf_c_program() -> DwarfCProgram {
    static BUILT: OnceLock<DwarfCProgram> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = repo_root();
            let dir = root.join("target").join("workloads").join("c");
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let pid = std::process::id();
            let (tmp, tmp_stripped) = (
                dir.join(format!("dwarf_faulter.tmp.{pid}")),
                dir.join(format!("dwarf_faulter-nosymtab.tmp.{pid}")),
            );
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            run(
                Command::new(&cc)
                    .args(["-g", "-O1", "-fno-omit-frame-pointer", "-o"])
                    .arg(&tmp)
                    .arg(root.join("workloads/c/dwarf_faulter.c")),
                &cc,
            );
            run(
                Command::new("strip")
                    .args(["--strip-all", "--keep-section=.debug_*", "-o"])
                    .arg(&tmp_stripped)
                    .arg(&tmp),
                "strip",
            );
            let program = DwarfCProgram {
                with_symtab: dir.join("dwarf_faulter"),
                without_symtab: dir.join("dwarf_faulter-nosymtab"),
            };
            // Renamed into place: concurrent test processes never run a half-written file.
            for (from, to) in [
                (&tmp, &program.with_symtab),
                (&tmp_stripped, &program.without_symtab),
            ] {
                std::fs::rename(from, to)
                    .unwrap_or_else(|e| panic!("rename to {}: {e}", to.display()));
            }
            program
        })
        .clone()
}
