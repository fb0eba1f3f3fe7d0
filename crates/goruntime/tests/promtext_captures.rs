//! `parse_promtext` on the real `/metrics` captures of Debian's prometheus,
//! node-exporter and alertmanager (client_golang, Go 1.19.8), checked against
//! counts and values read by hand with grep, against relations between series
//! that client_golang copies from one `runtime.MemStats` read, and "never
//! panics" on mutated inputs.
//!
//! By hand (rerun to check), for each file:
//! `grep -c '^# TYPE' F` (families) and `grep -v '^#' F | grep -c .` (samples),
//! `grep -E '^(go_goroutines|go_threads|process_open_fds) ' F`.

use memlens_goruntime::promtext::{
    parse_promtext, parse_promtext_with_limits, GoMetrics, MetricType, ProcessMetrics,
    PromTextLimits,
};
use proptest::prelude::*;
use std::path::PathBuf;

struct Capture {
    file: &'static str,
    families: usize,
    samples: usize,
    goroutines: u64,
    threads: u64,
    open_fds: u64,
    heap_inuse_bytes: u64,
    resident_memory_bytes: u64,
    gc_count: u64,
}

const CAPTURES: &[Capture] = &[
    Capture {
        file: "prometheus2.42.0-go1.19.8-metrics.txt",
        families: 169,
        samples: 419,
        goroutines: 37,
        threads: 8,
        open_fds: 17,
        heap_inuse_bytes: 15_532_032,      // 1.5532032e+07
        resident_memory_bytes: 52_121_600, // 5.21216e+07
        gc_count: 5,
    },
    Capture {
        file: "node-exporter1.5.0-go1.19.8-metrics.txt",
        families: 283,
        samples: 507,
        goroutines: 8,
        threads: 7,
        open_fds: 12,
        heap_inuse_bytes: 3_694_592,
        resident_memory_bytes: 20_320_256,
        gc_count: 3,
    },
    Capture {
        file: "alertmanager0.25.0-go1.19.8-metrics.txt",
        families: 73,
        samples: 281,
        goroutines: 17,
        threads: 8,
        open_fds: 12,
        heap_inuse_bytes: 12_034_048,
        resident_memory_bytes: 34_918_400,
        gc_count: 4,
    },
];

fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/captures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn families_and_samples_match_grep() {
    for c in CAPTURES {
        let e = parse_promtext(c.file, &read(c.file)).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(e.families.len(), c.families, "{}", c.file);
        assert_eq!(e.sample_count(), c.samples, "{}", c.file);
        // Every sample found the family of its # TYPE line (no stray family).
        for family in &e.families {
            assert!(
                family.help.is_some(),
                "{}: {} has HELP",
                c.file,
                family.name
            );
        }
        let gc = e.family("go_gc_duration_seconds").unwrap();
        assert_eq!(gc.metric_type, MetricType::Summary);
        assert_eq!(gc.samples.len(), 7, "5 quantiles, _sum, _count");
    }
}

#[test]
fn go_and_process_series_match_the_text() {
    for c in CAPTURES {
        let e = parse_promtext(c.file, &read(c.file)).unwrap();
        let go = GoMetrics::from_exposition(&e);
        let process = ProcessMetrics::from_exposition(&e);
        assert_eq!(go.version.as_deref(), Some("go1.19.8"), "{}", c.file);
        assert_eq!(go.goroutines, Some(c.goroutines), "{}", c.file);
        assert_eq!(go.threads, Some(c.threads), "{}", c.file);
        assert_eq!(go.heap_inuse_bytes, Some(c.heap_inuse_bytes), "{}", c.file);
        assert_eq!(process.open_fds, Some(c.open_fds), "{}", c.file);
        assert_eq!(process.max_fds, Some(20000), "{}", c.file);
        assert_eq!(process.resident_memory_bytes, Some(c.resident_memory_bytes));
        let summary = go.gc_duration.as_ref().unwrap();
        assert_eq!(summary.count, Some(c.gc_count), "{}", c.file);
        let qs: Vec<f64> = summary.quantiles.iter().map(|q| q.0).collect();
        assert_eq!(qs, [0.0, 0.25, 0.5, 0.75, 1.0]);
        // Quantiles are ordered and the max pause times the count bounds the sum.
        let values: Vec<f64> = summary.quantiles.iter().map(|q| q.1).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
        let sum = summary.sum_seconds.unwrap();
        assert!(sum <= values[4] * c.gc_count as f64 + 1e-12);
        // client_golang 1.14 of Debian's builds has no runtime/metrics series.
        assert_eq!(go.gogc_percent, None);
        assert_eq!(go.gomemlimit_bytes, None);
        // One ReadMemStats feeds all go_memstats_*: its identities hold exactly.
        let v = |x: Option<u64>| x.unwrap();
        assert_eq!(go.alloc_bytes, go.heap_alloc_bytes);
        assert_eq!(
            v(go.heap_idle_bytes) + v(go.heap_inuse_bytes),
            v(go.heap_sys_bytes)
        );
        let parts = [
            go.heap_sys_bytes,
            go.stack_sys_bytes,
            go.mspan_sys_bytes,
            go.mcache_sys_bytes,
            go.buck_hash_sys_bytes,
            go.gc_sys_bytes,
            go.other_sys_bytes,
        ];
        assert_eq!(parts.iter().map(|p| v(*p)).sum::<u64>(), v(go.sys_bytes));
        assert!(process.start_time_seconds.unwrap() > 1.7e9);
        assert!(process.cpu_seconds_total.unwrap() > 0.0);
    }
}

#[test]
fn histograms_keep_their_buckets() {
    // prometheus_http_request_duration_seconds: `grep -c
    // '^prometheus_http_request_duration_seconds_' F` counts its samples.
    let file = CAPTURES[0].file;
    let text = String::from_utf8(read(file)).unwrap();
    let e = parse_promtext(file, text.as_bytes()).unwrap();
    for family in e
        .families
        .iter()
        .filter(|f| f.metric_type == MetricType::Histogram)
    {
        let by_hand = text
            .lines()
            .filter(|l| {
                [
                    "_bucket{", "_bucket ", "_sum{", "_sum ", "_count{", "_count ",
                ]
                .iter()
                .any(|s| l.starts_with(&format!("{}{s}", family.name)))
            })
            .count();
        assert_eq!(family.samples.len(), by_hand, "{}", family.name);
        assert!(family.samples.iter().any(|s| s.label("le") == Some("+Inf")));
        let inf = family
            .samples
            .iter()
            .find(|s| s.label("le") == Some("+Inf"))
            .unwrap();
        let count = family
            .samples
            .iter()
            .find(|s| s.name.ends_with("_count") && s.labels == inf.labels[..inf.labels.len() - 1])
            .map(|s| s.value);
        if let Some(count) = count {
            assert_eq!(inf.value, count, "{}: +Inf bucket = count", family.name);
        }
    }
}

#[test]
fn caps_truncation_and_garbage_are_clear_errors() {
    let c = &CAPTURES[0];
    let bytes = read(c.file);
    let limits = PromTextLimits {
        max_samples: 10,
        ..PromTextLimits::default()
    };
    let err = parse_promtext_with_limits(c.file, &bytes, &limits).unwrap_err();
    assert!(err.to_string().contains("more than 10 samples"), "{err}");
    let limits = PromTextLimits {
        max_line_bytes: 40,
        ..PromTextLimits::default()
    };
    let err = parse_promtext_with_limits(c.file, &bytes, &limits).unwrap_err();
    assert_eq!(err.line, Some(1), "{err}");
    // Cut inside a label value: the line says so.
    let text = String::from_utf8(bytes).unwrap();
    let cut = text.find("quantile=\"0.2").unwrap() + 12;
    let err = parse_promtext(c.file, &text.as_bytes()[..cut]).unwrap_err();
    assert!(err.reason.contains("not closed"), "{err}");
    assert_eq!(err.line, Some(text[..cut].lines().count()));
    assert!(parse_promtext("empty", b"").is_err());
    let err = parse_promtext("html", b"<html><body>404</body></html>\n").unwrap_err();
    assert_eq!(err.line, Some(1), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "[a-z_{}=\",# \\\\\n0-9.eE+-]{0,300}") {
        let _ = parse_promtext("arb", text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_promtext("arb", &bytes);
    }

    #[test]
    fn mutated_captures_never_panic(
        file in 0..CAPTURES.len(),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = read(CAPTURES[file].file);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(e) = parse_promtext("mut", &bytes) {
            prop_assert!(e.sample_count() <= CAPTURES[file].samples + 8);
        }
    }
}
