//! One line of the text exposition format: a sample
//! (`name{label="value",...} value [timestamp]`) or a `#` comment.

use super::Label;

/// What a non-empty line is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Line {
    /// `# HELP name text`.
    Help { name: String, text: String },
    /// `# TYPE name type`.
    Type { name: String, kind: String },
    /// `# EOF` (OpenMetrics): the end of the exposition.
    Eof,
    /// Any other comment (`# UNIT`, free text).
    Comment,
    /// A sample.
    Sample {
        name: String,
        labels: Vec<Label>,
        value: f64,
        timestamp_ms: Option<i64>,
    },
}

/// Reads one line (no newline, not empty). `max_labels` caps the labels of a sample.
pub(super) fn parse_line(line: &str, max_labels: usize) -> Result<Line, String> {
    if let Some(comment) = line.strip_prefix('#') {
        return Ok(parse_comment(comment));
    }
    parse_sample(line, max_labels)
}

fn parse_comment(comment: &str) -> Line {
    let comment = comment.trim_start_matches([' ', '\t']);
    if comment.trim_end() == "EOF" {
        return Line::Eof;
    }
    let (keyword, rest) = split_word(comment);
    match keyword {
        "HELP" | "TYPE" => {
            let (name, rest) = split_word(rest);
            if !is_metric_name(name) {
                // "# HELP" with no valid name is only a comment, as in Prometheus.
                return Line::Comment;
            }
            if keyword == "HELP" {
                Line::Help {
                    name: name.to_string(),
                    text: unescape_help(rest),
                }
            } else {
                Line::Type {
                    name: name.to_string(),
                    kind: rest.trim().to_string(),
                }
            }
        }
        _ => Line::Comment,
    }
}

/// The first word (up to a space or tab) and the rest after the separating blanks.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches([' ', '\t']);
    match text.find([' ', '\t']) {
        Some(end) => (&text[..end], text[end..].trim_start_matches([' ', '\t'])),
        None => (text, ""),
    }
}

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(super) fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// HELP text escapes: `\\` and `\n`; any other backslash is kept as written.
fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn parse_sample(line: &str, max_labels: usize) -> Result<Line, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("{:?} is not a valid metric name", shorten(name)));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels, max_labels)?;
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    if rest.is_empty() {
        return Err(format!("sample {name} has no value"));
    }
    let (value_text, rest) = split_word(rest);
    let value = parse_value(value_text)
        .ok_or_else(|| format!("sample {name}: {:?} is not a number", shorten(value_text)))?;
    let (ts_text, rest) = split_word(rest);
    let timestamp_ms = if ts_text.is_empty() || ts_text.starts_with('#') {
        None
    } else {
        Some(parse_timestamp(ts_text).ok_or_else(|| {
            format!(
                "sample {name}: timestamp {:?} is not a number",
                shorten(ts_text)
            )
        })?)
    };
    // After the timestamp only an OpenMetrics exemplar (`# {...} v`) may follow.
    if !rest.is_empty() && !rest.starts_with('#') && !ts_text.starts_with('#') {
        return Err(format!(
            "sample {name}: unexpected text after the timestamp: {:?}",
            shorten(rest)
        ));
    }
    Ok(Line::Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads `name="value",...}` (after the `{`) into `labels`; returns what follows the `}`.
fn parse_labels<'a>(
    mut text: &'a str,
    labels: &mut Vec<Label>,
    max_labels: usize,
) -> Result<&'a str, String> {
    loop {
        text = text.trim_start_matches([' ', '\t']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = text
            .find(['=', ' ', '\t', '}', ','])
            .ok_or("label set is not closed with '}'")?;
        let name = &text[..name_end];
        if !is_label_name(name) {
            return Err(format!("{:?} is not a valid label name", shorten(name)));
        }
        text = text[name_end..].trim_start_matches([' ', '\t']);
        text = text
            .strip_prefix('=')
            .ok_or_else(|| format!("label {name} has no '='"))?
            .trim_start_matches([' ', '\t']);
        text = text
            .strip_prefix('"')
            .ok_or_else(|| format!("value of label {name} does not start with '\"'"))?;
        let (value, after) = read_quoted(text).ok_or_else(|| {
            format!("value of label {name} is not closed with '\"' (line cut short?)")
        })?;
        if labels.len() >= max_labels {
            return Err(format!("more than {max_labels} labels on one sample"));
        }
        if labels.iter().any(|l| l.name == name) {
            return Err(format!("label {name} appears twice"));
        }
        labels.push(Label {
            name: name.to_string(),
            value,
        });
        text = after.trim_start_matches([' ', '\t']);
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err(format!(
                "expected ',' or '}}' after the value of label {name}"
            ));
        }
    }
}

/// Reads a label value up to its closing quote (the opening one is already
/// consumed), undoing `\\`, `\"` and `\n`; another escaped character is kept with
/// its backslash. Returns the value and the text after the closing quote.
fn read_quoted(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            other => out.push(other),
        }
    }
    None
}

/// A sample value: a float as Go prints it, `NaN`, `+Inf`, `-Inf` (any case).
fn parse_value(text: &str) -> Option<f64> {
    match text.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        lower => {
            // Rust would also take "infinity" and "nan" spelled other ways: only
            // digits, sign, point and exponent are numbers here.
            let ok = lower
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e'));
            if ok {
                lower.parse().ok()
            } else {
                None
            }
        }
    }
}

/// A timestamp: integer milliseconds (text format 0.0.4), or float seconds
/// (OpenMetrics) when written with a point or exponent.
fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let seconds = parse_value(text)?;
    let ms = seconds * 1000.0;
    (ms.is_finite() && ms.abs() < 9.0e18).then(|| ms.round() as i64)
}

/// At most 80 characters of `text`, for error messages.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        let head: String = text.chars().take(77).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(line: &str) -> (String, Vec<(String, String)>, f64, Option<i64>) {
        match parse_line(line, 64).unwrap() {
            Line::Sample {
                name,
                labels,
                value,
                timestamp_ms,
            } => (
                name,
                labels.into_iter().map(|l| (l.name, l.value)).collect(),
                value,
                timestamp_ms,
            ),
            other => panic!("not a sample: {other:?}"),
        }
    }

    #[test]
    fn escapes_commas_and_braces_in_label_values() {
        let (name, labels, value, ts) =
            sample(r#"a:b_c{path="C:\\dir",msg="say \"hi\"\nbye",x="}{,",} -1.5e+03 1712"#);
        assert_eq!(name, "a:b_c");
        assert_eq!(
            labels,
            vec![
                ("path".into(), r"C:\dir".into()),
                ("msg".into(), "say \"hi\"\nbye".into()),
                ("x".into(), "}{,".into()),
            ]
        );
        assert_eq!(value, -1500.0);
        assert_eq!(ts, Some(1712));
    }

    #[test]
    fn special_values() {
        assert!(sample("x NaN").2.is_nan());
        assert_eq!(sample("x +Inf").2, f64::INFINITY);
        assert_eq!(sample("x -Inf").2, f64::NEG_INFINITY);
        assert!(parse_line("x infinity", 8).is_err());
        assert!(parse_line("x 0x10", 8).is_err());
    }

    #[test]
    fn comments() {
        assert_eq!(
            parse_line(r"# HELP go_x Back\\slash\nnewline", 8).unwrap(),
            Line::Help {
                name: "go_x".into(),
                text: "Back\\slash\nnewline".into()
            }
        );
        assert_eq!(
            parse_line("# TYPE go_x  gauge ", 8).unwrap(),
            Line::Type {
                name: "go_x".into(),
                kind: "gauge".into()
            }
        );
        assert_eq!(parse_line("# EOF", 8).unwrap(), Line::Eof);
        assert_eq!(parse_line("# just words", 8).unwrap(), Line::Comment);
    }

    #[test]
    fn malformed_samples_say_what_is_wrong() {
        let err = |l: &str| parse_line(l, 2).unwrap_err();
        assert!(err(r#"x{a="1"#).contains("not closed"));
        assert!(err(r#"x{a="1",a="2"} 1"#).contains("twice"));
        assert!(err(r#"x{a="1",b="2",c="3"} 1"#).contains("more than 2"));
        assert!(err("x").contains("no value"));
        assert!(err("x 1 2 3").contains("unexpected text"));
        assert!(err("9x 1").contains("metric name"));
        assert!(err(r#"x{9="1"} 1"#).contains("label name"));
    }
}
