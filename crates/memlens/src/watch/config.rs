//! The agent's configuration: a TOML file, then command-line flags over it.
//! `memlens watch --print-config` prints the effective result in the same TOML
//! form, so it can be saved as a starting config file.

use super::remote_write::RemoteWriteConfig;
use crate::collect::SmapsPolicy;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything `memlens watch` can be told. Every field has a default; a config
/// file sets only what it names (unknown keys are an error, to catch typos).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Where the history lives.
    pub data_dir: PathBuf,
    /// Seconds between two samples of processes, cgroups and the host.
    pub interval_seconds: f64,
    /// Seconds between two reads of Go runtime metrics (/debug/vars, /metrics).
    pub runtime_interval_seconds: f64,
    /// Seconds between two heap + goroutine profiles of each Go target.
    pub profile_interval_seconds: f64,
    /// Whether profiles are fetched at all.
    pub profiling: bool,
    /// Print nothing but errors (for services).
    pub quiet: bool,
    /// Serve `/metrics` (Prometheus text format) on this address: `PORT`
    /// (loopback) or `HOST:PORT`; off when unset.
    pub listen: Option<String>,
    /// A file holding the bearer token `/metrics` requests must carry; needed
    /// to listen on a non-loopback address.
    pub bearer_token_file: Option<PathBuf>,
    /// The most series `/metrics` shows (host and cgroups first, then
    /// processes by RSS); the rest are counted as dropped.
    pub max_series: usize,
    /// Which processes to watch.
    pub select: Selection,
    /// When to read smaps_rollup (PSS, USS): `auto`, `always` or `never`.
    pub smaps: String,
    /// Timeouts and caps of every HTTP fetch from a target.
    pub fetch: FetchConfig,
    /// How much history to keep.
    pub retention: RetentionConfig,
    /// Push the history to a Prometheus remote-write receiver (off when unset).
    pub remote_write: Option<RemoteWriteConfig>,
}

/// Which processes are watched (the host and their cgroups always are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selection {
    /// Only these pids (all processes when empty).
    pub pids: Vec<i32>,
    /// Only Go programs.
    pub go_only: bool,
    /// Only processes in this memory cgroup or below it.
    pub cgroup: Option<String>,
}

/// Timeouts and caps of a fetch from a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Seconds to wait for a connection.
    pub connect_timeout_seconds: f64,
    /// Seconds a whole fetch may take.
    pub timeout_seconds: f64,
    /// The most bytes read from one response (a larger one is dropped and
    /// reported); /debug/vars and /metrics are capped at 4 MiB whatever this says.
    pub max_body_bytes: u64,
}

/// What is kept: the oldest data goes first when either bound is passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of history kept.
    pub max_age_days: f64,
    /// Bytes the data directory may take.
    pub max_bytes: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            data_dir: default_data_dir(),
            interval_seconds: 5.0,
            runtime_interval_seconds: 30.0,
            profile_interval_seconds: 300.0,
            profiling: true,
            quiet: false,
            listen: None,
            bearer_token_file: None,
            max_series: 20_000,
            select: Selection::default(),
            smaps: "auto".to_string(),
            fetch: FetchConfig::default(),
            retention: RetentionConfig::default(),
            remote_write: None,
        }
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout_seconds: 1.0,
            timeout_seconds: 10.0,
            max_body_bytes: 16 << 20,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_days: 14.0,
            max_bytes: 1 << 30,
        }
    }
}

/// `/var/lib/memlens` for root, `$XDG_STATE_HOME/memlens` or
/// `~/.local/state/memlens` for others, `./memlens-data` when there is no home.
pub fn default_data_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/memlens");
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(state).join("memlens");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/memlens"),
        None => PathBuf::from("memlens-data"),
    }
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config file {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        reason: String,
    },
    /// A value is out of range.
    #[error("config: {field} {reason}")]
    Invalid {
        /// The key, dotted (`fetch.timeout_seconds`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl WatchConfig {
    /// Parses a config file's text (`path` only names it in errors).
    pub fn from_toml(path: &str, text: &str) -> Result<WatchConfig, ConfigError> {
        let config: WatchConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_string(),
            reason: err.to_string().trim_end().replace('\n', " "),
        })?;
        Ok(config)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<WatchConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        WatchConfig::from_toml(&path.display().to_string(), &text)
    }

    /// The effective config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|err| format!("# cannot print: {err}\n"))
    }

    /// Checks ranges; the agent refuses to start on a bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |field, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    field,
                    reason: format!("must be a positive number of seconds, not {value}"),
                })
            }
        };
        positive("interval_seconds", self.interval_seconds)?;
        positive("runtime_interval_seconds", self.runtime_interval_seconds)?;
        positive("profile_interval_seconds", self.profile_interval_seconds)?;
        positive(
            "fetch.connect_timeout_seconds",
            self.fetch.connect_timeout_seconds,
        )?;
        positive("fetch.timeout_seconds", self.fetch.timeout_seconds)?;
        positive("retention.max_age_days", self.retention.max_age_days)?;
        if self.interval_seconds < 0.1 {
            return Err(ConfigError::Invalid {
                field: "interval_seconds",
                reason: format!("{} is below the 0.1 s floor", self.interval_seconds),
            });
        }
        if self.retention.max_bytes < 1 << 20 {
            return Err(ConfigError::Invalid {
                field: "retention.max_bytes",
                reason: format!("{} is below 1 MiB", self.retention.max_bytes),
            });
        }
        if self.max_series == 0 {
            return Err(ConfigError::Invalid {
                field: "max_series",
                reason: "must be at least 1".to_string(),
            });
        }
        self.smaps_policy()?;
        if let Some(remote_write) = &self.remote_write {
            remote_write.validate()?;
        }
        Ok(())
    }

    /// The smaps setting as a policy.
    pub fn smaps_policy(&self) -> Result<SmapsPolicy, ConfigError> {
        match self.smaps.as_str() {
            "auto" => Ok(SmapsPolicy::Auto),
            "always" => Ok(SmapsPolicy::Always),
            "never" => Ok(SmapsPolicy::Never),
            other => Err(ConfigError::Invalid {
                field: "smaps",
                reason: format!("is {other:?}; expected auto, always or never"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_only_what_it_names() {
        let config = WatchConfig::from_toml(
            "t.toml",
            "interval_seconds = 1\n[select]\ngo_only = true\n[fetch]\ntimeout_seconds = 3\n",
        )
        .unwrap();
        assert_eq!(config.interval_seconds, 1.0);
        assert!(config.select.go_only);
        assert_eq!(config.fetch.timeout_seconds, 3.0);
        assert_eq!(
            config.fetch.max_body_bytes,
            FetchConfig::default().max_body_bytes
        );
        assert_eq!(config.runtime_interval_seconds, 30.0);
    }

    #[test]
    fn printed_config_reads_back_the_same() {
        let mut config = WatchConfig::default();
        config.select.pids = vec![1, 2];
        config.select.cgroup = Some("/x".to_string());
        config.profiling = false;
        let again = WatchConfig::from_toml("printed", &config.to_toml()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err = WatchConfig::from_toml("t.toml", "intervall_seconds = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("t.toml") && text.contains("intervall_seconds"),
            "{text}"
        );
        let err = WatchConfig::from_toml("t.toml", "interval_seconds = \"5s\"\n").unwrap_err();
        assert!(err.to_string().contains("interval_seconds"), "{err}");
        let config = WatchConfig {
            interval_seconds: 0.0,
            ..WatchConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("interval_seconds"));
        let config = WatchConfig {
            smaps: "sometimes".to_string(),
            ..WatchConfig::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("smaps"));
        WatchConfig::default().validate().unwrap();
    }
}
