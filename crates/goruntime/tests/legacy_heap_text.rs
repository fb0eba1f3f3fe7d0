//! `Profile::decode_any` on Go's text heap profile, case by case: how `#`
//! lines become frames (inlined calls, hidden runtime frames, pprof's
//! allocator pruning), the unsampling, the two-column form, the other legacy
//! formats it names, and one clear error per malformed line. The comparison
//! with `go tool pprof` on real captures is in `legacy_heap_vs_go_tool.rs`.

use memlens_goruntime::pprof::{self, PprofError, Profile};
use std::io::Write;
use std::path::PathBuf;

fn names(profile: &Profile) -> Vec<Vec<String>> {
    profile
        .stacks()
        .map(|(frames, _, _)| frames.into_iter().map(|f| f.function).collect())
        .collect()
}

fn decode(text: &str) -> Profile {
    Profile::decode_any(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error(text: &str) -> String {
    match Profile::decode_any(text.as_bytes()) {
        Ok(_) => panic!("decoded:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const HEADER: &str = "heap profile: 1: 1024 [2: 2048] @ heap/2\n";

#[test]
fn an_address_with_inlined_calls_has_several_frames_innermost_first() {
    let p = decode(&format!(
        "{HEADER}1: 1024 [2: 2048] @ 0x1001 0x2001\n\
         #\t0x1000\tmain.inner+0x10\t\tm/a.go:1\n\
         #\t0x1000\tmain.outer+0x20\t\tm/a.go:5\n\
         #\t0x2000\tmain.main+0x1\t\tm/main.go:3\n\n"
    ));
    assert_eq!(names(&p), [["main.inner", "main.outer", "main.main"]]);
    assert_eq!(p.sample_addresses(0), [0x1000, 0x2000]);
    let (frames, values, _) = p.stacks().next().unwrap();
    assert_eq!((frames[1].file.as_str(), frames[1].line), ("m/a.go", 5));
    // MemProfileRate 1 (heap/2): every allocation was recorded, no scaling.
    assert_eq!(values, [2, 2048, 1, 1024]);
}

#[test]
fn go_hides_allocator_frames_and_goexit_and_pprof_prunes_runtime_frames_below_user_code() {
    // 0x10: runtime.mallocgc (no # line: hidden), 0x20: main.leaf,
    // 0x30: runtime.mid called back into main.leaf, 0x40: main.root,
    // 0x50: runtime.goexit (no # line).
    let p = decode(
        "heap profile: 2: 64 [3: 96] @ heap/2\n\
         1: 32 [1: 32] @ 0x11 0x21 0x31 0x41 0x51\n\
         #\t0x20\tmain.leaf+0x1\tm.go:1\n\
         #\t0x30\truntime.mid+0x1\truntime/x.go:2\n\
         #\t0x40\tmain.root+0x1\tm.go:3\n\
         \n\
         1: 32 [2: 64] @ 0x21 0x41 0x51\n\
         #\t0x20\tmain.leaf+0x1\tm.go:1\n\
         #\t0x40\tmain.root+0x1\tm.go:3\n\
         \n\
         # runtime.MemStats\n# Alloc = 1\n",
    );
    // pprof cuts at the first runtime frame below a user frame (from the root).
    assert_eq!(
        names(&p),
        [vec!["main.root"], vec!["main.leaf", "main.root"]]
    );
    assert_eq!(p.sample_addresses(1), [0x20, 0x40]);
    // Only runtime frames: Go prints them all, pprof keeps them all.
    let p = decode(
        "heap profile: 1: 32 [1: 33] @ heap/2\n\
         1: 32 [1: 32] @ 0x11 0x21\n\
         #\t0x10\truntime.malg+0x1\truntime/proc.go:1\n\
         #\t0x20\truntime.newproc1+0x1\truntime/proc.go:2\n",
    );
    assert_eq!(names(&p), [["runtime.malg", "runtime.newproc1"]]);
}

#[test]
fn values_are_unsampled_like_pprof() {
    // heap/1048576: MemProfileRate 524288. Expected values computed apart from
    // memlens: int(n / (1 - exp(-(bytes/n) / 524288))) for n and bytes.
    let p = decode(
        "heap profile: 81: 5243392 [83: 5243488] @ heap/1048576\n\
         1: 524288 [80: 5242880] @ 0x11\n#\t0x10\tmain.a+0x1\tm.go:1\n\
         0: 0 [3: 96] @ 0x21\n#\t0x20\tmain.b+0x1\tm.go:2\n",
    );
    let values: Vec<Vec<i64>> = p.stacks().map(|(_, v, _)| v.to_vec()).collect();
    assert_eq!(
        values,
        [vec![680, 44619079, 1, 829411], vec![49153, 1572912, 0, 0]]
    );
    assert_eq!(p.period(), 524288);
}

#[test]
fn equal_alloc_and_inuse_totals_give_pprofs_two_columns() {
    let p = decode(
        "heap profile: 1: 8 [1: 8] @ heap/2\n1: 8 [1: 8] @ 0x11\n#\t0x10\tmain.a+0x1\tm.go:1\n",
    );
    let types: Vec<String> = p.sample_types().into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["objects", "space"]);
    let e = p.require_sample_type("inuse_space").unwrap_err();
    assert!(e.to_string().contains("objects, space"), "{e}");
}

#[test]
fn a_gzipped_text_profile_reads_the_same() {
    let text = std::fs::read(fixture("go1.27-heap-debug1.txt")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    let a = Profile::decode_any(&text).unwrap();
    let b = Profile::decode_any(&gz.finish().unwrap()).unwrap();
    assert_eq!(pprof::top(&a, 3).unwrap(), pprof::top(&b, 3).unwrap());
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/heap-text")
        .join(name)
}

#[test]
fn every_captured_go_version_reads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/captures");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with("-heap-debug1.txt") {
            continue;
        }
        let p = Profile::decode_any(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let top = pprof::top(&p, p.require_sample_type("inuse_space").unwrap()).unwrap();
        let leak = top
            .functions
            .iter()
            .find(|f| f.function == "main.retainLeakChunk");
        assert!(leak.is_some_and(|f| f.cum > 0), "{name}: {top:?}");
        // The allocator's runtime frames are gone: the chunk's maker is the leaf.
        let maker = top.functions.iter().find(|f| f.function == "main.newChunk");
        assert!(maker.is_some_and(|f| f.flat > 0), "{name}: {top:?}");
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} captures");
}

#[test]
fn other_legacy_formats_are_refused_by_name() {
    for (text, name) in [
        ("--- contention:\ncycles/second=2000000000\n", "contention"),
        ("--- mutex:\ncycles/second=2000000000\n", "mutex"),
        ("heap profile: 1: 2 [3: 4] @ heap_v2/524288\n", "heap_v2"),
        ("heap profile: 1: 2 [3: 4] @ growthz\n", "growth"),
        ("goroutine profile: total 3\n3 @ 0x1\n", "goroutine profile"),
    ] {
        let e = Profile::decode_any(text.as_bytes()).unwrap_err();
        assert!(matches!(e, PprofError::LegacyFormat(_)), "{text}: {e:?}");
        assert!(e.to_string().contains(name), "{text}: {e}");
    }
    // The protobuf-only decoder still refuses the text heap profile, naming it.
    let e = Profile::decode(HEADER.as_bytes()).unwrap_err();
    assert!(
        e.to_string().contains("legacy text format (debug=1)"),
        "{e}"
    );
}

#[test]
fn each_malformed_line_is_named() {
    let cases = [
        ("heap profile: x: 1 [1: 1] @ heap/2\n", 1, "not an integer"),
        ("heap profile: 1: 1 [1: 1]\n", 1, "@ heap/RATE"),
        (
            &format!("{HEADER}0: 5 [1: 5] @ 0x1\n"),
            2,
            "objects are 0 but",
        ),
        (&format!("{HEADER}1: 5 [-1: 5] @ 0x1\n"), 2, "negative"),
        (
            &format!("{HEADER}1: 5 [1: 5] @ 0xzz\n"),
            2,
            "not a hex address",
        ),
        (
            &format!("{HEADER}#\t0x10\tmain.a+0x1\tm.go:1\n"),
            2,
            "before any record",
        ),
        (
            &format!("{HEADER}1: 5 [1: 5] @ 0x11\n#\t0x40\tmain.a+0x1\tm.go:1\n"),
            3,
            "not an address of the record",
        ),
        (
            &format!("{HEADER}1: 5 [1: 5] @ 0x11\nsomething else\n"),
            3,
            "expected a record",
        ),
    ];
    for (text, line, what) in cases {
        let e = error(text);
        assert!(
            e.starts_with(&format!("line {line} of the text heap profile")),
            "{text}: {e}"
        );
        assert!(e.contains(what), "{text}: {e}");
    }
    let mut bad = HEADER.as_bytes().to_vec();
    bad.extend_from_slice(b"1: 5 [1: 5] @ 0x11\n#\t0x10\tmain.\xff\n");
    let e = Profile::decode_any(&bad).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("UTF-8"), "{e}");
}
