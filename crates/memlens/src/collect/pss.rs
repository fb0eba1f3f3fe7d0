//! The PSS cache of a repeated collector: when a process's `smaps_rollup` is
//! walked again, and when its last reading is reused.
//!
//! Reading `smaps_rollup` makes the kernel walk every page table of the
//! process under its mmap lock: it is the dearest file memlens reads, and most
//! processes of a host do not change from one cycle to the next. Every cycle
//! already reads cheap counters from `stat` and `status`; together they are a
//! *fingerprint* of the process's own resident memory:
//!
//! - `minflt`, `majflt` (`stat`): every page the process maps in through a
//!   fault (a new anonymous page, a file page, a swap-in, a copy-on-write
//!   break) counts one;
//! - `RssAnon`, `RssFile`, `RssShmem` (`status`): pages leaving (munmap,
//!   `MADV_DONTNEED`, reclaim, swap-out) and pages entering without a fault of
//!   the process itself (fault-around, `MAP_POPULATE`, another process writing
//!   through `/proc/PID/mem`) move them;
//! - `VmSwap`: swap-out and swap-in (SwapPss);
//! - `VmPTE`: page tables built or torn down with mappings.
//!
//! A reading is reused only while the fingerprint is unchanged and the reading
//! is younger than a max age. What can change PSS with the fingerprint
//! unchanged is what that max age bounds: another process mapping or
//! unmapping pages this one shares (PSS divides each page by its number of
//! mappers), a fork or exit of a sharer (copy-on-write pages after a fork),
//! KSM merging identical pages, khugepaged collapsing pages, and a page
//! swapped out and another faulted in between two cycles with exactly
//! balancing counters (the fault count still moves then).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The default `--pss-max-age`: how long a reading is reused at most.
pub const DEFAULT_PSS_MAX_AGE: Duration = Duration::from_secs(30);

/// A process: (pid, start time in clock ticks after boot); a reused pid has
/// another start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    /// The pid.
    pub pid: i32,
    /// `stat` starttime.
    pub start: u64,
}

/// The cheap counters of a process that move when its own resident memory
/// does (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// `stat` minflt.
    pub minor_faults: u64,
    /// `stat` majflt.
    pub major_faults: u64,
    /// `status` RssAnon.
    pub anon_bytes: u64,
    /// `status` RssFile.
    pub file_bytes: u64,
    /// `status` RssShmem.
    pub shmem_bytes: u64,
    /// `status` VmSwap.
    pub swap_bytes: u64,
    /// `status` VmPTE.
    pub page_tables_bytes: u64,
}

/// The values one `smaps_rollup` reading gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssValues {
    /// Pss.
    pub pss_bytes: u64,
    /// Private_Clean + Private_Dirty.
    pub uss_bytes: u64,
    /// SwapPss.
    pub swap_pss_bytes: u64,
}

/// The last reading of one process.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The fingerprint when it was read.
    pub fingerprint: Fingerprint,
    /// When (the start of the snapshot that read it).
    pub read_at: Instant,
    /// What it said.
    pub values: PssValues,
}

/// Whether `smaps_rollup` must be walked again, or `last` may be reused.
///
/// Re-read when there is no last reading, when the fingerprint is unknown
/// (`status` unreadable) or changed, or when the reading is `max_age` old or
/// older (so a max age of zero always re-reads).
pub fn must_reread(
    last: Option<&Reading>,
    fingerprint: Option<&Fingerprint>,
    now: Instant,
    max_age: Duration,
) -> bool {
    let (Some(last), Some(fingerprint)) = (last, fingerprint) else {
        return true;
    };
    last.fingerprint != *fingerprint || now.saturating_duration_since(last.read_at) >= max_age
}

/// The last reading of each process, by (pid, start time), for processes seen
/// in the latest snapshot only.
#[derive(Debug)]
pub struct PssCache {
    max_age: Duration,
    readings: HashMap<ProcessKey, Reading>,
    /// Processes the snapshot in progress saw.
    seen: HashSet<ProcessKey>,
}

impl Default for PssCache {
    fn default() -> Self {
        PssCache::new(DEFAULT_PSS_MAX_AGE)
    }
}

impl PssCache {
    /// A cache reusing a reading for at most `max_age` (zero: never).
    pub fn new(max_age: Duration) -> PssCache {
        PssCache {
            max_age,
            readings: HashMap::new(),
            seen: HashSet::new(),
        }
    }

    /// The reading of `key` that may stand for a new one now, with its age.
    pub fn reusable(
        &mut self,
        key: ProcessKey,
        fingerprint: Option<&Fingerprint>,
        now: Instant,
    ) -> Option<(PssValues, Duration)> {
        self.seen.insert(key);
        let last = self.readings.get(&key);
        if must_reread(last, fingerprint, now, self.max_age) {
            return None;
        }
        last.map(|r| (r.values, now.saturating_duration_since(r.read_at)))
    }

    /// Remembers a fresh reading (or forgets the last one when the read
    /// failed or there is no fingerprint to check a later one against).
    pub fn store(
        &mut self,
        key: ProcessKey,
        fingerprint: Option<Fingerprint>,
        values: Option<PssValues>,
        now: Instant,
    ) {
        self.seen.insert(key);
        match (fingerprint, values) {
            (Some(fingerprint), Some(values)) if !self.max_age.is_zero() => {
                self.readings.insert(
                    key,
                    Reading {
                        fingerprint,
                        read_at: now,
                        values,
                    },
                );
            }
            _ => {
                self.readings.remove(&key);
            }
        }
    }

    /// Ends a snapshot: forgets the processes it did not see (exited, or
    /// no longer selected), so the cache holds at most one snapshot's worth.
    pub fn end_snapshot(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.readings.retain(|key, _| seen.contains(key));
    }

    /// How many processes have a reading.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.readings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> Fingerprint {
        Fingerprint {
            minor_faults: 1000,
            major_faults: 3,
            anon_bytes: 4 << 20,
            file_bytes: 2 << 20,
            shmem_bytes: 0,
            swap_bytes: 0,
            page_tables_bytes: 64 << 10,
        }
    }

    fn values(pss_bytes: u64) -> PssValues {
        PssValues {
            pss_bytes,
            uss_bytes: pss_bytes / 2,
            swap_pss_bytes: 0,
        }
    }

    fn reading(read_at: Instant) -> Reading {
        Reading {
            fingerprint: fingerprint(),
            read_at,
            values: values(5 << 20),
        }
    }

    const MAX_AGE: Duration = Duration::from_secs(30);

    #[test]
    fn an_unchanged_young_reading_is_reused() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(29);
        assert!(!must_reread(
            Some(&reading(t0)),
            Some(&fingerprint()),
            now,
            MAX_AGE
        ));
    }

    #[test]
    fn no_reading_or_no_fingerprint_rereads() {
        let t0 = Instant::now();
        assert!(must_reread(None, Some(&fingerprint()), t0, MAX_AGE));
        assert!(must_reread(Some(&reading(t0)), None, t0, MAX_AGE));
    }

    #[test]
    fn any_fingerprint_change_rereads() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(1);
        let changes: [fn(&mut Fingerprint); 7] = [
            |f| f.minor_faults += 1,
            |f| f.major_faults += 1,
            |f| f.anon_bytes += 4096,
            |f| f.file_bytes -= 4096,
            |f| f.shmem_bytes += 4096,
            |f| f.swap_bytes += 4096,
            |f| f.page_tables_bytes += 4096,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = fingerprint();
            change(&mut changed);
            assert!(
                must_reread(Some(&reading(t0)), Some(&changed), now, MAX_AGE),
                "change {i}"
            );
        }
    }

    #[test]
    fn a_reading_of_max_age_or_older_is_reread() {
        let t0 = Instant::now();
        let last = reading(t0);
        assert!(must_reread(
            Some(&last),
            Some(&fingerprint()),
            t0 + MAX_AGE,
            MAX_AGE
        ));
        assert!(must_reread(
            Some(&last),
            Some(&fingerprint()),
            t0 + MAX_AGE * 2,
            MAX_AGE
        ));
    }

    #[test]
    fn max_age_zero_always_rereads() {
        let t0 = Instant::now();
        assert!(must_reread(
            Some(&reading(t0)),
            Some(&fingerprint()),
            t0,
            Duration::ZERO
        ));
        let mut cache = PssCache::new(Duration::ZERO);
        let key = ProcessKey { pid: 7, start: 1 };
        cache.store(key, Some(fingerprint()), Some(values(1)), t0);
        assert_eq!(cache.len(), 0, "nothing kept when nothing may be reused");
    }

    #[test]
    fn the_cache_reuses_reports_the_age_and_forgets_the_gone() {
        let t0 = Instant::now();
        let mut cache = PssCache::new(MAX_AGE);
        let a = ProcessKey {
            pid: 10,
            start: 100,
        };
        let b = ProcessKey {
            pid: 11,
            start: 100,
        };
        assert_eq!(cache.reusable(a, Some(&fingerprint()), t0), None);
        cache.store(a, Some(fingerprint()), Some(values(7)), t0);
        cache.store(b, Some(fingerprint()), Some(values(8)), t0);
        cache.end_snapshot();
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            cache.reusable(a, Some(&fingerprint()), t1),
            Some((values(7), Duration::from_secs(5)))
        );
        // The same pid with another start time is another process.
        let a_reused = ProcessKey {
            pid: 10,
            start: 200,
        };
        assert_eq!(cache.reusable(a_reused, Some(&fingerprint()), t1), None);
        // b was not seen in this snapshot: gone.
        cache.end_snapshot();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.reusable(b, Some(&fingerprint()), t1), None);
        // A failed read forgets the last reading.
        cache.store(a, Some(fingerprint()), None, t1);
        assert_eq!(cache.reusable(a, Some(&fingerprint()), t1), None);
    }
}
