//! Folded stacks (`root;caller;leaf`, value) to the tree a flame graph is
//! drawn from. For a difference, widths are the growth of each stack
//! (newer − older, stacks that shrank left out) and every node also carries
//! its newer and older totals.

use serde_json::{json, Value};
use std::collections::HashMap;

/// Nodes narrower than this fraction of the root are folded into their
/// parent (they would be under a pixel wide; keeps the JSON small).
const MIN_FRACTION: f64 = 1.0 / 5000.0;

/// One frame of a flame graph: its width and its callees.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlameNode {
    /// The function (the root is `all`).
    pub name: String,
    /// The width: the value (or the growth) of the stacks through it.
    pub value: u64,
    /// For a difference: the newer profile's value through this node.
    pub newer: Option<u64>,
    /// For a difference: the older profile's value through this node.
    pub older: Option<u64>,
    /// Callees, widest first.
    pub children: Vec<FlameNode>,
}

impl FlameNode {
    fn child(&mut self, name: &str) -> &mut FlameNode {
        let at = match self.children.iter().position(|c| c.name == name) {
            Some(at) => at,
            None => {
                self.children.push(FlameNode {
                    name: name.to_string(),
                    ..FlameNode::default()
                });
                self.children.len() - 1
            }
        };
        &mut self.children[at]
    }

    fn add(&mut self, stack: &str, value: u64, newer: Option<u64>, older: Option<u64>) {
        let bump = |n: &mut FlameNode| {
            n.value += value;
            if let Some(v) = newer {
                *n.newer.get_or_insert(0) += v;
            }
            if let Some(v) = older {
                *n.older.get_or_insert(0) += v;
            }
        };
        bump(self);
        let mut node = self;
        for frame in stack.split(';') {
            node = node.child(frame);
            bump(node);
        }
    }

    fn finish(&mut self, min_value: u64) {
        self.children.retain(|c| c.value >= min_value.max(1));
        self.children
            .sort_by(|a, b| b.value.cmp(&a.value).then(a.name.cmp(&b.name)));
        for c in &mut self.children {
            c.finish(min_value);
        }
    }

    /// The node as JSON: `{"n": name, "v": value, "c": [...]}` (with `new`
    /// and `old` in a difference).
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "n": self.name, "v": self.value });
        if let Some(n) = self.newer {
            v["new"] = json!(n);
        }
        if let Some(o) = self.older {
            v["old"] = json!(o);
        }
        if !self.children.is_empty() {
            v["c"] = Value::Array(self.children.iter().map(FlameNode::to_json).collect());
        }
        v
    }

    /// The frame with the most width of its own (not passed to callees).
    pub fn widest_self(&self) -> Option<(&str, u64)> {
        let own = self.value - self.children.iter().map(|c| c.value).sum::<u64>();
        let mut best = (self.name != "all" && own > 0).then_some((self.name.as_str(), own));
        for c in &self.children {
            if let Some(found) = c.widest_self() {
                if best.is_none_or(|b| found.1 > b.1) {
                    best = Some(found);
                }
            }
        }
        best
    }
}

fn root() -> FlameNode {
    FlameNode {
        name: "all".to_string(),
        ..FlameNode::default()
    }
}

fn min_value(total: u64) -> u64 {
    (total as f64 * MIN_FRACTION) as u64
}

/// The tree of one profile's folded stacks.
pub fn flame_tree(stacks: &[(String, u64)]) -> FlameNode {
    let mut tree = root();
    for (stack, value) in stacks {
        tree.add(stack, *value, None, None);
    }
    let min = min_value(tree.value);
    tree.finish(min);
    tree
}

/// The growth from `older` to `newer`: each stack's width is how much it
/// grew (stacks that shrank or stayed are left out).
pub fn diff_tree(older: &[(String, u64)], newer: &[(String, u64)]) -> FlameNode {
    let old: HashMap<&str, u64> = older.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    let mut tree = root();
    tree.newer = Some(0);
    tree.older = Some(0);
    for (stack, value) in newer {
        let before = old.get(stack.as_str()).copied().unwrap_or(0);
        let growth = value.saturating_sub(before);
        if growth > 0 {
            tree.add(stack, growth, Some(*value), Some(before));
        }
    }
    let min = min_value(tree.value);
    tree.finish(min);
    tree
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_goruntime::pprof::{folded_stacks, Profile};

    fn stacks(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(s, v)| (s.to_string(), *v)).collect()
    }

    #[test]
    fn sums_shared_prefixes_widest_first() {
        let tree = flame_tree(&stacks(&[("main;a;x", 3), ("main;b", 5), ("main;a;y", 4)]));
        assert_eq!(tree.value, 12);
        let main = &tree.children[0];
        assert_eq!((main.name.as_str(), main.value), ("main", 12));
        let names: Vec<_> = main
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.value))
            .collect();
        assert_eq!(names, [("a", 7), ("b", 5)]);
        assert_eq!(tree.widest_self(), Some(("b", 5)));
    }

    #[test]
    fn difference_is_growth_only() {
        let older = stacks(&[("main;leak", 10), ("main;churn", 50)]);
        let newer = stacks(&[("main;leak", 40), ("main;churn", 20), ("main;new", 5)]);
        let tree = diff_tree(&older, &newer);
        assert_eq!(tree.value, 35);
        let main = &tree.children[0];
        let kids: Vec<_> = main
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.value, c.newer, c.older))
            .collect();
        assert_eq!(
            kids,
            [
                ("leak", 30, Some(40), Some(10)),
                ("new", 5, Some(5), Some(0))
            ]
        );
    }

    #[test]
    fn tiny_frames_are_folded() {
        let tree = flame_tree(&stacks(&[("main;big", 1_000_000), ("main;tiny", 1)]));
        assert_eq!(tree.children[0].children.len(), 1);
        assert_eq!(tree.children[0].value, 1_000_001);
    }

    #[test]
    fn a_captured_heap_profile_has_the_top_of_go_tool_pprof() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../goruntime/testdata/heap-text/"
        );
        let bytes = std::fs::read(format!("{dir}go1.27-heap.pb.gz")).unwrap();
        let profile = Profile::decode_any(&bytes).unwrap();
        let index = profile.require_sample_type("inuse_space").unwrap();
        let tree = flame_tree(&folded_stacks(&profile, index).unwrap());
        // go tool pprof -top's first row (flat, the most bytes of its own).
        let top =
            std::fs::read_to_string(format!("{dir}go1.27-heap.pb.gz.top-inuse_space.txt")).unwrap();
        let first = top
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("flat"))
            .nth(1)
            .unwrap();
        let function = first.split_whitespace().nth(5).unwrap();
        assert_eq!(tree.widest_self().unwrap().0, function, "{first}");
    }
}
