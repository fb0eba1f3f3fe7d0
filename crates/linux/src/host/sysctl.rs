//! Single-number sysctl files: `vm.max_map_count`, `vm.overcommit_memory`.

use crate::ParseError;

/// Parses a file holding one unsigned number (e.g. `/proc/sys/vm/max_map_count`).
pub fn parse_sysctl_u64(input: &str, text: &str) -> Result<u64, ParseError> {
    let value = text.trim();
    value
        .parse()
        .map_err(|_| ParseError::new(input, format!("expected one whole number, found {value:?}")))
}

/// `vm.overcommit_memory`: how the kernel grants address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overcommit {
    /// 0: heuristic overcommit (the default).
    Heuristic,
    /// 1: always grant.
    Always,
    /// 2: strict accounting against `CommitLimit`.
    Never,
}

impl Overcommit {
    /// Parses `/proc/sys/vm/overcommit_memory`.
    pub fn parse(input: &str, text: &str) -> Result<Overcommit, ParseError> {
        match text.trim() {
            "0" => Ok(Overcommit::Heuristic),
            "1" => Ok(Overcommit::Always),
            "2" => Ok(Overcommit::Never),
            other => Err(ParseError::new(
                input,
                format!("expected 0, 1 or 2, found {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_modes() {
        assert_eq!(parse_sysctl_u64("max_map_count", "65530\n").unwrap(), 65530);
        assert!(parse_sysctl_u64("max_map_count", "").is_err());
        assert!(parse_sysctl_u64("max_map_count", "-1").is_err());
        assert_eq!(
            Overcommit::parse("overcommit_memory", "2\n").unwrap(),
            Overcommit::Never
        );
        let err = Overcommit::parse("overcommit_memory", "3\n").unwrap_err();
        assert!(err.to_string().contains("\"3\""), "{err}");
    }
}
