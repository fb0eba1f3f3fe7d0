//! Reading another process's memory: the [`Memory`] trait, its live
//! implementation ([`ProcMemory`]: `process_vm_readv` in batches of up to
//! 1,024 ranges, `/proc/PID/mem` for a range the kernel refuses) and
//! [`read_batch`], which merges nearby ranges into few reads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

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

    /// Fills every `(addr, buf)` of `reqs`, each as [`Memory::read`] would:
    /// one result per request, in order (a failed range fails alone). The
    /// default reads them one by one; [`ProcMemory`] batches them into a few
    /// system calls.
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadError>> {
        reqs.iter_mut()
            .map(|(addr, buf)| self.read(*addr, buf))
            .collect()
    }
}

/// Requests closer than this many bytes are read as one range by
/// [`read_batch`] (less than a page: the bytes between two readable ranges
/// then lie in the pages holding them, so the merged range is readable too).
pub const MERGE_GAP_BYTES: u64 = 2048;

/// The longest range [`read_batch`] merges requests into.
const MAX_MERGED_BYTES: u64 = 1 << 20;

/// What [`read_batch`] read: each range's bytes, or why it could not be read.
#[derive(Debug)]
pub struct Batch {
    /// The merged reads' bytes, one buffer each.
    bufs: Vec<Vec<u8>>,
    /// Per range: the buffer and offset of its bytes and its length, or its error.
    slots: Vec<Result<(usize, usize, usize), ReadError>>,
}

impl Batch {
    /// The bytes of range `i`, or why they could not be read.
    pub fn get(&self, i: usize) -> Result<&[u8], ReadError> {
        match &self.slots[i] {
            Ok((buf, from, len)) => Ok(&self.bufs[*buf][*from..*from + *len]),
            Err(e) => Err(e.clone()),
        }
    }

    /// Ranges read or not.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No range at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Reads `(addr, len_bytes)` ranges of `mem` in one batch: ranges that overlap
/// or lie within [`MERGE_GAP_BYTES`] of each other are merged into one read,
/// and the merged reads go to [`Memory::read_many`] together. A merged read
/// that fails is redone range by range, so an unreadable range fails alone.
pub fn read_batch(mem: &dyn Memory, ranges: &[(u64, usize)]) -> Batch {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    if !ranges.is_sorted_by_key(|r| r.0) {
        order.sort_unstable_by_key(|&i| ranges[i].0);
    }
    // Merged runs: start, end, and the requests (a range of `order`) they hold.
    let mut runs: Vec<(u64, u64, std::ops::Range<usize>)> = Vec::new();
    // Ranges past the top of the address space are read alone, to fail with
    // their own length (and a run never spans one).
    let mut retry = Vec::new();
    let mut open_run = false;
    for (k, &i) in order.iter().enumerate() {
        let (addr, len) = ranges[i];
        let Some(end) = addr.checked_add(len as u64) else {
            retry.push(i);
            open_run = false;
            continue;
        };
        if let Some((start, run_end, members)) = runs.last_mut().filter(|_| open_run) {
            let merged_end = (*run_end).max(end);
            if addr <= run_end.saturating_add(MERGE_GAP_BYTES)
                && merged_end - *start <= MAX_MERGED_BYTES
            {
                *run_end = merged_end;
                members.end = k + 1;
                continue;
            }
        }
        runs.push((addr, end, k..k + 1));
        open_run = true;
    }
    let mut bufs: Vec<Vec<u8>> = runs
        .iter()
        .map(|(start, end, _)| vec![0u8; (end - start) as usize])
        .collect();
    let mut reqs: Vec<(u64, &mut [u8])> = runs
        .iter()
        .zip(bufs.iter_mut())
        .map(|((start, _, _), b)| (*start, b.as_mut_slice()))
        .collect();
    let results = mem.read_many(&mut reqs);
    drop(reqs);
    let mut slots: Vec<Result<(usize, usize, usize), ReadError>> =
        vec![Ok((0, 0, 0)); ranges.len()];
    for (run, ((start, _, members), r)) in runs.iter().zip(results).enumerate() {
        match r {
            Ok(()) => {
                for &i in &order[members.clone()] {
                    let (addr, len) = ranges[i];
                    slots[i] = Ok((run, (addr - start) as usize, len));
                }
            }
            Err(e) if members.len() == 1 => slots[order[members.start]] = Err(e),
            Err(_) => retry.extend_from_slice(&order[members.clone()]),
        }
    }
    if !retry.is_empty() {
        let first = bufs.len();
        bufs.extend(retry.iter().map(|&i| vec![0u8; ranges[i].1]));
        let mut reqs: Vec<(u64, &mut [u8])> = retry
            .iter()
            .zip(bufs[first..].iter_mut())
            .map(|(&i, b)| (ranges[i].0, b.as_mut_slice()))
            .collect();
        let results = mem.read_many(&mut reqs);
        drop(reqs);
        for (k, (&i, r)) in retry.iter().zip(results).enumerate() {
            slots[i] = r.map(|()| (first + k, 0, ranges[i].1));
        }
    }
    Batch { bufs, slots }
}

/// A process's memory through `process_vm_readv` and `/proc/PID/mem` (both
/// need ptrace access to it: same user and not forbidden by Yama, or root).
/// The target never stops.
#[derive(Debug)]
pub struct ProcMemory {
    pid: u32,
    proc_dir: PathBuf,
    file: File,
    /// `process_vm_readv` works here (cleared when the kernel refuses it for
    /// another reason than an unreadable range: every read then goes through
    /// `/proc/PID/mem`).
    vectored: AtomicBool,
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
            vectored: AtomicBool::new(true),
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

/// Iovecs per `process_vm_readv` call (the kernel's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

impl Memory for ProcMemory {
    /// `process_vm_readv`, up to [`IOV_MAX`] ranges per call. The kernel stops
    /// at the first range it cannot read: that one is read again alone through
    /// `/proc/PID/mem` (for its error) and the batch goes on after it.
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), ReadError>> {
        let mut out: Vec<Result<(), ReadError>> = Vec::with_capacity(reqs.len());
        let mut i = 0;
        while i < reqs.len() {
            if !self.vectored.load(Ordering::Relaxed) {
                let (addr, buf) = &mut reqs[i];
                out.push(self.read(*addr, buf));
                i += 1;
                continue;
            }
            let n = (reqs.len() - i).min(IOV_MAX);
            let batch = &mut reqs[i..i + n];
            // A range past the top of the address space goes the slow way.
            let fits =
                |(addr, buf): &(u64, &mut [u8])| addr.checked_add(buf.len() as u64).is_some();
            let ok_prefix = batch.iter().take_while(|r| fits(r)).count();
            if ok_prefix == 0 {
                let (addr, buf) = &mut batch[0];
                out.push(self.read(*addr, buf));
                i += 1;
                continue;
            }
            let batch = &mut batch[..ok_prefix];
            let local: Vec<libc::iovec> = batch
                .iter_mut()
                .map(|(_, buf)| libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                })
                .collect();
            let remote: Vec<libc::iovec> = batch
                .iter()
                .map(|(addr, buf)| libc::iovec {
                    iov_base: *addr as usize as *mut libc::c_void,
                    iov_len: buf.len(),
                })
                .collect();
            // SAFETY: every local iovec is a live, exclusively borrowed buffer of
            // its length; the remote ones are only read by the kernel.
            let got = unsafe {
                libc::process_vm_readv(
                    self.pid as libc::pid_t,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            // Ranges read in full: the returned bytes cover a prefix of them.
            let mut done = 0;
            if got >= 0 {
                let mut left = got as usize;
                for (_, buf) in batch.iter() {
                    if buf.len() > left {
                        break;
                    }
                    left -= buf.len();
                    done += 1;
                }
            } else {
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::ESRCH) => {
                        out.extend(
                            (i..reqs.len()).map(|_| Err(ReadError::Exited { pid: self.pid })),
                        );
                        return out;
                    }
                    // The first range is unreadable: read alone below.
                    Some(libc::EFAULT) => {}
                    _ => self.vectored.store(false, Ordering::Relaxed),
                }
            }
            out.extend((0..done).map(|_| Ok(())));
            i += done;
            if done < ok_prefix {
                // The range the kernel stopped at (or every range, when the call
                // itself is refused), read alone.
                let (addr, buf) = &mut reqs[i];
                out.push(self.read(*addr, buf));
                i += 1;
            }
        }
        out
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeMemory;

    fn bytes(from: u8, n: usize) -> Vec<u8> {
        (0..n).map(|i| from.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn nearby_ranges_are_one_read_and_come_back_in_order() {
        let mut m = FakeMemory::default();
        m.runs.insert(0x1000, bytes(0, 4096));
        // Out of order, overlapping, and one far away.
        let b = read_batch(&m, &[(0x1100, 4), (0x1000, 8), (0x1004, 8), (0x1800, 8)]);
        assert_eq!(m.reads.get(), 1, "one merged read");
        assert_eq!(b.get(0).unwrap(), &bytes(0, 4096)[0x100..0x104]);
        assert_eq!(b.get(1).unwrap(), &bytes(0, 8)[..]);
        assert_eq!(b.get(2).unwrap(), &bytes(4, 8)[..]);
        assert_eq!(b.get(3).unwrap(), &bytes(0, 4096)[0x800..0x808]);
        m.reads.set(0);
        m.runs.insert(0x10_0000, bytes(9, 16));
        let b = read_batch(&m, &[(0x1000, 8), (0x10_0000, 8)]);
        assert_eq!(m.reads.get(), 2, "too far apart to merge");
        assert_eq!(b.get(1).unwrap(), &bytes(9, 8)[..]);
    }

    #[test]
    fn a_merged_read_over_a_hole_falls_back_to_each_range() {
        let mut m = FakeMemory::default();
        m.runs.insert(0x1000, bytes(1, 16));
        m.runs.insert(0x1200, bytes(2, 16));
        // 0x1010..0x1200 is unmapped: the merged read fails, each range is
        // read again alone; the range in the hole fails alone.
        let b = read_batch(&m, &[(0x1000, 16), (0x1100, 8), (0x1200, 16)]);
        assert_eq!(b.get(0).unwrap(), &bytes(1, 16)[..]);
        assert!(b.get(1).unwrap_err().to_string().contains("0x1100"));
        assert_eq!(b.get(2).unwrap(), &bytes(2, 16)[..]);
        assert_eq!(m.reads.get(), 4, "one merged read, then three alone");
    }

    #[test]
    fn a_range_past_the_top_of_the_address_space_fails_with_its_length() {
        // Found by the fuzzer: the merged range's end saturated, and the
        // range was read as 0 bytes.
        let mut m = FakeMemory::default();
        m.runs.insert(u64::MAX - 64, bytes(3, 64));
        let b = read_batch(
            &m,
            &[(u64::MAX - 10, 100), (u64::MAX - 8, 4), (u64::MAX - 1, 2)],
        );
        assert!(matches!(
            b.get(0),
            Err(ReadError::Unmapped { len_bytes: 100, .. })
        ));
        assert_eq!(b.get(1).unwrap(), &bytes(3, 64)[56..60]);
        assert!(matches!(
            b.get(2),
            Err(ReadError::Unmapped { len_bytes: 2, .. })
        ));
    }

    #[test]
    fn process_vm_readv_batch_survives_unreadable_ranges() {
        // This process's own memory: 3000 readable ranges (three system calls'
        // worth) with unreadable ones among them.
        let data: Vec<u64> = (0..3000u64).map(|i| i * 7 + 1).collect();
        let mem = ProcMemory::open(std::path::Path::new("/proc"), std::process::id()).unwrap();
        let mut bufs = vec![[0u8; 8]; 3003];
        let mut addrs: Vec<u64> = data.iter().map(|w| w as *const u64 as u64).collect();
        // Page 0 is never mapped; the last one sits at the top of the address space.
        addrs.insert(0, 0x10);
        addrs.insert(1500, 0x18);
        addrs.push(u64::MAX - 3);
        let mut reqs: Vec<(u64, &mut [u8])> = addrs
            .iter()
            .zip(bufs.iter_mut())
            .map(|(a, b)| (*a, b.as_mut_slice()))
            .collect();
        let results = mem.read_many(&mut reqs);
        assert_eq!(results.len(), 3003);
        let bad: Vec<usize> = (0..3003).filter(|&i| results[i].is_err()).collect();
        assert_eq!(bad, [0, 1500, 3002]);
        assert!(matches!(
            results[1500],
            Err(ReadError::Unmapped { addr: 0x18, .. })
        ));
        let read: Vec<u64> = (0..3003)
            .filter(|i| !bad.contains(i))
            .map(|i| u64::from_le_bytes(bufs[i]))
            .collect();
        assert_eq!(read, data);
    }
}
