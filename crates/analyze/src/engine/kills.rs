//! OOM kills that already happened ([`OOM_KILL`]), told from two sources:
//!
//! - the counters: a cgroup's `oom_kill_count` (v1 `memory.oom_control`, v2
//!   `memory.events`) or the host's `oom_kills` (`/proc/vmstat`) moving up;
//!   the victim is the process of that cgroup (or below it) that vanished
//!   then, the largest if several did (the kernel kills the largest);
//! - the kernel log ([`Engine::note_kernel_kill`]): names the pid, so the
//!   victim is certain.
//!
//! A kill is an event: its finding fires and clears at the same instant.
//! Both sources of one kill give one finding (the log's pid wins), and a
//! victim is reported once. Kills the log names in processes and cgroups
//! the engine has never seen (not watched) give no finding, but they do
//! explain the counters' moves. While the log is read
//! ([`Engine::read_kernel_log`]), a counter's move waits for it for three
//! intervals before the victim is guessed, and a host-wide move is never
//! pinned on a vanished process.

use super::{Engine, EntityState};
use crate::finding::{Evidence, Finding, Layer, Severity, OOM_KILL};
use memlens_model::series::Entity;

/// An OOM kill read from the kernel log, in the engine's terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KernelKill {
    /// The killed process.
    pub pid: i32,
    /// Its name, when logged.
    pub comm: Option<String>,
    /// The cgroup whose limit was hit (`oom_memcg`), when logged.
    pub oom_cgroup: Option<String>,
    /// The victim's own cgroup (`task_memcg`), when logged.
    pub task_cgroup: Option<String>,
    /// Anonymous + file + shmem resident bytes at the kill, when logged.
    pub rss_at_kill_bytes: Option<f64>,
}

/// A kill seen on a counter, waiting for its victim to vanish.
#[derive(Debug, Clone)]
pub(super) struct PendingKill {
    /// The cgroup (or the host) whose counter moved.
    scope: Entity,
    /// When it moved.
    detected_ms: i64,
    /// The counter's value then.
    counter: f64,
    /// By how much it moved.
    kills: f64,
    /// When to give up looking for a victim.
    deadline_ms: i64,
}

/// Counter kills wait this many of the scope's own intervals for the victim
/// to vanish (it may still be exiting when the counter is read).
const VICTIM_WAIT_INTERVALS: i64 = 3;

/// A kill read from the log before its counter moved explains a move of
/// that counter within this long (measured: the counter a cycle, 2 s, after
/// the log on a loaded host).
const LOG_JOIN_WINDOW_MS: i64 = 15_000;

impl Engine {
    /// Says that the kernel log is read and every kill in it will be handed
    /// over with [`Engine::note_kernel_kill`].
    pub fn read_kernel_log(&mut self, reading: bool) {
        self.kernel_log = reading;
    }

    /// Tells the engine about a kill read from the kernel log. It is joined
    /// to the counters' view at the next [`Engine::observe`].
    pub fn note_kernel_kill(&mut self, kill: KernelKill) {
        self.kernel_kills.push(kill);
    }

    /// Called by `observe` for the counters, with the value before this point.
    pub(super) fn counter_moved(
        &mut self,
        ts_ms: i64,
        entity: &Entity,
        previous: Option<f64>,
        value: f64,
        gap_ms: i64,
    ) {
        let Some(previous) = previous else { return };
        if value <= previous {
            return;
        }
        self.pending_kills.push(PendingKill {
            scope: entity.clone(),
            detected_ms: ts_ms,
            counter: value,
            kills: value - previous,
            deadline_ms: ts_ms + VICTIM_WAIT_INTERVALS * gap_ms.max(1000),
        });
    }

    /// Resolves pending kills into findings (after this instant's points).
    pub(super) fn resolve_kills(&mut self, ts_ms: i64, out: &mut Vec<Finding>) {
        // A host counter also counts every cgroup kill: keep only the host
        // kills no cgroup kill of the same instant explains.
        let cgroup_kills: f64 = self
            .pending_kills
            .iter()
            .filter(|k| k.detected_ms == ts_ms && matches!(k.scope, Entity::Cgroup { .. }))
            .map(|k| k.kills)
            .sum();
        self.pending_kills.retain_mut(|k| {
            if k.detected_ms == ts_ms && k.scope == Entity::Host {
                k.kills -= cgroup_kills;
            }
            k.kills > 0.0
        });
        for kill in std::mem::take(&mut self.kernel_kills) {
            let victim = self.process_by_pid(kill.pid);
            let cgroup = kill.oom_cgroup.clone().or_else(|| {
                victim
                    .as_ref()
                    .and_then(|v| self.process_cgroups.get(v).cloned())
            });
            // The counter kill this log line explains, if any: its
            // cgroup's first, else the host's.
            let of_cgroup = |p: &PendingKill| match &p.scope {
                Entity::Cgroup { path } => cgroup
                    .as_deref()
                    .is_some_and(|c| c == path || is_below(kill.task_cgroup.as_deref(), path)),
                _ => false,
            };
            let counter = self.pending_kills.iter().position(of_cgroup).or_else(|| {
                self.pending_kills
                    .iter()
                    .position(|p| p.scope == Entity::Host)
            });
            let pending = counter.map(|i| self.pending_kills.remove(i));
            let watched_cgroup = cgroup.as_ref().is_some_and(|path| {
                self.entities
                    .contains_key(&Entity::Cgroup { path: path.clone() })
            });
            if !matches!(
                pending.as_ref().map(|p| &p.scope),
                Some(Entity::Cgroup { .. })
            ) {
                // Its counter may move at a later instant (read a cycle
                // after the log): that move is this kill, not another,
                // also when the kill is in a cgroup nobody watches.
                self.log_only_kills.push((cgroup.clone(), ts_ms));
            }
            let reported = victim.as_ref().is_some_and(|v| self.killed.contains(v));
            if reported || (victim.is_none() && !watched_cgroup) {
                continue;
            }
            if let Some(v) = &victim {
                self.killed.insert(v.clone());
            }
            let target = victim.clone().unwrap_or_else(|| match &cgroup {
                Some(path) => Entity::Cgroup { path: path.clone() },
                None => Entity::Host,
            });
            let mut evidence = vec![Evidence::new("pid", kill.pid as f64, "", Layer::Kernel)];
            if let Some(rss) = kill.rss_at_kill_bytes {
                evidence.push(Evidence::new(
                    "rss_at_kill_bytes",
                    rss,
                    "bytes",
                    Layer::Kernel,
                ));
            }
            let detected_ms = pending.as_ref().map_or(ts_ms, |p| p.detected_ms);
            out.push(self.kill_finding(
                detected_ms,
                target,
                victim.as_ref(),
                cgroup.as_deref(),
                pending.as_ref(),
                evidence,
                kill.comm.as_deref(),
            ));
        }
        // Log kills whose counter had not moved yet explain the counters'
        // moves of the next few seconds.
        self.log_only_kills
            .retain(|(_, at)| ts_ms - at <= LOG_JOIN_WINDOW_MS);
        let mut pending = std::mem::take(&mut self.pending_kills);
        for kill in pending.iter_mut() {
            while kill.kills > 0.0 {
                let explained =
                    self.log_only_kills
                        .iter()
                        .position(|(cgroup, _)| match &kill.scope {
                            Entity::Cgroup { path } => cgroup
                                .as_deref()
                                .is_some_and(|c| c == path || is_below(Some(c), path)),
                            _ => true,
                        });
                let Some(i) = explained else { break };
                self.log_only_kills.remove(i);
                kill.kills -= 1.0;
            }
        }
        pending.retain(|k| k.kills > 0.0);
        for kill in pending {
            let waiting = ts_ms < kill.deadline_ms;
            // With the log read, the log names the victim: guess only
            // once it had its time, and never for the whole host.
            let guess = !self.kernel_log || (!waiting && kill.scope != Entity::Host);
            let victim = if guess {
                self.vanished_victim(&kill, ts_ms)
            } else {
                None
            };
            if victim.is_none() && waiting {
                self.pending_kills.push(kill);
                continue;
            }
            if let Some(v) = &victim {
                self.killed.insert(v.clone());
            }
            let cgroup = match &kill.scope {
                Entity::Cgroup { path } => Some(path.clone()),
                _ => None,
            };
            let target = victim.clone().unwrap_or_else(|| kill.scope.clone());
            out.push(self.kill_finding(
                kill.detected_ms,
                target,
                victim.as_ref(),
                cgroup.as_deref(),
                Some(&kill),
                Vec::new(),
                None,
            ));
        }
    }

    /// The process incarnation with `pid` seen last.
    fn process_by_pid(&self, pid: i32) -> Option<Entity> {
        self.entities
            .iter()
            .filter(|(e, _)| matches!(e, Entity::Process { pid: p, .. } if *p == pid))
            .max_by_key(|(_, s)| s.last_seen_ms)
            .map(|(e, _)| e.clone())
    }

    /// The largest process of the kill's scope that was seen before the
    /// kill and is gone now.
    fn vanished_victim(&self, kill: &PendingKill, ts_ms: i64) -> Option<Entity> {
        let in_scope = |entity: &Entity| match &kill.scope {
            Entity::Cgroup { path } => self
                .process_cgroups
                .get(entity)
                .is_some_and(|c| c == path || is_below(Some(c), path)),
            _ => true,
        };
        self.entities
            .iter()
            .filter(|(e, s)| {
                matches!(e, Entity::Process { .. })
                    && !self.killed.contains(*e)
                    && s.last_seen_ms < ts_ms
                    && s.last_seen_ms + VICTIM_WAIT_INTERVALS * s.typical_gap_ms.max(1000)
                        >= kill.detected_ms
                    && in_scope(e)
            })
            .max_by(|a, b| rss(a.1).total_cmp(&rss(b.1)))
            .map(|(e, _)| e.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn kill_finding(
        &self,
        ts_ms: i64,
        target: Entity,
        victim: Option<&Entity>,
        cgroup: Option<&str>,
        counter: Option<&PendingKill>,
        mut evidence: Vec<Evidence>,
        comm: Option<&str>,
    ) -> Finding {
        if let Some(state) = victim.and_then(|v| self.entities.get(v)) {
            evidence.push(Evidence::new(
                "last_sample_at_ms",
                state.last_seen_ms as f64,
                "ms",
                Layer::Process,
            ));
            for (metric, name, layer) in [
                ("rss_bytes", "last_rss_bytes", Layer::Process),
                (
                    "go_heap_inuse_bytes",
                    "last_go_heap_inuse_bytes",
                    Layer::GoRuntime,
                ),
            ] {
                if let Some(v) = state.latest.get(metric) {
                    evidence.push(Evidence::new(name, *v, "bytes", layer));
                }
            }
        }
        let cgroup_state = cgroup.and_then(|path| {
            self.entities.get(&Entity::Cgroup {
                path: path.to_string(),
            })
        });
        if let Some(state) = cgroup_state {
            for (metric, name) in [
                ("usage_bytes", "cgroup_usage_bytes"),
                ("effective_limit_bytes", "cgroup_limit_bytes"),
            ] {
                if let Some(v) = state.latest.get(metric) {
                    evidence.push(Evidence::new(name, *v, "bytes", Layer::Cgroup));
                }
            }
        }
        if let Some(k) = counter {
            let layer = match k.scope {
                Entity::Host => Layer::Kernel,
                _ => Layer::Cgroup,
            };
            evidence.push(Evidence::new("oom_kill_count", k.counter, "", layer));
        }
        let who = match (victim, comm) {
            (Some(Entity::Process { pid, .. }), Some(comm)) => format!("process {pid} ({comm})"),
            (Some(Entity::Process { pid, .. }), None) => format!("process {pid}"),
            _ => "a process".to_string(),
        };
        let scope = cgroup.map_or("the host".to_string(), |c| format!("cgroup {c}"));
        Finding {
            id: OOM_KILL,
            severity: Severity::Critical,
            target,
            evidence,
            recommendation: format!(
                "the kernel OOM-killed {who} in {scope}: read the heap and goroutine \
                 profiles kept before the kill (memlens profiles --pid PID), then fix the \
                 growth or raise the limit"
            ),
            fired_at_ms: ts_ms,
            cleared_at_ms: Some(ts_ms),
        }
    }
}

fn rss(state: &EntityState) -> f64 {
    state.latest.get("rss_bytes").copied().unwrap_or(0.0)
}

/// Whether cgroup `child` is strictly below `parent`.
fn is_below(child: Option<&str>, parent: &str) -> bool {
    let Some(child) = child else { return false };
    let parent = parent.trim_end_matches('/');
    parent.is_empty()
        || child
            .strip_prefix(parent)
            .is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use crate::{Config, Engine, KernelKill, OOM_KILL};
    use memlens_model::series::{Entity, Point};

    #[test]
    fn a_kill_logged_before_its_counter_moves_is_one_kill() {
        let mut engine = Engine::new(Config::default());
        engine.read_kernel_log(true);
        let cgroup = Entity::Cgroup {
            path: "/leak".to_string(),
        };
        let victim = Entity::Process {
            pid: 42,
            start_time: 7,
        };
        engine.set_process_cgroup(&victim, "/leak");
        let point = |e: &Entity, metric, value| Point {
            entity: e.clone(),
            metric,
            value,
        };
        let mut kills = Vec::new();
        for (i, counter) in [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
            .iter()
            .enumerate()
        {
            let ts = i as i64 * 1000;
            let mut points = vec![point(&cgroup, "oom_kill_count", *counter)];
            if i < 2 {
                points.push(point(&victim, "rss_bytes", 6e7));
            }
            if i == 2 {
                // The log line comes a cycle before the counter's move.
                engine.note_kernel_kill(KernelKill {
                    pid: 42,
                    oom_cgroup: Some("/leak".to_string()),
                    ..KernelKill::default()
                });
            }
            kills.extend(
                engine
                    .observe(ts, &points)
                    .into_iter()
                    .filter(|f| f.id == OOM_KILL),
            );
        }
        assert_eq!(kills.len(), 1, "{kills:#?}");
        assert_eq!(kills[0].target, victim);
    }
}
