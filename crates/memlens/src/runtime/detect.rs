//! What a saved file (or a fetched body) given to `memlens runtime` holds:
//! expvar JSON, Prometheus text, gctrace lines or a `?debug=1` goroutine dump.
//! Pure: bytes in, [`Format`] out, judged from the first lines only.

/// The kinds of input `memlens runtime` reads from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// expvar `/debug/vars` JSON (an object).
    Expvar,
    /// Prometheus text exposition (`/metrics`).
    Prometheus,
    /// `GODEBUG=gctrace=1` output (a program's stderr).
    Gctrace,
    /// `/debug/pprof/goroutine?debug=1` (`goroutine profile: total N`).
    GoroutineDebug1,
}

impl Format {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Expvar => "expvar JSON",
            Format::Prometheus => "Prometheus text",
            Format::Gctrace => "gctrace lines",
            Format::GoroutineDebug1 => "a goroutine profile (debug=1)",
        }
    }
}

/// How many non-empty lines are looked at to decide.
const LINES_LOOKED_AT: usize = 200;

/// Decides what `bytes` holds, or says why it is none of the known kinds.
pub fn detect(bytes: &[u8]) -> Result<Format, String> {
    let head = &bytes[..bytes.len().min(1 << 20)];
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.is_empty() {
        return Err("it is empty".to_string());
    }
    if trimmed.starts_with('{') {
        return Ok(Format::Expvar);
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(
            "it is gzip (a pprof profile?): memlens runtime reads expvar JSON, Prometheus \
             text or gctrace lines; use memlens heap for profiles"
                .to_string(),
        );
    }
    let mut prometheus_lines = 0usize;
    for line in trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(LINES_LOOKED_AT)
    {
        if goroutine_total(line).is_some() {
            return Ok(Format::GoroutineDebug1);
        }
        if is_gc_line(line) {
            return Ok(Format::Gctrace);
        }
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || is_sample_line(line) {
            prometheus_lines += 1;
        }
    }
    if prometheus_lines > 0 {
        return Ok(Format::Prometheus);
    }
    Err(
        "it is not expvar JSON, Prometheus text, gctrace lines or a goroutine profile \
         (debug=1)"
            .to_string(),
    )
}

/// `goroutine profile: total 105` → 105.
pub fn goroutine_total(line: &str) -> Option<u64> {
    line.trim()
        .strip_prefix("goroutine profile: total ")?
        .trim()
        .parse()
        .ok()
}

/// `gc 12 @3.456s ...`.
fn is_gc_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("gc ") else {
        return false;
    };
    let mut parts = rest.splitn(2, ' ');
    let number = parts.next().unwrap_or_default();
    let next = parts.next().unwrap_or_default();
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && next.starts_with('@')
}

/// `name{labels} value`: a metric name, then a number.
fn is_sample_line(line: &str) -> bool {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end == 0 || line.as_bytes()[0].is_ascii_digit() {
        return false;
    }
    let rest = &line[name_end..];
    let rest = if rest.starts_with('{') {
        match rest.rfind('}') {
            Some(close) => &rest[close + 1..],
            None => return false,
        }
    } else {
        rest
    };
    let value = rest.split_whitespace().next().unwrap_or_default();
    value.parse::<f64>().is_ok() || matches!(value, "NaN" | "+Inf" | "-Inf")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../goruntime/testdata/captures/"
        );
        std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn captures_named(part: &str) -> Vec<String> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../goruntime/testdata/captures"
        );
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(part))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn captured_inputs_are_recognised() {
        let cases = [
            ("expvar", Format::Expvar),
            ("metrics", Format::Prometheus),
            ("gctrace", Format::Gctrace),
            ("goroutine-debug1", Format::GoroutineDebug1),
        ];
        for (part, want) in cases {
            let names = captures_named(part);
            assert!(!names.is_empty(), "no capture named *{part}*");
            for name in names {
                assert_eq!(detect(&capture(&name)), Ok(want), "{name}");
            }
        }
    }

    #[test]
    fn other_inputs_are_refused_with_a_reason() {
        assert!(detect(b"").unwrap_err().contains("empty"));
        assert!(detect(b"\x1f\x8b\x08\x00").unwrap_err().contains("gzip"));
        assert!(detect(b"hello world\n").is_err());
        assert_eq!(
            detect(b"goroutine profile: total 7\n1 @ 0x1\n"),
            Ok(Format::GoroutineDebug1)
        );
        assert_eq!(detect(b"up 1\n"), Ok(Format::Prometheus));
        assert_eq!(detect(b"x{a=\"}\"} 1e3\n"), Ok(Format::Prometheus));
        assert!(detect(b"gc x @1s\n").is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: every prefix and byte flip of a mixed input.
        let base =
            b"# HELP go_x y\ngc 1 @0.1s 0%: goroutine profile: total 3\n{\"memstats\":{}}\xff\xfe";
        for len in 0..=base.len() {
            let _ = detect(&base[..len]);
            for flip in 0..len {
                let mut bytes = base[..len].to_vec();
                bytes[flip] ^= 0xa5;
                let _ = detect(&bytes);
            }
        }
    }
}
