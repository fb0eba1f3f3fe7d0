//! `/proc/vmstat`: the memory events memlens tracks.

use crate::cgroup::FlatKeyed;
use crate::ParseError;

/// Counters from `/proc/vmstat` (all since boot; rates are derived later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vmstat {
    /// Page faults, minor and major (`pgfault`).
    pub page_faults: u64,
    /// Major page faults, the ones that waited for IO (`pgmajfault`).
    pub major_page_faults: u64,
    /// Processes killed by the OOM killer (`oom_kill`; kernels ≥ 4.13).
    pub oom_kills: Option<u64>,
    /// Pages scanned for reclaim, all `pgscan_*` reclaimers summed
    /// (`pgscan_kswapd`, `pgscan_direct`, `pgscan_khugepaged`, ...).
    pub pages_scanned: u64,
    /// Pages reclaimed, all `pgsteal_*` reclaimers summed.
    pub pages_stolen: u64,
    /// Pages scanned by direct reclaim only (`pgscan_direct`): allocations stalled.
    pub pages_scanned_direct: u64,
    /// Pages swapped in (`pswpin`).
    pub pages_swapped_in: u64,
    /// Pages swapped out (`pswpout`).
    pub pages_swapped_out: u64,
}

/// The `pgscan_*` / `pgsteal_*` keys that are per reclaimer. `pgscan_anon`,
/// `pgscan_file` (and the steal ones) split the same pages by type, so adding
/// them would count twice; `pgscan_direct_throttle` counts throttling events.
fn is_reclaimer(suffix: &str) -> bool {
    !matches!(suffix, "anon" | "file" | "direct_throttle")
}

impl Vmstat {
    /// Parses vmstat text; `input` names it in errors.
    pub fn parse(input: &str, text: &str) -> Result<Vmstat, ParseError> {
        let all = FlatKeyed::parse(input, text)?;
        let required = |key: &str| {
            all.get(key)
                .ok_or_else(|| ParseError::new(input, format!("no {key} line")))
        };
        let mut vmstat = Vmstat {
            page_faults: required("pgfault")?,
            major_page_faults: required("pgmajfault")?,
            oom_kills: all.get("oom_kill"),
            pages_scanned_direct: all.get("pgscan_direct").unwrap_or(0),
            pages_swapped_in: all.get("pswpin").unwrap_or(0),
            pages_swapped_out: all.get("pswpout").unwrap_or(0),
            ..Vmstat::default()
        };
        for (key, value) in &all.entries {
            if let Some(suffix) = key.strip_prefix("pgscan_") {
                if is_reclaimer(suffix) {
                    vmstat.pages_scanned = vmstat.pages_scanned.saturating_add(*value);
                }
            } else if let Some(suffix) = key.strip_prefix("pgsteal_") {
                if is_reclaimer(suffix) {
                    vmstat.pages_stolen = vmstat.pages_stolen.saturating_add(*value);
                }
            }
        }
        Ok(vmstat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_vmstat() {
        let text = include_str!("../../testdata/host/linux6.18-vmstat.txt");
        let vmstat = Vmstat::parse("/proc/vmstat", text).unwrap();
        assert!(vmstat.page_faults > vmstat.major_page_faults);
        assert_eq!(vmstat.oom_kills, Some(0));
    }

    #[test]
    fn reclaim_sums_reclaimers_only() {
        let text = "pgfault 10\npgmajfault 1\npgscan_kswapd 5\npgscan_direct 3\n\
                    pgscan_anon 6\npgscan_file 2\npgscan_direct_throttle 9\n\
                    pgsteal_kswapd 4\npgsteal_direct 2\npgsteal_anon 6\n";
        let vmstat = Vmstat::parse("vmstat", text).unwrap();
        assert_eq!(vmstat.pages_scanned, 8);
        assert_eq!(vmstat.pages_scanned_direct, 3);
        assert_eq!(vmstat.pages_stolen, 6);
        assert_eq!(vmstat.oom_kills, None);
    }

    #[test]
    fn missing_or_bad_lines_are_named() {
        let err = Vmstat::parse("/proc/vmstat", "pgmajfault 1\n").unwrap_err();
        assert!(err.to_string().contains("no pgfault"), "{err}");
        let err = Vmstat::parse("/proc/vmstat", "pgfault x\n").unwrap_err();
        assert_eq!(err.line, Some(1));
    }
}
