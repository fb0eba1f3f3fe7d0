//! Reading the host-wide memory files.

use super::{read_parsed, ReadError, Root};
use crate::host::{parse_sysctl_u64, Meminfo, Overcommit, Pressure, Vmstat};

/// The host's memory state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HostReading {
    /// `/proc/meminfo`.
    pub meminfo: Meminfo,
    /// `/proc/vmstat`.
    pub vmstat: Vmstat,
    /// `/proc/pressure/memory`; `None` when PSI is off or the kernel predates it.
    pub pressure: Option<Pressure>,
    /// `vm.max_map_count`.
    pub max_map_count: Option<u64>,
    /// `vm.overcommit_memory`.
    pub overcommit: Option<Overcommit>,
}

impl HostReading {
    /// Reads the host files under `root`. meminfo and vmstat must be there; the
    /// others are optional (a missing PSI file is normal when PSI is off).
    pub fn read(root: &Root) -> Result<HostReading, ReadError> {
        Ok(HostReading {
            meminfo: read_parsed(root, "/proc/meminfo", Meminfo::parse)?,
            vmstat: read_parsed(root, "/proc/vmstat", Vmstat::parse)?,
            pressure: optional(read_parsed(root, "/proc/pressure/memory", Pressure::parse))?,
            max_map_count: optional(read_parsed(
                root,
                "/proc/sys/vm/max_map_count",
                parse_sysctl_u64,
            ))?,
            overcommit: optional(read_parsed(
                root,
                "/proc/sys/vm/overcommit_memory",
                Overcommit::parse,
            ))?,
        })
    }
}

/// A file that may be missing: `Ok(None)` when it is.
fn optional<T>(result: Result<T, ReadError>) -> Result<Option<T>, ReadError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        // PSI files exist but fail with EOPNOTSUPP when psi=0: not an error of ours.
        Err(ReadError::Io { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_host_reads() {
        let host = HostReading::read(&Root::host()).unwrap();
        assert!(host.meminfo.total_bytes().unwrap() > 0);
        assert!(host.max_map_count.unwrap() > 0);
    }

    #[test]
    fn missing_meminfo_names_the_file() {
        let err = HostReading::read(&Root::at("/nonexistent-root")).unwrap_err();
        assert!(err.is_not_found());
        assert!(
            err.to_string().contains("/nonexistent-root/proc/meminfo"),
            "{err}"
        );
    }
}
