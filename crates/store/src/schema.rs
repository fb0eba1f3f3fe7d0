//! Opening the database file: directory, writer lock, pragmas, tables.
//!
//! Tables (all documented for `query` users in the crate docs):
//! - `strings(id, hash, text)`: the dictionary of label values,
//!   command-line words and metric sets, each text once: the many
//!   short-lived processes of a busy host share their command name, cgroup
//!   and most words of their command lines; looked up by `hash` (CRC-32 of
//!   the text, indexed) so the index does not hold every text a second time
//! - `entity_rows(id, key, pid, start_ticks, comm, cmdline, cgroup,
//!   go_version, labels, metrics, first_ts, last_ts)`: one row per entity,
//!   labels as `strings` ids, `cmdline` a JSON array of the ids of its
//!   space-separated words, `metrics` the id of its metric set (a JSON array
//!   of metric ids, shared by all entities with the same metrics); the view
//!   `entities(id, kind, key, pid, start_ticks, comm, cmdline, cgroup,
//!   go_version, labels, first_ts, last_ts)` shows them as text
//! - `metrics(id, name)`: the metric name dictionary; the view
//!   `series(id, entity, metric)` lists every series (`entity << 16 |
//!   metric`) from the entities' metric sets
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
pub const FORMAT_VERSION: i64 = 2;
/// The oldest format a writer upgrades in place (format 1 kept one
/// `series_ids` row per series and labels as plain text).
pub const OLDEST_UPGRADABLE_FORMAT: i64 = 1;

pub(crate) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strings(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS strings_hash ON strings(hash);
CREATE TABLE IF NOT EXISTS entity_rows(
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, pid INTEGER, start_ticks INTEGER,
    comm INTEGER, cmdline TEXT, cgroup INTEGER, go_version INTEGER, labels INTEGER,
    metrics INTEGER, first_ts INTEGER, last_ts INTEGER);
CREATE INDEX IF NOT EXISTS entity_rows_pid ON entity_rows(pid);
CREATE VIEW IF NOT EXISTS entities(id, kind, key, pid, start_ticks, comm, cmdline, cgroup,
        go_version, labels, first_ts, last_ts) AS
    SELECT e.id,
        CASE WHEN e.key = 'host' THEN 'host'
             WHEN substr(e.key, 1, 8) = 'process:' THEN 'process'
             WHEN substr(e.key, 1, 6) = 'mysql:' THEN 'mysql' ELSE 'cgroup' END,
        e.key, e.pid, e.start_ticks,
        (SELECT text FROM strings WHERE id = e.comm),
        (SELECT group_concat(w.text, ' ' ORDER BY j.key)
            FROM json_each(e.cmdline) j JOIN strings w ON w.id = j.value),
        (SELECT text FROM strings WHERE id = e.cgroup),
        (SELECT text FROM strings WHERE id = e.go_version),
        (SELECT text FROM strings WHERE id = e.labels),
        e.first_ts, e.last_ts
    FROM entity_rows e;
CREATE TABLE IF NOT EXISTS metrics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE VIEW IF NOT EXISTS series(id, entity, metric) AS
    SELECT (e.id << 16) | j.value, e.id, m.name
    FROM entity_rows e JOIN strings s ON s.id = e.metrics, json_each(s.text) j
    LEFT JOIN metrics m ON m.id = j.value;
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
    // A database with a header but no table at all is a history being
    // created (the writer switched to WAL, its tables are not committed
    // yet) or one whose writer died at that moment: not damaged. A reader
    // finds no history yet; a writer makes the tables.
    let tables: i64 = if page_count > 0 {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .at(&path)?
    } else {
        0
    };
    if page_count > 0 && tables == 0 && read_only {
        return Err(StoreError::NoHistory { path });
    }
    if page_count > 0 && tables > 0 {
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
            // Small pages: chunk bundles of a few hundred bytes to a few KiB
            // then fill whole pages (with 4 KiB pages a 2.5 KiB row left
            // 1.5 KiB empty), and small tables cost 1 KiB each, not 4.
            conn.execute_batch("PRAGMA page_size = 1024; PRAGMA auto_vacuum = INCREMENTAL")
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
            let page_size: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .at(&path)?;
            let pages = (max / page_size.max(512) as u64).max(16);
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .at(&path)?;
        }
        if tables > 0 {
            // An older format is upgraded before the current tables are made
            // (a newer one is refused untouched by check_format below).
            if let Some(found) = read_format(&conn, &path)? {
                if (OLDEST_UPGRADABLE_FORMAT..FORMAT_VERSION).contains(&found) {
                    crate::migrate::upgrade(&conn, &path, found)?;
                }
                if found > FORMAT_VERSION {
                    check_format(&conn, &path)?;
                }
            }
        }
        // The entities view is made anew so that a history written before the
        // `mysql` kind existed shows that kind once a writer has opened it.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP VIEW IF EXISTS entities; {TABLES} COMMIT;"
        ))
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

/// The format recorded in `meta` (None when the row is missing).
fn read_format(conn: &Connection, path: &Path) -> Result<Option<i64>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
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
    })
}

fn check_format(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found = read_format(conn, path)?;
    match found {
        Some(v) if v == FORMAT_VERSION => Ok(()),
        Some(v) if v > FORMAT_VERSION => Err(StoreError::NewerFormat {
            path: path.to_path_buf(),
            found: v,
            supported: FORMAT_VERSION,
        }),
        Some(v) if (OLDEST_UPGRADABLE_FORMAT..FORMAT_VERSION).contains(&v) => {
            Err(StoreError::OlderFormat {
                path: path.to_path_buf(),
                found: v,
                supported: FORMAT_VERSION,
            })
        }
        other => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("unknown history format {other:?}"),
        }),
    }
}
