//! memlens's web dashboard: a read-only JSON API over the history
//! (`memlens-store`) and the pages that draw it, every asset embedded in the
//! binary.
//!
//! - [`handle`]: one request in, one [`Response`] out, over a read-only
//!   [`Store`]; pure apart from reading the store (no clock: "now" is the
//!   history's last instant).
//! - `api.rs`: `/api/v1/info`, `/api/v1/entities` (ranked by risk),
//!   `/api/v1/entity`, `/api/v1/findings` (see `docs/api.md`).
//! - `series.rs`: `/api/v1/series`, min/max per pixel column.
//! - [`profiles`]: `/api/v1/profiles`, `/api/v1/flame` (a flame graph tree,
//!   or the growth between two profiles), `/api/v1/goroutines`.
//! - `assets.rs`: the pages, scripts and the vendored chart library (uPlot).
//! - [`report`]: the self-contained HTML report of `memlens report`.
//! - [`server`]: the HTTP server of `memlens watch --listen` and `memlens
//!   serve`: `/metrics` (when given), the dashboard, the bearer token
//!   exchanged for a cookie off loopback.
//!
//! Time travel: every endpoint takes `at` (ms since the epoch) and answers
//! as the history stood then: nothing after `at` is read, a finding that
//! cleared after `at` is still active.

mod api;
mod assets;
pub mod profiles;
mod query;
pub mod report;
mod series;
pub mod server;

pub use query::Query;
pub use series::{downsample, Column};

use memlens_store::Store;

/// The Content-Security-Policy of every answer: scripts, styles and data
/// only from this origin, no inline script, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Headers beyond the content type, the security headers and the length.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            headers: vec![("Cache-Control", "no-store".to_string())],
        }
    }

    /// A JSON error `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// A plain-text answer.
    pub fn text(status: u16, text: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: text.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }
}

/// Whether `path` is the dashboard's (a page, an asset or the API).
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/"
        || path == "/process"
        || path == "/profiles"
        || path.starts_with("/assets/")
        || path.starts_with("/api/")
}

/// Answers a GET of the dashboard's `path` with `query`; `store` is the
/// history (None when there is none yet: the pages load, the API says so).
pub fn handle(store: Option<&Store>, path: &str, query: &Query) -> Response {
    if let Some(asset) = assets::page_or_asset(path) {
        return asset;
    }
    if !path.starts_with("/api/") {
        return Response::text(404, "not found\n");
    }
    let Some(store) = store else {
        return Response::error(503, "no history yet: the agent has not written one");
    };
    let result = match path {
        "/api/v1/info" => api::info(store),
        "/api/v1/entities" => api::entities(store, query),
        "/api/v1/entity" => api::entity(store, query),
        "/api/v1/findings" => api::findings(store, query),
        "/api/v1/series" => series::series(store, query),
        "/api/v1/profiles" => profiles::list(store, query),
        "/api/v1/flame" => profiles::flame(store, query),
        "/api/v1/goroutines" => profiles::goroutines(store, query),
        _ => return Response::error(404, format!("no such endpoint: {path}")),
    };
    match result {
        Ok(value) => Response::json(200, &value),
        Err(ApiError::BadRequest(message)) => Response::error(400, message),
        Err(ApiError::NotFound(message)) => Response::error(404, message),
        Err(ApiError::Store(err)) => Response::error(500, format!("reading the history: {err}")),
    }
}

/// Why an API request failed.
#[derive(Debug)]
pub enum ApiError {
    /// A parameter is missing or malformed (the message names it).
    BadRequest(String),
    /// The entity asked for is not in the history.
    NotFound(String),
    /// The store failed.
    Store(memlens_store::StoreError),
}

impl From<memlens_store::StoreError> for ApiError {
    fn from(err: memlens_store::StoreError) -> ApiError {
        ApiError::Store(err)
    }
}
