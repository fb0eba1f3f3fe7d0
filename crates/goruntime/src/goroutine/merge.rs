//! Combining what several dumps of one process say: exact counts from the
//! protobuf profile (no 64 MiB cap), states and wait times from `?debug=2`, and
//! the goroutineleak profile's proof.

use super::model::{Analysis, Frame, Group};
use std::collections::HashMap;

/// What [`merge_counts`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Stacks of the counting profile found in the detailed dump.
    pub matched_stacks: u64,
    /// Stacks only the counting profile has (added without states).
    pub added_stacks: u64,
    /// Goroutines in those added stacks.
    pub added_goroutines: u64,
}

/// Takes the counts of `counts` (a protobuf or `?debug=1` profile of the same
/// process) into `detail` (a `?debug=2` dump): each stack of `detail` gets the
/// count `counts` has for it, stacks only `counts` has are added, and the total
/// becomes that of `counts`. States, wait times and creation sites stay those
/// of `detail`; its truncation note is kept.
pub fn merge_counts(detail: &mut Analysis, counts: &Analysis) -> MergeStats {
    let mut stats = MergeStats::default();
    let index: HashMap<Vec<Frame>, usize> = detail
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.frames.clone(), i))
        .collect();
    let mut counted = vec![false; detail.groups.len()];
    let mut added: Vec<Group> = Vec::new();
    for group in &counts.groups {
        let found = index
            .get(&group.frames)
            .copied()
            .or_else(|| prefix_match(&detail.groups, &counted, &group.frames));
        match found {
            Some(i) => {
                stats.matched_stacks += 1;
                counted[i] = true;
                detail.groups[i].count = group.count;
            }
            None => {
                stats.added_stacks += 1;
                stats.added_goroutines += group.count;
                added.push(group.clone());
            }
        }
    }
    // Stacks that ended between the two reads are gone from the exact count.
    for (group, seen) in detail.groups.iter_mut().zip(&counted) {
        if !seen {
            group.count = 0;
        }
    }
    detail.groups.retain(|g| g.count > 0);
    detail.groups.extend(added);
    detail.total_goroutines = counts.total_goroutines;
    detail.overflow = counts.overflow;
    stats
}

/// The unmatched group of `groups` whose stack and `frames` agree on every
/// frame the shorter one has (innermost first), the biggest if several. Go 1.19's
/// protobuf profile stops a frame earlier than its `?debug=2` dump (the
/// goroutine's entry function is left out), so exact keys miss there.
fn prefix_match(groups: &[Group], counted: &[bool], frames: &[Frame]) -> Option<usize> {
    groups
        .iter()
        .enumerate()
        .filter(|(i, g)| {
            let shorter = g.frames.len().min(frames.len());
            !counted[*i] && shorter > 0 && g.frames[..shorter] == frames[..shorter]
        })
        .max_by_key(|(_, g)| g.count)
        .map(|(i, _)| i)
}

/// Marks as leaked, in `analysis`, the goroutines the goroutineleak profile
/// `leaks` reports (matched by stack); stacks not in `analysis` are added.
/// Returns the number of proven-leaked goroutines.
pub fn mark_proven_leaks(analysis: &mut Analysis, leaks: &Analysis) -> u64 {
    let mut proven = 0;
    for leak in &leaks.groups {
        proven += leak.count;
        match analysis.groups.iter_mut().find(|g| g.frames == leak.frames) {
            Some(group) => group.leaked = group.leaked.max(leak.count),
            None => {
                let mut group = leak.clone();
                group.leaked = leak.count;
                analysis.groups.push(group);
            }
        }
    }
    proven
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goroutine::{read_dump, Limits};

    fn dump(text: &str) -> Analysis {
        read_dump(text.as_bytes(), Limits::default(), &mut |_| {}).unwrap()
    }

    #[test]
    fn counts_come_from_the_counting_profile() {
        let mut detail = dump(
            "goroutine 1 [select]:\nmain.a()\n\t/m.go:1 +0x1\n\n\
             goroutine 2 [chan receive]:\nmain.b()\n\t/m.go:2 +0x1\n",
        );
        let counts = dump(
            "goroutine profile: total 12\n2 @ 0x1\n#\t0x1\tmain.a+0x1\t/m.go:1\n\n\
             10 @ 0x2\n#\t0x2\tmain.c+0x1\t/m.go:3\n",
        );
        let stats = merge_counts(&mut detail, &counts);
        assert_eq!(stats.matched_stacks, 1);
        assert_eq!(stats.added_goroutines, 10);
        assert_eq!(detail.total_goroutines, 12);
        assert_eq!(detail.groups.len(), 2, "main.b ended, main.c added");
        assert_eq!(detail.groups[0].count, 2);
        assert_eq!(detail.groups[0].states[0].state, "select");
        let proven = mark_proven_leaks(&mut detail, &counts);
        assert_eq!(proven, 12);
        assert_eq!(detail.groups[1].leaked, 10);
    }
}
