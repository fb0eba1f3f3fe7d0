//! `/proc/PID/oom_score` and `/proc/PID/oom_score_adj`.

use crate::ParseError;

/// Parses `/proc/PID/oom_score`: the OOM killer's current badness of the process,
/// the highest dies first; `input` names the file in errors.
///
/// Since Linux 5.9 the kernel prints `(1000 + badness * 1000 / total pages) * 2 / 3`,
/// so values run from 0 to 1333 and a process with no memory and an
/// `oom_score_adj` of 0 shows 666; older kernels printed 0..=1000. Any `u32` is
/// accepted.
pub fn parse_oom_score(input: &str, text: &str) -> Result<u32, ParseError> {
    let value = single_value(input, text)?;
    value
        .parse()
        .map_err(|_| ParseError::new(input, format!("not a whole number: {value:?}")))
}

/// Parses `/proc/PID/oom_score_adj`: the adjustment added to the badness, from
/// -1000 (never kill) to 1000 (kill first); `input` names the file in errors.
/// Values outside that range are an error.
pub fn parse_oom_score_adj(input: &str, text: &str) -> Result<i32, ParseError> {
    let value = single_value(input, text)?;
    let adj: i32 = value
        .parse()
        .map_err(|_| ParseError::new(input, format!("not a whole number: {value:?}")))?;
    if !(-1000..=1000).contains(&adj) {
        return Err(ParseError::new(
            input,
            format!("{adj} is outside -1000..=1000"),
        ));
    }
    Ok(adj)
}

/// The one value of a one-value file, surrounding whitespace removed.
fn single_value<'a>(input: &str, text: &'a str) -> Result<&'a str, ParseError> {
    let value = text.trim();
    if value.is_empty() {
        return Err(ParseError::new(input, "empty"));
    }
    if value.contains(char::is_whitespace) {
        return Err(ParseError::new(
            input,
            format!("expected one value, found {value:?}"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCORE_ADJ0: &str = include_str!("../../testdata/proc/linux6.18-oom_score-adj0.txt");
    const ADJ0: &str = include_str!("../../testdata/proc/linux6.18-oom_score_adj-0.txt");
    const SCORE_ADJ500: &str = include_str!("../../testdata/proc/linux6.18-oom_score-adj500.txt");
    const ADJ500: &str = include_str!("../../testdata/proc/linux6.18-oom_score_adj-500.txt");

    #[test]
    fn captured_scores() {
        // `choom -p PID` at capture: "current OOM score: 666, adjust value: 0" for a
        // small process; after `choom -n 500`: score 1000, adjust 500. Both agree
        // with the 5.9+ formula: (1000 + 0) * 2 / 3 = 666, (1000 + 500) * 2 / 3 = 1000.
        assert_eq!(parse_oom_score("oom_score", SCORE_ADJ0).unwrap(), 666);
        assert_eq!(parse_oom_score_adj("oom_score_adj", ADJ0).unwrap(), 0);
        assert_eq!(parse_oom_score("oom_score", SCORE_ADJ500).unwrap(), 1000);
        assert_eq!(parse_oom_score_adj("oom_score_adj", ADJ500).unwrap(), 500);
    }

    #[test]
    fn adj_range() {
        assert_eq!(parse_oom_score_adj("a", "-1000\n").unwrap(), -1000);
        assert_eq!(parse_oom_score_adj("a", "1000\n").unwrap(), 1000);
        let err = parse_oom_score_adj("/proc/6/oom_score_adj", "1001\n").unwrap_err();
        assert!(
            err.to_string().starts_with("/proc/6/oom_score_adj: "),
            "{err}"
        );
        assert!(err.reason.contains("-1000..=1000"), "{err}");
        assert!(parse_oom_score_adj("a", "-1001").is_err());
        assert!(parse_oom_score_adj("a", "99999999999").is_err());
    }

    #[test]
    fn malformed_scores_are_named() {
        for bad in ["", "\n", "x", "-1", "6 6", "1.5"] {
            let err = parse_oom_score("/proc/6/oom_score", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("/proc/6/oom_score: "),
                "{bad:?}: {err}"
            );
        }
        for bad in ["", "adj", "+-5", "0 0"] {
            assert!(parse_oom_score_adj("a", bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse_oom_score("s", &text);
            if let Ok(adj) = parse_oom_score_adj("a", &text) {
                prop_assert!((-1000..=1000).contains(&adj));
            }
        }

        #[test]
        fn numbers_round_trip(n in -5000i32..5000) {
            let text = format!("{n}\n");
            prop_assert_eq!(parse_oom_score_adj("a", &text).ok(), (-1000..=1000).contains(&n).then_some(n));
        }
    }
}
