//! The DWARF index of real Go binaries (testdata/maps built with Go 1.19 and
//! 1.27): it finds the package-level map and the map two struct fields deep,
//! at the addresses `go tool nm` gives for the variables (the field 16 bytes
//! past its struct's, after a string), their key and value types, and the layout
//! of the toolchain's maps.

use memlens_gomem::{DwarfIndex, MapLayout};
use memlens_testkit::{repo_root, GoToolchain};
use std::path::{Path, PathBuf};
use std::process::Command;

fn build(toolchain: &GoToolchain) -> PathBuf {
    let dir = repo_root()
        .join("target/gomem-testdata")
        .join(toolchain.name);
    std::fs::create_dir_all(&dir).expect("create target dir");
    let out = dir.join(format!("maps.{}", std::process::id()));
    let status = Command::new(&toolchain.go_binary)
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(repo_root().join("crates/gomem/testdata/maps"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .status()
        .expect("run go build");
    assert!(status.success(), "go build testdata/maps failed");
    out
}

/// `go tool nm`'s address of `symbol` in `binary`.
fn nm_address(toolchain: &GoToolchain, binary: &Path, symbol: &str) -> u64 {
    let out = Command::new(&toolchain.go_binary)
        .args(["tool", "nm"])
        .arg(binary)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go tool nm");
    assert!(out.status.success(), "go tool nm failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(symbol))
        .unwrap_or_else(|| panic!("{symbol} not in go tool nm output"));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).expect("hex address")
}

fn check(toolchain: GoToolchain, swiss: bool) {
    let binary = build(&toolchain);
    let data = std::fs::read(&binary).expect("read binary");
    let index = DwarfIndex::from_elf(&binary.display().to_string(), &data).expect("index");
    let maps = index.static_maps();
    let counts = maps
        .iter()
        .find(|m| m.name == "main.Counts")
        .unwrap_or_else(|| panic!("no main.Counts in {maps:?}"));
    assert_eq!(counts.addr, nm_address(&toolchain, &binary, "main.Counts"));
    assert_eq!(
        (counts.key_type.as_str(), counts.value_type.as_str()),
        ("string", "int")
    );
    assert_eq!(
        matches!(counts.layout, MapLayout::Swiss { .. }),
        swiss,
        "{counts:?}"
    );

    let field = maps
        .iter()
        .find(|m| m.name == "main.holder.inner.byID")
        .unwrap_or_else(|| panic!("no main.holder.inner.byID in {maps:?}"));
    let holder = nm_address(&toolchain, &binary, "main.holder");
    // After `name string` (pointer and length: 16 bytes on amd64).
    assert_eq!(field.addr, holder + 16, "{field:?}");
    assert_eq!(field.key_type, "[2]int64");
    assert_eq!(field.value_type, "map[string]bool");
    assert!(index.skipped.is_empty(), "{:?}", index.skipped);
    std::fs::remove_file(&binary).ok();
}

#[test]
fn go119_index_finds_classic_maps() {
    check(GoToolchain::go119(), false);
}

#[test]
fn go127_index_finds_swiss_maps() {
    check(GoToolchain::go127(), true);
}
