//! A streaming summary of `/proc/PID/maps`.
//!
//! A big process has 100k+ mappings; the summary is built line by line
//! ([`MapsAccumulator`]) and keeps no line, so memory stays constant.

use crate::ParseError;

/// What memlens wants to know about a process's mappings.
///
/// Rules:
/// - `[vsyscall]` is left out of every count: it is not in the process's VMA
///   tree, so `vma_count` is the kernel's `map_count` (what `vm.max_map_count`
///   limits) and `total_mapped_bytes` equals `VmSize` in `status`.
/// - A mapping is *anonymous* when it has no path, or its name is `[heap]`,
///   `[stack]`, `[anon:NAME]` or `[anon_shmem:NAME]` (names given with
///   `PR_SET_VMA_ANON_NAME`). `[vdso]`, `[vvar]`, `/dev/zero (deleted)`,
///   `/memfd:...` and every other path are not.
/// - The *largest gap* is the largest free address range between two consecutive
///   mappings, both below the start of `[stack]` (the gap that ends at the stack
///   counts). Without a `[stack]` line (kernel threads, odd layouts), every gap
///   between mappings other than `[vsyscall]` counts. When two gaps tie, the lower
///   one is reported. On x86-64 the hole between a program's low mappings (binary,
///   brk heap, Go arenas) and the mmap area near the stack is usually the largest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapsSummary {
    /// Mappings (VMAs), `[vsyscall]` left out.
    pub vma_count: u64,
    /// Anonymous mappings (see the rules above).
    pub anon_vma_count: u64,
    /// Sum of the mapping sizes, `[vsyscall]` left out (= `VmSize`).
    pub total_mapped_bytes: u64,
    /// The largest free range between consecutive mappings below `[stack]`; 0 when
    /// there are fewer than two mappings or they all touch.
    pub largest_gap_bytes: u64,
    /// Where that free range starts (the end of the mapping below it).
    pub largest_gap_start: Option<u64>,
}

impl MapsSummary {
    /// Summarises a whole maps text; `input` names it in errors.
    ///
    /// An empty text is valid (kernel threads and zombies have no mappings) and
    /// gives an all-zero summary.
    pub fn parse(input: &str, text: &str) -> Result<MapsSummary, ParseError> {
        let mut acc = MapsAccumulator::new(input);
        for (index, line) in text.lines().enumerate() {
            acc.push_line(index + 1, line)?;
        }
        Ok(acc.finish())
    }
}

/// Builds a [`MapsSummary`] one line at a time, for readers that stream the file.
#[derive(Debug, Clone)]
pub struct MapsAccumulator {
    input: String,
    summary: MapsSummary,
    /// End of the previous mapping (any, `[vsyscall]` included), to see order.
    prev_end: Option<u64>,
    /// Set once `[stack]` is seen: gaps above it no longer count.
    stack_seen: bool,
}

impl MapsAccumulator {
    /// A new, empty summary; `input` names the file in errors (e.g. `/proc/1/maps`).
    pub fn new(input: &str) -> MapsAccumulator {
        MapsAccumulator {
            input: input.to_string(),
            summary: MapsSummary::default(),
            prev_end: None,
            stack_seen: false,
        }
    }

    /// Adds one line (`line_no` is 1-based, for errors). Blank lines are skipped.
    ///
    /// Lines must come in ascending address order, as the kernel writes them; a
    /// mapping that starts below the end of the one before is an error.
    pub fn push_line(&mut self, line_no: usize, line: &str) -> Result<(), ParseError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let bad = |why: String| ParseError::at_line(&self.input, line_no, why);
        let mut rest = line;
        let mut next = |what: &str| {
            next_word(&mut rest).ok_or_else(|| bad(format!("no {what} (cut short?): {line:?}")))
        };
        let range = next("address range")?;
        let perms = next("permissions")?;
        let offset = next("offset")?;
        let device = next("device")?;
        let inode = next("inode")?;
        let path = rest.trim();

        let (start, end) = range
            .split_once('-')
            .and_then(|(s, e)| Some((hex(s)?, hex(e)?)))
            .ok_or_else(|| bad(format!("expected \"start-end\" in hex, found {range:?}")))?;
        if end <= start {
            return Err(bad(format!("mapping {range} is empty or reversed")));
        }
        if perms.len() != 4 || !perms.bytes().all(|b| b"rwxps-".contains(&b)) {
            return Err(bad(format!("bad permissions {perms:?}")));
        }
        let device_ok = device
            .split_once(':')
            .is_some_and(|(major, minor)| hex(major).is_some() && hex(minor).is_some());
        if hex(offset).is_none() || !device_ok || inode.parse::<u64>().is_err() {
            return Err(bad(format!(
                "expected \"offset dev inode\", found {offset:?} {device:?} {inode:?}"
            )));
        }
        if let Some(prev_end) = self.prev_end {
            if start < prev_end {
                return Err(bad(format!(
                    "mapping at {start:#x} starts below the end of the previous one ({prev_end:#x}): lines out of order"
                )));
            }
        }
        let previous = self.prev_end.replace(end);
        if path == "[vsyscall]" {
            return Ok(());
        }

        let s = &mut self.summary;
        s.vma_count += 1;
        s.total_mapped_bytes = s.total_mapped_bytes.saturating_add(end - start);
        if is_anonymous(path) {
            s.anon_vma_count += 1;
        }
        if !self.stack_seen {
            if let Some(gap_start) = previous {
                let gap = start - gap_start;
                if gap > s.largest_gap_bytes {
                    s.largest_gap_bytes = gap;
                    s.largest_gap_start = Some(gap_start);
                }
            }
            self.stack_seen = path == "[stack]";
        }
        Ok(())
    }

    /// The summary of the lines pushed so far.
    pub fn finish(self) -> MapsSummary {
        self.summary
    }
}

/// The anonymous-mapping rule documented on [`MapsSummary`].
fn is_anonymous(path: &str) -> bool {
    path.is_empty()
        || path == "[heap]"
        || path == "[stack]"
        || path.starts_with("[anon:")
        || path.starts_with("[anon_shmem:")
}

/// Takes the next whitespace-separated word off the front of `rest`.
fn next_word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let trimmed = rest.trim_start();
    if trimmed.is_empty() {
        return None;
    }
    let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let (word, tail) = trimmed.split_at(end);
    *rest = tail;
    Some(word)
}

fn hex(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GO: &str = include_str!("../../testdata/proc/linux6.18-maps-go1.19-mmap1000.txt");

    #[test]
    fn captured_go_process_with_1000_extra_mappings() {
        let m = MapsSummary::parse("maps", GO).unwrap();
        // The workload (`--mode mmap --mappings 1000`) printed
        // "MAPPINGS 1000 vmas_before=65 vmas_after=1065" (lines of its maps, with
        // [vsyscall]); a separate Python pass over this file at capture gave the
        // anonymous count 1048, the stack at 0x7fffd44d0000 and the largest gap
        // 139613079339008 bytes starting at 0xc004000000 (the end of the Go arenas).
        assert_eq!(GO.lines().count(), 1065);
        assert_eq!(m.vma_count, 1064);
        assert_eq!(m.anon_vma_count, 1048);
        // status at capture: VmSize 1169492 kB; [vsyscall] is not counted there.
        assert_eq!(m.total_mapped_bytes, 1_169_492 * 1024);
        assert_eq!(m.largest_gap_bytes, 139_613_079_339_008);
        assert_eq!(m.largest_gap_start, Some(0xc0_0400_0000));
    }

    #[test]
    fn accumulator_matches_parse() {
        let mut acc = MapsAccumulator::new("maps");
        for (i, line) in GO.lines().enumerate() {
            acc.push_line(i + 1, line).unwrap();
        }
        assert_eq!(acc.finish(), MapsSummary::parse("maps", GO).unwrap());
    }

    #[test]
    fn gaps_above_the_stack_do_not_count() {
        let text = "\
00400000-00401000 r-xp 00000000 08:01 12 /bin/prog with spaces (deleted)
00500000-00600000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 [anon:go arena]
7f0000002000-7f0000003000 rw-s 00000000 00:01 9 /dev/zero (deleted)
7ffff0000000-7ffff0021000 rw-p 00000000 00:00 0 [stack]
7ffff8000000-7ffff8002000 r-xp 00000000 00:00 0 [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";
        let m = MapsSummary::parse("maps", text).unwrap();
        assert_eq!(m.vma_count, 6);
        assert_eq!(m.anon_vma_count, 3); // heap, anon:go arena, stack
        assert_eq!(m.largest_gap_start, Some(0x600000));
        assert_eq!(m.largest_gap_bytes, 0x7f0000000000 - 0x600000);
        assert_eq!(
            m.total_mapped_bytes,
            0x1000 + 0x100000 + 0x1000 + 0x1000 + 0x21000 + 0x2000
        );
    }

    #[test]
    fn without_a_stack_every_gap_below_vsyscall_counts() {
        let text = "1000-2000 rw-p 00000000 00:00 0\n3000-4000 rw-p 00000000 00:00 0\n\
                    9000-a000 rw-p 00000000 00:00 0\n\
                    ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";
        let m = MapsSummary::parse("maps", text).unwrap();
        assert_eq!((m.vma_count, m.anon_vma_count), (3, 3));
        assert_eq!(
            (m.largest_gap_bytes, m.largest_gap_start),
            (0x5000, Some(0x4000))
        );
    }

    #[test]
    fn empty_maps_is_an_empty_summary() {
        // Kernel threads and zombies have an empty maps file.
        assert_eq!(
            MapsSummary::parse("maps", "").unwrap(),
            MapsSummary::default()
        );
        let one = MapsSummary::parse("maps", "1000-2000 rw-p 00000000 00:00 0\n").unwrap();
        assert_eq!((one.largest_gap_bytes, one.largest_gap_start), (0, None));
    }

    #[test]
    fn malformed_maps_is_named() {
        for (bad, why) in [
            ("1000-2000 rw-p 00000000 00:00", "inode"),
            ("1000-2000", "permissions"),
            ("1000 rw-p 00000000 00:00 0", "start-end"),
            ("1000-zz rw-p 00000000 00:00 0", "start-end"),
            ("2000-1000 rw-p 00000000 00:00 0", "reversed"),
            ("1000-2000 rwzp 00000000 00:00 0", "permissions"),
            ("1000-2000 rw-p 0000000g 00:00 0", "offset"),
            ("1000-2000 rw-p 00000000 0000 0", "offset"),
            ("1000-2000 rw-p 00000000 00:00 x", "offset"),
        ] {
            let err = MapsSummary::parse("/proc/3/maps", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("/proc/3/maps line 1: "),
                "{err}"
            );
            assert!(err.reason.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn out_of_order_or_overlapping_lines_are_an_error() {
        let text = "3000-4000 rw-p 00000000 00:00 0\n1000-2000 rw-p 00000000 00:00 0\n";
        let err = MapsSummary::parse("maps", text).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.reason.contains("out of order"), "{err}");
        let text = "1000-3000 rw-p 00000000 00:00 0\n2000-4000 rw-p 00000000 00:00 0\n";
        assert!(MapsSummary::parse("maps", text).is_err());
    }

    #[test]
    fn truncated_maps_is_an_error_when_a_line_is_cut() {
        let cut = &GO[..GO.find("\n7f").unwrap() + 10];
        let err = MapsSummary::parse("maps", cut).unwrap_err();
        assert_eq!(err.line, Some(cut.lines().count()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = MapsSummary::parse("maps", &text);
        }

        #[test]
        fn maps_like_text_never_panics(text in "([0-9a-f]{1,16}-[0-9a-f]{1,16} [rwxps-]{4} [0-9a-f]{1,8} [0-9]{2}:[0-9]{2} [0-9]{1,3}( \\[stack\\]| \\[vsyscall\\]| /x)?\n){0,8}") {
            if let Ok(m) = MapsSummary::parse("maps", &text) {
                prop_assert!(m.anon_vma_count <= m.vma_count);
            }
        }

        #[test]
        fn cut_fixture_never_panics(cut in 0..GO.len()) {
            let _ = MapsSummary::parse("maps", &GO[..cut]);
        }
    }
}
