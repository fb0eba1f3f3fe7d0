//! Compact entity rows: label values, command-line words and metric sets
//! go through the `strings` dictionary, so the many short-lived processes
//! of a busy host (compilers, linkers, test binaries) pay for what differs
//! between them, not for their whole labels each time.
//!
//! - `comm`, `cgroup`, `go_version` and the JSON of the other labels are
//!   `strings` ids.
//! - `cmdline` is a JSON array of the `strings` ids of its words (split at
//!   single spaces, so joining them with one space gives the text back bit
//!   for bit, also with repeated or trailing spaces).
//! - `metrics` is the `strings` id of the entity's metric set: the JSON
//!   array of its metric ids, ascending (processes mostly share one).
//!
//! The `entities` and `series` views (see the schema) turn them back into
//! text with SQL alone, so any SQLite reader sees the same as `memlens query`.

use crate::codec::bits::crc32;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// Strings cached by the writer before the cache is dropped (bounds memory).
const MAX_CACHED_STRINGS: usize = 20_000;

/// The writer's cache of `strings` ids.
#[derive(Debug, Default)]
pub(crate) struct Strings {
    ids: HashMap<String, i64>,
}

impl Strings {
    /// The id of `text`, adding it to the dictionary (inside the caller's
    /// transaction) when it is new. After a rolled-back transaction call
    /// [`Strings::clear`]: ids handed out in it do not exist.
    pub(crate) fn intern(&mut self, conn: &Connection, text: &str) -> rusqlite::Result<i64> {
        if let Some(&id) = self.ids.get(text) {
            return Ok(id);
        }
        let hash = text_hash(text);
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM strings WHERE hash = ?1 AND text = ?2")?
            .query_row(params![hash, text], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO strings(hash, text) VALUES (?1, ?2)")?
                    .execute(params![hash, text])?;
                conn.last_insert_rowid()
            }
        };
        if self.ids.len() >= MAX_CACHED_STRINGS {
            self.ids.clear();
        }
        self.ids.insert(text.to_string(), id);
        Ok(id)
    }

    /// Forgets every cached id.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
    }

    fn intern_opt(
        &mut self,
        conn: &Connection,
        text: Option<&str>,
    ) -> rusqlite::Result<Option<i64>> {
        text.map(|t| self.intern(conn, t)).transpose()
    }

    /// The JSON array of the word ids of `cmdline`.
    pub(crate) fn cmdline_ids(
        &mut self,
        conn: &Connection,
        cmdline: &str,
    ) -> rusqlite::Result<String> {
        let mut out = String::with_capacity(2 + cmdline.len() / 2);
        out.push('[');
        for (i, word) in cmdline.split(' ').enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&self.intern(conn, word)?.to_string());
        }
        out.push(']');
        Ok(out)
    }
}

/// The `strings.hash` of `text`: its CRC-32, so the index holds 4-byte
/// numbers instead of a second copy of every text.
pub(crate) fn text_hash(text: &str) -> i64 {
    i64::from(crc32(text.as_bytes()))
}

/// The text labels of one entity row.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LabelTexts<'a> {
    pub(crate) comm: Option<&'a str>,
    pub(crate) cmdline: Option<&'a str>,
    pub(crate) cgroup: Option<&'a str>,
    pub(crate) go_version: Option<&'a str>,
    /// JSON object of the other labels.
    pub(crate) extra: Option<&'a str>,
}

/// Inserts entity `id` with `labels`, or updates the labels of an existing
/// one (first and last timestamps and metric set are kept then).
#[allow(clippy::too_many_arguments)]
pub(crate) fn upsert_entity(
    conn: &Connection,
    strings: &mut Strings,
    id: i64,
    key: &str,
    pid: Option<i64>,
    start_ticks: Option<i64>,
    labels: LabelTexts<'_>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
) -> rusqlite::Result<()> {
    let comm = strings.intern_opt(conn, labels.comm)?;
    let cmdline = labels
        .cmdline
        .map(|c| strings.cmdline_ids(conn, c))
        .transpose()?;
    let cgroup = strings.intern_opt(conn, labels.cgroup)?;
    let go_version = strings.intern_opt(conn, labels.go_version)?;
    let extra = strings.intern_opt(conn, labels.extra)?;
    conn.prepare_cached(
        "INSERT INTO entity_rows(id, key, pid, start_ticks, comm, cmdline, cgroup, go_version,
             labels, first_ts, last_ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id) DO UPDATE SET comm = excluded.comm, cmdline = excluded.cmdline,
             cgroup = excluded.cgroup, go_version = excluded.go_version,
             labels = excluded.labels",
    )?
    .execute(params![
        id,
        key,
        pid,
        start_ticks,
        comm,
        cmdline,
        cgroup,
        go_version,
        extra,
        first_ts,
        last_ts
    ])?;
    Ok(())
}

/// Records `metrics` (ascending metric ids) as the metric set of `entity`.
pub(crate) fn set_metrics(
    conn: &Connection,
    strings: &mut Strings,
    entity: i64,
    metrics: &[u64],
) -> rusqlite::Result<()> {
    let json = metric_set_json(metrics);
    let id = strings.intern(conn, &json)?;
    conn.prepare_cached("UPDATE entity_rows SET metrics = ?2 WHERE id = ?1")?
        .execute(params![entity, id])?;
    Ok(())
}

/// `[1,2,5]` for metric ids 1, 2, 5.
pub(crate) fn metric_set_json(metrics: &[u64]) -> String {
    let words: Vec<String> = metrics.iter().map(u64::to_string).collect();
    format!("[{}]", words.join(","))
}

/// The stored metric set of `entity` (empty when it has none or no row).
pub(crate) fn load_metrics(conn: &Connection, entity: i64) -> rusqlite::Result<Vec<u64>> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT s.text FROM entity_rows e JOIN strings s ON s.id = e.metrics WHERE e.id = ?1",
        )?
        .query_row([entity], |r| r.get(0))
        .optional()?;
    let mut set: Vec<u64> = text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    set.sort_unstable();
    set.dedup();
    Ok(set)
}

/// Deletes the strings no entity row refers to (after retention deleted
/// entities); returns how many.
pub(crate) fn delete_unused_strings(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM strings WHERE id NOT IN (
             SELECT comm FROM entity_rows WHERE comm IS NOT NULL
             UNION ALL SELECT cgroup FROM entity_rows WHERE cgroup IS NOT NULL
             UNION ALL SELECT go_version FROM entity_rows WHERE go_version IS NOT NULL
             UNION ALL SELECT labels FROM entity_rows WHERE labels IS NOT NULL
             UNION ALL SELECT metrics FROM entity_rows WHERE metrics IS NOT NULL
             UNION ALL SELECT j.value FROM entity_rows e, json_each(e.cmdline) j
                 WHERE j.value IS NOT NULL)",
        [],
    )
}
