//! Truncated and corrupted copies of a real Go binary (testdata/hello built by
//! Go 1.27): every outcome must be an error, "not Go", or the true build info;
//! never a panic, a wrong answer, or a huge allocation.

mod common;

use common::{build_hello, magic_offset, Counting, TempDir};
use memlens_goruntime::{read_build_info, BuildInfoError, GoBuildInfo, MAX_STRING_BYTES};
use memlens_testkit::GoToolchain;
use proptest::prelude::*;
use std::sync::OnceLock;

/// The bytes of the hello binary and what it really holds (read once per process).
fn hello() -> &'static (Vec<u8>, GoBuildInfo) {
    static HELLO: OnceLock<(Vec<u8>, GoBuildInfo)> = OnceLock::new();
    HELLO.get_or_init(|| {
        let dir = TempDir::new("corrupt");
        let bytes = std::fs::read(build_hello(&GoToolchain::go127(), &dir, "plain", &[])).unwrap();
        let info = read_build_info(&bytes).unwrap().expect("a Go binary");
        (bytes, info)
    })
}

/// Reads `bytes`, checking the outcome is allowed and no single read asks for
/// more than the limits allow.
fn outcome(bytes: &[u8], truth: &GoBuildInfo) -> Result<Option<GoBuildInfo>, BuildInfoError> {
    let src = Counting::new(bytes);
    let result = read_build_info(&src);
    if let Ok(Some(info)) = &result {
        assert!(!info.go_version.is_empty());
        if bytes.len() < hello().0.len() {
            assert_eq!(info, truth, "a truncated file gave a different answer");
        }
    }
    // Section tables, names and strings are capped; the scan is not used here.
    assert!(
        src.bytes.get() <= 16 * MAX_STRING_BYTES,
        "read {} bytes",
        src.bytes.get()
    );
    result
}

/// The interesting offsets (ELF64 little-endian): the ELF, program and section
/// headers, the build info, and the section name table.
fn hot_spots(bytes: &[u8]) -> Vec<usize> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let (phoff, phnum, shoff, shnum, shstrndx) = (
        u64_at(0x20),
        u16_at(0x38),
        u64_at(0x28),
        u16_at(0x3c),
        u16_at(0x3e),
    );
    let names = shoff + 64 * shstrndx;
    let (names_at, names_len) = (u64_at(names + 0x18), u64_at(names + 0x20));
    let magic = magic_offset(bytes);
    let mut spots: Vec<usize> = (0..64).collect();
    spots.extend(phoff..phoff + 56 * phnum);
    spots.extend(shoff..shoff + 64 * shnum);
    spots.extend(magic.saturating_sub(16)..magic + 1024);
    spots.extend(names_at..names_at + names_len);
    spots.retain(|&i| i < bytes.len());
    spots.sort_unstable();
    spots.dedup();
    assert!(spots.len() < 8192, "{} spots", spots.len());
    spots
}

#[test]
fn truncated_copies_are_errors_never_panics() {
    let (bytes, truth) = hello();
    let mut cuts = hot_spots(bytes);
    cuts.extend((0..bytes.len()).step_by(bytes.len() / 200));
    for cut in cuts {
        let result = outcome(&bytes[..cut], truth);
        match (cut, result) {
            // Too short for the ELF magic: not an ELF file, so not Go.
            (0..=3, Ok(None)) => {}
            // The section header table is at the end: any cut loses it.
            (_, Err(e)) => assert!(!e.to_string().is_empty()),
            (cut, other) => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn huge_or_broken_string_lengths_are_errors() {
    let (bytes, truth) = hello();
    let version_len = magic_offset(bytes) + 32;
    let with_varint = |varint: &[u8]| {
        let mut b = bytes.clone();
        b[version_len..version_len + varint.len()].copy_from_slice(varint);
        outcome(&b, truth)
    };
    // More than 64 bits.
    let e = with_varint(&[0xff; 10]).unwrap_err();
    assert!(
        matches!(
            e,
            BuildInfoError::BadVarint {
                what: "Go version string",
                ..
            }
        ),
        "{e}"
    );
    // 2^28 - 1 bytes: over the limit.
    let e = with_varint(&[0xff, 0xff, 0xff, 0x7f]).unwrap_err();
    assert!(
        matches!(
            e,
            BuildInfoError::TooLong {
                len: 0x0fff_ffff,
                ..
            }
        ),
        "{e}"
    );
    // Exactly the limit (1 MiB): allowed, but far past the end of the section.
    let e = with_varint(&[0x80, 0x80, 0x40]).unwrap_err();
    assert!(
        matches!(
            e,
            BuildInfoError::OutOfRegion {
                region: ".go.buildinfo section",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("runs past the end of the .go.buildinfo section"),
        "{e}"
    );

    // The module info length right after the version string.
    let modinfo_len = version_len + 1 + usize::from(bytes[version_len]);
    let mut b = bytes.clone();
    b[modinfo_len..modinfo_len + 3].copy_from_slice(&[0xff, 0xff, 0x7f]);
    let e = outcome(&b, truth).unwrap_err();
    assert!(
        matches!(
            e,
            BuildInfoError::TooLong {
                what: "module info string",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn broken_headers_are_errors() {
    let (bytes, truth) = hello();
    let magic = magic_offset(bytes);

    // Pointer format instead of inline: the (zero) pointers point nowhere.
    let mut b = bytes.clone();
    b[magic + 15] = 0;
    let e = outcome(&b, truth).unwrap_err();
    assert!(
        matches!(e, BuildInfoError::UnmappedAddress { vaddr: 0, .. }),
        "{e}"
    );

    // The magic is gone from the .go.buildinfo section.
    let mut b = bytes.clone();
    b[magic] = b'x';
    let e = outcome(&b, truth).unwrap_err();
    assert!(matches!(e, BuildInfoError::NoMagicInSection { .. }), "{e}");

    // A section header table that claims 65535 entries of 65535 bytes.
    let mut b = bytes.clone();
    b[0x3a..0x3e].copy_from_slice(&[0xff, 0xff, 0xfe, 0xff]);
    let e = outcome(&b, truth).unwrap_err();
    assert!(
        matches!(
            e,
            BuildInfoError::TooLong {
                what: "section header table",
                ..
            }
        ),
        "{e}"
    );

    // Program headers past the end of the file.
    let mut b = bytes.clone();
    b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
    let e = outcome(&b, truth).unwrap_err();
    assert!(
        matches!(
            e,
            BuildInfoError::Truncated {
                what: "program header table",
                ..
            }
        ),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random byte changes in the headers, the build info and the section table.
    #[test]
    fn random_mutations_never_panic(
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12)
    ) {
        let (bytes, truth) = hello();
        let spots = hot_spots(bytes);
        let mut b = bytes.clone();
        for (index, value) in changes {
            b[*index.get(&spots)] = value;
        }
        let _ = outcome(&b, truth);
    }
}
