//! [`Store`]: opening, entity and series ids, and the write path
//! (`append` → `commit`, sealing the head into chunk groups).

use crate::codec::chunk::{encode_shared_bundle, encode_timestamps, ChunkBuilder};
use crate::codec::frame::{decode_frame, encode_frame, FrameState};
use crate::error::{AtPath, StoreError};
use crate::labels::{self, LabelTexts, Strings};
use crate::schema::{self, WriterLock};
use memlens_model::series::Entity;
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Id of an entity (a process incarnation, a cgroup, the host).
pub type EntityId = i64;
/// Id of a series: one metric of one entity, `entity << 16 | metric id`.
pub type SeriesId = u64;

/// Bits of a [`SeriesId`] that hold the metric id.
pub const METRIC_BITS: u32 = 16;

/// Labels stored in their own `entities` column.
pub(crate) const COLUMN_LABELS: [&str; 4] = ["comm", "cmdline", "cgroup", "go_version"];

/// Largest timestamp magnitude accepted (exact in the codec).
const MAX_TS_MS: i64 = 1 << 53;

/// Tunables of a store; [`StoreOptions::default`] suits `memlens watch`.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Seal the head into a chunk group once it holds this many frames.
    pub frames_per_group: u32,
    /// ... or once its oldest frame is this much older than its newest.
    pub max_head_age_ms: i64,
    /// Largest profile blob accepted by [`Store::put_profile`].
    pub max_profile_bytes: usize,
    /// Total size of all profile blobs; the oldest are deleted beyond it.
    pub max_profiles_total_bytes: u64,
    /// Hard cap on the database file; writes beyond fail as disk full.
    pub max_file_bytes: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            frames_per_group: 120,
            max_head_age_ms: 15 * 60 * 1000,
            max_profile_bytes: 16 << 20,
            max_profiles_total_bytes: 256 << 20,
            max_file_bytes: None,
        }
    }
}

/// One instant made durable by a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedFrame {
    /// The instant, ms since the Unix epoch.
    pub ts_ms: i64,
    /// How many samples of that instant were stored.
    pub samples: usize,
}

/// A head sealed into a chunk group by a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealReport {
    /// The group's id.
    pub group_id: i64,
    /// Frames (instants) in the group.
    pub frames: usize,
    /// Chunks (series) in the group (stored as one bundle row per entity).
    pub chunks: usize,
    /// Bytes of encoded chunk and timestamp data written.
    pub encoded_bytes: usize,
}

/// What one [`Store::commit`] made durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// The committed instants, ascending.
    pub frames: Vec<CommittedFrame>,
    /// Set when the commit also sealed the head.
    pub sealed: Option<SealReport>,
}

impl CommitReport {
    /// The last committed instant, if any.
    pub fn last_ts_ms(&self) -> Option<i64> {
        self.frames.last().map(|f| f.ts_ms)
    }

    /// Samples committed.
    pub fn samples(&self) -> usize {
        self.frames.iter().map(|f| f.samples).sum()
    }
}

/// An entity row waiting for the next commit.
#[derive(Debug)]
pub(crate) struct PendingEntity {
    pub(crate) id: EntityId,
    pub(crate) entity: Entity,
    pub(crate) labels: BTreeMap<String, String>,
}

/// The in-memory mirror of the `frames` table: frame timestamps and one
/// growing chunk per series.
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub(crate) ts: Vec<i64>,
    pub(crate) builders: BTreeMap<SeriesId, ChunkBuilder>,
    /// Last value per series, for the frame encoding.
    pub(crate) frame_state: FrameState,
}

impl Head {
    fn push_frame(&mut self, ts: i64, samples: &[(SeriesId, f64)]) {
        let index = self.ts.len() as u32;
        self.ts.push(ts);
        for &(id, v) in samples {
            self.builders
                .entry(id)
                .or_insert_with(ChunkBuilder::shifting)
                .push(index, v);
        }
    }
}

/// The embedded history of one data directory. See the crate docs for the
/// life cycle and the tables.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    read_only: bool,
    pub(crate) options: StoreOptions,
    _lock: Option<WriterLock>,
    pub(crate) next_entity: EntityId,
    pub(crate) next_metric: u64,
    /// Metric name → id, all of them.
    pub(crate) metric_ids: HashMap<String, u64>,
    pub(crate) pending_metrics: Vec<(u64, String)>,
    next_group: i64,
    /// Entity key → (id, labels JSON, seal count when last looked up).
    pub(crate) entity_cache: HashMap<String, (EntityId, String, u64)>,
    /// Entity → (its metric ids, ascending; seal count when last used).
    pub(crate) metric_sets: HashMap<EntityId, (Vec<u64>, u64)>,
    pub(crate) seals: u64,
    pub(crate) pending_entities: Vec<PendingEntity>,
    /// Entities whose metric set grew since the last commit.
    pub(crate) pending_sets: BTreeSet<EntityId>,
    /// Cached ids of the `strings` dictionary.
    pub(crate) strings: Strings,
    pending: BTreeMap<i64, BTreeMap<SeriesId, f64>>,
    pub(crate) head: Head,
    last_ts: Option<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("head_frames", &self.head.ts.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the history in `dir` for writing with default options, creating
    /// the directory and the database as needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with explicit options.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        schema::prepare_dir(dir)?;
        let lock = schema::lock_dir(dir)?;
        let (conn, path) = schema::open_db(dir, false, options.max_file_bytes)?;
        Store::finish_open(conn, path, false, options, Some(lock))
    }

    /// Opens an existing history for reading only (e.g. `memlens query` while
    /// `memlens watch` records). Writes fail with [`StoreError::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        let path = dir.join(schema::DB_FILE);
        if !path.exists() {
            return Err(StoreError::NoHistory { path });
        }
        let (conn, path) = schema::open_db(dir, true, None)?;
        Store::finish_open(conn, path, true, StoreOptions::default(), None)
    }

    fn finish_open(
        conn: Connection,
        path: PathBuf,
        read_only: bool,
        options: StoreOptions,
        lock: Option<WriterLock>,
    ) -> Result<Store, StoreError> {
        crate::vtab::register(&conn, &path).at(&path)?;
        let max = |sql: &str| -> Result<i64, StoreError> {
            conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
                .map(|v| v.unwrap_or(0))
                .at(&path)
        };
        let next_entity = max("SELECT max(id) FROM entity_rows")? + 1;
        let next_metric = max("SELECT max(id) FROM metrics")? as u64 + 1;
        let metric_ids = {
            let mut stmt = conn.prepare("SELECT name, id FROM metrics").at(&path)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                .at(&path)?;
            rows.collect::<Result<HashMap<String, u64>, _>>()
                .at(&path)?
        };
        let next_group = max("SELECT max(id) FROM groups")? + 1;
        let mut store = Store {
            conn,
            path,
            read_only,
            options,
            _lock: lock,
            next_entity,
            next_metric,
            metric_ids,
            pending_metrics: Vec::new(),
            next_group,
            entity_cache: HashMap::new(),
            metric_sets: HashMap::new(),
            seals: 0,
            pending_entities: Vec::new(),
            pending_sets: BTreeSet::new(),
            strings: Strings::default(),
            pending: BTreeMap::new(),
            head: Head::default(),
            last_ts: None,
        };
        store.reload_head()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last committed instant (ms), if anything was ever stored.
    pub fn last_ts_ms(&self) -> Option<i64> {
        self.last_ts
    }

    /// Rebuilds the in-memory head from the `frames` table (at open and after
    /// a failed commit).
    fn reload_head(&mut self) -> Result<(), StoreError> {
        let mut head = Head::default();
        let mut stmt = self
            .conn
            .prepare("SELECT ts, data FROM frames ORDER BY ts")
            .at(&self.path)?;
        let mut rows = stmt.query([]).at(&self.path)?;
        while let Some(row) = rows.next().at(&self.path)? {
            let ts: i64 = row.get(0).at(&self.path)?;
            let blob: Vec<u8> = row.get(1).at(&self.path)?;
            let samples =
                decode_frame(&blob, &mut head.frame_state).map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("head frame at {ts} ms: {e:?}"),
                })?;
            head.push_frame(ts, &samples);
        }
        drop(rows);
        drop(stmt);
        let group_last: Option<i64> = self
            .conn
            .query_row("SELECT max(last_ts) FROM groups", [], |r| r.get(0))
            .at(&self.path)?;
        self.last_ts = head.ts.last().copied().max(group_last);
        self.head = head;
        Ok(())
    }

    pub(crate) fn writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Buffers the samples of instant `ts_ms` (ms since the epoch) until the
    /// next [`Store::commit`]. Instants must be after the last committed one;
    /// several calls with the same instant merge (a repeated series keeps the
    /// last value).
    pub fn append(&mut self, ts_ms: i64, samples: &[(SeriesId, f64)]) -> Result<(), StoreError> {
        self.writable()?;
        if ts_ms.unsigned_abs() > MAX_TS_MS as u64 {
            return Err(StoreError::TimestampOutOfRange { ts_ms });
        }
        if let Some(last) = self.last_ts {
            if ts_ms <= last {
                return Err(StoreError::TimestampNotAscending {
                    ts_ms,
                    last_ms: last,
                });
            }
        }
        let (next_entity, next_metric) = (self.next_entity as u64, self.next_metric);
        if let Some(&(id, _)) = samples.iter().find(|(id, _)| {
            id >> METRIC_BITS >= next_entity
                || id & ((1 << METRIC_BITS) - 1) >= next_metric
                || id >> METRIC_BITS == 0
        }) {
            return Err(StoreError::UnknownSeries(id));
        }
        let frame = self.pending.entry(ts_ms).or_default();
        frame.extend(samples.iter().copied());
        Ok(())
    }

    /// Makes everything appended since the last commit durable in one
    /// transaction, sealing the head when it is full or old. On error nothing
    /// of this commit is stored (the buffered samples are dropped, new entity
    /// and series registrations are kept for the next commit).
    pub fn commit(&mut self) -> Result<CommitReport, StoreError> {
        self.writable()?;
        let frames: Vec<(i64, Vec<(SeriesId, f64)>)> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(ts, m)| (ts, m.into_iter().collect()))
            .collect();
        let entities = std::mem::take(&mut self.pending_entities);
        let sets = std::mem::take(&mut self.pending_sets);
        let metrics = std::mem::take(&mut self.pending_metrics);
        let first_ts = frames.first().map(|f| f.0);
        match self.write_commit(&frames, &entities, &sets, &metrics, first_ts) {
            Ok(sealed) => {
                if let Some(last) = frames.last() {
                    self.last_ts = Some(last.0);
                }
                if sealed.is_some() {
                    self.next_group += 1;
                    self.seals += 1;
                    let keep_from = self.seals.saturating_sub(1);
                    self.metric_sets.retain(|_, (_, used)| *used >= keep_from);
                    self.entity_cache
                        .retain(|_, (_, _, used)| *used >= keep_from);
                }
                Ok(CommitReport {
                    frames: frames
                        .iter()
                        .map(|(ts, s)| CommittedFrame {
                            ts_ms: *ts,
                            samples: s.len(),
                        })
                        .collect(),
                    sealed,
                })
            }
            Err(e) => {
                self.pending_entities = entities;
                self.pending_sets.extend(sets);
                self.pending_metrics = metrics;
                // Strings added by the rolled-back transaction do not exist.
                self.strings.clear();
                // The head may hold frames of the rolled-back transaction.
                self.reload_head()?;
                Err(StoreError::sqlite(&self.path, e))
            }
        }
    }

    fn write_commit(
        &mut self,
        frames: &[(i64, Vec<(SeriesId, f64)>)],
        entities: &[PendingEntity],
        sets: &BTreeSet<EntityId>,
        metrics: &[(u64, String)],
        first_ts: Option<i64>,
    ) -> rusqlite::Result<Option<SealReport>> {
        let tx = self.conn.unchecked_transaction()?;
        {
            for e in entities {
                let (pid, start, cgroup) = match &e.entity {
                    Entity::Host => (None, None, None),
                    Entity::Process { pid, start_time } | Entity::Mysql { pid, start_time } => {
                        (Some(*pid as i64), Some(*start_time as i64), None)
                    }
                    Entity::Cgroup { path } => (None, None, Some(path.as_str())),
                };
                let cgroup = cgroup.or_else(|| e.labels.get("cgroup").map(String::as_str));
                // Labels with a column of their own are not repeated in JSON.
                let extra: BTreeMap<&String, &String> = e
                    .labels
                    .iter()
                    .filter(|(k, _)| !COLUMN_LABELS.contains(&k.as_str()))
                    .collect();
                let extra =
                    (!extra.is_empty()).then(|| serde_json::to_string(&extra).unwrap_or_default());
                let texts = LabelTexts {
                    comm: e.labels.get("comm").map(String::as_str),
                    cmdline: e.labels.get("cmdline").map(String::as_str),
                    cgroup,
                    go_version: e.labels.get("go_version").map(String::as_str),
                    extra: extra.as_deref(),
                };
                labels::upsert_entity(
                    &tx,
                    &mut self.strings,
                    e.id,
                    &e.entity.key(),
                    pid,
                    start,
                    texts,
                    first_ts,
                    first_ts,
                )?;
            }
            let mut ins = tx.prepare_cached("INSERT INTO metrics(id, name) VALUES (?1, ?2)")?;
            for (id, name) in metrics {
                ins.execute(params![*id as i64, name])?;
            }
            for entity in sets {
                if let Some((set, _)) = self.metric_sets.get(entity) {
                    labels::set_metrics(&tx, &mut self.strings, *entity, set)?;
                }
            }
            let mut ins = tx.prepare_cached("INSERT INTO frames(ts, data) VALUES (?1, ?2)")?;
            for (ts, samples) in frames {
                let blob = encode_frame(samples, &mut self.head.frame_state).map_err(|e| {
                    rusqlite::Error::ToSqlConversionFailure(format!("{e:?}").into())
                })?;
                ins.execute(params![ts, blob])?;
                self.head.push_frame(*ts, samples);
            }
        }
        let sealed = if self.head_is_due() {
            Some(seal_head(&mut self.head, self.next_group, &tx)?)
        } else {
            None
        };
        tx.commit()?;
        Ok(sealed)
    }

    fn head_is_due(&self) -> bool {
        match (self.head.ts.first(), self.head.ts.last()) {
            (Some(first), Some(last)) => {
                self.head.ts.len() >= self.options.frames_per_group as usize
                    || last - first >= self.options.max_head_age_ms
            }
            _ => false,
        }
    }

    /// Seals the head now (e.g. before a clean shutdown or a measurement),
    /// committing pending samples first.
    pub fn flush(&mut self) -> Result<CommitReport, StoreError> {
        let mut report = self.commit()?;
        if report.sealed.is_none() && !self.head.ts.is_empty() {
            let tx = self.conn.unchecked_transaction().at(&self.path)?;
            let sealed = seal_head(&mut self.head, self.next_group, &tx);
            match sealed.and_then(|s| tx.commit().map(|_| s)) {
                Ok(s) => {
                    self.next_group += 1;
                    self.seals += 1;
                    report.sealed = Some(s);
                }
                Err(e) => {
                    self.reload_head()?;
                    return Err(StoreError::sqlite(&self.path, e));
                }
            }
        }
        Ok(report)
    }

    /// Returns free pages to the file system and truncates the write-ahead
    /// log (`PRAGMA wal_checkpoint(TRUNCATE)`). Call now and then (e.g. after
    /// retention) and before measuring the directory.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writable()?;
        self.incremental_vacuum()?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .at(&self.path)?;
        Ok(())
    }

    /// Returns the free pages to the file system (each step of the pragma
    /// frees one page, so it is run to completion).
    pub(crate) fn incremental_vacuum(&self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA incremental_vacuum")
            .at(&self.path)?;
        let mut rows = stmt.query([]).at(&self.path)?;
        while rows.next().at(&self.path)?.is_some() {}
        Ok(())
    }

    /// Forgets cached ids (after retention deleted rows).
    pub(crate) fn clear_caches(&mut self) {
        self.entity_cache.clear();
        let pending = &self.pending_sets;
        self.metric_sets.retain(|id, _| pending.contains(id));
        self.strings.clear();
    }

    /// Whether the store was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn require_writable(&self) -> Result<(), StoreError> {
        self.writable()
    }
}

/// Writes `head` as group `group_id` inside `tx` and empties it.
fn seal_head(
    head: &mut Head,
    group_id: i64,
    tx: &rusqlite::Transaction<'_>,
) -> rusqlite::Result<SealReport> {
    let ts = std::mem::take(&mut head.ts);
    let builders = std::mem::take(&mut head.builders);
    head.frame_state = FrameState::new();
    let ts_blob = encode_timestamps(&ts)
        .ok_or_else(|| rusqlite::Error::ToSqlConversionFailure("timestamp out of range".into()))?;
    let mut encoded_bytes = ts_blob.len();
    tx.execute(
        "INSERT INTO groups(id, first_ts, last_ts, frame_count, ts_data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        params![group_id, ts[0], ts[ts.len() - 1], ts.len() as i64, ts_blob],
    )?;
    let chunks = builders.len();
    {
        let mut ins =
            tx.prepare_cached("INSERT INTO chunks(key, data) VALUES ((?1 << 32) | ?2, ?3)")?;
        let mask = (1u64 << METRIC_BITS) - 1;
        // Builders are ordered by series id: entity, then metric.
        let mut entity: Option<u64> = None;
        let mut bundle: Vec<(u64, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut write =
            |entity: u64, bundle: &mut Vec<(u64, Vec<u8>, Vec<u8>)>| -> rusqlite::Result<usize> {
                let blob = encode_shared_bundle(bundle);
                bundle.clear();
                ins.execute(params![group_id, entity as i64, blob])?;
                Ok(blob.len())
            };
        for (id, builder) in builders {
            let e = id >> METRIC_BITS;
            if entity.is_some_and(|prev| prev != e) {
                encoded_bytes += write(entity.unwrap_or(0), &mut bundle)?;
            }
            entity = Some(e);
            let (header, values) = builder.finish_parts();
            bundle.push((id & mask, header, values));
        }
        if let Some(e) = entity {
            encoded_bytes += write(e, &mut bundle)?;
        }
    }
    tx.execute(
        "UPDATE entity_rows SET last_ts = ?2 WHERE id IN
                 (SELECT key & 4294967295 FROM chunks
                  WHERE key BETWEEN (?1 << 32) AND (?1 << 32) + 4294967295)",
        params![group_id, ts[ts.len() - 1]],
    )?;
    tx.execute("DELETE FROM frames", [])?;
    Ok(SealReport {
        group_id,
        frames: ts.len(),
        chunks,
        encoded_bytes,
    })
}
