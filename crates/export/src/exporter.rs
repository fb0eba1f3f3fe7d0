//! `memlens watch --listen`: the agent's series as a Prometheus `/metrics`
//! endpoint (names and labels in `docs/metrics.md`).
//!
//! - `names.rs`: history metric -> Prometheus family (name, type, unit, help).
//! - `render.rs`: the exposition text, and the series cap.
//! - the HTTP server is `memlens_web::server`: `/metrics` and, on the same
//!   listener, the dashboard (`GET /`) over this agent's history.
//!
//! The agent loop hands each cycle to [`Exporter::cycle`] and publishes with
//! [`Exporter::finish_cycle`]; scrapes read the last published text and never
//! wait for the loop. Go runtime values arrive at their own (slower) cadence,
//! so the last ones of each live Go process are kept between reads.

pub(crate) mod names;
mod render;

use anyhow::{bail, Context};
use memlens_cardinality::{process_target, SeriesOptions};
use memlens_model::series::{Entity, Point};
use memlens_model::Snapshot;
use memlens_web::server::{self, Published, ServerConfig};
use render::{AgentHealth, EntitySeries, TimeLeft};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Where and how `/metrics` is served.
#[derive(Debug, Clone, Default)]
pub struct ExporterConfig {
    /// `PORT` or `HOST:PORT` ([`listen_addr`]); `None` serves nothing.
    pub listen: Option<String>,
    /// A file holding the bearer token scrapes must present.
    pub bearer_token_file: Option<PathBuf>,
    /// The most series in one exposition.
    pub max_series: usize,
    /// The history's directory (the dashboard on the same listener reads it).
    pub data_dir: PathBuf,
    /// Labels, process selection and relabel rules of the series.
    pub series: SeriesOptions,
}

/// One notifier's totals, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierTotals {
    /// `alertmanager` or `webhook`.
    pub notifier: &'static str,
    /// Notifications queued since the start.
    pub enqueued: u64,
    /// Notifications the receiver took.
    pub sent: u64,
    /// Failed attempts, retried.
    pub retries: u64,
    /// Notifications dropped from a full queue.
    pub dropped: u64,
    /// Notifications refused with a 4xx.
    pub rejected: u64,
    /// Notifications waiting or being sent.
    pub queued: u64,
}

/// The exporter of a running agent; does nothing when `listen` is not set.
pub struct Exporter {
    published: Option<Published>,
    addr: Option<SocketAddr>,
    max_series: usize,
    go_values: HashMap<Entity, Vec<(&'static str, f64)>>,
    entities: Vec<EntitySeries>,
    health: AgentHealth,
    /// The cgroup and index of each process seen lately, with the cycle it
    /// was last seen in: a kill is found up to three intervals after its
    /// victim vanished, and its counter is labelled with the victim's
    /// identity.
    known: HashMap<Entity, Known>,
    cycle_number: u64,
    series: SeriesOptions,
}

/// What the exporter remembers of a process for its series and findings.
#[derive(Debug, Clone)]
struct Known {
    comm: String,
    names: render::ProcessNames,
    seen_in_cycle: u64,
}

/// How many cycles a vanished process's cgroup is remembered.
const CGROUP_MEMORY_CYCLES: u64 = 10;

impl Exporter {
    /// Starts the server when `config.listen` is set. A non-loopback address
    /// without `bearer_token_file` is refused.
    pub fn start(config: &ExporterConfig) -> anyhow::Result<Exporter> {
        let mut exporter = Exporter {
            published: None,
            addr: None,
            max_series: config.max_series,
            go_values: HashMap::new(),
            entities: Vec::new(),
            health: AgentHealth::default(),
            known: HashMap::new(),
            cycle_number: 0,
            series: config.series.clone(),
        };
        let Some(listen) = &config.listen else {
            return Ok(exporter);
        };
        let addr = listen_addr(listen).map_err(anyhow::Error::msg)?;
        let token = read_token(config.bearer_token_file.as_deref())?;
        if !addr.ip().is_loopback() && token.is_none() {
            bail!(
                "refusing to serve /metrics on {addr}: it is not a loopback address and no \
                 bearer token is set (set bearer_token_file in the config file, or listen \
                 on 127.0.0.1)"
            );
        }
        let published = Published::default();
        published.publish(render::render(
            &[],
            &exporter.health,
            &exporter.series.relabel,
        ));
        let bound = server::start(ServerConfig {
            addr,
            token,
            metrics: Some(published.clone()),
            data_dir: Some(config.data_dir.clone()),
        })
        .with_context(|| format!("cannot listen on {addr} for /metrics"))?;
        exporter.published = Some(published);
        exporter.addr = Some(bound);
        Ok(exporter)
    }

    /// Where `/metrics` is served, when it is.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Counts a failure of `collector` (`snapshot`, `store`, `go`) at `stage`.
    pub fn error(&mut self, collector: &str, stage: &str) {
        *self
            .health
            .errors
            .entry((collector.to_string(), stage.to_string()))
            .or_insert(0) += 1;
    }

    /// Shows the remote-write senders' totals from now on.
    pub fn remote_write(&mut self, senders: Vec<crate::remote_write::SenderTotals>) {
        self.health.remote_write = Some(senders);
    }

    /// Shows the built-in alerting's notifier totals and alert counts
    /// (pending, firing, inhibited) from now on.
    pub fn alerting(&mut self, notifiers: Vec<NotifierTotals>, states: (usize, usize, usize)) {
        self.health.alerting = Some((notifiers, states));
    }

    /// The labels naming `target`: `target` (a process's by its identity,
    /// `memlens_cardinality::process_target`), and `comm` (+ `instance_index`,
    /// `pid` with `pid_label`, and its `cgroup` when known) or `cgroup`.
    fn target_labels(
        &self,
        target: &Entity,
        comm: &impl Fn(&Entity) -> Option<String>,
    ) -> Vec<(&'static str, String)> {
        match target {
            Entity::Process { pid, .. } | Entity::Mysql { pid, .. } => {
                let process = match target {
                    Entity::Mysql { pid, start_time } => Entity::Process {
                        pid: *pid,
                        start_time: *start_time,
                    },
                    other => other.clone(),
                };
                let known = self.known.get(&process);
                let cgroup = known.and_then(|k| k.names.cgroup.clone());
                let index = known.map_or(0, |k| k.names.index);
                let name = comm(target).or_else(|| comm(&process));
                let key = match &name {
                    Some(name) => {
                        let key = process_target(name, cgroup.as_deref(), index);
                        match target {
                            Entity::Mysql { .. } => key.replacen("process:", "mysql:", 1),
                            _ => key,
                        }
                    }
                    None => target.key(),
                };
                let mut labels = vec![("target", key)];
                if let Some(name) = name {
                    labels.push(("comm", name));
                }
                if index > 0 {
                    labels.push((memlens_cardinality::INDEX_LABEL, index.to_string()));
                }
                if self.series.pid_label {
                    labels.push(("pid", pid.to_string()));
                }
                if let Some(cgroup) = cgroup {
                    labels.push(("cgroup", cgroup));
                }
                labels
            }
            Entity::Cgroup { path } => vec![("target", target.key()), ("cgroup", path.clone())],
            Entity::Host => vec![("target", target.key())],
        }
    }

    /// Shows the active findings and counts this cycle's kills, by victim
    /// (`target`, `pid`, `comm`, and its `cgroup` when known).
    pub fn findings(
        &mut self,
        active: &[memlens_analyze::Finding],
        events: &[memlens_analyze::Finding],
        comm: impl Fn(&Entity) -> Option<String>,
    ) {
        for kill in events.iter().filter(|f| f.id == memlens_analyze::OOM_KILL) {
            let labels = self.target_labels(&kill.target, &comm);
            *self.health.oom_kills_observed.entry(labels).or_insert(0) += 1;
        }
        self.health.findings = active
            .iter()
            .map(|f| {
                let mut labels = vec![
                    ("finding", f.id.to_string()),
                    ("severity", f.severity.as_str().to_string()),
                ];
                labels.extend(self.target_labels(&f.target, &comm));
                let left = f.evidence("time_left_seconds").map(|seconds| TimeLeft {
                    seconds,
                    earliest_seconds: f.evidence("time_left_earliest_seconds").unwrap_or(seconds),
                    latest_seconds: f
                        .evidence("time_left_latest_seconds")
                        .unwrap_or(f64::INFINITY),
                });
                (labels, left)
            })
            .collect();
    }

    /// Takes a cycle's snapshot and points (its Go points, if any, replace
    /// the kept ones of their process), with each process's
    /// `instance_index` (from `memlens_cardinality::Identities`).
    pub fn cycle(&mut self, snapshot: &Snapshot, points: &[Point], indexes: &HashMap<Entity, u32>) {
        if self.published.is_none() {
            return;
        }
        let mut merged: Vec<Point> = Vec::with_capacity(points.len());
        for point in points {
            if point.metric.starts_with("go_") && point.entity.kind() == "process" {
                let values = self.go_values.entry(point.entity.clone()).or_default();
                match values.iter_mut().find(|(m, _)| *m == point.metric) {
                    Some(slot) => slot.1 = point.value,
                    None => values.push((point.metric, point.value)),
                }
            } else {
                merged.push(point.clone());
            }
        }
        self.go_values.retain(|entity, _| {
            snapshot.processes.iter().any(|p| {
                *entity
                    == Entity::Process {
                        pid: p.pid,
                        start_time: p.start_time,
                    }
            })
        });
        for (entity, values) in &self.go_values {
            merged.extend(values.iter().map(|&(metric, value)| Point {
                entity: entity.clone(),
                metric,
                value,
            }));
        }
        self.cycle_number += 1;
        let mut names = HashMap::with_capacity(snapshot.processes.len());
        for p in &snapshot.processes {
            let entity = Entity::Process {
                pid: p.pid,
                start_time: p.start_time,
            };
            // A process on its way out (killed, a zombie) reads back
            // without cgroup or build info: it keeps the ones it had, so
            // its last samples stay in its series (an exec, a new comm,
            // takes the new ones).
            let before = self.known.get(&entity).filter(|k| k.comm == p.comm);
            let own = render::ProcessNames {
                cgroup: p
                    .cgroup
                    .as_ref()
                    .map(|c| c.path.clone())
                    .or_else(|| before.and_then(|k| k.names.cgroup.clone())),
                go_version: p
                    .go
                    .as_ref()
                    .map(|g| g.version.clone())
                    .or_else(|| before.and_then(|k| k.names.go_version.clone())),
                index: indexes.get(&entity).copied().unwrap_or(0),
            };
            names.insert(entity.clone(), own.clone());
            let known = Known {
                comm: p.comm.clone(),
                names: own,
                seen_in_cycle: self.cycle_number,
            };
            self.known.insert(entity, known);
        }
        let now = self.cycle_number;
        self.known
            .retain(|_, k| now - k.seen_in_cycle <= CGROUP_MEMORY_CYCLES);
        let (kept, dropped) = render::cap(
            render::entities(snapshot, &merged, &names, &self.series),
            self.max_series,
        );
        self.entities = kept;
        self.health.series = render::kept_after_relabel(&self.entities, &self.series.relabel);
        self.health.series_dropped_total += dropped;
    }

    /// Ends a cycle: publishes the exposition with the agent's health.
    pub fn finish_cycle(&mut self, cycle_seconds: f64, store_size_bytes: u64) {
        let Some(published) = &self.published else {
            return;
        };
        self.health.cycles_total += 1;
        self.health.last_cycle_seconds = cycle_seconds;
        self.health.last_cycle_unix_seconds = crate::unix_ms() as f64 / 1000.0;
        self.health.store_size_bytes = store_size_bytes;
        published.publish(render::render(
            &self.entities,
            &self.health,
            &self.series.relabel,
        ));
    }
}

/// The bearer token in `path` (one word), if a file is given.
pub fn read_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read bearer_token_file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail!(
            "bearer_token_file {}: expected one token (no spaces), found {}",
            path.display(),
            if token.is_empty() {
                "nothing"
            } else {
                "spaces"
            }
        );
    }
    Ok(Some(token))
}

/// The address of `--listen`: `PORT` alone is `127.0.0.1:PORT`; otherwise
/// `HOST:PORT` (a name must resolve to one address).
pub fn listen_addr(listen: &str) -> Result<SocketAddr, String> {
    let listen = listen.trim();
    if let Ok(port) = listen.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let mut addrs = listen.to_socket_addrs().map_err(|err| {
        format!("listen {listen:?}: expected PORT or HOST:PORT (like 127.0.0.1:9464): {err}")
    })?;
    let first = addrs
        .next()
        .ok_or_else(|| format!("listen {listen:?}: resolves to no address"))?;
    // A name that also resolves elsewhere (say localhost to ::1 and
    // 127.0.0.1) is fine as long as the choice does not widen exposure.
    if addrs.any(|a| a.ip().is_loopback() != first.ip().is_loopback()) {
        return Err(format!(
            "listen {listen:?}: resolves to loopback and non-loopback addresses; give an IP"
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of `processes` alone (also for the render tests).
    pub(crate) fn snapshot(processes: Vec<memlens_model::ProcessSample>) -> Snapshot {
        Snapshot {
            taken_at_unix_ms: 0,
            host: Default::default(),
            processes,
            emptied_cgroups: Vec::new(),
            mysql: Vec::new(),
        }
    }

    #[test]
    fn a_kill_is_counted_with_its_victim_and_the_cgroup_it_was_in() {
        let mut exporter = Exporter::start(&ExporterConfig {
            max_series: 10_000,
            ..ExporterConfig::default()
        })
        .unwrap();
        exporter.published = Some(Published::default());
        let victim = memlens_model::ProcessSample {
            pid: 42,
            start_time: 7,
            comm: "leaky".to_string(),
            cgroup: Some(memlens_model::CgroupSample {
                path: "/svc".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        exporter.cycle(&snapshot(vec![victim]), &[], &HashMap::new());
        // The kill is found two cycles after the victim vanished.
        exporter.cycle(&snapshot(Vec::new()), &[], &HashMap::new());
        exporter.cycle(&snapshot(Vec::new()), &[], &HashMap::new());
        let target = Entity::Process {
            pid: 42,
            start_time: 7,
        };
        let kill = |target: Entity| {
            memlens_analyze::Finding::fired(
                memlens_analyze::OOM_KILL,
                memlens_analyze::Severity::Critical,
                target,
                Vec::new(),
                String::new(),
                0,
            )
        };
        let name = |_: &Entity| Some("leaky".to_string());
        exporter.findings(&[], &[kill(target.clone())], name);
        exporter.findings(&[], &[kill(target), kill(Entity::Host)], name);
        let text = render::render(&[], &exporter.health, &Default::default());
        let victim = "memlens_oom_kills_observed_total{target=\"process:leaky@/svc\",comm=\"leaky\",cgroup=\"/svc\"} 2\n";
        assert!(text.contains(victim), "{text}");
        assert!(
            text.contains("memlens_oom_kills_observed_total{target=\"host\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_dying_process_keeps_the_cgroup_and_go_version_of_its_series() {
        let mut exporter = Exporter::start(&ExporterConfig {
            max_series: 10_000,
            ..ExporterConfig::default()
        })
        .unwrap();
        exporter.published = Some(Published::default());
        let alive = memlens_model::ProcessSample {
            pid: 42,
            start_time: 7,
            comm: "api".to_string(),
            rss_bytes: Some(4096),
            cgroup: Some(memlens_model::CgroupSample {
                path: "/svc".to_string(),
                ..Default::default()
            }),
            go: Some(memlens_model::GoInfo {
                version: "go1.27.3".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        // The zombie reads back without cgroup and build info.
        let dying = memlens_model::ProcessSample {
            cgroup: None,
            go: None,
            ..alive.clone()
        };
        let mut labels = Vec::new();
        for p in [alive, dying] {
            let snap = snapshot(vec![p]);
            let points = memlens_model::series::snapshot_points(&snap);
            exporter.cycle(&snap, &points, &HashMap::new());
            let process = exporter
                .entities
                .iter()
                .find(|e| e.entity.kind() == "process")
                .unwrap();
            labels.push(process.labels.clone());
        }
        assert_eq!(labels[0], labels[1]);
        assert!(
            labels[1].contains(&("cgroup", "/svc".to_string())),
            "{labels:?}"
        );
        assert!(labels[1].contains(&("go_version", "go1.27.3".to_string())));
    }

    #[test]
    fn a_bare_port_is_loopback() {
        assert_eq!(listen_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert!(listen_addr("[::1]:9").unwrap().ip().is_loopback());
        assert!(!listen_addr("0.0.0.0:9").unwrap().ip().is_loopback());
        let err = listen_addr("nonsense").unwrap_err();
        assert!(err.contains("HOST:PORT"), "{err}");
    }
}
