//! Per-process files under `/proc/PID/`.
//!
//! Every parser is pure: it takes the file's text (or bytes, for the NUL-separated
//! files) and the name to use in errors, and never opens anything. Sizes are in
//! bytes (the kernel's `kB` converted inside the parser) unless a field's name says
//! otherwise (`_pages`, `_ticks`).
//!
//! - [`Status`]: `/proc/PID/status` (RSS split anon/file/shmem, VmSwap, VmPTE,
//!   threads; the `Vm*` lines are `None` for kernel threads).
//! - [`Stat`]: `/proc/PID/stat` (page faults, CPU ticks, start time, vsize, rss pages).
//! - [`SmapsRollup`]: `/proc/PID/smaps_rollup` (PSS, USS via [`SmapsRollup::uss_bytes`]).
//! - [`MapsSummary`] / [`MapsAccumulator`]: a streaming summary of `/proc/PID/maps`
//!   (VMA count, anonymous VMAs, largest free gap) that never keeps the lines.
//! - [`Limits`] / [`RlimitValue`] / [`LimitRow`]: `/proc/PID/limits`.
//! - [`Io`]: the I/O counters of `/proc/PID/io`.
//! - [`parse_oom_score`] / [`parse_oom_score_adj`]: `/proc/PID/oom_score{,_adj}`.
//! - [`parse_cmdline`] / [`redact_args`] / [`parse_comm`]: `/proc/PID/cmdline`,
//!   with secrets hidden before anything is shown or stored.
//! - [`GoEnv`]: the four Go runtime keys of `/proc/PID/environ`, and nothing else.
//! - [`CgroupMembership`] / [`CgroupLine`]: `/proc/PID/cgroup`, v1, v2 or hybrid.
//! - [`Schedstat`]: a thread's `/proc/PID/task/TID/schedstat` (CPU time and
//!   run-queue wait).

mod cgroup_membership;
mod cmdline;
mod environ;
mod io;
mod limits;
mod maps;
mod oom;
mod redact;
mod schedstat;
mod smaps_rollup;
mod stat;
mod status;

pub use cgroup_membership::{CgroupLine, CgroupMembership};
pub use cmdline::{parse_cmdline, parse_comm};
pub use environ::GoEnv;
pub use io::Io;
pub use limits::{LimitRow, Limits, RlimitValue};
pub use maps::{MapsAccumulator, MapsSummary};
pub use oom::{parse_oom_score, parse_oom_score_adj};
pub use redact::redact_args;
pub use schedstat::Schedstat;
pub use smaps_rollup::SmapsRollup;
pub use stat::Stat;
pub use status::Status;

use crate::kb_value::kb_value_to_bytes;
use crate::ParseError;

/// Parses a decimal number that is the whole of `value` (already trimmed).
fn parse_number<T: std::str::FromStr>(
    input: &str,
    line: usize,
    name: &str,
    value: &str,
) -> Result<T, ParseError> {
    value.parse().map_err(|_| {
        ParseError::at_line(
            input,
            line,
            format!("{name}: not a whole number: {value:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_values() {
        assert_eq!(
            kb_value_to_bytes("f", 1, "X", "  12 kB").unwrap(),
            12 * 1024
        );
        assert!(kb_value_to_bytes("f", 1, "X", "12").is_err());
        assert!(kb_value_to_bytes("f", 1, "X", "12 MB").is_err());
        assert!(kb_value_to_bytes("f", 1, "X", "12 kB extra").is_err());
        assert!(kb_value_to_bytes("f", 1, "X", "").is_err());
        assert!(kb_value_to_bytes("f", 1, "X", "-1 kB").is_err());
        assert!(kb_value_to_bytes("f", 1, "X", "18446744073709551615 kB").is_err());
        assert_eq!(parse_number::<u32>("f", 2, "X", "7").unwrap(), 7);
        let err = parse_number::<u32>("f", 2, "X", "x").unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}
