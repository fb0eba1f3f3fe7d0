//! Relabel rules as Prometheus users write them (`metric_relabel_configs`),
//! applied to each series before it leaves the agent (`/metrics` and every
//! remote-write URL): `keep`, `drop`, `replace`, `labeldrop`, `labelkeep`,
//! `labelmap`, with `source_labels` joined by `separator`, a fully anchored
//! `regex` (RE2 syntax; the `regex` crate reads the same) and `$1`/`${name}`
//! in `replacement` and `target_label`. The metric name is the label
//! `__name__`.
//!
//! Unlike Prometheus, `labeldrop` and `labelkeep` never remove `__name__`
//! (a series without a name cannot be sent), and a rule that would set a
//! label name that is not valid is skipped for that series.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One rule as the config file writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values, joined by `separator`, the regex is matched
    /// against (`keep`, `drop`, `replace`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    /// Joins the source labels' values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// The regex, anchored at both ends (default `(.*)`).
    #[serde(default = "default_regex")]
    pub regex: String,
    /// The label `replace` writes (may use `$1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    /// The value `replace` writes, the name `labelmap` writes (default `$1`).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// `replace` (default), `keep`, `drop`, `labeldrop`, `labelkeep`, `labelmap`.
    #[serde(default = "default_action")]
    pub action: String,
}

fn default_separator() -> String {
    ";".to_string()
}
fn default_regex() -> String {
    "(.*)".to_string()
}
fn default_replacement() -> String {
    "$1".to_string()
}
fn default_action() -> String {
    "replace".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replace,
    Keep,
    Drop,
    LabelDrop,
    LabelKeep,
    LabelMap,
}

#[derive(Debug, Clone)]
struct Rule {
    action: Action,
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    target_label: String,
    replacement: String,
}

/// Compiled rules, applied in order.
#[derive(Debug, Clone, Default)]
pub struct Relabeler {
    rules: Vec<Rule>,
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
}

impl Relabeler {
    /// Compiles `configs`; the error names the rule (`relabel[2]`) and
    /// what is wrong with it.
    pub fn compile(configs: &[RelabelConfig]) -> Result<Relabeler, String> {
        let mut rules = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let at = |what: String| format!("relabel[{i}]: {what}");
            let action = match c.action.as_str() {
                "replace" => Action::Replace,
                "keep" => Action::Keep,
                "drop" => Action::Drop,
                "labeldrop" => Action::LabelDrop,
                "labelkeep" => Action::LabelKeep,
                "labelmap" => Action::LabelMap,
                other => {
                    return Err(at(format!(
                        "action {other:?} is not one of replace, keep, drop, labeldrop, \
                         labelkeep, labelmap"
                    )))
                }
            };
            let regex = Regex::new(&format!("^(?:{})$", c.regex))
                .map_err(|err| at(format!("regex {:?}: {err}", c.regex)))?;
            for label in &c.source_labels {
                if !valid_label_name(label) {
                    return Err(at(format!("source label {label:?} is not a label name")));
                }
            }
            if matches!(action, Action::Keep | Action::Drop | Action::Replace)
                && c.source_labels.is_empty()
            {
                return Err(at(format!("action {} needs source_labels", c.action)));
            }
            let target_label = c.target_label.clone().unwrap_or_default();
            if action == Action::Replace {
                if target_label.is_empty() {
                    return Err(at("action replace needs target_label".to_string()));
                }
                if !target_label.contains('$') && !valid_label_name(&target_label) {
                    return Err(at(format!(
                        "target_label {target_label:?} is not a label name"
                    )));
                }
            }
            rules.push(Rule {
                action,
                source_labels: c.source_labels.clone(),
                separator: c.separator.clone(),
                regex,
                target_label,
                replacement: c.replacement.clone(),
            });
        }
        Ok(Relabeler { rules })
    }

    /// Whether there are no rules (the series pass unchanged).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules to one series' labels (`__name__` among them);
    /// false when the series is dropped. Labels left with an empty value
    /// are removed, as Prometheus does.
    pub fn apply(&self, labels: &mut Vec<(String, String)>) -> bool {
        for rule in &self.rules {
            let get = |labels: &Vec<(String, String)>, name: &str| {
                labels
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(String::new(), |(_, v)| v.clone())
            };
            let value = rule
                .source_labels
                .iter()
                .map(|l| get(labels, l))
                .collect::<Vec<_>>()
                .join(&rule.separator);
            match rule.action {
                Action::Keep => {
                    if !rule.regex.is_match(&value) {
                        return false;
                    }
                }
                Action::Drop => {
                    if rule.regex.is_match(&value) {
                        return false;
                    }
                }
                Action::Replace => {
                    let Some(captures) = rule.regex.captures(&value) else {
                        continue;
                    };
                    let mut target = String::new();
                    captures.expand(&rule.target_label, &mut target);
                    let mut replaced = String::new();
                    captures.expand(&rule.replacement, &mut replaced);
                    if !valid_label_name(&target) {
                        continue;
                    }
                    set(labels, &target, replaced);
                }
                Action::LabelDrop => {
                    labels.retain(|(n, _)| n == "__name__" || !rule.regex.is_match(n))
                }
                Action::LabelKeep => {
                    labels.retain(|(n, _)| n == "__name__" || rule.regex.is_match(n))
                }
                Action::LabelMap => {
                    let mut added = Vec::new();
                    for (name, value) in labels.iter() {
                        if let Some(captures) = rule.regex.captures(name) {
                            let mut new_name = String::new();
                            captures.expand(&rule.replacement, &mut new_name);
                            if valid_label_name(&new_name) {
                                added.push((new_name, value.clone()));
                            }
                        }
                    }
                    for (name, value) in added {
                        set(labels, &name, value);
                    }
                }
            }
        }
        labels.retain(|(_, v)| !v.is_empty());
        labels.iter().any(|(n, _)| n == "__name__")
    }
}

fn set(labels: &mut Vec<(String, String)>, name: &str, value: String) {
    match labels.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value,
        None => labels.push((name.to_string(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: &str, source: &[&str], regex: &str) -> RelabelConfig {
        RelabelConfig {
            source_labels: source.iter().map(|s| s.to_string()).collect(),
            separator: default_separator(),
            regex: regex.to_string(),
            target_label: None,
            replacement: default_replacement(),
            action: action.to_string(),
        }
    }

    fn series(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keep_and_drop_match_the_whole_value() {
        let drop =
            Relabeler::compile(&[rule("drop", &["__name__"], "memlens_process_oom_.*")]).unwrap();
        assert!(!drop.apply(&mut series(&[("__name__", "memlens_process_oom_score")])));
        // Anchored: a match inside the value is not a match.
        assert!(drop.apply(&mut series(&[("__name__", "x_memlens_process_oom_score")])));
        let keep = Relabeler::compile(&[rule("keep", &["__name__", "comm"], "memlens_go_.*;api")])
            .unwrap();
        assert!(keep.apply(&mut series(&[
            ("__name__", "memlens_go_goroutines"),
            ("comm", "api")
        ])));
        assert!(!keep.apply(&mut series(&[
            ("__name__", "memlens_go_goroutines"),
            ("comm", "db")
        ])));
        assert!(!keep.apply(&mut series(&[("__name__", "memlens_go_goroutines")])));
    }

    #[test]
    fn replace_renames_a_label_with_labeldrop() {
        let rules = Relabeler::compile(&[
            RelabelConfig {
                target_label: Some("program".into()),
                ..rule("replace", &["comm"], "(.+)")
            },
            rule("labeldrop", &[], "comm|__name__"),
            RelabelConfig {
                target_label: Some("team".into()),
                replacement: "t-${1}".into(),
                ..rule("replace", &["cgroup"], "/(\\w+)/.*")
            },
        ])
        .unwrap();
        let mut labels = series(&[("__name__", "m"), ("comm", "api"), ("cgroup", "/a/b")]);
        assert!(rules.apply(&mut labels));
        assert_eq!(
            labels,
            series(&[
                ("__name__", "m"),
                ("cgroup", "/a/b"),
                ("program", "api"),
                ("team", "t-a")
            ])
        );
        // No match: nothing written; an empty result removes the label.
        let mut labels = series(&[("__name__", "m"), ("cgroup", "/")]);
        assert!(rules.apply(&mut labels));
        assert_eq!(labels, series(&[("__name__", "m"), ("cgroup", "/")]));
        let clear = Relabeler::compile(&[RelabelConfig {
            target_label: Some("cgroup".into()),
            replacement: String::new(),
            ..rule("replace", &["cgroup"], ".*")
        }])
        .unwrap();
        let mut labels = series(&[("__name__", "m"), ("cgroup", "/x")]);
        assert!(clear.apply(&mut labels));
        assert_eq!(labels, series(&[("__name__", "m")]));
    }

    #[test]
    fn labelmap_and_labelkeep() {
        let rules = Relabeler::compile(&[
            RelabelConfig {
                replacement: "k8s_$1".into(),
                ..rule("labelmap", &[], "(service)")
            },
            rule("labelkeep", &[], "k8s_.*|comm"),
        ])
        .unwrap();
        let mut labels = series(&[("__name__", "m"), ("service", "pod:1"), ("pid", "4")]);
        assert!(rules.apply(&mut labels));
        assert_eq!(
            labels,
            series(&[("__name__", "m"), ("k8s_service", "pod:1")])
        );
    }

    #[test]
    fn bad_rules_are_named() {
        for (config, want) in [
            (
                rule("explode", &["a"], "x"),
                "relabel[0]: action \"explode\"",
            ),
            (rule("drop", &["a"], "("), "relabel[0]: regex \"(\""),
            (rule("drop", &[], "x"), "needs source_labels"),
            (rule("replace", &["a"], "x"), "needs target_label"),
            (rule("keep", &["a-b"], "x"), "not a label name"),
            (
                RelabelConfig {
                    target_label: Some("1x".into()),
                    ..rule("replace", &["a"], "x")
                },
                "target_label \"1x\"",
            ),
        ] {
            let err = Relabeler::compile(&[config]).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
