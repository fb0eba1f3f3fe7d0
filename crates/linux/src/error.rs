//! The error every parser returns.

use std::fmt;

/// A file's text could not be understood.
///
/// It names the input (usually the file name, e.g. `memory.events`), the 1-based
/// line where the problem was seen when there is one, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The input that was being parsed, e.g. `memory.oom_control`.
    pub input: String,
    /// The 1-based line number, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub reason: String,
}

impl ParseError {
    /// An error about `input` as a whole.
    pub fn new(input: &str, reason: impl Into<String>) -> Self {
        ParseError {
            input: input.to_string(),
            line: None,
            reason: reason.into(),
        }
    }

    /// An error about one line (1-based) of `input`.
    pub fn at_line(input: &str, line: usize, reason: impl Into<String>) -> Self {
        ParseError {
            input: input.to_string(),
            line: Some(line),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {}: {}", self.input, line, self.reason),
            None => write!(f, "{}: {}", self.input, self.reason),
        }
    }
}
