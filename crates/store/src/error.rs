//! [`StoreError`]: every failure of the store, each naming the file or
//! directory involved, what is wrong and what to do about it.

use rusqlite::ErrorCode;
use std::path::{Path, PathBuf};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be created or written.
    #[error(
        "data directory {path} is not usable: {cause}; \
         pick another directory (--data DIR) or fix its permissions"
    )]
    Unwritable {
        /// The directory or file.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// There is no history in the directory (read-only open).
    #[error("no memlens history at {path}; record one with `memlens watch --data DIR`")]
    NoHistory {
        /// The database file looked for.
        path: PathBuf,
    },
    /// Another process holds the writer lock of the directory.
    #[error(
        "{path} is locked by another memlens writer (is `memlens watch` already running?); \
         stop it or use another --data directory"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The disk (or the configured size cap) is full.
    #[error(
        "disk full while writing {path}: the samples of this interval were not stored \
         (earlier ones are safe); free disk space or lower the retention size"
    )]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// The database file is not a memlens history or is damaged.
    #[error(
        "{path} is damaged or not a memlens history database ({detail}); \
         nothing was deleted: move it aside (mv {path} {path}.bad, also its -wal \
         and -shm files) and memlens starts a new history"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file was written by a newer memlens.
    #[error("{path} has history format {found}, this memlens reads format {supported}; upgrade memlens or use another --data directory")]
    NewerFormat {
        /// The database file.
        path: PathBuf,
        /// The format found in the file.
        found: i64,
        /// The format this build writes.
        supported: i64,
    },
    /// The file was written by an older memlens, in a format that a writer
    /// upgrades in place when it opens the directory.
    #[error(
        "{path} has history format {found}, this memlens reads format {supported}; \
         run `memlens watch --data DIR` on it once (it upgrades the history in place, \
         keeping every sample) or use an older memlens to read it"
    )]
    OlderFormat {
        /// The database file.
        path: PathBuf,
        /// The format found in the file.
        found: i64,
        /// The format this build writes.
        supported: i64,
    },
    /// A write was attempted on a store opened read-only.
    #[error("{path} is open read-only")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// Samples must come in ascending time order.
    #[error("sample timestamp {ts_ms} ms is not after the last stored one ({last_ms} ms)")]
    TimestampNotAscending {
        /// The refused timestamp.
        ts_ms: i64,
        /// The last committed timestamp.
        last_ms: i64,
    },
    /// A timestamp outside ±2^53 ms.
    #[error("sample timestamp {ts_ms} ms is out of range")]
    TimestampOutOfRange {
        /// The refused timestamp.
        ts_ms: i64,
    },
    /// An id that the store never handed out.
    #[error("unknown series id {0}")]
    UnknownSeries(u64),
    /// An entity id that the store never handed out.
    #[error("unknown entity id {0}")]
    UnknownEntity(i64),
    /// More than 2^32 entities in one history.
    #[error("too many entities (2^32) in one history; start a new --data directory")]
    TooManyEntities,
    /// The metric name dictionary is full.
    #[error("too many distinct metric names (65535); refusing new metric {metric}")]
    TooManyMetrics {
        /// The refused name.
        metric: String,
    },
    /// A profile larger than the per-blob cap.
    #[error("profile of {bytes} bytes is larger than the cap of {cap_bytes} bytes; not stored")]
    ProfileTooLarge {
        /// Size of the refused blob.
        bytes: usize,
        /// The cap.
        cap_bytes: usize,
    },
    /// `query` was given a statement that would change the history.
    #[error("only read-only SQL is accepted (SELECT ...), not: {sql}")]
    NotReadOnly {
        /// The statement.
        sql: String,
    },
    /// The SQL of `query` is invalid.
    #[error("query failed: {cause}")]
    Query {
        /// SQLite's message.
        cause: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("{path}: {cause}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        cause: rusqlite::Error,
    },
}

impl StoreError {
    /// Classifies a SQLite error on the database at `path`.
    pub(crate) fn sqlite(path: &Path, e: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt {
                    path,
                    detail: e.to_string(),
                }
            }
            Some(ErrorCode::ReadOnly)
            | Some(ErrorCode::CannotOpen)
            | Some(ErrorCode::PermissionDenied) => StoreError::Unwritable {
                path,
                cause: std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
            },
            _ => StoreError::Sqlite { path, cause: e },
        }
    }
}

/// Attaches the database path to rusqlite results.
pub(crate) trait AtPath<T> {
    /// Converts the error with [`StoreError::sqlite`].
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> AtPath<T> for Result<T, rusqlite::Error> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::sqlite(path, e))
    }
}
