//! A memory limit: bytes, or no limit at all.

use crate::ParseError;
use std::fmt;

/// The smallest value cgroup v1 prints for "no limit".
///
/// v1 has no word for unlimited: it prints `PAGE_COUNTER_MAX * PAGE_SIZE`, i.e.
/// `i64::MAX` rounded down to the page size (9223372036854771712 with 4 KiB
/// pages). Rounding down to 64 KiB covers every page size Linux uses.
const V1_UNLIMITED_FLOOR: u64 = (i64::MAX as u64) & !0xFFFF;

/// A memory limit as the kernel states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No limit (`max` in v2, the page-counter maximum in v1).
    Max,
    /// A limit of this many bytes.
    Bytes(u64),
}

impl Limit {
    /// Parses a v2 limit file (`memory.max`, `memory.high`, `memory.swap.max`, ...):
    /// `max` or a decimal number of bytes.
    pub fn parse_v2(input: &str, text: &str) -> Result<Limit, ParseError> {
        let value = single_value(input, text)?;
        if value == "max" {
            return Ok(Limit::Max);
        }
        parse_bytes(input, value).map(Limit::Bytes)
    }

    /// Parses a v1 limit file (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`,
    /// `memory.soft_limit_in_bytes`): a decimal number of bytes, where the
    /// page-counter maximum means no limit.
    pub fn parse_v1(input: &str, text: &str) -> Result<Limit, ParseError> {
        let value = single_value(input, text)?;
        // "-1" is what users write; the kernel never prints it, but be kind.
        if value == "-1" {
            return Ok(Limit::Max);
        }
        let bytes = parse_bytes(input, value)?;
        Ok(if bytes >= V1_UNLIMITED_FLOOR {
            Limit::Max
        } else {
            Limit::Bytes(bytes)
        })
    }

    /// The limit in bytes, or `None` when there is none.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Max => None,
            Limit::Bytes(b) => Some(b),
        }
    }

    /// The tighter of two limits.
    pub fn tightest(self, other: Limit) -> Limit {
        match (self, other) {
            (Limit::Max, x) | (x, Limit::Max) => x,
            (Limit::Bytes(a), Limit::Bytes(b)) => Limit::Bytes(a.min(b)),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Max => f.write_str("max"),
            Limit::Bytes(b) => write!(f, "{b}"),
        }
    }
}

/// The one value of a single-value file, with surrounding whitespace removed.
fn single_value<'a>(input: &str, text: &'a str) -> Result<&'a str, ParseError> {
    let mut words = text.split_whitespace();
    let value = words
        .next()
        .ok_or_else(|| ParseError::new(input, "empty file, expected one value"))?;
    if words.next().is_some() {
        return Err(ParseError::new(
            input,
            format!("expected one value, found more: {:?}", text.trim()),
        ));
    }
    Ok(value)
}

fn parse_bytes(input: &str, value: &str) -> Result<u64, ParseError> {
    value.parse::<u64>().map_err(|_| {
        ParseError::new(
            input,
            format!("expected a number of bytes or \"max\", found {value:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_page_counter_max_is_no_limit() {
        // Captured from /sys/fs/cgroup/memory/memory.limit_in_bytes, Linux 6.18.
        let text = include_str!("../../testdata/linux6.18-v1-root/memory.limit_in_bytes");
        assert_eq!(
            Limit::parse_v1("memory.limit_in_bytes", text).unwrap(),
            Limit::Max
        );
    }

    #[test]
    fn v1_number_is_bytes() {
        assert_eq!(
            Limit::parse_v1("memory.limit_in_bytes", "134217728\n").unwrap(),
            Limit::Bytes(134_217_728)
        );
    }

    #[test]
    fn v2_max_and_bytes() {
        assert_eq!(Limit::parse_v2("memory.max", "max\n").unwrap(), Limit::Max);
        assert_eq!(
            Limit::parse_v2("memory.max", "268435456\n").unwrap(),
            Limit::Bytes(268_435_456)
        );
    }

    #[test]
    fn bad_values_name_the_input() {
        let err = Limit::parse_v2("memory.max", "lots\n").unwrap_err();
        assert_eq!(err.input, "memory.max");
        assert!(err.to_string().contains("\"lots\""), "{err}");
        let err = Limit::parse_v1("memory.limit_in_bytes", "").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(Limit::parse_v2("memory.max", "1 2").is_err());
    }

    #[test]
    fn tightest_prefers_a_number_over_max() {
        assert_eq!(Limit::Max.tightest(Limit::Bytes(5)), Limit::Bytes(5));
        assert_eq!(Limit::Bytes(7).tightest(Limit::Bytes(5)), Limit::Bytes(5));
        assert_eq!(Limit::Max.tightest(Limit::Max), Limit::Max);
    }
}
