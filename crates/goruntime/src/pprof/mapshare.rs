//! The share of a heap profile that Go maps hold: samples whose stack touches
//! the runtime's map code, and the user functions that own those maps.
//!
//! A fact that shapes this: `runtime/pprof` hides the leading `runtime.*` (and,
//! since Go 1.24, `internal/runtime/*`) frames of every heap sample that has a
//! user frame, so a map allocation made by `m[k] = v` in `main.f` is recorded
//! with `main.f` as its leaf and no map function at all (seen in every
//! map-bloat capture, Go 1.19 to 1.27). The map function is then only known
//! from the binary: the leaf location's address is the return address (minus
//! one) of the call into the runtime, and [`super::leaf_callees`] reads its
//! target from the ELF file. Callers pass what they resolved; with nothing
//! resolved only stacks that still show map frames count.

use super::{PprofError, Profile};
use std::collections::HashMap;

/// Runtime functions (after `runtime.`) that allocate for maps, classic
/// (Go ≤ 1.23) and swiss-table (Go ≥ 1.24, linknamed into `runtime.`).
const RUNTIME_MAP_PREFIXES: [&str; 9] = [
    "makemap",
    "mapassign",
    "mapclone",
    "hashGrow",
    "growWork",
    "evacuate",
    "makeBucketArray",
    "newoverflow",
    "mapinitnoop",
];

/// Whether `name` is runtime code that allocates for a map: `runtime.makemap*`,
/// `runtime.mapassign*`, `runtime.hashGrow`, `runtime.growWork*`,
/// `runtime.evacuate*`, `runtime.makeBucketArray`, `runtime.newoverflow`,
/// `runtime.mapclone*`, or anything in Go 1.24+'s swiss-table package
/// `internal/runtime/maps` (`newTable`, `(*Map).growToTable`, `(*table).grow`,
/// `(*Map).putSlotSmall`, ...).
pub fn is_map_function(name: &str) -> bool {
    if name.starts_with("internal/runtime/maps.") {
        return true;
    }
    match name.strip_prefix("runtime.") {
        Some(rest) => RUNTIME_MAP_PREFIXES.iter().any(|p| rest.starts_with(p)),
        None => false,
    }
}

/// Whether `name` is Go runtime code (not the user's).
pub fn is_runtime_function(name: &str) -> bool {
    name.starts_with("runtime.") || name.starts_with("internal/runtime/")
}

/// A user function that owns map memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOwner {
    /// The first non-runtime function from the leaf of the map-touching stacks.
    pub function: String,
    /// The value attributed to it.
    pub value: i64,
}

/// How much of one sample type is map memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MapShare {
    /// Sum of the sample type over all samples.
    pub total: i64,
    /// Sum over the samples whose stack touches map code.
    pub map_value: i64,
    /// Whether leaf call targets from the binary were used (without them, map
    /// allocations hidden by the runtime are not seen).
    pub used_callees: bool,
    /// Owners of the map memory, largest first (then by name).
    pub owners: Vec<MapOwner>,
}

impl MapShare {
    /// `map_value / total`, 0 when the total is 0.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.map_value as f64 / self.total as f64
        }
    }
}

/// The map share of sample type `index`. `leaf_callees` maps a location
/// address to the function its call instruction calls (from
/// [`super::leaf_callees`]); pass an empty map when the binary is not at hand.
pub fn map_share(
    profile: &Profile,
    index: usize,
    leaf_callees: &HashMap<u64, String>,
) -> Result<MapShare, PprofError> {
    profile.check_index(index)?;
    let names = profile.name_count();
    let map_name: Vec<bool> = (0..names)
        .map(|n| is_map_function(profile.name(n as u32)))
        .collect();
    let runtime_name: Vec<bool> = (0..names)
        .map(|n| is_runtime_function(profile.name(n as u32)))
        .collect();
    let map_callee: HashMap<u64, bool> = leaf_callees
        .iter()
        .map(|(addr, f)| (*addr, is_map_function(f)))
        .collect();
    let mut owner_value = vec![0i64; names];
    let mut total = 0i64;
    let mut map_value = 0i64;
    for sample in 0..profile.sample_count() {
        let value = profile.sample_values(sample)[index];
        if value == 0 {
            continue;
        }
        total = total.wrapping_add(value);
        let leaf_is_map_call = profile
            .sample_locs(sample)
            .first()
            .and_then(|&loc| map_callee.get(&profile.locations[loc as usize].address))
            .copied()
            .unwrap_or(false);
        let touches = leaf_is_map_call
            || profile
                .sample_name_ids(sample)
                .any(|n| map_name[n as usize]);
        if !touches {
            continue;
        }
        map_value = map_value.wrapping_add(value);
        if let Some(owner) = profile
            .sample_name_ids(sample)
            .find(|&n| !runtime_name[n as usize])
        {
            owner_value[owner as usize] = owner_value[owner as usize].wrapping_add(value);
        }
    }
    let mut owners: Vec<MapOwner> = (0..names)
        .filter(|&n| owner_value[n] != 0)
        .map(|n| MapOwner {
            function: profile.name(n as u32).to_string(),
            value: owner_value[n],
        })
        .collect();
    owners.sort_by(|a, b| {
        b.value
            .cmp(&a.value)
            .then_with(|| a.function.cmp(&b.function))
    });
    Ok(MapShare {
        total,
        map_value,
        used_callees: !leaf_callees.is_empty(),
        owners,
    })
}
