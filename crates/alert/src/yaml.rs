//! A small YAML writer for the generated files: block mappings and
//! sequences in the order they were built (rule files read best with
//! `alert` before `expr`), every string double-quoted with JSON's escapes
//! (which YAML's double-quoted style reads the same), so no value can be
//! taken for a number, a boolean or a comment.

/// A YAML document's node.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A string, always quoted.
    Str(String),
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A sequence.
    List(Vec<Yaml>),
    /// A mapping, in this order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// A mapping from `(key, value)` pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
        Yaml::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string.
    pub fn str(text: impl Into<String>) -> Yaml {
        Yaml::Str(text.into())
    }

    /// A sequence of strings.
    pub fn strs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Yaml {
        Yaml::List(items.into_iter().map(|s| Yaml::Str(s.into())).collect())
    }

    /// The document's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Map(_) | Yaml::List(_) => write_block(&mut out, self, 0),
            scalar => {
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
        out
    }
}

fn scalar_text(node: &Yaml) -> String {
    match node {
        Yaml::Str(s) => serde_json::to_string(s).expect("a string serializes"),
        Yaml::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Yaml::Num(n) => format!("{n:?}"),
        Yaml::Bool(b) => b.to_string(),
        Yaml::List(items) if items.is_empty() => "[]".to_string(),
        Yaml::Map(entries) if entries.is_empty() => "{}".to_string(),
        _ => unreachable!("a non-empty collection is no scalar"),
    }
}

fn is_block(node: &Yaml) -> bool {
    match node {
        Yaml::List(items) => !items.is_empty(),
        Yaml::Map(entries) => !entries.is_empty(),
        _ => false,
    }
}

fn key_text(key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        key.to_string()
    } else {
        serde_json::to_string(key).expect("a string serializes")
    }
}

/// Writes a non-empty collection at `indent` spaces.
fn write_block(out: &mut String, node: &Yaml, indent: usize) {
    let pad = " ".repeat(indent);
    match node {
        Yaml::Map(entries) => {
            for (key, value) in entries {
                out.push_str(&format!("{pad}{}:", key_text(key)));
                if is_block(value) {
                    out.push('\n');
                    let inner = if matches!(value, Yaml::List(_)) {
                        indent
                    } else {
                        indent + 2
                    };
                    write_block(out, value, inner);
                } else {
                    out.push_str(&format!(" {}\n", scalar_text(value)));
                }
            }
        }
        Yaml::List(items) => {
            for item in items {
                if is_block(item) {
                    let mut inner = String::new();
                    write_block(&mut inner, item, indent + 2);
                    // The item's first line starts on the dash.
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&inner[indent + 2..]);
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar_text(item)));
                }
            }
        }
        _ => unreachable!("write_block takes collections"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_blocks_keep_their_order_and_quote_every_string() {
        let doc = Yaml::map([
            (
                "groups",
                Yaml::List(vec![Yaml::map([
                    ("name", Yaml::str("memlens")),
                    (
                        "rules",
                        Yaml::List(vec![Yaml::map([
                            ("alert", Yaml::str("A")),
                            ("expr", Yaml::str("x{a=\"1\"} > 0.9")),
                            ("labels", Yaml::map([("severity", Yaml::str("warning"))])),
                        ])]),
                    ),
                ])]),
            ),
            ("empty", Yaml::List(vec![])),
            ("n", Yaml::Num(0.5)),
            ("big", Yaml::Num(1e18)),
            ("on", Yaml::Bool(true)),
            ("a.b", Yaml::strs(["x", "y"])),
        ]);
        let expected = "groups:\n\
                        - name: \"memlens\"\n  \
                          rules:\n  \
                          - alert: \"A\"\n    \
                            expr: \"x{a=\\\"1\\\"} > 0.9\"\n    \
                            labels:\n      \
                              severity: \"warning\"\n\
                        empty: []\n\
                        n: 0.5\n\
                        big: 1e18\n\
                        on: true\n\
                        \"a.b\":\n\
                        - \"x\"\n\
                        - \"y\"\n";
        assert_eq!(doc.render(), expected);
    }
}
