//! Go's text heap profile (`heap?debug=1`) read by `Profile::decode_any`,
//! against what `go tool pprof` (of the Go that wrote it) printed, captured next
//! to the files by `scripts/capture-heap-text-fixtures.sh` (testdata/heap-text):
//!
//! - On the SAME text file, symbolised by pprof from the binary
//!   (`-top -addresses BINARY FILE`): every address's flat and cum, and the
//!   total, for all four sample types. This checks the unsampling, which
//!   addresses are kept or dropped, and that the `#` lines land on the right
//!   addresses (pprof's file:line of each address is ours).
//! - By function, on the SAME text file (`-top BINARY FILE`): pprof's binary
//!   symboliser does not expand inlined calls, it names an address by the
//!   function whose code holds it. The text file's `#` lines do expand them
//!   (like Go's protobuf), so memlens also lists the inlined functions; every
//!   function pprof lists has the same cum in memlens (see
//!   `memlens_testkit::compare_with_binary_symbolised`).
//! - By function, against `-top` on the protobuf profile the workload served
//!   between two identical text fetches (the same GC cycle): every function's
//!   flat and cum, the total and the order are the same.
//!
//! The one row pprof has and the text cannot: `runtime.goexit`, which Go never
//! prints in `#` lines (nor puts in its protobuf profiles).

use memlens_goruntime::pprof::{self, Profile};
use memlens_testkit::{
    compare_with_binary_symbolised, parse_address_row, parse_pprof_top, PprofTop,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

const SAMPLE_TYPES: [&str; 4] = [
    "alloc_objects",
    "alloc_space",
    "inuse_objects",
    "inuse_space",
];
const VERSIONS: [&str; 2] = ["go1.19", "go1.27"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/heap-text")
        .join(name)
}

fn read_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn pprof_output(name: &str) -> PprofTop {
    let top = parse_pprof_top(&read_text(name));
    assert!(!top.rows.is_empty(), "{name}: no rows");
    top
}

fn text_profile(version: &str) -> Profile {
    let name = format!("{version}-heap-debug1.txt");
    let bytes = std::fs::read(fixture(&name)).unwrap();
    Profile::decode_any(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// memlens's per-address flat and cum (flat: the leaf address; cum: once per
/// sample), and the file:line of each address's innermost frame.
fn per_address(
    profile: &Profile,
    index: usize,
) -> (BTreeMap<u64, (i64, i64)>, HashMap<u64, String>) {
    let mut rows: BTreeMap<u64, (i64, i64)> = BTreeMap::new();
    let mut places = HashMap::new();
    for (sample, (frames, values, _)) in profile.stacks().enumerate() {
        let addresses = profile.sample_addresses(sample);
        if frames.len() == addresses.len() {
            for (a, f) in addresses.iter().zip(&frames) {
                places.insert(*a, format!("{}:{}", f.file, f.line));
            }
        }
        let value = values[index];
        if value == 0 {
            continue;
        }
        let mut seen = HashSet::new();
        for (i, a) in addresses.iter().enumerate() {
            let row = rows.entry(*a).or_default();
            if i == 0 {
                row.0 += value;
            }
            if seen.insert(*a) {
                row.1 += value;
            }
        }
    }
    (rows, places)
}

#[test]
fn every_address_matches_go_tool_pprof_on_the_same_text_file() {
    for version in VERSIONS {
        let profile = text_profile(version);
        let text = read_text(&format!("{version}-heap-debug1.txt"));
        assert!(
            !text.contains("runtime.goexit"),
            "{version}: the text names goexit"
        );
        for sample in SAMPLE_TYPES {
            let want = pprof_output(&format!("{version}-heap-debug1.top-addresses-{sample}.txt"));
            let index = profile.require_sample_type(sample).unwrap();
            let (got, places) = per_address(&profile, index);
            let total: i64 = profile.stacks().map(|(_, v, _)| v[index]).sum();
            assert_eq!(total, want.total, "{version} {sample}: total");
            let mut checked = 0;
            for (name, pair) in &want.rows {
                let row = parse_address_row(name);
                if row.function == "runtime.goexit" {
                    assert_eq!(pair.0, 0, "{version} {sample}: goexit is never a leaf");
                    assert!(!got.contains_key(&row.address), "{version}: goexit kept");
                    continue;
                }
                assert_eq!(
                    got.get(&row.address),
                    Some(pair),
                    "{version} {sample}: {name}"
                );
                assert_eq!(
                    places.get(&row.address),
                    Some(&row.place),
                    "{version}: {name}"
                );
                checked += 1;
            }
            assert_eq!(
                checked,
                got.len(),
                "{version} {sample}: memlens has addresses pprof has not"
            );
        }
    }
}

#[test]
fn functions_pprof_names_from_the_binary_have_the_same_cum() {
    for version in VERSIONS {
        let profile = text_profile(version);
        for sample in SAMPLE_TYPES {
            let want = pprof_output(&format!("{version}-heap-debug1.top-{sample}.txt"));
            let proto = pprof_output(&format!("{version}-heap.pb.gz.top-{sample}.txt"));
            let top = pprof::top(&profile, profile.require_sample_type(sample).unwrap()).unwrap();
            let got: BTreeMap<String, (i64, i64)> = top
                .functions
                .iter()
                .map(|f| (f.function.clone(), (f.flat, f.cum)))
                .collect();
            if let Err(e) = compare_with_binary_symbolised(top.total, &got, &want, &proto) {
                panic!("{version} {sample}: {e}");
            }
            assert_eq!(top.functions.iter().map(|f| f.flat).sum::<i64>(), top.total);
        }
    }
}

#[test]
fn functions_match_go_tool_pprof_on_the_protobuf_of_the_same_gc_cycle() {
    for version in VERSIONS {
        let profile = text_profile(version);
        for sample in SAMPLE_TYPES {
            let want = pprof_output(&format!("{version}-heap.pb.gz.top-{sample}.txt"));
            let top = pprof::top(&profile, profile.require_sample_type(sample).unwrap()).unwrap();
            assert_eq!(top.total, want.total, "{version} {sample}: total");
            let got: BTreeMap<String, (i64, i64)> = top
                .functions
                .iter()
                .map(|f| (f.function.clone(), (f.flat, f.cum)))
                .collect();
            assert_eq!(
                got, want.rows,
                "{version} {sample}: (flat, cum) per function"
            );
            let order: Vec<&String> = top.functions.iter().map(|f| &f.function).collect();
            let want_order: Vec<&String> = want.order.iter().collect();
            assert_eq!(order, want_order, "{version} {sample}: order");
        }
    }
}

#[test]
fn sample_types_and_period_are_pprofs() {
    for version in VERSIONS {
        let profile = text_profile(version);
        let types: Vec<String> = profile.sample_types().into_iter().map(|(t, _)| t).collect();
        assert_eq!(types, SAMPLE_TYPES, "{version}");
        assert_eq!(profile.sample_types()[1].1, "bytes");
        assert_eq!(profile.default_sample_index(), 3, "{version}: inuse_space");
        assert_eq!(
            profile.period_type(),
            Some(("space".to_string(), "bytes".to_string()))
        );
        // The header says heap/1048576: twice the default MemProfileRate.
        let header = read_text(&format!("{version}-heap-debug1.txt"));
        assert!(header.starts_with("heap profile: "), "{version}");
        assert!(header.lines().next().unwrap().ends_with("@ heap/1048576"));
        assert_eq!(profile.period(), 524288, "{version}");
    }
}
