//! `/proc/meminfo`.

use crate::kb_value::kb_or_count;
use crate::ParseError;

/// `/proc/meminfo`: every field as the kernel names it, sizes in bytes.
///
/// Fields come and go between kernel versions, so all of them are kept by name;
/// the common ones have accessors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meminfo {
    /// `(name, value)` in file order; `kB` values converted to bytes, unitless
    /// values (`HugePages_Total`, ...) kept as counts.
    pub fields: Vec<(String, u64)>,
}

impl Meminfo {
    /// Parses meminfo text; `input` names it in errors.
    pub fn parse(input: &str, text: &str) -> Result<Meminfo, ParseError> {
        let mut fields = Vec::with_capacity(64);
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |why: String| ParseError::at_line(input, index + 1, why);
            let (name, rest) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("expected \"Name: value\", found {line:?}")))?;
            let value = kb_or_count(input, index + 1, name.trim(), rest)?;
            fields.push((name.trim().to_string(), value));
        }
        if fields.is_empty() {
            return Err(ParseError::new(input, "empty: no fields"));
        }
        Ok(Meminfo { fields })
    }

    /// A field by its kernel name (`"MemAvailable"`, `"HugePages_Total"`).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }

    /// `MemTotal` in bytes.
    pub fn total_bytes(&self) -> Option<u64> {
        self.get("MemTotal")
    }

    /// `MemAvailable` in bytes (the kernel's estimate of what can be had without swapping).
    pub fn available_bytes(&self) -> Option<u64> {
        self.get("MemAvailable")
    }

    /// `SwapTotal` in bytes.
    pub fn swap_total_bytes(&self) -> Option<u64> {
        self.get("SwapTotal")
    }

    /// `SwapFree` in bytes.
    pub fn swap_free_bytes(&self) -> Option<u64> {
        self.get("SwapFree")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = include_str!("../../testdata/host/linux6.18-meminfo.txt");

    #[test]
    fn captured_meminfo_in_bytes() {
        let info = Meminfo::parse("/proc/meminfo", CAPTURED).unwrap();
        // `free -b` on the capture machine reported 24 GiB total: 24684092 kB.
        assert_eq!(info.total_bytes(), Some(24_684_092 * 1024));
        assert!(info.available_bytes().unwrap() <= info.total_bytes().unwrap());
        assert_eq!(info.swap_total_bytes(), Some(0));
        // Unitless fields stay counts.
        assert_eq!(info.get("HugePages_Total"), Some(0));
        assert_eq!(info.get("Hugepagesize"), Some(2048 * 1024));
        assert_eq!(info.get("NoSuchField"), None);
    }

    #[test]
    fn malformed_meminfo_is_named() {
        let err = Meminfo::parse("/proc/meminfo", "MemTotal: lots kB\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.to_string().contains("MemTotal"), "{err}");
        let err = Meminfo::parse("/proc/meminfo", "MemTotal 5 kB\n").unwrap_err();
        assert!(err.to_string().contains("Name: value"), "{err}");
        assert!(Meminfo::parse("/proc/meminfo", "").is_err());
        assert!(Meminfo::parse("/proc/meminfo", "A: 1 MB\n").is_err());
        assert!(Meminfo::parse("/proc/meminfo", "A:\n").is_err());
        assert!(Meminfo::parse("/proc/meminfo", "A: 18446744073709551615 kB\n").is_err());
    }

    #[test]
    fn truncated_meminfo_keeps_complete_lines_or_fails() {
        let cut = &CAPTURED[..CAPTURED.find("MemAvailable").unwrap() + 5];
        assert!(Meminfo::parse("/proc/meminfo", cut).is_err());
    }
}
