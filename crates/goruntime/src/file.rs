//! The IO adapter: reading build info from a real file, such as `/proc/PID/exe`.
//!
//! `/proc/PID/exe` opens the very inode the process runs, even when the file has
//! since been deleted or replaced on disk, so the build info read is that of the
//! running program. Opening it needs the same permission as `ptrace` read access
//! (same user, or `CAP_SYS_PTRACE`); for kernel threads it fails with `ENOENT`.

use crate::buildinfo::{read_build_info, GoBuildInfo};
use crate::error::BuildInfoError;
use crate::read_at::ReadAt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

impl ReadAt for File {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// A [`BuildInfoError`] with the path of the file it is about.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct FileError {
    /// The file, e.g. `/proc/1234/exe`.
    pub path: PathBuf,
    /// What is wrong.
    pub error: BuildInfoError,
}

/// Opens `path` and reads its Go build info with [`read_build_info`] (same
/// `Ok(None)` rule: not ELF, or ELF but not Go). Reads a few KiB, not the file.
pub fn read_build_info_from_path(path: impl AsRef<Path>) -> Result<Option<GoBuildInfo>, FileError> {
    let path = path.as_ref();
    let with_path = |error| FileError {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(|e| with_path(BuildInfoError::Open(e)))?;
    read_build_info(&file).map_err(with_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_error_naming_the_path() {
        let err = read_build_info_from_path("/nonexistent/memlens-goruntime").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/memlens-goruntime: cannot open: "),
            "{err}"
        );
    }

    #[test]
    fn file_reads_exact_ranges() {
        let path =
            std::env::temp_dir().join(format!("memlens-goruntime-file-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(file.size().unwrap(), 10);
        assert_eq!(ReadAt::read_at(&file, 3, 4).unwrap(), b"3456");
        assert_eq!(
            ReadAt::read_at(&file, 8, 4).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        std::fs::remove_file(&path).unwrap();
    }
}
