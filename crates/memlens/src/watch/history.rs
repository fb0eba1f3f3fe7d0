//! What one agent cycle writes to the history: every point of the cycle in one
//! commit (so `kill -9` loses at most the cycle in flight), then the profiles
//! fetched in it; retention and checkpoints now and then.

use super::config::WatchConfig;
use super::gotargets::FetchedProfile;
use anyhow::Context;
use memlens_model::series::{cgroup_labels, mysql_labels, process_labels, Entity, Labels, Point};
use memlens_model::Snapshot;
use memlens_store::{Retention, SeriesId, Store, StoreOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often retention runs (and the WAL is checkpointed).
const MAINTAIN_EVERY: Duration = Duration::from_secs(300);

/// What a cycle stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    /// Numeric values made durable.
    pub values: usize,
    /// Profiles stored.
    pub profiles: usize,
    /// The instant they were stored under, ms since the epoch.
    pub ts_ms: i64,
}

/// The agent's side of the store.
pub struct History {
    store: Store,
    dir: PathBuf,
    retention: Retention,
    last_maintained: Instant,
    last_ts_ms: Option<i64>,
    /// The labels of the last cycle's entities: a point of an entity that
    /// is no longer in the snapshot (the Go thread's last read of a process
    /// the OOM killer just took) keeps its labels instead of wiping them.
    previous_labels: HashMap<Entity, Labels>,
}

impl History {
    /// Opens (or creates) the history in the configured directory.
    pub fn open(config: &WatchConfig) -> anyhow::Result<History> {
        let options = StoreOptions {
            max_profile_bytes: config.fetch.max_body_bytes.min(usize::MAX as u64) as usize,
            max_profiles_total_bytes: config.retention.max_bytes / 4,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&config.data_dir, options)
            .with_context(|| format!("cannot open the history in {}", config.data_dir.display()))?;
        let last_ts_ms = store.last_ts_ms();
        Ok(History {
            store,
            dir: config.data_dir.clone(),
            retention: Retention {
                max_age_ms: Some(crate::duration::millis_i64(config.retention.max_age)),
                max_bytes: Some(config.retention.max_bytes),
            },
            last_maintained: Instant::now(),
            last_ts_ms,
            previous_labels: HashMap::new(),
        })
    }

    /// Stores the points of one cycle in one commit, then its profiles.
    pub fn record_cycle(
        &mut self,
        snapshot: &Snapshot,
        points: &[Point],
        profiles: &[FetchedProfile],
        indexes: &HashMap<Entity, u32>,
    ) -> anyhow::Result<Written> {
        // Instants must ascend: a clock stepped back shifts ours just past the last.
        let mut ts_ms = snapshot.taken_at_unix_ms as i64;
        if let Some(last) = self.last_ts_ms {
            ts_ms = ts_ms.max(last + 1);
        }
        let mut labels = entity_labels(snapshot, indexes);
        for (entity, current) in labels.iter_mut() {
            if let Some(previous) = self.previous_labels.get(entity) {
                keep_known_labels(previous, current);
            }
        }
        for point in points {
            if !labels.contains_key(&point.entity) {
                if let Some(known) = self.previous_labels.get(&point.entity) {
                    labels.insert(point.entity.clone(), known.clone());
                }
            }
        }
        let mut ids: HashMap<&Entity, i64> = HashMap::new();
        let mut samples: Vec<(SeriesId, f64)> = Vec::with_capacity(points.len());
        for point in points {
            let entity_id = match ids.get(&point.entity) {
                Some(&id) => id,
                None => {
                    let id = match labels.get(&point.entity) {
                        Some(known) => self.store.entity(&point.entity, known)?,
                        // Gone from the snapshots for more than a cycle (a
                        // late Go runtime read): its stored labels stay.
                        None => self.store.entity_keeping_labels(&point.entity)?,
                    };
                    ids.insert(&point.entity, id);
                    id
                }
            };
            samples.push((self.store.series_id(entity_id, point.metric)?, point.value));
        }
        self.store.append(ts_ms, &samples)?;
        let report = self
            .store
            .commit()
            .with_context(|| format!("storing the samples in {}", self.dir.display()))?;
        self.last_ts_ms = Some(ts_ms);
        self.previous_labels = labels;
        let mut written = Written {
            values: report.samples(),
            profiles: 0,
            ts_ms,
        };
        for profile in profiles {
            // A trace of a process gone from this cycle (the OOM killer
            // took it since) keeps its stored labels. A heap or goroutine
            // profile of a gone process is dropped: fetched before it went,
            // it would be stored after its kill, and a report of the kill
            // would not find it among what was kept by then.
            let entity_id = match ids.get(&profile.entity) {
                Some(&id) => id,
                None if profile.kind == super::evidence::KIND => {
                    self.store.entity_keeping_labels(&profile.entity)?
                }
                None => continue,
            };
            self.store
                .put_profile(entity_id, profile.kind, ts_ms, &profile.bytes)
                .with_context(|| {
                    format!(
                        "storing the {} profile of {}",
                        profile.kind,
                        profile.entity.key()
                    )
                })?;
            written.profiles += 1;
        }
        Ok(written)
    }

    /// Applies retention and checkpoints the log, every few minutes.
    pub fn maintain(&mut self, now_ms: i64) -> anyhow::Result<()> {
        if self.last_maintained.elapsed() < MAINTAIN_EVERY {
            return Ok(());
        }
        self.last_maintained = Instant::now();
        self.store
            .apply_retention(&self.retention, now_ms)
            .with_context(|| format!("retention in {}", self.dir.display()))?;
        self.store
            .checkpoint()
            .with_context(|| format!("checkpoint in {}", self.dir.display()))?;
        Ok(())
    }

    /// The store itself (findings are written next to the samples).
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Bytes of the data directory's files.
    pub fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Seals what is buffered and checkpoints, for a clean stop.
    pub fn close(mut self) -> anyhow::Result<()> {
        self.store.flush()?;
        self.store.checkpoint()?;
        Ok(())
    }
}

/// Keeps the last cycle's value of every label the current cycle lost: a
/// process on its way out (killed, a zombie) reads back without command line,
/// cgroup or build info, and must not wipe what the history knows of it. A
/// changed `comm` (an exec) takes the new labels as they are.
fn keep_known_labels(previous: &Labels, current: &mut Labels) {
    let exec = matches!(
        (previous.get("comm"), current.get("comm")),
        (Some(old), Some(new)) if !new.is_empty() && old != new
    );
    if exec {
        return;
    }
    for (key, value) in previous {
        if value.is_empty() {
            continue;
        }
        let lost = current.get(key).is_none_or(|v| v.is_empty());
        if lost {
            current.insert(key, value.clone());
        }
    }
}

/// The labels of every process, cgroup and MySQL server entity of a
/// snapshot; a process's `instance_index` when above 0 (the identity its
/// exported series carry, `memlens_cardinality`).
fn entity_labels(snapshot: &Snapshot, indexes: &HashMap<Entity, u32>) -> HashMap<Entity, Labels> {
    let mut labels = HashMap::with_capacity(snapshot.processes.len() + 8);
    for process in &snapshot.processes {
        let entity = Entity::Process {
            pid: process.pid,
            start_time: process.start_time,
        };
        let mut own = process_labels(process);
        if let Some(index) = indexes.get(&entity).filter(|i| **i > 0) {
            own.insert(memlens_cardinality::INDEX_LABEL, index.to_string());
        }
        labels.insert(entity, own);
        if let Some(cgroup) = &process.cgroup {
            labels
                .entry(Entity::Cgroup {
                    path: cgroup.path.clone(),
                })
                .or_insert_with(|| cgroup_labels(cgroup));
        }
    }
    for cgroup in &snapshot.emptied_cgroups {
        labels
            .entry(Entity::Cgroup {
                path: cgroup.path.clone(),
            })
            .or_insert_with(|| cgroup_labels(cgroup));
    }
    for server in &snapshot.mysql {
        let (pid, start_time) = (server.process.pid, server.process.start_time);
        let process = Entity::Process { pid, start_time };
        // The server's process and cgroup are linked through its labels.
        let mut own = mysql_labels(server);
        if let Some(p) = labels.get(&process) {
            for key in ["comm", "cgroup", memlens_cardinality::INDEX_LABEL] {
                if let Some(v) = p.get(key) {
                    own.insert(key, v.clone());
                }
            }
        }
        labels.insert(Entity::Mysql { pid, start_time }, own);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use memlens_model::ProcessSample;

    fn labels(pairs: &[(&'static str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn a_dying_process_keeps_its_labels_and_an_exec_replaces_them() {
        let known = labels(&[
            ("comm", "workload"),
            ("cmdline", "workload --mode heap-leak"),
            ("cgroup", "/memlens-test/a"),
            ("go_version", "go1.27.3"),
        ]);
        let mut dying = labels(&[("comm", "workload"), ("cgroup", "")]);
        keep_known_labels(&known, &mut dying);
        assert_eq!(dying, known);
        let mut emptied = labels(&[("comm", "")]);
        keep_known_labels(&known, &mut emptied);
        assert_eq!(emptied, known);
        let mut exec = labels(&[("comm", "sh"), ("cmdline", "sh -c true")]);
        keep_known_labels(&known, &mut exec);
        assert_eq!(exec, labels(&[("comm", "sh"), ("cmdline", "sh -c true")]));
    }

    #[test]
    fn a_late_go_read_of_a_process_gone_for_cycles_keeps_its_labels() {
        let dir = std::env::temp_dir().join(format!("memlens-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = WatchConfig {
            data_dir: dir.clone(),
            ..WatchConfig::default()
        };
        let mut history = History::open(&config).unwrap();
        let process = ProcessSample {
            pid: 4242,
            start_time: 99,
            comm: "workload".into(),
            cmdline: vec!["workload".into(), "--mode".into(), "heap-leak".into()],
            rss_bytes: Some(1 << 20),
            ..ProcessSample::default()
        };
        let entity = Entity::Process {
            pid: 4242,
            start_time: 99,
        };
        let point = |metric: &'static str| Point {
            entity: entity.clone(),
            metric,
            value: 1.0,
        };
        let mut snapshot = Snapshot {
            taken_at_unix_ms: 1_000,
            host: Default::default(),
            processes: vec![process],
            emptied_cgroups: Vec::new(),
            mysql: Vec::new(),
        };
        history
            .record_cycle(&snapshot, &[point("rss_bytes")], &[], &HashMap::new())
            .unwrap();
        // Two cycles without it, then its Go read arrives.
        snapshot.processes.clear();
        for ts in [2_000, 3_000] {
            snapshot.taken_at_unix_ms = ts;
            history
                .record_cycle(&snapshot, &[], &[], &HashMap::new())
                .unwrap();
        }
        snapshot.taken_at_unix_ms = 4_000;
        history
            .record_cycle(&snapshot, &[point("go_goroutines")], &[], &HashMap::new())
            .unwrap();
        history.close().unwrap();
        let store = Store::open_read_only(&dir).unwrap();
        let stored = store.entities_by_pid(4242).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].comm.as_deref(), Some("workload"));
        assert_eq!(
            stored[0].cmdline.as_deref(),
            Some("workload --mode heap-leak")
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
