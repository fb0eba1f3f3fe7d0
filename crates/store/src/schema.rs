//! Opening the database file: directory, writer lock, pragmas, tables.
//!
//! Tables (all documented for `query` users in the crate docs):
//! - `entities(id, kind, key, pid, start_ticks, comm, cmdline, cgroup,
//!   go_version, labels, first_ts, last_ts)`
//! - `metrics(id, name)`: the metric name dictionary
//! - `series_ids(id)`: every series id (`entity << 16 | metric`), with the
//!   view `series(id, entity, metric)` over it
//! - `frames(ts, data)`: the durable head, one row per committed instant
//! - `groups(id, first_ts, last_ts, frame_count, ts_data)`: sealed frame runs
//! - `chunks(key, data)`: one entity's chunks in one group (a bundle: one
//!   chunk per metric); `key = group_id << 32 | entity`, so rows are appended
//!   in key order and pages fill up (SQLite splits the last page of a rowid
//!   table without leaving it half empty)
//! - `profiles(id, entity, kind, ts, size_bytes, data)`

use crate::error::{AtPath, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "history.db";
/// File name of the writer lock inside the data directory.
pub const LOCK_FILE: &str = "writer.lock";
/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: i64 = 1;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entities(
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
    pid INTEGER, start_ticks INTEGER, comm TEXT, cmdline TEXT, cgroup TEXT,
    go_version TEXT, labels TEXT, first_ts INTEGER, last_ts INTEGER);
CREATE INDEX IF NOT EXISTS entities_pid ON entities(pid);
CREATE TABLE IF NOT EXISTS metrics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS series_ids(id INTEGER PRIMARY KEY);
CREATE VIEW IF NOT EXISTS series(id, entity, metric) AS
    SELECT s.id, s.id >> 16, m.name FROM series_ids s
    LEFT JOIN metrics m ON m.id = (s.id & 65535);
CREATE TABLE IF NOT EXISTS frames(ts INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS groups(
    id INTEGER PRIMARY KEY, first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,
    frame_count INTEGER NOT NULL, ts_data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(key INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS profiles(
    id INTEGER PRIMARY KEY, entity INTEGER NOT NULL, kind TEXT NOT NULL,
    ts INTEGER NOT NULL, size_bytes INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS profiles_entity ON profiles(entity, ts);
CREATE TABLE IF NOT EXISTS findings(
    id INTEGER PRIMARY KEY, finding TEXT NOT NULL, severity TEXT NOT NULL, entity INTEGER,
    target TEXT NOT NULL, fired_ms INTEGER NOT NULL, cleared_ms INTEGER,
    evidence TEXT NOT NULL, evidence_at_clear TEXT, recommendation TEXT NOT NULL,
    links TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS findings_fired ON findings(fired_ms);
";

/// An exclusive `flock` on the writer lock file, released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

/// Takes the writer lock of `dir` or fails with [`StoreError::Locked`].
pub fn lock_dir(dir: &Path) -> Result<WriterLock, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Unwritable {
            path: path.clone(),
            cause: source,
        })?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StoreError::Locked { path });
        }
        return Err(StoreError::Unwritable { path, cause: err });
    }
    Ok(WriterLock { _file: file })
}

/// Creates `dir` (and parents) and checks that files can be created in it.
pub fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::Unwritable {
            path: dir.to_path_buf(),
            cause: std::io::Error::other("it is a file, not a directory"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Unwritable {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"").map_err(|source| StoreError::Unwritable {
        path: dir.to_path_buf(),
        cause: source,
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Opens (creating if needed) the database of `dir`. `max_file_bytes` caps
/// the file (writes beyond it fail as [`StoreError::DiskFull`]).
pub fn open_db(
    dir: &Path,
    read_only: bool,
    max_file_bytes: Option<u64>,
) -> Result<(Connection, PathBuf), StoreError> {
    let path = dir.join(DB_FILE);
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(&path, flags).at(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .at(&path)?;
    // The first statement that reads the file finds out whether it is one.
    let page_count: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .at(&path)?;
    if page_count > 0 {
        let has_meta: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
                [],
                |r| r.get(0),
            )
            .at(&path)?;
        if has_meta == 0 {
            return Err(StoreError::Corrupt {
                path,
                detail: "an SQLite database without memlens tables".to_string(),
            });
        }
    }
    if !read_only {
        if page_count == 0 {
            // Must be set before the first table exists.
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .at(&path)?;
        }
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .at(&path)?;
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 4194304;
             PRAGMA cache_size = -2048;",
        )
        .at(&path)?;
        if let Some(max) = max_file_bytes {
            let pages = (max / 4096).max(16);
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .at(&path)?;
        }
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {TABLES} COMMIT;"))
            .at(&path)?;
        let _ = conn.execute_batch("ROLLBACK");
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?1)",
            [FORMAT_VERSION],
        )
        .at(&path)?;
    } else {
        conn.execute_batch("PRAGMA cache_size = -2048").at(&path)?;
    }
    check_format(&conn, &path)?;
    Ok((conn, path))
}

fn check_format(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(|e| match StoreError::sqlite(path, e) {
            StoreError::Sqlite { cause: source, .. } => StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("no memlens tables: {source}"),
            },
            other => other,
        })?;
    match found {
        Some(v) if v == FORMAT_VERSION => Ok(()),
        Some(v) if v > FORMAT_VERSION => Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found: v,
            supported: FORMAT_VERSION,
        }),
        other => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("unknown history format {other:?}"),
        }),
    }
}
