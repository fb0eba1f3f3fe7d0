//! The agent's configuration: a TOML file, then command-line flags over it.
//! `memlens watch --print-config` prints the effective result in the same TOML
//! form, so it can be saved as a starting config file.
//!
//! Durations are strings in the grammar of [`crate::duration`] (`interval =
//! "5s"`, `profile_interval = "5m"`) or bare numbers of seconds. The keys
//! were once named with their unit (`interval_seconds = 5`,
//! `retention.max_age_days = 14`): those names are still read, in their unit.

use super::alerting_config::AlertingConfig;
use super::alerts_config::AlertsConfig;
use super::remote_write_config::RemoteWriteConfig;
use crate::collect::SmapsPolicy;
use crate::duration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `memlens watch` can be told. Every field has a default; a config
/// file sets only what it names (unknown keys are an error, to catch typos).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Where the history lives.
    pub data_dir: PathBuf,
    /// Time between two samples of processes, cgroups and the host.
    #[serde(with = "duration::config_value", alias = "interval_seconds")]
    pub interval: Duration,
    /// Time between two reads of Go runtime metrics (/debug/vars, /metrics).
    #[serde(with = "duration::config_value", alias = "runtime_interval_seconds")]
    pub runtime_interval: Duration,
    /// Time between two heap + goroutine profiles (and `?debug=2` goroutine
    /// dumps) of each Go target.
    #[serde(with = "duration::config_value", alias = "profile_interval_seconds")]
    pub profile_interval: Duration,
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
    /// Push the history to Prometheus remote-write receivers, each with its
    /// own watermark (`[[remote_write]]`; a single `[remote_write]` table
    /// is a list of one; none when unset).
    #[serde(
        deserialize_with = "super::remote_write_config::one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub remote_write: Vec<RemoteWriteConfig>,
    /// The detectors' settings (docs/findings.md).
    pub findings: FindingsConfig,
    /// Thresholds, `for` and windows of the generated alert rules
    /// (`memlens rules`, docs/alerts.md).
    pub alerts: AlertsConfig,
    /// Built-in alerting: notifiers, hold, `for` by alert (off until a
    /// notifier URL is set; docs/alerts.md).
    pub alerting: AlertingConfig,
    /// Read MySQL/MariaDB servers among the processes (off when unset; an
    /// empty `[mysql]` section turns it on with the option file's
    /// credentials).
    pub mysql: Option<crate::collect::mysql::MysqlConfig>,
    /// A short trace of the target of a time-to-OOM that turns critical,
    /// kept as `trace-faults` profiles (docs/trace.md).
    pub trace_on_critical: TraceOnCriticalConfig,
    /// What series leave the agent (`/metrics` and remote write): `pid`
    /// labels, which processes, relabel rules (docs/metrics.md).
    pub series: SeriesConfig,
}

/// `[series]`: the labels and number of the series that leave the agent
/// (the history keeps everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeriesConfig {
    /// Label process, Go and MySQL series and findings with `pid` too:
    /// every restart of a service then makes new series.
    pub pid_label: bool,
    /// Which processes get series: `all`, `go` (Go programs), `top` (the
    /// `top_processes` largest by RSS at each instant). The host, cgroups
    /// and MySQL servers always do.
    pub processes: memlens_cardinality::Processes,
    /// With `processes = "top"`: how many.
    pub top_processes: usize,
    /// Relabel rules as Prometheus's `metric_relabel_configs`
    /// (`[[series.relabel]]`), applied to every series in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<memlens_cardinality::RelabelConfig>,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            pid_label: false,
            processes: memlens_cardinality::Processes::All,
            top_processes: memlens_cardinality::DEFAULT_TOP_PROCESSES,
            relabel: Vec::new(),
        }
    }
}

impl SeriesConfig {
    /// The options the exporter and senders take (the rules compiled).
    pub fn options(&self) -> Result<memlens_cardinality::SeriesOptions, ConfigError> {
        let relabel = memlens_cardinality::Relabeler::compile(&self.relabel).map_err(|reason| {
            ConfigError::Invalid {
                field: "series",
                reason,
            }
        })?;
        if self.processes == memlens_cardinality::Processes::Top && self.top_processes == 0 {
            return Err(ConfigError::Invalid {
                field: "series.top_processes",
                reason: "must be at least 1 with processes = \"top\"".to_string(),
            });
        }
        Ok(memlens_cardinality::SeriesOptions {
            pid_label: self.pid_label,
            processes: self.processes,
            top_processes: self.top_processes,
            relabel,
        })
    }
}

/// `[trace_on_critical]`: when a time-to-OOM turns critical, the agent
/// traces the target's page faults by user stack (`memlens trace`'s BPF
/// programs; root and a memlens built with clang) for `duration`, in a
/// thread of its own, and stores the faults profile of each traced process
/// (kind `trace-faults`). One trace at a time, a process traced at most once
/// per `min_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceOnCriticalConfig {
    /// Whether to trace at all (`--no-trace-on-critical` turns it off).
    pub enabled: bool,
    /// How long one trace lasts (100ms to 60s).
    #[serde(with = "duration::config_value")]
    pub duration: Duration,
    /// The least time between two traces of one process.
    #[serde(with = "duration::config_value")]
    pub min_interval: Duration,
    /// A user stack on 1 page fault in this many (per CPU), as `memlens
    /// trace --stack-every`.
    pub stack_every: u64,
}

impl Default for TraceOnCriticalConfig {
    fn default() -> Self {
        TraceOnCriticalConfig {
            enabled: true,
            duration: Duration::from_secs(5),
            min_interval: Duration::from_secs(600),
            // 4x `memlens trace`'s 1 in 256: a 5 s trace of a leak of a
            // few hundred faults a second then still has tens of stacks;
            // 1 in 64 cost 1.11x on a loop doing nothing but fault
            // (docs/trace.md), for 5 s once per target per min_interval.
            stack_every: 64,
        }
    }
}

/// The detectors' settings that a config file can change (`[findings]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FindingsConfig {
    /// The hold: how long a finding's condition must be absent (or lower),
    /// without a break, before it clears (or steps down a severity).
    #[serde(with = "duration::config_value", alias = "hold_seconds")]
    pub hold: Duration,
    /// Coverage of a time-to-OOM's range of predicted kills (0.9: nine in
    /// ten kills inside it, when the growth goes on as measured).
    pub forecast_coverage: f64,
    /// The window of the MySQL/MariaDB detectors (a hit ratio compares its
    /// two halves).
    #[serde(with = "duration::config_value")]
    pub mysql_window: Duration,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        let engine = memlens_analyze::Config::default();
        FindingsConfig {
            hold: Duration::from_secs_f64(engine.hold_seconds),
            forecast_coverage: engine.trend.coverage,
            mysql_window: Duration::from_secs_f64(engine.mysql.window_seconds),
        }
    }
}

impl FindingsConfig {
    /// The engine's config with these settings.
    pub fn engine_config(&self) -> memlens_analyze::Config {
        let defaults = memlens_analyze::Config::default();
        memlens_analyze::Config {
            hold_seconds: self.hold.as_secs_f64(),
            trend: memlens_analyze::trend::TrendConfig {
                coverage: self.forecast_coverage,
                ..defaults.trend.clone()
            },
            mysql: memlens_analyze::mysql::MysqlConfig {
                window_seconds: self.mysql_window.as_secs_f64(),
                ..defaults.mysql.clone()
            },
            ..defaults
        }
    }
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
    /// How long to wait for a connection.
    #[serde(with = "duration::config_value", alias = "connect_timeout_seconds")]
    pub connect_timeout: Duration,
    /// How long a whole fetch may take.
    #[serde(with = "duration::config_value", alias = "timeout_seconds")]
    pub timeout: Duration,
    /// The most bytes read from one response (a larger one is dropped and
    /// reported); /debug/vars and /metrics are capped at 4 MiB whatever this says.
    pub max_body_bytes: u64,
}

/// What is kept: the oldest data goes first when either bound is passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetentionFile")]
pub struct RetentionConfig {
    /// How old the oldest history kept may be.
    #[serde(with = "duration::config_value")]
    pub max_age: Duration,
    /// Bytes the data directory may take.
    pub max_bytes: u64,
}

/// The `[retention]` table as written: `max_age` (a duration, or seconds)
/// or the older `max_age_days` (a number of days).
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RetentionFile {
    max_age: Option<DurationValue>,
    max_age_days: Option<f64>,
    max_bytes: Option<u64>,
}

/// A duration value of the file, for an optional key.
#[derive(Deserialize)]
#[serde(transparent)]
struct DurationValue(#[serde(with = "duration::config_value")] Duration);

impl TryFrom<RetentionFile> for RetentionConfig {
    type Error = String;

    fn try_from(file: RetentionFile) -> Result<Self, String> {
        let default = RetentionConfig::default();
        let max_age = match (file.max_age, file.max_age_days) {
            (Some(_), Some(_)) => {
                return Err("retention: set max_age or max_age_days, not both".to_string())
            }
            (Some(DurationValue(max_age)), None) => max_age,
            (None, Some(days)) => duration::from_seconds(days * 86_400.0)
                .map_err(|_| format!("retention.max_age_days: {days} is not a number of days"))?,
            (None, None) => default.max_age,
        };
        Ok(RetentionConfig {
            max_age,
            max_bytes: file.max_bytes.unwrap_or(default.max_bytes),
        })
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            data_dir: default_data_dir(),
            interval: Duration::from_secs(5),
            runtime_interval: Duration::from_secs(30),
            profile_interval: Duration::from_secs(300),
            profiling: true,
            quiet: false,
            listen: None,
            bearer_token_file: None,
            max_series: 20_000,
            select: Selection::default(),
            smaps: "auto".to_string(),
            fetch: FetchConfig::default(),
            retention: RetentionConfig::default(),
            remote_write: Vec::new(),
            findings: FindingsConfig::default(),
            alerts: AlertsConfig::default(),
            alerting: AlertingConfig::default(),
            mysql: None,
            trace_on_critical: TraceOnCriticalConfig::default(),
            series: SeriesConfig::default(),
        }
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_body_bytes: 16 << 20,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(14 * 86_400),
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
        /// The key, dotted (`fetch.timeout`).
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
        toml::to_string_pretty(self)
            .map(|text| super::alerts_config::with_docs(&text))
            .unwrap_or_else(|err| format!("# cannot print: {err}\n"))
    }

    /// Checks ranges; the agent refuses to start on a bad value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("runtime_interval", self.runtime_interval)?;
        positive("profile_interval", self.profile_interval)?;
        positive("fetch.connect_timeout", self.fetch.connect_timeout)?;
        positive("fetch.timeout", self.fetch.timeout)?;
        positive("retention.max_age", self.retention.max_age)?;
        let coverage = self.findings.forecast_coverage;
        if !(coverage > 0.0 && coverage < 1.0) {
            return Err(ConfigError::Invalid {
                field: "findings.forecast_coverage",
                reason: format!("must be between 0 and 1 (e.g. 0.9), not {coverage}"),
            });
        }
        if self.interval < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                field: "interval",
                reason: format!(
                    "{} is below the 100ms floor",
                    duration::format(self.interval)
                ),
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
        self.series.options()?;
        self.alerts
            .0
            .validate()
            .map_err(|reason| ConfigError::Invalid {
                field: "alerts",
                reason,
            })?;
        let catalogue = memlens_alert::catalogue(memlens_alert::Naming::Memlens, &self.alerts.0);
        self.alerting.validate(&catalogue)?;
        for remote_write in &self.remote_write {
            remote_write.validate()?;
        }
        let mut urls: Vec<&str> = self.remote_write.iter().map(|r| r.url.as_str()).collect();
        urls.sort_unstable();
        if let Some(twice) = urls.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid {
                field: "remote_write.url",
                reason: format!("{} is listed twice (each URL has one watermark)", twice[0]),
            });
        }
        let trace = &self.trace_on_critical;
        if trace.duration < Duration::from_millis(100) || trace.duration > Duration::from_secs(60) {
            return Err(ConfigError::Invalid {
                field: "trace_on_critical.duration",
                reason: format!(
                    "{} is outside 100ms to 60s",
                    duration::format(trace.duration)
                ),
            });
        }
        if trace.stack_every == 0 {
            return Err(ConfigError::Invalid {
                field: "trace_on_critical.stack_every",
                reason: "must be at least 1 (1: a stack on every fault)".to_string(),
            });
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

/// A duration that must be more than zero.
pub(super) fn positive(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::Invalid {
            field,
            reason: "must be more than 0s".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn trace_on_critical_reads_back_and_refuses_bad_values() {
        let config = WatchConfig::from_toml(
            "t.toml",
            "[trace_on_critical]\nenabled = false\nduration = \"2s\"\nmin_interval = \"1h\"\n",
        )
        .unwrap();
        let trace = &config.trace_on_critical;
        assert!(!trace.enabled);
        assert_eq!(trace.duration, secs(2));
        assert_eq!(trace.min_interval, secs(3600));
        assert_eq!(trace.stack_every, 64, "the default");
        let back = WatchConfig::from_toml("printed", &config.to_toml()).unwrap();
        assert_eq!(back, config);
        for (bad, field) in [
            ("duration = \"61s\"", "trace_on_critical.duration"),
            ("duration = \"50ms\"", "trace_on_critical.duration"),
            ("stack_every = 0", "trace_on_critical.stack_every"),
        ] {
            let config =
                WatchConfig::from_toml("t.toml", &format!("[trace_on_critical]\n{bad}\n")).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn the_series_table_reads_back_and_refuses_bad_rules() {
        let text = "[series]\npid_label = true\nprocesses = \"top\"\ntop_processes = 5\n\
                    [[series.relabel]]\nsource_labels = [\"__name__\"]\nregex = \"memlens_go_.*\"\n\
                    action = \"drop\"\n";
        let config = WatchConfig::from_toml("t.toml", text).unwrap();
        config.validate().unwrap();
        assert!(config.series.pid_label);
        assert_eq!(config.series.processes, memlens_cardinality::Processes::Top);
        assert_eq!(config.series.relabel[0].action, "drop");
        let printed = config.to_toml();
        let again = WatchConfig::from_toml("printed", &printed).unwrap();
        assert_eq!(again.series, config.series, "{printed}");
        assert!(!WatchConfig::default().series.pid_label);
        for (bad, want) in [
            (
                "[[series.relabel]]\nsource_labels = [\"a\"]\nregex = \"(\"\n",
                "relabel[0]: regex",
            ),
            (
                "[[series.relabel]]\naction = \"explode\"\n",
                "relabel[0]: action",
            ),
            (
                "[series]\nprocesses = \"top\"\ntop_processes = 0\n",
                "series.top_processes",
            ),
        ] {
            let err = WatchConfig::from_toml("t.toml", bad)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
        let err = WatchConfig::from_toml("t.toml", "[series]\nprocesses = \"some\"\n").unwrap_err();
        assert!(err.to_string().contains("some"), "{err}");
    }

    #[test]
    fn a_file_sets_only_what_it_names() {
        let config = WatchConfig::from_toml(
            "t.toml",
            "interval = \"1s\"\n[select]\ngo_only = true\n[fetch]\ntimeout = \"3s\"\n",
        )
        .unwrap();
        assert_eq!(config.interval, secs(1));
        assert!(config.select.go_only);
        assert_eq!(config.fetch.timeout, secs(3));
        let default = WatchConfig::default();
        assert_eq!(config.fetch.max_body_bytes, default.fetch.max_body_bytes);
        assert_eq!(config.runtime_interval, default.runtime_interval);
        assert_eq!(config.retention, default.retention);
    }

    #[test]
    fn every_duration_key_takes_every_form() {
        let text = "interval = \"500ms\"\nruntime_interval = \"1m30s\"\n\
                    profile_interval = \"1.5h\"\n\
                    [fetch]\nconnect_timeout = 0.25\ntimeout = 7\n\
                    [retention]\nmax_age = \"2w\"\n\
                    [remote_write]\nurl = \"http://127.0.0.1:1/api/v1/write\"\n\
                    timeout = \"250us\"\nmax_backoff = \"2m\"\nflush_timeout = \"1\"\n\
                    max_buffer_age = \"1d12h\"\n";
        let config = WatchConfig::from_toml("t.toml", text).unwrap();
        assert_eq!(config.interval, Duration::from_millis(500));
        assert_eq!(config.runtime_interval, secs(90));
        assert_eq!(config.profile_interval, secs(5_400));
        assert_eq!(config.fetch.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.fetch.timeout, secs(7));
        assert_eq!(config.retention.max_age, secs(14 * 86_400));
        let rw = &config.remote_write[0];
        assert_eq!(rw.timeout, Duration::from_micros(250));
        assert_eq!(rw.max_backoff, secs(120));
        assert_eq!(rw.flush_timeout, secs(1));
        assert_eq!(rw.max_buffer_age, secs(36 * 3_600));
        config.validate().unwrap();
    }

    #[test]
    fn old_files_with_numbers_keep_their_meaning() {
        // The keys as they were before durations took units.
        let text = "interval_seconds = 2\nruntime_interval_seconds = 0.5\n\
                    profile_interval_seconds = 600\n\
                    [fetch]\nconnect_timeout_seconds = 1.5\ntimeout_seconds = 3\n\
                    [retention]\nmax_age_days = 0.5\nmax_bytes = 2097152\n\
                    [remote_write]\nurl = \"http://127.0.0.1:1/api/v1/write\"\n\
                    timeout_seconds = 4\nmax_backoff_seconds = 5\n\
                    flush_timeout_seconds = 6\nmax_buffer_age_seconds = 7200\n";
        let config = WatchConfig::from_toml("old.toml", text).unwrap();
        assert_eq!(config.interval, secs(2));
        assert_eq!(config.runtime_interval, Duration::from_millis(500));
        assert_eq!(config.profile_interval, secs(600));
        assert_eq!(config.fetch.connect_timeout, Duration::from_millis(1_500));
        assert_eq!(config.fetch.timeout, secs(3));
        assert_eq!(config.retention.max_age, secs(43_200), "days, not seconds");
        assert_eq!(config.retention.max_bytes, 2 << 20);
        let rw = &config.remote_write[0];
        assert_eq!(
            (
                rw.timeout,
                rw.max_backoff,
                rw.flush_timeout,
                rw.max_buffer_age
            ),
            (secs(4), secs(5), secs(6), secs(7_200))
        );
        // Printed again, it reads back the same under the new keys.
        let printed = config.to_toml();
        assert!(printed.contains("interval = \"2s\"\n"), "{printed}");
        assert!(printed.contains("max_age = \"12h\"\n"), "{printed}");
        assert_eq!(WatchConfig::from_toml("printed", &printed).unwrap(), config);
    }

    #[test]
    fn printed_config_shows_durations_and_reads_back_the_same() {
        let printed = WatchConfig::default().to_toml();
        for line in [
            "interval = \"5s\"",
            "runtime_interval = \"30s\"",
            "profile_interval = \"5m\"",
            "connect_timeout = \"1s\"",
            "timeout = \"10s\"",
            "max_age = \"14d\"",
        ] {
            assert!(printed.lines().any(|l| l == line), "{line} in {printed}");
        }
        let mut config = WatchConfig::default();
        config.select.pids = vec![1, 2];
        config.select.cgroup = Some("/x".to_string());
        config.profiling = false;
        config.interval = Duration::from_millis(1_500);
        config.runtime_interval = Duration::new(61, 1);
        config.profile_interval = secs(5_400);
        config.fetch.connect_timeout = Duration::from_micros(2_500);
        config.retention.max_age = secs(400 * 86_400);
        config.remote_write = vec![RemoteWriteConfig {
            url: "http://127.0.0.1:1/api/v1/write".to_string(),
            max_buffer_age: Duration::from_millis(90_001),
            ..RemoteWriteConfig::default()
        }];
        let printed = config.to_toml();
        assert!(printed.contains("interval = \"1s500ms\"\n"), "{printed}");
        let again = WatchConfig::from_toml("printed", &printed).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn the_findings_table_sets_the_hold_and_the_coverage() {
        for hold in ["hold = \"1m\"", "hold = 60", "hold_seconds = 60"] {
            let text = format!("[findings]\n{hold}\nforecast_coverage = 0.99\n");
            let config = WatchConfig::from_toml("t.toml", &text).unwrap();
            let engine = config.findings.engine_config();
            assert_eq!(engine.hold_seconds, 60.0, "{hold}");
            assert_eq!(engine.trend.coverage, 0.99);
        }
        let defaults = WatchConfig::default();
        assert_eq!(
            defaults.findings.engine_config(),
            memlens_analyze::Config::default()
        );
        assert!(
            defaults.to_toml().contains("hold = \"5m\""),
            "{}",
            defaults.to_toml()
        );
        let err = WatchConfig::from_toml("t.toml", "[findings]\nhold = \"-1s\"\n").unwrap_err();
        assert!(err.to_string().contains("hold"), "{err}");
        let config =
            WatchConfig::from_toml("t.toml", "[findings]\nforecast_coverage = 1.0\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("findings.forecast_coverage"), "{err}");
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err = WatchConfig::from_toml("t.toml", "intervall = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("t.toml") && text.contains("intervall"),
            "{text}"
        );
        for (text, key, value) in [
            (
                "interval = \"5x\"\n",
                "interval",
                "\"5x\" is not a duration",
            ),
            (
                "[fetch]\ntimeout = \"-1s\"\n",
                "timeout",
                "\"-1s\" is negative",
            ),
            (
                "runtime_interval = -3\n",
                "runtime_interval",
                "\"-3\" is negative",
            ),
            (
                "profile_interval = nan\n",
                "profile_interval",
                "\"NaN\" is not",
            ),
            (
                "[retention]\nmax_age = \"30m1h\"\n",
                "max_age",
                "largest down",
            ),
            ("interval = true\n", "interval", "a duration like"),
        ] {
            let err = WatchConfig::from_toml("t.toml", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(value), "{text}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        let both = "[retention]\nmax_age = \"1d\"\nmax_age_days = 1\n";
        let err = WatchConfig::from_toml("t.toml", both)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
        let both = "interval = \"1s\"\ninterval_seconds = 1\n";
        let err = WatchConfig::from_toml("t.toml", both)
            .unwrap_err()
            .to_string();
        assert!(err.contains("interval"), "{err}");
        for (config, field) in [
            (
                WatchConfig {
                    interval: Duration::from_millis(99),
                    ..WatchConfig::default()
                },
                "interval 99ms is below the 100ms floor",
            ),
            (
                WatchConfig {
                    profile_interval: Duration::ZERO,
                    ..WatchConfig::default()
                },
                "profile_interval must be more than 0s",
            ),
            (
                WatchConfig {
                    smaps: "sometimes".to_string(),
                    ..WatchConfig::default()
                },
                "smaps",
            ),
        ] {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        WatchConfig::default().validate().unwrap();
    }
}
