//! Go detection: the ELF build info of `/proc/PID/exe`, read once per binary.

use memlens_goruntime::{read_build_info_from_path, GoBuildInfo};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The most binaries remembered (then the cache starts over).
const MAX_BINARIES: usize = 4096;

/// Remembers each binary's build info by (device, inode), so a snapshot reads
/// each executable once however many processes run it.
#[derive(Debug, Default)]
pub struct GoCache {
    by_inode: HashMap<(u64, u64), Option<GoBuildInfo>>,
}

impl GoCache {
    /// The build info of the binary behind `exe` (a `/proc/PID/exe` link).
    ///
    /// `Ok(None)`: not a Go program. `Err`: the link could not be followed
    /// (kernel thread, exited, not allowed) or the build info is malformed.
    pub fn build_info(&mut self, exe: &Path) -> Result<Option<GoBuildInfo>, String> {
        let meta = std::fs::metadata(exe).map_err(|e| format!("exe: {e}"))?;
        let key = (meta.dev(), meta.ino());
        if let Some(known) = self.by_inode.get(&key) {
            return Ok(known.clone());
        }
        let info = read_build_info_from_path(exe).map_err(|e| e.to_string())?;
        // A long-running agent sees binaries come and go: stay bounded.
        if self.by_inode.len() >= MAX_BINARIES {
            self.by_inode.clear();
        }
        self.by_inode.insert(key, info.clone());
        Ok(info)
    }
}
