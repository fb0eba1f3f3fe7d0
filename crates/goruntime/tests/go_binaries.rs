//! Real binaries: testdata/hello built by Go 1.19 and Go 1.27 (plain, stripped,
//! PIE), the Debian `prometheus` binary, non-Go ELF files and non-ELF files. The
//! reference is what `go version -m` prints, parsed by the test itself.

mod common;

use common::{assert_matches_go, build_hello, go_version_m, write_executable, Counting, TempDir};
use memlens_goruntime::{
    read_build_info, read_build_info_from_path, BuildInfoError, BuildInfoFormat, GoBuildInfo,
};
use memlens_testkit::{in_ci, GoToolchain};
use std::fs::File;
use std::path::Path;

/// The build variants every toolchain builds: (file name, `go build` flags).
const VARIANTS: [(&str, &[&str]); 3] = [
    ("plain", &[]),
    ("stripped", &["-ldflags=-s -w"]),
    ("pie", &["-buildmode=pie"]),
];

/// Reads `binary` through a counting [`File`] and checks it against `go version -m`
/// of `go`; returns what was read and the number of bytes read.
fn read_and_compare(label: &str, go: &Path, binary: &Path) -> (GoBuildInfo, u64) {
    let src = Counting::new(File::open(binary).unwrap());
    let info = read_build_info(&src)
        .unwrap_or_else(|e| panic!("{label}: {e}"))
        .unwrap_or_else(|| panic!("{label}: not recognised as a Go binary"));
    let reference =
        go_version_m(go, binary).unwrap_or_else(|| panic!("{label}: go version -m says not Go"));
    assert_matches_go(label, &info, &reference);
    (info, src.bytes.get())
}

fn check_hello_builds(toolchain: &GoToolchain) {
    let dir = TempDir::new(toolchain.name);
    for (variant, flags) in VARIANTS {
        let label = format!("{} {variant}", toolchain.name);
        let binary = build_hello(toolchain, &dir, variant, flags);
        let (info, bytes_read) = read_and_compare(&label, &toolchain.go_binary, &binary);

        // Expectations from the build itself, not from `go version -m`.
        assert_eq!(
            info.go_version, toolchain.version,
            "{label}: `go version` of the toolchain"
        );
        assert_eq!(info.format, BuildInfoFormat::Inline, "{label}");
        assert_eq!(
            info.main_module.as_deref(),
            Some("memlens.dev/hello"),
            "{label}"
        );
        assert_eq!(
            info.module_path.as_deref(),
            Some("memlens.dev/hello"),
            "{label}"
        );
        assert_eq!(
            info.main_module_version.as_deref(),
            Some("(devel)"),
            "{label}"
        );
        assert_eq!(info.deps.len(), 1, "{label}: {:?}", info.deps);
        assert_eq!(info.deps[0].path, "memlens.dev/greet", "{label}");
        assert_eq!(
            info.deps[0].replace.as_ref().map(|r| r.path.as_str()),
            Some("./greet"),
            "{label}"
        );
        assert_eq!(info.setting("GOOS"), Some("linux"), "{label}");
        assert_eq!(info.setting("-compiler"), Some("gc"), "{label}");
        let ldflags = if variant == "stripped" {
            Some("-s -w")
        } else {
            None
        };
        assert_eq!(info.setting("-ldflags"), ldflags, "{label}");
        let elf_type = std::fs::read(&binary).unwrap()[16];
        assert_eq!(
            elf_type,
            if variant == "pie" { 3 } else { 2 },
            "{label}: ET_DYN for PIE, ET_EXEC otherwise"
        );

        // A 1-2 MB binary; only headers and build info are read.
        assert!(bytes_read < 16 << 10, "{label}: read {bytes_read} bytes");
        assert_eq!(
            read_build_info_from_path(&binary).unwrap(),
            Some(info),
            "{label}: path API"
        );
    }
}

#[test]
fn hello_built_by_go119_matches_go_version_m() {
    check_hello_builds(&GoToolchain::go119());
}

#[test]
fn hello_built_by_go127_matches_go_version_m() {
    let go127 = GoToolchain::go127();
    check_hello_builds(&go127);
    // Only Go 1.27 records the build mode.
    let dir = TempDir::new("go127-buildmode");
    let pie = build_hello(&go127, &dir, "pie", &["-buildmode=pie"]);
    let info = read_build_info_from_path(&pie).unwrap().unwrap();
    assert_eq!(info.setting("-buildmode"), Some("pie"));
}

/// Zeroes `e_shoff`, `e_shnum` and `e_shstrndx` of an ELF64 little-endian file,
/// as `sstrip` does.
fn remove_section_headers(bytes: &mut [u8]) {
    assert_eq!(
        &bytes[..6],
        b"\x7fELF\x02\x01",
        "the test expects ELF64 little-endian"
    );
    bytes[0x28..0x30].fill(0);
    bytes[0x3c..0x40].fill(0);
}

#[test]
fn binaries_without_section_headers_are_found_in_their_data_segments() {
    let (go119, go127) = (GoToolchain::go119(), GoToolchain::go127());
    let dir = TempDir::new("nosections");
    let builds = [
        (build_hello(&go127, &dir, "go127-plain", &[]), true),
        // PIE: the build info is not at the start of the first data segment.
        (
            build_hello(
                &go119,
                &dir,
                "go119-pie",
                &["-buildmode=pie", "-ldflags=-s -w"],
            ),
            false,
        ),
    ];
    for (binary, go119_finds_it) in builds {
        let label = binary.display().to_string();
        let mut bytes = std::fs::read(&binary).unwrap();
        let full = read_build_info(&bytes).unwrap().unwrap();
        remove_section_headers(&mut bytes);
        let src = Counting::new(bytes.as_slice());
        let scanned = read_build_info(&src)
            .unwrap()
            .unwrap_or_else(|| panic!("{label}: not found"));
        assert_eq!(
            scanned, full,
            "{label}: same info with and without sections"
        );
        assert!(
            src.bytes.get() < 4 << 20,
            "{label}: scanned {} bytes",
            src.bytes.get()
        );
        // Go 1.19 still searched the first data segment (Go 1.27 no longer does),
        // so it is an independent reference for this layout.
        let stripped = write_executable(&dir, "no-sections", &bytes);
        if go119_finds_it {
            let reference = go_version_m(&go119.go_binary, &stripped).expect("go1.19 finds it");
            assert_matches_go(&label, &scanned, &reference);
        }
    }
}

#[test]
fn a_binary_whose_buildinfo_section_is_renamed_is_not_go_as_for_go_version() {
    let go127 = GoToolchain::go127();
    let dir = TempDir::new("renamed");
    let mut bytes = std::fs::read(build_hello(&go127, &dir, "plain", &[])).unwrap();
    // Rename the section in the section name table (ELF64 little-endian).
    let u64_at =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let u16_at =
        |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
    let (shoff, shentsize, shstrndx) = (
        u64_at(&bytes, 0x28),
        u16_at(&bytes, 0x3a),
        u16_at(&bytes, 0x3e),
    );
    let names_header = shoff + shentsize * shstrndx;
    let (names_at, names_len) = (
        u64_at(&bytes, names_header + 0x18),
        u64_at(&bytes, names_header + 0x20),
    );
    let names = &mut bytes[names_at..names_at + names_len];
    let at = names
        .windows(14)
        .position(|w| w == b".go.buildinfo\0")
        .expect("section name");
    names[at + 12] = b'X';
    assert_eq!(read_build_info(&bytes).unwrap(), None);
    let path = write_executable(&dir, "renamed", &bytes);
    assert_eq!(
        go_version_m(&go127.go_binary, &path),
        None,
        "go1.27 agrees: not a Go executable"
    );
}

#[test]
fn prometheus_from_debian_matches_go_version_m() {
    let binary = Path::new("/usr/bin/prometheus");
    if !binary.exists() {
        assert!(
            !in_ci(),
            "/usr/bin/prometheus is missing; ./scripts/test.sh installs it"
        );
        eprintln!(
            "SKIPPED prometheus_from_debian: /usr/bin/prometheus is missing \
             (apt-get install prometheus)"
        );
        return;
    }
    let go127 = GoToolchain::go127();
    let (info, bytes_read) = read_and_compare("prometheus", &go127.go_binary, binary);
    let size = std::fs::metadata(binary).unwrap().len();
    eprintln!("prometheus: {} of {size} bytes read; {info:?}", bytes_read);
    assert!(info.go_version.starts_with("go1."), "{}", info.go_version);
    assert!(
        bytes_read < 64 << 10,
        "read {bytes_read} bytes of a {size}-byte binary"
    );
}

#[test]
fn non_go_elf_files_are_not_go() {
    let go127 = GoToolchain::go127();
    // /proc/self/exe is this Rust test binary; `go` must be given its real path
    // (the go command's own /proc/self/exe is the go command).
    let this_test = std::env::current_exe().unwrap();
    for (path, real) in [
        ("/bin/ls", Path::new("/bin/ls")),
        ("/proc/self/exe", &this_test),
    ] {
        let head = std::fs::read(path).unwrap();
        assert_eq!(
            &head[..4],
            b"\x7fELF",
            "{path} must be an ELF file for this test"
        );
        assert_eq!(read_build_info_from_path(path).unwrap(), None, "{path}");
        assert_eq!(
            go_version_m(&go127.go_binary, real),
            None,
            "go1.27 agrees on {path}"
        );
    }
}

#[test]
fn non_elf_files_are_not_go_but_a_broken_elf_header_is_an_error() {
    let text = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hello/go.mod");
    assert_eq!(read_build_info_from_path(&text).unwrap(), None);
    for bytes in [
        &b""[..],
        b"\x7f",
        b"\x7fEL",
        b"#!/bin/sh\necho hi\n",
        b"MZ\x90\x00",
    ] {
        assert_eq!(read_build_info(bytes).unwrap(), None, "{bytes:?}");
    }
    let err = read_build_info(&b"\x7fELF"[..]).unwrap_err();
    assert!(matches!(err, BuildInfoError::Truncated { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("truncated file: ELF identification"),
        "{err}"
    );
    let mut bad_class = b"\x7fELF\x03\x01\x01".to_vec();
    bad_class.resize(64, 0);
    let err = read_build_info(&bad_class).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed ELF file: unknown ELF class 3 (byte 4)"
    );
}
