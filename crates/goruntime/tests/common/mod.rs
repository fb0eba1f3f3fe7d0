//! Shared by the integration tests: building testdata/hello with a real Go
//! toolchain, asking `go version -m` (the independent reference) what it sees,
//! temporary directories, and a [`ReadAt`] that counts its reads.
#![allow(dead_code)] // each test file uses a different part

use memlens_goruntime::{GoBuildInfo, ReadAt};
use memlens_testkit::GoToolchain;
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "memlens-goruntime-{tag}-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Builds testdata/hello with `toolchain` and the extra `go build` flags into
/// `dir/name`. The sources are copied into `dir` first, so the build never
/// touches the repository (with `-mod=mod` Go may rewrite go.mod) and is not
/// stamped with the repository's VCS state.
pub fn build_hello(toolchain: &GoToolchain, dir: &TempDir, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.path().join("hello-src");
    if !src.exists() {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/hello");
        copy_tree(&testdata, &src);
    }
    let out = dir.path().join(name);
    let output = Command::new(&toolchain.go_binary)
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", toolchain.go_binary.display()));
    assert!(
        output.status.success(),
        "go build {flags:?} with {} failed:\n{}",
        toolchain.version,
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// A `dep` line: (path, version, replacement (path, version)).
pub type Dep = (String, String, Option<(String, String)>);

/// What `go version -m BINARY` printed, parsed by this test code (not by the
/// crate under test).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GoVersionM {
    pub go_version: String,
    pub path: Option<String>,
    /// (path, version) of the `mod` line.
    pub main: Option<(String, String)>,
    pub deps: Vec<Dep>,
    pub settings: Vec<(String, String)>,
}

/// Runs `go version -m binary` and parses its output; `None` when Go says the
/// file is not a Go executable.
pub fn go_version_m(go: &Path, binary: &Path) -> Option<GoVersionM> {
    let output = Command::new(go)
        .args(["version", "-m"])
        .arg(binary)
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", go.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("not a Go executable") || stdout.contains("not a Go executable") {
        return None;
    }
    assert!(
        output.status.success(),
        "{} version -m {}: {stderr}",
        go.display(),
        binary.display()
    );
    let mut lines = stdout.lines();
    let first = lines.next().expect("go version -m printed nothing");
    let mut out = GoVersionM {
        go_version: first.rsplit(": ").next().unwrap().to_string(),
        ..GoVersionM::default()
    };
    for line in lines {
        let cols: Vec<&str> = line
            .strip_prefix('\t')
            .unwrap_or(line)
            .split('\t')
            .collect();
        match cols.as_slice() {
            ["path", p] => out.path = Some(p.to_string()),
            ["mod", p, v, ..] => out.main = Some((p.to_string(), v.to_string())),
            ["dep", p, v, ..] => out.deps.push((p.to_string(), v.to_string(), None)),
            ["=>", p, v, ..] => {
                out.deps.last_mut().expect("=> after a dep").2 =
                    Some((p.to_string(), v.to_string()))
            }
            ["build", kv] => {
                let (k, v) = kv.split_once('=').expect("build line has '='");
                assert!(
                    !k.starts_with('"'),
                    "quoted key in {line:?}: not expected in these builds"
                );
                // Go quotes values with spaces as Go string literals; for the
                // ASCII values of these builds that is also a JSON string.
                let v = if v.starts_with('"') {
                    serde_json::from_str::<String>(v).unwrap_or_else(|e| panic!("{v}: {e}"))
                } else {
                    v.to_string()
                };
                out.settings.push((k.to_string(), v));
            }
            [""] => {}
            other => panic!("unexpected go version -m line {other:?}"),
        }
    }
    Some(out)
}

/// Asserts that what the crate read equals what `go version -m` printed,
/// printing both sides on a mismatch.
pub fn assert_matches_go(label: &str, ours: &GoBuildInfo, go: &GoVersionM) {
    let ours_view = GoVersionM {
        go_version: ours.go_version.clone(),
        // main_module is the path line when there is one (these builds have one).
        path: ours.main_module.clone(),
        main: ours.module_path.clone().map(|p| {
            let version = ours.main_module_version.clone().unwrap_or_default();
            (p, version)
        }),
        deps: ours
            .deps
            .iter()
            .map(|d| {
                let replace = d
                    .replace
                    .as_ref()
                    .map(|r| (r.path.clone(), r.version.clone()));
                (d.path.clone(), d.version.clone(), replace)
            })
            .collect(),
        settings: ours.settings.clone(),
    };
    assert_eq!(
        &ours_view, go,
        "{label}: left = memlens-goruntime, right = go version -m"
    );
    if ours.module_path.is_none() {
        assert_eq!(
            ours.main_module_version, None,
            "{label}: no mod line, no version"
        );
    }
}

/// A [`ReadAt`] that counts the bytes and reads it is asked for.
pub struct Counting<R> {
    pub inner: R,
    pub bytes: Cell<u64>,
    pub reads: Cell<u64>,
}

impl<R: ReadAt> Counting<R> {
    pub fn new(inner: R) -> Self {
        Counting {
            inner,
            bytes: Cell::new(0),
            reads: Cell::new(0),
        }
    }
}

impl<R: ReadAt> ReadAt for Counting<R> {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.bytes.set(self.bytes.get() + len as u64);
        self.reads.set(self.reads.get() + 1);
        self.inner.read_at(offset, len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

/// Writes `bytes` to `dir/name`, executable (`go version` skips other files).
pub fn write_executable(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The file offset of the 16-byte aligned build info magic, found by a plain
/// search of the whole file (independent of the crate's ELF reading).
pub fn magic_offset(bytes: &[u8]) -> usize {
    const MAGIC: &[u8] = b"\xff Go buildinf:";
    (0..bytes.len().saturating_sub(MAGIC.len()))
        .step_by(16)
        .find(|&i| bytes[i..].starts_with(MAGIC))
        .expect("the binary has the build info magic")
}
