//! `/proc/PID/io`.
//!
//! Only the owner (or a process allowed to ptrace it) may read this file.

use super::parse_number;
use crate::ParseError;

/// `/proc/PID/io`: the process's I/O counters since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    /// `rchar`: bytes passed to `read(2)` and friends (page cache hits included).
    pub rchar_bytes: u64,
    /// `wchar`: bytes passed to `write(2)` and friends.
    pub wchar_bytes: u64,
    /// `syscr`: read system calls.
    pub syscr: u64,
    /// `syscw`: write system calls.
    pub syscw: u64,
    /// `read_bytes`: bytes the process caused to be fetched from storage.
    pub read_bytes: u64,
    /// `write_bytes`: bytes the process caused to be sent to storage.
    pub write_bytes: u64,
    /// `cancelled_write_bytes`: written bytes that never reached storage
    /// (e.g. the page cache of a truncated file).
    pub cancelled_write_bytes: u64,
}

impl Io {
    /// Parses io text; `input` names it in errors. All seven counters must be there;
    /// unknown lines are checked for the `name: value` shape and skipped.
    pub fn parse(input: &str, text: &str) -> Result<Io, ParseError> {
        let mut found = [None; KEYS.len()];
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| {
                ParseError::at_line(
                    input,
                    index + 1,
                    format!("expected \"name: value\", found {line:?}"),
                )
            })?;
            let value: u64 = parse_number(input, index + 1, name, value.trim())?;
            if let Some(slot) = KEYS.iter().position(|k| *k == name) {
                found[slot] = Some(value);
            }
        }
        let mut values = [0; KEYS.len()];
        for ((value, found), key) in values.iter_mut().zip(found).zip(KEYS) {
            *value = found.ok_or_else(|| {
                ParseError::new(input, format!("no {key} line (empty or cut short?)"))
            })?;
        }
        let [rchar_bytes, wchar_bytes, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes] =
            values;
        Ok(Io {
            rchar_bytes,
            wchar_bytes,
            syscr,
            syscw,
            read_bytes,
            write_bytes,
            cancelled_write_bytes,
        })
    }
}

/// The lines, in the order of the destructuring in [`Io::parse`].
const KEYS: [&str; 7] = [
    "rchar",
    "wchar",
    "syscr",
    "syscw",
    "read_bytes",
    "write_bytes",
    "cancelled_write_bytes",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GO: &str = include_str!("../../testdata/proc/linux6.18-io-go1.19.txt");

    #[test]
    fn captured_go_process() {
        let io = Io::parse("io", GO).unwrap();
        // The workload had written exactly its 6 protocol lines, 117 bytes, to
        // stdout (`wc -c` of its output file) and nothing to stderr: wchar 117
        // in 6 write calls.
        assert_eq!((io.wchar_bytes, io.syscw), (117, 6));
        assert_eq!((io.rchar_bytes, io.syscr), (72209, 42));
        assert_eq!((io.read_bytes, io.write_bytes), (49152, 8192));
        assert_eq!(io.cancelled_write_bytes, 0);
    }

    #[test]
    fn malformed_io_is_named() {
        let err = Io::parse("/proc/5/io", "").unwrap_err();
        assert!(err.to_string().starts_with("/proc/5/io: "), "{err}");
        assert!(err.to_string().contains("rchar"), "{err}");
        let err = Io::parse("io", &GO.replace("syscr: 42", "syscr: -42")).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.to_string().contains("syscr"), "{err}");
        assert!(Io::parse("io", &GO.replace("wchar: 117", "wchar 117")).is_err());
    }

    #[test]
    fn truncated_io_is_an_error() {
        let cut = &GO[..GO.find("cancelled").unwrap()];
        let err = Io::parse("io", cut).unwrap_err();
        assert!(err.to_string().contains("cancelled_write_bytes"), "{err}");
        assert!(Io::parse("io", &GO[..GO.find("cancelled").unwrap() + 5]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = Io::parse("io", &text);
        }

        #[test]
        fn cut_fixture_never_panics(cut in 0..GO.len()) {
            let _ = Io::parse("io", &GO[..cut]);
        }
    }
}
