//! Findings as the live agent raised them (memlens-analyze), kept next to the
//! samples and profiles they point at: one row per finding, updated when it
//! clears. The store knows nothing of the detectors: evidence, the target and
//! linked profiles are kept as the caller gives them (JSON text).

use crate::error::{AtPath, StoreError};
use crate::store::{EntityId, Store};
use memlens_model::series::Entity;
use rusqlite::{params, OptionalExtension};

/// At most this many findings are kept (the oldest go first): a row is a
/// few hundred bytes, so the table stays far below the samples.
pub const MAX_FINDINGS: i64 = 50_000;

/// One stored finding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FindingRecord {
    /// The row id (ignored by [`Store::put_finding`]).
    pub row: i64,
    /// The stable finding id (`memory.time_to_oom`, ...).
    pub id: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The target's entity row, when it has one in this store.
    pub entity: Option<EntityId>,
    /// The target's entity key (`process:PID:START`, `cgroup:PATH`, `host`).
    pub target: String,
    /// When it fired (ms since the epoch).
    pub fired_ms: i64,
    /// When it cleared, if it did.
    pub cleared_ms: Option<i64>,
    /// The evidence, a JSON array.
    pub evidence_json: String,
    /// What to do.
    pub recommendation: String,
    /// Linked profiles (ids in `profiles`), a JSON array; `[]` when none.
    pub links_json: String,
}

impl Store {
    /// The committed entity row of `entity`, if it has one.
    pub fn entity_id(&self, entity: &Entity) -> Result<Option<EntityId>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM entities WHERE key = ?1",
                [entity.key()],
                |r| r.get(0),
            )
            .optional()
            .at(&self.path)
    }

    /// Stores a finding in its own transaction and returns its row id.
    pub fn put_finding(&mut self, finding: &FindingRecord) -> Result<i64, StoreError> {
        self.require_writable()?;
        let tx = self.conn.unchecked_transaction().at(&self.path)?;
        tx.execute(
            "INSERT INTO findings(finding, severity, entity, target, fired_ms, cleared_ms,
                                  evidence, recommendation, links)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                finding.id,
                finding.severity,
                finding.entity,
                finding.target,
                finding.fired_ms,
                finding.cleared_ms,
                finding.evidence_json,
                finding.recommendation,
                finding.links_json,
            ],
        )
        .at(&self.path)?;
        let row = tx.last_insert_rowid();
        tx.execute("DELETE FROM findings WHERE id <= ?1", [row - MAX_FINDINGS])
            .at(&self.path)?;
        tx.commit().at(&self.path)?;
        Ok(row)
    }

    /// Marks finding `row` cleared at `cleared_ms` with its evidence then.
    pub fn clear_finding(
        &mut self,
        row: i64,
        cleared_ms: i64,
        evidence_json: &str,
    ) -> Result<(), StoreError> {
        self.require_writable()?;
        self.conn
            .execute(
                "UPDATE findings SET cleared_ms = ?2, evidence_at_clear = ?3 WHERE id = ?1",
                params![row, cleared_ms, evidence_json],
            )
            .at(&self.path)?;
        Ok(())
    }

    /// The findings that fired in `[from_ms, to_ms]`, oldest first.
    pub fn findings(&self, from_ms: i64, to_ms: i64) -> Result<Vec<FindingRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, finding, severity, entity, target, fired_ms, cleared_ms, evidence,
                        recommendation, links
                 FROM findings WHERE fired_ms BETWEEN ?1 AND ?2 ORDER BY fired_ms, id",
            )
            .at(&self.path)?;
        let rows = stmt
            .query_map([from_ms, to_ms], |r| {
                Ok(FindingRecord {
                    row: r.get(0)?,
                    id: r.get(1)?,
                    severity: r.get(2)?,
                    entity: r.get(3)?,
                    target: r.get(4)?,
                    fired_ms: r.get(5)?,
                    cleared_ms: r.get(6)?,
                    evidence_json: r.get(7)?,
                    recommendation: r.get(8)?,
                    links_json: r.get(9)?,
                })
            })
            .at(&self.path)?;
        rows.collect::<Result<Vec<_>, _>>().at(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use memlens_model::series::{Entity, Labels};

    #[test]
    fn a_finding_is_stored_cleared_and_read_back_also_by_sql() {
        let dir = std::env::temp_dir().join(format!("memlens-findings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        let e = store
            .entity(
                &Entity::Process {
                    pid: 5,
                    start_time: 6,
                },
                &Labels::new(),
            )
            .unwrap();
        store.commit().unwrap();
        assert_eq!(
            store
                .entity_id(&Entity::Process {
                    pid: 5,
                    start_time: 6
                })
                .unwrap(),
            Some(e)
        );
        assert_eq!(store.entity_id(&Entity::Host).unwrap(), None);
        let record = super::FindingRecord {
            id: "memory.oom_kill".to_string(),
            severity: "critical".to_string(),
            entity: Some(e),
            target: "process:5:6".to_string(),
            fired_ms: 1000,
            evidence_json: r#"[{"name":"pid","value":5}]"#.to_string(),
            recommendation: "look".to_string(),
            links_json: "[3]".to_string(),
            ..Default::default()
        };
        let row = store.put_finding(&record).unwrap();
        store.clear_finding(row, 2000, "[]").unwrap();
        drop(store);
        let store = Store::open_read_only(&dir).unwrap();
        let back = store.findings(0, 5000).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].cleared_ms, Some(2000));
        assert_eq!(back[0].links_json, "[3]");
        assert_eq!(back[0].entity, Some(e));
        assert!(store.findings(1001, 5000).unwrap().is_empty());
        let q = store
            .query("SELECT finding, target, cleared_ms FROM findings")
            .unwrap();
        assert_eq!(q.rows.len(), 1, "{q:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
