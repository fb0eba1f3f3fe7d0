//! RSS far above the Go heap: where a Go process's resident memory goes
//! besides the heap in use. Pure: `VmRSS` and the runtime's memstats in, a
//! [`Breakdown`] and at most one [`Finding`] out (docs/findings.md,
//! [`RSS_ABOVE_HEAP`]).
//!
//! The parts (memstats names):
//!
//! - idle heap kept: `HeapIdle − HeapReleased`, freed spans the runtime has
//!   not returned yet (its background scavenger returns them over minutes);
//! - stacks: `StackSys` (goroutine stacks, and the OS threads' when cgo);
//! - runtime metadata: `Sys − HeapSys − StackSys` (span structures, per-P
//!   caches, GC bitmaps, profiling buckets, other);
//! - outside the Go runtime: `RSS − (Sys − HeapReleased)`, at least 0: the
//!   binary's pages, cgo / C allocations, mappings made with syscalls — and
//!   released heap pages still resident when the runtime releases them lazily
//!   (`MADV_FREE`: Go 1.12–1.15 by default, later with
//!   `GODEBUG=madvdontneed=0`; since Go 1.16 Linux releases with
//!   `MADV_DONTNEED`, and released pages leave RSS at once).
//!
//! The Go-side parts are what the runtime has mapped, an upper bound on what
//! of them is resident, so they can add up to more than `RSS − HeapInuse`.

use crate::finding::{Evidence, Finding, Layer, Severity, Target};

/// Stable id: RSS is far above the Go heap in use.
pub const RSS_ABOVE_HEAP: &str = "memory.rss_above_heap";

/// Thresholds of [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Only when `RSS − HeapInuse` is at least this (64 MiB): a small
    /// service's runtime and binary make up tens of MiB whatever its heap.
    pub min_gap_bytes: u64,
    /// Only when `HeapInuse / RSS` is at most this (0.5: RSS more than twice
    /// the heap in use; GOGC=100 lets the heap itself reach twice the live
    /// heap, which is in use, not in this gap).
    pub max_heap_share: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_gap_bytes: 64 << 20,
            max_heap_share: 0.5,
        }
    }
}

/// What was read of one process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Inputs {
    /// `VmRSS`.
    pub rss_bytes: u64,
    /// `Sys`.
    pub sys_bytes: u64,
    /// `HeapSys`.
    pub heap_sys_bytes: u64,
    /// `HeapInuse`.
    pub heap_inuse_bytes: u64,
    /// `HeapIdle`.
    pub heap_idle_bytes: u64,
    /// `HeapReleased`.
    pub heap_released_bytes: u64,
    /// `StackSys`.
    pub stack_sys_bytes: u64,
    /// The runtime releases pages lazily (`MADV_FREE`): released pages can
    /// stay resident until the kernel needs them.
    pub lazy_release: bool,
}

/// Where the memory above the heap in use is (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// `RSS − HeapInuse` (0 when the heap is larger: not all of it resident).
    pub gap_bytes: u64,
    /// `HeapIdle − HeapReleased`.
    pub idle_heap_kept_bytes: u64,
    /// `StackSys`.
    pub stacks_bytes: u64,
    /// `Sys − HeapSys − StackSys`.
    pub runtime_metadata_bytes: u64,
    /// `HeapReleased`.
    pub released_bytes: u64,
    /// `RSS − (Sys − HeapReleased)`, at least 0.
    pub outside_runtime_bytes: u64,
}

/// The parts of the memory above the heap in use.
pub fn breakdown(i: &Inputs) -> Breakdown {
    Breakdown {
        gap_bytes: i.rss_bytes.saturating_sub(i.heap_inuse_bytes),
        idle_heap_kept_bytes: i.heap_idle_bytes.saturating_sub(i.heap_released_bytes),
        stacks_bytes: i.stack_sys_bytes,
        runtime_metadata_bytes: i
            .sys_bytes
            .saturating_sub(i.heap_sys_bytes)
            .saturating_sub(i.stack_sys_bytes),
        released_bytes: i.heap_released_bytes,
        outside_runtime_bytes: i
            .rss_bytes
            .saturating_sub(i.sys_bytes.saturating_sub(i.heap_released_bytes)),
    }
}

/// The finding, when RSS − HeapInuse ≥ `min_gap_bytes` and HeapInuse ≤
/// `max_heap_share` of RSS; its recommendation names the largest part.
pub fn check(i: &Inputs, config: &Config, target: &Target, at_ms: i64) -> Option<Finding> {
    let b = breakdown(i);
    if i.rss_bytes == 0
        || b.gap_bytes < config.min_gap_bytes
        || i.heap_inuse_bytes as f64 / i.rss_bytes as f64 > config.max_heap_share
    {
        return None;
    }
    let mib = |v: u64| v as f64 / (1u64 << 20) as f64;
    let parts = [
        (
            b.outside_runtime_bytes,
            if i.lazy_release {
                "outside the Go runtime: cgo or C libraries, mappings made with syscalls, the \
                 binary, or released heap pages still resident (the runtime releases with \
                 MADV_FREE here: GODEBUG=madvdontneed=1 makes them leave RSS at once); \
                 /proc/PID/smaps shows which mappings"
            } else {
                "outside the Go runtime: cgo or C libraries, mappings made with syscalls, the \
                 binary; /proc/PID/smaps shows which mappings"
            },
        ),
        (
            b.idle_heap_kept_bytes,
            "freed heap the runtime keeps (returned over minutes by its scavenger): a past \
             peak; GOMEMLIMIT makes the runtime return it when it matters, \
             debug.FreeOSMemory at once",
        ),
        (
            b.stacks_bytes,
            "goroutine stacks: many goroutines or deep recursion (memlens goroutines)",
        ),
        (
            b.runtime_metadata_bytes,
            "runtime metadata (spans, GC bitmaps, profiling buckets): grows with the \
             largest heap and the number of objects",
        ),
    ];
    let (largest, why) = parts.iter().max_by_key(|(v, _)| *v).copied()?;
    let recommendation = format!(
        "RSS {:.0} MiB is {:.0} MiB above the Go heap in use ({:.0} MiB); the largest part, \
         {:.0} MiB, is {why}",
        mib(i.rss_bytes),
        mib(b.gap_bytes),
        mib(i.heap_inuse_bytes),
        mib(largest)
    );
    let e = |name, v: u64, layer| Evidence::new(name, v as f64, "bytes", layer);
    Some(Finding::fired(
        RSS_ABOVE_HEAP,
        Severity::Warning,
        target.clone(),
        vec![
            e("rss_bytes", i.rss_bytes, Layer::Process),
            e("heap_inuse_bytes", i.heap_inuse_bytes, Layer::GoRuntime),
            e("gap_bytes", b.gap_bytes, Layer::Derived),
            e(
                "idle_heap_kept_bytes",
                b.idle_heap_kept_bytes,
                Layer::GoRuntime,
            ),
            e("stacks_bytes", b.stacks_bytes, Layer::GoRuntime),
            e(
                "runtime_metadata_bytes",
                b.runtime_metadata_bytes,
                Layer::GoRuntime,
            ),
            e("released_bytes", b.released_bytes, Layer::GoRuntime),
            e(
                "outside_runtime_bytes",
                b.outside_runtime_bytes,
                Layer::Derived,
            ),
        ],
        recommendation,
        at_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn inputs(rss: u64, inuse: u64, idle: u64, released: u64, outside: u64) -> Inputs {
        let heap_sys = inuse + idle;
        let stack = 2 * MIB;
        let sys = heap_sys + stack + 10 * MIB;
        Inputs {
            rss_bytes: rss.max(sys - released + outside),
            sys_bytes: sys,
            heap_sys_bytes: heap_sys,
            heap_inuse_bytes: inuse,
            heap_idle_bytes: idle,
            heap_released_bytes: released,
            stack_sys_bytes: stack,
            lazy_release: false,
        }
    }

    #[test]
    fn parts_add_up() {
        let i = inputs(0, 40 * MIB, 100 * MIB, 20 * MIB, 30 * MIB);
        let b = breakdown(&i);
        assert_eq!(b.idle_heap_kept_bytes, 80 * MIB);
        assert_eq!(b.stacks_bytes, 2 * MIB);
        assert_eq!(b.runtime_metadata_bytes, 10 * MIB);
        assert_eq!(b.outside_runtime_bytes, 30 * MIB);
        assert_eq!(
            b.gap_bytes,
            b.idle_heap_kept_bytes + b.stacks_bytes + b.runtime_metadata_bytes + 30 * MIB
        );
    }

    #[test]
    fn names_the_largest_part() {
        let c = Config::default();
        let t = Target::Host;
        let cgo = inputs(0, 20 * MIB, 10 * MIB, 0, 200 * MIB);
        let f = check(&cgo, &c, &t, 0).unwrap();
        assert!(f.recommendation.contains("outside the Go runtime"));
        assert_eq!(
            f.evidence("outside_runtime_bytes"),
            Some((200 * MIB) as f64)
        );
        let idle = inputs(0, 20 * MIB, 300 * MIB, 10 * MIB, 5 * MIB);
        assert!(check(&idle, &c, &t, 0)
            .unwrap()
            .recommendation
            .contains("freed heap"));
    }

    #[test]
    fn a_heap_dominated_or_small_process_is_fine() {
        let c = Config::default();
        let t = Target::Host;
        assert!(check(&inputs(0, 200 * MIB, 50 * MIB, 0, 10 * MIB), &c, &t, 0).is_none());
        assert!(check(&inputs(0, 5 * MIB, 20 * MIB, 0, 20 * MIB), &c, &t, 0).is_none());
        assert!(check(&Inputs::default(), &c, &t, 0).is_none());
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_numbers_are_judged_without_panic(v in proptest::collection::vec(any::<u64>(), 7)) {
            let i = Inputs {
                rss_bytes: v[0], sys_bytes: v[1], heap_sys_bytes: v[2], heap_inuse_bytes: v[3],
                heap_idle_bytes: v[4], heap_released_bytes: v[5], stack_sys_bytes: v[6],
                lazy_release: v[0] % 2 == 0,
            };
            let _ = check(&i, &Config::default(), &Target::Host, 0);
        }
    }
}
