//! The kernel log's OOM kills, read from `/dev/kmsg` as they are logged.
//!
//! Opened at the end (older records are history the counters already
//! count), non-blocking, one record per `read`. Unreadable (not root,
//! `dmesg_restrict`, a fixture tree without it): [`KernelLog::open`] says
//! why and the agent goes on with the OOM kill counters alone.

use memlens_linux::fs::Root;
use memlens_linux::kmsg::{is_continuation, parse_record, OomKill, OomKillParser};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// Records read per call at most (a flood of kernel messages waits for the
/// next cycle).
const MAX_RECORDS_PER_READ: usize = 4096;

/// `/dev/kmsg`, positioned after what was read.
pub struct KernelLog {
    file: File,
    parser: OomKillParser,
    buffer: Vec<u8>,
}

impl KernelLog {
    /// Opens `/dev/kmsg` under `root`, positioned at its end.
    pub fn open(root: &Root) -> Result<KernelLog, String> {
        let path = root.path("/dev/kmsg");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| format!("cannot seek {}: {e}", path.display()))?;
        Ok(KernelLog {
            file,
            parser: OomKillParser::new(),
            // A record is at most about 8 KiB (the kernel's line limit).
            buffer: vec![0; 16 * 1024],
        })
    }

    /// The OOM kills logged since the last call.
    pub fn read_kills(&mut self) -> Vec<OomKill> {
        let mut kills = Vec::new();
        for _ in 0..MAX_RECORDS_PER_READ {
            match self.file.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(&self.buffer[..n]);
                    let Some(line) = text.lines().next() else {
                        continue;
                    };
                    if is_continuation(line) {
                        continue;
                    }
                    if let Ok(record) = parse_record(line) {
                        kills.extend(self.parser.feed(&record));
                    }
                }
                // Nothing more for now.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Records were overwritten before we read them: go on from
                // the oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        kills
    }
}
