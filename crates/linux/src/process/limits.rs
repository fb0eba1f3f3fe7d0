//! `/proc/PID/limits`.

use crate::ParseError;
use std::fmt;

/// One resource limit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RlimitValue {
    /// `unlimited` (`RLIM_INFINITY`).
    Unlimited,
    /// A finite limit, in the row's units (bytes, files, processes, ...).
    Value(u64),
}

impl RlimitValue {
    /// The finite value, or `None` when unlimited.
    pub fn value(self) -> Option<u64> {
        match self {
            RlimitValue::Unlimited => None,
            RlimitValue::Value(v) => Some(v),
        }
    }

    fn parse(text: &str) -> Option<RlimitValue> {
        if text == "unlimited" {
            Some(RlimitValue::Unlimited)
        } else {
            text.parse().ok().map(RlimitValue::Value)
        }
    }
}

impl fmt::Display for RlimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RlimitValue::Unlimited => f.write_str("unlimited"),
            RlimitValue::Value(v) => write!(f, "{v}"),
        }
    }
}

/// One row of the table, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRow {
    /// The limit's name as the kernel prints it, e.g. `Max open files`.
    pub name: String,
    /// The soft limit (what the kernel enforces).
    pub soft: RlimitValue,
    /// The hard limit (the ceiling an unprivileged process may raise the soft one to).
    pub hard: RlimitValue,
    /// The units column (`bytes`, `files`, `seconds`, `us`, ...); `None` where the
    /// kernel prints none (`Max nice priority`, `Max realtime priority`).
    pub units: Option<String>,
}

/// `/proc/PID/limits`: every row, and the memory-related ones by name.
///
/// The named rows have been printed by every kernel since 2.6.24, so a file
/// without one of them is an error (most likely cut short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `Max open files` soft limit (`RLIMIT_NOFILE`).
    pub open_files_soft: RlimitValue,
    /// `Max open files` hard limit.
    pub open_files_hard: RlimitValue,
    /// `Max address space` soft limit in bytes (`RLIMIT_AS`).
    pub address_space_soft: RlimitValue,
    /// `Max address space` hard limit in bytes.
    pub address_space_hard: RlimitValue,
    /// `Max data size` soft limit in bytes (`RLIMIT_DATA`, checked against `VmData`).
    pub data_size_soft: RlimitValue,
    /// `Max data size` hard limit in bytes.
    pub data_size_hard: RlimitValue,
    /// `Max stack size` soft limit in bytes (`RLIMIT_STACK`).
    pub stack_size_soft: RlimitValue,
    /// `Max stack size` hard limit in bytes.
    pub stack_size_hard: RlimitValue,
    /// `Max locked memory` soft limit in bytes (`RLIMIT_MEMLOCK`).
    pub locked_memory_soft: RlimitValue,
    /// `Max locked memory` hard limit in bytes.
    pub locked_memory_hard: RlimitValue,
    /// `Max processes` soft limit (`RLIMIT_NPROC`, threads count too).
    pub processes_soft: RlimitValue,
    /// `Max processes` hard limit.
    pub processes_hard: RlimitValue,
    /// Every row in file order, the named ones included.
    pub rows: Vec<LimitRow>,
}

impl Limits {
    /// Parses limits text; `input` names it in errors (e.g. `/proc/123/limits`).
    ///
    /// The kernel pads columns to fixed widths, but names contain spaces and
    /// units may be missing, so each row is read from the right: the last word is
    /// the units unless it is a number or `unlimited`, the two before it are the
    /// soft and hard limits, and the rest is the name.
    pub fn parse(input: &str, text: &str) -> Result<Limits, ParseError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, header)) if header.starts_with("Limit") && header.contains("Soft Limit") => {}
            Some((index, header)) => {
                return Err(ParseError::at_line(
                    input,
                    index + 1,
                    format!("expected the \"Limit  Soft Limit  Hard Limit  Units\" header, found {header:?}"),
                ))
            }
            None => return Err(ParseError::new(input, "empty")),
        }
        let mut rows = Vec::with_capacity(16);
        for (index, line) in lines {
            rows.push(parse_row(line).ok_or_else(|| {
                ParseError::at_line(
                    input,
                    index + 1,
                    format!("expected \"Name  soft  hard  [units]\", found {line:?}"),
                )
            })?);
        }
        let get = |name: &str| {
            rows.iter()
                .find(|row| row.name == name)
                .map(|row| (row.soft, row.hard))
                .ok_or_else(|| ParseError::new(input, format!("no {name:?} row (cut short?)")))
        };
        let (open_files_soft, open_files_hard) = get("Max open files")?;
        let (address_space_soft, address_space_hard) = get("Max address space")?;
        let (data_size_soft, data_size_hard) = get("Max data size")?;
        let (stack_size_soft, stack_size_hard) = get("Max stack size")?;
        let (locked_memory_soft, locked_memory_hard) = get("Max locked memory")?;
        let (processes_soft, processes_hard) = get("Max processes")?;
        Ok(Limits {
            open_files_soft,
            open_files_hard,
            address_space_soft,
            address_space_hard,
            data_size_soft,
            data_size_hard,
            stack_size_soft,
            stack_size_hard,
            locked_memory_soft,
            locked_memory_hard,
            processes_soft,
            processes_hard,
            rows,
        })
    }

    /// A row by its kernel name (`"Max cpu time"`).
    pub fn get(&self, name: &str) -> Option<&LimitRow> {
        self.rows.iter().find(|row| row.name == name)
    }
}

fn parse_row(line: &str) -> Option<LimitRow> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let last = *words.last()?;
    let (units, values_end) = match RlimitValue::parse(last) {
        Some(_) => (None, words.len()),
        None => (Some(last.to_string()), words.len() - 1),
    };
    // At least one word of name, then soft and hard.
    if values_end < 3 {
        return None;
    }
    let soft = RlimitValue::parse(words[values_end - 2])?;
    let hard = RlimitValue::parse(words[values_end - 1])?;
    let name = words[..values_end - 2].join(" ");
    Some(LimitRow {
        name,
        soft,
        hard,
        units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RlimitValue::{Unlimited, Value};

    const GO: &str = include_str!("../../testdata/proc/linux6.18-limits-go1.19.txt");

    #[test]
    fn captured_go_process() {
        let l = Limits::parse("limits", GO).unwrap();
        // `prlimit -p PID` at capture: NOFILE 20000/20000, AS unlimited/unlimited,
        // DATA unlimited/unlimited, STACK 8388608/unlimited, MEMLOCK 8388608/8388608,
        // NPROC 96365/96365, NICE 0/0 with no units, RTTIME unlimited (microsecs).
        assert_eq!(
            (l.open_files_soft, l.open_files_hard),
            (Value(20000), Value(20000))
        );
        assert_eq!(
            (l.address_space_soft, l.address_space_hard),
            (Unlimited, Unlimited)
        );
        assert_eq!((l.data_size_soft, l.data_size_hard), (Unlimited, Unlimited));
        assert_eq!(
            (l.stack_size_soft, l.stack_size_hard),
            (Value(8_388_608), Unlimited)
        );
        assert_eq!(
            (l.locked_memory_soft, l.locked_memory_hard),
            (Value(8_388_608), Value(8_388_608))
        );
        assert_eq!(
            (l.processes_soft, l.processes_hard),
            (Value(96365), Value(96365))
        );
        assert_eq!(l.rows.len(), 16);
        let nice = l.get("Max nice priority").unwrap();
        assert_eq!(
            (nice.soft, nice.hard, nice.units.as_deref()),
            (Value(0), Value(0), None)
        );
        let rttime = l.get("Max realtime timeout").unwrap();
        assert_eq!(
            (rttime.soft, rttime.units.as_deref()),
            (Unlimited, Some("us"))
        );
        assert_eq!(l.get("Max core file size").unwrap().soft.value(), Some(0));
        assert_eq!(l.open_files_soft.to_string(), "20000");
        assert_eq!(Unlimited.to_string(), "unlimited");
        assert_eq!(Unlimited.value(), None);
    }

    #[test]
    fn malformed_limits_are_named() {
        let err = Limits::parse("/proc/4/limits", "").unwrap_err();
        assert!(err.to_string().starts_with("/proc/4/limits: "), "{err}");
        let body = GO.split_once('\n').unwrap().1;
        let err = Limits::parse("limits", body).unwrap_err();
        assert!(err.to_string().contains("header"), "{err}");
        let err = Limits::parse(
            "limits",
            &GO.replace("20000                20000", "lots  20000"),
        )
        .unwrap_err();
        assert_eq!(err.line, Some(9));
        assert!(
            Limits::parse("limits", &GO.replace("96365                96365", "96365")).is_err()
        );
    }

    #[test]
    fn truncated_limits_are_an_error() {
        let cut = &GO[..GO.find("Max open files").unwrap()];
        let err = Limits::parse("limits", cut).unwrap_err();
        assert!(err.to_string().contains("Max open files"), "{err}");
        // Cut inside a row.
        let cut = &GO[..GO.find("Max open files").unwrap() + 30];
        assert!(Limits::parse("limits", cut).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = Limits::parse("limits", &text);
        }

        #[test]
        fn cut_or_mangled_fixture_never_panics(cut in 0..GO.len(), at in 0..GO.len(), byte in 0u8..128) {
            let _ = Limits::parse("limits", &GO[..cut]);
            let mut bytes = GO.as_bytes().to_vec();
            bytes[at] = byte;
            let _ = Limits::parse("limits", &String::from_utf8_lossy(&bytes));
        }
    }
}
