//! The `samples(ts, entity, metric, value)` view: an eponymous virtual table
//! that decodes chunk groups and head frames while SQLite reads it.
//!
//! Constraints `entity = ?`, `metric = ?`, `ts >=`/`>`/`<=`/`<` are pushed
//! down (SQLite re-checks them); anything else filters the full scan. Rows
//! come group by group, series by series: add `ORDER BY ts` when order
//! matters. The table reads through its own read-only connection, so it sees
//! what is committed.

use crate::codec::chunk::{decode_bundle, decode_chunk_as, decode_timestamps};
use crate::codec::frame::{decode_frame, FrameState};
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConnection, VTabCursor,
};
use rusqlite::{ffi, params, Connection, OpenFlags};
use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::path::{Path, PathBuf};
use std::rc::Rc;

const COL_TS: c_int = 0;
const COL_ENTITY: c_int = 1;
const COL_METRIC: c_int = 2;

const HAS_ENTITY: c_int = 1;
const HAS_FROM: c_int = 2;
const HAS_TO: c_int = 4;
const HAS_METRIC: c_int = 8;

/// Registers `samples` on `conn`, reading the database at `path`.
pub(crate) fn register(conn: &Connection, path: &Path) -> rusqlite::Result<()> {
    const MODULE: Module<SamplesTab> = Module::eponymous_only_module();
    conn.create_module(c"samples", &MODULE, Some(path.to_path_buf()))
}

#[repr(C)]
struct SamplesTab {
    base: ffi::sqlite3_vtab,
    conn: Connection,
}

unsafe impl<'vtab> VTab<'vtab> for SamplesTab {
    type Aux = PathBuf;
    type Cursor = SamplesCursor<'vtab>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&PathBuf>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        let path = aux.ok_or_else(|| rusqlite::Error::ModuleError("no database path".into()))?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok((
            Cow::Borrowed(c"CREATE TABLE x(ts INTEGER, entity INTEGER, metric TEXT, value REAL)"),
            SamplesTab {
                base: ffi::sqlite3_vtab::default(),
                conn,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let mut slots: [Option<usize>; 4] = [None; 4];
        for (i, c) in info.constraints().enumerate() {
            if !c.is_usable() {
                continue;
            }
            let slot = match (c.column(), c.operator()) {
                (COL_ENTITY, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ) => 0,
                (
                    COL_TS,
                    IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GE
                    | IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GT,
                ) => 1,
                (
                    COL_TS,
                    IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LE
                    | IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LT,
                ) => 2,
                (COL_METRIC, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ) => 3,
                _ => continue,
            };
            slots[slot].get_or_insert(i);
        }
        let mut idx_num = 0;
        let mut argv = 0;
        let mut cost = 1e9;
        for (slot, found) in slots.iter().enumerate() {
            if let Some(i) = found {
                argv += 1;
                idx_num |= 1 << slot;
                let mut usage = info.constraint_usage(*i);
                usage.set_argv_index(argv);
                usage.set_omit(false);
                cost /= if slot == 0 { 1000.0 } else { 10.0 };
            }
        }
        info.set_idx_num(idx_num);
        info.set_estimated_cost(cost);
        Ok(true)
    }

    fn open(&'vtab mut self) -> rusqlite::Result<SamplesCursor<'vtab>> {
        Ok(SamplesCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            conn: &self.conn,
            series: HashMap::new(),
            groups: Vec::new(),
            frames: Vec::new(),
            frame_state: FrameState::new(),
            from: i64::MIN,
            to: i64::MAX,
            rows: Vec::new(),
            pos: 0,
            rowid: 0,
            done: true,
            owns_snapshot: false,
        })
    }
}

#[repr(C)]
struct SamplesCursor<'vtab> {
    base: ffi::sqlite3_vtab_cursor,
    conn: &'vtab Connection,
    /// Series in scope → (entity, metric).
    series: HashMap<i64, (i64, Rc<str>)>,
    /// Groups still to read (reversed: next at the end).
    groups: Vec<i64>,
    /// Head frames still to read (reversed). All of them: they form a chain.
    frames: Vec<i64>,
    frame_state: FrameState,
    from: i64,
    to: i64,
    /// Decoded rows of the current chunk or frame: (ts, series, value).
    rows: Vec<(i64, i64, f64)>,
    pos: usize,
    rowid: i64,
    done: bool,
    /// Whether this cursor began the read transaction that pins one snapshot
    /// of the database for the whole scan (ended when the cursor is dropped).
    owns_snapshot: bool,
}

impl Drop for SamplesCursor<'_> {
    fn drop(&mut self) {
        if self.owns_snapshot {
            let _ = self.conn.execute_batch("COMMIT");
        }
    }
}

fn corrupt(what: String) -> rusqlite::Error {
    rusqlite::Error::ModuleError(format!("damaged history: {what}"))
}

impl SamplesCursor<'_> {
    /// Loads the next group or frame that has rows in scope.
    fn refill(&mut self) -> rusqlite::Result<()> {
        self.rows.clear();
        self.pos = 0;
        while self.rows.is_empty() {
            if let Some(group) = self.groups.pop() {
                self.load_group(group)?;
            } else if let Some(ts) = self.frames.pop() {
                let blob: Vec<u8> =
                    self.conn
                        .query_row("SELECT data FROM frames WHERE ts = ?1", [ts], |r| r.get(0))?;
                let frame = decode_frame(&blob, &mut self.frame_state)
                    .map_err(|e| corrupt(format!("frame {ts}: {e:?}")))?;
                if ts < self.from {
                    continue;
                }
                for (id, v) in frame {
                    if self.series.contains_key(&(id as i64)) {
                        self.rows.push((ts, id as i64, v));
                    }
                }
            } else {
                self.done = true;
                return Ok(());
            }
        }
        Ok(())
    }

    fn load_group(&mut self, group: i64) -> rusqlite::Result<()> {
        let ts_blob: Vec<u8> =
            self.conn
                .query_row("SELECT ts_data FROM groups WHERE id = ?1", [group], |r| {
                    r.get(0)
                })?;
        let ts = decode_timestamps(&ts_blob)
            .map_err(|e| corrupt(format!("timestamps of group {group}: {}", e.0)))?;
        // Bundles (one per entity) of the entities in scope.
        let mut bundles: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut entities: Vec<i64> = self.series.values().map(|s| s.0).collect();
        entities.sort_unstable();
        entities.dedup();
        if entities.len() < 16 {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT data FROM chunks WHERE key = (?1 << 32) | ?2")?;
            for e in entities {
                let mut rows = stmt.query(params![group, e])?;
                if let Some(row) = rows.next()? {
                    bundles.push((e, row.get(0)?));
                }
            }
        } else {
            let mut stmt = self.conn.prepare_cached(
                "SELECT key & 4294967295, data FROM chunks
                     WHERE key BETWEEN (?1 << 32) AND (?1 << 32) + 4294967295",
            )?;
            let rows = stmt.query_map([group], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (e, data): (i64, Vec<u8>) = row?;
                if entities.binary_search(&e).is_ok() {
                    bundles.push((e, data));
                }
            }
        }
        for (e, bundle) in bundles {
            let chunks = decode_bundle(&bundle).map_err(|err| {
                corrupt(format!("chunks of entity {e} in group {group}: {}", err.0))
            })?;
            for (metric, data) in chunks.chunks {
                let id = (e << 16) | metric as i64;
                if !self.series.contains_key(&id) {
                    continue;
                }
                let values =
                    decode_chunk_as(&data, ts.len() as u32, chunks.codec).map_err(|err| {
                        corrupt(format!("chunk of series {id} in group {group}: {}", err.0))
                    })?;
                for (i, v) in values {
                    let t = ts[i as usize];
                    if (self.from..=self.to).contains(&t) {
                        self.rows.push((t, id, v));
                    }
                }
            }
        }
        Ok(())
    }
}

unsafe impl VTabCursor for SamplesCursor<'_> {
    fn filter(
        &mut self,
        idx_num: c_int,
        _idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        let mut arg = 0;
        let mut next = |flag: c_int| -> Option<usize> {
            (idx_num & flag != 0).then(|| {
                arg += 1;
                arg - 1
            })
        };
        let entity: Option<i64> = match next(HAS_ENTITY) {
            Some(i) => args.get::<Option<i64>>(i)?,
            None => None,
        };
        let from = next(HAS_FROM);
        let to = next(HAS_TO);
        let metric = next(HAS_METRIC);
        self.from = match from {
            Some(i) => args
                .get::<Option<f64>>(i)?
                .map_or(i64::MIN, |v| v.floor() as i64),
            None => i64::MIN,
        };
        self.to = match to {
            Some(i) => args
                .get::<Option<f64>>(i)?
                .map_or(i64::MAX, |v| v.ceil() as i64),
            None => i64::MAX,
        };
        let metric: Option<String> = match metric {
            Some(i) => args.get::<Option<String>>(i)?,
            None => None,
        };
        if self.conn.is_autocommit() {
            self.conn.execute_batch("BEGIN")?;
            self.owns_snapshot = true;
        }
        let mut names: HashMap<String, Rc<str>> = HashMap::new();
        self.series.clear();
        {
            // With an entity, its row alone (the view's `entity` is the rowid).
            let mut stmt = self.conn.prepare_cached(if entity.is_some() {
                "SELECT id, entity, metric FROM series
                 WHERE entity = ?1 AND metric IS NOT NULL AND (?2 IS NULL OR metric = ?2)"
            } else {
                "SELECT id, entity, metric FROM series
                 WHERE ?1 IS NULL AND metric IS NOT NULL AND (?2 IS NULL OR metric = ?2)"
            })?;
            let rows = stmt.query_map(params![entity, metric], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (id, e, m) = row?;
                let name = names
                    .entry(m.clone())
                    .or_insert_with(|| Rc::from(m.as_str()));
                self.series.insert(id, (e, name.clone()));
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM groups WHERE last_ts >= ?1 AND first_ts <= ?2 ORDER BY id DESC",
        )?;
        self.groups = stmt
            .query_map(params![self.from, self.to], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ts FROM frames WHERE ts <= ?1 ORDER BY ts DESC")?;
        self.frame_state = FrameState::new();
        self.frames = stmt
            .query_map(params![self.to], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        self.done = self.series.is_empty();
        self.rowid = 0;
        if self.done {
            self.groups.clear();
            self.frames.clear();
            return Ok(());
        }
        self.refill()
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.rowid += 1;
        self.pos += 1;
        if self.pos >= self.rows.len() {
            self.refill()?;
        }
        Ok(())
    }

    fn eof(&self) -> bool {
        self.done
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let Some(&(ts, id, v)) = self.rows.get(self.pos) else {
            return ctx.set_result(&rusqlite::types::Null);
        };
        match i {
            COL_TS => ctx.set_result(&ts),
            COL_ENTITY => ctx.set_result(&self.series.get(&id).map(|s| s.0)),
            COL_METRIC => ctx.set_result(&self.series.get(&id).map(|s| s.1.to_string())),
            _ => ctx.set_result(&v),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.rowid)
    }
}
