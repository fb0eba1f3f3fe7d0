//! What `memlens goroutines` shows, built from the analyses; serialised as is
//! for `--json` (docs/goroutines-json.md) and printed by `table.rs`.

use super::Loaded;
use memlens_goruntime::goroutine::{self, CreationSite, Frame, Group, RankConfig};
use serde::Serialize;
use std::collections::HashMap;

/// The whole output of `memlens goroutines`.
#[derive(Debug, Serialize)]
pub struct GoroutinesReport {
    /// The TARGET argument.
    pub target: String,
    /// Goroutines in the target (exact from a protobuf profile when live).
    pub total_goroutines: u64,
    /// What the dump's own header declared (`?debug=1`), if any.
    pub declared_total: Option<u64>,
    /// The inputs read, in order.
    pub sources: Vec<SourceRow>,
    /// How leaks were judged.
    pub leak_detection: LeakDetection,
    /// Set when the `?debug=2` text was cut (the runtime stops it at 64 MiB).
    pub truncation: Option<TruncationRow>,
    /// Goroutines counted but not grouped (memory caps reached).
    pub ungrouped_goroutines: u64,
    /// Distinct stacks.
    pub groups_total: usize,
    /// The groups, proven leaks first, then suspected, then the rest (at most `--top`).
    pub groups: Vec<GroupRow>,
    /// Goroutines grouped by creation site, largest first (at most `--top`).
    pub by_creation: Vec<CreationRow>,
    /// Creation sites not listed because of `--top`.
    pub by_creation_omitted: usize,
    /// Growth since `--diff OLDER`, if given.
    pub diff: Option<DiffReport>,
}

/// One input.
#[derive(Debug, Serialize)]
pub struct SourceRow {
    /// URL, file path or `-`.
    pub location: String,
    /// `protobuf`, `debug2`, `debug1` or `sigquit`.
    pub format: String,
    /// What was taken from it.
    pub role: String,
    /// Bytes read.
    pub bytes: u64,
}

/// How leaks were judged.
#[derive(Debug, Serialize)]
pub struct LeakDetection {
    /// `goroutineleak` (proven by the GC), `leaked-marks` (the dump's `(leaked)`
    /// marks) or `heuristics`.
    pub method: String,
    /// Goroutines proven leaked (0 with `heuristics`).
    pub proven_leaked_goroutines: u64,
    /// The same in words, with why the goroutineleak profile was not used.
    pub note: String,
}

/// The `?debug=2` cut.
#[derive(Debug, Serialize)]
pub struct TruncationRow {
    /// What gave it away.
    pub reason: String,
    /// Goroutines the cut text showed.
    pub goroutines_read: u64,
}

/// A frame (leaf first in lists).
#[derive(Debug, Serialize)]
pub struct FrameRow {
    /// Package-qualified function.
    pub function: String,
    /// Source file.
    pub file: String,
    /// Line (0: unknown).
    pub line: u32,
}

/// A creation site with how many goroutines of a group it made.
#[derive(Debug, Serialize)]
pub struct SiteRow {
    /// The function with the `go` statement (`null` when the dump shows none).
    pub function: Option<String>,
    /// Its file.
    pub file: Option<String>,
    /// The line of the `go` statement.
    pub line: Option<u32>,
    /// Goroutines.
    pub count: u64,
}

/// A state and its goroutines.
#[derive(Debug, Serialize)]
pub struct StateRow {
    /// As the runtime names it (`chan receive`).
    pub state: String,
    /// Goroutines.
    pub count: u64,
}

/// One group of goroutines with the same stack.
#[derive(Debug, Serialize)]
pub struct GroupRow {
    /// 1-based place in the ranking.
    pub rank: usize,
    /// `proven`, `suspected` or `normal`.
    pub verdict: String,
    /// Why (empty for `normal`).
    pub reason: String,
    /// The ranking score (higher is more suspicious).
    pub score: f64,
    /// Goroutines.
    pub count: u64,
    /// Of which proven leaked.
    pub leaked: u64,
    /// Of which locked to a thread.
    pub locked_to_thread: u64,
    /// States, most common first.
    pub states: Vec<StateRow>,
    /// Whether the states were guessed from the frames (formats without states).
    pub states_inferred: bool,
    /// Shortest wait shown, minutes (`null`: under a minute or unknown).
    pub wait_minutes_min: Option<u64>,
    /// Longest wait shown, minutes.
    pub wait_minutes_max: Option<u64>,
    /// The stack, leaf first.
    pub frames: Vec<FrameRow>,
    /// Whether frames were left out (deep stacks).
    pub frames_elided: bool,
    /// Creation sites, most common first.
    pub created_by: Vec<SiteRow>,
}

/// Goroutines created at one site.
#[derive(Debug, Serialize)]
pub struct CreationRow {
    /// The site (`function` null for goroutines without `created by`).
    pub site: SiteRow,
    /// States, most common first.
    pub states: Vec<StateRow>,
    /// Of which proven leaked.
    pub leaked: u64,
    /// Longest wait, minutes.
    pub wait_minutes_max: Option<u64>,
    /// Distinct stacks.
    pub stacks: u64,
}

/// Growth since an older dump.
#[derive(Debug, Serialize)]
pub struct DiffReport {
    /// The OLDER argument.
    pub older_target: String,
    /// Goroutines in the older dump.
    pub older_total: u64,
    /// `total_goroutines - older_total`.
    pub total_growth: i64,
    /// Stacks whose count changed, largest growth first (at most `--top`).
    pub groups: Vec<DiffRow>,
    /// Stacks with a change not listed because of `--top`.
    pub groups_omitted: usize,
}

/// One stack's change.
#[derive(Debug, Serialize)]
pub struct DiffRow {
    /// Goroutines then.
    pub older: u64,
    /// Goroutines now.
    pub newer: u64,
    /// `newer - older`.
    pub growth: i64,
    /// The stack, leaf first.
    pub frames: Vec<FrameRow>,
    /// The main creation site (of the newer dump's group, else the older's).
    pub created_by: Option<SiteRow>,
}

fn limit(n: usize, top: usize) -> usize {
    if top == 0 {
        n
    } else {
        n.min(top)
    }
}

fn frame_rows(frames: &[Frame]) -> Vec<FrameRow> {
    frames
        .iter()
        .map(|f| FrameRow {
            function: f.function.clone(),
            file: f.file.clone(),
            line: f.line,
        })
        .collect()
}

fn site_row(site: Option<&CreationSite>, count: u64) -> SiteRow {
    SiteRow {
        function: site.map(|s| s.function.clone()),
        file: site.map(|s| s.file.clone()),
        line: site.map(|s| s.line),
        count,
    }
}

fn state_rows(states: &[goroutine::StateCount]) -> Vec<StateRow> {
    states
        .iter()
        .map(|s| StateRow {
            state: s.state.clone(),
            count: s.count,
        })
        .collect()
}

fn main_site(group: &Group) -> Option<SiteRow> {
    group
        .created_by
        .first()
        .map(|c| site_row(c.site.as_ref(), c.count))
}

impl GoroutinesReport {
    /// Builds the report of `loaded` (and its growth since `older`), keeping
    /// `top` groups and sites (0: all).
    pub fn new(target: &str, loaded: &Loaded, older: Option<(&str, &Loaded)>, top: usize) -> Self {
        let analysis = &loaded.analysis;
        let ranked = goroutine::rank(analysis, &RankConfig::default());
        let groups = ranked
            .iter()
            .take(limit(ranked.len(), top))
            .enumerate()
            .map(|(place, r)| {
                let g = &analysis.groups[r.index];
                GroupRow {
                    rank: place + 1,
                    verdict: r.verdict.name().to_string(),
                    reason: r.reason.clone(),
                    score: r.score,
                    count: g.count,
                    leaked: if analysis.from_leak_profile {
                        g.count
                    } else {
                        g.leaked
                    },
                    locked_to_thread: g.locked_to_thread,
                    states: state_rows(&g.states),
                    states_inferred: g.states_inferred,
                    wait_minutes_min: g.wait_minutes_min,
                    wait_minutes_max: g.wait_minutes_max,
                    frames: frame_rows(&g.frames),
                    frames_elided: g.frames_elided,
                    created_by: g
                        .created_by
                        .iter()
                        .map(|c| site_row(c.site.as_ref(), c.count))
                        .collect(),
                }
            })
            .collect();
        let mut sites = if loaded.sources.len() > 1 {
            creation_view(&analysis.groups)
        } else {
            analysis
                .by_creation
                .iter()
                .map(|c| CreationRow {
                    site: site_row(c.site.as_ref(), c.count),
                    states: state_rows(&c.states),
                    leaked: c.leaked,
                    wait_minutes_max: c.wait_minutes_max,
                    stacks: c.stacks,
                })
                .collect()
        };
        let all_sites = sites.len();
        sites.truncate(limit(all_sites, top));
        GoroutinesReport {
            target: target.to_string(),
            total_goroutines: analysis.total_goroutines,
            declared_total: analysis.declared_total,
            sources: loaded
                .sources
                .iter()
                .map(|s| SourceRow {
                    location: s.location.clone(),
                    format: s.format.to_string(),
                    role: s.role.to_string(),
                    bytes: s.bytes,
                })
                .collect(),
            leak_detection: LeakDetection {
                method: loaded.leak_method.name().to_string(),
                proven_leaked_goroutines: loaded.proven_leaked,
                note: loaded.leak_note.clone(),
            },
            truncation: analysis.truncation.as_ref().map(|t| TruncationRow {
                reason: t.reason.clone(),
                goroutines_read: t.goroutines_read,
            }),
            ungrouped_goroutines: analysis.overflow.goroutines,
            groups_total: analysis.groups.len(),
            groups,
            by_creation_omitted: all_sites - sites.len(),
            by_creation: sites,
            diff: older.map(|(arg, o)| diff_report(arg, o, loaded, top)),
        }
    }
}

/// `total` split in proportion to `weights`, the rounding remainder going to
/// the largest weight (the first when equal).
fn split(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|&w| (u128::from(total) * u128::from(w) / sum) as u64)
        .collect();
    let given: u64 = parts.iter().sum();
    if let Some(largest) = (0..weights.len()).max_by_key(|&i| (weights[i], std::cmp::Reverse(i))) {
        parts[largest] += total - given;
    }
    parts
}

/// The view by creation site rebuilt from the groups, for analyses whose group
/// counts were replaced by exact ones ([`goroutine::merge_counts`]) or whose
/// leaks were marked afterwards: each group's count (and leaked count, and
/// states) is shared among its creation sites in the proportions the detailed
/// dump showed; groups the detailed dump lacked count under "no site".
fn creation_view(groups: &[Group]) -> Vec<CreationRow> {
    struct Acc {
        site: Option<CreationSite>,
        count: u64,
        leaked: u64,
        wait: Option<u64>,
        stacks: u64,
        states: Vec<(String, u64)>,
    }
    let mut accs: Vec<Acc> = Vec::new();
    let mut index: HashMap<Option<&CreationSite>, usize> = HashMap::new();
    for group in groups {
        let weights: Vec<u64> = group.created_by.iter().map(|c| c.count).collect();
        let (sites, counts, leaked): (Vec<Option<&CreationSite>>, Vec<u64>, Vec<u64>) =
            if weights.iter().sum::<u64>() == 0 {
                (vec![None], vec![group.count], vec![group.leaked])
            } else {
                (
                    group.created_by.iter().map(|c| c.site.as_ref()).collect(),
                    split(group.count, &weights),
                    split(group.leaked, &weights),
                )
            };
        let state_weights: Vec<u64> = group.states.iter().map(|s| s.count).collect();
        for ((site, count), leaked) in sites.into_iter().zip(counts).zip(leaked) {
            let at = match index.get(&site) {
                Some(&i) => i,
                None => {
                    index.insert(site, accs.len());
                    accs.push(Acc {
                        site: site.cloned(),
                        count: 0,
                        leaked: 0,
                        wait: None,
                        stacks: 0,
                        states: Vec::new(),
                    });
                    accs.len() - 1
                }
            };
            let acc = &mut accs[at];
            acc.count += count;
            acc.leaked += leaked;
            acc.stacks += 1;
            acc.wait = acc.wait.max(group.wait_minutes_max);
            for (state, n) in group.states.iter().zip(split(count, &state_weights)) {
                match acc.states.iter_mut().find(|(s, _)| *s == state.state) {
                    Some(existing) => existing.1 += n,
                    None => acc.states.push((state.state.clone(), n)),
                }
            }
        }
    }
    accs.sort_by_key(|a| std::cmp::Reverse(a.count));
    accs.into_iter()
        .map(|mut a| {
            a.states.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
            CreationRow {
                site: site_row(a.site.as_ref(), a.count),
                states: a
                    .states
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(state, count)| StateRow { state, count })
                    .collect(),
                leaked: a.leaked,
                wait_minutes_max: a.wait,
                stacks: a.stacks,
            }
        })
        .collect()
}

fn diff_report(older_arg: &str, older: &Loaded, newer: &Loaded, top: usize) -> DiffReport {
    let changes: Vec<_> = goroutine::diff(&older.analysis, &newer.analysis)
        .into_iter()
        .filter(|d| d.growth != 0)
        .collect();
    let shown = limit(changes.len(), top);
    DiffReport {
        older_target: older_arg.to_string(),
        older_total: older.analysis.total_goroutines,
        total_growth: newer.analysis.total_goroutines as i64
            - older.analysis.total_goroutines as i64,
        groups: changes[..shown]
            .iter()
            .map(|d| DiffRow {
                older: d.older,
                newer: d.newer,
                growth: d.growth,
                frames: frame_rows(&d.frames),
                created_by: d
                    .newer_index
                    .map(|i| &newer.analysis.groups[i])
                    .or(d.older_index.map(|i| &older.analysis.groups[i]))
                    .and_then(main_site),
            })
            .collect(),
        groups_omitted: changes.len() - shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_total_and_the_proportions() {
        assert_eq!(split(10, &[1, 1]), vec![5, 5]);
        assert_eq!(split(10, &[2, 1]), vec![7, 3]);
        assert_eq!(split(7, &[0, 0]), vec![0, 0]);
        assert_eq!(split(400_000, &[300, 1]).iter().sum::<u64>(), 400_000);
        assert_eq!(split(5, &[]), Vec::<u64>::new());
    }
}
