//! Map bloat: Go maps whose memory stays. A Go map never shrinks: deleting
//! entries frees the values' own allocations but keeps the buckets (Go ≤
//! 1.23) or tables and groups (swiss tables, Go ≥ 1.24) sized for the most
//! entries it ever held. Pure: the map memory of a heap profile per owner at
//! both ends of a window ([`MapShare`], from
//! [`memlens_goruntime::pprof::map_share`]) in, at most one [`Finding`] out
//! ([`MAP_BLOAT`], docs/findings.md).
//!
//! The owner is the allocation site in the user's code: the first
//! non-runtime frame of the map-allocating samples (`runtime/pprof` hides the
//! runtime's map frames — `runtime.makemap`, `runtime.hashGrow`,
//! `internal/runtime/maps.newTable`… — of every heap sample with a user
//! frame, Go 1.19 to 1.27, so the map call is recognised from the binary).
//!
//! What a heap profile cannot show is how many entries a map holds now. An
//! owner fires when its map memory is large ([`Config::min_bytes`] and
//! [`Config::min_share`] of the in-use heap) and did not grow over the
//! window (a map still filling is heap growth, not bloat): memory held by a
//! map that stopped growing. Whether its entries were deleted (bloat) or are
//! all live (a big map in use) only `len(m)` in the program tells; the
//! recommendation says so.

use crate::finding::{Evidence, Finding, Layer, Severity, Target};
use memlens_goruntime::pprof::MapShare;

/// Stable id: a Go map holds a large share of the heap and stopped growing.
pub const MAP_BLOAT: &str = "go.map_bloat";

/// Thresholds of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// An owner's map memory from this size (16 MiB).
    pub min_bytes: u64,
    /// ... and this share of the in-use heap of the profile (0.25).
    pub min_share: f64,
    /// Grown by more than this share over the window, the map is still
    /// filling: not reported (0.25).
    pub max_growth_fraction: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_bytes: 16 << 20,
            min_share: 0.25,
            max_growth_fraction: 0.25,
        }
    }
}

/// One owner's map memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MapSite {
    /// The user function owning the map memory (`main.runMapBloat`).
    pub function: String,
    /// Map bytes in use at the end.
    pub end_bytes: i64,
    /// At the start (`None` when the start was not read).
    pub start_bytes: Option<i64>,
    /// `end_bytes` / the profile's in-use total.
    pub share_of_heap: f64,
    /// Whether it passes the thresholds.
    pub bloated: bool,
}

/// Every owner of map memory at the end, largest first. `start` is the
/// start of the window's map share, when read.
pub fn sites(start: Option<&MapShare>, end: &MapShare, config: &Config) -> Vec<MapSite> {
    end.owners
        .iter()
        .map(|o| {
            let start_bytes = start.map(|s| {
                s.owners
                    .iter()
                    .find(|x| x.function == o.function)
                    .map_or(0, |x| x.value)
            });
            let share = if end.total > 0 {
                o.value as f64 / end.total as f64
            } else {
                0.0
            };
            let still_filling = start_bytes.is_some_and(|s| {
                o.value as f64 > s.max(0) as f64 * (1.0 + config.max_growth_fraction)
            });
            MapSite {
                function: o.function.clone(),
                end_bytes: o.value,
                start_bytes,
                share_of_heap: share,
                bloated: o.value >= config.min_bytes as i64
                    && share >= config.min_share
                    && !still_filling,
            }
        })
        .collect()
}

/// A warning naming the largest bloated owner; `None` when none is.
pub fn check(sites: &[MapSite], end: &MapShare, target: &Target, at_ms: i64) -> Option<Finding> {
    let top = sites.iter().find(|s| s.bloated)?;
    let mut evidence = vec![
        Evidence::new("map_bytes", top.end_bytes as f64, "bytes", Layer::GoRuntime),
        Evidence::new("share_of_heap", top.share_of_heap, "ratio", Layer::Derived),
        Evidence::new(
            "heap_profile_bytes",
            end.total as f64,
            "bytes",
            Layer::GoRuntime,
        ),
        Evidence::new(
            "all_maps_bytes",
            end.map_value as f64,
            "bytes",
            Layer::GoRuntime,
        ),
    ];
    if let Some(s) = top.start_bytes {
        evidence.push(Evidence::new(
            "map_bytes_start",
            s as f64,
            "bytes",
            Layer::GoRuntime,
        ));
    }
    let recommendation = format!(
        "maps allocated in {} hold {:.1} MiB ({:.0} % of the in-use heap) and stopped \
         growing. A Go map never shrinks: if most entries were deleted, copy the \
         survivors into a new map (or recreate it periodically) so the old buckets \
         can be freed; if len() is as large, it is a big map in use — bound it \
         (an LRU) or store smaller values (pointers, not arrays).",
        top.function,
        top.end_bytes as f64 / 1048576.0,
        top.share_of_heap * 100.0,
    );
    Some(Finding::fired(
        MAP_BLOAT,
        Severity::Warning,
        target.clone(),
        evidence,
        recommendation,
        at_ms,
    ))
}

/// Names the map variable a live read found holding the most (`path`, e.g.
/// `main.bloatedMap`, from `memlens maps`) in a `go.map_bloat` finding: its
/// length, slots and bytes held become evidence and the recommendation says
/// which variable to shrink.
pub fn name_variable(
    finding: &mut Finding,
    path: &str,
    length: u64,
    capacity_slots: u64,
    held_bytes: Option<u64>,
) {
    finding.evidence.push(Evidence::new(
        "largest_map_length",
        length as f64,
        "entries",
        Layer::GoRuntime,
    ));
    finding.evidence.push(Evidence::new(
        "largest_map_capacity_slots",
        capacity_slots as f64,
        "slots",
        Layer::GoRuntime,
    ));
    if let Some(h) = held_bytes {
        finding.evidence.push(Evidence::new(
            "largest_map_held_bytes",
            h as f64,
            "bytes",
            Layer::GoRuntime,
        ));
    }
    let held = held_bytes.map_or(String::new(), |h| {
        format!(", {:.1} MiB of buckets", h as f64 / 1048576.0)
    });
    finding.recommendation.push_str(&format!(
        " The map holding the most is the variable {path} (len {length}, \
         {capacity_slots} slots{held}; `memlens maps --pid` lists them all)."
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_goruntime::pprof::MapOwner;

    const MIB: i64 = 1 << 20;
    const TARGET: Target = Target::Process {
        pid: 1,
        start_time: 2,
    };

    fn share(total: i64, owners: &[(&str, i64)]) -> MapShare {
        MapShare {
            total,
            map_value: owners.iter().map(|o| o.1).sum(),
            used_callees: true,
            owners: owners
                .iter()
                .map(|(f, v)| MapOwner {
                    function: f.to_string(),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn naming_the_variable_adds_evidence_and_the_path() {
        let mut f = Finding::fired(
            MAP_BLOAT,
            Severity::Warning,
            Target::Process {
                pid: 1,
                start_time: 2,
            },
            Vec::new(),
            "maps allocated in main.f hold 22 MiB.".into(),
            0,
        );
        name_variable(&mut f, "main.cache[\"x\"]", 1000, 262144, Some(22 << 20));
        assert!(
            f.recommendation.ends_with(
                "variable main.cache[\"x\"] (len 1000, 262144 slots, 22.0 MiB of buckets; \
                 `memlens maps --pid` lists them all)."
            ),
            "{}",
            f.recommendation
        );
        assert_eq!(f.evidence("largest_map_capacity_slots"), Some(262144.0));
        assert_eq!(
            f.evidence("largest_map_held_bytes"),
            Some((22u64 << 20) as f64)
        );
    }

    #[test]
    fn a_big_map_that_stopped_growing_fires() {
        let start = share(24 * MIB, &[("main.runMapBloat", 22 * MIB)]);
        let end = share(24 * MIB, &[("main.runMapBloat", 22 * MIB)]);
        let s = sites(Some(&start), &end, &Config::default());
        let f = check(&s, &end, &TARGET, 1).unwrap();
        assert!(f.recommendation.contains("main.runMapBloat"));
        assert_eq!(f.evidence("map_bytes"), Some(22.0 * MIB as f64));
    }

    #[test]
    fn small_or_filling_maps_do_not() {
        let end = share(100 * MIB, &[("main.a", 20 * MIB), ("main.b", 8 * MIB)]);
        let s = sites(None, &end, &Config::default());
        assert!(check(&s, &end, &TARGET, 1).is_none(), "20 % of the heap");
        let end = share(40 * MIB, &[("main.a", 30 * MIB)]);
        let start = share(20 * MIB, &[("main.a", 10 * MIB)]);
        let s = sites(Some(&start), &end, &Config::default());
        assert!(check(&s, &end, &TARGET, 1).is_none(), "still filling");
    }
}
