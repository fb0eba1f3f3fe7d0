//! The inhibition of the catalogue, once: the generated Alertmanager config
//! ([`crate::alertmanager`]) writes it as `inhibit_rules`, and the agent's
//! built-in alerting ([`crate::live::state`]) applies it itself.
//!
//! - a critical silences the warning of the same alert, target and
//!   instance (MemoryFillingUp critical over its warning, FD critical over
//!   its warning);
//! - an OOM kill silences near limit and filling-up of the same cgroup
//!   (the kill has freed the memory; the forecast starts again);
//! - every rule requires its `required` labels to be set on both sides:
//!   Alertmanager counts two missing labels as equal, so without that an
//!   alert without a target could silence, or be silenced by, every alert
//!   without one.

use std::collections::BTreeMap;

/// One label matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    /// `label="value"`.
    Eq(&'static str, &'static str),
    /// `label=~"a|b"`: one of the values.
    OneOf(&'static str, &'static [&'static str]),
}

impl Matcher {
    /// Whether `labels` match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = |l: &str| labels.get(l).map(String::as_str).unwrap_or("");
        match self {
            Matcher::Eq(label, v) => value(label) == *v,
            Matcher::OneOf(label, vs) => vs.contains(&value(label)),
        }
    }

    /// As Alertmanager writes it (`severity="critical"`).
    pub fn render(&self) -> String {
        match self {
            Matcher::Eq(label, v) => format!("{label}=\"{v}\""),
            Matcher::OneOf(label, vs) => format!("{label}=~\"{}\"", vs.join("|")),
        }
    }
}

/// One inhibition rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What the silencing alert matches.
    pub source: Vec<Matcher>,
    /// What the silenced alert matches.
    pub target: Vec<Matcher>,
    /// Labels both must have, set and equal.
    pub required: Vec<&'static str>,
    /// Labels both must have equal, or both lack (`instance`: pids and
    /// `host` repeat across hosts).
    pub equal: Vec<&'static str>,
}

impl Rule {
    /// Whether `source` silences `target` by this rule.
    pub fn inhibits(
        &self,
        source: &BTreeMap<String, String>,
        target: &BTreeMap<String, String>,
    ) -> bool {
        let get = |m: &BTreeMap<String, String>, l: &str| m.get(l).cloned().unwrap_or_default();
        self.source.iter().all(|m| m.matches(source))
            && self.target.iter().all(|m| m.matches(target))
            && self.required.iter().all(|l| {
                let (s, t) = (get(source, l), get(target, l));
                !s.is_empty() && s == t
            })
            && self.equal.iter().all(|l| get(source, l) == get(target, l))
    }
}

/// The catalogue's inhibition rules.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            source: vec![Matcher::Eq("severity", "critical")],
            target: vec![Matcher::Eq("severity", "warning")],
            required: vec!["alertname", "target"],
            equal: vec!["instance"],
        },
        Rule {
            source: vec![Matcher::Eq("alertname", "MemoryOOMKilled")],
            target: vec![Matcher::OneOf(
                "alertname",
                &["MemoryNearLimit", "MemoryFillingUp"],
            )],
            required: vec!["cgroup"],
            equal: vec!["instance"],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_critical_silences_its_own_warning_only_with_labels_set() {
        let rules = rules();
        let crit = labels(&[
            ("alertname", "MemoryFillingUp"),
            ("severity", "critical"),
            ("target", "cgroup:/a"),
        ]);
        let warn = |target: &str| {
            labels(&[
                ("alertname", "MemoryFillingUp"),
                ("severity", "warning"),
                ("target", target),
            ])
        };
        assert!(rules[0].inhibits(&crit, &warn("cgroup:/a")));
        assert!(!rules[0].inhibits(&crit, &warn("cgroup:/b")));
        assert!(!rules[0].inhibits(&warn("cgroup:/a"), &crit));
        let bare_crit = labels(&[("alertname", "X"), ("severity", "critical")]);
        let bare_warn = labels(&[("alertname", "X"), ("severity", "warning")]);
        assert!(!rules[0].inhibits(&bare_crit, &bare_warn), "no target");
        let kill = labels(&[("alertname", "MemoryOOMKilled"), ("cgroup", "/a")]);
        let near = labels(&[("alertname", "MemoryNearLimit"), ("cgroup", "/a")]);
        let other = labels(&[("alertname", "MemoryNearLimit"), ("cgroup", "/b")]);
        assert!(rules[1].inhibits(&kill, &near));
        assert!(!rules[1].inhibits(&kill, &other));
    }
}
