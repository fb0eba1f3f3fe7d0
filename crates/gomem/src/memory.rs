//! Reading another process's memory: the [`Memory`] trait and its
//! `/proc/PID/mem` implementation.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Why a read of the target's memory failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The address range is not mapped (or not readable) in the target.
    #[error("cannot read {len_bytes} bytes at {addr:#x}: {reason}")]
    Unmapped {
        /// First address.
        addr: u64,
        /// Bytes asked for.
        len_bytes: usize,
        /// What the kernel said.
        reason: String,
    },
    /// The target exited (its memory is gone).
    #[error("process {pid} exited while its memory was being read")]
    Exited {
        /// The target.
        pid: u32,
    },
}

/// Reads bytes of a target's address space.
pub trait Memory {
    /// Fills `buf` from `addr`, or fails for the whole range.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Reads a little-endian u64 at `addr`.
    fn read_u64(&self, addr: u64) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// A process's memory through `/proc/PID/mem` (needs ptrace access to it:
/// same user and not forbidden by Yama, or root). The target never stops.
#[derive(Debug)]
pub struct ProcMemory {
    pid: u32,
    proc_dir: PathBuf,
    file: File,
}

impl ProcMemory {
    /// Opens `/proc/PID/mem` under `proc_root` (`/proc` on a live system).
    pub fn open(proc_root: &std::path::Path, pid: u32) -> std::io::Result<ProcMemory> {
        let proc_dir = proc_root.join(pid.to_string());
        let file = File::open(proc_dir.join("mem"))?;
        Ok(ProcMemory {
            pid,
            proc_dir,
            file,
        })
    }

    fn gone(&self) -> bool {
        // A reaped process has no directory; an exited, unreaped one is a zombie
        // whose memory is gone ("State: Z").
        match std::fs::read_to_string(self.proc_dir.join("status")) {
            Err(_) => true,
            Ok(s) => s
                .lines()
                .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))),
        }
    }
}

impl Memory for ProcMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let len_bytes = buf.len();
        let unmapped = |reason: String| ReadError::Unmapped {
            addr,
            len_bytes,
            reason,
        };
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(unmapped("range past the top of the address space".into()));
        }
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], addr + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.gone() || e.raw_os_error() == Some(libc_esrch()) {
                        return Err(ReadError::Exited { pid: self.pid });
                    }
                    return Err(unmapped(e.to_string()));
                }
            }
        }
        if done < buf.len() {
            if self.gone() {
                return Err(ReadError::Exited { pid: self.pid });
            }
            return Err(unmapped(format!("short read ({done} bytes)")));
        }
        Ok(())
    }
}

/// ESRCH on Linux (no such process).
const fn libc_esrch() -> i32 {
    3
}
