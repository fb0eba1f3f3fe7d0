//! The config's `[alerting]` table: built-in alerting (docs/alerts.md,
//! "Built-in alerting"). Off until a notifier URL is set.

use super::config::{positive, ConfigError};
use crate::duration;
use memlens_alert::catalogue::Catalogue;
use memlens_alert::live::builtin;
use memlens_alert::live::http::HttpUrl;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[alerting]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// Alertmanager's base URL (`http://HOST:9093`): alerts are POSTed to
    /// its `/api/v2/alerts`.
    pub alertmanager_url: Option<String>,
    /// A webhook URL: each change of an alert is POSTed to it as JSON.
    pub webhook_url: Option<String>,
    /// How long an alert's condition must be absent before it resolves
    /// (findings are already held: docs/findings.md; this bridges a step
    /// between severities, so the critical inhibits its warning, and keeps
    /// a kill's alert up).
    #[serde(with = "duration::config_value")]
    pub hold: Duration,
    /// How often firing alerts are sent to Alertmanager again (their
    /// `endsAt` is four of these ahead).
    #[serde(with = "duration::config_value")]
    pub resend_interval: Duration,
    /// How long a notification may take to connect, and each read or write.
    #[serde(with = "duration::config_value")]
    pub timeout: Duration,
    /// The longest wait between two retries of a failing notification.
    #[serde(with = "duration::config_value")]
    pub max_backoff: Duration,
    /// The most notifications waiting per notifier; more drop the oldest
    /// (counted on /metrics).
    pub queue_capacity: usize,
    /// Labels added to every alert (`instance = "web-1"`).
    pub labels: BTreeMap<String, String>,
    /// `for` by alert name (`MemoryFillingUp = "1m"`); the default is the
    /// catalogue's (the `[alerts]` table's `finding_for`).
    #[serde(rename = "for")]
    pub for_by_alert: BTreeMap<String, toml::Value>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            alertmanager_url: None,
            webhook_url: None,
            hold: Duration::from_secs(60),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            queue_capacity: 256,
            labels: BTreeMap::new(),
            for_by_alert: BTreeMap::new(),
        }
    }
}

/// The label memlens's own alerts carry, telling them apart from the same
/// alert coming through Prometheus.
pub const SENDER_LABEL: (&str, &str) = ("sender", "memlens-watch");

impl AlertingConfig {
    /// Whether a notifier is set.
    pub fn enabled(&self) -> bool {
        self.alertmanager_url.is_some() || self.webhook_url.is_some()
    }

    /// The `for` of each alert named in `[alerting.for]`, in seconds;
    /// `catalogue` says which names exist.
    pub fn for_seconds(&self, catalogue: &Catalogue) -> Result<BTreeMap<String, f64>, ConfigError> {
        let known: Vec<&str> = catalogue
            .alerts
            .iter()
            .filter(|a| builtin::is_builtin(a))
            .map(|a| a.spec.name)
            .collect();
        let mut out = BTreeMap::new();
        for (name, value) in &self.for_by_alert {
            let invalid = |reason: String| ConfigError::Invalid {
                field: "alerting.for",
                reason: format!("{name}: {reason}"),
            };
            if !known.contains(&name.as_str()) {
                let mut names = known.clone();
                names.dedup();
                return Err(invalid(format!(
                    "no such alert among memlens's built-in ones ({})",
                    names.join(", ")
                )));
            }
            let parsed = match value {
                toml::Value::String(text) => duration::parse(text),
                toml::Value::Integer(n) => duration::from_seconds(*n as f64),
                toml::Value::Float(x) => duration::from_seconds(*x),
                other => return Err(invalid(format!("{other} is not a duration (\"5m\")"))),
            };
            let d = parsed.map_err(|err| invalid(err.to_string()))?;
            out.insert(name.clone(), d.as_secs_f64());
        }
        Ok(out)
    }

    /// Checks the URLs, labels and ranges (`catalogue`: the alert names).
    pub fn validate(&self, catalogue: &Catalogue) -> Result<(), ConfigError> {
        for (field, url) in [
            ("alerting.alertmanager_url", &self.alertmanager_url),
            ("alerting.webhook_url", &self.webhook_url),
        ] {
            if let Some(Err(reason)) = url.as_deref().map(HttpUrl::parse) {
                return Err(ConfigError::Invalid { field, reason });
            }
        }
        positive("alerting.resend_interval", self.resend_interval)?;
        positive("alerting.timeout", self.timeout)?;
        positive("alerting.max_backoff", self.max_backoff)?;
        if self.queue_capacity == 0 {
            return Err(ConfigError::Invalid {
                field: "alerting.queue_capacity",
                reason: "must be at least 1".to_string(),
            });
        }
        for name in self.labels.keys() {
            let valid = !name.is_empty()
                && !name.starts_with("__")
                && name.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
            let own = ["alertname", "severity", "target", "cgroup", "pid", "comm"];
            if !valid || own.contains(&name.as_str()) || name == SENDER_LABEL.0 {
                return Err(ConfigError::Invalid {
                    field: "alerting.labels",
                    reason: format!("{name:?} is not a label name memlens leaves free"),
                });
            }
        }
        self.for_seconds(catalogue).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::WatchConfig;

    #[test]
    fn unknown_alerts_and_negative_fors_are_named() {
        let ok = "[alerting]\nwebhook_url = \"http://127.0.0.1:1/hook\"\n\
                  [alerting.for]\nMemoryFillingUp = \"30s\"\nMemoryNearLimit = 5\n";
        let config = WatchConfig::from_toml("t.toml", ok).unwrap();
        config.validate().unwrap();
        assert!(config.to_toml().contains("MemoryFillingUp = \"30s\""));
        for (text, want) in [
            (
                "[alerting.for]\nMemoryFillingUpp = \"1m\"\n",
                "alerting.for MemoryFillingUpp: no such alert",
            ),
            (
                "[alerting.for]\nMemoryFillingUp = \"-1m\"\n",
                "alerting.for MemoryFillingUp: \"-1m\" is negative",
            ),
            (
                "[alerting.for]\nMemoryFillingUp = -5\n",
                "alerting.for MemoryFillingUp: \"-5\" is negative",
            ),
            (
                "[alerting]\nalertmanager_url = \"https://am\"\n",
                "alerting.alertmanager_url",
            ),
            (
                "[alerting]\nqueue_capacity = 0\n",
                "alerting.queue_capacity",
            ),
            ("[alerting.labels]\nseverity = \"x\"\n", "alerting.labels"),
        ] {
            let config = WatchConfig::from_toml("t.toml", text).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
