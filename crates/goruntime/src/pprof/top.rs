//! Flat and cumulative totals per function, as `go tool pprof -top` prints
//! them, and the difference of two profiles (`-base`).

use super::{PprofError, Profile};
use std::collections::HashMap;

/// One function's totals for one sample type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTotal {
    /// Function name.
    pub function: String,
    /// Value of the samples whose leaf frame is this function.
    pub flat: i64,
    /// Value of the samples whose stack contains this function (once per stack,
    /// however often it recurs).
    pub cum: i64,
}

/// Per-function totals of one sample type, sorted like `go tool pprof -top`:
/// by |flat| descending, then name, then |cum| descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// The sample type (`inuse_space`).
    pub sample_type: String,
    /// Its unit (`bytes`, `count`).
    pub unit: String,
    /// Sum of the sample type over all samples.
    pub total: i64,
    /// Every function that appears in a sample with a non-zero value.
    pub functions: Vec<FunctionTotal>,
}

/// Flat and cumulative totals per function name for sample type `index`.
///
/// Samples whose value is 0 are ignored, as pprof does. Functions are merged
/// by name. Work is linear in the number of frames and allocates per function,
/// not per sample.
pub fn top(profile: &Profile, index: usize) -> Result<Top, PprofError> {
    profile.check_index(index)?;
    let names = profile.name_count();
    let mut flat = vec![0i64; names];
    let mut cum = vec![0i64; names];
    let mut touched = vec![false; names];
    // seen[name] == sample number + 1 when the name was already counted in it.
    let mut seen = vec![0u32; names];
    let mut total = 0i64;
    for sample in 0..profile.sample_count() {
        let value = profile.sample_values(sample)[index];
        if value == 0 {
            continue;
        }
        total = total.wrapping_add(value);
        let stamp = sample as u32 + 1;
        let mut first = true;
        for name in profile.sample_name_ids(sample) {
            let n = name as usize;
            if first {
                flat[n] = flat[n].wrapping_add(value);
                first = false;
            }
            if seen[n] != stamp {
                seen[n] = stamp;
                cum[n] = cum[n].wrapping_add(value);
                touched[n] = true;
            }
        }
    }
    let mut functions: Vec<FunctionTotal> = (0..names)
        .filter(|&n| touched[n])
        .map(|n| FunctionTotal {
            function: profile.name(n as u32).to_string(),
            flat: flat[n],
            cum: cum[n],
        })
        .collect();
    functions.sort_by(|a, b| {
        b.flat
            .unsigned_abs()
            .cmp(&a.flat.unsigned_abs())
            .then_with(|| a.function.cmp(&b.function))
            .then_with(|| b.cum.unsigned_abs().cmp(&a.cum.unsigned_abs()))
    });
    let types = profile.sample_types();
    let (sample_type, unit) = types[index].clone();
    Ok(Top {
        sample_type,
        unit,
        total,
        functions,
    })
}

/// How one function changed between a base profile and a newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDelta {
    /// Function name.
    pub function: String,
    /// Flat value in the newer profile minus the base.
    pub flat_delta: i64,
    /// Cumulative value in the newer profile minus the base.
    pub cum_delta: i64,
    /// Flat value in the base.
    pub base_flat: i64,
    /// Flat value in the newer profile.
    pub flat: i64,
}

/// Growth between two profiles of the same sample type (`--base`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopDiff {
    /// The sample type compared.
    pub sample_type: String,
    /// Its unit.
    pub unit: String,
    /// Total of the newer profile minus the total of the base.
    pub total_delta: i64,
    /// Functions whose flat or cumulative value changed, largest flat growth
    /// first (then largest cumulative growth, then name); shrinking ones last.
    pub functions: Vec<FunctionDelta>,
}

/// Subtracts `base` from `current` per function (what `go tool pprof -base`
/// shows), ranking the functions by growth.
pub fn diff(current: &Top, base: &Top) -> TopDiff {
    let mut by_name: HashMap<&str, FunctionDelta> = HashMap::new();
    for f in &current.functions {
        by_name.insert(
            &f.function,
            FunctionDelta {
                function: f.function.clone(),
                flat_delta: f.flat,
                cum_delta: f.cum,
                base_flat: 0,
                flat: f.flat,
            },
        );
    }
    for f in &base.functions {
        let entry = by_name.entry(&f.function).or_insert_with(|| FunctionDelta {
            function: f.function.clone(),
            flat_delta: 0,
            cum_delta: 0,
            base_flat: 0,
            flat: 0,
        });
        entry.flat_delta = entry.flat_delta.wrapping_sub(f.flat);
        entry.cum_delta = entry.cum_delta.wrapping_sub(f.cum);
        entry.base_flat = f.flat;
    }
    let mut functions: Vec<FunctionDelta> = by_name
        .into_values()
        .filter(|d| d.flat_delta != 0 || d.cum_delta != 0)
        .collect();
    functions.sort_by(|a, b| {
        b.flat_delta
            .cmp(&a.flat_delta)
            .then_with(|| b.cum_delta.cmp(&a.cum_delta))
            .then_with(|| a.function.cmp(&b.function))
    });
    TopDiff {
        sample_type: current.sample_type.clone(),
        unit: current.unit.clone(),
        total_delta: current.total.wrapping_sub(base.total),
        functions,
    }
}
