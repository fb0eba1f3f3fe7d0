//! The "flat keyed" files of the memory controller: one `key value` pair a line.
//!
//! `memory.events`, `memory.events.local`, `memory.stat` (v1 and v2) and v1's
//! `memory.oom_control` all have this shape.

use crate::ParseError;

/// The pairs of a flat keyed file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlatKeyed {
    /// `(key, value)` pairs as they appear in the file.
    pub entries: Vec<(String, u64)>,
}

impl FlatKeyed {
    /// Parses `text`, the contents of the file named `input`.
    ///
    /// Empty lines are ignored. A line that is not `key <u64>` is an error naming
    /// the line.
    pub fn parse(input: &str, text: &str) -> Result<FlatKeyed, ParseError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
                return Err(ParseError::at_line(
                    input,
                    index + 1,
                    format!("expected \"key value\", found {line:?}"),
                ));
            };
            let value = value.parse::<u64>().map_err(|_| {
                ParseError::at_line(
                    input,
                    index + 1,
                    format!("value of {key:?} is not a whole number: {value:?}"),
                )
            })?;
            entries.push((key.to_string(), value));
        }
        Ok(FlatKeyed { entries })
    }

    /// The value of `key`, if the file has it (files differ between kernel versions).
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_oom_control_after_a_kill() {
        // Captured from a test cgroup right after the kernel OOM-killed heap-leak.
        let text = include_str!("../../testdata/linux6.18-v1-oomkilled/memory.oom_control");
        let parsed = FlatKeyed::parse("memory.oom_control", text).unwrap();
        assert_eq!(parsed.get("oom_kill_disable"), Some(0));
        assert!(parsed.get("oom_kill").unwrap() >= 1);
    }

    #[test]
    fn v1_root_stat_has_known_keys() {
        let text = include_str!("../../testdata/linux6.18-v1-root/memory.stat");
        let parsed = FlatKeyed::parse("memory.stat", text).unwrap();
        for key in [
            "cache",
            "rss",
            "mapped_file",
            "total_rss",
            "hierarchical_memory_limit",
        ] {
            assert!(parsed.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn missing_key_is_none() {
        let parsed = FlatKeyed::parse("memory.events", "oom 1\n").unwrap();
        assert_eq!(parsed.get("oom_kill"), None);
    }

    #[test]
    fn malformed_lines_are_named() {
        let err = FlatKeyed::parse("memory.events", "low 0\nhigh\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.input, "memory.events");
        let err = FlatKeyed::parse("memory.events", "low -3\n").unwrap_err();
        assert!(err.to_string().contains("not a whole number"), "{err}");
        let err = FlatKeyed::parse("memory.stat", "a 1 2\n").unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn truncated_file_keeps_whole_lines() {
        // A read cut right after a key leaves it without a value: an error, not a panic.
        let text = include_str!("../../testdata/linux6.18-v1-root/memory.stat");
        let cut = &text[..text.find("rss ").unwrap() + 3];
        let err = FlatKeyed::parse("memory.stat", cut).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }
}
