//! Entity and series ids: handed out at once from caches, registered in
//! the database with the next commit (a series as a member of its entity's
//! metric set, see [`crate::labels`]).

use crate::error::{AtPath, StoreError};
use crate::labels;
use crate::store::{EntityId, PendingEntity, SeriesId, Store, METRIC_BITS};
use memlens_model::series::Entity;
use rusqlite::OptionalExtension;
use std::collections::BTreeMap;

impl Store {
    /// The id of `entity`, registering it (and updating its labels when they
    /// changed) at the next commit. Cheap when called every tick.
    pub fn entity(
        &mut self,
        entity: &Entity,
        labels: &BTreeMap<&str, String>,
    ) -> Result<EntityId, StoreError> {
        self.writable()?;
        let key = entity.key();
        let labels_json = serde_json::to_string(labels).unwrap_or_default();
        let seals = self.seals;
        if let Some((id, old, used)) = self.entity_cache.get_mut(&key) {
            *used = seals;
            if *old == labels_json {
                return Ok(*id);
            }
            *old = labels_json.clone();
            let id = *id;
            self.queue_entity(id, entity, labels);
            return Ok(id);
        }
        let found: Option<EntityId> = self
            .conn
            .prepare_cached("SELECT id FROM entity_rows WHERE key = ?1")
            .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
            .at(&self.path)?;
        let id = match found {
            Some(id) => {
                // Seen again after a restart or a cache drop: the labels are
                // written again (an update of the same row).
                self.queue_entity(id, entity, labels);
                id
            }
            None => {
                let id = self.next_entity;
                if id >= 1 << 32 {
                    // Chunk rows are keyed by group << 32 | entity.
                    return Err(StoreError::TooManyEntities);
                }
                self.next_entity += 1;
                self.queue_entity(id, entity, labels);
                id
            }
        };
        self.entity_cache.insert(key, (id, labels_json, seals));
        Ok(id)
    }

    /// The id of `entity` without touching its labels: for a value that
    /// arrives when the entity's labels are not known any more (a Go runtime
    /// read that ends after its process left the snapshots). A known entity
    /// keeps the labels it has; an unknown one is registered without labels.
    pub fn entity_keeping_labels(&mut self, entity: &Entity) -> Result<EntityId, StoreError> {
        self.writable()?;
        let key = entity.key();
        let seals = self.seals;
        if let Some((id, _, used)) = self.entity_cache.get_mut(&key) {
            *used = seals;
            return Ok(*id);
        }
        let found: Option<EntityId> = self
            .conn
            .prepare_cached("SELECT id FROM entity_rows WHERE key = ?1")
            .and_then(|mut s| s.query_row([&key], |r| r.get(0)).optional())
            .at(&self.path)?;
        match found {
            Some(id) => {
                // No JSON text equals this one, so labels given later by
                // `entity` are written (an update of the same row).
                self.entity_cache.insert(key, (id, String::new(), seals));
                Ok(id)
            }
            None => self.entity(entity, &BTreeMap::new()),
        }
    }

    fn queue_entity(&mut self, id: EntityId, entity: &Entity, labels: &BTreeMap<&str, String>) {
        self.pending_entities.push(PendingEntity {
            id,
            entity: entity.clone(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
    }

    /// The id of series (`entity`, `metric`), registered at the next commit.
    /// At most 65535 distinct metric names per store.
    pub fn series_id(&mut self, entity: EntityId, metric: &str) -> Result<SeriesId, StoreError> {
        self.writable()?;
        if entity <= 0 || entity >= self.next_entity {
            return Err(StoreError::UnknownEntity(entity));
        }
        let metric_id = match self.metric_ids.get(metric) {
            Some(&id) => id,
            None => {
                let id = self.next_metric;
                if id >= 1 << METRIC_BITS {
                    return Err(StoreError::TooManyMetrics {
                        metric: metric.to_string(),
                    });
                }
                self.next_metric += 1;
                self.metric_ids.insert(metric.to_string(), id);
                self.pending_metrics.push((id, metric.to_string()));
                id
            }
        };
        let id = (entity as u64) << METRIC_BITS | metric_id;
        let seals = self.seals;
        if !self.metric_sets.contains_key(&entity) {
            let stored = labels::load_metrics(&self.conn, entity).at(&self.path)?;
            self.metric_sets.insert(entity, (stored, seals));
        }
        if let Some((set, used)) = self.metric_sets.get_mut(&entity) {
            *used = seals;
            if let Err(at) = set.binary_search(&metric_id) {
                // The grown set is written with the next commit.
                set.insert(at, metric_id);
                self.pending_sets.insert(entity);
            }
        }
        Ok(id)
    }
}
