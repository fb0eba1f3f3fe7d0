//! memlens's embedded history: SQLite (WAL) in one data directory, raw
//! samples compressed per series in chunks, profiles as blobs.
//!
//! # Using it from `memlens watch`
//!
//! ```no_run
//! use memlens_model::series::{Entity, Labels};
//! use memlens_store::{Retention, Store};
//! # fn main() -> Result<(), memlens_store::StoreError> {
//! let mut store = Store::open("/var/lib/memlens")?; // creates it; one writer per directory
//! let retention = Retention { max_age_ms: Some(7 * 86_400_000), max_bytes: Some(1 << 30) };
//! # let (now_ms, pid, start_time) = (1_700_000_000_000_i64, 42, 7);
//! // every tick (one timestamp for everything sampled in the tick):
//! let mut labels = Labels::new();
//! labels.insert("comm", "myservice".to_string());
//! let e = store.entity(&Entity::Process { pid, start_time }, &labels)?;
//! let rss = store.series_id(e, "rss_bytes")?;
//! store.append(now_ms, &[(rss, 123_456_789.0)])?;
//! let committed = store.commit()?; // one transaction: durable when it returns
//! println!("stored {} samples up to {:?}", committed.samples(), committed.last_ts_ms());
//! // every few minutes:
//! store.apply_retention(&retention, now_ms)?;
//! // on clean shutdown:
//! store.flush()?;
//! store.checkpoint()?;
//! # Ok(()) }
//! ```
//!
//! - [`Store::entity`] / [`Store::series_id`] hand out ids at once (cached;
//!   call them every tick, they are hash lookups) and register new rows with
//!   the next commit. A process is `(pid, start time)`: a reused pid is a new
//!   entity. Labels (`comm`, `cmdline` — redacted by the caller —, `cgroup`,
//!   `go_version`, anything else) are updated when they change.
//! - [`Store::append`] buffers one instant; instants must ascend across
//!   commits ([`StoreError::TimestampNotAscending`] otherwise: use a clock
//!   that does not go back). Use the tick's timestamp for everything sampled
//!   in the tick, also for slower cadences (Go runtime metrics every Nth
//!   tick), so they share one frame.
//! - [`Store::commit`] writes all buffered instants as rows of the durable
//!   head (`frames`) in one transaction (WAL, `synchronous=NORMAL`: a
//!   `kill -9` of the process loses nothing committed; a power loss may lose
//!   the last commits but never corrupts). Its [`CommitReport`] says exactly
//!   which instants and how many samples are now stored. When the head holds
//!   [`StoreOptions::frames_per_group`] frames (default 120) or spans
//!   [`StoreOptions::max_head_age_ms`], the same transaction seals it: one
//!   `groups` row with the frame timestamps and one compressed chunk per
//!   series, bundled in one `chunks` row per entity, and the head rows are
//!   deleted.
//! - On error the commit's samples are not stored (the report of the error
//!   says so); earlier data is untouched and the store stays usable: the
//!   agent logs and carries on (e.g. [`StoreError::DiskFull`]).
//! - [`Store::put_profile`] keeps a fetched profile's bytes, capped per blob
//!   ([`StoreOptions::max_profile_bytes`]) and in total (oldest deleted).
//! - [`Store::apply_retention`] deletes the oldest groups and profiles by age
//!   and by size; [`Store::checkpoint`] returns free pages and truncates the
//!   WAL.
//! - Readers (`memlens history`, `memlens query`) use
//!   [`Store::open_read_only`] while the agent writes: [`Store::series`],
//!   [`Store::entities_by_pid`], [`Store::entities_by_comm`],
//!   [`Store::query`] (or [`Store::query_each`] to stream big results),
//!   [`Store::metrics`], [`Store::profiles`], [`Store::profile_data`].
//! - [`Store::integrity_check`] runs SQLite's check and decodes everything.
//!
//! Values are stored raw, bit for bit (counters stay cumulative: derive rates
//! at read time, so a replay shows what live showed).
//!
//! # SQL views for `memlens query`
//!
//! - `samples(ts, entity, metric, value)`: every sample (sealed and head);
//!   `ts` in ms since the epoch, `entity` an `entities.id`, `metric` the
//!   name. Filters on `entity =`, `metric =` and `ts` ranges are used to skip
//!   data; rows are not in time order unless you `ORDER BY ts`. NaN values
//!   read as NULL (SQLite has no NaN); [`Store::series`] returns them as is.
//! - `entities(id, kind, key, pid, start_ticks, comm, cmdline, cgroup,
//!   go_version, labels, first_ts, last_ts)`: `kind` is `host`, `process` or
//!   `cgroup`; `key` is `process:PID:START`, `cgroup:PATH` or `host`;
//!   `cgroup` is a cgroup's path or a process's cgroup; `labels` is a JSON
//!   object of any other labels (or NULL); `first_ts` is the first commit
//!   that mentioned it, `last_ts` the end of the last sealed group with data
//!   of it.
//! - `series(id, entity, metric)`: every series; a series id is
//!   `entity << 16 | metric id` (`metrics(id, name)` is the name dictionary).
//! - `profiles(id, entity, kind, ts, size_bytes, data)`.
//! - Internal (documented for completeness, may change): `groups(id,
//!   first_ts, last_ts, frame_count, ts_data)`, `chunks(key, data)` (`key = group_id << 32
//!   | entity`), `frames(ts, data)`, `entity_rows(...)` and `strings(id,
//!   hash, text)` under the `entities` and `series` views (labels, command
//!   line words and metric sets through one dictionary, see the `schema`
//!   module), `meta(key, value)`.
//!
//! `entities` and `series` are views since format 2 ([`FORMAT_VERSION`]);
//! a writer upgrades a format-1 history in place when it opens it (one
//! transaction, every sample kept), readers refuse it until then with
//! [`StoreError::OlderFormat`], and a newer format is refused untouched
//! ([`StoreError::NewerFormat`]).
//!
//! Example: `SELECT e.pid, e.comm, max(s.value) FROM samples s JOIN entities
//! e ON e.id = s.entity WHERE s.metric = 'rss_bytes' GROUP BY e.id`.
//!
//! # Files
//!
//! `DIR/history.db` (+ `-wal`, `-shm`) and `DIR/writer.lock`. A damaged file
//! is reported ([`StoreError::Corrupt`]) and never deleted or rewritten.
//!
//! # Encoding
//!
//! See [`codec`]: frame timestamps once per group (delta-of-delta); each
//! series' values as exact scaled integers with delta-of-delta codes, falling
//! back to Gorilla XOR for other floats; one bundle per (group, entity) with
//! a CRC-32, so damage that SQLite cannot see is found by
//! [`Store::integrity_check`] and reported by reads. Head frames code each
//! value against the series' previous one (unchanged values cost 2 bytes).
//! Measured on this host's real /proc values (all processes, ~17 metrics
//! each, 1 s interval): see `examples/record_proc.rs`.

pub mod codec;
mod error;
mod findings;
mod ids;
mod integrity;
mod labels;
mod migrate;
mod profiles;
mod read;
mod retention;
mod schema;
mod store;
mod vtab;

pub use error::StoreError;
pub use findings::{FindingRecord, MAX_FINDINGS};
pub use integrity::IntegrityReport;
pub use profiles::{ProfileInfo, GOROUTINE_DEBUG2_KIND};
pub use read::{EntityInfo, QueryResult};
pub use retention::{Retention, RetentionReport};
pub use rusqlite::types::Value;
pub use schema::{DB_FILE, FORMAT_VERSION, LOCK_FILE};
pub use store::{
    CommitReport, CommittedFrame, EntityId, SealReport, SeriesId, Store, StoreOptions,
};
