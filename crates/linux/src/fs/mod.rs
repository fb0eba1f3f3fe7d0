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

    /// The sum over `pid`'s threads of their `schedstat` (CPU time and
    /// run-queue wait since each started). `None` when the process is gone
    /// or the kernel has no `schedstat`; threads that exit while read are
    /// left out (their time leaves the sum, so compare sums of one process
    /// over a short window only).
    pub fn process_schedstat(&self, pid: i32) -> Option<crate::process::Schedstat> {
        let tasks = self.path(format!("/proc/{pid}/task"));
        let mut sum = crate::process::Schedstat::default();
        let mut any = false;
        for entry in std::fs::read_dir(&tasks).ok()?.flatten() {
            let file = entry.path().join("schedstat");
            let Ok(text) = read_text(&file) else { continue };
            let Ok(s) = crate::process::Schedstat::parse(&file.display().to_string(), &text) else {
                continue;
            };
            sum.run_ns += s.run_ns;
            sum.run_queue_wait_ns += s.run_queue_wait_ns;
            sum.timeslices += s.timeslices;
            any = true;
        }
        any.then_some(sum)
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
    let mut reader = FileReader::with_capacity(4096);
    Ok(reader.read(path)?.to_vec())
}

/// Turns an IO error about `path` into a [`ReadError`].
fn classify(path: &Path, source: std::io::Error) -> ReadError {
    match source.kind() {
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
    }
}

/// ESRCH: what reading `/proc/PID/*` returns once the process is gone.
const fn libc_esrch() -> i32 {
    3
}

/// Reads many small kernel files through one reused buffer: per file one open,
/// a read that fills the buffer, one read that sees the end, and a close; no
/// size probing (`/proc` files report size 0) and no allocation once warm.
#[derive(Debug)]
pub struct FileReader {
    /// Always fully initialised (len == capacity), so reads need no zeroing.
    buf: Vec<u8>,
    /// How much of `buf` the last read filled.
    filled: usize,
}

impl Default for FileReader {
    fn default() -> Self {
        FileReader::new()
    }
}

impl FileReader {
    /// A reader with a 64 KiB buffer (grows for bigger files, up to [`FILE_CAP_BYTES`]).
    pub fn new() -> FileReader {
        FileReader::with_capacity(64 << 10)
    }

    fn with_capacity(bytes: usize) -> FileReader {
        FileReader {
            buf: vec![0; bytes],
            filled: 0,
        }
    }

    /// The bytes of `path`, at most [`FILE_CAP_BYTES`], valid until the next read.
    pub fn read(&mut self, path: &Path) -> Result<&[u8], ReadError> {
        let file = std::fs::File::open(path).map_err(|e| classify(path, e))?;
        self.fill(file, Ending::EmptyRead)
            .map_err(|e| classify(path, e))?;
        Ok(&self.buf[..self.filled])
    }

    /// Reads `file` to its end (at most [`FILE_CAP_BYTES`]) into the buffer.
    fn fill(&mut self, mut file: std::fs::File, ending: Ending) -> std::io::Result<()> {
        self.filled = 0;
        loop {
            // Each read gets room for a whole kernel record (seq_file hands out
            // whole lines and answers a read with too little room with nothing).
            if self.buf.len() - self.filled < MIN_READ_ROOM_BYTES {
                if self.buf.len() as u64 >= FILE_CAP_BYTES {
                    return Ok(());
                }
                let grown =
                    (self.buf.len() * 2).clamp(2 * MIN_READ_ROOM_BYTES, FILE_CAP_BYTES as usize);
                self.buf.resize(grown, 0);
            }
            match file.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.filled += n;
                    if ending == Ending::ShortRead && self.filled < self.buf.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads `path` and hands its text to `parse(name, text)`, where `name` names
    /// the file in errors. Text that is not UTF-8 is converted lossily.
    pub fn parse<T>(
        &mut self,
        path: &Path,
        parse: impl FnOnce(&str, &str) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        let name = path.to_string_lossy();
        let bytes = self.read(path)?;
        Ok(parse_text(&name, bytes, parse)?)
    }

    /// The bytes of the file `name` inside `dir` (opened relative to it, so the
    /// kernel does not walk the directory's path again).
    pub fn read_in(&mut self, dir: &Dir, name: &str) -> Result<&[u8], ReadError> {
        self.read_in_until(dir, name, Ending::EmptyRead)
    }

    /// [`FileReader::read_in`] for a file the kernel writes as one record
    /// (`stat`, `status`, `io`, `limits`, `smaps_rollup`, `cgroup`, `cmdline`,
    /// `oom_score`, ...): such a file comes whole in one read when it fits, so
    /// a read that leaves room in the buffer is its end, and the second, empty
    /// read is saved. Never use it for `maps` or `smaps`, which the kernel hands
    /// out a page of whole lines at a time.
    pub fn read_record_in(&mut self, dir: &Dir, name: &str) -> Result<&[u8], ReadError> {
        self.read_in_until(dir, name, Ending::ShortRead)
    }

    fn read_in_until(&mut self, dir: &Dir, name: &str, ending: Ending) -> Result<&[u8], ReadError> {
        let file = dir.open_file(name)?;
        self.fill(file, ending)
            .map_err(|e| classify(&dir.path.join(name), e))?;
        Ok(&self.buf[..self.filled])
    }

    /// [`FileReader::read_record_in`] and a parser, like [`FileReader::parse_in`].
    pub fn parse_record_in<T>(
        &mut self,
        dir: &Dir,
        name: &str,
        parse: impl FnOnce(&str, &str) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        self.read_record_in(dir, name)?;
        let path = dir.path.join(name);
        Ok(parse_text(
            &path.to_string_lossy(),
            &self.buf[..self.filled],
            parse,
        )?)
    }

    /// [`FileReader::parse`] for the file `name` inside `dir`.
    pub fn parse_in<T>(
        &mut self,
        dir: &Dir,
        name: &str,
        parse: impl FnOnce(&str, &str) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        self.read_in(dir, name)?;
        let path = dir.path.join(name);
        Ok(parse_text(
            &path.to_string_lossy(),
            &self.buf[..self.filled],
            parse,
        )?)
    }
}

fn parse_text<T>(
    name: &str,
    bytes: &[u8],
    parse: impl FnOnce(&str, &str) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(name, text),
        Err(_) => parse(name, &String::from_utf8_lossy(bytes)),
    }
}

/// The least free room in the buffer for one read.
const MIN_READ_ROOM_BYTES: usize = 8 << 10;

/// When [`FileReader::fill`] stops reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// At a read that returns nothing (any file).
    EmptyRead,
    /// At a read that leaves room in the buffer (one-record kernel files).
    ShortRead,
}

/// An open directory whose files are opened relative to it (`openat`).
///
/// Held on `/proc/PID`, it also pins the process: if the pid is reused while we
/// read, the old directory's files fail (the process is gone) instead of
/// silently describing the newcomer.
#[derive(Debug)]
pub struct Dir {
    fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory `path`.
    pub fn open(path: &Path) -> Result<Dir, ReadError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .map_err(|e| classify(path, e))?;
        Ok(Dir {
            fd: file.into(),
            path: path.to_path_buf(),
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file `name` (no `/`) inside this directory for reading.
    pub fn open_file(&self, name: &str) -> Result<std::fs::File, ReadError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let c_name = std::ffi::CString::new(name).map_err(|_| ReadError::Io {
            path: self.path.join(name),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        // SAFETY: a valid directory fd and a NUL-terminated name; the returned fd
        // is owned by the File.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c_name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(classify(
                &self.path.join(name),
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_bigger_than_the_buffer() {
        let dir = std::env::temp_dir().join(format!("memlens-fr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big");
        let text: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, &text).unwrap();
        let mut reader = FileReader::with_capacity(4096);
        assert_eq!(reader.read(&path).unwrap(), &text[..]);
        // A small file after a big one: only its own bytes.
        std::fs::write(dir.join("small"), b"12\n").unwrap();
        assert_eq!(reader.read(&dir.join("small")).unwrap(), b"12\n");
        let opened = Dir::open(&dir).unwrap();
        assert_eq!(reader.read_in(&opened, "big").unwrap().len(), text.len());
        // One-record mode still reads on while each read fills the buffer.
        assert_eq!(reader.read_record_in(&opened, "big").unwrap(), &text[..]);
        assert!(reader
            .read_in(&opened, "missing")
            .unwrap_err()
            .is_not_found());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_multi_page_proc_files_whole() {
        // 300 mappings with alternating protections (so none merge) make this
        // process's maps span many pages; the kernel hands them out a page of
        // whole lines per read, which must not be taken for the end.
        const MAPPINGS: usize = 300;
        let page = 4096;
        let mut regions = Vec::new();
        for i in 0..MAPPINGS {
            let prot = if i % 2 == 0 {
                libc::PROT_READ
            } else {
                libc::PROT_READ | libc::PROT_WRITE
            };
            // SAFETY: a fresh anonymous private mapping, unmapped below.
            let addr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(addr, libc::MAP_FAILED);
            regions.push(addr);
        }
        let mut reader = FileReader::with_capacity(4096);
        let maps = reader.read(Path::new("/proc/self/maps")).unwrap().to_vec();
        let dir = Dir::open(Path::new("/proc/self")).unwrap();
        let maps_in = reader.read_in(&dir, "maps").unwrap().to_vec();
        for addr in regions {
            // SAFETY: unmapping exactly what was mapped above.
            unsafe { libc::munmap(addr, page) };
        }
        let lines = |bytes: &[u8]| bytes.iter().filter(|b| **b == b'\n').count();
        assert!(maps.len() > 3 * 4096, "maps is only {} bytes", maps.len());
        assert!(lines(&maps) >= MAPPINGS, "{} lines", lines(&maps));
        assert!(lines(&maps_in) >= MAPPINGS, "{} lines", lines(&maps_in));
        assert!(maps.ends_with(b"\n"));
    }
}
