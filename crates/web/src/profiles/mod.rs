//! The profiles the agent kept, for the dashboard and the report: the list,
//! a flame graph tree of one heap or goroutine profile (or the growth
//! between two), and goroutine groups by creation site.
//!
//! - `flame.rs`: folded stacks to a JSON tree (pure).
//! - `goroutines.rs`: a goroutine profile to its creation sites (pure; the
//!   grouping is `memlens_goruntime::goroutine`'s, shared with `memlens
//!   goroutines`).
//!
//! The handlers here only read the store and call those.

mod flame;
mod goroutines;

pub use flame::{diff_tree, flame_tree, FlameNode};
pub use goroutines::{goroutine_groups, sites_over_time};

use crate::query::Query;
use crate::ApiError;
use memlens_goruntime::pprof::Profile;
use memlens_store::Store;
use serde_json::{json, Value};

/// `GET /api/v1/profiles?entity=ID[&kind=heap|goroutine|trace-faults][&at=MS]`: the
/// profiles of the entity kept by `at`, oldest first.
pub(crate) fn list(store: &Store, query: &Query) -> Result<Value, ApiError> {
    let entity = query.required_int("entity")?;
    let kind = query.get("kind");
    if let Some(k) = kind {
        if !["heap", "goroutine", "trace-faults"].contains(&k) {
            return Err(ApiError::BadRequest(format!(
                "kind={k}: expected heap, goroutine or trace-faults"
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
    let info = store
        .profiles(None, None)?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no profile with id {id}")))?;
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

/// Goroutine profiles read at most for the sites over time (the latest).
const MAX_PROFILES_OVER_TIME: usize = 60;

/// `GET /api/v1/goroutines?id=P`: the goroutine profile `P` grouped by
/// creation site; `?entity=ID[&at=MS]`: the largest sites of the entity's
/// last goroutine profile by `at`, counted in each of its kept goroutine
/// profiles (the last 60).
pub(crate) fn goroutines(store: &Store, query: &Query) -> Result<Value, ApiError> {
    if let Some(entity) = query.int("entity")? {
        let at = query.int("at")?.unwrap_or(i64::MAX);
        let kept: Vec<_> = store
            .profiles(Some(entity), Some("goroutine"))?
            .into_iter()
            .filter(|p| p.ts_ms <= at)
            .collect();
        let mut groups = Vec::new();
        for info in kept.iter().rev().take(MAX_PROFILES_OVER_TIME).rev() {
            let (_, _, profile) = load(store, info.id)?;
            let g = goroutine_groups(&profile)
                .map_err(|e| ApiError::BadRequest(format!("profile {}: {e}", info.id)))?;
            groups.push((info.ts_ms, g));
        }
        let mut value = sites_over_time(&groups);
        value["entity"] = json!(entity);
        return Ok(value);
    }
    let id = query.required_int("id")?;
    let (kind, ts_ms, profile) = load(store, id)?;
    if kind != "goroutine" {
        return Err(ApiError::BadRequest(format!(
            "id={id}: a {kind} profile, not a goroutine profile"
        )));
    }
    let mut value = goroutine_groups(&profile)
        .map_err(|e| ApiError::BadRequest(format!("profile {id}: {e}")))?;
    value["id"] = json!(id);
    value["ts_ms"] = json!(ts_ms);
    Ok(value)
}
