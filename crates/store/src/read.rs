//! The read path: one series over a time range, entity listings, and
//! read-only SQL.

use crate::codec::chunk::{decode_bundle, decode_chunk_as, decode_timestamps};
use crate::codec::frame::{decode_frame, FrameState};
use crate::error::{AtPath, StoreError};
use crate::store::{EntityId, SeriesId, Store, METRIC_BITS};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::Path;

/// One row of the `entities` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityInfo {
    /// The entity's id.
    pub id: EntityId,
    /// `host`, `process` or `cgroup`.
    pub kind: String,
    /// The stable key (`process:PID:START`, `cgroup:PATH`, `host`).
    pub key: String,
    /// Process id (processes only).
    pub pid: Option<i64>,
    /// Process start time in clock ticks after boot (processes only).
    pub start_ticks: Option<i64>,
    /// Command name.
    pub comm: Option<String>,
    /// Command line as given by the caller (already redacted).
    pub cmdline: Option<String>,
    /// Cgroup path (the cgroup itself, or the process's cgroup).
    pub cgroup: Option<String>,
    /// Go version of a Go program.
    pub go_version: Option<String>,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// First commit that mentioned the entity (ms).
    pub first_ts_ms: Option<i64>,
    /// End of the last sealed group with samples of it (ms).
    pub last_ts_ms: Option<i64>,
}

/// The result of [`Store::query`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
}

const ENTITY_COLUMNS: &str = "id, kind, key, pid, start_ticks, comm, cmdline, cgroup, \
                              go_version, labels, first_ts, last_ts";

fn entity_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntityInfo> {
    let extra: Option<String> = r.get(9)?;
    let mut labels: BTreeMap<String, String> = extra
        .and_then(|l| serde_json::from_str(&l).ok())
        .unwrap_or_default();
    for (i, name) in [(5, "comm"), (6, "cmdline"), (8, "go_version")] {
        if let Some(v) = r.get::<_, Option<String>>(i)? {
            labels.insert(name.to_string(), v);
        }
    }
    if r.get::<_, String>(1)? == "process" {
        if let Some(v) = r.get::<_, Option<String>>(7)? {
            labels.insert("cgroup".to_string(), v);
        }
    }
    Ok(EntityInfo {
        id: r.get(0)?,
        kind: r.get(1)?,
        key: r.get(2)?,
        pid: r.get(3)?,
        start_ticks: r.get(4)?,
        comm: r.get(5)?,
        cmdline: r.get(6)?,
        cgroup: r.get(7)?,
        go_version: r.get(8)?,
        labels,
        first_ts_ms: r.get(10)?,
        last_ts_ms: r.get(11)?,
    })
}

/// Reads the samples of series `id` in `[from_ms, to_ms]` through `conn`,
/// from sealed chunks and from the durable head.
pub(crate) fn read_series(
    conn: &Connection,
    path: &Path,
    id: SeriesId,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<(i64, f64)>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: what,
    };
    // One snapshot for both tables, so a concurrent seal (head frames moved
    // into a group) is seen either before or after, never half.
    let snapshot = conn.unchecked_transaction().at(path)?;
    let mut out = Vec::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT g.id, g.ts_data, c.data FROM groups g
             JOIN chunks c ON c.key = (g.id << 32) | ?1
             WHERE g.last_ts >= ?2 AND g.first_ts <= ?3 ORDER BY g.id",
        )
        .at(path)?;
    let entity = (id >> METRIC_BITS) as i64;
    let metric = id & ((1 << METRIC_BITS) - 1);
    let mut rows = stmt.query(params![entity, from_ms, to_ms]).at(path)?;
    while let Some(row) = rows.next().at(path)? {
        let group: i64 = row.get(0).at(path)?;
        let ts_blob: Vec<u8> = row.get(1).at(path)?;
        let bundle: Vec<u8> = row.get(2).at(path)?;
        let chunks = decode_bundle(&bundle).map_err(|e| {
            corrupt(format!(
                "chunks of entity {entity} in group {group}: {}",
                e.0
            ))
        })?;
        let Some((_, chunk)) = chunks.chunks.iter().find(|c| c.0 == metric) else {
            continue;
        };
        let ts = decode_timestamps(&ts_blob)
            .map_err(|e| corrupt(format!("timestamps of group {group}: {}", e.0)))?;
        let values = decode_chunk_as(chunk, ts.len() as u32, chunks.codec)
            .map_err(|e| corrupt(format!("chunk of series {id} in group {group}: {}", e.0)))?;
        out.extend(
            values
                .into_iter()
                .map(|(i, v)| (ts[i as usize], v))
                .filter(|(t, _)| (from_ms..=to_ms).contains(t)),
        );
    }
    drop(rows);
    drop(stmt);
    // Head frames are a chain (each coded against the ones before): read
    // them all, keep the range.
    let mut stmt = conn
        .prepare_cached("SELECT ts, data FROM frames WHERE ts <= ?1 ORDER BY ts")
        .at(path)?;
    let mut rows = stmt.query(params![to_ms]).at(path)?;
    let mut state = FrameState::new();
    while let Some(row) = rows.next().at(path)? {
        let ts: i64 = row.get(0).at(path)?;
        let blob: Vec<u8> = row.get(1).at(path)?;
        let frame = decode_frame(&blob, &mut state)
            .map_err(|e| corrupt(format!("head frame at {ts} ms: {e:?}")))?;
        if ts < from_ms {
            continue;
        }
        if let Ok(i) = frame.binary_search_by_key(&id, |p| p.0) {
            out.push((ts, frame[i].1));
        }
    }
    drop(rows);
    drop(stmt);
    snapshot.finish().at(path)?;
    Ok(out)
}

impl Store {
    /// The samples of (`entity`, `metric`) with `from_ms <= ts <= to_ms`,
    /// ascending; empty when there is no such series. Raw values: counters
    /// stay cumulative, derive rates from consecutive samples.
    pub fn series(
        &self,
        entity: EntityId,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        match self.find_series(entity, metric)? {
            Some(id) => self.series_by_id(id, from_ms, to_ms),
            None => Ok(Vec::new()),
        }
    }

    /// [`Store::series`] by series id.
    pub fn series_by_id(
        &self,
        id: SeriesId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        read_series(&self.conn, &self.path, id, from_ms, to_ms)
    }

    /// The stored id of (`entity`, `metric`), without registering it.
    pub fn find_series(
        &self,
        entity: EntityId,
        metric: &str,
    ) -> Result<Option<SeriesId>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM series WHERE entity = ?1 AND metric = ?2",
                params![entity, metric],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(|id| id as SeriesId))
            .at(&self.path)
    }

    /// The metric names of `entity` with their series ids, by name.
    pub fn metrics(&self, entity: EntityId) -> Result<Vec<(String, SeriesId)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT metric, id FROM series WHERE entity = ?1 AND metric IS NOT NULL
                 ORDER BY metric",
            )
            .at(&self.path)?;
        let rows = stmt
            .query_map([entity], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as SeriesId))
            })
            .at(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().at(&self.path)
    }

    fn entities_where(
        &self,
        condition: &str,
        param: Option<Value>,
    ) -> Result<Vec<EntityInfo>, StoreError> {
        let sql = format!("SELECT {ENTITY_COLUMNS} FROM entities {condition} ORDER BY id");
        let mut stmt = self.conn.prepare_cached(&sql).at(&self.path)?;
        let rows = match param {
            Some(p) => stmt.query_map([p], entity_row),
            None => stmt.query_map([], entity_row),
        }
        .at(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().at(&self.path)
    }

    /// Every entity, by id (registration order).
    pub fn entities(&self) -> Result<Vec<EntityInfo>, StoreError> {
        self.entities_where("", None)
    }

    /// The entities (process incarnations) that had process id `pid`.
    pub fn entities_by_pid(&self, pid: i64) -> Result<Vec<EntityInfo>, StoreError> {
        self.entities_where("WHERE pid = ?1", Some(Value::Integer(pid)))
    }

    /// The entities whose command name is `comm`.
    pub fn entities_by_comm(&self, comm: &str) -> Result<Vec<EntityInfo>, StoreError> {
        // Through the dictionary: the view would decode every row's comm.
        self.entities_where(
            "WHERE id IN (SELECT id FROM entity_rows
                 WHERE comm = (SELECT id FROM strings WHERE text = ?1))",
            Some(Value::Text(comm.to_string())),
        )
    }

    /// Runs one read-only SQL statement over the documented tables and the
    /// `samples` view (see the crate docs) and collects all rows. For big
    /// results use [`Store::query_each`].
    pub fn query(&self, sql: &str) -> Result<QueryResult, StoreError> {
        let mut result = QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        self.query_each(sql, |columns, row| {
            if result.columns.is_empty() {
                result.columns = columns.to_vec();
            }
            result.rows.push(row.to_vec());
            true
        })?;
        if result.columns.is_empty() {
            result.columns = self.query_columns(sql)?;
        }
        Ok(result)
    }

    fn prepare_read_only(&self, sql: &str) -> Result<rusqlite::Statement<'_>, StoreError> {
        let stmt = self
            .conn
            .prepare(sql)
            .map_err(|source| StoreError::Query { cause: source })?;
        if !stmt.readonly() {
            return Err(StoreError::NotReadOnly {
                sql: sql.to_string(),
            });
        }
        Ok(stmt)
    }

    fn query_columns(&self, sql: &str) -> Result<Vec<String>, StoreError> {
        let stmt = self.prepare_read_only(sql)?;
        Ok(stmt.column_names().iter().map(|c| c.to_string()).collect())
    }

    /// Streams the rows of one read-only SQL statement to `row(columns,
    /// values)`, which returns `false` to stop early. Memory stays bounded
    /// whatever the result size.
    pub fn query_each(
        &self,
        sql: &str,
        mut row: impl FnMut(&[String], &[Value]) -> bool,
    ) -> Result<(), StoreError> {
        let mut stmt = self.prepare_read_only(sql)?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut rows = stmt
            .query([])
            .map_err(|source| StoreError::Query { cause: source })?;
        let mut values = Vec::with_capacity(n);
        while let Some(r) = rows
            .next()
            .map_err(|source| StoreError::Query { cause: source })?
        {
            values.clear();
            for i in 0..n {
                values.push(
                    r.get::<_, Value>(i)
                        .map_err(|source| StoreError::Query { cause: source })?,
                );
            }
            if !row(&columns, &values) {
                break;
            }
        }
        Ok(())
    }
}
