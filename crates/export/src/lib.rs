//! memlens's export stage: what leaves the agent for other systems.
//!
//! - [`exporter`]: the agent's series as a Prometheus `/metrics` text
//!   exposition (names and labels in `docs/metrics.md`), served by
//!   `memlens_web::server` on `--listen`.
//! - [`remote_write`]: pushes the history to Prometheus remote-write 1.0
//!   receivers (Prometheus, VictoriaMetrics, Mimir, Thanos receive), one
//!   sender thread per URL reading the store after its own watermark, so an
//!   outage loses nothing the history still holds (`docs/fleet.md`).
//! - [`http`]: URLs, and the one-shot POST the notifiers of
//!   `memlens-alert` use.
//! - [`client`]: the keep-alive client remote write uses: http or https
//!   (rustls, a custom CA, an optional client certificate), `Retry-After`.
//!
//! The agent (`memlens watch`) parses its config and wires these together;
//! nothing here reads the config file or the command line.

pub mod client;
pub mod exporter;
pub mod http;
pub mod remote_write;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A duration as whole milliseconds, saturating.
pub(crate) fn millis_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A duration for messages, largest unit first (`30s`, `6h`, `1m30s`,
/// `500ms`), as the config file writes it.
pub(crate) fn format_duration(duration: Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (unit, unit_nanos) in UNITS {
        let count = nanos / unit_nanos;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
        }
        nanos %= unit_nanos;
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_the_config_writes_them() {
        use std::time::Duration;
        assert_eq!(super::format_duration(Duration::ZERO), "0s");
        assert_eq!(super::format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(
            super::format_duration(Duration::from_millis(1500)),
            "1s500ms"
        );
        assert_eq!(super::format_duration(Duration::from_secs(6 * 3600)), "6h");
    }
}
