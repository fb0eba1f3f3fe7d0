//! The goroutine reader on every real capture in testdata/captures (Go 1.19 to
//! 1.27, the workload's goroutine-leak mode and three Debian services).
//!
//! Independent references: the runtime's own `goroutine profile: total N` line of
//! the `?debug=1` file taken from the same process (captures README), the
//! protobuf profile of the same process, and the workload's command line in
//! MANIFEST.tsv (`--goroutines=100`, or 20 for the SIGQUIT dumps).

use memlens_goruntime::goroutine::{
    rank, read_dump, Analysis, DumpFormat, Group, Limits, RankConfig, Verdict,
};
use std::path::PathBuf;

const VERSIONS: [&str; 6] = [
    "go1.19.8",
    "go1.21.13",
    "go1.22.10",
    "go1.24.11",
    "go1.26.6",
    "go1.27.3",
];

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/captures")
}

fn read(name: &str) -> Analysis {
    let path = captures().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_dump(bytes.as_slice(), Limits::default(), &mut |_| {})
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The group of main.leakyWorker (the first frame after the scheduler's).
fn leaky_group(analysis: &Analysis, name: &str) -> Group {
    let groups: Vec<&Group> = analysis
        .groups
        .iter()
        .filter(|g| {
            g.frames
                .first()
                .is_some_and(|f| f.function == "main.leakyWorker")
        })
        .collect();
    assert_eq!(
        groups.len(),
        1,
        "{name}: one main.leakyWorker group, got {groups:#?}"
    );
    groups[0].clone()
}

/// The top-ranked group must be the leaky one.
fn top_is_leaky(analysis: &Analysis, name: &str) -> (Verdict, Group) {
    let ranked = rank(analysis, &RankConfig::default());
    let top = &ranked[0];
    let group = analysis.groups[top.index].clone();
    assert_eq!(
        group.frames[0].function, "main.leakyWorker",
        "{name}: top group {group:#?} ranked {ranked:#?}"
    );
    assert_ne!(top.verdict, Verdict::Normal, "{name}");
    (top.verdict, group)
}

fn created_by_spawner(group: &Group, name: &str) {
    let site = group.created_by[0]
        .site
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no site"));
    assert_eq!(site.function, "main.leakyWorkerSpawner", "{name}");
    assert_eq!(site.file, "memlens.dev/workload/modes_leak.go", "{name}");
    assert_eq!(group.created_by[0].count, group.count, "{name}");
}

#[test]
fn debug1_totals_are_the_runtime_s_own() {
    for v in VERSIONS {
        let name = format!("{v}-goroutine-leak-goroutine-debug1.txt");
        let a = read(&name);
        assert_eq!(a.format, DumpFormat::Debug1, "{name}");
        assert_eq!(a.declared_total, Some(105), "{name}");
        assert_eq!(a.total_goroutines, 105, "{name}: sum of the blocks");
        let leaky = leaky_group(&a, &name);
        assert_eq!(leaky.count, 100, "{name}");
        let (_, top) = top_is_leaky(&a, &name);
        assert_eq!(top.count, 100, "{name}");
    }
}

#[test]
fn debug2_dumps_match_debug1_of_the_same_process() {
    for v in VERSIONS {
        let debug1 = read(&format!("{v}-goroutine-leak-goroutine-debug1.txt"));
        let declared = debug1.declared_total.unwrap();
        for kind in ["debug2", "debug2-after-leakcheck"] {
            let name = format!("{v}-goroutine-leak-goroutine-{kind}.txt");
            let a = read(&name);
            assert_eq!(a.format, DumpFormat::Debug2, "{name}");
            assert_eq!(a.truncation, None, "{name}");
            assert_eq!(a.total_goroutines, declared, "{name}: vs debug=1 total");
            assert_eq!(a.overflow.goroutines, 0, "{name}");
            let (verdict, top) = top_is_leaky(&a, &name);
            assert_eq!(top.count, 100, "{name}");
            assert_eq!(top.states[0].state, "chan receive", "{name}");
            assert_eq!(top.states[0].count, 100, "{name}");
            created_by_spawner(&top, &name);
            // Only Go 1.27 marks them after the leak check (1.26 needs the experiment).
            let proven = v == "go1.27.3" && kind == "debug2-after-leakcheck";
            assert_eq!(
                verdict == Verdict::ProvenLeak,
                proven,
                "{name}: {verdict:?}"
            );
            assert_eq!(top.leaked, if proven { 100 } else { 0 }, "{name}");
        }
    }
}

#[test]
fn protobuf_profiles_match_debug1() {
    for v in VERSIONS {
        let name = format!("{v}-goroutine-leak-goroutine.pb.gz");
        let a = read(&name);
        assert_eq!(a.format, DumpFormat::Protobuf, "{name}");
        assert!(!a.from_leak_profile, "{name}");
        assert_eq!(a.total_goroutines, 105, "{name}");
        let (verdict, top) = top_is_leaky(&a, &name);
        assert_eq!(verdict, Verdict::Suspected, "{name}");
        assert_eq!(top.count, 100, "{name}");
        assert_eq!(
            top.states[0].state, "chan receive",
            "{name}: inferred from runtime.chanrecv"
        );
    }
}

#[test]
fn waiting_dumps_show_the_wait_time() {
    for v in VERSIONS {
        let name = format!("{v}-goroutine-leak-waiting-goroutine-debug2.txt");
        let a = read(&name);
        assert_eq!(a.total_goroutines, 105, "{name}");
        let (_, top) = top_is_leaky(&a, &name);
        assert_eq!(top.count, 100, "{name}");
        assert_eq!(top.wait_minutes_min, Some(1), "{name}");
        assert_eq!(top.wait_minutes_max, Some(1), "{name}");
    }
}

#[test]
fn sigquit_dumps_of_every_version() {
    for v in VERSIONS {
        let name = format!("{v}-goroutine-leak-sigquit.txt");
        let a = read(&name);
        assert_eq!(a.format, DumpFormat::Sigquit, "{name}");
        assert_eq!(a.truncation, None, "{name}");
        assert!(a.skipped_lines > 20, "{name}: register dump skipped");
        let (_, top) = top_is_leaky(&a, &name);
        // MANIFEST: --goroutines=20 for the SIGQUIT captures.
        assert_eq!(top.count, 20, "{name}");
        created_by_spawner(&top, &name);
        assert!(
            !a.groups.iter().any(|g| g.goroutine_ids.contains(&0)),
            "{name}: goroutine 0 is not a goroutine"
        );
    }
}

#[test]
fn goroutineleak_profiles_are_proven_leaks() {
    for prefix in ["go1.26.6-goroutineleakprofile", "go1.27.3"] {
        for suffix in ["goroutineleak-debug1.txt", "goroutineleak.pb.gz"] {
            let name = format!("{prefix}-goroutine-leak-{suffix}");
            let a = read(&name);
            assert!(a.from_leak_profile, "{name}");
            assert_eq!(a.total_goroutines, 100, "{name}");
            let (verdict, top) = top_is_leaky(&a, &name);
            assert_eq!(verdict, Verdict::ProvenLeak, "{name}");
            assert_eq!(top.count, 100, "{name}");
            assert_eq!(top.leaked, 100, "{name}");
        }
        for suffix in [
            "goroutineleak-debug2.txt",
            "goroutine-debug2-after-leakcheck.txt",
        ] {
            let name = format!("{prefix}-goroutine-leak-{suffix}");
            let a = read(&name);
            assert_eq!(a.total_goroutines, 105, "{name}: a full dump");
            let (verdict, top) = top_is_leaky(&a, &name);
            assert_eq!(verdict, Verdict::ProvenLeak, "{name}");
            assert_eq!(top.leaked, 100, "{name}");
            assert_eq!(
                a.groups.iter().map(|g| g.leaked).sum::<u64>(),
                100,
                "{name}: only the leaky workers are marked"
            );
        }
    }
}

#[test]
fn debian_services_parse_and_claim_no_proven_leak() {
    for service in [
        "prometheus2.42.0-go1.19.8",
        "node-exporter1.5.0-go1.19.8",
        "alertmanager0.25.0-go1.19.8",
    ] {
        let name = format!("{service}-goroutine-debug2.txt");
        let text = read(&name);
        let proto = read(&format!("{service}-goroutine.pb.gz"));
        assert_eq!(text.truncation, None, "{name}");
        assert!(text.total_goroutines > 0, "{name}");
        // Taken one after the other from a live service: a few goroutines of
        // drift (scrapes, the request itself) are allowed.
        let drift = text.total_goroutines.abs_diff(proto.total_goroutines);
        assert!(
            drift <= 3,
            "{name}: {} goroutines, protobuf {}",
            text.total_goroutines,
            proto.total_goroutines
        );
        for a in [&text, &proto] {
            assert!(
                rank(a, &RankConfig::default())
                    .iter()
                    .all(|r| r.verdict != Verdict::ProvenLeak),
                "{name}"
            );
        }
    }
}

#[test]
fn protobuf_stacks_match_debug2_stacks_of_the_same_process() {
    use memlens_goruntime::goroutine::merge_counts;
    for v in VERSIONS {
        let name = format!("{v}-goroutine-leak-goroutine-debug2.txt");
        let mut detail = read(&name);
        let counts = read(&format!("{v}-goroutine-leak-goroutine.pb.gz"));
        let stats = merge_counts(&mut detail, &counts);
        // Every stack but the request's own is the same key in both formats:
        // the handler differs (debug=2 vs debug=0) and its connection's
        // background reader may be caught in another state by the second fetch.
        assert!(
            stats.added_stacks <= 2,
            "{name}: {stats:?}; protobuf stacks {:#?}",
            counts.groups.iter().map(|g| &g.frames).collect::<Vec<_>>()
        );
        assert_eq!(detail.total_goroutines, 105, "{name}");
        assert_eq!(leaky_group(&detail, &name).count, 100, "{name}");
    }
}

/// Gzipped (as `memlens watch` keeps `?debug=2` dumps, and as the protobuf
/// is served), every format reads to the same analysis as plain.
#[test]
fn gzipped_dumps_read_as_the_plain_ones() {
    use std::io::Write;
    for name in [
        "go1.27.3-goroutine-leak-goroutine-debug2.txt",
        "go1.19.8-goroutine-leak-goroutine-debug1.txt",
        "go1.21.13-goroutine-leak-sigquit.txt",
        "prometheus2.42.0-go1.19.8-goroutine-debug2.txt",
    ] {
        let plain = read(name);
        let bytes = std::fs::read(captures().join(name)).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let gzipped = gz.finish().unwrap();
        let unzipped = read_dump(gzipped.as_slice(), Limits::default(), &mut |_| {})
            .unwrap_or_else(|e| panic!("{name} gzipped: {e}"));
        assert_eq!(unzipped, plain, "{name}");
    }
    // A gzipped protobuf profile (as served) reads as before; gzip in gzip
    // is unzipped once here (the profile decoder unzips the protobuf's own).
    let name = "go1.27.3-goroutine-leak-goroutine.pb.gz";
    let profile = read(name);
    assert_eq!(profile.format, DumpFormat::Protobuf);
    assert_eq!(profile.total_goroutines, 105);
    let bytes = std::fs::read(captures().join(name)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let twice = gz.finish().unwrap();
    let twice = read_dump(twice.as_slice(), Limits::default(), &mut |_| {}).unwrap();
    assert_eq!(twice.total_goroutines, 105);
    // Text gzipped twice is not unzipped twice: refused, not read.
    let text =
        std::fs::read(captures().join("go1.27.3-goroutine-leak-goroutine-debug2.txt")).unwrap();
    let mut twice = text;
    for _ in 0..2 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&twice).unwrap();
        twice = gz.finish().unwrap();
    }
    assert!(read_dump(twice.as_slice(), Limits::default(), &mut |_| {}).is_err());
}
