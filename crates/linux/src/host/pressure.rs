//! Pressure stall information (PSI): `/proc/pressure/memory` and a v2 cgroup's
//! `memory.pressure`.
//!
//! ```text
//! some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//! full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//! ```
//! `some`: share of time at least one task stalled on memory; `full`: all
//! non-idle tasks stalled at once. `total` is cumulative microseconds.

use crate::ParseError;

/// One PSI line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Percentage of the last 10 seconds spent stalled.
    pub avg10_percent: f64,
    /// Percentage of the last 60 seconds spent stalled.
    pub avg60_percent: f64,
    /// Percentage of the last 300 seconds spent stalled.
    pub avg300_percent: f64,
    /// Total stall time since boot (or cgroup creation), in microseconds.
    pub total_usec: u64,
}

/// A PSI file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// The `some` line.
    pub some: PressureLine,
    /// The `full` line; absent for the CPU resource on older kernels.
    pub full: Option<PressureLine>,
}

impl Pressure {
    /// Parses a PSI file; `input` names it in errors.
    pub fn parse(input: &str, text: &str) -> Result<Pressure, ParseError> {
        let mut some = None;
        let mut full = None;
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let kind = words.next().unwrap_or_default();
            let parsed = parse_line(input, index + 1, words)?;
            match kind {
                "some" => some = Some(parsed),
                "full" => full = Some(parsed),
                other => {
                    return Err(ParseError::at_line(
                        input,
                        index + 1,
                        format!("expected \"some\" or \"full\", found {other:?}"),
                    ))
                }
            }
        }
        let some = some.ok_or_else(|| ParseError::new(input, "no \"some\" line"))?;
        Ok(Pressure { some, full })
    }
}

fn parse_line<'a>(
    input: &str,
    line: usize,
    words: impl Iterator<Item = &'a str>,
) -> Result<PressureLine, ParseError> {
    let mut out = PressureLine::default();
    let mut seen = 0u8;
    for word in words {
        let bad = |why: String| ParseError::at_line(input, line, why);
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| bad(format!("expected key=value, found {word:?}")))?;
        let percent = || -> Result<f64, ParseError> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(format!("{key}: not a percentage: {value:?}")))
        };
        match key {
            "avg10" => (out.avg10_percent, seen) = (percent()?, seen | 1),
            "avg60" => (out.avg60_percent, seen) = (percent()?, seen | 2),
            "avg300" => (out.avg300_percent, seen) = (percent()?, seen | 4),
            "total" => {
                out.total_usec = value
                    .parse()
                    .map_err(|_| bad(format!("total: not a whole number: {value:?}")))?;
                seen |= 8;
            }
            _ => {} // newer kernels may add fields
        }
    }
    if seen != 15 {
        return Err(ParseError::at_line(
            input,
            line,
            "missing one of avg10, avg60, avg300, total",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_host_pressure() {
        let text = include_str!("../../testdata/host/linux6.18-pressure-memory.txt");
        let psi = Pressure::parse("/proc/pressure/memory", text).unwrap();
        assert!(psi.full.is_some());
        assert!(psi.some.avg10_percent >= 0.0);
    }

    #[test]
    fn values_are_read() {
        let text = "some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\n\
                    full avg10=0.75 avg60=0.10 avg300=0.01 total=6543\n";
        let psi = Pressure::parse("memory.pressure", text).unwrap();
        assert_eq!(psi.some.avg10_percent, 1.5);
        assert_eq!(psi.some.total_usec, 123_456);
        assert_eq!(psi.full.unwrap().total_usec, 6543);
    }

    #[test]
    fn malformed_pressure_is_named() {
        for bad in [
            "",
            "some avg10=x avg60=0 avg300=0 total=0",
            "some avg10=1 avg60=0 avg300=0",
            "half avg10=1 avg60=0 avg300=0 total=0",
            "some avg10",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0",
        ] {
            let err = Pressure::parse("memory.pressure", bad).unwrap_err();
            assert_eq!(err.input, "memory.pressure", "{bad:?}");
        }
    }
}
