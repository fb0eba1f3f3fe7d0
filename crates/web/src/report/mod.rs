//! `memlens report`: one self-contained HTML file about one process (or
//! cgroup) over a window: its charts, findings with evidence, flame graphs
//! and goroutine groups, and the last kept heap profile embedded so it can be
//! extracted for `go tool pprof`.
//!
//! The data are the dashboard API's own answers (the same handlers, called
//! in process), gathered into one JSON document, gzipped and base64-encoded
//! in the page; the browser unpacks them with `DecompressionStream`. Every
//! script and style is inlined and allowed by its SHA-256 in a `<meta>` CSP
//! (no `'unsafe-inline'`, `connect-src 'none'`): the file makes no request.
//!
//! - `encode.rs`: gzip, base64, SHA-256.
//! - `html.rs`: the page around the data, and reading the profile back.

mod encode;
mod html;

pub use encode::{base64, gunzip, gzip, sha256, unbase64};
pub use html::{extract_profile, PROFILE_ELEMENT_ID};

use crate::query::Query;
use crate::{handle, ApiError};
use memlens_store::{EntityId, Store};
use serde_json::{json, Value};

/// The most bytes of the report other than the embedded profile, for an
/// hour of 5 s samples: the budget the issue sets (the inlined chart library
/// and scripts, about 80 KB, are in it).
pub const BUDGET_BYTES: usize = 500 * 1024;

/// Columns per chart series: an hour at 5 s (720 samples) keeps every sample.
const WIDTH: i64 = 1000;

/// A written report.
#[derive(Debug, Clone)]
pub struct Report {
    /// The page.
    pub html: String,
    /// Bytes of the page that are the embedded profile (base64).
    pub profile_bytes: usize,
    /// Bytes of the page that are the gzipped, base64 data.
    pub data_bytes: usize,
}

impl Report {
    /// The page's size less the embedded profile: what [`BUDGET_BYTES`] bounds.
    pub fn budgeted_bytes(&self) -> usize {
        self.html.len() - self.profile_bytes
    }
}

/// The charts of a process (`P`: itself, `C`: its cgroup) as the dashboard
/// draws them: key, title, whether values are bytes, series.
/// One series of a chart: whose (`P` the entity, `C` its cgroup), metric, label.
type SeriesSpec = (char, &'static str, &'static str);
/// A chart: key, title, whether values are bytes, series.
type ChartSpec = (&'static str, &'static str, bool, &'static [SeriesSpec]);

const PROCESS_CHARTS: &[ChartSpec] = &[
    (
        "memory",
        "Memory",
        true,
        &[
            ('P', "rss_bytes", "RSS"),
            ('C', "working_set_bytes", "working set (cgroup)"),
            ('P', "go_heap_inuse_bytes", "Go heap in use"),
            ('P', "go_next_gc_bytes", "heap goal"),
            ('P', "go_gomemlimit_bytes", "GOMEMLIMIT"),
            ('C', "effective_limit_bytes", "cgroup limit"),
        ],
    ),
    (
        "goroutines",
        "Goroutines",
        false,
        &[('P', "go_goroutines", "goroutines")],
    ),
    (
        "gc",
        "GC cycles per second",
        false,
        &[('P', "go_gc_cycles_total", "GC cycles/s")],
    ),
    (
        "faults",
        "Page faults per second",
        false,
        &[
            ('P', "minor_faults", "minor faults/s"),
            ('P', "major_faults", "major faults/s"),
        ],
    ),
];

const CGROUP_CHARTS: &[ChartSpec] = &[(
    "memory",
    "Memory",
    true,
    &[
        ('P', "usage_bytes", "usage"),
        ('P', "working_set_bytes", "working set"),
        ('P', "effective_limit_bytes", "limit"),
    ],
)];

fn api(store: &Store, path: &str, query: &str) -> Result<Value, ApiError> {
    let response = handle(Some(store), path, &Query::parse(query));
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    match response.status {
        200 => Ok(body),
        404 => Err(ApiError::NotFound(
            body["error"].as_str().unwrap_or(path).to_string(),
        )),
        _ => Err(ApiError::BadRequest(
            body["error"].as_str().unwrap_or(path).to_string(),
        )),
    }
}

/// Builds the report of `entity` over `[from_ms, to_ms]`; `title` heads it.
pub fn build(
    store: &Store,
    entity: EntityId,
    from_ms: i64,
    to_ms: i64,
    title: &str,
) -> Result<Report, ApiError> {
    let info = api(
        store,
        "/api/v1/entity",
        &format!("id={entity}&at={to_ms}&window={}", to_ms - from_ms + 1),
    )?;
    let cgroup = info["cgroup_entity"].as_i64();
    let specs = if info["kind"] == "cgroup" {
        CGROUP_CHARTS
    } else {
        PROCESS_CHARTS
    };
    let mut charts = Vec::new();
    for (key, chart_title, bytes, series) in specs {
        let mut labels = Vec::new();
        let mut q = format!("from={from_ms}&to={to_ms}&width={WIDTH}&at={to_ms}");
        for (who, metric, label) in *series {
            let id = if *who == 'P' { Some(entity) } else { cgroup };
            if let Some(id) = id {
                q.push_str(&format!("&s={id}:{metric}"));
                labels.push(*label);
            }
        }
        let data = api(store, "/api/v1/series", &q)?;
        charts.push(json!({"key": key, "title": chart_title, "bytes": bytes, "labels": labels, "data": data}));
    }
    let findings = api(
        store,
        "/api/v1/findings",
        &format!("from={from_ms}&to={to_ms}&at={to_ms}&entity={entity}"),
    )?;
    let profiles = api(
        store,
        "/api/v1/profiles",
        &format!("entity={entity}&at={to_ms}"),
    )?;
    let kept: Vec<&Value> = profiles["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["ts_ms"].as_i64().is_some_and(|t| t >= from_ms))
        .collect();
    let ids = |kind: &str| -> Vec<i64> {
        kept.iter()
            .filter(|p| p["kind"] == kind)
            .filter_map(|p| p["id"].as_i64())
            .collect()
    };
    let (heaps, goroutine_profiles) = (ids("heap"), ids("goroutine"));
    let flame = |q: String| api(store, "/api/v1/flame", &q).ok();
    let heap = heaps.last().and_then(|id| flame(format!("id={id}")));
    let growth = match (heaps.first(), heaps.last()) {
        (Some(a), Some(b)) if a != b => flame(format!("id={b}&base={a}")),
        _ => None,
    };
    let goroutines = goroutine_profiles
        .last()
        .and_then(|id| api(store, "/api/v1/goroutines", &format!("id={id}")).ok());
    let goroutines_over_time = goroutine_profiles.last().and_then(|_| {
        let v = api(
            store,
            "/api/v1/goroutines",
            &format!("entity={entity}&at={to_ms}"),
        )
        .ok()?;
        Some(within_window(v, from_ms))
    });
    let last_heap = match heaps.last() {
        Some(&id) => store.profile_data(id)?.map(|bytes| (id, bytes)),
        None => None,
    };
    let data = json!({
        "title": title, "entity": info, "from": from_ms, "to": to_ms, "charts": charts,
        "findings": findings["findings"], "heap": heap, "growth": growth, "goroutines": goroutines,
        "goroutines_over_time": goroutines_over_time, "profiles": kept,
        "embedded_profile": last_heap.as_ref().map(|(id, _)| id),
    });
    Ok(html::page(
        title,
        &data,
        last_heap.as_ref().map(|(id, b)| (*id, b.as_slice())),
    ))
}

/// The sites over time of `/api/v1/goroutines?entity=` from `from_ms` on
/// (the answer covers every kept profile up to the window's end).
fn within_window(mut v: Value, from_ms: i64) -> Value {
    let t: Vec<i64> = v["t"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    let skip = t.iter().take_while(|&&ts| ts < from_ms).count();
    let tail = |a: &Value| -> Value {
        Value::Array(
            a.as_array()
                .into_iter()
                .flatten()
                .skip(skip)
                .cloned()
                .collect(),
        )
    };
    v["t"] = tail(&v["t"]);
    v["total"] = tail(&v["total"]);
    if let Some(sites) = v["sites"].as_array_mut() {
        for site in sites {
            site["counts"] = tail(&site["counts"]);
        }
    }
    v
}
