//! Property tests of the goroutine dump reader: any input is either an analysis
//! or one error, never a panic, and what is read is consistent with the text
//! itself (counted independently here, by matching header lines).

use memlens_goruntime::goroutine::{read_dump, Analysis, GoroutineError, Limits};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Real dumps of several Go versions and formats, read once.
fn captures() -> &'static Vec<(String, Vec<u8>)> {
    static CAPTURES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CAPTURES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/captures");
        let names = [
            "go1.19.8-goroutine-leak-goroutine-debug2.txt",
            "go1.22.10-goroutine-leak-sigquit.txt",
            "go1.24.11-goroutine-leak-goroutine-debug1.txt",
            "go1.27.3-goroutine-leak-goroutine-debug2-after-leakcheck.txt",
            "go1.27.3-goroutine-leak-goroutine.pb.gz",
            "prometheus2.42.0-go1.19.8-goroutine-debug2.txt",
        ];
        names
            .iter()
            .map(|name| {
                let bytes =
                    std::fs::read(dir.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
                (name.to_string(), bytes)
            })
            .collect()
    })
}

fn analyse(bytes: &[u8], limits: Limits) -> Result<Analysis, GoroutineError> {
    read_dump(bytes, limits, &mut |_| {})
}

/// Goroutine headers of a `?debug=2` text, counted without the parser: lines
/// that start with `goroutine ` followed by digits and ` [`.
fn header_count(text: &[u8]) -> u64 {
    text.split(|&b| b == b'\n')
        .filter(|line| {
            let Some(rest) = line.strip_prefix(b"goroutine ") else {
                return false;
            };
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            digits > 0 && rest[digits..].starts_with(b" [")
        })
        .count() as u64
}

/// Small caps, so that the bounded paths (overflow, long lines, deep stacks) run.
fn tight_limits() -> Limits {
    Limits {
        max_line_bytes: 256,
        max_frames: 4,
        max_name_bytes: 32,
        max_groups: 3,
        ..Limits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = analyse(&bytes, Limits::default());
        let _ = analyse(&bytes, tight_limits());
    }

    #[test]
    fn mutated_captures_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let (_, original) = &captures()[which];
        let mut bytes = original.clone();
        for (at, byte) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = analyse(&bytes, Limits::default());
        let _ = analyse(&bytes, tight_limits());
    }

    /// A `?debug=2` dump cut at any line keeps every goroutine whose header
    /// was read, grouped or counted as overflow, whatever the caps.
    #[test]
    fn debug2_cut_at_a_line_counts_every_header(cut in any::<prop::sample::Index>(), tight in any::<bool>()) {
        let (name, text) = &captures()[0];
        let line_ends: Vec<usize> = text
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        let end = line_ends[cut.index(line_ends.len())];
        let prefix = &text[..end];
        let expected = header_count(prefix);
        prop_assume!(expected > 0);
        let limits = if tight { tight_limits() } else { Limits::default() };
        let analysis = analyse(prefix, limits).unwrap_or_else(|err| panic!("{name}[..{end}]: {err}"));
        prop_assert_eq!(analysis.total_goroutines, expected);
        let grouped: u64 = analysis.groups.iter().map(|g| g.count).sum();
        prop_assert_eq!(grouped + analysis.overflow.goroutines, expected);
        prop_assert!(analysis.groups.len() <= limits.max_groups);
        prop_assert!(analysis.groups.iter().all(|g| g.frames.len() <= limits.max_frames));
    }
}

#[test]
fn empty_and_blank_inputs_are_errors() {
    for input in [&b""[..], b"\n\n  \n"] {
        let err = analyse(input, Limits::default()).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn a_truncated_gzip_profile_is_one_error() {
    let (_, bytes) = &captures()[4];
    for keep in [2, 10, bytes.len() / 2, bytes.len() - 1] {
        let err = analyse(&bytes[..keep], Limits::default()).unwrap_err();
        assert!(!err.to_string().is_empty(), "cut at {keep}");
    }
}

#[test]
fn header_counts_agree_with_the_full_captures() {
    for (name, text) in captures() {
        if !name.ends_with("debug2.txt") && !name.ends_with("leakcheck.txt") {
            continue;
        }
        let analysis = analyse(text, Limits::default()).unwrap();
        assert_eq!(analysis.total_goroutines, header_count(text), "{name}");
    }
}
