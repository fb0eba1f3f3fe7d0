//! Which groups look like leaks, and how groups grew between two dumps.
//!
//! Proven leaks come first: goroutines the runtime marked `(leaked)` or that the
//! goroutineleak profile reported (Go 1.26+: the GC proved nothing can ever wake
//! them). Then suspected ones, by a score that grows with the number of blocked
//! goroutines and with how long they have waited; then the rest.

use super::model::{Analysis, Frame, Group};
use std::collections::HashMap;

/// How sure memlens is that a group leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The GC proved them unreachable-blocked (goroutineleak profile / `(leaked)`).
    ProvenLeak,
    /// Many blocked goroutines with one stack, or long waits.
    Suspected,
    /// Nothing points at a leak.
    Normal,
}

impl Verdict {
    /// `proven`, `suspected` or `normal`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::ProvenLeak => "proven",
            Verdict::Suspected => "suspected",
            Verdict::Normal => "normal",
        }
    }
}

/// Thresholds of the heuristics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankConfig {
    /// Blocked goroutines with one stack from which a group is suspected.
    pub min_blocked_goroutines: u64,
    /// A blocked wait this long (minutes) makes a group suspected whatever its size.
    pub long_wait_minutes: u64,
}

impl Default for RankConfig {
    fn default() -> Self {
        RankConfig {
            min_blocked_goroutines: 10,
            long_wait_minutes: 10,
        }
    }
}

/// One group's place in the ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedGroup {
    /// Index into [`Analysis::groups`].
    pub index: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// Higher is more suspicious (blocked goroutines weighted by wait time).
    pub score: f64,
    /// Why, in words (empty for `Normal`).
    pub reason: String,
}

/// How much a goroutine in `state` counts as blocked (0 = not at all: running,
/// the runtime's own idle helpers).
fn blocked_weight(state: &str, wait_minutes: u64, long_wait_minutes: u64) -> f64 {
    match state {
        "chan receive"
        | "chan send"
        | "select"
        | "sync.Mutex.Lock"
        | "sync.RWMutex.RLock"
        | "sync.RWMutex.Lock"
        | "sync.Cond.Wait"
        | "sync.WaitGroup.Wait"
        | "semacquire"
        | "chan receive (nil chan)"
        | "chan send (nil chan)"
        | "select (no cases)" => 1.0,
        "IO wait" if wait_minutes >= long_wait_minutes => 1.0,
        "IO wait" => 0.3,
        "sleep" => 0.2,
        "running" | "runnable" | "syscall" | "preempted" => 0.05,
        s if s.starts_with("GC ")
            || s.starts_with("force gc")
            || s.ends_with("(idle)")
            || matches!(
                s,
                "finalizer wait" | "cleanup wait" | "idle" | "trace reader (blocked)"
            ) =>
        {
            0.0
        }
        _ => 0.1,
    }
}

/// Whether every frame is the runtime's own (GC workers, finalizers...).
fn runtime_only(group: &Group) -> bool {
    !group.frames.is_empty()
        && group
            .frames
            .iter()
            .all(|f| f.function.starts_with("runtime."))
}

/// Ranks every group of `analysis`: proven leaks, then suspected, then the rest,
/// each by score then size.
pub fn rank(analysis: &Analysis, config: &RankConfig) -> Vec<RankedGroup> {
    let mut ranked: Vec<RankedGroup> = analysis
        .groups
        .iter()
        .enumerate()
        .map(|(index, group)| rank_group(index, group, analysis.from_leak_profile, config))
        .collect();
    ranked.sort_by(|a, b| {
        a.verdict
            .cmp(&b.verdict)
            .then(b.score.total_cmp(&a.score))
            .then(
                analysis.groups[b.index]
                    .count
                    .cmp(&analysis.groups[a.index].count),
            )
            .then(a.index.cmp(&b.index))
    });
    ranked
}

fn rank_group(index: usize, group: &Group, leak_profile: bool, config: &RankConfig) -> RankedGroup {
    let wait = group.wait_minutes_max.unwrap_or(0);
    let leaked = if leak_profile {
        group.count
    } else {
        group.leaked
    };
    let (blocked, fully_blocked) = if runtime_only(group) {
        (0.0, 0)
    } else if group.states.is_empty() {
        // A format without states (`?debug=1`): size alone can make it suspect.
        (group.count as f64 * 0.5, group.count)
    } else {
        group.states.iter().fold((0.0, 0u64), |(sum, full), s| {
            let w = blocked_weight(&s.state, wait, config.long_wait_minutes);
            (
                sum + w * s.count as f64,
                if w >= 1.0 { full + s.count } else { full },
            )
        })
    };
    let score = blocked * (1.0 + (1.0 + wait as f64).ln()) + leaked as f64 * 1e6;
    let main_state = group
        .states
        .first()
        .map(|s| s.state.as_str())
        .unwrap_or("an unknown state (the format has none)");
    let (verdict, reason) = if leaked > 0 {
        (
            Verdict::ProvenLeak,
            format!("{leaked} goroutine(s) proven leaked by the GC (goroutineleak)"),
        )
    } else if fully_blocked >= config.min_blocked_goroutines {
        (
            Verdict::Suspected,
            format!("{fully_blocked} goroutines blocked in {main_state} on the same stack"),
        )
    } else if fully_blocked > 0 && wait >= config.long_wait_minutes {
        (
            Verdict::Suspected,
            format!("blocked in {main_state} for up to {wait} minutes"),
        )
    } else {
        (Verdict::Normal, String::new())
    };
    RankedGroup {
        index,
        verdict,
        score,
        reason,
    }
}

/// How one stack's goroutine count changed between two dumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDiff {
    /// The stack (the group key).
    pub frames: Vec<Frame>,
    /// Goroutines in the older dump.
    pub older: u64,
    /// Goroutines in the newer dump.
    pub newer: u64,
    /// `newer - older`.
    pub growth: i64,
    /// Index into the newer dump's groups, if the stack is there.
    pub newer_index: Option<usize>,
    /// Index into the older dump's groups, if the stack is there.
    pub older_index: Option<usize>,
}

/// Every stack of either dump with its growth, largest growth first.
pub fn diff(older: &Analysis, newer: &Analysis) -> Vec<GroupDiff> {
    let older_by_key: HashMap<&[Frame], usize> = older
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.frames.as_slice(), i))
        .collect();
    let mut seen = vec![false; older.groups.len()];
    let mut out: Vec<GroupDiff> = newer
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let old = older_by_key.get(g.frames.as_slice()).copied();
            if let Some(o) = old {
                seen[o] = true;
            }
            let older_count = old.map_or(0, |o| older.groups[o].count);
            GroupDiff {
                frames: g.frames.clone(),
                older: older_count,
                newer: g.count,
                growth: g.count as i64 - older_count as i64,
                newer_index: Some(i),
                older_index: old,
            }
        })
        .collect();
    for (o, g) in older.groups.iter().enumerate() {
        if !seen[o] {
            out.push(GroupDiff {
                frames: g.frames.clone(),
                older: g.count,
                newer: 0,
                growth: -(g.count as i64),
                newer_index: None,
                older_index: Some(o),
            });
        }
    }
    out.sort_by(|a, b| b.growth.cmp(&a.growth).then(b.newer.cmp(&a.newer)));
    out
}
