//! Values of the `Name:   1234 kB` lines of `/proc` files (`status`,
//! `smaps_rollup`, `meminfo`).

use crate::ParseError;

/// Parses the value of a `Name:   1234 kB` line (the part after the colon) into
/// bytes. `line` is 1-based, for the error.
pub(crate) fn kb_value_to_bytes(
    input: &str,
    line: usize,
    name: &str,
    value: &str,
) -> Result<u64, ParseError> {
    let bad = |why: String| ParseError::at_line(input, line, why);
    let mut words = value.split_whitespace();
    let number = words
        .next()
        .ok_or_else(|| bad(format!("{name} has no value")))?;
    let number: u64 = number
        .parse()
        .map_err(|_| bad(format!("{name}: not a whole number: {number:?}")))?;
    match (words.next(), words.next()) {
        (Some("kB"), None) => number
            .checked_mul(1024)
            .ok_or_else(|| bad(format!("{name}: {number} kB overflows"))),
        (None, _) => Err(bad(format!("{name}: {number} has no unit, expected kB"))),
        (Some(unit), _) => Err(bad(format!(
            "{name}: expected \"N kB\", found {value:?} (unit {unit:?})"
        ))),
    }
}

/// Like [`kb_value_to_bytes`], but a value without a unit is a count and kept
/// as is (`HugePages_Total:  0` in meminfo).
pub(crate) fn kb_or_count(
    input: &str,
    line: usize,
    name: &str,
    value: &str,
) -> Result<u64, ParseError> {
    let mut words = value.split_whitespace();
    match (words.next(), words.next()) {
        (Some(number), None) => number.parse().map_err(|_| {
            ParseError::at_line(
                input,
                line,
                format!("{name}: not a whole number: {number:?}"),
            )
        }),
        _ => kb_value_to_bytes(input, line, name, value),
    }
}
