//! The start of `memlens diagnose`'s window read from the agent's history
//! (`memlens watch`'s store), so that diagnose answers at once instead of
//! waiting: the end is read live ([`super::window::observe_end`]), the start
//! of each selected process is its oldest stored sample within the lookback
//! (`--history`, 900 s):
//!
//! - its process series at that instant → the process at the start (fds,
//!   VMAs, RSS, the cgroup's usage; [`fromstore::process_at_start`]);
//! - its oldest stored `go_*` series instant → the runtime at the start
//!   (GC counters, heap numbers, GOMEMLIMIT / GOGC);
//! - its oldest stored `heap` and `goroutine` profiles → the profiles at the
//!   start. The stored goroutine profile is the protobuf one: counts by
//!   stack, states inferred from the frames, no waits; creation sites are
//!   lent from the live `?debug=2` dump of the end
//!   ([`fromstore::lend_creation_sites`]).
//!
//! A process is matched by pid AND start time. Selected processes without
//! stored samples within the lookback (started since, or not recorded) are
//! judged on the live end alone (no rates or forecasts) and listed; when a
//! process named by `--pid` has none, or none of the selected processes
//! has any, the caller observes a live window instead ([`Outcome::Live`]).

use super::fromstore::{self, Values, GO_METRICS, PROCESS_METRICS};
use super::window::{fill_heap, push_once, ProfileRead, Window};
use anyhow::Context as _;
use memlens_goruntime::goroutine::{analyse_profile, Limits};
use memlens_goruntime::pprof::Profile;
use memlens_linux::fs::Root;
use memlens_model::series::Entity;
use memlens_model::{ProcessSample, Snapshot};
use memlens_store::{EntityId, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the start of the window came from, for the report.
#[derive(Debug, Clone)]
pub struct HistoryInfo {
    /// The store's directory.
    pub dir: PathBuf,
    /// How far back it looked, seconds.
    pub lookback_seconds: f64,
    /// When each selected process's start was stored (ms since the epoch),
    /// by (pid, start time).
    pub starts_ms: HashMap<(i32, u64), i64>,
    /// Selected processes with no stored sample within the lookback (judged
    /// on the live snapshot alone), as (pid, start time).
    pub without_history: Vec<(i32, u64)>,
}

/// What the history gave.
pub enum Outcome {
    /// The window: `first` rebuilt from the store (the selected processes
    /// with history only), `last` and the ends live.
    History(Box<Window>, HistoryInfo),
    /// The history cannot serve this selection (why, one line); the window
    /// that was read live is handed back unused.
    Live(String),
}

/// Opens the store in `dir` read-only (the agent may be writing).
pub fn open(dir: &Path) -> anyhow::Result<Store> {
    Store::open_read_only(dir).with_context(|| format!("history {}", dir.display()))
}

/// The history a command reads: the one `--store` names (`explicit`; a store
/// that cannot be read is an error), else the agent's default data
/// directory, whose absence is normal: `Ok(Err(why))`, and the caller
/// observes live and says why.
pub fn open_chosen(explicit: Option<&Path>) -> anyhow::Result<Result<(Store, PathBuf), String>> {
    let dir = explicit.map_or_else(crate::watch::default_data_dir, Path::to_path_buf);
    match open(&dir) {
        Ok(store) => Ok(Ok((store, dir))),
        Err(e) if explicit.is_some() => Err(e),
        Err(e) => Ok(Err(format!("{e:#}"))),
    }
}

/// The samples of `entity`'s `metric` in `[from_ms, to_ms]`.
fn samples(
    store: &Store,
    entity: EntityId,
    metric: &str,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<Vec<(i64, f64)>> {
    Ok(store.series(entity, metric, from_ms, to_ms)?)
}

/// The values of `metrics` of `entity` stored at exactly `ts_ms`.
fn values_at(
    store: &Store,
    entity: EntityId,
    metrics: &[&str],
    ts_ms: i64,
) -> anyhow::Result<Values> {
    let mut out = Values::new();
    for metric in metrics {
        if let Some((_, v)) = samples(store, entity, metric, ts_ms, ts_ms)?.first() {
            out.insert((*metric).to_string(), *v);
        }
    }
    Ok(out)
}

/// The first instant within `[from_ms, to_ms]` with a sample of any of
/// `markers`.
fn first_ts(
    store: &Store,
    entity: EntityId,
    markers: &[&str],
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<Option<i64>> {
    let mut first: Option<i64> = None;
    for metric in markers {
        if let Some((ts, _)) = samples(store, entity, metric, from_ms, to_ms)?.first() {
            first = Some(first.map_or(*ts, |f: i64| f.min(*ts)));
        }
    }
    Ok(first)
}

/// What to read from the history.
pub struct Request<'a> {
    /// The store's directory (for messages).
    pub dir: &'a Path,
    /// How far back to look, seconds (`--history`).
    pub lookback_seconds: f64,
    /// The processes named by `--pid`.
    pub pids: &'a [i32],
    /// Whether profiles are read (not `--no-profiles`).
    pub profiles: bool,
}

/// Builds the window from `now` (read live by
/// [`super::window::observe_end`]) and the history in `store`: see the
/// module's documentation. An error is a store that could not be read.
pub fn window(
    store: &Store,
    request: &Request,
    root: &Root,
    mut now: Window,
    select: impl Fn(&ProcessSample) -> bool,
) -> anyhow::Result<Outcome> {
    let Request {
        dir,
        lookback_seconds,
        pids,
        profiles,
    } = *request;
    let now_ms = now.last.taken_at_unix_ms as i64;
    let from_ms = now_ms - (lookback_seconds * 1000.0) as i64;
    let mut starts_ms = HashMap::new();
    let mut without_history = Vec::new();
    let mut first = Snapshot {
        taken_at_unix_ms: now.last.taken_at_unix_ms,
        host: now.last.host.clone(),
        processes: Vec::new(),
        ..now.last.clone()
    };
    first.emptied_cgroups.clear();
    let mut entities: HashMap<(i32, u64), EntityId> = HashMap::new();
    for p in now.last.processes.iter().filter(|p| select(p)) {
        let key = (p.pid, p.start_time);
        let entity = store.entity_id(&Entity::Process {
            pid: p.pid,
            start_time: p.start_time,
        })?;
        let start = match entity {
            Some(e) => first_ts(store, e, &["threads"], from_ms, now_ms)?.map(|ts| (e, ts)),
            None => None,
        };
        let Some((entity, ts)) = start else {
            if pids.contains(&p.pid) {
                return Ok(Outcome::Live(format!(
                    "{} holds no sample of process {} (start time {}) within the last {:.0} s",
                    dir.display(),
                    p.pid,
                    p.start_time,
                    lookback_seconds
                )));
            }
            without_history.push(key);
            continue;
        };
        let values = values_at(store, entity, &PROCESS_METRICS, ts)?;
        let usage = match &p.cgroup {
            Some(c) => match store.entity_id(&Entity::Cgroup {
                path: c.path.clone(),
            })? {
                Some(ce) => values_at(store, ce, &["usage_bytes"], ts)?
                    .get("usage_bytes")
                    .copied(),
                None => None,
            },
            None => None,
        };
        first
            .processes
            .push(fromstore::process_at_start(p, &values, usage));
        starts_ms.insert(key, ts);
        entities.insert(key, entity);
    }
    if starts_ms.is_empty() {
        return Ok(Outcome::Live(format!(
            "{} holds no sample of the selected processes within the last {:.0} s",
            dir.display(),
            lookback_seconds
        )));
    }
    // Go runtime numbers and profiles at the start; times as absolute
    // seconds first, made relative to the window's start below.
    let mut window_start_ms = *starts_ms.values().min().unwrap_or(&now_ms);
    let mut go_ts: HashMap<(i32, u64), i64> = HashMap::new();
    let mut profile_ts: HashMap<(i32, u64), i64> = HashMap::new();
    for g in &mut now.go {
        let Some(&entity) = entities.get(&(g.pid, g.start_time)) else {
            continue;
        };
        match first_ts(
            store,
            entity,
            &["go_gc_cycles_total", "go_heap_inuse_bytes"],
            from_ms,
            now_ms,
        )? {
            Some(ts) => {
                let values = values_at(store, entity, &GO_METRICS, ts)?;
                g.start = fromstore::go_read_at_start(&values, 0.0);
                go_ts.insert((g.pid, g.start_time), ts);
                window_start_ms = window_start_ms.min(ts);
            }
            None => push_once(
                &mut g.notes,
                format!(
                    "no Go runtime numbers of process {} in the history within the last {:.0} s",
                    g.pid, lookback_seconds
                ),
            ),
        }
        if profiles {
            if let Some((read, ts)) = stored_profiles(store, root, g, entity, from_ms)? {
                g.profiles_start = Some(read);
                profile_ts.insert((g.pid, g.start_time), ts);
                window_start_ms = window_start_ms.min(ts);
            } else {
                push_once(
                    &mut g.notes,
                    format!(
                        "no heap or goroutine profile of process {} in the history within the last {:.0} s",
                        g.pid, lookback_seconds
                    ),
                );
            }
        }
    }
    // Relative times: the live ends were read `at_seconds` after the live
    // snapshot; the starts when they were stored.
    let shift = (now_ms - window_start_ms) as f64 / 1000.0;
    let since_start = |ts: i64| (ts - window_start_ms) as f64 / 1000.0;
    for g in &mut now.go {
        if let Some(end) = &mut g.end {
            end.at_seconds += shift;
        }
        if let Some(end) = &mut g.profiles_end {
            end.at_seconds += shift;
        }
        if let (Some(start), Some(ts)) = (&mut g.start, go_ts.get(&(g.pid, g.start_time))) {
            start.at_seconds = since_start(*ts);
        }
        if let (Some(start), Some(ts)) = (
            &mut g.profiles_start,
            profile_ts.get(&(g.pid, g.start_time)),
        ) {
            start.at_seconds = since_start(*ts);
        }
        // The stored goroutine profile has no creation sites: lend the end's.
        let end = g.profiles_end.as_ref().and_then(|p| p.goroutines.as_ref());
        if let (Some(start), Some(end)) = (
            g.profiles_start
                .as_mut()
                .and_then(|p| p.goroutines.as_mut()),
            end,
        ) {
            fromstore::lend_creation_sites(start, end);
        }
    }
    first.taken_at_unix_ms = window_start_ms.max(0) as u64;
    let window = Window {
        first,
        last: now.last,
        go: now.go,
    };
    Ok(Outcome::History(
        Box::new(window),
        HistoryInfo {
            dir: dir.to_path_buf(),
            lookback_seconds,
            starts_ms,
            without_history,
        },
    ))
}

/// The oldest stored heap and goroutine profiles of `entity` from
/// `from_ms` on, decoded as the live ones are; with the instant of the
/// older one (ms). `None` when neither is stored.
fn stored_profiles(
    store: &Store,
    root: &Root,
    g: &mut super::window::GoWindow,
    entity: EntityId,
    from_ms: i64,
) -> anyhow::Result<Option<(ProfileRead, i64)>> {
    let mut out = ProfileRead::default();
    let mut at_ms: Option<i64> = None;
    for kind in ["heap", "goroutine"] {
        let Some(info) = store
            .profiles(Some(entity), Some(kind))?
            .into_iter()
            .find(|i| i.ts_ms >= from_ms)
        else {
            continue;
        };
        // Deleted by retention since listed: as if never stored.
        let Some(bytes) = store.profile_data(info.id)? else {
            continue;
        };
        let name = format!(
            "{} profile {} of the history ({} ms)",
            kind, info.id, info.ts_ms
        );
        let profile = match Profile::decode(&bytes) {
            Ok(p) => p,
            Err(e) => {
                push_once(&mut g.notes, format!("{name}: {e}"));
                continue;
            }
        };
        if kind == "heap" {
            fill_heap(root, g.pid, &profile, &mut out, &mut g.notes);
        } else {
            match analyse_profile(&profile, Limits::default(), bytes.len() as u64) {
                Ok(analysis) => out.goroutines = Some(analysis),
                Err(e) => {
                    push_once(&mut g.notes, format!("{name}: {e}"));
                    continue;
                }
            }
        }
        out.sources.push(name);
        at_ms = Some(at_ms.map_or(info.ts_ms, |a| a.min(info.ts_ms)));
    }
    Ok(at_ms.map(|ts| (out, ts)))
}
