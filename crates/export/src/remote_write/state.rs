//! The sender's state file in the data directory, one per remote URL: the
//! watermark (the last instant the receiver acknowledged) and the counters,
//! so a restart neither resends nor skips. Written atomically (temp file +
//! rename), so a crash leaves the old or the new state, never a torn one.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SenderState {
    /// The remote URL (a state file belongs to one URL).
    pub url: String,
    /// Samples up to this instant (ms since the epoch) are delivered or dropped.
    pub watermark_ms: i64,
    /// The first watermark, when this URL was first used: everything stored
    /// after it is accounted for as sent or dropped.
    #[serde(default)]
    pub started_at_ms: i64,
    /// Samples the receiver accepted (2xx).
    pub sent_samples_total: u64,
    /// Samples the receiver refused with a 4xx (not 429): not sent again.
    pub dropped_samples_total: u64,
    /// Requests that failed and were retried (5xx, 429, 401/403, network errors).
    pub failed_requests_total: u64,
    /// Samples in failed requests, sent again.
    #[serde(default)]
    pub retried_samples_total: u64,
    /// Compressed request bytes the receiver accepted.
    #[serde(default)]
    pub sent_bytes_total: u64,
    /// Requests refused with 401 or 403.
    #[serde(default)]
    pub auth_failures_total: u64,
    /// Series in accepted requests, one per series and request.
    #[serde(default)]
    pub series_sent_total: u64,
    /// Series new to the sender (or unsent for an hour) when accepted.
    #[serde(default)]
    pub new_series_total: u64,
}

impl SenderState {
    /// A fresh state starting after `watermark_ms`.
    pub fn new(url: &str, watermark_ms: i64) -> SenderState {
        SenderState {
            url: url.to_string(),
            watermark_ms,
            started_at_ms: watermark_ms,
            sent_samples_total: 0,
            dropped_samples_total: 0,
            failed_requests_total: 0,
            retried_samples_total: 0,
            sent_bytes_total: 0,
            auth_failures_total: 0,
            series_sent_total: 0,
            new_series_total: 0,
        }
    }
}

/// `DIR/remote_write-<hash of the URL>.json`.
pub fn state_path(data_dir: &Path, url: &str) -> PathBuf {
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in url.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    data_dir.join(format!("remote_write-{hash:016x}.json"))
}

/// The saved state of `url`, `None` when there is none yet.
pub fn load(path: &Path, url: &str) -> Result<Option<SenderState>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
    };
    let state: SenderState = serde_json::from_str(&text).map_err(|err| {
        format!(
            "{}: not a remote_write state file ({err}); move it away to start over",
            path.display()
        )
    })?;
    if state.url != url {
        return Err(format!(
            "{} belongs to {} rather than {url}",
            path.display(),
            state.url
        ));
    }
    Ok(Some(state))
}

/// Writes `state` to `path` atomically.
pub fn save(path: &Path, state: &SenderState) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
    {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_reads_back_and_belongs_to_its_url() {
        let dir = std::env::temp_dir().join(format!("memlens-rw-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = state_path(&dir, "http://a/w");
        assert_ne!(path, state_path(&dir, "http://b/w"));
        assert_eq!(load(&path, "http://a/w").unwrap(), None);
        let mut state = SenderState::new("http://a/w", 123);
        state.dropped_samples_total = 7;
        save(&path, &state).unwrap();
        assert_eq!(load(&path, "http://a/w").unwrap(), Some(state));
        assert!(load(&path, "http://b/w").unwrap_err().contains("belongs"));
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path, "http://a/w")
            .unwrap_err()
            .contains("state file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
