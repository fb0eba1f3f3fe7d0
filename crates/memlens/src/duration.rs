//! Durations, one grammar for every flag and config key that takes one
//! (`watch --interval`, `diagnose --window`, `[fetch] timeout`, ...) and for
//! the relative times of `--from`/`--to`/`--at` (`-2h`).
//!
//! The grammar is Go's `time.ParseDuration` and Prometheus's durations:
//! numbers with units, largest unit first, each unit once (`500ms`, `5s`,
//! `2m`, `1h30m`, `1m30s`), fractions allowed as in Go (`1.5s`, `0.5h`), and
//! Prometheus's day, week and year (`2d`, `1w`, `1y`; a year is 365 days as in
//! Prometheus). Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`, `w`,
//! `y`. A bare number is seconds (`5`, `0.5`), so values written before
//! durations had units keep their meaning. A duration is never negative;
//! precision is the nanosecond (finer fractions are cut, as Go does).
//!
//! [`format`] writes a duration back so that [`parse`] reads the same value
//! (`5s`, `5m`, `1h30m`, `1s500ms`, `14d`), which Go and Prometheus read too
//! up to hours (Go has no `d`). [`config_value`] is the serde form of a
//! config key: a duration string or a number of seconds in, a string out.

use std::fmt;
use std::time::Duration;

/// The accepted syntax, said once at the end of the help of each subcommand
/// with DURATION flags.
pub const HELP: &str = "DURATION: a number with a unit, largest unit first \
(500ms, 5s, 2m, 1h30m, 1.5h, 7d; units ns, us, ms, s, m, h, d, w, y), or a bare \
number of seconds (5, 0.5).";

/// How to write one, for error messages.
const HINT: &str = "use 500ms, 5s, 2m, 1h30m or seconds";

const NANOS_PER_SECOND: u128 = 1_000_000_000;
const DAY_NANOS: u128 = 86_400 * NANOS_PER_SECOND;

/// Each unit, largest first, with its length in nanoseconds. Aliases share
/// a rank (the order units must come in).
const UNITS: [(&str, u128, u8); 11] = [
    ("y", 365 * DAY_NANOS, 0),
    ("w", 7 * DAY_NANOS, 1),
    ("d", DAY_NANOS, 2),
    ("h", 3_600 * NANOS_PER_SECOND, 3),
    ("m", 60 * NANOS_PER_SECOND, 4),
    ("s", NANOS_PER_SECOND, 5),
    ("ms", 1_000_000, 6),
    ("us", 1_000, 7),
    ("µs", 1_000, 7),
    ("μs", 1_000, 7),
    ("ns", 1, 8),
];

/// The units [`format`] writes, largest first (no `w`/`y`: `14d` reads better
/// than `2w`, and a year of 365 days is Prometheus's convention, not a fact).
const FORMAT_UNITS: [(&str, u128); 7] = [
    ("d", DAY_NANOS),
    ("h", 3_600 * NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("s", NANOS_PER_SECOND),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// A value that is not a duration: the text and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong.
    pub reason: Reason,
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Not of the grammar at all (empty, spaces, a sign other than `-`, ...).
    Syntax,
    /// A number followed by something that is not a unit.
    UnknownUnit(String),
    /// Units not from the largest down, or one twice (`30m1h`, `1s1s`).
    UnitOrder,
    /// Below zero.
    Negative,
    /// Longer than memlens can hold (about 584 billion years).
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = &self.text;
        match &self.reason {
            Reason::Syntax => write!(f, "{text:?} is not a duration ({HINT})"),
            Reason::UnknownUnit(unit) => write!(
                f,
                "{text:?} is not a duration: {unit:?} is not a unit ({HINT})"
            ),
            Reason::UnitOrder => write!(
                f,
                "{text:?} is not a duration: units go from the largest down, each once ({HINT})"
            ),
            Reason::Negative => write!(f, "{text:?} is negative: a duration is 0 or more"),
            Reason::TooLarge => write!(f, "{text:?} is too long a duration"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration: numbers with units (`1h30m`, `500ms`, `1.5s`) or a bare
/// number of seconds (`5`, `0.5`). Spaces around it are ignored.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: text.to_string(),
        reason,
    };
    let body = text.trim();
    if let Some(magnitude) = body.strip_prefix('-') {
        // `-5s` is negative; `--quiet` (a flag taken as the value) is not one.
        let number = magnitude.starts_with(|c: char| c.is_ascii_digit() || c == '.');
        return Err(fail(if number {
            Reason::Negative
        } else {
            Reason::Syntax
        }));
    }
    if body.is_empty() {
        return Err(fail(Reason::Syntax));
    }
    let mut total_nanos: u128 = 0;
    let mut rest = body;
    let mut last_rank: Option<u8> = None;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_nanos = if unit.is_empty() {
            // A bare number is seconds, and only alone.
            if rest.len() != body.len() {
                return Err(fail(Reason::Syntax));
            }
            NANOS_PER_SECOND
        } else {
            let Some(&(_, nanos, rank)) = UNITS.iter().find(|(name, _, _)| *name == unit) else {
                return Err(fail(if number.is_empty() {
                    Reason::Syntax
                } else {
                    Reason::UnknownUnit(unit.to_string())
                }));
            };
            if last_rank.is_some_and(|last| rank <= last) {
                return Err(fail(Reason::UnitOrder));
            }
            last_rank = Some(rank);
            nanos
        };
        let nanos = number_nanos(number, unit_nanos).map_err(fail)?;
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or(fail(Reason::TooLarge))?;
        rest = after;
    }
    from_nanos(total_nanos).ok_or(fail(Reason::TooLarge))
}

/// `number` (digits with at most one `.`, at least one digit) times
/// `unit_nanos`, fractions of a nanosecond cut.
fn number_nanos(number: &str, unit_nanos: u128) -> Result<u128, Reason> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(Reason::Syntax);
    }
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or(Reason::TooLarge)?;
    }
    nanos = nanos.checked_mul(unit_nanos).ok_or(Reason::TooLarge)?;
    // The largest unit is below 10^17 ns: digits past the 20th add less
    // than a thousandth of a nanosecond.
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for digit in fraction.bytes().take(20) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    Ok(nanos + numerator * unit_nanos / denominator)
}

/// A count of nanoseconds as a [`Duration`], `None` past its range.
fn from_nanos(nanos: u128) -> Option<Duration> {
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).ok()?;
    Some(Duration::new(seconds, (nanos % NANOS_PER_SECOND) as u32))
}

/// A number of seconds (a config file's bare number) as a duration.
pub fn from_seconds(seconds: f64) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: seconds.to_string(),
        reason,
    };
    if seconds.is_nan() {
        return Err(fail(Reason::Syntax));
    }
    if seconds < 0.0 {
        return Err(fail(Reason::Negative));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| fail(Reason::TooLarge))
}

/// Whole milliseconds of a duration, for times in ms since the epoch
/// (`i64::MAX` past that range).
pub fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The one-line message of a command line that clap refused because a
/// flag's value is not a duration (`--interval: "5x" is not a duration
/// (...)`); `None` for any other error.
pub fn flag_error(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    use std::error::Error as _;
    let bad = err.source()?.downcast_ref::<DurationError>()?;
    let flag = match err.get(ContextKind::InvalidArg) {
        // "--interval <DURATION>"
        Some(ContextValue::String(arg)) => arg.split(' ').next().unwrap_or(arg),
        _ => "a flag",
    };
    Some(format!("{flag}: {bad}"))
}

/// Writes a duration in the grammar [`parse`] reads, largest unit first:
/// `0s`, `500ms`, `5s`, `1m30s`, `5m`, `6h`, `14d`, `1s500ms`.
pub fn format(duration: Duration) -> String {
    let mut nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (unit, unit_nanos) in FORMAT_UNITS {
        let count = nanos / unit_nanos;
        if count > 0 {
            text.push_str(&count.to_string());
            text.push_str(unit);
        }
        nanos %= unit_nanos;
    }
    text
}

/// The serde form of a duration in the config file: reads a duration string
/// (`"5s"`) or a number of seconds (`5`, `0.5`: what the keys held before
/// they took units), writes the string. Use with
/// `#[serde(with = "crate::duration::config_value")]`.
pub mod config_value {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;
    use std::time::Duration;

    /// Writes the duration as a string ([`super::format`]).
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*duration))
    }

    /// Reads a duration string or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like \"5s\", \"500ms\" or \"1h30m\", or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            super::parse(text).map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
            super::from_seconds(seconds).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
            self.visit_f64(seconds as f64)
        }

        fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(seconds))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_unit_and_form() {
        let cases = [
            ("500ms", ms(500)),
            ("5s", ms(5_000)),
            ("2m", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("1h30m", ms(5_400_000)),
            ("1m30s", ms(90_000)),
            ("1h2m3s4ms5us6ns", Duration::new(3_723, 4_005_006)),
            ("2d", ms(2 * 86_400_000)),
            ("1w", ms(7 * 86_400_000)),
            ("1y", ms(365 * 86_400_000)),
            ("1y2w3d", ms((365 + 14 + 3) * 86_400_000)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("250μs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("1.5s", ms(1_500)),
            ("0.5h", ms(1_800_000)),
            (".5m", ms(30_000)),
            ("5.s", ms(5_000)),
            ("1.5h30m", ms(7_200_000)),
            ("0.0000000015s", Duration::from_nanos(1)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("5", ms(5_000)),
            ("0.5", ms(500)),
            ("  90s ", ms(90_000)),
            ("0001s", ms(1_000)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn errors_name_the_text_and_what_is_wrong() {
        let cases = [
            ("5x", Reason::UnknownUnit("x".to_string())),
            ("5S", Reason::UnknownUnit("S".to_string())),
            ("5 s", Reason::UnknownUnit(" s".to_string())),
            ("1h30", Reason::Syntax),
            ("30m1h", Reason::UnitOrder),
            ("1s1s", Reason::UnitOrder),
            ("1us1µs", Reason::UnitOrder),
            ("-5s", Reason::Negative),
            (" -1", Reason::Negative),
            ("-.5", Reason::Negative),
            ("--quiet", Reason::Syntax),
            ("-", Reason::Syntax),
            ("", Reason::Syntax),
            ("   ", Reason::Syntax),
            ("s", Reason::Syntax),
            ("h1", Reason::Syntax),
            (".s", Reason::Syntax),
            ("1.2.3s", Reason::Syntax),
            ("+5s", Reason::Syntax),
            ("soon", Reason::Syntax),
            ("1e3", Reason::UnknownUnit("e".to_string())),
            (
                "99999999999999999999999999999999999999999s",
                Reason::TooLarge,
            ),
            ("600000000000y", Reason::TooLarge),
        ];
        for (text, reason) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.reason, reason, "{text}");
            assert_eq!(err.text, text);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
        assert_eq!(
            parse("5x").unwrap_err().to_string(),
            "\"5x\" is not a duration: \"x\" is not a unit (use 500ms, 5s, 2m, 1h30m or seconds)"
        );
    }

    #[test]
    fn bare_seconds_from_numbers() {
        assert_eq!(from_seconds(5.0), Ok(ms(5_000)));
        assert_eq!(from_seconds(0.25), Ok(ms(250)));
        assert_eq!(from_seconds(0.0), Ok(Duration::ZERO));
        assert_eq!(from_seconds(-1.0).unwrap_err().reason, Reason::Negative);
        assert_eq!(from_seconds(f64::NAN).unwrap_err().reason, Reason::Syntax);
        assert_eq!(
            from_seconds(f64::INFINITY).unwrap_err().reason,
            Reason::TooLarge
        );
    }

    #[test]
    fn formats_largest_unit_first() {
        let cases = [
            (Duration::ZERO, "0s"),
            (ms(500), "500ms"),
            (ms(5_000), "5s"),
            (ms(90_000), "1m30s"),
            (ms(300_000), "5m"),
            (ms(21_600_000), "6h"),
            (ms(5_400_000), "1h30m"),
            (ms(14 * 86_400_000), "14d"),
            (ms(1_500), "1s500ms"),
            (Duration::new(1, 1), "1s1ns"),
            (Duration::from_micros(2_500), "2ms500us"),
        ];
        for (duration, text) in cases {
            assert_eq!(format(duration), text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn format_then_parse_is_the_same_duration(
            seconds in prop_oneof![0u64..10, 0u64..100_000, 0u64..u64::MAX],
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        ) {
            let duration = Duration::new(seconds, nanos);
            prop_assert_eq!(parse(&format(duration)), Ok(duration));
        }

        #[test]
        fn bare_whole_seconds_read_as_seconds(seconds in 0u64..u64::MAX) {
            prop_assert_eq!(parse(&seconds.to_string()), Ok(Duration::from_secs(seconds)));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,24}") {
            let _ = parse(&text);
        }

        #[test]
        fn duration_like_text_parses_or_names_itself(text in "[0-9.]{0,4}(ns|us|µs|ms|s|m|h|d|w|y|x)?[0-9.]{0,3}(ms|s|m)?") {
            if let Err(err) = parse(&text) {
                prop_assert_eq!(err.text, text);
            }
        }
    }
}
