//! A sparse address space for the tests of the readers (memory, layout,
//! walk): byte runs at addresses, a count of the reads it serves, and
//! optionally the failure of a process that exited after some reads.

use crate::memory::{Memory, ReadError};
use std::cell::Cell;
use std::collections::BTreeMap;

/// Byte runs at addresses.
#[derive(Default)]
pub(crate) struct FakeMemory {
    pub(crate) runs: BTreeMap<u64, Vec<u8>>,
    /// The reads served so far (batched reads count each range).
    pub(crate) reads: Cell<usize>,
    /// Reads after this many fail as an exited process's would.
    pub(crate) fail_after: Option<usize>,
}

impl FakeMemory {
    /// Places `bytes` at `addr`.
    pub(crate) fn put(&mut self, addr: u64, bytes: &[u8]) {
        self.runs.insert(addr, bytes.to_vec());
    }

    /// Places little-endian 64-bit `words` at `addr`.
    pub(crate) fn put_u64s(&mut self, addr: u64, words: &[u64]) {
        let b: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.put(addr, &b);
    }
}

impl Memory for FakeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.reads.set(self.reads.get() + 1);
        if self.fail_after.is_some_and(|n| self.reads.get() > n) {
            return Err(ReadError::Exited { pid: 7 });
        }
        let (start, run) = self
            .runs
            .range(..=addr)
            .next_back()
            .filter(|(s, r)| {
                addr.checked_add(buf.len() as u64)
                    .is_some_and(|end| end <= **s + r.len() as u64)
            })
            .ok_or(ReadError::Unmapped {
                addr,
                len_bytes: buf.len(),
                reason: "unmapped".into(),
            })?;
        let from = (addr - start) as usize;
        buf.copy_from_slice(&run[from..from + buf.len()]);
        Ok(())
    }
}
