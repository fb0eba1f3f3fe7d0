//! Folding goroutines into groups as they are read, within the memory caps of
//! [`Limits`]: one goroutine at a time in, never a list of all of them.

use super::model::{
    CreationCount, CreationGroup, CreationSite, Frame, Group, Limits, Overflow, StateCount,
};
use std::collections::HashMap;

/// Distinct states kept per group or site; more are counted as `other`.
const MAX_STATES: usize = 16;
/// Distinct creation sites kept per group; more are counted without a site.
const MAX_SITES_PER_GROUP: usize = 8;
/// Goroutine ids (and creator ids) kept per group as examples.
const MAX_SAMPLE_IDS: usize = 8;

/// A frame being read, reused from goroutine to goroutine.
#[derive(Debug, Default, Clone)]
pub(crate) struct ScratchFrame {
    pub(crate) function: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

/// One goroutine (or, for grouped formats, `count` identical ones).
#[derive(Debug, Default)]
pub(crate) struct Record<'a> {
    pub(crate) id: Option<u64>,
    pub(crate) state: Option<&'a str>,
    pub(crate) wait_minutes: Option<u64>,
    pub(crate) leaked: bool,
    pub(crate) locked_to_thread: bool,
    /// All frames, leaf first, as the dump has them.
    pub(crate) frames: &'a [ScratchFrame],
    pub(crate) dump_elided: bool,
    pub(crate) created_by: Option<(&'a str, &'a str, u32)>,
    pub(crate) creator_id: Option<u64>,
}

#[derive(Debug)]
struct SiteAcc {
    group: CreationGroup,
}

/// Groups goroutines by stack and by creation site.
#[derive(Debug)]
pub(crate) struct Aggregator {
    limits: Limits,
    states_inferred: bool,
    groups: Vec<Group>,
    /// Per group: (site slot, count); resolved into `Group::created_by` at the end.
    group_sites: Vec<Vec<(Option<u32>, u64)>>,
    index: HashMap<u64, Vec<u32>>,
    sites: Vec<SiteAcc>,
    site_index: HashMap<u64, Vec<u32>>,
    no_site: SiteAcc,
    overflow: Overflow,
    stored_bytes: usize,
    total: u64,
    kept: Vec<usize>,
}

impl Aggregator {
    /// An empty aggregator; `states_inferred` marks states guessed from frames.
    pub(crate) fn new(limits: Limits, states_inferred: bool) -> Self {
        Aggregator {
            limits,
            states_inferred,
            groups: Vec::new(),
            group_sites: Vec::new(),
            index: HashMap::new(),
            sites: Vec::new(),
            site_index: HashMap::new(),
            no_site: SiteAcc {
                group: empty_site(None),
            },
            overflow: Overflow::default(),
            stored_bytes: 0,
            total: 0,
            kept: Vec::new(),
        }
    }

    /// Goroutines added so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Adds `count` goroutines described by `record`.
    pub(crate) fn add(&mut self, record: &Record<'_>, count: u64) {
        if count == 0 {
            return;
        }
        self.total = self.total.saturating_add(count);
        let max_name = self.limits.max_name_bytes;
        let elided = select_key_frames(record.frames, self.limits.max_frames, &mut self.kept);
        let mut hash = Fnv::new();
        for &i in &self.kept {
            let f = &record.frames[i];
            hash.write(cap_str(&f.function, max_name).as_bytes());
            hash.write(&[0xff]);
            hash.write(cap_str(&f.file, max_name).as_bytes());
            hash.write(&f.line.to_le_bytes());
        }
        let hash = hash.finish();
        let found = self.index.get(&hash).and_then(|candidates| {
            candidates.iter().copied().find(|&g| {
                let frames = &self.groups[g as usize].frames;
                frames.len() == self.kept.len()
                    && frames.iter().zip(&self.kept).all(|(stored, &i)| {
                        let f = &record.frames[i];
                        stored.line == f.line
                            && stored.function == cap_str(&f.function, max_name)
                            && stored.file == cap_str(&f.file, max_name)
                    })
            })
        });
        let site_index = self.site_for(record.created_by);
        let group_index = match found {
            Some(g) => Some(g as usize),
            None => {
                let bytes: usize = self
                    .kept
                    .iter()
                    .map(|&i| {
                        let f = &record.frames[i];
                        cap_str(&f.function, max_name).len() + cap_str(&f.file, max_name).len() + 32
                    })
                    .sum();
                if self.groups.len() >= self.limits.max_groups
                    || self.stored_bytes + bytes > self.limits.max_stored_bytes
                {
                    None
                } else {
                    self.stored_bytes += bytes;
                    let frames = self
                        .kept
                        .iter()
                        .map(|&i| {
                            let f = &record.frames[i];
                            Frame {
                                function: cap_str(&f.function, max_name).to_string(),
                                file: cap_str(&f.file, max_name).to_string(),
                                line: f.line,
                            }
                        })
                        .collect();
                    self.groups.push(empty_group(frames, self.states_inferred));
                    self.group_sites.push(Vec::new());
                    let g = self.groups.len() - 1;
                    self.index.entry(hash).or_default().push(g as u32);
                    Some(g)
                }
            }
        };
        match group_index {
            Some(g) => {
                let group = &mut self.groups[g];
                group.count = group.count.saturating_add(count);
                group.frames_elided |= elided || record.dump_elided;
                if let Some(state) = record.state {
                    bump_state(&mut group.states, state, count);
                }
                if record.leaked {
                    group.leaked = group.leaked.saturating_add(count);
                }
                if record.locked_to_thread {
                    group.locked_to_thread = group.locked_to_thread.saturating_add(count);
                }
                if let Some(w) = record.wait_minutes {
                    group.wait_minutes_min = Some(group.wait_minutes_min.map_or(w, |m| m.min(w)));
                    group.wait_minutes_max = Some(group.wait_minutes_max.map_or(w, |m| m.max(w)));
                }
                bump_site(
                    &mut self.group_sites[g],
                    site_index.map(|s| s as u32),
                    count,
                );
                push_sample(&mut group.goroutine_ids, record.id);
                push_sample(&mut group.creator_ids, record.creator_id);
            }
            None => {
                self.overflow.goroutines = self.overflow.goroutines.saturating_add(count);
                if record.leaked {
                    self.overflow.leaked = self.overflow.leaked.saturating_add(count);
                }
            }
        }
        let site = match site_index {
            Some(s) => &mut self.sites[s].group,
            None => &mut self.no_site.group,
        };
        site.count = site.count.saturating_add(count);
        if let Some(state) = record.state {
            bump_state(&mut site.states, state, count);
        }
        if record.leaked {
            site.leaked = site.leaked.saturating_add(count);
        }
        if let Some(w) = record.wait_minutes {
            site.wait_minutes_max = Some(site.wait_minutes_max.map_or(w, |m| m.max(w)));
        }
    }

    /// The creation-site slot of `created_by`, made if new and within the caps.
    fn site_for(&mut self, created_by: Option<(&str, &str, u32)>) -> Option<usize> {
        let (function, file, line) = created_by?;
        let max_name = self.limits.max_name_bytes;
        let (function, file) = (cap_str(function, max_name), cap_str(file, max_name));
        let mut hash = Fnv::new();
        hash.write(function.as_bytes());
        hash.write(&[0xff]);
        hash.write(file.as_bytes());
        hash.write(&line.to_le_bytes());
        let hash = hash.finish();
        if let Some(candidates) = self.site_index.get(&hash) {
            for &s in candidates {
                if let Some(site) = &self.sites[s as usize].group.site {
                    if site.line == line && site.function == function && site.file == file {
                        return Some(s as usize);
                    }
                }
            }
        }
        let bytes = function.len() + file.len() + 32;
        if self.sites.len() >= self.limits.max_creation_sites
            || self.stored_bytes + bytes > self.limits.max_stored_bytes
        {
            return None;
        }
        self.stored_bytes += bytes;
        self.sites.push(SiteAcc {
            group: empty_site(Some(CreationSite {
                function: function.to_string(),
                file: file.to_string(),
                line,
            })),
        });
        let s = self.sites.len() - 1;
        self.site_index.entry(hash).or_default().push(s as u32);
        Some(s)
    }

    /// The groups (in order of first appearance), the creation-site view (largest
    /// first) and the overflow.
    pub(crate) fn finish(mut self) -> (Vec<Group>, Vec<CreationGroup>, Overflow) {
        for (group, group_sites) in self.groups.iter_mut().zip(&self.group_sites) {
            group
                .states
                .sort_by(|a, b| b.count.cmp(&a.count).then(a.state.cmp(&b.state)));
            for &(slot, count) in group_sites {
                let site = match slot {
                    Some(s) => &mut self.sites[s as usize],
                    None => &mut self.no_site,
                };
                site.group.stacks += 1;
                group.created_by.push(CreationCount {
                    site: site.group.site.clone(),
                    count,
                });
            }
            group.created_by.sort_by_key(|c| std::cmp::Reverse(c.count));
        }
        let mut sites: Vec<CreationGroup> = self.sites.into_iter().map(|s| s.group).collect();
        if self.no_site.group.count > 0 {
            sites.push(self.no_site.group);
        }
        for site in &mut sites {
            site.states
                .sort_by(|a, b| b.count.cmp(&a.count).then(a.state.cmp(&b.state)));
        }
        sites.sort_by_key(|s| std::cmp::Reverse(s.count));
        (self.groups, sites, self.overflow)
    }
}

/// Chooses the frames that make a group's key, leaf first, into `kept`: the
/// runtime's own frames (`runtime.gopark`, `runtime.main`, `runtime.goexit`,
/// which `?debug=2` hides and the others show) when the stack has any other
/// frame, and compiler-made `gowrap` wrappers, are left out so a SIGQUIT dump,
/// `?debug=2`, `?debug=1` and the protobuf agree. Returns whether frames beyond
/// `max_frames` were dropped.
fn select_key_frames(frames: &[ScratchFrame], max_frames: usize, kept: &mut Vec<usize>) -> bool {
    kept.clear();
    let only_runtime = frames.iter().all(|f| f.function.starts_with("runtime."));
    for (i, frame) in frames.iter().enumerate() {
        let runtime = frame.function.starts_with("runtime.");
        if (runtime && !only_runtime)
            || frame.function == "runtime.goexit"
            || is_gowrap(&frame.function)
        {
            continue;
        }
        if kept.len() == max_frames {
            return true;
        }
        kept.push(i);
    }
    false
}

/// `main.spawn.gowrap1`: the wrapper Go 1.22+ makes for `go f(x)`.
fn is_gowrap(function: &str) -> bool {
    function
        .rsplit('.')
        .next()
        .and_then(|last| last.strip_prefix("gowrap"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `s` cut to at most `max` bytes, on a character boundary.
pub(crate) fn cap_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn bump_state(states: &mut Vec<StateCount>, state: &str, count: u64) {
    let state = cap_str(state, 128);
    if let Some(existing) = states.iter_mut().find(|s| s.state == state) {
        existing.count = existing.count.saturating_add(count);
        return;
    }
    if states.len() < MAX_STATES {
        states.push(StateCount {
            state: state.to_string(),
            count,
        });
    } else if let Some(other) = states.iter_mut().find(|s| s.state == "other") {
        other.count = other.count.saturating_add(count);
    } else if let Some(last) = states.last_mut() {
        // Make room: the last slot becomes the catch-all.
        last.state = "other".to_string();
        last.count = last.count.saturating_add(count);
    }
}

fn bump_site(sites: &mut Vec<(Option<u32>, u64)>, site: Option<u32>, count: u64) {
    if let Some(existing) = sites.iter_mut().find(|c| c.0 == site) {
        existing.1 = existing.1.saturating_add(count);
    } else if sites.len() < MAX_SITES_PER_GROUP {
        sites.push((site, count));
    } else if let Some(none) = sites.iter_mut().find(|c| c.0.is_none()) {
        none.1 = none.1.saturating_add(count);
    } else if let Some(last) = sites.last_mut() {
        last.0 = None;
        last.1 = last.1.saturating_add(count);
    }
}

fn push_sample(ids: &mut Vec<u64>, id: Option<u64>) {
    if let Some(id) = id {
        if ids.len() < MAX_SAMPLE_IDS && !ids.contains(&id) {
            ids.push(id);
        }
    }
}

fn empty_group(frames: Vec<Frame>, states_inferred: bool) -> Group {
    Group {
        frames,
        frames_elided: false,
        count: 0,
        states: Vec::new(),
        states_inferred,
        leaked: 0,
        locked_to_thread: 0,
        wait_minutes_min: None,
        wait_minutes_max: None,
        created_by: Vec::new(),
        creator_ids: Vec::new(),
        goroutine_ids: Vec::new(),
    }
}

fn empty_site(site: Option<CreationSite>) -> CreationGroup {
    CreationGroup {
        site,
        count: 0,
        states: Vec::new(),
        leaked: 0,
        wait_minutes_max: None,
        stacks: 0,
    }
}

/// FNV-1a, 64 bits: fast on the short keys stacks make, no allocation.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    /// Mixes in eight bytes per step (byte-wise FNV-1a was the costliest part of
    /// grouping a big dump), the last, partial word tagged with its length. Every
    /// step is a bijection of the state; equal hashes are still compared in full
    /// by the callers, so a collision costs time, never a wrong group.
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        word[7] = rest.len() as u8;
        self.mix(u64::from_le_bytes(word));
    }
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word)
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> ScratchFrame {
        ScratchFrame {
            function: function.into(),
            file: "f.go".into(),
            line: 1,
        }
    }

    #[test]
    fn key_leaves_out_scheduler_frames_and_wrappers() {
        let frames = [
            frame("runtime.gopark"),
            frame("runtime.chanrecv1"),
            frame("main.worker"),
            frame("main.spawn.gowrap1"),
            frame("runtime.main"),
            frame("runtime.goexit"),
        ];
        let mut kept = Vec::new();
        assert!(!select_key_frames(&frames, 64, &mut kept));
        assert_eq!(kept, vec![2]);
        let runtime_only = [
            frame("runtime.gopark"),
            frame("runtime.forcegchelper"),
            frame("runtime.goexit"),
        ];
        select_key_frames(&runtime_only, 64, &mut kept);
        assert_eq!(kept, vec![0, 1]);
        assert!(select_key_frames(&frames[..3], 0, &mut kept));
    }

    #[test]
    fn caps_groups_into_the_overflow() {
        let limits = Limits {
            max_groups: 1,
            ..Limits::default()
        };
        let mut agg = Aggregator::new(limits, false);
        let a = [frame("main.a")];
        let b = [frame("main.b")];
        for frames in [&a[..], &b[..], &a[..]] {
            agg.add(
                &Record {
                    frames,
                    state: Some("select"),
                    ..Record::default()
                },
                1,
            );
        }
        let (groups, sites, overflow) = agg.finish();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].count, 2);
        assert_eq!(overflow.goroutines, 1);
        assert_eq!(sites[0].count, 3);
    }

    #[test]
    fn cap_str_respects_char_boundaries() {
        assert_eq!(cap_str("héllo", 2), "h");
        assert_eq!(cap_str("abc", 10), "abc");
    }
}
