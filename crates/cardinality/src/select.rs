//! Which processes get series: all, only Go programs, or the largest N by
//! resident memory at each instant. The host, cgroups and MySQL/MariaDB
//! servers always get theirs.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::hash::Hash;

/// The processes that get series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Processes {
    /// Every watched process.
    #[default]
    All,
    /// Only Go programs.
    Go,
    /// The `top_processes` largest by RSS at each instant.
    Top,
}

impl Processes {
    /// The config's word (`all`, `go`, `top`).
    pub fn as_str(self) -> &'static str {
        match self {
            Processes::All => "all",
            Processes::Go => "go",
            Processes::Top => "top",
        }
    }
}

/// One candidate process: its key, its RSS (unknown ranks last) and
/// whether it is a Go program.
#[derive(Debug, Clone)]
pub struct Candidate<K> {
    /// Whose.
    pub key: K,
    /// Resident bytes, when known.
    pub rss_bytes: Option<f64>,
    /// A Go program.
    pub go: bool,
}

/// The keys of the candidates that get series under `mode` (`top` keeps
/// the `top` largest; ties go to the smaller key, so the choice is stable).
pub fn selected<K: Hash + Eq + Clone + Ord>(
    mode: Processes,
    top: usize,
    candidates: &[Candidate<K>],
) -> HashSet<K> {
    match mode {
        Processes::All => candidates.iter().map(|c| c.key.clone()).collect(),
        Processes::Go => candidates
            .iter()
            .filter(|c| c.go)
            .map(|c| c.key.clone())
            .collect(),
        Processes::Top => {
            let mut ranked: Vec<&Candidate<K>> = candidates.iter().collect();
            ranked.sort_by(|a, b| {
                let rss = |c: &Candidate<K>| c.rss_bytes.unwrap_or(f64::NEG_INFINITY);
                rss(b).total_cmp(&rss(a)).then_with(|| a.key.cmp(&b.key))
            });
            ranked
                .into_iter()
                .take(top)
                .map(|c| c.key.clone())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_go_and_the_largest() {
        let c = |key: u32, rss: Option<f64>, go: bool| Candidate {
            key,
            rss_bytes: rss,
            go,
        };
        let all = [
            c(1, Some(10.0), false),
            c(2, Some(30.0), true),
            c(3, None, true),
            c(4, Some(20.0), false),
        ];
        let sorted = |s: HashSet<u32>| {
            let mut v: Vec<u32> = s.into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(sorted(selected(Processes::All, 0, &all)), [1, 2, 3, 4]);
        assert_eq!(sorted(selected(Processes::Go, 0, &all)), [2, 3]);
        assert_eq!(sorted(selected(Processes::Top, 2, &all)), [2, 4]);
        assert_eq!(sorted(selected(Processes::Top, 9, &all)), [1, 2, 3, 4]);
        assert!(selected(Processes::Top, 0, &all).is_empty());
    }
}
