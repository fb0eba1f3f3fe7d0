//! The alerts' thresholds, `for` durations and windows: one flat table,
//! the `[alerts]` table of the agent's TOML config (the binary reads and
//! prints it; [`Thresholds::FIELDS`] lists each key with its kind and
//! meaning, so the table is written down once). Durations are held in
//! seconds.

/// What a threshold's number is, which says how it is written in the
/// config and which values are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A window or a time left: a duration, more than zero.
    Seconds,
    /// A `for` of an alert: a duration, zero allowed (fires at once).
    For,
    /// A share: more than 0, at most 1.
    Ratio,
    /// A count, a factor or a size: more than zero.
    Number,
}

/// One key of the `[alerts]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The key.
    pub key: &'static str,
    /// How it is written and checked.
    pub kind: Kind,
    /// What it does.
    pub doc: &'static str,
}

macro_rules! thresholds {
    ($( $(#[doc = $doc:literal])+ $field:ident : $kind:ident = $default:expr ; )*) => {
        /// Every threshold, `for` and window of the generated rules
        /// (durations in seconds). The defaults are docs/alerts.md's.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Thresholds {
            $( $(#[doc = $doc])+ pub $field: f64, )*
        }

        impl Default for Thresholds {
            fn default() -> Self {
                Thresholds { $( $field: $default, )* }
            }
        }

        impl Thresholds {
            /// Every key, in the order the config prints them.
            pub const FIELDS: &'static [Field] = &[
                $( Field { key: stringify!($field), kind: Kind::$kind, doc: concat!($($doc),+) }, )*
            ];

            /// The value of `key` (`None` for an unknown key).
            pub fn get(&self, key: &str) -> Option<f64> {
                match key {
                    $( stringify!($field) => Some(self.$field), )*
                    _ => None,
                }
            }

            /// Sets `key` (false for an unknown key; the value is checked
            /// by [`Thresholds::validate`]).
            pub fn set(&mut self, key: &str, value: f64) -> bool {
                match key {
                    $( stringify!($field) => { self.$field = value; true } )*
                    _ => false,
                }
            }
        }
    };
}

const MIB: f64 = 1_048_576.0;

thresholds! {
    /// `for` of the alerts that rest on a memlens finding: the engine
    /// already holds a finding for `[findings] hold`, so 0 alerts at once.
    finding_for: For = 0.0;
    /// Window of the working set's peak and trough (max/min over it): at
    /// least one GC sawtooth period, so a sawtooth's troughs and peaks are flat.
    sawtooth_window: Seconds = 300.0;
    /// Window of the troughs' trend behind a time-to-OOM (standard names); its
    /// three thirds must each rise, so a series younger than two thirds of it
    /// (a start-up) has no forecast.
    trend_window: Seconds = 1800.0;
    /// The newest third of the trend window must rise at least this share of
    /// the whole window's slope (a ramp that levelled off is not a leak).
    persistence_ratio: Ratio = 0.5;
    /// Time left to the OOM kill under which filling-up is critical.
    critical_time_left: Seconds = 600.0;
    /// Time left to the OOM kill under which filling-up is a warning.
    warning_time_left: Seconds = 1800.0;
    /// A critical forecast reaches at most this many trend windows ahead.
    max_extrapolation: Number = 4.0;
    /// A warning forecast reaches at most this many trend windows ahead.
    warning_max_extrapolation: Number = 8.0;
    /// `for` of filling-up over raw series.
    filling_up_for: For = 60.0;
    /// Near limit: the working set's peak at least this share of the limit.
    near_limit_ratio: Ratio = 0.9;
    /// Near limit: less headroom than this share of the limit is never enough.
    min_headroom_ratio: Ratio = 0.05;
    /// `for` of near limit over raw series.
    near_limit_for: For = 300.0;
    /// Thrashing: the median usage over the window at least this share of the limit.
    pinned_ratio: Ratio = 0.97;
    /// Thrashing: the window of the pin and of the fault rate.
    thrashing_window: Seconds = 120.0;
    /// Thrashing: major faults a second that make a stall.
    min_major_faults_per_second: Number = 100.0;
    /// `for` of thrashing over raw series.
    thrashing_for: For = 120.0;
    /// OOM killed: a kill counted within this window fires (no `for`).
    oom_window: Seconds = 600.0;
    /// Repeated OOM kills: the window they are counted over.
    repeated_oom_window: Seconds = 3600.0;
    /// Repeated OOM kills: this many in the window fire.
    repeated_oom_kills: Number = 3.0;
    /// GOMEMLIMIT headroom: the margin below the limit (half of it is
    /// required, as memlens advise does), a share of the limit.
    gomemlimit_margin_ratio: Ratio = 0.05;
    /// GOMEMLIMIT headroom: the margin is never less than this (bytes).
    gomemlimit_min_margin_bytes: Number = 16.0 * MIB;
    /// `for` of the GOMEMLIMIT/GOGC setting alerts (settings do not flap).
    settings_for: For = 900.0;
    /// GC death spiral: GC CPU share of the window.
    gc_cpu_ratio: Ratio = 0.25;
    /// GC death spiral: the runtime's memory at least this share of GOMEMLIMIT.
    gc_memory_ratio: Ratio = 0.9;
    /// GC death spiral: the window of the GC CPU share.
    gc_window: Seconds = 300.0;
    /// `for` of the GC death spiral.
    gc_for: For = 300.0;
    /// Goroutine leak: at least this many goroutines.
    goroutine_min: Number = 1000.0;
    /// Goroutine leak: the newest quarter's fewest at least this many times
    /// the oldest quarter's most.
    goroutine_growth_ratio: Number = 1.5;
    /// Goroutine leak: the window of the growth.
    goroutine_window: Seconds = 3600.0;
    /// `for` of the goroutine leak.
    goroutine_for: For = 900.0;
    /// Open FDs and VMAs: warning from this share of their limit.
    limit_warning_ratio: Ratio = 0.8;
    /// Open FDs and VMAs: critical from this share of their limit.
    limit_critical_ratio: Ratio = 0.95;
    /// `for` of the FD and VMA alerts.
    limit_for: For = 300.0;
    /// Host memory pressure: PSI `some` share of time stalled.
    host_pressure_ratio: Ratio = 0.1;
    /// Host memory low: MemAvailable under this share of MemTotal.
    host_available_ratio: Ratio = 0.1;
    /// Host alerts: the window of the PSI rate.
    host_window: Seconds = 300.0;
    /// `for` of the host alerts.
    host_for: For = 300.0;
    /// Agent stale: no cycle for this long (more than a scrape interval and
    /// the agent's interval, which a fresh agent's last cycle can be old).
    agent_stale: Seconds = 180.0;
    /// Agent failing: the window its collector errors are counted over.
    agent_errors_window: Seconds = 600.0;
    /// `for` of the agent alerts.
    agent_for: For = 120.0;
}

impl Thresholds {
    /// Checks every value against its kind, and the pairs that must be
    /// ordered; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for field in Self::FIELDS {
            let value = self.get(field.key).unwrap_or(f64::NAN);
            let ok = match field.kind {
                Kind::Seconds | Kind::Number => value.is_finite() && value > 0.0,
                Kind::For => value.is_finite() && value >= 0.0,
                Kind::Ratio => value > 0.0 && value <= 1.0,
            };
            if !ok {
                let expected = match field.kind {
                    Kind::Seconds => "a duration of more than 0s",
                    Kind::For => "a duration (0s or more)",
                    Kind::Ratio => "a share above 0 and at most 1",
                    Kind::Number => "a number above 0",
                };
                return Err(format!("alerts.{}: {value} is not {expected}", field.key));
            }
        }
        let pairs = [
            (
                "critical_time_left",
                self.critical_time_left,
                "warning_time_left",
                self.warning_time_left,
            ),
            (
                "near_limit_ratio",
                self.near_limit_ratio,
                "pinned_ratio",
                self.pinned_ratio,
            ),
            (
                "limit_warning_ratio",
                self.limit_warning_ratio,
                "limit_critical_ratio",
                self.limit_critical_ratio,
            ),
        ];
        for (low, low_value, high, high_value) in pairs {
            if low_value >= high_value {
                return Err(format!(
                    "alerts.{low} ({low_value}) must be below alerts.{high} ({high_value})"
                ));
            }
        }
        Ok(())
    }
}

/// A duration as PromQL and rule files write it: whole hours, minutes,
/// seconds and milliseconds, largest first (`30m`, `1h30m`, `1s500ms`, `0s`).
pub fn prom_duration(seconds: f64) -> String {
    let mut ms = (seconds * 1000.0).round().max(0.0) as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, len) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_prometheus_reads_them() {
        assert_eq!(prom_duration(0.0), "0s");
        assert_eq!(prom_duration(1800.0), "30m");
        assert_eq!(prom_duration(5400.0), "1h30m");
        assert_eq!(prom_duration(1.5), "1s500ms");
        assert_eq!(prom_duration(86_400.0), "24h");
    }

    #[test]
    fn every_key_reads_and_writes_its_own_field() {
        let mut t = Thresholds::default();
        for (i, field) in Thresholds::FIELDS.iter().enumerate() {
            assert!(t.set(field.key, 1000.0 + i as f64), "{}", field.key);
        }
        for (i, field) in Thresholds::FIELDS.iter().enumerate() {
            assert_eq!(t.get(field.key), Some(1000.0 + i as f64), "{}", field.key);
        }
        assert!(!t.set("no_such_key", 1.0));
        assert_eq!(t.get("no_such_key"), None);
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        Thresholds::default().validate().unwrap();
        let bad = |key: &str, value: f64| {
            let mut t = Thresholds::default();
            assert!(t.set(key, value));
            t.validate().unwrap_err()
        };
        let err = bad("near_limit_ratio", 1.5);
        assert!(err.contains("alerts.near_limit_ratio"), "{err}");
        let err = bad("critical_time_left", 3600.0);
        assert!(err.contains("critical_time_left"), "{err}");
        assert!(bad("trend_window", 0.0).contains("trend_window"));
        let t = Thresholds {
            trend_window: 60.0,
            filling_up_for: 0.0,
            ..Thresholds::default()
        };
        t.validate().unwrap();
    }
}
