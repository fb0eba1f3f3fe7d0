//! The alerts' states (pure: time comes in as a value). Every evaluation
//! gets the conditions that hold now; an alert is one label set:
//!
//! - **dedup**: conditions with the same labels are one alert (the last
//!   one's annotations and evidence win);
//! - **for**: a new alert is pending until its condition has held for its
//!   `for` without a break; a pending alert whose condition goes away is
//!   dropped without a word;
//! - **hold**: a firing alert resolves once its condition has been absent
//!   for its hold without a break (a condition back in time keeps it
//!   firing; an event such as a kill fires once and stays for the hold,
//!   and as long as it silences an alert whose condition holds);
//! - **inhibition** ([`crate::inhibit`]): a firing alert matched by a rule
//!   against another firing alert is inhibited: kept, not notified.
//!
//! Each evaluation returns the [`Change`]s notifiers act on.

use crate::inhibit::Rule;
use std::collections::BTreeMap;

/// A label set (`alertname`, `severity`, `target`, ...).
pub type Labels = BTreeMap<String, String>;

/// A number with its unit (`usage_bytes` = 1.2e8 `bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    /// What it is.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`bytes`, `seconds`, `ms`, `ratio`, or empty for a count).
    pub unit: String,
}

/// A profile the agent kept, and the command that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileLink {
    /// Its id in the history.
    pub id: i64,
    /// `heap`, `goroutine` (pprof) or `goroutine_debug2` (gzipped text).
    pub kind: String,
    /// When it was taken (ms since the Unix epoch).
    pub ts_ms: i64,
}

impl ProfileLink {
    /// The command that writes it to a file: `go tool pprof` reads a
    /// profile, `memlens goroutines` (or `zcat`) a `?debug=2` dump.
    pub fn command(&self) -> String {
        let extension = if self.kind == "goroutine_debug2" {
            "txt.gz"
        } else {
            "pb.gz"
        };
        format!(
            "memlens profiles --id {} -o {}-{}.{extension}",
            self.id, self.kind, self.id
        )
    }
}

/// What holds now, for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The alert's labels (`alertname` and `severity` among them).
    pub labels: Labels,
    /// `summary`, `description`, `runbook`, ...
    pub annotations: BTreeMap<String, String>,
    /// Its numbers.
    pub evidence: Vec<Quantity>,
    /// Profiles kept of its target.
    pub profiles: Vec<ProfileLink>,
    /// The agent's dashboard page of its target, when the agent serves one.
    pub dashboard_url: Option<String>,
    /// How long it must hold before the alert fires.
    pub for_ms: i64,
    /// How long it must be absent before the alert resolves.
    pub hold_ms: i64,
    /// An event (a kill): the alert also stays while it silences an alert
    /// whose condition still holds, so what it silenced is never announced
    /// again when it resolves (the near limit of a killed cgroup).
    pub outlasts_inhibited: bool,
}

/// One alert's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// What it last was.
    pub condition: Condition,
    /// When its condition began to hold (this episode).
    pub active_since_ms: i64,
    /// When it fired (`None` while pending).
    pub firing_since_ms: Option<i64>,
    /// The last evaluation its condition held.
    pub last_seen_ms: i64,
    /// When it resolved.
    pub resolved_at_ms: Option<i64>,
    /// The alerts silencing it (their `alertname`s), empty when notified.
    pub inhibited_by: Vec<String>,
}

impl Alert {
    /// Firing (not pending, not resolved).
    pub fn firing(&self) -> bool {
        self.firing_since_ms.is_some() && self.resolved_at_ms.is_none()
    }

    /// Its labels.
    pub fn labels(&self) -> &Labels {
        &self.condition.labels
    }
}

/// What changed at an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// It fired, or came out from under an inhibition while its condition
    /// holds.
    Fired(Alert),
    /// It was firing and is now silenced by another firing alert.
    Inhibited(Alert),
    /// It resolved (after its hold), inhibited or not.
    Resolved(Alert),
}

/// Every alert's state.
#[derive(Debug, Clone)]
pub struct Alerts {
    rules: Vec<Rule>,
    alerts: BTreeMap<Labels, Alert>,
}

impl Alerts {
    /// No alerts yet; inhibition by `rules` ([`crate::inhibit::rules`]).
    pub fn new(rules: Vec<Rule>) -> Alerts {
        Alerts {
            rules,
            alerts: BTreeMap::new(),
        }
    }

    /// Pending and firing alerts.
    pub fn all(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// Firing alerts that are not inhibited: what is notified.
    pub fn notified(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.firing() && a.inhibited_by.is_empty())
    }

    /// One evaluation at `now_ms` with the conditions that hold now.
    pub fn evaluate(&mut self, now_ms: i64, conditions: Vec<Condition>) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut present: BTreeMap<Labels, Condition> = BTreeMap::new();
        for c in conditions {
            present.insert(c.labels.clone(), c);
        }
        for (labels, condition) in present {
            let alert = self.alerts.entry(labels).or_insert_with(|| Alert {
                condition: condition.clone(),
                active_since_ms: now_ms,
                firing_since_ms: None,
                last_seen_ms: now_ms,
                resolved_at_ms: None,
                inhibited_by: Vec::new(),
            });
            alert.condition = condition;
            alert.last_seen_ms = now_ms;
        }
        // Resolve or drop what is absent; fire what held long enough.
        let present: Vec<Labels> = self
            .alerts
            .values()
            .filter(|a| a.last_seen_ms == now_ms)
            .map(|a| a.labels().clone())
            .collect();
        let rules = &self.rules;
        let silences_present = |source: &Labels| {
            present
                .iter()
                .any(|p| p != source && rules.iter().any(|r| r.inhibits(source, p)))
        };
        let mut gone = Vec::new();
        for (labels, alert) in self.alerts.iter_mut() {
            let mut absent_ms = now_ms - alert.last_seen_ms;
            if alert.condition.outlasts_inhibited && silences_present(labels) {
                absent_ms = 0;
            }
            match alert.firing_since_ms {
                None if absent_ms > 0 => gone.push(labels.clone()),
                None => {
                    if now_ms - alert.active_since_ms >= alert.condition.for_ms {
                        alert.firing_since_ms = Some(now_ms);
                    }
                }
                Some(_) if absent_ms > 0 && absent_ms >= alert.condition.hold_ms => {
                    alert.resolved_at_ms = Some(now_ms);
                    gone.push(labels.clone());
                }
                Some(_) => {}
            }
        }
        // Inhibition among what fires now (a resolved alert silences nothing).
        let firing: Vec<(Labels, String)> = self
            .alerts
            .values()
            .filter(|a| a.firing())
            .map(|a| {
                let name = a.labels().get("alertname").cloned().unwrap_or_default();
                (a.labels().clone(), name)
            })
            .collect();
        for alert in self.alerts.values_mut() {
            let was_notified = alert.inhibited_by.is_empty();
            let had_fired = alert.firing_since_ms.is_some_and(|t| t < now_ms);
            if !alert.firing() {
                if alert.resolved_at_ms.is_some() {
                    changes.push(Change::Resolved(alert.clone()));
                }
                continue;
            }
            alert.inhibited_by = firing
                .iter()
                .filter(|(source, _)| {
                    source != alert.labels()
                        && self
                            .rules
                            .iter()
                            .any(|r| r.inhibits(source, alert.labels()))
                })
                .map(|(_, name)| name.clone())
                .collect();
            // Out from under an inhibition, an alert whose condition is
            // gone (in its hold) is not announced again: it only resolves.
            let held = alert.last_seen_ms < now_ms;
            match (had_fired, was_notified, alert.inhibited_by.is_empty()) {
                (false, _, true) => changes.push(Change::Fired(alert.clone())),
                (true, false, true) if !held => changes.push(Change::Fired(alert.clone())),
                (true, true, false) => changes.push(Change::Inhibited(alert.clone())),
                _ => {}
            }
        }
        for labels in gone {
            self.alerts.remove(&labels);
        }
        changes
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
