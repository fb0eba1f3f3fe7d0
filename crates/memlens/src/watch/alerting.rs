//! Built-in alerting in the agent (`[alerting]`, docs/alerts.md): each
//! cycle the active findings and the cycle's kills become conditions of the
//! catalogue's alerts the agent raises itself (memlens names; which ones:
//! `memlens_alert::live::builtin`), with their evidence, the profiles the
//! history keeps of their target and, with `--listen`, the dashboard page of
//! the target; kills counted by cgroup raise MemoryOOMKilledRepeatedly. The
//! alert crate's
//! states turn them into changes, which go to the webhook (each change) and
//! Alertmanager (each change, and every firing alert again every
//! `resend_interval`). The notifiers' threads do the network; the cycle
//! only queues.

use super::alerting_config::{AlertingConfig, SENDER_LABEL};
use super::findings::{is_of, linked_profiles, LiveFindings};
use super::WatchConfig;
use crate::duration::millis_i64;
use crate::show::findings::finding_summary;
use memlens_alert::catalogue::Alert as Rule;
use memlens_alert::live::builtin::{self, RepeatedKills, REPEATED_KILLS};
use memlens_alert::live::http::HttpUrl;
use memlens_alert::live::notify::{Notifier, NotifierConfig};
use memlens_alert::live::payload;
use memlens_alert::live::state::{Alerts, Change, Condition, Labels, ProfileLink, Quantity};
use memlens_analyze::{Finding, OOM_KILL};
use memlens_export::exporter::NotifierTotals;
use memlens_model::series::Entity;
use memlens_model::Snapshot;
use memlens_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long the profiles found for a target are reused.
const PROFILES_REFRESH_MS: i64 = 60_000;

/// The agent's alerting.
pub struct Alerting {
    alerts: Alerts,
    rules: Vec<Rule>,
    for_seconds: BTreeMap<String, f64>,
    config: AlertingConfig,
    alertmanager: Option<Notifier>,
    webhook: Option<Notifier>,
    last_resend_ms: i64,
    profiles: HashMap<String, (i64, Vec<ProfileLink>)>,
    thresholds: memlens_alert::Thresholds,
    kills: RepeatedKills,
    /// Store ids of targets, for the dashboard's URLs.
    entity_ids: HashMap<String, i64>,
    /// `http://HOST:PORT` of the agent's dashboard, when it serves one.
    dashboard: Option<String>,
}

impl Alerting {
    /// Starts the notifiers when a URL is set (`None` otherwise);
    /// `dashboard` is where the agent serves its dashboard, if it does.
    pub fn start(
        config: &WatchConfig,
        dashboard: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Option<Alerting>> {
        let a = &config.alerting;
        if !a.enabled() {
            return Ok(None);
        }
        let catalogue = memlens_alert::catalogue(memlens_alert::Naming::Memlens, &config.alerts.0);
        let for_seconds = a.for_seconds(&catalogue)?;
        let notifier = |name: &str, url: &str, path: &str| -> anyhow::Result<Notifier> {
            let url = format!("{}{path}", url.trim_end_matches('/'));
            let notifier = Notifier::start(NotifierConfig {
                name: name.to_string(),
                url: HttpUrl::parse(&url).map_err(anyhow::Error::msg)?,
                timeout: a.timeout,
                min_backoff: Duration::from_millis(500).min(a.max_backoff),
                max_backoff: a.max_backoff,
                capacity: a.queue_capacity,
            })?;
            Ok(notifier)
        };
        let alertmanager = match &a.alertmanager_url {
            Some(url) => Some(notifier("alertmanager", url, "/api/v2/alerts")?),
            None => None,
        };
        let webhook = match &a.webhook_url {
            Some(url) => Some(notifier("webhook", url, "")?),
            None => None,
        };
        let rules = catalogue
            .alerts
            .into_iter()
            .filter(builtin::is_builtin)
            .collect();
        Ok(Some(Alerting {
            alerts: Alerts::new(memlens_alert::inhibit::rules()),
            rules,
            for_seconds,
            config: a.clone(),
            alertmanager,
            webhook,
            last_resend_ms: i64::MIN,
            profiles: HashMap::new(),
            thresholds: config.alerts.0.clone(),
            kills: RepeatedKills::default(),
            entity_ids: HashMap::new(),
            dashboard: dashboard.map(|addr| format!("http://{addr}")),
        }))
    }

    /// The rule a finding raises: of its id's rules whose own condition
    /// the finding meets (`builtin::holds`), the one of the finding's
    /// severity, else the most severe below it, else the first.
    fn rule_of(&self, f: &Finding) -> Option<&Rule> {
        let rank = |s: &str| match s {
            "critical" => 2,
            "warning" => 1,
            _ => 0,
        };
        let finding = rank(f.severity.as_str());
        let holding: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| builtin::finding_of(r) == Some(f.id))
            .filter(|r| builtin::holds(r, |name| f.evidence(name), &self.thresholds))
            .collect();
        holding
            .iter()
            .filter(|r| rank(r.severity.as_str()) <= finding)
            .max_by_key(|r| rank(r.severity.as_str()))
            .or(holding.first())
            .copied()
    }

    /// The labels every alert of `name` on `target` carries.
    fn labels(&self, rule: &Rule, target: &Entity, live: &LiveFindings) -> Labels {
        let mut labels: Labels = self.config.labels.clone();
        for (k, v) in [
            ("alertname", rule.spec.name.to_string()),
            ("severity", rule.severity.as_str().to_string()),
            ("target", target.key()),
            (SENDER_LABEL.0, SENDER_LABEL.1.to_string()),
        ] {
            labels.insert(k.to_string(), v);
        }
        if let Entity::Process { pid, .. } = target {
            labels.insert("pid".into(), pid.to_string());
            if let Some(comm) = live.name(target) {
                labels.insert("comm".into(), comm.to_string());
            }
        }
        if let Some(cgroup) = live.cgroup(target) {
            labels.insert("cgroup".into(), cgroup.to_string());
        }
        labels
    }

    /// The `for` of `rule`, in ms.
    fn for_ms(&self, rule: &Rule) -> i64 {
        let seconds = self
            .for_seconds
            .get(rule.spec.name)
            .copied()
            .unwrap_or(rule.for_seconds);
        (seconds * 1000.0) as i64
    }

    /// The dashboard page of `target` at `at_ms` (`/process?id=N`, the
    /// host's overview for the host), when the agent serves the dashboard
    /// and the history knows the target.
    fn dashboard_url(&mut self, target: &Entity, at_ms: i64, store: &Store) -> Option<String> {
        let base = self.dashboard.as_ref()?;
        if *target == Entity::Host {
            return Some(format!("{base}/?at={at_ms}"));
        }
        let key = target.key();
        let id = match self.entity_ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = store.entity_id(target).ok().flatten()?;
                self.entity_ids.insert(key, id);
                id
            }
        };
        Some(format!("{base}/process?id={id}&at={at_ms}"))
    }

    /// MemoryOOMKilledRepeatedly of each cgroup with as many kills in the
    /// window as the catalogue's rule counts (`[alerts]`
    /// `repeated_oom_kills` within `repeated_oom_window`).
    fn repeated_kills(
        &mut self,
        now_ms: i64,
        live: &LiveFindings,
        events: &[Finding],
        store: &Store,
    ) -> Vec<Condition> {
        for f in events.iter().filter(|f| f.id == OOM_KILL) {
            if let Some(cgroup) = live.cgroup(&f.target) {
                self.kills.note(cgroup, f.fired_at_ms);
            }
        }
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.spec.name == REPEATED_KILLS)
            .cloned()
        else {
            return Vec::new();
        };
        let t = self.thresholds.clone();
        let window_ms = (t.repeated_oom_window * 1000.0) as i64;
        let over = self
            .kills
            .over(now_ms, window_ms, t.repeated_oom_kills.max(1.0) as usize);
        let mut conditions = Vec::new();
        for r in over {
            {
                let target = Entity::Cgroup {
                    path: r.cgroup.clone(),
                };
                let labels = self.labels(&rule, &target, live);
                let summary = format!(
                    "{}: {} OOM kills within {:.0} s",
                    target.key(),
                    r.kills,
                    t.repeated_oom_window
                );
                let quantity = |name: &str, value: f64, unit: &str| Quantity {
                    name: name.to_string(),
                    value,
                    unit: unit.to_string(),
                };
                let dashboard_url = self.dashboard_url(&target, r.last_ms, store);
                let condition = Condition {
                    labels,
                    annotations: BTreeMap::from([
                        ("summary".to_string(), summary),
                        ("description".to_string(), rule.spec.meaning.to_string()),
                        ("runbook".to_string(), rule.spec.runbook.to_string()),
                    ]),
                    evidence: vec![
                        quantity("oom_kills", r.kills as f64, "count"),
                        quantity("window_seconds", t.repeated_oom_window, "seconds"),
                        quantity("first_kill_at_ms", r.first_ms as f64, "ms"),
                        quantity("last_kill_at_ms", r.last_ms as f64, "ms"),
                    ],
                    profiles: Vec::new(),
                    dashboard_url,
                    for_ms: self.for_ms(&rule),
                    hold_ms: millis_i64(self.config.hold),
                    outlasts_inhibited: false,
                };
                conditions.push(condition);
            }
        }
        conditions
    }

    /// One cycle at `now_ms`: the active findings and this cycle's events.
    pub fn cycle(
        &mut self,
        now_ms: i64,
        live: &LiveFindings,
        events: &[Finding],
        snapshot: &Snapshot,
        store: &Store,
    ) {
        let kills = events.iter().filter(|f| f.id == OOM_KILL);
        let findings: Vec<Finding> = live.active().into_iter().chain(kills.cloned()).collect();
        let mut conditions = self.repeated_kills(now_ms, live, events, store);
        for f in &findings {
            let Some(rule) = self.rule_of(f).cloned() else {
                continue;
            };
            let comm = live.name(&f.target);
            let labels = self.labels(&rule, &f.target, live);
            let annotations = BTreeMap::from([
                (
                    "summary".to_string(),
                    finding_summary(f.fired_at_ms, "FIRED", f, comm),
                ),
                ("description".to_string(), rule.spec.meaning.to_string()),
                ("runbook".to_string(), rule.spec.runbook.to_string()),
                ("recommendation".to_string(), f.recommendation.clone()),
            ]);
            let evidence = f
                .evidence
                .iter()
                .map(|e| Quantity {
                    name: e.name.to_string(),
                    value: e.value,
                    unit: e.unit.to_string(),
                })
                .collect();
            let fresh = f.id == OOM_KILL && f.fired_at_ms == now_ms;
            let profiles = self.profiles_of(&f.target, now_ms, fresh, snapshot, store);
            let dashboard_url = self.dashboard_url(&f.target, f.fired_at_ms, store);
            conditions.push(Condition {
                labels,
                annotations,
                evidence,
                profiles,
                dashboard_url,
                for_ms: self.for_ms(&rule),
                hold_ms: millis_i64(self.config.hold),
                outlasts_inhibited: f.id == OOM_KILL,
            });
        }
        let targets: Vec<String> = findings.iter().map(|f| f.target.key()).collect();
        self.profiles.retain(|k, _| targets.contains(k));
        if self.entity_ids.len() > 4 * targets.len() + 256 {
            self.entity_ids.retain(|k, _| targets.contains(k));
        }
        let changes = self.alerts.evaluate(now_ms, conditions);
        if let Some(webhook) = &self.webhook {
            for change in &changes {
                webhook.send(
                    payload::webhook(change, SENDER_LABEL.1)
                        .to_string()
                        .into_bytes(),
                );
            }
        }
        let resend_ms = millis_i64(self.config.resend_interval);
        let due = now_ms.saturating_sub(self.last_resend_ms) >= resend_ms;
        if let Some(am) = self
            .alertmanager
            .as_ref()
            .filter(|_| due || !changes.is_empty())
        {
            // Every firing alert (Alertmanager applies the same inhibition
            // with `memlens alertmanager-config`) and this cycle's resolutions.
            let resolved = changes.iter().filter_map(|c| match c {
                Change::Resolved(a) => Some(a),
                _ => None,
            });
            let firing = self.alerts.all().filter(|a| a.firing());
            let list: Vec<_> = firing.chain(resolved).collect();
            if !list.is_empty() {
                let body = payload::alertmanager(list, now_ms + 4 * resend_ms);
                am.send(body.to_string().into_bytes());
            }
            if due {
                self.last_resend_ms = now_ms;
            }
        }
    }

    /// The latest heap and goroutine profiles of `target` (a process, or
    /// the processes of a cgroup in `snapshot`), looked up again after a
    /// minute or when `fresh` (a kill: what was kept before it).
    fn profiles_of(
        &mut self,
        target: &Entity,
        now_ms: i64,
        fresh: bool,
        snapshot: &Snapshot,
        store: &Store,
    ) -> Vec<ProfileLink> {
        let key = target.key();
        if let Some((at, links)) = self.profiles.get(&key) {
            if !fresh && now_ms - at < PROFILES_REFRESH_MS {
                return links.clone();
            }
        }
        let mut entities = vec![target.clone()];
        if matches!(target, Entity::Cgroup { .. }) {
            entities = snapshot
                .processes
                .iter()
                .filter(|p| p.go.is_some() && is_of(p, target))
                .map(|p| Entity::Process {
                    pid: p.pid,
                    start_time: p.start_time,
                })
                .collect();
        }
        let mut links = Vec::new();
        for entity in entities {
            let Ok(Some(id)) = store.entity_id(&entity) else {
                continue;
            };
            for p in linked_profiles(store, id, now_ms).unwrap_or_default() {
                links.push(ProfileLink {
                    id: p.id,
                    kind: p.kind,
                    ts_ms: p.ts_ms,
                });
            }
        }
        self.profiles.insert(key, (now_ms, links.clone()));
        links
    }

    /// The notifiers' totals.
    pub fn totals(&self) -> Vec<NotifierTotals> {
        let named = [
            ("alertmanager", &self.alertmanager),
            ("webhook", &self.webhook),
        ];
        named
            .into_iter()
            .filter_map(|(name, n)| n.as_ref().map(|n| (name, n.counters())))
            .map(|(notifier, c)| {
                let get =
                    |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                NotifierTotals {
                    notifier,
                    enqueued: get(&c.enqueued),
                    sent: get(&c.sent),
                    retries: get(&c.retries),
                    dropped: get(&c.dropped),
                    rejected: get(&c.rejected),
                    queued: get(&c.queued),
                }
            })
            .collect()
    }

    /// Alerts by state: (pending, firing, of them inhibited).
    pub fn counts(&self) -> (usize, usize, usize) {
        let all: Vec<_> = self.alerts.all().collect();
        let firing = all.iter().filter(|a| a.firing()).count();
        let inhibited = all
            .iter()
            .filter(|a| a.firing() && !a.inhibited_by.is_empty())
            .count();
        (all.len() - firing, firing, inhibited)
    }
}
