//! The thin IO layer: reads the kernel's files under a root directory and hands
//! the text to the pure parsers.
//!
//! The root is `/` on a live host and a fixture tree in tests
//! (`testdata/<name>/proc/...`, `testdata/<name>/sys/fs/cgroup/...`). Nothing
//! here decides anything; it only finds files, reads them with a size cap, and
//! tells "not there" (normal: processes exit, kernels differ) from "not allowed"
//! and from "there but unreadable as text".

mod cgroups;
mod host;

pub use cgroups::{CgroupReader, ResolvedCgroup};
pub use host::HostReading;

use crate::ParseError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most of one file read; the kernel's memory files are far smaller, and a
/// bigger one means the root points somewhere wrong.
pub const FILE_CAP_BYTES: u64 = 16 << 20;

/// Why a file could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist (a process that exited, a kernel without the file).
    #[error("{path}: not found")]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but we may not read it (another user's process, no root).
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// Another IO error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but its text is not what the parser expects.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl ReadError {
    /// Whether the file is simply not there (as opposed to unreadable or malformed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }
}

/// A directory standing for `/`.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// The live host: `/`.
    pub fn host() -> Root {
        Root::at("/")
    }

    /// A tree rooted at `dir` (a fixture tree in tests).
    pub fn at(dir: impl Into<PathBuf>) -> Root {
        Root { dir: dir.into() }
    }

    /// Where the absolute kernel path `path` (e.g. `/proc/meminfo`) is under this root.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        self.dir.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Reads a file under the root as text, at most [`FILE_CAP_BYTES`].
    pub fn read(&self, path: impl AsRef<Path>) -> Result<String, ReadError> {
        read_text(&self.path(path))
    }

    /// Reads a file under the root as bytes, at most [`FILE_CAP_BYTES`].
    pub fn read_bytes(&self, path: impl AsRef<Path>) -> Result<Vec<u8>, ReadError> {
        read_capped(&self.path(path))
    }
}

/// Reads `path` as UTF-8 text (lossy: the kernel's files are ASCII, but a
/// process name may not be), at most [`FILE_CAP_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_capped(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads at most [`FILE_CAP_BYTES`] of `path`.
pub fn read_capped(path: &Path) -> Result<Vec<u8>, ReadError> {
    let classify = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound {
            path: path.to_path_buf(),
        },
        std::io::ErrorKind::PermissionDenied => ReadError::PermissionDenied {
            path: path.to_path_buf(),
        },
        // A process that exited between open and read.
        _ if source.raw_os_error() == Some(libc_esrch()) => ReadError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ReadError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let file = std::fs::File::open(path).map_err(classify)?;
    let mut bytes = Vec::new();
    file.take(FILE_CAP_BYTES)
        .read_to_end(&mut bytes)
        .map_err(classify)?;
    Ok(bytes)
}

/// ESRCH: what reading `/proc/PID/*` returns once the process is gone.
const fn libc_esrch() -> i32 {
    3
}

/// Reads and parses in one step: `parse(name, text)` where `name` is the path.
pub fn read_parsed<T>(
    root: &Root,
    path: &str,
    parse: impl FnOnce(&str, &str) -> Result<T, ParseError>,
) -> Result<T, ReadError> {
    let text = root.read(path)?;
    Ok(parse(path, &text)?)
}
