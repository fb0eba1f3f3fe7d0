//! Profiles and dumps: blobs (e.g. gzip'd pprof as fetched) kept per
//! (entity, kind, ts), with a cap per blob and in total.

use crate::error::{AtPath, StoreError};
use crate::store::{EntityId, Store};
use rusqlite::{params, OptionalExtension};

/// The kind of a `/debug/pprof/goroutine?debug=2` dump kept by the agent:
/// the text as the target served it, gzipped. It is stored with the same
/// timestamp as the `goroutine` (protobuf) profile of the same round.
pub const GOROUTINE_DEBUG2_KIND: &str = "goroutine_debug2";

/// One stored profile, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileInfo {
    /// The profile's id.
    pub id: i64,
    /// Whose profile.
    pub entity: EntityId,
    /// What it is (`heap`, `goroutine`, `goroutine_debug2`, ...).
    pub kind: String,
    /// When it was fetched (ms since the epoch).
    pub ts_ms: i64,
    /// Size of the blob.
    pub size_bytes: i64,
}

impl Store {
    /// Stores `data` (kept byte for byte) as a `kind` profile of `entity` at
    /// `ts_ms`, in its own transaction, then deletes the oldest profiles
    /// while all of them together exceed
    /// [`crate::StoreOptions::max_profiles_total_bytes`]. Returns its id.
    /// The entity must have been committed (see [`Store::commit`]).
    pub fn put_profile(
        &mut self,
        entity: EntityId,
        kind: &str,
        ts_ms: i64,
        data: &[u8],
    ) -> Result<i64, StoreError> {
        self.require_writable()?;
        if data.len() > self.options.max_profile_bytes {
            return Err(StoreError::ProfileTooLarge {
                bytes: data.len(),
                cap_bytes: self.options.max_profile_bytes,
            });
        }
        let cap = self.options.max_profiles_total_bytes as i64;
        let tx = self.conn.unchecked_transaction().at(&self.path)?;
        tx.execute(
            "INSERT INTO profiles(entity, kind, ts, size_bytes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![entity, kind, ts_ms, data.len() as i64, data],
        )
        .at(&self.path)?;
        let id = tx.last_insert_rowid();
        loop {
            let total: i64 = tx
                .query_row("SELECT total(size_bytes) FROM profiles", [], |r| {
                    r.get::<_, f64>(0)
                })
                .map(|t| t as i64)
                .at(&self.path)?;
            if total <= cap {
                break;
            }
            let oldest: Option<i64> = tx
                .query_row("SELECT id FROM profiles ORDER BY ts, id LIMIT 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .at(&self.path)?;
            match oldest {
                Some(old) => {
                    tx.execute("DELETE FROM profiles WHERE id = ?1", [old])
                        .at(&self.path)?;
                }
                None => break,
            }
        }
        tx.commit().at(&self.path)?;
        Ok(id)
    }

    /// The profiles of `entity` (all entities when `None`) of `kind` (all
    /// kinds when `None`), oldest first.
    pub fn profiles(
        &self,
        entity: Option<EntityId>,
        kind: Option<&str>,
    ) -> Result<Vec<ProfileInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, entity, kind, ts, size_bytes FROM profiles
                 WHERE (?1 IS NULL OR entity = ?1) AND (?2 IS NULL OR kind = ?2)
                 ORDER BY ts, id",
            )
            .at(&self.path)?;
        let rows = stmt
            .query_map(params![entity, kind], |r| {
                Ok(ProfileInfo {
                    id: r.get(0)?,
                    entity: r.get(1)?,
                    kind: r.get(2)?,
                    ts_ms: r.get(3)?,
                    size_bytes: r.get(4)?,
                })
            })
            .at(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().at(&self.path)
    }

    /// The bytes of profile `id` (`None` when it does not exist, e.g. deleted
    /// by retention).
    pub fn profile_data(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT data FROM profiles WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .at(&self.path)
    }
}
