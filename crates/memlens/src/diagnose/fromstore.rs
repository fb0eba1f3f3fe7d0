//! Pure conversions of values read from the agent's history into what the
//! detectors read at the start of a window: a [`ProcessSample`] from a
//! process's stored series at one instant, a [`GoRead`] from its stored
//! `go_*` series, and the creation sites a stored goroutine profile lacks
//! (the protobuf profile has counts by stack, no `created by`), lent from
//! the live `?debug=2` dump at the end. IO lives in [`super::history`].

use super::window::{GoRead, HeapNumbers};
use crate::advise::observe::RuntimeSample;
use memlens_analyze::gcpressure::Counters;
use memlens_goruntime::goroutine::{Analysis, CreationCount, Frame};
use memlens_model::{CgroupSample, ProcessSample};
use std::collections::HashMap;

/// The process series read at the start of a history window (names of
/// crates/model/src/series.rs). `threads` is stored for every process
/// sample, so its first sample marks the first stored instant.
pub const PROCESS_METRICS: [&str; 17] = [
    "threads",
    "rss_bytes",
    "swap_bytes",
    "anon_bytes",
    "file_bytes",
    "shmem_bytes",
    "page_tables_bytes",
    "vm_size_bytes",
    "minor_faults",
    "major_faults",
    "vma_count",
    "anon_vma_count",
    "largest_gap_bytes",
    "fd_count",
    "fd_limit",
    "oom_score",
    "oom_score_adj",
];

/// The Go runtime series read at the start of a history window (names of
/// crates/memlens/src/watch/gotargets.rs).
pub const GO_METRICS: [&str; 16] = [
    "go_gc_cycles_total",
    "go_gc_pause_ns_total",
    "go_alloc_bytes_total",
    "go_mallocs_total",
    "go_gc_cpu_fraction",
    "go_heap_alloc_bytes",
    "go_heap_inuse_bytes",
    "go_heap_idle_bytes",
    "go_heap_released_bytes",
    "go_heap_sys_bytes",
    "go_sys_bytes",
    "go_gomemlimit_bytes",
    "go_gogc_percent",
    "go_stack_inuse_bytes",
    "go_goroutines",
    "run_queue_wait_seconds",
];

/// Values of one entity's series at one instant, by metric name.
pub type Values = HashMap<String, f64>;

/// The value as a whole non-negative number (`None` for NaN, infinities,
/// negatives and values past `u64`).
fn whole(v: f64) -> Option<u64> {
    (0.0..18_446_744_073_709_551_616.0)
        .contains(&v)
        .then_some(v.round() as u64)
}

fn get(values: &Values, metric: &str) -> Option<u64> {
    values.get(metric).copied().and_then(whole)
}

/// The process at the start of the window: the identity of `live` (the
/// same pid and start time now: pid, comm, command line, Go build info,
/// cgroup path and limits) with the numbers stored at that instant
/// (`values`) and the cgroup's stored usage; a number not stored is `None`
/// (counters 0).
pub fn process_at_start(
    live: &ProcessSample,
    values: &Values,
    cgroup_usage_bytes: Option<f64>,
) -> ProcessSample {
    ProcessSample {
        pid: live.pid,
        start_time: live.start_time,
        comm: live.comm.clone(),
        cmdline: live.cmdline.clone(),
        ppid: live.ppid,
        state: String::new(),
        rss_bytes: get(values, "rss_bytes"),
        swap_bytes: get(values, "swap_bytes"),
        anon_bytes: get(values, "anon_bytes"),
        file_bytes: get(values, "file_bytes"),
        shmem_bytes: get(values, "shmem_bytes"),
        page_tables_bytes: get(values, "page_tables_bytes"),
        vm_size_bytes: get(values, "vm_size_bytes"),
        minor_faults: get(values, "minor_faults").unwrap_or(0),
        major_faults: get(values, "major_faults").unwrap_or(0),
        threads: get(values, "threads").unwrap_or(0),
        vma_count: get(values, "vma_count"),
        anon_vma_count: get(values, "anon_vma_count"),
        largest_gap_bytes: get(values, "largest_gap_bytes"),
        fd_count: get(values, "fd_count"),
        fd_limit: get(values, "fd_limit"),
        oom_score: get(values, "oom_score").and_then(|v| u32::try_from(v).ok()),
        oom_score_adj: values
            .get("oom_score_adj")
            .filter(|v| v.is_finite() && (-1000.0..=1000.0).contains(*v))
            .map(|v| *v as i32),
        go: live.go.clone(),
        // The cgroup's identity and limits; its numbers of that instant
        // other than the usage are not known here.
        cgroup: live.cgroup.as_ref().map(|c| CgroupSample {
            version: c.version,
            path: c.path.clone(),
            name: c.name.clone(),
            limit_bytes: c.limit_bytes,
            effective_limit_bytes: c.effective_limit_bytes,
            high_bytes: c.high_bytes,
            usage_bytes: cgroup_usage_bytes.and_then(whole),
            ..CgroupSample::default()
        }),
        ..ProcessSample::default()
    }
}

/// GOMEMLIMIT / GOGC as stored: math.MaxInt64 (or a negative GOGC) is
/// "none" / "off", as `/metrics` says it.
fn setting(values: &Values, metric: &str) -> Option<Option<u64>> {
    const NO_LIMIT: f64 = 9_223_372_036_854_775_807.0;
    let v = *values.get(metric)?;
    if !v.is_finite() {
        return None;
    }
    Some(if !(0.0..NO_LIMIT).contains(&v) {
        None
    } else {
        whole(v)
    })
}

/// The runtime's numbers at the start of the window from its stored `go_*`
/// series at one instant, `at_seconds` after the window's start; `None`
/// when neither the GC cycles nor the heap in use were stored.
/// `from_expvar` is inferred: only expvar's memstats give the GC CPU
/// fraction the agent stores.
pub fn go_read_at_start(values: &Values, at_seconds: f64) -> Option<GoRead> {
    if !values.contains_key("go_gc_cycles_total") && !values.contains_key("go_heap_inuse_bytes") {
        return None;
    }
    let heap_alloc_bytes = get(values, "go_heap_alloc_bytes");
    let heap = HeapNumbers {
        sys_bytes: get(values, "go_sys_bytes"),
        heap_sys_bytes: get(values, "go_heap_sys_bytes"),
        heap_inuse_bytes: get(values, "go_heap_inuse_bytes"),
        heap_idle_bytes: get(values, "go_heap_idle_bytes"),
        heap_released_bytes: get(values, "go_heap_released_bytes"),
        // The agent stores StackInuse, not StackSys.
        stack_sys_bytes: None,
    };
    let gc_cpu_fraction = values
        .get("go_gc_cpu_fraction")
        .copied()
        .filter(|v| v.is_finite() && (0.0..=1.0).contains(v));
    Some(GoRead {
        at_seconds,
        gc: Counters {
            num_gc: get(values, "go_gc_cycles_total"),
            pause_total_ns: get(values, "go_gc_pause_ns_total"),
            total_alloc_bytes: get(values, "go_alloc_bytes_total"),
            mallocs: get(values, "go_mallocs_total"),
            gc_cpu_fraction,
            heap_alloc_bytes,
        },
        heap,
        runtime: RuntimeSample {
            heap_alloc_bytes,
            heap_inuse_bytes: heap.heap_inuse_bytes,
            sys_bytes: heap.sys_bytes,
            heap_released_bytes: heap.heap_released_bytes,
            gomemlimit_bytes: setting(values, "go_gomemlimit_bytes"),
            gogc_percent: setting(values, "go_gogc_percent"),
        },
        from_expvar: gc_cpu_fraction.is_some(),
        // Stored with the runtime's counters since the agent keeps it;
        // an older history judges the pauses without it.
        run_queue_wait_ns: values
            .get("run_queue_wait_seconds")
            .and_then(|s| whole(s * 1e9)),
    })
}

/// Whether two stacks (innermost first) agree on every frame the shorter
/// has (Go 1.19's protobuf profile leaves out a goroutine's entry frame
/// that `?debug=2` shows).
fn same_stack(a: &[Frame], b: &[Frame]) -> bool {
    let shorter = a.len().min(b.len());
    shorter > 0 && a[..shorter] == b[..shorter]
}

/// Gives each goroutine group of `start` (from a stored protobuf profile:
/// counts by stack, no creation sites) the most common creation site of
/// the group of `end` (a live `?debug=2` dump) with the same stack, so the
/// leak detector groups both ends by the same (blocking function, creation
/// site). Groups with no such stack at the end keep none. Returns the
/// number of groups given a site.
pub fn lend_creation_sites(start: &mut Analysis, end: &Analysis) -> usize {
    let mut lent = 0;
    for group in start
        .groups
        .iter_mut()
        .filter(|g| g.created_by.iter().all(|c| c.site.is_none()))
    {
        // Groups the goroutineleak profile added to the end have no site:
        // only groups of the `?debug=2` dump can lend one.
        let site = end
            .groups
            .iter()
            .filter(|e| same_stack(&e.frames, &group.frames))
            .filter_map(|e| {
                let site = e.created_by.iter().max_by_key(|c| c.count)?.site.clone()?;
                Some((e.frames == group.frames, e.count, site))
            })
            .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
            .map(|(_, _, site)| site);
        if let Some(site) = site {
            group.created_by = vec![CreationCount {
                site: Some(site),
                count: group.count,
            }];
            lent += 1;
        }
    }
    lent
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_goruntime::goroutine::{read_dump, Limits};
    use memlens_model::GoInfo;

    fn values(pairs: &[(&str, f64)]) -> Values {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_stored_instant_becomes_the_process_at_the_start() {
        let live = ProcessSample {
            pid: 42,
            start_time: 777,
            comm: "svc".into(),
            fd_count: Some(390),
            fd_limit: Some(400),
            rss_bytes: Some(9 << 20),
            go: Some(GoInfo {
                version: "go1.27.3".into(),
                ..GoInfo::default()
            }),
            cgroup: Some(CgroupSample {
                path: "/a".into(),
                usage_bytes: Some(50 << 20),
                ..CgroupSample::default()
            }),
            ..ProcessSample::default()
        };
        let stored = values(&[
            ("threads", 7.0),
            ("rss_bytes", 4194304.0),
            ("fd_count", 120.0),
            ("fd_limit", 400.0),
            ("vma_count", 88.0),
            ("oom_score_adj", -500.0),
            ("largest_gap_bytes", f64::NAN),
            ("swap_bytes", -1.0),
        ]);
        let p = process_at_start(&live, &stored, Some(30.0 * 1048576.0));
        assert_eq!((p.pid, p.start_time, p.comm.as_str()), (42, 777, "svc"));
        assert_eq!(p.fd_count, Some(120));
        assert_eq!(p.fd_limit, Some(400));
        assert_eq!(p.rss_bytes, Some(4 << 20));
        assert_eq!(p.vma_count, Some(88));
        assert_eq!(p.threads, 7);
        assert_eq!(p.oom_score_adj, Some(-500));
        assert_eq!(p.largest_gap_bytes, None);
        assert_eq!(p.swap_bytes, None);
        assert_eq!(p.anon_vma_count, None);
        let cgroup = p.cgroup.expect("the live cgroup");
        assert_eq!(
            (cgroup.path.as_str(), cgroup.usage_bytes),
            ("/a", Some(30 << 20))
        );
        assert_eq!(p.go.map(|g| g.version).as_deref(), Some("go1.27.3"));
    }

    #[test]
    fn stored_go_series_become_the_runtime_at_the_start() {
        let stored = values(&[
            ("go_gc_cycles_total", 12.0),
            ("go_gc_pause_ns_total", 3.5e6),
            ("go_alloc_bytes_total", 1e9),
            ("go_heap_inuse_bytes", 8e6),
            ("go_heap_alloc_bytes", 7e6),
            ("go_gomemlimit_bytes", 9_223_372_036_854_775_807.0),
            ("go_gogc_percent", 100.0),
            ("run_queue_wait_seconds", 1.25),
        ]);
        let read = go_read_at_start(&stored, 2.5).expect("a read");
        assert_eq!(read.run_queue_wait_ns, Some(1_250_000_000));
        assert_eq!(read.at_seconds, 2.5);
        assert_eq!(read.gc.num_gc, Some(12));
        assert_eq!(read.gc.pause_total_ns, Some(3_500_000));
        assert_eq!(read.gc.total_alloc_bytes, Some(1_000_000_000));
        assert_eq!(read.heap.heap_inuse_bytes, Some(8_000_000));
        assert_eq!(read.runtime.gomemlimit_bytes, Some(None));
        assert_eq!(read.runtime.gogc_percent, Some(Some(100)));
        assert!(!read.from_expvar);
        let expvar = values(&[("go_gc_cycles_total", 1.0), ("go_gc_cpu_fraction", 0.01)]);
        let read = go_read_at_start(&expvar, 0.0).unwrap();
        assert!(read.from_expvar);
        assert_eq!(read.run_queue_wait_ns, None);
        assert_eq!(read.runtime.gomemlimit_bytes, None);
        assert!(go_read_at_start(&values(&[("go_goroutines", 5.0)]), 0.0).is_none());
    }

    fn dump(text: &str) -> Analysis {
        read_dump(text.as_bytes(), Limits::default(), &mut |_| {}).unwrap()
    }

    #[test]
    fn start_groups_get_the_end_dumps_creation_sites() {
        // The end: ?debug=2 with creation sites.
        let end = dump(
            "goroutine 7 [chan receive]:\nmain.leakyWorker()\n\t/w/m.go:10 +0x1\n\
             created by main.leakyWorkerSpawner in goroutine 1\n\t/w/m.go:20 +0x2\n\n\
             goroutine 8 [select]:\nmain.other()\n\t/w/m.go:30 +0x1\n",
        );
        // The start: counts by stack only (debug=1 form, like protobuf).
        let mut start = dump(
            "goroutine profile: total 15\n10 @ 0x1\n#\t0x1\tmain.leakyWorker+0x1\t/w/m.go:10\n\n\
             5 @ 0x2\n#\t0x2\tmain.gone+0x1\t/w/m.go:40\n",
        );
        // A group the goroutineleak profile added: the same stack, no site.
        let mut end = end;
        let mut proof = start
            .groups
            .iter()
            .find(|g| g.frames[0].function == "main.leakyWorker")
            .unwrap()
            .clone();
        proof.leaked = proof.count;
        end.groups.push(proof);
        let no_site =
            |g: &memlens_goruntime::goroutine::Group| g.created_by.iter().all(|c| c.site.is_none());
        assert!(start.groups.iter().all(no_site));
        assert_eq!(lend_creation_sites(&mut start, &end), 1);
        let leaky = start
            .groups
            .iter()
            .find(|g| g.frames[0].function == "main.leakyWorker")
            .unwrap();
        assert_eq!(leaky.created_by.len(), 1);
        assert_eq!(leaky.created_by[0].count, 10);
        let site = leaky.created_by[0].site.as_ref().unwrap();
        assert_eq!(site.function, "main.leakyWorkerSpawner");
        let gone = start
            .groups
            .iter()
            .find(|g| g.frames[0].function == "main.gone")
            .unwrap();
        assert!(no_site(gone));
    }
}
