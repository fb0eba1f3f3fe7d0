//! The Prometheus rule file of a catalogue: one group, the recording rules
//! first (the alerts read them in the same evaluation), then the alerts
//! with `for`, a `severity` label and `summary`, `description` and
//! `runbook` annotations.

use crate::catalogue::{Basis, Catalogue};
use crate::thresholds::prom_duration;
use crate::yaml::Yaml;

/// The rule file's text (YAML, as `promtool check rules` reads it).
pub fn rule_file(catalogue: &Catalogue) -> String {
    let mut rules = Vec::new();
    for r in &catalogue.recording {
        rules.push(Yaml::map([
            ("record", Yaml::str(r.record)),
            ("expr", Yaml::str(&r.expr)),
        ]));
    }
    for a in &catalogue.alerts {
        let basis = match a.basis {
            Basis::Finding(id) => format!("memlens finding {id}"),
            Basis::Raw => "PromQL over raw series".to_string(),
        };
        rules.push(Yaml::map([
            ("alert", Yaml::str(a.spec.name)),
            ("expr", Yaml::str(&a.expr)),
            ("for", Yaml::str(prom_duration(a.for_seconds))),
            (
                "labels",
                Yaml::map([("severity", Yaml::str(a.severity.as_str()))]),
            ),
            (
                "annotations",
                Yaml::map([
                    ("summary", Yaml::str(&a.summary)),
                    ("description", Yaml::str(a.spec.meaning)),
                    ("runbook", Yaml::str(a.spec.runbook)),
                    ("basis", Yaml::str(basis)),
                ]),
            ),
        ]));
    }
    Yaml::map([(
        "groups",
        Yaml::List(vec![Yaml::map([
            ("name", Yaml::str(catalogue.naming.group())),
            ("rules", Yaml::List(rules)),
        ])]),
    )])
    .render()
}
