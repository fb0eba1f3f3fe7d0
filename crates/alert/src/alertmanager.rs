//! An Alertmanager config for the generated alerts: a route tree by
//! severity and the inhibition rules of [`crate::inhibit`] (the required
//! labels as `=~".+"` matchers on both sides).

use crate::inhibit;
use crate::yaml::Yaml;

/// Names of the receivers; they have no notifier until the user adds one
/// (a webhook, email, PagerDuty), which is what `amtool check-config`
/// accepts and what a generated file cannot know.
pub const RECEIVERS: [&str; 3] = ["memlens-default", "memlens-critical", "memlens-warning"];

fn matchers(items: &[&str]) -> Yaml {
    Yaml::strs(items.iter().copied())
}

/// The config file's text.
pub fn config() -> String {
    let route = Yaml::map([
        ("receiver", Yaml::str(RECEIVERS[0])),
        ("group_by", Yaml::strs(["alertname", "target"])),
        ("group_wait", Yaml::str("30s")),
        ("group_interval", Yaml::str("5m")),
        ("repeat_interval", Yaml::str("4h")),
        (
            "routes",
            Yaml::List(vec![
                Yaml::map([
                    ("matchers", matchers(&["severity=\"critical\""])),
                    ("receiver", Yaml::str(RECEIVERS[1])),
                    ("group_wait", Yaml::str("10s")),
                    ("repeat_interval", Yaml::str("1h")),
                ]),
                Yaml::map([
                    ("matchers", matchers(&["severity=\"warning\""])),
                    ("receiver", Yaml::str(RECEIVERS[2])),
                ]),
            ]),
        ),
    ]);
    // `required`: labels that must be set on both sides; `equal` may add
    // labels that can be missing on both (`instance`: pids and "host"
    // repeat across hosts).
    let inhibit = |rule: &inhibit::Rule| {
        let equal: Vec<&str> = rule.required.iter().chain(&rule.equal).copied().collect();
        let required: Vec<String> = rule
            .required
            .iter()
            .map(|l| format!("{l}=~\".+\""))
            .collect();
        let side = |own: &[inhibit::Matcher]| {
            let mut all: Vec<String> = own.iter().map(inhibit::Matcher::render).collect();
            all.extend(required.iter().cloned());
            Yaml::strs(all)
        };
        Yaml::map([
            ("source_matchers", side(&rule.source)),
            ("target_matchers", side(&rule.target)),
            ("equal", Yaml::strs(equal)),
        ])
    };
    let inhibit_rules = Yaml::List(inhibit::rules().iter().map(inhibit).collect());
    let receivers = Yaml::List(
        RECEIVERS
            .iter()
            .map(|name| Yaml::map([("name", Yaml::str(*name))]))
            .collect(),
    );
    Yaml::map([
        ("route", route),
        ("receivers", receivers),
        ("inhibit_rules", inhibit_rules),
    ])
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inhibition_requires_its_labels_on_both_sides() {
        let text = config();
        let rules = text.split("inhibit_rules:").nth(1).unwrap();
        for rule in rules.split("- source_matchers:").skip(1) {
            let equal = rule.split("equal:").nth(1).unwrap();
            let labels: Vec<&str> = equal
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- \""))
                .map(|l| l.trim_end_matches('"'))
                .collect();
            assert!(!labels.is_empty(), "{rule}");
            let (source, target) = rule.split_once("target_matchers:").unwrap();
            assert!(labels.len() >= 2, "{rule}");
            // Every equal label but the optional `instance` is required.
            for label in labels.into_iter().filter(|l| *l != "instance") {
                let required = format!("{label}=~\\\".+\\\"");
                assert!(source.contains(&required), "source of {rule} lacks {label}");
                assert!(
                    target.split("equal:").next().unwrap().contains(&required),
                    "target of {rule} lacks {label}"
                );
            }
        }
    }
}
