//! `memlens watch --remote-write URL`: pushes what the agent records to a
//! Prometheus remote-write 1.0 receiver (Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir, Thanos
//! receive, ...).
//!
//! The history is the disk buffer: a sender thread with its own read-only
//! connection to the store reads the frames after its watermark (the last
//! instant the receiver acknowledged, kept in a state file per URL in the data
//! directory), at most `max_samples_per_request` samples of whole frames per
//! request, and POSTs them. On a 2xx the watermark advances. A 5xx, 429, a
//! network error or a timeout is retried with exponential back-off (up to
//! `max_backoff`) and nothing is skipped, so an outage loses nothing
//! the history still holds. A 4xx other than 429 means the receiver will
//! never take the batch (a sample too old for it, a bad label): the batch is
//! dropped, counted and logged, and the watermark advances. The sampling loop
//! never waits for the sender.
//!
//! - `batch.rs`: reading a batch, and the request it becomes (names and
//!   labels as `/metrics` shows them).
//! - `proto.rs`: the protobuf messages and the snappy body.
//! - the POST: `memlens_alert::live::http` (shared with the notifiers).
//! - `state.rs`: the watermark file.

mod batch;

mod proto;
mod state;

use crate::client::{self, Client, TlsFiles};
use crate::{format_duration, http, millis_i64, unix_ms};
use anyhow::Context;
use memlens_cardinality::SeriesOptions;
use memlens_store::Store;
use state::SenderState;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One receiver and how to send to it (the agent builds it from the
/// config file's `[remote_write]` table).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Where to POST (`http://HOST:PORT/api/v1/write`).
    pub url: String,
    /// Labels added to every series (`host = "web-1"`); checked with
    /// [`check_extra_labels`].
    pub extra_labels: BTreeMap<String, String>,
    /// The most samples in one request (whole frames; one frame larger than
    /// this is sent alone).
    pub max_samples_per_request: usize,
    /// How long a request may take to connect, and each read or write.
    pub timeout: Duration,
    /// The longest wait between two retries of a failing request.
    pub max_backoff: Duration,
    /// On the first start against this URL, send all the history holds
    /// rather than starting from now.
    pub send_existing_history: bool,
    /// How long the agent spends, once stopped, sending what it stored last.
    pub flush_timeout: Duration,
    /// The bound of the disk buffer: samples older than this that the
    /// receiver has not taken (a long outage) are skipped and counted.
    pub max_buffer_age: Duration,
    /// TLS files of an `https://` URL.
    pub tls: TlsFiles,
    /// How the agent authenticates to the receiver.
    pub auth: Auth,
    /// Headers sent with every request (`X-Scope-OrgID` for Mimir/Cortex).
    pub headers: BTreeMap<String, String>,
}

/// Authentication to a receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// None.
    #[default]
    None,
    /// HTTP basic auth; the password is read from a file or given.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// `Authorization: Bearer` with the token in a file (one word).
    BearerFile(PathBuf),
}

/// A secret given in the config or read from a file when the sender starts.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself.
    Value(String),
    /// A file holding it (trailing newline trimmed).
    File(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret(<hidden>)"),
            Secret::File(path) => write!(f, "Secret(file {})", path.display()),
        }
    }
}

fn read_secret_file(path: &std::path::Path, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {what} {}: {err}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(format!("{what} {}: is empty", path.display()));
    }
    Ok(value)
}

/// The headers of every request to `target`: the remote-write ones, the
/// `Authorization` of its auth, and its extra headers. Errors name the file
/// or header that is wrong.
pub fn request_headers(target: &Target) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/x-protobuf".into()),
        ("Content-Encoding".into(), "snappy".into()),
        ("X-Prometheus-Remote-Write-Version".into(), "0.1.0".into()),
    ];
    match &target.auth {
        Auth::None => {}
        Auth::Basic { username, password } => {
            let password = match password {
                Secret::Value(v) => v.clone(),
                Secret::File(path) => read_secret_file(path, "basic_auth password_file")?,
            };
            let pair = format!("{username}:{password}");
            headers.push((
                "Authorization".into(),
                format!("Basic {}", base64(pair.as_bytes())),
            ));
        }
        Auth::BearerFile(path) => {
            let token = read_secret_file(path, "bearer_token_file")?;
            if token.contains(char::is_whitespace) {
                return Err(format!(
                    "bearer_token_file {}: expected one token (no spaces)",
                    path.display()
                ));
            }
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
    }
    for (name, value) in &target.headers {
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token_char) {
            return Err(format!("headers: {name:?} is not a header name"));
        }
        if value.contains(['\r', '\n']) {
            return Err(format!("headers: the value of {name} holds a line break"));
        }
        let lower = name.to_ascii_lowercase();
        if [
            "host",
            "content-length",
            "content-type",
            "content-encoding",
            "connection",
            "transfer-encoding",
        ]
        .contains(&lower.as_str())
            || (lower == "authorization" && target.auth != Auth::None)
        {
            return Err(format!("headers: {name} is set by memlens itself"));
        }
        headers.push((name.clone(), value.clone()));
    }
    Ok(headers)
}

/// Standard base64 with padding (RFC 4648), for basic auth.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What the sender needs to know of the agent.
#[derive(Debug, Clone)]
pub struct AgentContext {
    /// The history's directory (the sender opens it read-only, and keeps
    /// its state file there).
    pub data_dir: PathBuf,
    /// How far back the history goes (`send_existing_history` starts there).
    pub history_max_age: Duration,
    /// The agent's sampling interval: how often a caught-up sender looks
    /// for new samples.
    pub interval: Duration,
    /// No progress lines on stderr (errors are still printed).
    pub quiet: bool,
    /// Labels, process selection and relabel rules of the series sent.
    pub series: SeriesOptions,
}

/// Label names a series already carries.
const OWN_LABELS: [&str; 8] = [
    "__name__",
    "pid",
    "comm",
    "cgroup",
    "service",
    memlens_cardinality::INDEX_LABEL,
    "go_version",
    "endpoint",
];

/// Checks labels to add to every series: valid names, not one memlens sets
/// itself, no empty value. The error names the label.
pub fn check_extra_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in labels {
        let valid_name = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid_name || name.starts_with("__") {
            return Err(format!(
                "{name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not __*)"
            ));
        }
        if OWN_LABELS.contains(&name.as_str()) {
            return Err(format!("{name:?} is a label memlens sets itself"));
        }
        if value.is_empty() {
            return Err(format!("{name:?} has an empty value"));
        }
    }
    Ok(())
}

/// The sender's counters since its state file was created.
#[derive(Debug, Default)]
pub struct Counters {
    /// Samples the receiver accepted.
    pub sent_samples_total: AtomicU64,
    /// Samples dropped: refused with a 4xx (not 429).
    pub dropped_samples_total: AtomicU64,
    /// Requests that failed and were retried.
    pub failed_requests_total: AtomicU64,
    /// Samples in requests that failed and are sent again.
    pub retried_samples_total: AtomicU64,
    /// Compressed request bytes the receiver accepted.
    pub sent_bytes_total: AtomicU64,
    /// Requests refused with 401 or 403 (kept, retried).
    pub auth_failures_total: AtomicU64,
    /// Series in requests the receiver accepted (one per series and
    /// request).
    pub series_sent_total: AtomicU64,
    /// Series the receiver accepted that this sender had not sent in the
    /// hour before (since the agent started): the series it adds to the
    /// receiver's index.
    pub new_series_total: AtomicU64,
}

/// One sender's totals, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderTotals {
    /// The receiver's URL.
    pub url: String,
    /// Samples the receiver accepted.
    pub sent_samples: u64,
    /// Samples dropped (4xx other than 401, 403, 429; past the buffer bound).
    pub dropped_samples: u64,
    /// Requests that failed and were retried.
    pub failed_requests: u64,
    /// Samples in requests that failed, sent again.
    pub retried_samples: u64,
    /// Compressed request bytes the receiver accepted.
    pub sent_bytes: u64,
    /// Requests refused with 401 or 403.
    pub auth_failures: u64,
    /// Series in accepted requests, one per series and request.
    pub series_sent: u64,
    /// Series new to this sender (or unsent for an hour) when accepted.
    pub new_series: u64,
}

/// The running sender.
pub struct RemoteWriter {
    url: String,
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl RemoteWriter {
    /// Starts the sender of `rw` (after the history was opened: it reads
    /// the same directory).
    pub fn start(rw: &Target, config: &AgentContext) -> anyhow::Result<RemoteWriter> {
        let url = http::HttpUrl::parse_with_tls(&rw.url).map_err(anyhow::Error::msg)?;
        let tls = if url.tls {
            Some(
                client::tls_config(&rw.tls)
                    .map_err(|err| anyhow::anyhow!("remote_write {}: {err}", rw.url))?,
            )
        } else {
            None
        };
        let client = Client::new(
            url,
            tls,
            rw.tls.server_name.as_deref(),
            rw.timeout,
            rw.timeout,
        )
        .map_err(|err| anyhow::anyhow!("remote_write {}: {err}", rw.url))?;
        let headers =
            request_headers(rw).map_err(|err| anyhow::anyhow!("remote_write {}: {err}", rw.url))?;
        let path = state::state_path(&config.data_dir, &rw.url);
        let state = match state::load(&path, &rw.url).map_err(anyhow::Error::msg)? {
            Some(state) => state,
            None => {
                let now = unix_ms();
                let start = if rw.send_existing_history {
                    now.saturating_sub(millis_i64(config.history_max_age))
                } else {
                    now
                };
                let state = SenderState::new(&rw.url, start);
                state::save(&path, &state)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                state
            }
        };
        let store = Store::open_read_only(&config.data_dir).with_context(|| {
            format!(
                "remote_write: cannot open the history in {}",
                config.data_dir.display()
            )
        })?;
        let counters = Arc::new(Counters::default());
        counters
            .sent_samples_total
            .store(state.sent_samples_total, Ordering::Relaxed);
        counters
            .dropped_samples_total
            .store(state.dropped_samples_total, Ordering::Relaxed);
        counters
            .failed_requests_total
            .store(state.failed_requests_total, Ordering::Relaxed);
        counters
            .retried_samples_total
            .store(state.retried_samples_total, Ordering::Relaxed);
        counters
            .sent_bytes_total
            .store(state.sent_bytes_total, Ordering::Relaxed);
        counters
            .auth_failures_total
            .store(state.auth_failures_total, Ordering::Relaxed);
        counters
            .series_sent_total
            .store(state.series_sent_total, Ordering::Relaxed);
        counters
            .new_series_total
            .store(state.new_series_total, Ordering::Relaxed);
        let (stop, stop_rx) = mpsc::channel();
        let sender = Sender {
            store,
            client,
            headers,
            retry_after: None,
            config: rw.clone(),
            state,
            path,
            entities: HashMap::new(),
            span_ms: INITIAL_SPAN_MS,
            counters: counters.clone(),
            quiet: config.quiet,
            interval: config.interval,
            stop_rx,
            flush_deadline: None,
            failures_in_a_row: 0,
            last_drop_log: None,
            series: config.series.clone(),
            seen_series: HashMap::new(),
            last_seen_prune_ms: unix_ms(),
        };
        let handle = std::thread::Builder::new()
            .name("remote-write".to_string())
            .spawn(move || sender.run())
            .context("cannot start the remote_write thread")?;
        Ok(RemoteWriter {
            url: rw.url.clone(),
            stop,
            handle,
            counters,
        })
    }

    /// The totals since the state file was created, for the agent's own
    /// metrics.
    pub fn totals(&self) -> SenderTotals {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SenderTotals {
            url: self.url.clone(),
            sent_samples: load(&c.sent_samples_total),
            dropped_samples: load(&c.dropped_samples_total),
            failed_requests: load(&c.failed_requests_total),
            retried_samples: load(&c.retried_samples_total),
            sent_bytes: load(&c.sent_bytes_total),
            auth_failures: load(&c.auth_failures_total),
            series_sent: load(&c.series_sent_total),
            new_series: load(&c.new_series_total),
        }
    }

    /// Sends what is left (for at most `flush_timeout`) and stops;
    /// anything unsent stays in the history for the next start.
    pub fn stop(self) {
        self.request_stop();
        self.join();
    }

    /// Tells the sender to flush and stop, without waiting (several
    /// senders flush at once: request each, then [`RemoteWriter::join`]).
    pub fn request_stop(&self) {
        let _ = self.stop.send(());
    }

    /// Waits for the sender to end (after [`RemoteWriter::request_stop`]).
    pub fn join(self) {
        let _ = self.handle.join();
    }
}

/// The first time range read after the watermark; it doubles while reads
/// find little and halves when a read hits the sample cap.
const INITIAL_SPAN_MS: i64 = 600_000;
const MIN_SPAN_MS: i64 = 1_000;
const MAX_SPAN_MS: i64 = 30 * 86_400_000;
/// The first retry waits this long, the next ones twice as long each.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What a round achieved.
enum Round {
    /// Delivered (or dropped) a batch, and more is waiting.
    More,
    /// Nothing left to send.
    CaughtUp,
    /// The batch could not be delivered; retry it.
    Failed(String),
}

struct Sender {
    store: Store,
    client: Client,
    headers: Vec<(String, String)>,
    /// The wait the receiver asked for with `Retry-After` on its last 429/503.
    retry_after: Option<Duration>,
    config: Target,
    state: SenderState,
    path: PathBuf,
    entities: HashMap<i64, batch::EntityLabels>,
    span_ms: i64,
    counters: Arc<Counters>,
    quiet: bool,
    interval: Duration,
    stop_rx: mpsc::Receiver<()>,
    flush_deadline: Option<Instant>,
    failures_in_a_row: u64,
    last_drop_log: Option<Instant>,
    series: SeriesOptions,
    /// A hash of each series sent lately, with when it was last sent.
    seen_series: HashMap<u64, i64>,
    last_seen_prune_ms: i64,
}

/// A series not sent for this long counts as new when it comes back.
const SEEN_SERIES_MS: i64 = 3_600_000;

impl Sender {
    fn run(mut self) {
        let max_backoff = self.config.max_backoff;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let round = self.round();
            let wait = match round {
                Round::More => {
                    self.recovered();
                    backoff = FIRST_BACKOFF;
                    Duration::ZERO
                }
                Round::CaughtUp => {
                    self.recovered();
                    backoff = FIRST_BACKOFF;
                    if self.flush_deadline.is_some() {
                        return;
                    }
                    self.interval
                }
                Round::Failed(message) => {
                    self.failures_in_a_row += 1;
                    self.counters
                        .failed_requests_total
                        .fetch_add(1, Ordering::Relaxed);
                    self.state.failed_requests_total += 1;
                    // The counters survive a restart (at most one write per
                    // back-off wait).
                    self.save();
                    if self.flush_deadline.is_some() {
                        error(&format!(
                            "{message}; stopping: samples after {} stay in the history and are \
                             sent at the next start",
                            self.state.watermark_ms
                        ));
                        self.save();
                        return;
                    }
                    if self.failures_in_a_row == 1 || self.failures_in_a_row.is_multiple_of(20) {
                        error(&format!(
                            "{message} (attempt {}; retrying every {} at most, nothing is \
                             skipped)",
                            self.failures_in_a_row,
                            format_duration(max_backoff)
                        ));
                    }
                    let wait = match self.retry_after.take() {
                        // The receiver's word, within a bound: a
                        // misconfigured hour-long Retry-After must not
                        // stall the sender past its own max_backoff by much.
                        Some(asked) => asked.min(max_backoff.max(Duration::from_secs(300))),
                        None => backoff,
                    };
                    backoff = (backoff * 2).min(max_backoff);
                    wait
                }
            };
            if let Some(deadline) = self.flush_deadline {
                if Instant::now() >= deadline {
                    error(&format!(
                        "flush timeout: samples after {} stay in the history and are sent at \
                         the next start",
                        self.state.watermark_ms
                    ));
                    return;
                }
                continue;
            }
            let stopped = if wait.is_zero() {
                !matches!(self.stop_rx.try_recv(), Err(mpsc::TryRecvError::Empty))
            } else {
                !matches!(
                    self.stop_rx.recv_timeout(wait),
                    Err(mpsc::RecvTimeoutError::Timeout)
                )
            };
            if stopped {
                self.flush_deadline = Some(Instant::now() + self.config.flush_timeout);
            }
        }
    }

    fn recovered(&mut self) {
        if self.failures_in_a_row > 0 && !self.quiet {
            eprintln!(
                "memlens watch: remote_write {}: delivering again after {} failed attempts",
                self.config.url, self.failures_in_a_row
            );
        }
        self.failures_in_a_row = 0;
    }

    /// Skips (and counts) what is older than the buffer bound, so that an
    /// outage longer than the bound costs its oldest samples, counted, and
    /// never the newest.
    fn skip_past_the_bound(&mut self, now: i64) -> Result<(), String> {
        let bound_ms = millis_i64(self.config.max_buffer_age);
        let oldest_kept = now.saturating_sub(bound_ms);
        let after = self.state.watermark_ms;
        if after >= oldest_kept {
            return Ok(());
        }
        let counted = self
            .store
            .query(&format!(
                "SELECT count(*) FROM samples WHERE ts > {after} AND ts <= {oldest_kept} \
                 AND value IS NOT NULL"
            ))
            .map_err(|err| format!("cannot count the samples past the buffer bound: {err}"))?;
        let skipped = match counted.rows.first().and_then(|row| row.first()) {
            Some(memlens_store::Value::Integer(n)) => *n as u64,
            _ => 0,
        };
        if skipped > 0 {
            error(&format!(
                "{}: {skipped} samples older than the buffer bound ({}) were never \
                 accepted; they are dropped (counted in dropped_samples_total)",
                self.config.url,
                format_duration(self.config.max_buffer_age)
            ));
            self.counters
                .dropped_samples_total
                .fetch_add(skipped, Ordering::Relaxed);
            self.state.dropped_samples_total += skipped;
        }
        self.state.watermark_ms = oldest_kept;
        self.save();
        Ok(())
    }

    /// Reads one batch after the watermark and delivers it.
    fn round(&mut self) -> Round {
        let now = unix_ms();
        if let Err(err) = self.skip_past_the_bound(now) {
            return Round::Failed(err);
        }
        let after = self.state.watermark_ms;
        let until = after.checked_add(self.span_ms).filter(|&end| end < now);
        let batch = match batch::read(
            &self.store,
            after,
            until,
            self.config.max_samples_per_request,
        ) {
            Ok(batch) => batch,
            Err(err) => return Round::Failed(format!("cannot read the history: {err}")),
        };
        let Some(last_ts_ms) = batch.last_ts_ms else {
            if until.is_some() {
                self.span_ms = (self.span_ms * 2).min(MAX_SPAN_MS);
                return Round::More;
            }
            return Round::CaughtUp;
        };
        if batch
            .rows
            .iter()
            .any(|r| !self.entities.contains_key(&r.entity))
        {
            match batch::entity_labels(&self.store, self.series.pid_label) {
                Ok(entities) => self.entities = entities,
                Err(err) => return Round::Failed(format!("cannot read the entities: {err}")),
            }
        }
        let shaping = batch::Shaping {
            processes: (self.series.processes, self.series.top_processes),
            relabel: &self.series.relabel,
            extra: &self.config.extra_labels,
        };
        let (request, shaped) = batch::to_request(&batch.rows, &self.entities, &shaping);
        let samples: usize = request.timeseries.iter().map(|t| t.samples.len()).sum();
        let mut dropped = shaped.unknown as u64;
        if samples > 0 {
            let body = match proto::encode_body(&request) {
                Ok(body) => body,
                Err(err) => return Round::Failed(format!("cannot compress a request: {err}")),
            };
            let bytes = body.len() as u64;
            match self.client.post(&self.headers, &body) {
                Ok(r) if (200..300).contains(&r.status) => {
                    self.counters
                        .sent_samples_total
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    self.state.sent_samples_total += samples as u64;
                    self.counters
                        .sent_bytes_total
                        .fetch_add(bytes, Ordering::Relaxed);
                    self.state.sent_bytes_total += bytes;
                    self.count_series(&request, now);
                }
                Ok(r) if r.status == 401 || r.status == 403 => {
                    // Credentials are wrong or missing: the samples are
                    // kept and retried (the watermark stays) until the
                    // agent is restarted with the right ones.
                    self.counters
                        .auth_failures_total
                        .fetch_add(1, Ordering::Relaxed);
                    self.state.auth_failures_total += 1;
                    self.retried(samples);
                    return Round::Failed(format!(
                        "{} refused the credentials with HTTP {} ({}); nothing is dropped: \
                         the samples are sent once the agent restarts with the right ones",
                        self.config.url, r.status, r.body_excerpt
                    ));
                }
                Ok(r) if (400..500).contains(&r.status) && r.status != 429 => {
                    dropped += samples as u64;
                    if self
                        .last_drop_log
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                    {
                        self.last_drop_log = Some(Instant::now());
                        error(&format!(
                            "{} refused {samples} samples ({}..={} ms) with HTTP {}: {}; they \
                             are dropped (counted in dropped_samples_total of {}; logged at \
                             most once a minute)",
                            self.config.url,
                            batch.rows.first().map_or(0, |r| r.ts_ms),
                            last_ts_ms,
                            r.status,
                            r.body_excerpt,
                            self.path.display()
                        ));
                    }
                }
                Ok(r) => {
                    self.retried(samples);
                    if r.status == 429 || r.status == 503 {
                        self.retry_after = r.retry_after;
                    }
                    let asked = match r.retry_after.filter(|_| r.status == 429 || r.status == 503) {
                        Some(wait) => format!(" (Retry-After: {})", format_duration(wait)),
                        None => String::new(),
                    };
                    return Round::Failed(format!(
                        "{} answered HTTP {}{asked}: {}",
                        self.config.url, r.status, r.body_excerpt
                    ));
                }
                Err(err) => {
                    self.retried(samples);
                    return Round::Failed(format!("POST {}: {err}", self.config.url));
                }
            }
        }
        if dropped > 0 {
            self.counters
                .dropped_samples_total
                .fetch_add(dropped, Ordering::Relaxed);
            self.state.dropped_samples_total += dropped;
        }
        self.state.watermark_ms = last_ts_ms;
        self.save();
        if batch.capped {
            self.span_ms = (self.span_ms / 2).max(MIN_SPAN_MS);
            Round::More
        } else if until.is_some() {
            self.span_ms = (self.span_ms * 2).min(MAX_SPAN_MS);
            Round::More
        } else {
            Round::CaughtUp
        }
    }

    /// Counts the series of an accepted request, and those new to it.
    fn count_series(&mut self, request: &proto::WriteRequest, now_ms: i64) {
        use std::hash::{Hash, Hasher};
        let series = request.timeseries.len() as u64;
        let mut new = 0u64;
        for t in &request.timeseries {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for label in &t.labels {
                label.name.hash(&mut hasher);
                label.value.hash(&mut hasher);
            }
            if self.seen_series.insert(hasher.finish(), now_ms).is_none() {
                new += 1;
            }
        }
        if now_ms - self.last_seen_prune_ms >= SEEN_SERIES_MS / 4 {
            self.last_seen_prune_ms = now_ms;
            self.seen_series
                .retain(|_, last| now_ms - *last < SEEN_SERIES_MS);
        }
        self.counters
            .series_sent_total
            .fetch_add(series, Ordering::Relaxed);
        self.state.series_sent_total += series;
        self.counters
            .new_series_total
            .fetch_add(new, Ordering::Relaxed);
        self.state.new_series_total += new;
    }

    /// Counts the samples of a failed request, sent again.
    fn retried(&mut self, samples: usize) {
        self.counters
            .retried_samples_total
            .fetch_add(samples as u64, Ordering::Relaxed);
        self.state.retried_samples_total += samples as u64;
    }

    fn save(&self) {
        if let Err(err) = state::save(&self.path, &self.state) {
            // The watermark in memory is right; a restart resends from the
            // last saved one (a receiver ignores identical duplicates).
            error(&format!("cannot write {}: {err}", self.path.display()));
        }
    }
}

fn error(line: &str) {
    eprintln!("memlens watch: remote_write: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_label_checks() {
        check_extra_labels(&BTreeMap::from([("host".into(), "h".into())])).unwrap();
        for (name, value, want) in [
            ("pid", "1", "sets itself"),
            ("__x", "1", "not a label name"),
            ("1a", "1", "not a label name"),
            ("a-b", "1", "not a label name"),
            ("env", "", "empty"),
        ] {
            let err =
                check_extra_labels(&BTreeMap::from([(name.into(), value.into())])).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn base64_as_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain}");
        }
    }

    #[test]
    fn headers_carry_auth_and_refuse_what_memlens_sets() {
        let target = Target {
            url: "https://x/api/v1/write".into(),
            extra_labels: BTreeMap::new(),
            max_samples_per_request: 1,
            timeout: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            send_existing_history: false,
            flush_timeout: Duration::from_secs(1),
            max_buffer_age: Duration::from_secs(1),
            tls: TlsFiles::default(),
            auth: Auth::Basic {
                username: "user".into(),
                password: Secret::Value("pass".into()),
            },
            headers: BTreeMap::from([("X-Scope-OrgID".into(), "team-a".into())]),
        };
        let headers = request_headers(&target).unwrap();
        assert!(headers.contains(&("Authorization".into(), "Basic dXNlcjpwYXNz".into())));
        assert!(headers.contains(&("X-Scope-OrgID".into(), "team-a".into())));
        for (name, value, want) in [
            ("Content-Type", "x", "set by memlens"),
            ("Authorization", "x", "set by memlens"),
            ("Bad Name", "x", "not a header name"),
            ("X-A", "a\r\nb", "line break"),
        ] {
            let bad = Target {
                headers: BTreeMap::from([(name.into(), value.into())]),
                ..target.clone()
            };
            let err = request_headers(&bad).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        let bad = Target {
            auth: Auth::BearerFile("/nonexistent/token".into()),
            ..target.clone()
        };
        let err = request_headers(&bad).unwrap_err();
        assert!(
            err.contains("bearer_token_file /nonexistent/token"),
            "{err}"
        );
    }
}
