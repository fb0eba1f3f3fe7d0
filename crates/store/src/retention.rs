//! Retention: delete the oldest sealed groups and profiles by age and by
//! total size. Head frames (the last few minutes) are never deleted.

use crate::error::{AtPath, StoreError};
use crate::store::Store;
use rusqlite::{OptionalExtension, Transaction};

/// How much history to keep; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete groups that ended, and profiles taken, longer ago than this.
    pub max_age_ms: Option<i64>,
    /// Delete the oldest groups and profiles while the used pages of the
    /// database exceed this.
    pub max_bytes: Option<u64>,
}

/// What [`Store::apply_retention`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Chunk groups deleted.
    pub groups_deleted: u64,
    /// Profiles deleted.
    pub profiles_deleted: u64,
    /// Series and entities deleted because nothing of them was left.
    pub series_deleted: u64,
    /// Used bytes of the database afterwards (pages in use × page size).
    pub used_bytes: u64,
}

fn used_bytes(tx: &Transaction<'_>) -> rusqlite::Result<u64> {
    let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = tx.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = tx.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

fn delete_group(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM chunks WHERE key BETWEEN (?1 << 32) AND (?1 << 32) + 4294967295",
        [id],
    )?;
    tx.execute("DELETE FROM groups WHERE id = ?1", [id])?;
    Ok(())
}

impl Store {
    /// Applies `retention` at time `now_ms` in one transaction, then returns
    /// freed pages to the file system. Run it periodically (e.g. every few
    /// minutes); it is cheap when there is nothing to delete.
    pub fn apply_retention(
        &mut self,
        retention: &Retention,
        now_ms: i64,
    ) -> Result<RetentionReport, StoreError> {
        self.require_writable()?;
        let head_series: Vec<i64> = self.head.builders.keys().map(|&k| k as i64).collect();
        let tx = self.conn.unchecked_transaction().at(&self.path)?;
        let mut report = RetentionReport::default();
        if let Some(age) = retention.max_age_ms {
            let cutoff = now_ms.saturating_sub(age);
            let old: Vec<i64> = {
                let mut stmt = tx
                    .prepare("SELECT id FROM groups WHERE last_ts < ?1")
                    .at(&self.path)?;
                let rows = stmt.query_map([cutoff], |r| r.get(0)).at(&self.path)?;
                rows.collect::<Result<_, _>>().at(&self.path)?
            };
            for id in &old {
                delete_group(&tx, *id).at(&self.path)?;
            }
            report.groups_deleted += old.len() as u64;
            report.profiles_deleted += tx
                .execute("DELETE FROM profiles WHERE ts < ?1", [cutoff])
                .at(&self.path)? as u64;
        }
        if let Some(max) = retention.max_bytes {
            while used_bytes(&tx).at(&self.path)? > max {
                let group: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT id, last_ts FROM groups ORDER BY id LIMIT 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .at(&self.path)?;
                let profile: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT id, ts FROM profiles ORDER BY ts, id LIMIT 1",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .at(&self.path)?;
                match (group, profile) {
                    (Some((g, gts)), Some((_, pts))) if gts <= pts => {
                        delete_group(&tx, g).at(&self.path)?;
                        report.groups_deleted += 1;
                    }
                    (_, Some((p, _))) => {
                        tx.execute("DELETE FROM profiles WHERE id = ?1", [p])
                            .at(&self.path)?;
                        report.profiles_deleted += 1;
                    }
                    (Some((g, _)), None) => {
                        delete_group(&tx, g).at(&self.path)?;
                        report.groups_deleted += 1;
                    }
                    (None, None) => break,
                }
            }
        }
        if report.groups_deleted + report.profiles_deleted > 0 {
            // Series of entities with no chunk left and not in the head, then
            // entities with neither series nor profiles, then the strings
            // that no entity uses any more.
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS head_entities(id INTEGER PRIMARY KEY);
                 DELETE FROM temp.head_entities;
                 CREATE TEMP TABLE IF NOT EXISTS emptied(id INTEGER PRIMARY KEY);
                 DELETE FROM temp.emptied;",
            )
            .at(&self.path)?;
            {
                let mut ins = tx
                    .prepare("INSERT OR IGNORE INTO temp.head_entities(id) VALUES (?1)")
                    .at(&self.path)?;
                for id in &head_series {
                    ins.execute([id >> 16]).at(&self.path)?;
                }
            }
            tx.execute(
                "INSERT INTO temp.emptied(id) SELECT id FROM entity_rows
                 WHERE metrics IS NOT NULL
                   AND id NOT IN (SELECT key & 4294967295 FROM chunks)
                   AND id NOT IN (SELECT id FROM temp.head_entities)",
                [],
            )
            .at(&self.path)?;
            report.series_deleted += tx
                .query_row(
                    "SELECT count(*) FROM series WHERE entity IN (SELECT id FROM temp.emptied)",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .at(&self.path)? as u64;
            tx.execute(
                "UPDATE entity_rows SET metrics = NULL WHERE id IN (SELECT id FROM temp.emptied)",
                [],
            )
            .at(&self.path)?;
            tx.execute(
                "DELETE FROM entity_rows WHERE metrics IS NULL
                 AND id NOT IN (SELECT id FROM temp.head_entities)
                 AND id NOT IN (SELECT entity FROM profiles)",
                [],
            )
            .at(&self.path)?;
            crate::labels::delete_unused_strings(&tx).at(&self.path)?;
        }
        report.used_bytes = used_bytes(&tx).at(&self.path)?;
        tx.commit().at(&self.path)?;
        if report.groups_deleted + report.profiles_deleted > 0 {
            self.clear_caches();
            self.incremental_vacuum()?;
        }
        Ok(report)
    }
}
