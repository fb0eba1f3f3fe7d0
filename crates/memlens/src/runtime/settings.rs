//! The values of `GOGC` and `GOMEMLIMIT` as the Go runtime reads them from its
//! environment (runtime/mgcpacer.go `readGOGC`, `readGOMEMLIMIT` and
//! `parseByteCount`). Pure functions: strings in, settings out.

use serde::Serialize;

/// A GC setting: a number, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Setting {
    /// The number (GOGC: percent; GOMEMLIMIT: bytes).
    Value(u64),
    /// Turned off (`GOGC=off` or negative; `GOMEMLIMIT=off` or the runtime's
    /// "no limit", `math.MaxInt64`).
    #[serde(serialize_with = "off")]
    Off,
}

fn off<S: serde::Serializer>(serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str("off")
}

/// GOGC when nothing sets it.
pub const DEFAULT_GOGC_PERCENT: u64 = 100;

/// Reads `GOGC`: `off` (exactly, as the runtime compares it) or a negative number turns GC off; a
/// non-number is ignored by the runtime (GOGC stays 100), which is what this
/// returns for it too, with `false` for "not valid".
pub fn parse_gogc(raw: &str) -> (Setting, bool) {
    let text = raw.trim();
    if text.is_empty() {
        return (Setting::Value(DEFAULT_GOGC_PERCENT), true);
    }
    if text == "off" {
        return (Setting::Off, true);
    }
    match text.parse::<i64>() {
        Ok(n) if n < 0 => (Setting::Off, true),
        Ok(n) => (Setting::Value(n as u64), true),
        Err(_) => (Setting::Value(DEFAULT_GOGC_PERCENT), false),
    }
}

/// Reads `GOMEMLIMIT` as the runtime does (`memlens_analyze::gomemconfig::
/// parse_gomemlimit`): `off`, or a whole number of bytes with an optional
/// unit `B`, `KiB`, `MiB`, `GiB` or `TiB`; the runtime's "no limit"
/// (`math.MaxInt64`) is `Off`. `None` for a value the runtime refuses.
pub fn parse_gomemlimit(raw: &str) -> Option<Setting> {
    match memlens_analyze::gomemconfig::parse_gomemlimit(raw) {
        Ok(Some(bytes)) => Some(Setting::Value(bytes)),
        Ok(None) => Some(Setting::Off),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gogc_values() {
        assert_eq!(parse_gogc("50"), (Setting::Value(50), true));
        assert_eq!(parse_gogc("off"), (Setting::Off, true));
        assert_eq!(parse_gogc("OFF"), (Setting::Value(100), false));
        assert_eq!(parse_gogc("-1"), (Setting::Off, true));
        assert_eq!(parse_gogc("lots"), (Setting::Value(100), false));
    }

    #[test]
    fn gomemlimit_values() {
        assert_eq!(parse_gomemlimit("96MiB"), Some(Setting::Value(96 << 20)));
        assert_eq!(parse_gomemlimit("1GiB"), Some(Setting::Value(1 << 30)));
        assert_eq!(parse_gomemlimit("4096"), Some(Setting::Value(4096)));
        assert_eq!(parse_gomemlimit("10B"), Some(Setting::Value(10)));
        assert_eq!(parse_gomemlimit("off"), Some(Setting::Off));
        assert_eq!(parse_gomemlimit("9223372036854775807"), Some(Setting::Off));
        assert_eq!(parse_gomemlimit("96MB"), None);
        assert_eq!(parse_gomemlimit("MiB"), None);
        assert_eq!(parse_gomemlimit("-1"), None);
        assert_eq!(parse_gomemlimit("99999999TiB"), None);
    }
}
