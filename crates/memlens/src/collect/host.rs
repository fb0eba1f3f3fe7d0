//! Host-wide memory into a [`HostSample`].

use memlens_linux::fs::{HostReading, ReadError, Root};
use memlens_linux::host::Overcommit;
use memlens_model::HostSample;

/// Reads the host's memory files under `root`.
pub fn read_host(root: &Root) -> Result<HostSample, ReadError> {
    let reading = HostReading::read(root)?;
    Ok(host_sample(&reading))
}

/// Maps the parsed host files to the sample memlens keeps.
pub fn host_sample(reading: &HostReading) -> HostSample {
    let info = &reading.meminfo;
    let field = |name: &str| info.get(name).unwrap_or(0);
    HostSample {
        mem_total_bytes: field("MemTotal"),
        mem_available_bytes: field("MemAvailable"),
        mem_free_bytes: field("MemFree"),
        swap_total_bytes: field("SwapTotal"),
        swap_free_bytes: field("SwapFree"),
        anon_bytes: field("AnonPages"),
        page_cache_bytes: field("Cached"),
        shmem_bytes: field("Shmem"),
        committed_bytes: field("Committed_AS"),
        commit_limit_bytes: field("CommitLimit"),
        page_faults: reading.vmstat.page_faults,
        major_page_faults: reading.vmstat.major_page_faults,
        oom_kills: reading.vmstat.oom_kills,
        pages_scanned: reading.vmstat.pages_scanned,
        pages_stolen: reading.vmstat.pages_stolen,
        pressure_some_avg10_percent: reading.pressure.map(|p| p.some.avg10_percent),
        pressure_full_avg10_percent: reading
            .pressure
            .and_then(|p| p.full)
            .map(|f| f.avg10_percent),
        pressure_some_total_usec: reading.pressure.map(|p| p.some.total_usec),
        pressure_full_total_usec: reading.pressure.and_then(|p| p.full).map(|f| f.total_usec),
        max_map_count: reading.max_map_count,
        overcommit: reading.overcommit.map(|o| match o {
            Overcommit::Heuristic => "heuristic",
            Overcommit::Always => "always",
            Overcommit::Never => "never",
        }),
    }
}
