//! The alert catalogue: every alert with its meaning, expression, `for`,
//! severity and runbook, over memlens's own `/metrics` names or over the
//! names hosts without memlens have (cAdvisor, node-exporter,
//! client_golang). docs/alerts.md shows it ([`markdown`]).

use crate::thresholds::{prom_duration, Thresholds};
use crate::{goruntime, memory, system};

/// Which series the expressions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// memlens's own names (`memlens watch --listen`, docs/metrics.md).
    Memlens,
    /// cAdvisor `container_*`, node-exporter `node_*`, client_golang `go_*`
    /// and `process_*`.
    Standard,
}

impl Naming {
    /// The rule group's name.
    pub fn group(self) -> &'static str {
        match self {
            Naming::Memlens => "memlens",
            Naming::Standard => "memlens-standard-names",
        }
    }
}

/// An alert's severity label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Act soon.
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What an alert rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// A memlens finding (its id, docs/findings.md), exported on `/metrics`.
    Finding(&'static str),
    /// A PromQL expression over raw series.
    Raw,
}

/// What an alert means and what to do, the same over either naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The alert's name.
    pub name: &'static str,
    /// What firing means (the `description` annotation).
    pub meaning: &'static str,
    /// What to do (the `runbook` annotation).
    pub runbook: &'static str,
}

/// One alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Name, meaning, runbook.
    pub spec: Spec,
    /// The `severity` label.
    pub severity: Severity,
    /// The rule's `for`, in seconds.
    pub for_seconds: f64,
    /// The PromQL expression; every alert's series carry a `target` label.
    pub expr: String,
    /// The `summary` annotation (a template over `$labels` and `$value`).
    pub summary: String,
    /// A finding or raw series.
    pub basis: Basis,
}

/// One recording rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The recorded series' name.
    pub record: &'static str,
    /// Its expression.
    pub expr: String,
}

/// The rules of one naming.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    /// Which names.
    pub naming: Naming,
    /// Recording rules, in evaluation order (later ones read earlier ones).
    pub recording: Vec<Recording>,
    /// Alerting rules.
    pub alerts: Vec<Alert>,
}

/// Every rule over `naming` with thresholds `t`.
pub fn catalogue(naming: Naming, t: &Thresholds) -> Catalogue {
    let mut recording = Vec::new();
    let mut alerts = Vec::new();
    memory::rules(naming, t, &mut recording, &mut alerts);
    goruntime::rules(naming, t, &mut recording, &mut alerts);
    system::rules(naming, t, &mut recording, &mut alerts);
    Catalogue {
        naming,
        recording,
        alerts,
    }
}

/// `label_replace(expr, "target", "PREFIX$1", "SOURCE", "(.+)")`: gives the
/// alert a `target` label (the inhibition rules match on it).
pub fn with_target(expr: &str, prefix: &str, source: &str) -> String {
    format!("label_replace({expr}, \"target\", \"{prefix}$1\", \"{source}\", \"(.+)\")")
}

/// Gives a memlens process series the `target` its findings carry
/// (`memlens_cardinality::process_target`): `process:COMM@CGROUP`, with
/// `#N` appended when it has an `instance_index` N. Built from the labels
/// that name a process's series whether or not `pid` is exported too.
pub fn with_process_target(expr: &str) -> String {
    let joined = format!("label_join({expr}, \"target\", \"@\", \"comm\", \"cgroup\")");
    let prefixed =
        format!("label_replace({joined}, \"target\", \"process:$1\", \"target\", \"(.*)\")");
    let indexed =
        format!("label_join({prefixed}, \"target\", \"#\", \"target\", \"instance_index\")");
    // Without an index the join leaves a trailing `#`.
    format!("label_replace({indexed}, \"target\", \"$1\", \"target\", \"(.*)#\")")
}

/// A target label that is the same for every series (`host`).
pub fn with_fixed_target(expr: &str, target: &str) -> String {
    format!("label_replace({expr}, \"target\", \"{target}\", \"\", \"\")")
}

/// The catalogue as docs/alerts.md shows it: one section per alert with its
/// meaning, runbook and, for each naming, severity, `for`, basis and
/// expression (the default thresholds unless `t` says otherwise).
pub fn markdown(t: &Thresholds) -> String {
    let memlens = catalogue(Naming::Memlens, t);
    let standard = catalogue(Naming::Standard, t);
    let mut names: Vec<&'static str> = Vec::new();
    for alert in memlens.alerts.iter().chain(&standard.alerts) {
        if !names.contains(&alert.spec.name) {
            names.push(alert.spec.name);
        }
    }
    let mut out = String::new();
    for name in names {
        let of = |c: &Catalogue| -> Vec<Alert> {
            c.alerts
                .iter()
                .filter(|a| a.spec.name == name)
                .cloned()
                .collect()
        };
        let (m, s) = (of(&memlens), of(&standard));
        let spec = m
            .first()
            .or(s.first())
            .expect("a listed name has an alert")
            .spec;
        out.push_str(&format!("### {name}\n\n{}\n\n", spec.meaning));
        for (label, alerts) in [("memlens names", &m), ("standard names", &s)] {
            if alerts.is_empty() {
                out.push_str(&format!("- **{label}**: none (no such series)\n"));
            }
            for a in alerts {
                let basis = match a.basis {
                    Basis::Finding(id) => format!("finding `{id}`"),
                    Basis::Raw => "raw series".to_string(),
                };
                out.push_str(&format!(
                    "- **{label}**, {}, for {}, {basis}:\n  `{}`\n",
                    a.severity.as_str(),
                    prom_duration(a.for_seconds),
                    a.expr
                ));
            }
        }
        out.push_str(&format!("\nRunbook: {}\n\n", spec.runbook));
    }
    let recorded: Vec<&Recording> = memlens
        .recording
        .iter()
        .chain(&standard.recording)
        .collect();
    out.push_str("### Recording rules\n\n");
    for r in recorded {
        out.push_str(&format!("- `{}` = `{}`\n", r.record, r.expr));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_names_a_target_and_names_are_unique_per_severity() {
        for naming in [Naming::Memlens, Naming::Standard] {
            let c = catalogue(naming, &Thresholds::default());
            let mut seen = std::collections::BTreeSet::new();
            for a in &c.alerts {
                // A finding's series carry memlens's own `target` label.
                let labelled =
                    matches!(a.basis, Basis::Finding(_)) || a.expr.contains("\"target\"");
                assert!(labelled, "{} has no target", a.spec.name);
                assert!(
                    seen.insert((a.spec.name, a.severity)),
                    "{} twice",
                    a.spec.name
                );
            }
        }
    }

    #[test]
    fn the_docs_show_the_catalogue_of_the_default_thresholds() {
        let doc = include_str!("../../../docs/alerts.md");
        let generated = markdown(&Thresholds::default());
        assert!(
            doc.contains(&generated),
            "docs/alerts.md is not up to date: `memlens rules --markdown` prints the catalogue"
        );
    }
}
