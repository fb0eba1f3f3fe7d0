//! The profiles the agent kept, for the dashboard and the report: the list,
//! a flame graph tree of one heap or goroutine profile (or the growth
//! between two), and goroutine groups by creation site.
//!
//! - `flame.rs`: folded stacks to a JSON tree (pure).
//! - `goroutines.rs`: a goroutine profile, or the `?debug=2` dump kept with
//!   it, to its creation sites (pure; the grouping is
//!   `memlens_goruntime::goroutine`'s, shared with `memlens goroutines`).
//!
//! The handlers here only read the store and call those.

mod flame;
mod goroutines;

pub use flame::{diff_tree, flame_tree, FlameNode};
pub use goroutines::{
    analyse_counts, analyse_debug2, goroutine_groups, sites_over_time, MAX_DEBUG2_TEXT_BYTES,
};

use crate::query::Query;
use crate::ApiError;
use memlens_goruntime::pprof::Profile;
use memlens_store::{ProfileInfo, Store, GOROUTINE_DEBUG2_KIND};
use serde_json::{json, Value};

/// `GET /api/v1/profiles?entity=ID[&kind=heap|goroutine|goroutine_debug2|trace-faults][&at=MS]`:
/// the profiles of the entity kept by `at`, oldest first.
pub(crate) fn list(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let entity = query.required_int("entity")?;
    let kind = query.get("kind");
    if let Some(k) = kind {
        if !["heap", "goroutine", GOROUTINE_DEBUG2_KIND, "trace-faults"].contains(&k) {
            return Err(ApiError::BadRequest(format!(
                "kind={k}: expected heap, goroutine, {GOROUTINE_DEBUG2_KIND} or trace-faults"
            )));
        }
    }
    let at = query.int("at")?.unwrap_or(i64::MAX);
    let profiles: Vec<Value> = store
        .profiles(Some(entity), kind)?
        .into_iter()
        .filter(|p| p.ts_ms <= at)
        .map(|p| json!({"id": p.id, "kind": p.kind, "ts_ms": p.ts_ms, "size_bytes": p.size_bytes}))
        .collect();
    Ok(json!({ "entity": entity, "profiles": profiles }))
}

/// A stored profile, decoded; the error names the id.
pub(crate) fn load(store: &Store, id: i64) -> Result<(String, i64, Profile), ApiError> {
    let info = info_of(store, id)?;
    if info.kind == GOROUTINE_DEBUG2_KIND {
        return Err(ApiError::BadRequest(format!(
            "profile {id} is a {GOROUTINE_DEBUG2_KIND} dump (text), not a pprof profile"
        )));
    }
    let bytes = store
        .profile_data(id)?
        .ok_or_else(|| ApiError::NotFound(format!("profile {id} was deleted")))?;
    let profile = Profile::decode_any(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("profile {id} cannot be decoded: {e}")))?;
    Ok((info.kind, info.ts_ms, profile))
}

/// `GET /api/v1/flame?id=P[&base=Q][&sample=NAME]`: the flame graph tree of
/// profile `P`, or with `base` the growth from `Q` to `P`.
pub(crate) fn flame(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let id = query.required_int("id")?;
    let (kind, ts_ms, profile) = load(store, id)?;
    let index = match query.get("sample") {
        Some(name) => profile
            .require_sample_type(name)
            .map_err(|e| ApiError::BadRequest(format!("sample={name}: {e}")))?,
        None => profile.default_sample_index(),
    };
    let (sample, unit) = profile.sample_types()[index].clone();
    let bad = |e: memlens_goruntime::pprof::PprofError| {
        ApiError::BadRequest(format!("profile {id}: {e}"))
    };
    let newer = memlens_goruntime::pprof::folded_stacks(&profile, index).map_err(bad)?;
    let (tree, base_json) = match query.int("base")? {
        None => (flame_tree(&newer), Value::Null),
        Some(base) => {
            let (base_kind, base_ts, older) = load(store, base)?;
            if base_kind != kind {
                return Err(ApiError::BadRequest(format!(
                    "base={base}: a {base_kind} profile, {id} is a {kind} profile"
                )));
            }
            let index = older
                .require_sample_type(&sample)
                .map_err(|e| ApiError::BadRequest(format!("base={base}: {e}")))?;
            let older = memlens_goruntime::pprof::folded_stacks(&older, index).map_err(bad)?;
            (
                diff_tree(&older, &newer),
                json!({"id": base, "ts_ms": base_ts}),
            )
        }
    };
    Ok(json!({
        "id": id, "kind": kind, "ts_ms": ts_ms, "sample": sample, "unit": unit,
        "base": base_json, "tree": tree.to_json(),
    }))
}

/// Goroutine profiles (or dumps) read at most for the sites over time (the latest).
const MAX_PROFILES_OVER_TIME: usize = 60;

/// Bytes of stored (gzipped) `?debug=2` dumps read at most for the sites
/// over time: the latest dumps within this are read.
const MAX_DUMP_BYTES_OVER_TIME: i64 = 32 << 20;

fn info_of(store: &Store, id: i64) -> Result<ProfileInfo, ApiError> {
    store
        .profiles(None, None)?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no profile with id {id}")))
}

/// The `?debug=2` dump kept with goroutine profile `info` (same entity,
/// same timestamp: the agent stores them in the same cycle).
fn paired_dump(store: &Store, info: &ProfileInfo) -> Result<Option<ProfileInfo>, ApiError> {
    Ok(store
        .profiles(Some(info.entity), Some(GOROUTINE_DEBUG2_KIND))?
        .into_iter()
        .find(|d| d.ts_ms == info.ts_ms))
}

/// The groups of a stored `?debug=2` dump; the error names the id.
fn dump_groups(store: &Store, id: i64) -> Result<Value, String> {
    let bytes = store
        .profile_data(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("dump {id} was deleted"))?;
    let analysis = analyse_debug2(&bytes).map_err(|e| format!("dump {id}: {e}"))?;
    Ok(goroutine_groups(&analysis))
}

/// The groups of the protobuf goroutine profile `id`.
fn count_groups(store: &Store, id: i64) -> Result<Value, ApiError> {
    let (_, _, profile) = load(store, id)?;
    let analysis =
        analyse_counts(&profile).map_err(|e| ApiError::BadRequest(format!("profile {id}: {e}")))?;
    Ok(goroutine_groups(&analysis))
}

/// The groups of goroutine profile (or dump) `info`: from its `?debug=2`
/// dump (by creation site) when one was kept and reads whole, else from the
/// profile (by start function), with `fallback` saying why.
fn groups_of(store: &Store, info: &ProfileInfo) -> Result<Value, ApiError> {
    if info.kind == GOROUTINE_DEBUG2_KIND {
        let mut value = dump_groups(store, info.id).map_err(ApiError::BadRequest)?;
        value["dump_id"] = json!(info.id);
        value["fallback"] = Value::Null;
        return Ok(value);
    }
    if info.kind != "goroutine" {
        return Err(ApiError::BadRequest(format!(
            "id={}: a {} profile, not a goroutine profile",
            info.id, info.kind
        )));
    }
    let why = match paired_dump(store, info)? {
        Some(dump) => match dump_groups(store, dump.id) {
            Ok(mut value) => {
                value["dump_id"] = json!(dump.id);
                value["fallback"] = Value::Null;
                return Ok(value);
            }
            Err(err) => err,
        },
        None => "no ?debug=2 dump was kept with this profile".to_string(),
    };
    let mut value = count_groups(store, info.id)?;
    value["dump_id"] = Value::Null;
    value["fallback"] = json!(why);
    Ok(value)
}

/// `GET /api/v1/goroutines?id=P`: goroutine profile `P` (or `?debug=2` dump
/// `P`) grouped by creation site when its dump was kept, else by start
/// function (`grouping` says which, `fallback` why); `?entity=ID[&at=MS]`:
/// the largest sites of the entity's last goroutine profile by `at`,
/// counted in each of its kept profiles of the same grouping (the last 60;
/// of `?debug=2` dumps, at most 32 MiB of them).
pub(crate) fn goroutines(store: &Store, query: &Query) -> Result<Value, ApiError> {
    if let Some(entity) = query.int("entity")? {
        let at = query.int("at")?.unwrap_or(i64::MAX);
        let kept = |kind: &str| -> Result<Vec<ProfileInfo>, ApiError> {
            Ok(store
                .profiles(Some(entity), Some(kind))?
                .into_iter()
                .filter(|p| p.ts_ms <= at)
                .collect())
        };
        let counts = kept("goroutine")?;
        let dumps = kept(GOROUTINE_DEBUG2_KIND)?;
        // The grouping of the last round: by creation site when its dump
        // was kept and reads, and then over the rounds that have a dump.
        let last_dump = match counts.last() {
            Some(last) => dumps.iter().rev().find(|d| d.ts_ms == last.ts_ms),
            None => dumps.last(),
        };
        let mut groups = Vec::new();
        let mut fallback = Value::Null;
        let mut grouping = "start";
        if let Some(last_dump) = last_dump {
            match dump_groups(store, last_dump.id) {
                Ok(last_groups) => {
                    grouping = "created_by";
                    let mut budget = MAX_DUMP_BYTES_OVER_TIME - last_dump.size_bytes;
                    let older = dumps.iter().rev().filter(|d| d.ts_ms < last_dump.ts_ms);
                    for info in older.take(MAX_PROFILES_OVER_TIME - 1) {
                        budget -= info.size_bytes;
                        if budget < 0 {
                            break;
                        }
                        // A dump deleted or unreadable meanwhile is left out.
                        if let Ok(g) = dump_groups(store, info.id) {
                            groups.push((info.ts_ms, g));
                        }
                    }
                    groups.reverse();
                    groups.push((last_dump.ts_ms, last_groups));
                }
                Err(err) => fallback = json!(err),
            }
        } else if !counts.is_empty() {
            fallback = json!("no ?debug=2 dump was kept with the last goroutine profile");
        }
        if grouping == "start" {
            for info in counts.iter().rev().take(MAX_PROFILES_OVER_TIME).rev() {
                groups.push((info.ts_ms, count_groups(store, info.id)?));
            }
        }
        let mut value = sites_over_time(&groups);
        value["entity"] = json!(entity);
        value["grouping"] = json!(grouping);
        value["fallback"] = fallback;
        return Ok(value);
    }
    let id = query.required_int("id")?;
    let info = info_of(store, id)?;
    let mut value = groups_of(store, &info)?;
    value["id"] = json!(id);
    value["ts_ms"] = json!(info.ts_ms);
    Ok(value)
}
