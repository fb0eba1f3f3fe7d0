//! Bad input to `Profile::decode`: each gives one error naming what is wrong,
//! none panics (empty, truncated, not gzip, not protobuf, gzip bombs, text
//! formats, dangling ids), and mutated real profiles never panic (proptest).

use flate2::write::GzEncoder;
use memlens_goruntime::pprof::{self, PprofError, Profile};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::path::PathBuf;

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/captures")
            .join(name),
    )
    .unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tiny protobuf writer for hand-made profiles.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn int(mut self, field: u32, v: u64) -> Self {
        self.varint(u64::from(field) << 3);
        self.varint(v);
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.varint(u64::from(field) << 3 | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn msg(self, field: u32, m: Pb) -> Self {
        self.bytes(field, &m.0)
    }
}

/// A valid profile: one sample type "n/count", one function, one location.
/// `edit` changes ids to make it invalid.
fn handmade(sample_loc: u64, line_fn: u64, fn_name: u64, values: &[u64]) -> Vec<u8> {
    let mut sample = Pb::default().int(1, sample_loc);
    for v in values {
        sample = sample.int(2, *v);
    }
    Pb::default()
        .msg(1, Pb::default().int(1, 1).int(2, 2))
        .msg(2, sample)
        .msg(
            4,
            Pb::default()
                .int(1, 1)
                .msg(4, Pb::default().int(1, line_fn).int(2, 7)),
        )
        .msg(5, Pb::default().int(1, 1).int(2, fn_name))
        .bytes(6, b"")
        .bytes(6, b"n")
        .bytes(6, b"count")
        .bytes(6, b"main.f")
        .0
}

#[test]
fn handmade_profile_decodes() {
    let p = Profile::decode(&handmade(1, 1, 3, &[5])).unwrap();
    let stacks: Vec<_> = p.stacks().collect();
    assert_eq!(stacks.len(), 1);
    assert_eq!(stacks[0].0[0].function, "main.f");
    assert_eq!(stacks[0].0[0].line, 7);
    assert_eq!(stacks[0].1, &[5]);
    let top = pprof::top(&p, 0).unwrap();
    assert_eq!(top.functions[0].flat, 5);
}

#[test]
fn dangling_ids_are_named() {
    let e = Profile::decode(&handmade(9, 1, 3, &[5])).unwrap_err();
    assert_eq!(e, PprofError::DanglingLocation { sample: 0, id: 9 });
    let e = Profile::decode(&handmade(1, 4, 3, &[5])).unwrap_err();
    assert_eq!(e, PprofError::DanglingFunction { location: 1, id: 4 });
    let e = Profile::decode(&handmade(1, 1, 40, &[5])).unwrap_err();
    assert!(
        matches!(
            e,
            PprofError::DanglingString {
                what: "function.name",
                index: 40,
                len: 4
            }
        ),
        "{e}"
    );
    let e = Profile::decode(&handmade(1, 1, 3, &[5, 6])).unwrap_err();
    assert_eq!(
        e,
        PprofError::ValueCount {
            sample: 0,
            found: 2,
            expected: 1
        }
    );
    assert!(e.to_string().contains("2 values"), "{e}");
}

#[test]
fn empty_and_foreign_inputs_are_refused() {
    assert_eq!(Profile::decode(b"").unwrap_err(), PprofError::Empty);
    // A well-formed but empty protobuf message, and one with unknown fields only.
    assert_eq!(
        Profile::decode(&Pb::default().int(100, 1).0).unwrap_err(),
        PprofError::NoSampleTypes
    );
    for (bytes, needle) in [
        (
            capture("go1.27.3-heap-leak-heap-debug1.txt"),
            "legacy text format",
        ),
        (
            capture("go1.27.3-goroutine-leak-goroutine-debug2.txt"),
            "goroutine dump",
        ),
        (capture("go1.27.3-heap-leak-expvar.json"), "JSON"),
        (capture("go1.27.3-goroutine-leak-pprof-index.html"), "HTML"),
    ] {
        let e = Profile::decode(&bytes).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
        // Gzipped, the same.
        let e = Profile::decode(&gzip(&bytes)).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
    let e = Profile::decode(&[0x1f, 0x8b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap_err();
    assert!(
        matches!(e, PprofError::Gzip(_) | PprofError::Truncated(_)),
        "{e}"
    );
    let e = Profile::decode(&[0xff; 64]).unwrap_err();
    assert!(
        matches!(e, PprofError::Protobuf(_) | PprofError::Truncated(_)),
        "{e}"
    );
}

#[test]
fn truncated_profiles_say_so() {
    let gz = capture("go1.27.3-heap-leak-heap-later.pb.gz");
    let plain = gunzip(&gz);
    for cut in [plain.len() / 3, plain.len() / 2, plain.len() - 1] {
        let e = Profile::decode(&plain[..cut]).unwrap_err();
        // A cut inside a field is a broken message; a cut that falls between
        // two fields leaves a well-formed prefix whose references (into the
        // string table, written last by Go) point past what arrived.
        assert!(
            matches!(
                e,
                PprofError::Truncated("protobuf")
                    | PprofError::Protobuf(_)
                    | PprofError::DanglingString { .. }
                    | PprofError::DanglingFunction { .. }
                    | PprofError::DanglingLocation { .. }
                    | PprofError::DanglingMapping { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
    for cut in [12, gz.len() / 2, gz.len() - 9] {
        let e = Profile::decode(&gz[..cut]).unwrap_err();
        assert_eq!(e, PprofError::Truncated("gzip stream"), "cut at {cut}");
        assert!(e.to_string().contains("truncated gzip stream"));
    }
}

#[test]
fn gzip_bombs_stop_at_the_limit() {
    // 64 MiB of zeros in a ~64 KiB gzip stream, against a 16 MiB limit.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let e = Profile::decode_with_limit(&bomb, 16 << 20).unwrap_err();
    assert_eq!(
        e,
        PprofError::TooLarge {
            limit_bytes: 16 << 20
        }
    );
    assert!(e.to_string().contains("gzip bomb"), "{e}");
    assert_eq!(pprof::MAX_DECOMPRESSED_BYTES, 1 << 30);
    // Concatenated gzip members count together.
    let member = gzip(&vec![0u8; 8 << 20]);
    let many: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 3)
        .collect();
    let e = Profile::decode_with_limit(&many, 16 << 20).unwrap_err();
    assert_eq!(
        e,
        PprofError::TooLarge {
            limit_bytes: 16 << 20
        }
    );
}

/// Everything a caller may do with a decoded profile, none of which may panic.
fn exercise(p: &Profile) {
    for i in 0..p.sample_types().len() {
        let top = pprof::top(p, i).unwrap();
        let _ = pprof::diff(&top, &top);
        let _ = pprof::map_share(p, i, &Default::default()).unwrap();
        let _ = pprof::folded_stacks(p, i).unwrap();
    }
    let _ = pprof::top(p, 99).unwrap_err();
    for s in p.stacks() {
        let _ = s;
    }
    let _ = p.period_type();
    let _ = p.default_sample_index();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_plain_profiles_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = gunzip(&capture("go1.27.3-heap-leak-heap-later.pb.gz"));
        for (at, byte) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(keep);
        if let Ok(p) = Profile::decode(&bytes) {
            exercise(&p);
        }
    }

    #[test]
    fn mutated_gzipped_profiles_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = capture("alertmanager0.25.0-go1.19.8-goroutine.pb.gz");
        for (at, byte) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if let Ok(p) = Profile::decode(&bytes) {
            exercise(&p);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(p) = Profile::decode(&bytes) {
            exercise(&p);
        }
    }
}
