//! The `[[remote_write]]` tables of the config file (one per receiver; a
//! single `[remote_write]` table, as older configs have, is read as a list
//! of one); the sender itself is `memlens_export::remote_write`.

use super::config::{positive, ConfigError};
use crate::duration;
use memlens_export::client::TlsFiles;
use memlens_export::http;
use memlens_export::remote_write::{check_extra_labels, Auth, Secret, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The `[remote_write]` table of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Where to POST (`http://` or `https://HOST:PORT/api/v1/write`).
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
    /// https: the PEM CA certificate(s) the receiver's certificate must be
    /// signed by (no system roots are read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// https: a PEM client certificate to present (with `tls_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// https: the PEM private key of `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// https: the name the receiver's certificate must carry when it is not
    /// the URL's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Basic auth: the user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_username: Option<String>,
    /// Basic auth: the password (prefer `basic_auth_password_file`).
    /// `--print-config` shows it as `<secret>`, as Prometheus shows its own.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::serialize"
    )]
    pub basic_auth_password: Option<String>,
    /// Basic auth: a file holding the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// A file holding a bearer token (`Authorization: Bearer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// Headers sent with every request (`X-Scope-OrgID = "tenant"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Reads `[remote_write]` (one table, as older configs have) or
/// `[[remote_write]]` (a list).
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<RemoteWriteConfig>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<RemoteWriteConfig>),
        One(Box<RemoteWriteConfig>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(list) => list,
        OneOrMany::One(one) => vec![*one],
    })
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
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_server_name: None,
            basic_auth_username: None,
            basic_auth_password: None,
            basic_auth_password_file: None,
            bearer_token_file: None,
            headers: BTreeMap::new(),
        }
    }
}

impl RemoteWriteConfig {
    /// Checks the URL, the extra labels and the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        let url = match http::HttpUrl::parse_with_tls(&self.url) {
            Ok(url) => url,
            Err(reason) => return invalid("remote_write.url", reason),
        };
        let tls_keys = [&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file];
        if !url.tls && (tls_keys.iter().any(|k| k.is_some()) || self.tls_server_name.is_some()) {
            return invalid(
                "remote_write.tls_ca_file",
                format!("{}: tls_* keys need an https:// URL", self.url),
            );
        }
        if url.tls && self.tls_ca_file.is_none() {
            return invalid(
                "remote_write.tls_ca_file",
                format!(
                    "{}: https needs tls_ca_file (the PEM of the CA that signed the \
                     receiver's certificate)",
                    self.url
                ),
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid(
                "remote_write.tls_cert_file",
                "and tls_key_file go together".to_string(),
            );
        }
        let password =
            self.basic_auth_password.is_some() || self.basic_auth_password_file.is_some();
        if self.basic_auth_password.is_some() && self.basic_auth_password_file.is_some() {
            return invalid(
                "remote_write.basic_auth_password",
                "and basic_auth_password_file exclude each other".to_string(),
            );
        }
        if password != self.basic_auth_username.is_some() {
            return invalid(
                "remote_write.basic_auth_username",
                "needs basic_auth_password or basic_auth_password_file (and they need it)"
                    .to_string(),
            );
        }
        if password && self.bearer_token_file.is_some() {
            return invalid(
                "remote_write.bearer_token_file",
                "and basic_auth_* exclude each other".to_string(),
            );
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
            tls: TlsFiles {
                ca_file: self.tls_ca_file.clone(),
                cert_file: self.tls_cert_file.clone(),
                key_file: self.tls_key_file.clone(),
                server_name: self.tls_server_name.clone(),
            },
            auth: match (&self.basic_auth_username, &self.bearer_token_file) {
                (Some(username), _) => Auth::Basic {
                    username: username.clone(),
                    password: match (&self.basic_auth_password, &self.basic_auth_password_file) {
                        (Some(value), _) => Secret::Value(value.clone()),
                        (None, Some(path)) => Secret::File(path.clone()),
                        (None, None) => Secret::Value(String::new()),
                    },
                },
                (None, Some(path)) => Auth::BearerFile(path.clone()),
                (None, None) => Auth::None,
            },
            headers: self.headers.clone(),
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
    fn print_config_never_shows_the_password() {
        let with = RemoteWriteConfig {
            url: "https://vm.example:8428/api/v1/write".into(),
            basic_auth_username: Some("agent".into()),
            basic_auth_password: Some("hunter2".into()),
            ..RemoteWriteConfig::default()
        };
        let text = toml::to_string(&with).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("basic_auth_password = \"<secret>\""),
            "{text}"
        );
        let without = toml::to_string(&RemoteWriteConfig::default()).unwrap();
        assert!(!without.contains("basic_auth_password"), "{without}");
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
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("tls_ca_file"));
        let bad = RemoteWriteConfig {
            tls_ca_file: Some("/ca.pem".into()),
            ..ok.clone()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("https://"));
        let bad = RemoteWriteConfig {
            basic_auth_username: Some("u".into()),
            ..ok.clone()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("password"));
        let good = RemoteWriteConfig {
            url: "https://vm:8428/api/v1/write".into(),
            tls_ca_file: Some("/ca.pem".into()),
            basic_auth_username: Some("u".into()),
            basic_auth_password_file: Some("/pw".into()),
            ..ok.clone()
        };
        good.validate().unwrap();
        assert_eq!(
            good.target().auth,
            Auth::Basic {
                username: "u".into(),
                password: Secret::File("/pw".into())
            }
        );
    }
}
