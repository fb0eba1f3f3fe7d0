//! The `[remote_write]` table of the config file; the sender itself is
//! `memlens_export::remote_write`.

use super::config::{positive, ConfigError};
use crate::duration;
use memlens_export::http;
use memlens_export::remote_write::{check_extra_labels, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The `[remote_write]` table of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Where to POST (`http://HOST:PORT/api/v1/write`; https is not supported).
    pub url: String,
    /// Labels added to every series (`host = "web-1"`); they may not
    /// replace the series' own (`__name__`, `pid`, `comm`, `cgroup`, `go_version`).
    pub extra_labels: BTreeMap<String, String>,
    /// The most samples in one request (whole frames; one frame larger than
    /// this is sent alone).
    pub max_samples_per_request: usize,
    /// How long a request may take to connect, and each read or write.
    #[serde(with = "duration::config_value", alias = "timeout_seconds")]
    pub timeout: Duration,
    /// The longest wait between two retries of a failing request.
    #[serde(with = "duration::config_value", alias = "max_backoff_seconds")]
    pub max_backoff: Duration,
    /// On the first start against this URL, send all the history holds
    /// rather than starting from now.
    pub send_existing_history: bool,
    /// How long the agent spends, once stopped, sending what it stored last.
    #[serde(with = "duration::config_value", alias = "flush_timeout_seconds")]
    pub flush_timeout: Duration,
    /// The bound of the disk buffer: samples older than this that the
    /// receiver has not taken (a long outage) are skipped and counted in
    /// dropped_samples_total. Keep it below the history's retention.
    #[serde(with = "duration::config_value", alias = "max_buffer_age_seconds")]
    pub max_buffer_age: Duration,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            extra_labels: BTreeMap::new(),
            max_samples_per_request: 10_000,
            timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
            send_existing_history: false,
            flush_timeout: Duration::from_secs(10),
            max_buffer_age: Duration::from_secs(6 * 3600),
        }
    }
}

impl RemoteWriteConfig {
    /// Checks the URL, the extra labels and the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if let Err(reason) = http::HttpUrl::parse(&self.url) {
            return invalid("remote_write.url", reason);
        }
        if let Err(reason) = check_extra_labels(&self.extra_labels) {
            return invalid("remote_write.extra_labels", reason);
        }
        if self.max_samples_per_request == 0 {
            return invalid(
                "remote_write.max_samples_per_request",
                "must be at least 1".to_string(),
            );
        }
        positive("remote_write.timeout", self.timeout)?;
        positive("remote_write.max_backoff", self.max_backoff)?;
        positive("remote_write.flush_timeout", self.flush_timeout)?;
        positive("remote_write.max_buffer_age", self.max_buffer_age)
    }

    /// The sender's view of this table.
    pub fn target(&self) -> Target {
        Target {
            url: self.url.clone(),
            extra_labels: self.extra_labels.clone(),
            max_samples_per_request: self.max_samples_per_request,
            timeout: self.timeout,
            max_backoff: self.max_backoff,
            send_existing_history: self.send_existing_history,
            flush_timeout: self.flush_timeout,
            max_buffer_age: self.max_buffer_age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_list_the_counters_and_every_key() {
        let docs = include_str!("../../../../docs/metrics.md");
        for name in [
            "memlens_agent_remote_write_sent_samples_total",
            "memlens_agent_remote_write_dropped_samples_total",
            "memlens_agent_remote_write_failed_requests_total",
        ] {
            assert!(docs.contains(&format!("`{name}`")), "{name}");
        }
        let table = toml::to_string(&RemoteWriteConfig::default()).unwrap();
        for line in table.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(' ').next().unwrap();
            assert!(docs.contains(&format!("\n{key} = ")), "{key}");
        }
    }

    #[test]
    fn config_checks() {
        let ok = RemoteWriteConfig {
            url: "http://127.0.0.1:9090/api/v1/write".into(),
            extra_labels: BTreeMap::from([("host".into(), "h".into())]),
            ..RemoteWriteConfig::default()
        };
        ok.validate().unwrap();
        for (name, value, want) in [
            ("pid", "1", "sets itself"),
            ("__x", "1", "not a label name"),
            ("env", "", "empty"),
        ] {
            let bad = RemoteWriteConfig {
                extra_labels: BTreeMap::from([(name.into(), value.into())]),
                ..ok.clone()
            };
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
        let bad = RemoteWriteConfig {
            url: "https://x/y".into(),
            ..ok.clone()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("https"));
    }
}
