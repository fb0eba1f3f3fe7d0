//! Upgrading a history written in an older format, in place and in one
//! transaction (a crash during it leaves the old format untouched).
//!
//! Format 1 → 2: the `entities` table (labels as text) becomes `entity_rows`
//! (labels through the `strings` dictionary, see [`crate::labels`]) and the
//! `series_ids` table (one row per series) becomes each entity's metric set;
//! `entities` and `series` become views showing the same columns as before.
//! Chunks, frames, groups and profiles are unchanged, so every sample stays.

use crate::error::{AtPath, StoreError};
use crate::labels::{self, LabelTexts, Strings};
use crate::schema::{FORMAT_VERSION, TABLES};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;

/// An entity row of format 1.
struct OldEntity {
    id: i64,
    key: String,
    pid: Option<i64>,
    start_ticks: Option<i64>,
    comm: Option<String>,
    cmdline: Option<String>,
    cgroup: Option<String>,
    go_version: Option<String>,
    labels: Option<String>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
}

/// Upgrades the history in `conn` from format `found` to the current one.
pub(crate) fn upgrade(conn: &Connection, path: &Path, found: i64) -> Result<(), StoreError> {
    debug_assert_eq!(found, 1, "only format 1 is upgradable");
    let tx = conn.unchecked_transaction().at(path)?;
    let old: Vec<OldEntity> = {
        let mut stmt = tx
            .prepare(
                "SELECT id, key, pid, start_ticks, comm, cmdline, cgroup, go_version, labels,
                     first_ts, last_ts FROM entities ORDER BY id",
            )
            .at(path)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OldEntity {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    pid: r.get(2)?,
                    start_ticks: r.get(3)?,
                    comm: r.get(4)?,
                    cmdline: r.get(5)?,
                    cgroup: r.get(6)?,
                    go_version: r.get(7)?,
                    labels: r.get(8)?,
                    first_ts: r.get(9)?,
                    last_ts: r.get(10)?,
                })
            })
            .at(path)?;
        rows.collect::<Result<_, _>>().at(path)?
    };
    let mut sets: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    {
        let mut stmt = tx
            .prepare("SELECT id FROM series_ids ORDER BY id")
            .at(path)?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).at(path)?;
        for id in rows {
            let id = id.at(path)?;
            sets.entry(id >> 16).or_default().push((id & 0xffff) as u64);
        }
    }
    tx.execute_batch(
        "DROP VIEW IF EXISTS series;
         DROP TABLE IF EXISTS series_ids;
         DROP INDEX IF EXISTS entities_pid;
         DROP TABLE IF EXISTS entities;",
    )
    .at(path)?;
    tx.execute_batch(TABLES).at(path)?;
    let mut strings = Strings::default();
    for e in &old {
        let texts = LabelTexts {
            comm: e.comm.as_deref(),
            cmdline: e.cmdline.as_deref(),
            cgroup: e.cgroup.as_deref(),
            go_version: e.go_version.as_deref(),
            extra: e.labels.as_deref(),
        };
        labels::upsert_entity(
            &tx,
            &mut strings,
            e.id,
            &e.key,
            e.pid,
            e.start_ticks,
            texts,
            e.first_ts,
            e.last_ts,
        )
        .at(path)?;
    }
    for (entity, metrics) in &sets {
        labels::set_metrics(&tx, &mut strings, *entity, metrics).at(path)?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'format'",
        [FORMAT_VERSION],
    )
    .at(path)?;
    tx.commit().at(path)?;
    Ok(())
}
