//! Folded stacks (`root;caller;leaf value`), the input of flame graph tools.

use super::{PprofError, Profile};
use std::collections::HashMap;

/// The samples of sample type `index` as folded stacks: frames root first,
/// joined by `;`, inlined calls expanded, identical stacks summed, sorted by
/// stack. Samples with a value ≤ 0 are left out (a flame graph has no negative
/// widths); `;` and line breaks inside names become `:` and spaces.
pub fn folded_stacks(profile: &Profile, index: usize) -> Result<Vec<(String, u64)>, PprofError> {
    profile.check_index(index)?;
    let names: Vec<String> = (0..profile.name_count())
        .map(|n| clean(profile.name(n as u32)))
        .collect();
    let mut sums: HashMap<String, u64> = HashMap::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut line = String::new();
    for sample in 0..profile.sample_count() {
        let value = profile.sample_values(sample)[index];
        if value <= 0 {
            continue;
        }
        ids.clear();
        ids.extend(profile.sample_name_ids(sample));
        line.clear();
        for (i, &id) in ids.iter().rev().enumerate() {
            if i > 0 {
                line.push(';');
            }
            line.push_str(&names[id as usize]);
        }
        if ids.is_empty() {
            line.push_str("[no frames]");
        }
        match sums.get_mut(line.as_str()) {
            Some(sum) => *sum = sum.saturating_add(value as u64),
            None => {
                sums.insert(line.clone(), value as u64);
            }
        }
    }
    let mut out: Vec<(String, u64)> = sums.into_iter().collect();
    out.sort_unstable();
    Ok(out)
}

fn clean(name: &str) -> String {
    if name.is_empty() {
        return "[unknown]".to_string();
    }
    name.chars()
        .map(|c| match c {
            ';' => ':',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect()
}
