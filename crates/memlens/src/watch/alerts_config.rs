//! The config's `[alerts]` table: the thresholds, `for` durations and
//! windows of the generated Prometheus rules (`memlens rules`), read from
//! the same file as the agent's settings. The keys and their meaning are
//! the alert crate's ([`memlens_alert::thresholds::Thresholds::FIELDS`]);
//! durations take the grammar of [`crate::duration`] (or seconds), the
//! others numbers.

use crate::duration;
use memlens_alert::thresholds::{Kind, Thresholds};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[alerts]`: every key has a default; unknown keys are an error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertsConfig(pub Thresholds);

impl Serialize for AlertsConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Thresholds::FIELDS.len()))?;
        for field in Thresholds::FIELDS {
            let value = self.0.get(field.key).unwrap_or_default();
            match field.kind {
                Kind::Seconds | Kind::For => {
                    let text = duration::from_seconds(value)
                        .map(duration::format)
                        .unwrap_or_else(|_| value.to_string());
                    map.serialize_entry(field.key, &text)?;
                }
                Kind::Ratio | Kind::Number => map.serialize_entry(field.key, &value)?,
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AlertsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, toml::Value>::deserialize(deserializer)?;
        let mut thresholds = Thresholds::default();
        for (key, value) in table {
            let field = Thresholds::FIELDS
                .iter()
                .find(|f| f.key == key)
                .ok_or_else(|| de::Error::custom(format!("alerts: unknown key `{key}`")))?;
            let number = match (&value, field.kind) {
                (toml::Value::String(text), Kind::Seconds | Kind::For) => duration::parse(text)
                    .map(|d: Duration| d.as_secs_f64())
                    .map_err(|err| de::Error::custom(format!("alerts.{key}: {err}")))?,
                (toml::Value::Integer(n), _) => *n as f64,
                (toml::Value::Float(x), _) => *x,
                _ => {
                    let expected = match field.kind {
                        Kind::Seconds | Kind::For => "a duration (\"5m\") or seconds",
                        Kind::Ratio | Kind::Number => "a number",
                    };
                    return Err(de::Error::custom(format!(
                        "alerts.{key}: {value} is not {expected}"
                    )));
                }
            };
            thresholds.set(&key, number);
        }
        Ok(AlertsConfig(thresholds))
    }
}

/// `printed` (a whole config as TOML) with each key of its `[alerts]`
/// table preceded by a comment saying what it does.
pub fn with_docs(printed: &str) -> String {
    let mut out = String::with_capacity(printed.len() * 2);
    let mut in_alerts = false;
    for line in printed.lines() {
        if line.starts_with('[') {
            in_alerts = line.trim() == "[alerts]";
        }
        let key = line.split(" = ").next().unwrap_or_default();
        if let Some(field) = Thresholds::FIELDS
            .iter()
            .find(|f| in_alerts && f.key == key)
        {
            out.push_str(&format!("#{}\n", field.doc));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::WatchConfig;

    #[test]
    fn the_alerts_table_sets_thresholds_and_prints_every_key() {
        let text =
            "[alerts]\ncritical_time_left = \"5m\"\nnear_limit_ratio = 0.85\nfilling_up_for = 0\n";
        let config = WatchConfig::from_toml("t.toml", text).unwrap();
        let t = &config.alerts.0;
        assert_eq!(t.critical_time_left, 300.0);
        assert_eq!(t.near_limit_ratio, 0.85);
        assert_eq!(t.filling_up_for, 0.0);
        config.validate().unwrap();
        let printed = config.to_toml();
        assert!(
            printed.contains("critical_time_left = \"5m\"\n"),
            "{printed}"
        );
        assert!(printed.contains("trend_window = \"30m\"\n"), "{printed}");
        assert!(printed.contains("near_limit_ratio = 0.85\n"), "{printed}");
        assert_eq!(WatchConfig::from_toml("printed", &printed).unwrap(), config);
    }

    #[test]
    fn bad_alert_keys_and_values_are_named() {
        let err = WatchConfig::from_toml("t.toml", "[alerts]\nno_such = 1\n").unwrap_err();
        assert!(
            err.to_string().contains("alerts: unknown key `no_such`"),
            "{err}"
        );
        let err =
            WatchConfig::from_toml("t.toml", "[alerts]\ntrend_window = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("alerts.trend_window"), "{err}");
        let config = WatchConfig::from_toml("t.toml", "[alerts]\nnear_limit_ratio = 2\n").unwrap();
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("alerts.near_limit_ratio"), "{err}");
    }
}
