//! `parse_expvar` on the real `/debug/vars` captures of Go 1.19 .. 1.27,
//! checked against an independent source: the `# runtime.MemStats` trailer of
//! `heap?debug=1` served by the same process moments apart (written by
//! runtime/pprof's text writer, not encoding/json), plus the invariants the Go
//! documentation states, plus "never panics" on mutated inputs.

use memlens_goruntime::expvar::{parse_expvar, MemStats, PAUSE_RING_LEN};
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;

const VERSIONS: &[&str] = &[
    "go1.19.8",
    "go1.21.13",
    "go1.22.10",
    "go1.24.11",
    "go1.26.6",
    "go1.27.3",
];

fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `# Key = value` lines of the heap?debug=1 trailer (a tiny reader of its own).
fn trailer(version: &str) -> HashMap<String, String> {
    let text = String::from_utf8(read(&format!("{version}-heap-leak-heap-debug1.txt"))).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("# ")?.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ring(text: &str) -> Vec<u64> {
    text.trim_matches(['[', ']'])
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

fn memstats(version: &str) -> MemStats {
    let name = format!("{version}-heap-leak-expvar.json");
    let vars = parse_expvar(&name, &read(&name)).unwrap_or_else(|e| panic!("{e}"));
    vars.memstats.expect("expvar always publishes memstats")
}

#[test]
fn gc_state_matches_the_heap_profile_trailer() {
    for version in VERSIONS {
        let m = memstats(version);
        let t = trailer(version);
        let t_num_gc: u64 = t["NumGC"].parse().unwrap();
        let num_gc = m.num_gc.unwrap();
        let (t_pause, t_end) = (ring(&t["PauseNs"]), ring(&t["PauseEnd"]));
        if num_gc == t_num_gc {
            // Same GC cycle: everything the GC sets is identical.
            assert_eq!(m.next_gc_bytes, t["NextGC"].parse().ok(), "{version}");
            assert_eq!(m.last_gc_unix_ns, t["LastGC"].parse().ok(), "{version}");
            assert_eq!(
                m.gc_cpu_fraction,
                t["GCCPUFraction"].parse().ok(),
                "{version}"
            );
            assert_eq!(m.pause_ns, t_pause, "{version}");
            assert_eq!(m.pause_end_unix_ns, t_end, "{version}");
        } else {
            // A GC ran in between (go1.19.8 here): the earlier cycles agree.
            let common = num_gc.min(t_num_gc) as usize;
            assert!(common > 0 && num_gc.abs_diff(t_num_gc) <= 2, "{version}");
            assert_eq!(m.pause_ns[..common], t_pause[..common], "{version}");
            assert_eq!(m.pause_end_unix_ns[..common], t_end[..common], "{version}");
        }
        assert_eq!(m.num_forced_gc, t["NumForcedGC"].parse().ok(), "{version}");
        assert_eq!(m.lookups, Some(0), "{version}");
        assert_eq!(m.debug_gc, Some(false));
        assert_eq!(m.enable_gc, Some(true));
    }
}

#[test]
fn documented_invariants_hold() {
    for version in VERSIONS {
        let m = memstats(version);
        let v = |x: Option<u64>| x.unwrap_or_else(|| panic!("{version}: a field is missing"));
        assert_eq!(
            m.alloc_bytes, m.heap_alloc_bytes,
            "{version}: Alloc = HeapAlloc"
        );
        assert_eq!(
            v(m.heap_idle_bytes) + v(m.heap_inuse_bytes),
            v(m.heap_sys_bytes),
            "{version}: HeapIdle + HeapInuse = HeapSys"
        );
        let parts = [
            m.heap_sys_bytes,
            m.stack_sys_bytes,
            m.mspan_sys_bytes,
            m.mcache_sys_bytes,
            m.buck_hash_sys_bytes,
            m.gc_sys_bytes,
            m.other_sys_bytes,
        ];
        assert_eq!(
            parts.iter().map(|p| v(*p)).sum::<u64>(),
            v(m.sys_bytes),
            "{version}: Sys"
        );
        assert_eq!(
            m.runtime_overhead_bytes(),
            Some(v(m.sys_bytes) - v(m.heap_sys_bytes) - v(m.stack_sys_bytes))
        );
        // Fewer than 256 GCs: the ring holds every pause, so it sums to the total.
        assert!(v(m.num_gc) < PAUSE_RING_LEN as u64);
        assert_eq!(
            m.pause_ns.iter().sum::<u64>(),
            v(m.pause_total_ns),
            "{version}"
        );
        let last = m.last_pause_ns().unwrap();
        assert_eq!(last, m.pause_ns[v(m.num_gc) as usize - 1]);
        assert!(last > 0);
        assert_eq!(m.pause_ns.len(), PAUSE_RING_LEN);
        assert_eq!(
            m.by_size.len(),
            61,
            "{version}: BySize publishes 61 classes"
        );
        assert_eq!(m.by_size[1].size_bytes, 8);
        assert!(v(m.heap_released_bytes) <= v(m.heap_idle_bytes));
    }
}

#[test]
fn cmdline_and_the_workload_map() {
    // Started as `--mode=heap-leak --leak-kib=1024 --duration=20s` (MANIFEST.tsv),
    // captured after TICK 50: 50 ticks x 1 MiB retained = 52428800 bytes.
    for version in VERSIONS {
        let name = format!("{version}-heap-leak-expvar.json");
        let vars = parse_expvar(&name, &read(&name)).unwrap();
        let cmdline = vars.cmdline.unwrap();
        assert!(
            cmdline[0].ends_with(&format!("workload-{version}")),
            "{cmdline:?}"
        );
        assert_eq!(
            cmdline[1..],
            ["--mode=heap-leak", "--leak-kib=1024", "--duration=20s"]
        );
        let workload = &vars.other["workload"];
        assert_eq!(workload["mode"], "heap-leak");
        assert_eq!(workload["retained_bytes"], 52_428_800);
        assert_eq!(
            vars.other.len(),
            1,
            "{version}: only the workload map besides"
        );
    }
}

#[test]
fn truncated_and_wrong_inputs_are_clear_errors() {
    let name = "go1.27.3-heap-leak-expvar.json";
    let bytes = read(name);
    let err = parse_expvar(name, &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("{name} line ")),
        "{err}"
    );
    assert!(err.reason.contains("not valid JSON"), "{err}");
    let text = String::from_utf8(bytes).unwrap();
    let broken = text.replacen("\"HeapInuse\":", "\"HeapInuse\":\"x\",\"_\":", 1);
    assert_ne!(broken, text, "the capture has a HeapInuse key");
    let err = parse_expvar(name, broken.as_bytes()).unwrap_err();
    assert!(
        err.reason.starts_with("memstats.HeapInuse: expected"),
        "{err}"
    );
    assert!(parse_expvar("empty", b"").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_expvar("arb", &bytes);
    }

    #[test]
    fn mutated_captures_never_panic(
        version in 0..VERSIONS.len(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = read(&format!("{}-heap-leak-expvar.json", VERSIONS[version]));
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = parse_expvar("mut", &bytes);
    }
}
