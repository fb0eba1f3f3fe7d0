//! The detectors (memlens-analyze) in the live agent: every cycle's points go
//! through the same [`Engine`] `memlens replay` runs offline, with the same
//! timestamps the history stores, so live and replay agree. Findings are
//! kept in the history (`findings` table), shown as they fire and clear, and
//! a time-to-OOM turning critical asks for the target's heap and goroutine
//! profiles at once. Kills come from the OOM kill counters and, where it can
//! be read, the kernel log; each kill links to the victim's last profiles.

use crate::collect::kmsg::KernelLog;
use crate::show::findings::evidence_json;
use anyhow::Context;
use memlens_analyze::engine::{ChecksConfig, GO_ENV_GOGC, GO_ENV_GOMEMLIMIT, UNSET};
use memlens_analyze::finding::TIME_TO_OOM;
use memlens_analyze::{Config, Engine, Finding, KernelKill, Severity, OOM_KILL};
use memlens_linux::fs::Root;
use memlens_model::series::{Entity, Point};
use memlens_model::Snapshot;
use memlens_store::{FindingRecord, ProfileInfo, Store};
use std::collections::{HashMap, HashSet};

/// The live detectors and what they need between cycles.
pub struct LiveFindings {
    engine: Engine,
    kernel_log: Option<KernelLog>,
    /// Processes whose cgroup the engine has been told.
    known: HashSet<Entity>,
    /// Command names, for the terminal (pruned to recent processes).
    names: HashMap<Entity, String>,
    /// Processes' cgroups, for alert labels (pruned with the names).
    cgroups: HashMap<Entity, String>,
    /// Store rows of active findings: (id, target, fired) → row.
    rows: HashMap<(&'static str, Entity, i64), i64>,
}

impl LiveFindings {
    /// Detectors with `config` (the config file's `[findings]`); the kernel
    /// log under `root` when readable (the `Err` says why not: the agent
    /// goes on without it).
    pub fn new(root: &Root, config: Config) -> (LiveFindings, Result<(), String>) {
        let (kernel_log, readable) = match KernelLog::open(root) {
            Ok(log) => (Some(log), Ok(())),
            Err(why) => (None, Err(why)),
        };
        let mut engine = Engine::new(config);
        engine.read_kernel_log(kernel_log.is_some());
        let live = LiveFindings {
            engine,
            kernel_log,
            known: HashSet::new(),
            names: HashMap::new(),
            cgroups: HashMap::new(),
            rows: HashMap::new(),
        };
        (live, readable)
    }

    /// Runs the detectors over one cycle (`ts_ms` as stored) and returns the
    /// findings that fired or cleared.
    pub fn observe(&mut self, ts_ms: i64, snapshot: &Snapshot, points: &[Point]) -> Vec<Finding> {
        let mut alive = HashSet::with_capacity(snapshot.processes.len());
        for p in &snapshot.processes {
            let entity = Entity::Process {
                pid: p.pid,
                start_time: p.start_time,
            };
            if !self.known.contains(&entity) {
                if let Some(cgroup) = &p.cgroup {
                    self.engine.set_process_cgroup(&entity, &cgroup.path);
                    self.cgroups.insert(entity.clone(), cgroup.path.clone());
                }
                self.names.insert(entity.clone(), p.comm.clone());
                self.known.insert(entity.clone());
            }
            alive.insert(entity);
        }
        // A victim's name is still wanted when its kill is reported.
        self.known.retain(|e| alive.contains(e));
        if let Some(log) = &mut self.kernel_log {
            for kill in log.read_kills() {
                let rss = [
                    kill.anon_rss_bytes,
                    kill.file_rss_bytes,
                    kill.shmem_rss_bytes,
                ];
                self.engine.note_kernel_kill(KernelKill {
                    pid: kill.pid,
                    comm: kill.comm,
                    oom_cgroup: kill.oom_memcg,
                    task_cgroup: kill.task_memcg,
                    rss_at_kill_bytes: rss
                        .iter()
                        .any(Option::is_some)
                        .then(|| rss.iter().flatten().sum::<u64>() as f64),
                });
            }
        }
        let events = self.engine.observe(ts_ms, points);
        if self.names.len() > 4 * alive.len() + 1024 {
            let active: HashSet<Entity> =
                self.engine.active().into_iter().map(|f| f.target).collect();
            self.names
                .retain(|e, _| alive.contains(e) || active.contains(e));
            self.cgroups
                .retain(|e, _| alive.contains(e) || active.contains(e));
        }
        events
    }

    /// The findings active now.
    pub fn active(&self) -> Vec<Finding> {
        self.engine.active()
    }

    /// The command name of a process target, when known.
    pub fn name(&self, target: &Entity) -> Option<&str> {
        self.names.get(target).map(String::as_str)
    }

    /// The memory cgroup of a target: a cgroup's path, a process's cgroup
    /// when known.
    pub fn cgroup<'a>(&'a self, target: &'a Entity) -> Option<&'a str> {
        match target {
            Entity::Cgroup { path } => Some(path),
            _ => self.cgroups.get(target).map(String::as_str),
        }
    }

    /// The Go processes whose profiles are wanted at once: the target of a
    /// time-to-OOM that just turned critical, or the Go processes of its
    /// cgroup.
    pub fn captures(events: &[Finding], snapshot: &Snapshot) -> Vec<(i32, u64)> {
        let mut wanted = Vec::new();
        for f in events {
            if f.id != TIME_TO_OOM || f.severity != Severity::Critical || f.cleared_at_ms.is_some()
            {
                continue;
            }
            for p in snapshot.processes.iter().filter(|p| p.go.is_some()) {
                let hit = is_of(p, &f.target);
                if hit && !wanted.contains(&(p.pid, p.start_time)) {
                    wanted.push((p.pid, p.start_time));
                }
            }
        }
        wanted
    }

    /// Keeps the cycle's events in the history: a fired finding is a new
    /// row, a cleared one updates its row, a kill (an event) is one row
    /// linked to the victim's last profiles.
    pub fn store(&mut self, store: &mut Store, events: &[Finding]) -> anyhow::Result<()> {
        for f in events {
            let key = (f.id, f.target.clone(), f.fired_at_ms);
            let evidence = evidence_json(&f.evidence).to_string();
            let event = f.id == OOM_KILL;
            if let (Some(cleared), false) = (f.cleared_at_ms, event) {
                if let Some(row) = self.rows.remove(&key) {
                    store
                        .clear_finding(row, cleared, &evidence)
                        .context("storing a cleared finding")?;
                }
                continue;
            }
            let entity = store.entity_id(&f.target)?;
            let links = match entity {
                Some(id) if event => linked_profiles(store, id, f.fired_at_ms)?,
                _ => Vec::new(),
            };
            let row = store
                .put_finding(&FindingRecord {
                    id: f.id.to_string(),
                    severity: f.severity.as_str().to_string(),
                    entity,
                    target: f.target.key(),
                    fired_ms: f.fired_at_ms,
                    cleared_ms: f.cleared_at_ms,
                    evidence_json: evidence,
                    recommendation: f.recommendation.clone(),
                    links_json: profiles_json(&links).to_string(),
                    ..FindingRecord::default()
                })
                .with_context(|| format!("storing the finding {} of {}", f.id, f.target.key()))?;
            if !event {
                self.rows.insert(key, row);
            }
        }
        Ok(())
    }
}

/// GOMEMLIMIT and GOGC as each Go process's environment sets them, as
/// points (`go_env_gomemlimit_bytes`, `go_env_gogc_percent`): the engine's
/// settings checks take the runtime's own values when the target serves
/// them and these otherwise; stored, so a replay sees them too. An unset or
/// malformed GOMEMLIMIT is "none" (the runtime would not start with a
/// malformed one); GOGC=off is -1.
pub fn settings_points(snapshot: &Snapshot) -> Vec<Point> {
    use memlens_analyze::gomemconfig::{parse_gogc, parse_gomemlimit};
    let mut points = Vec::new();
    for p in &snapshot.processes {
        let Some(go) = &p.go else {
            continue;
        };
        let entity = Entity::Process {
            pid: p.pid,
            start_time: p.start_time,
        };
        let limit = go
            .gomemlimit
            .as_deref()
            .filter(|raw| !raw.is_empty())
            .and_then(|raw| parse_gomemlimit(raw).ok().flatten());
        let gogc = match go.gogc.as_deref().filter(|raw| !raw.is_empty()) {
            Some(raw) => parse_gogc(raw).map_or(-1.0, |p| p as f64),
            None => 100.0,
        };
        points.push(Point {
            entity: entity.clone(),
            metric: GO_ENV_GOMEMLIMIT,
            value: limit.map_or(UNSET, |b| b as f64),
        });
        points.push(Point {
            entity,
            metric: GO_ENV_GOGC,
            value: gogc,
        });
    }
    points
}

/// The live checks' thresholds: the alert catalogue's (`[alerts]`), so a
/// built-in alert means what the same alert means in Prometheus.
pub fn checks_config(t: &memlens_alert::Thresholds) -> ChecksConfig {
    let d = ChecksConfig::default();
    ChecksConfig {
        fds: memlens_analyze::fds::Config {
            warning_ratio: t.limit_warning_ratio,
            critical_ratio: t.limit_critical_ratio,
            ..d.fds
        },
        vmas: memlens_analyze::vmas::Config {
            warning_ratio: t.limit_warning_ratio,
            critical_ratio: t.limit_critical_ratio,
            ..d.vmas
        },
        gomem: memlens_analyze::gomemconfig::Config {
            margin_ratio: t.gomemlimit_margin_ratio,
            margin_min_bytes: t.gomemlimit_min_margin_bytes as u64,
            ..d.gomem
        },
        goroutine_min: t.goroutine_min,
        goroutine_growth_ratio: t.goroutine_growth_ratio,
        goroutine_window_seconds: t.goroutine_window,
        gc: memlens_analyze::gcpressure::Config {
            cpu_fraction_critical: t.gc_cpu_ratio,
            ..d.gc
        },
        gc_window_seconds: t.gc_window,
        ..d
    }
}

/// Whether process `p` is `target` or in it (a cgroup or below it).
pub fn is_of(p: &memlens_model::ProcessSample, target: &Entity) -> bool {
    match target {
        Entity::Process { pid, start_time } => p.pid == *pid && p.start_time == *start_time,
        Entity::Cgroup { path } => p.cgroup.as_ref().is_some_and(|c| {
            c.path == *path
                || c.path
                    .strip_prefix(path.trim_end_matches('/'))
                    .is_some_and(|r| r.starts_with('/'))
        }),
        Entity::Host | Entity::Mysql { .. } => false,
    }
}

/// The latest profile of each kind `entity` has at or before `ts_ms`: what
/// a post-mortem of a kill at `ts_ms` reads.
pub fn linked_profiles(store: &Store, entity: i64, ts_ms: i64) -> anyhow::Result<Vec<ProfileInfo>> {
    let mut latest: Vec<ProfileInfo> = Vec::new();
    for p in store.profiles(Some(entity), None)? {
        if p.ts_ms > ts_ms {
            continue;
        }
        match latest.iter_mut().find(|l| l.kind == p.kind) {
            Some(l) if l.ts_ms <= p.ts_ms => *l = p,
            Some(_) => {}
            None => latest.push(p),
        }
    }
    latest.sort_by_key(|p| (p.ts_ms, p.id));
    Ok(latest)
}

/// Profiles as JSON: `[{id, kind, ts_ms, size_bytes}]`.
pub fn profiles_json(profiles: &[ProfileInfo]) -> serde_json::Value {
    profiles
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "kind": p.kind,
                "ts_ms": p.ts_ms,
                "size_bytes": p.size_bytes,
            })
        })
        .collect()
}
