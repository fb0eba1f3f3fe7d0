//! Which legacy (pre-protobuf) profile format some bytes are, from their first
//! line or first words: Go's text heap profile is read
//! ([`super::legacy_heap`]), every other one is named in the error that
//! refuses it.
//!
//! The formats are those `go tool pprof`'s legacy parsers know
//! (`profile/legacy_profile.go` of github.com/google/pprof): Go's
//! `heap profile: ... @ heap/RATE`, the gperftools/tcmalloc heap variants
//! (`heapz_v2/`, `heap_v2/`, `heapprofile`, `growthz`, `fragmentationz`),
//! contention and mutex profiles (`--- contention:`, `--- mutex:`), thread
//! dumps (`--- threadz`), Go's count profiles in text
//! (`goroutine profile: total N`) and the binary CPU profile of gperftools.

/// What [`sniff`] recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Legacy {
    /// Go's text heap profile (`heap?debug=1`): read by [`super::legacy_heap`].
    GoHeap,
    /// Another legacy format, described for the error that refuses it.
    Refused(String),
}

/// Names the legacy format of `bytes` (already gunzipped), or `None` when they
/// look like none of them (then they may be a protobuf).
pub(super) fn sniff(bytes: &[u8]) -> Option<Legacy> {
    if let Some(what) = binary_cpu(bytes) {
        return Some(Legacy::Refused(what.to_string()));
    }
    let head = &bytes[..bytes.len().min(256)];
    let text = String::from_utf8_lossy(head);
    let first = text.trim_start().lines().next().unwrap_or("");
    if let Some(rest) = first.strip_prefix("heap profile:") {
        return Some(heap_variant(rest));
    }
    if let Some(rest) = first.strip_prefix("--- ") {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let what = match word.as_str() {
            "contention" => "a Go contention (block) profile in the legacy text format (`--- contention:`, debug=1)".to_string(),
            "mutex" => "a Go mutex profile in the legacy text format (`--- mutex:`, debug=1)".to_string(),
            "contentionz" => "a contentionz profile (C++ legacy text, `--- contentionz`)".to_string(),
            "threadz" => "a threadz dump (legacy text, `--- threadz`)".to_string(),
            "heapz" | "heap" => "a Java heapz profile (legacy text, `--- heapz`)".to_string(),
            "cpuz" | "cpu" => "a Java CPU profile (legacy text, `--- cpuz`)".to_string(),
            _ => format!("a legacy text profile starting `--- {word}`"),
        };
        return Some(Legacy::Refused(what));
    }
    if let Some((kind, _)) = first.split_once(" profile: total ") {
        if !kind.is_empty() && !kind.contains(char::is_whitespace) {
            return Some(Legacy::Refused(format!(
                "a Go {kind} profile in text (`{kind} profile: total N`, debug=1); fetch it with debug=0"
            )));
        }
    }
    None
}

/// The sampling word after `@` in a `heap profile:` header: only Go's `heap`
/// (with `/2*MemProfileRate`) is read.
fn heap_variant(rest: &str) -> Legacy {
    let after_at = match rest.split_once('@') {
        Some((_, after)) => after.trim_start(),
        // Go's header with its end missing: the parser names what is wrong.
        None => return Legacy::GoHeap,
    };
    let word: String = after_at
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let what = match word.as_str() {
        "heap" => return Legacy::GoHeap,
        "heapz_v2" | "heap_v2" => {
            format!("a gperftools/tcmalloc heap profile (`@ {word}/`, sampling v2)")
        }
        "heapprofile" => "a gperftools heap profile (`@ heapprofile`, unsampled)".to_string(),
        "growth" | "growthz" => format!("a heap growth profile (`@ {word}`)"),
        "fragmentation" | "fragmentationz" => {
            format!("a heap fragmentation profile (`@ {word}`)")
        }
        "" => "a `heap profile:` header with no sampling after `@`".to_string(),
        _ => format!("a heap profile with unknown sampling `@ {word}`"),
    };
    Legacy::Refused(what)
}

/// The gperftools CPU profile: a header of words 0, 3, 0 (count, header
/// words, version), 32 or 64 bits wide, little or big endian.
fn binary_cpu(bytes: &[u8]) -> Option<&'static str> {
    let words = |width: usize, big: bool| -> Option<[u64; 3]> {
        let mut out = [0u64; 3];
        for (i, slot) in out.iter_mut().enumerate() {
            let b = bytes.get(i * width..(i + 1) * width)?;
            *slot = b.iter().enumerate().fold(0u64, |acc, (j, &byte)| {
                let shift = if big { (width - 1 - j) * 8 } else { j * 8 };
                acc | (u64::from(byte) << shift)
            });
        }
        Some(out)
    };
    let is_header = |w: Option<[u64; 3]>| w == Some([0, 3, 0]);
    if [(8, false), (8, true), (4, false), (4, true)]
        .iter()
        .any(|&(width, big)| is_header(words(width, big)))
    {
        Some("a legacy binary CPU profile (gperftools format); fetch the CPU profile as protobuf")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &[u8]) -> String {
        match sniff(text) {
            Some(Legacy::Refused(what)) => what,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
        }
    }

    #[test]
    fn go_heap_is_read_and_the_others_are_named() {
        assert_eq!(
            sniff(b"heap profile: 1: 2 [3: 4] @ heap/1048576\n"),
            Some(Legacy::GoHeap)
        );
        assert!(refused(b"heap profile: 1: 2 [3: 4] @ heap_v2/524288\n").contains("heap_v2"));
        assert!(refused(b"heap profile: 1: 2 [3: 4] @ heapz_v2/524288\n").contains("heapz_v2"));
        assert!(refused(b"heap profile: 1: 2 [3: 4] @ growthz\n").contains("growth"));
        assert!(refused(b"heap profile: 1: 2 [3: 4] @ heapprofile\n").contains("heapprofile"));
        assert!(refused(b"--- contention:\ncycles/second=1\n").contains("contention"));
        assert!(refused(b"--- mutex:\ncycles/second=1\n").contains("mutex"));
        assert!(refused(b"goroutine profile: total 4\n").contains("goroutine profile"));
        assert!(refused(b"threadcreate profile: total 4\n").contains("threadcreate"));
        let mut cpu = vec![0u8; 8];
        cpu.extend_from_slice(&3u64.to_le_bytes());
        cpu.extend_from_slice(&[0; 8]);
        assert!(refused(&cpu).contains("CPU"));
        let mut cpu32 = vec![0u8; 4];
        cpu32.extend_from_slice(&3u32.to_be_bytes());
        cpu32.extend_from_slice(&[0; 4]);
        assert!(refused(&cpu32).contains("CPU"));
    }

    #[test]
    fn protobuf_and_other_text_are_not_legacy() {
        assert_eq!(sniff(&[0x0a, 0x04, 0x08, 0x01]), None);
        assert_eq!(sniff(b"goroutine 1 [running]:\n"), None);
        assert_eq!(sniff(b""), None);
    }
}
